// Per-environment state of the addon (main thread and each worker_thread get their own).
#pragma once
#include <napi.h>

#include <memory>

#include "../core/status.h"
#include "js_queue.h"

namespace sparq {

struct AddonData {
  Napi::FunctionReference error_class;   // lib/errors.ts SparqError, registered at load
  Napi::FunctionReference tensor_class;  // NativeTensor
  std::shared_ptr<JsQueue> queue;        // shared with queued tasks that post results
  int64_t reported_external = 0;         // host bytes announced to V8 so far
};

AddonData& addon_data(Napi::Env env);

// Errors: a SparqError (when registered) with `code`; Throw* raise it as a C++ exception that
// node-addon-api turns into a JavaScript exception at the call boundary.
Napi::Error make_error(Napi::Env env, Code code, const std::string& message);
[[noreturn]] void throw_error(Napi::Env env, Code code, const std::string& message);
inline void throw_if_error(Napi::Env env, const Status& st) {
  if (!st.ok()) throw_error(env, st.code(), st.message());
}

// Tells V8 how much host memory sparq holds, so forgotten tensors create GC pressure.
void sync_external_memory(Napi::Env env);

}  // namespace sparq
