#include "addon_data.h"

#include "../core/storage.h"

namespace sparq {

AddonData& addon_data(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

Napi::Error make_error(Napi::Env env, Code code, const std::string& message) {
  AddonData& d = addon_data(env);
  Napi::Object err;
  if (!d.error_class.IsEmpty()) {
    err = d.error_class.New({Napi::String::New(env, code_name(code)), Napi::String::New(env, message)});
  } else {
    err = Napi::Error::New(env, message).Value();
    err.Set("code", code_name(code));
  }
  return Napi::Error(env, err);
}

void throw_error(Napi::Env env, Code code, const std::string& message) { throw make_error(env, code, message); }

void sync_external_memory(Napi::Env env) {
  AddonData& d = addon_data(env);
  int64_t live = host_bytes_live();
  int64_t delta = live - d.reported_external;
  if (delta != 0) {
    Napi::MemoryManagement::AdjustExternalMemory(env, delta);
    d.reported_external = live;
  }
}

}  // namespace sparq
