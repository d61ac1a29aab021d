// What this binary is and what it sees: build facts, CUDA runtime/driver/devices, memory.
#include "../core/cast.h"
#include "../core/cpu_stream.h"
#include "../core/cuda_context.h"
#include "../core/host_cache.h"
#include "../core/storage.h"
#include "../core/thread_pool.h"
#include "addon_data.h"
#include "args.h"
#include "bindings.h"

#ifndef SPARQ_VERSION
#define SPARQ_VERSION "0.0.0"
#endif

namespace sparq {
namespace {

Napi::Object cpu_features(Napi::Env env) {
  Napi::Object f = Napi::Object::New(env);
#if defined(__x86_64__)
  __builtin_cpu_init();
  f.Set("sse4_2", static_cast<bool>(__builtin_cpu_supports("sse4.2")));
  f.Set("avx2", static_cast<bool>(__builtin_cpu_supports("avx2")));
  f.Set("fma", static_cast<bool>(__builtin_cpu_supports("fma")));
  f.Set("f16c", static_cast<bool>(__builtin_cpu_supports("f16c")));
  f.Set("avx512f", static_cast<bool>(__builtin_cpu_supports("avx512f")));
  f.Set("avx512bf16", static_cast<bool>(__builtin_cpu_supports("avx512bf16")));
#endif
  return f;
}

// buildInfo(): facts fixed when the binary was built, plus the CPU paths chosen on this machine.
Napi::Value BuildInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  const cuda::RuntimeInfo& r = cuda::runtime_info();
  o.Set("version", SPARQ_VERSION);
  o.Set("cuda", r.compiled);
  o.Set("cudaArchs", r.archs);
#if defined(__clang__)
  o.Set("compiler", "clang " __clang_version__);
#elif defined(__GNUC__)
  o.Set("compiler", "gcc " __VERSION__);
#else
  o.Set("compiler", "unknown");
#endif
#ifdef NDEBUG
  o.Set("buildType", "release");
#else
  o.Set("buildType", "debug");
#endif
  Napi::Object cpu = Napi::Object::New(env);
  cpu.Set("threads", CpuStream::get().pool().size());
  cpu.Set("castF16Path", cast_cpu_f16_path());
  cpu.Set("features", cpu_features(env));
  o.Set("cpu", cpu);
  return o;
}

// cudaInfo(): runtime and driver versions, devices, and why CUDA is unavailable (if it is).
Napi::Value CudaInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const cuda::RuntimeInfo& r = cuda::runtime_info();
  Napi::Object o = Napi::Object::New(env);
  o.Set("compiled", r.compiled);
  o.Set("runtimeVersion", r.runtime_version);
  o.Set("driverVersion", r.driver_version);
  if (r.unavailable.empty()) o.Set("unavailable", env.Null());
  else o.Set("unavailable", r.unavailable);
  Napi::Array devs = Napi::Array::New(env, r.devices.size());
  for (size_t i = 0; i < r.devices.size(); ++i) {
    const cuda::DeviceInfo& d = r.devices[i];
    Napi::Object x = Napi::Object::New(env);
    x.Set("index", d.index);
    x.Set("name", d.name);
    x.Set("totalMemory", static_cast<double>(d.total_memory));
    Napi::Array cc = Napi::Array::New(env, 2);
    cc.Set(0u, d.major);
    cc.Set(1u, d.minor);
    x.Set("computeCapability", cc);
    x.Set("multiprocessors", d.multiprocessors);
    devs.Set(static_cast<uint32_t>(i), x);
  }
  o.Set("devices", devs);
  return o;
}

// memory(op, device): host bytes held by sparq, or device and pool usage.
Napi::Value Memory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string op = arg_string(info[0], "memory", "op");
  Device dev = arg_device(info[1], op, "device");
  Napi::Object o = Napi::Object::New(env);
  o.Set("device", dev.name());
  if (dev.is_cpu()) {
    o.Set("bytes", static_cast<double>(host_bytes_live()));
    o.Set("storages", static_cast<double>(host_storages_live()));
    o.Set("cached", static_cast<double>(host_cache_bytes()));
    return o;
  }
  cuda::MemoryInfo m;
  throw_if_error(env, cuda::memory(dev.index, &m));
  o.Set("bytes", static_cast<double>(m.pool_used));
  o.Set("poolReserved", static_cast<double>(m.pool_reserved));
  o.Set("free", static_cast<double>(m.free));
  o.Set("total", static_cast<double>(m.total));
  return o;
}

// emptyCache(op, device): returns cached free memory (host block cache, CUDA pool) to the system.
Napi::Value EmptyCache(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string op = arg_string(info[0], "emptyCache", "op");
  Device dev = arg_device(info[1], op, "device");
  if (dev.is_cpu()) {
    empty_host_cache();
  } else {
    Status st = cuda::trim_pool(dev.index);
    if (!st.ok()) throw_error(env, st.code(), op + ": " + st.message());
  }
  return env.Undefined();
}

// setErrorClass(SparqError): native errors are created with this constructor from now on.
Napi::Value SetErrorClass(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsFunction()) throw_error(env, Code::invalid_arg_type, "setErrorClass: expected a constructor, got " + describe(info[0]));
  addon_data(env).error_class = Napi::Persistent(info[0].As<Napi::Function>());
  return env.Undefined();
}

}  // namespace

void register_info_bindings(Napi::Env env, Napi::Object exports) {
  exports.Set("buildInfo", Napi::Function::New<BuildInfo>(env, "buildInfo"));
  exports.Set("cudaInfo", Napi::Function::New<CudaInfo>(env, "cudaInfo"));
  exports.Set("memory", Napi::Function::New<Memory>(env, "memory"));
  exports.Set("emptyCache", Napi::Function::New<EmptyCache>(env, "emptyCache"));
  exports.Set("setErrorClass", Napi::Function::New<SetErrorClass>(env, "setErrorClass"));
}

}  // namespace sparq
