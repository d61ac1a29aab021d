// Argument checks and helpers shared by the kernel-family bindings (attention, kv, rat, sparse):
// each throws a SparqError whose message names the op, the argument, the expectation and what came.
#pragma once
#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "../core/status.h"
#include "../core/storage.h"

namespace sparq {

using Dims = std::vector<int64_t>;

// Throws `st` as a SparqError prefixed with the op's name (no-op when ok).
void check(Napi::Env env, const std::string& op, const Status& st);

// A new tensor on `dev`, or ERR_SPARQ_OOM.
TensorView alloc(Napi::Env env, const std::string& op, Device dev, DType dtype, Dims shape);

// `t` must have rank want.size(); dims given as >= 0 must match. `names` label the dims in the
// message ("[B, Hk, Tk, D]"), `because` says where the expected values come from.
void require_shape(Napi::Env env, const std::string& op, const char* arg, const TensorView& t, const Dims& want,
                   const std::string& names, const std::string& because);
// `t` must have exactly the shape `want`.
void require_shape(Napi::Env env, const std::string& op, const char* arg, const TensorView& t, const Dims& want);
void require_same_device(Napi::Env env, const std::string& op, const char* arg, const TensorView& t, const char* ref_arg,
                         const TensorView& ref);
// float32, float16 or bfloat16 (the kernel dtypes; float64 is not one).
void require_float(Napi::Env env, const std::string& op, const char* arg, const TensorView& t);
void require_dtype(Napi::Env env, const std::string& op, const char* arg, const TensorView& t, DType want, const char* why);
// `t` on ref's device with ref's dtype (the tensors an op reads together).
void require_like(Napi::Env env, const std::string& op, const char* arg, const TensorView& t, const char* ref_arg,
                  const TensorView& ref);

// The device's error word for data errors found by kernels (null on the CPU).
int* error_word_for(Napi::Env env, const std::string& op, Device dev);

// The softmax scale: `v` if given, else 1 / sqrt(D).
float arg_scale(const Napi::Value& v, const std::string& op, int64_t D);

// [out, lse | null], the return value of the attention-like ops.
Napi::Value out_and_lse(Napi::Env env, TensorView out, const TensorView* lse);

}  // namespace sparq
