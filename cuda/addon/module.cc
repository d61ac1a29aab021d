// The addon's entry point: per-environment state and the export table. Nothing else lives here.
#include <napi.h>

#include "addon_data.h"
#include "bindings.h"
#include "tensor_handle.h"

namespace sparq {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  env.SetInstanceData(data);
  data->queue = std::make_shared<JsQueue>(env);
  Napi::Function tensor = NativeTensor::define(env);
  data->tensor_class = Napi::Persistent(tensor);
  exports.Set("NativeTensor", tensor);
  register_tensor_bindings(env, exports);
  register_stream_bindings(env, exports);
  register_info_bindings(env, exports);
  register_bench_bindings(env, exports);
  register_attention_bindings(env, exports);
  register_kv_bindings(env, exports);
  register_rat_bindings(env, exports);
  register_sparse_bindings(env, exports);
  return exports;
}

}  // namespace sparq

static Napi::Object InitSparq(Napi::Env env, Napi::Object exports) { return sparq::Init(env, exports); }

NODE_API_MODULE(sparq, InitSparq)
