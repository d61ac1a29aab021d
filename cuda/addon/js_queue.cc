#include "js_queue.h"

namespace sparq {

JsQueue::JsQueue(Napi::Env env) {
  tsfn_ = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}),
                                        "sparq.results", 0, 1);
  tsfn_.Unref(env);
}

JsQueue::~JsQueue() { tsfn_.Release(); }

void JsQueue::expect(Napi::Env env) {
  if (pending_++ == 0) tsfn_.Ref(env);
}

void JsQueue::post(Callback cb) {
  auto* data = new Callback(std::move(cb));
  napi_status st = tsfn_.NonBlockingCall(data, [this](Napi::Env env, Napi::Function, Callback* c) {
    std::unique_ptr<Callback> own(c);
    if (--pending_ == 0) tsfn_.Unref(env);
    Napi::HandleScope scope(env);
    try {
      (*own)(env);
    } catch (const Napi::Error& e) {
      // Callbacks settle promises and should not throw; if one does, surface it as an uncaught
      // JavaScript exception rather than letting it terminate the process.
      e.ThrowAsJavaScriptException();
    }
  });
  if (st != napi_ok) delete data;  // environment closing: nobody is waiting any more
}

}  // namespace sparq
