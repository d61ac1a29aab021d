// Reading results and waiting for streams. Results come back through the JsQueue; a failure
// recorded by an earlier queued op rejects the next read or synchronize on that stream.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <future>

#include "../core/cpu_stream.h"
#include "../core/cuda_context.h"
#include "addon_data.h"
#include "args.h"
#include "bindings.h"

namespace sparq {
namespace {

Napi::Error failure_error(Napi::Env env, const CpuStream::Failure& f) {
  std::string msg = f.status.message() + " (queued op '" + f.op + "' failed after it was enqueued";
  if (f.more) msg += "; " + std::to_string(f.more) + " later op(s) failed too";
  Napi::Error e = make_error(env, f.status.code(), msg + ")");
  e.Set("seq", Napi::Number::New(env, static_cast<double>(f.seq)));
  e.Set("op", Napi::String::New(env, f.op));
  e.Set("device", Napi::String::New(env, "cpu"));
  return e;
}

Napi::Value array_buffer(Napi::Env env, void* buf, size_t bytes) {
  if (bytes == 0) {
    std::free(buf);
    return Napi::ArrayBuffer::New(env, 0);
  }
  return Napi::ArrayBuffer::New(env, buf, bytes, [](Napi::Env, void* p) { std::free(p); });
}

void* host_buffer(Napi::Env env, const std::string& op, size_t bytes) {
  void* buf = std::malloc(bytes ? bytes : 1);
  if (!buf) throw_error(env, Code::oom, op + ": out of host memory reading " + std::to_string(bytes) + " bytes");
  return buf;
}

// Settles `deferred` in CPU stream order: a task queued now runs produce() on the worker (unless an
// earlier op failed, which rejects instead), then settle(env, deferred, state) on the JS thread.
template <typename State>
void settle_in_cpu_order(Napi::Env env, const char* what, Napi::Promise::Deferred deferred,
                         std::function<State()> produce,
                         std::function<void(Napi::Env, Napi::Promise::Deferred&, State&)> settle) {
  std::shared_ptr<JsQueue> queue = addon_data(env).queue;
  queue->expect(env);
  CpuStream::get().enqueue(what, [=]() {
    auto f = std::make_shared<CpuStream::Failure>();
    bool failed = CpuStream::get().take_failure(UINT64_MAX, f.get());
    auto state = std::make_shared<State>(failed ? State() : produce());
    queue->post([=](Napi::Env env) mutable {
      if (failed) deferred.Reject(failure_error(env, *f).Value());
      else settle(env, deferred, *state);
    });
    return Status::OK();
  });
}

// read(op, tensor): Promise<ArrayBuffer> with the tensor's bytes as of this point in its stream.
Napi::Value Read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string op = arg_string(info[0], "data", "op");
  TensorView view = arg_tensor(info[1], op, "tensor");
  auto deferred = Napi::Promise::Deferred::New(env);
  size_t bytes = view.nbytes();
  if (view.device().is_cpu()) {
    settle_in_cpu_order<void*>(env, "read", deferred,
        [view, bytes]() -> void* {
          void* buf = std::malloc(bytes ? bytes : 1);
          if (buf && bytes) std::memcpy(buf, view.data(), bytes);
          return buf;
        },
        [bytes, op](Napi::Env env, Napi::Promise::Deferred& d, void*& buf) {
          if (buf) d.Resolve(array_buffer(env, buf, bytes));
          else d.Reject(make_error(env, Code::oom, op + ": out of host memory reading " + std::to_string(bytes) + " bytes").Value());
        });
  } else {
    void* buf = host_buffer(env, op, bytes);
    std::shared_ptr<JsQueue> queue = addon_data(env).queue;
    Status st = cuda::read_async(view.device().index, view.data(), bytes, buf, [=](Status s) {
      queue->post([=](Napi::Env env) {
        if (!s.ok()) {
          std::free(buf);
          deferred.Reject(make_error(env, s.code(), op + ": " + s.message()).Value());
        } else {
          deferred.Resolve(array_buffer(env, buf, bytes));
        }
      });
    });
    if (!st.ok()) {
      std::free(buf);
      throw_error(env, st.code(), op + ": " + st.message());
    }
    queue->expect(env);
  }
  return deferred.Promise();
}

// readSync(op, tensor): ArrayBuffer; blocks this thread until the tensor's stream gets there.
Napi::Value ReadSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string op = arg_string(info[0], "dataSync", "op");
  TensorView view = arg_tensor(info[1], op, "tensor");
  size_t bytes = view.nbytes();
  void* buf = host_buffer(env, op, bytes);
  if (view.device().is_cpu()) {
    CpuStream& s = CpuStream::get();
    s.wait(s.last_seq());
    CpuStream::Failure f;
    if (s.take_failure(UINT64_MAX, &f)) {
      std::free(buf);
      throw failure_error(env, f);
    }
    if (bytes) std::memcpy(buf, view.data(), bytes);
  } else {
    std::promise<Status> done;
    std::future<Status> fut = done.get_future();
    Status st = cuda::read_async(view.device().index, view.data(), bytes, buf, [&done](Status s) { done.set_value(s); });
    if (st.ok()) st = fut.get();
    if (!st.ok()) {
      std::free(buf);
      throw_error(env, st.code(), op + ": " + st.message());
    }
  }
  return array_buffer(env, buf, bytes);
}

// synchronize(op, device): Promise<void> resolved when everything queued so far has finished.
Napi::Value Synchronize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string op = arg_string(info[0], "synchronize", "op");
  Device dev = arg_device(info[1], op, "device");
  auto deferred = Napi::Promise::Deferred::New(env);
  std::shared_ptr<JsQueue> queue = addon_data(env).queue;
  if (dev.is_cpu()) {
    settle_in_cpu_order<bool>(env, "synchronize", deferred, []() { return true; },
                              [](Napi::Env env, Napi::Promise::Deferred& d, bool&) { d.Resolve(env.Undefined()); });
  } else {
    Status st = cuda::when_done(dev.index, [=](Status s) {
      queue->post([=](Napi::Env env) {
        if (s.ok()) deferred.Resolve(env.Undefined());
        else deferred.Reject(make_error(env, s.code(), op + ": " + s.message()).Value());
      });
    });
    if (!st.ok()) throw_error(env, st.code(), op + ": " + st.message());
    queue->expect(env);
  }
  return deferred.Promise();
}

// cpuStreamState(): [last enqueued seq, last completed seq, seq of the pending failure or 0].
Napi::Value CpuStreamState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CpuStream& s = CpuStream::get();
  Napi::Array a = Napi::Array::New(env, 3);
  a.Set(0u, static_cast<double>(s.last_seq()));
  a.Set(1u, static_cast<double>(s.completed()));
  a.Set(2u, static_cast<double>(s.failed_seq()));
  return a;
}

// cpuLastSeq(): the sequence number of the most recently enqueued CPU op.
Napi::Value CpuLastSeq(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(CpuStream::get().last_seq()));
}

}  // namespace

void register_stream_bindings(Napi::Env env, Napi::Object exports) {
  exports.Set("read", Napi::Function::New<Read>(env, "read"));
  exports.Set("readSync", Napi::Function::New<ReadSync>(env, "readSync"));
  exports.Set("synchronize", Napi::Function::New<Synchronize>(env, "synchronize"));
  exports.Set("cpuStreamState", Napi::Function::New<CpuStreamState>(env, "cpuStreamState"));
  exports.Set("cpuLastSeq", Napi::Function::New<CpuLastSeq>(env, "cpuLastSeq"));
}

}  // namespace sparq
