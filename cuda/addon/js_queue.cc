#include "js_queue.h"

namespace sparq {

JsQueue::JsQueue(Napi::Env env) : s_(std::make_shared<Shared>()) {
  auto* keep = new std::shared_ptr<Shared>(s_);  // owned by the finalizer
  s_->tsfn = Napi::ThreadSafeFunction::New(
      env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}), "sparq.results", 0, 1, keep,
      [](Napi::Env, std::shared_ptr<Shared>* shared) {
        {
          std::lock_guard<std::mutex> lk((*shared)->mu);
          (*shared)->alive = false;
        }
        delete shared;
      });
  s_->tsfn.Unref(env);
}

void JsQueue::expect(Napi::Env env) {
  if (s_->pending++ == 0) s_->tsfn.Ref(env);
}

void JsQueue::post(Callback cb) {
  std::shared_ptr<Shared> s = s_;
  auto* data = new Callback(std::move(cb));
  std::lock_guard<std::mutex> lk(s->mu);
  if (!s->alive) {
    delete data;
    return;
  }
  napi_status st = s->tsfn.NonBlockingCall(data, [s](Napi::Env env, Napi::Function, Callback* c) {
    std::unique_ptr<Callback> own(c);
    if (--s->pending == 0) s->tsfn.Unref(env);
    Napi::HandleScope scope(env);
    try {
      (*own)(env);
    } catch (const Napi::Error& e) {
      // Callbacks settle promises and should not throw; if one does, surface it as an uncaught
      // JavaScript exception rather than letting it terminate the process.
      e.ThrowAsJavaScriptException();
    }
  });
  if (st != napi_ok) delete data;  // closing: nobody is waiting any more
}

}  // namespace sparq
