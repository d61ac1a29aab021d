#include "binding_checks.h"

#include <cmath>

#include "../core/cuda_context.h"
#include "../core/tensor_ops.h"
#include "addon_data.h"
#include "args.h"
#include "tensor_handle.h"

namespace sparq {

void check(Napi::Env env, const std::string& op, const Status& st) {
  if (!st.ok()) throw_error(env, st.code(), op + ": " + st.message());
}

TensorView alloc(Napi::Env env, const std::string& op, Device dev, DType dtype, Dims shape) {
  TensorView t;
  check(env, op, allocate_tensor(dev, dtype, shape, &t));
  return t;
}

void require_shape(Napi::Env env, const std::string& op, const char* arg, const TensorView& t, const Dims& want,
                   const std::string& names, const std::string& because) {
  bool ok = t.shape.size() == want.size();
  for (size_t i = 0; ok && i < want.size(); ++i) ok = want[i] < 0 || want[i] == t.shape[i];
  if (!ok)
    throw_error(env, Code::shape, op + ": " + arg + " must have shape " + names + (because.empty() ? "" : " with " + because) +
                                      ", got " + shape_str(t.shape));
}

void require_shape(Napi::Env env, const std::string& op, const char* arg, const TensorView& t, const Dims& want) {
  if (t.shape != want)
    throw_error(env, Code::shape, op + ": " + arg + " must have shape " + shape_str(want) + ", got " + shape_str(t.shape));
}

void require_same_device(Napi::Env env, const std::string& op, const char* arg, const TensorView& t, const char* ref_arg,
                         const TensorView& ref) {
  if (t.device() != ref.device())
    throw_error(env, Code::device, op + ": " + arg + " is on " + t.device().name() + " but " + ref_arg + " is on " +
                                       ref.device().name() + " (move it with .to())");
}

void require_float(Napi::Env env, const std::string& op, const char* arg, const TensorView& t) {
  if (!dtype_is_float(t.dtype))
    throw_error(env, Code::dtype, op + ": " + arg + " must be float32, float16 or bfloat16, got " + dtype_name(t.dtype));
}

void require_dtype(Napi::Env env, const std::string& op, const char* arg, const TensorView& t, DType want, const char* why) {
  if (t.dtype != want)
    throw_error(env, Code::dtype, op + ": " + arg + " must be " + dtype_name(want) + why + ", got " + dtype_name(t.dtype));
}

void require_like(Napi::Env env, const std::string& op, const char* arg, const TensorView& t, const char* ref_arg,
                  const TensorView& ref) {
  require_same_device(env, op, arg, t, ref_arg, ref);
  require_dtype(env, op, arg, t, ref.dtype, (std::string(" (the dtype of ") + ref_arg + ")").c_str());
}

int* error_word_for(Napi::Env env, const std::string& op, Device dev) {
  if (!dev.is_cuda()) return nullptr;
  int* w = nullptr;
  check(env, op, cuda::error_word(dev.index, &w));
  return w;
}

float arg_scale(const Napi::Value& v, const std::string& op, int64_t D) {
  if (v.IsUndefined() || v.IsNull()) return D > 0 ? static_cast<float>(1.0 / std::sqrt(static_cast<double>(D))) : 1.0f;
  return static_cast<float>(arg_number(v, op, "scale"));
}

Napi::Value out_and_lse(Napi::Env env, TensorView out, const TensorView* lse) {
  Napi::Array a = Napi::Array::New(env, 2);
  a.Set(0u, NativeTensor::wrap(env, std::move(out)));
  a.Set(1u, lse ? NativeTensor::wrap(env, *lse) : env.Null());
  return a;
}

}  // namespace sparq
