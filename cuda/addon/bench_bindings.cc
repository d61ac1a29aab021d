// Benchmark and test support: timestamps recorded in stream order, a gate that holds a stream
// while a batch is queued (so JavaScript overhead stays out of timings), and two internal ops
// for exercising the execution model (a sleep and a failure raised inside queued work).
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "../core/cpu_stream.h"
#include "../core/cuda_context.h"
#include "addon_data.h"
#include "args.h"
#include "bindings.h"

namespace sparq {
namespace {

const napi_type_tag kMarkerTag = {0x9b1c2a6e5f3d4c1bULL, 0x8e7a6b5c4d3e2f10ULL};

class CpuMarker : public cuda::Marker {
 public:
  std::atomic<bool> reached{false};
  std::chrono::steady_clock::time_point at;
  Status elapsed_ms_since(const Marker& start, double* ms) const override {
    auto* s = dynamic_cast<const CpuMarker*>(&start);
    if (!s) return Status(Code::invalid_arg_value, "markers come from different devices");
    if (!reached.load(std::memory_order_acquire) || !s->reached.load(std::memory_order_acquire))
      return Status(Code::invalid_arg_value, "a marker has not been reached yet; await synchronize() first");
    *ms = std::chrono::duration<double, std::milli>(at - s->at).count();
    return Status::OK();
  }
};

using MarkerPtr = std::shared_ptr<cuda::Marker>;

// marker(op, device): an opaque timestamp taken when the stream reaches this point.
Napi::Value MakeMarker(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string op = arg_string(info[0], "marker", "op");
  Device dev = arg_device(info[1], op, "device");
  MarkerPtr m;
  if (dev.is_cpu()) {
    auto cm = std::make_shared<CpuMarker>();
    CpuStream::get().enqueue("marker", [cm]() {
      cm->at = std::chrono::steady_clock::now();
      cm->reached.store(true, std::memory_order_release);
      return Status::OK();
    });
    m = cm;
  } else {
    Status st = cuda::record_marker(dev.index, &m);
    if (!st.ok()) throw_error(env, st.code(), op + ": " + st.message());
  }
  auto ext = Napi::External<MarkerPtr>::New(env, new MarkerPtr(m), [](Napi::Env, MarkerPtr* p) { delete p; });
  ext.TypeTag(&kMarkerTag);
  return ext;
}

const cuda::Marker& arg_marker(const Napi::Value& v, const std::string& op, const char* name) {
  if (!v.IsExternal() || !v.As<Napi::External<MarkerPtr>>().CheckTypeTag(&kMarkerTag))
    throw_error(v.Env(), Code::invalid_arg_type, op + ": " + name + " must be a marker, got " + describe(v));
  return **v.As<Napi::External<MarkerPtr>>().Data();
}

// elapsed(op, start, end): milliseconds between two reached markers of one device.
Napi::Value Elapsed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string op = arg_string(info[0], "elapsed", "op");
  const cuda::Marker& a = arg_marker(info[1], op, "start");
  const cuda::Marker& b = arg_marker(info[2], op, "end");
  double ms = 0;
  Status st = b.elapsed_ms_since(a, &ms);
  if (!st.ok()) throw_error(env, st.code(), op + ": " + st.message());
  return Napi::Number::New(env, ms);
}

struct CpuGate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
};

// hold(op, device): stops the stream at this point until the returned function is called (or,
// as a safety net, for at most 60 s).
Napi::Value Hold(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string op = arg_string(info[0], "hold", "op");
  Device dev = arg_device(info[1], op, "device");
  std::function<void()> release;
  if (dev.is_cpu()) {
    auto gate = std::make_shared<CpuGate>();
    CpuStream::get().enqueue("hold", [gate]() {
      std::unique_lock<std::mutex> lk(gate->mu);
      gate->cv.wait_for(lk, std::chrono::seconds(60), [&] { return gate->open; });
      return Status::OK();
    });
    release = [gate] {
      std::lock_guard<std::mutex> lk(gate->mu);
      gate->open = true;
      gate->cv.notify_all();
    };
  } else {
    Status st = cuda::hold_stream(dev.index, &release);
    if (!st.ok()) throw_error(env, st.code(), op + ": " + st.message());
  }
  return Napi::Function::New(env, [release](const Napi::CallbackInfo& i) {
    release();
    return i.Env().Undefined();
  }, "release");
}

// debugSleep(op, ms): a CPU op that takes `ms` milliseconds (event-loop liveness tests).
Napi::Value DebugSleep(const Napi::CallbackInfo& info) {
  std::string op = arg_string(info[0], "debugSleep", "op");
  int64_t ms = arg_integer(info[1], op, "ms", 0, 600000);
  CpuStream::get().enqueue("debugSleep", [ms]() {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return Status::OK();
  });
  return info.Env().Undefined();
}

// debugFail(op, message): a CPU op that fails when it runs, as a kernel that finds bad data would.
Napi::Value DebugFail(const Napi::CallbackInfo& info) {
  std::string op = arg_string(info[0], "debugFail", "op");
  std::string message = arg_string(info[1], op, "message");
  CpuStream::get().enqueue("debugFail", [message]() { return Status(Code::invalid_arg_value, message); });
  return info.Env().Undefined();
}

}  // namespace

void register_bench_bindings(Napi::Env env, Napi::Object exports) {
  exports.Set("marker", Napi::Function::New<MakeMarker>(env, "marker"));
  exports.Set("elapsed", Napi::Function::New<Elapsed>(env, "elapsed"));
  exports.Set("hold", Napi::Function::New<Hold>(env, "hold"));
  exports.Set("debugSleep", Napi::Function::New<DebugSleep>(env, "debugSleep"));
  exports.Set("debugFail", Napi::Function::New<DebugFail>(env, "debugFail"));
}

}  // namespace sparq
