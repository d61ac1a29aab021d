// Registration of each binding file's functions on the module's exports.
#pragma once
#include <napi.h>

namespace sparq {

void register_tensor_bindings(Napi::Env env, Napi::Object exports);
void register_stream_bindings(Napi::Env env, Napi::Object exports);
void register_info_bindings(Napi::Env env, Napi::Object exports);
void register_bench_bindings(Napi::Env env, Napi::Object exports);
void register_attention_bindings(Napi::Env env, Napi::Object exports);
void register_kv_bindings(Napi::Env env, Napi::Object exports);
void register_rat_bindings(Napi::Env env, Napi::Object exports);
void register_sparse_bindings(Napi::Env env, Napi::Object exports);

}  // namespace sparq
