// Runs callbacks on the JavaScript thread from any thread (stream workers, CUDA completion
// threads). Holds the event loop open only while results are pending.
//
// Lifetime: the thread-safe function is never released by us; Node destroys it when the
// environment is torn down, and its finalizer marks the queue closed. post() checks that mark
// under a mutex, so a worker finishing after teardown drops its result instead of touching a
// destroyed thread-safe function.
#pragma once
#include <napi.h>

#include <functional>
#include <memory>
#include <mutex>

namespace sparq {

class JsQueue {
 public:
  using Callback = std::function<void(Napi::Env)>;
  explicit JsQueue(Napi::Env env);

  // JS thread: a result is now pending (keeps the process alive until it is delivered).
  void expect(Napi::Env env);
  // Any thread: deliver one expected result. Dropped if the environment is gone.
  void post(Callback cb);

 private:
  struct Shared {
    std::mutex mu;
    bool alive = true;
    Napi::ThreadSafeFunction tsfn;
    int pending = 0;  // touched only on the JS thread
  };
  std::shared_ptr<Shared> s_;
};

}  // namespace sparq
