// Runs callbacks on the JavaScript thread from any thread (stream workers, CUDA completion
// threads). Holds the event loop open only while results are pending.
#pragma once
#include <napi.h>

#include <functional>
#include <memory>

namespace sparq {

class JsQueue {
 public:
  using Callback = std::function<void(Napi::Env)>;
  explicit JsQueue(Napi::Env env);
  ~JsQueue();

  // JS thread: a result is now pending (keeps the process alive until it is delivered).
  void expect(Napi::Env env);
  // Any thread: deliver one expected result. Dropped silently if the environment is gone.
  void post(Callback cb);

 private:
  Napi::ThreadSafeFunction tsfn_;
  int pending_ = 0;  // touched only on the JS thread
};

}  // namespace sparq
