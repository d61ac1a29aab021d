// Tensor creation, movement and reading. Each function: op name, then arguments; validates, then
// enqueues through core/tensor_ops and returns without waiting for the device.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "../core/cast.h"
#include "../core/cpu_stream.h"
#include "../core/cuda_context.h"
#include "../core/fill.h"
#include "../core/tensor_ops.h"
#include "addon_data.h"
#include "args.h"
#include "bindings.h"
#include "tensor_handle.h"

namespace sparq {
namespace {

TensorView allocate(Napi::Env env, const std::string& op, Device dev, DType dtype, const std::vector<int64_t>& shape) {
  TensorView t;
  Status st = allocate_tensor(dev, dtype, shape, &t);
  if (!st.ok()) throw_error(env, st.code(), op + ": " + st.message());
  return t;
}

void check(Napi::Env env, const std::string& op, const Status& st) {
  if (!st.ok()) throw_error(env, st.code(), op + ": " + st.message());
}

// empty(op, shape, dtype, device)
Napi::Value Empty(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string op = arg_string(info[0], "empty", "op");
  auto shape = arg_shape(info[1], op, "shape");
  DType dtype = arg_dtype(info[2], op, "dtype");
  Device dev = arg_device(info[3], op, "device");
  return NativeTensor::wrap(env, allocate(env, op, dev, dtype, shape));
}

// full(op, shape, dtype, device, value): value is a number (NaN/Inf allowed for floats) or a bigint
// for int64.
Napi::Value Full(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string op = arg_string(info[0], "full", "op");
  auto shape = arg_shape(info[1], op, "shape");
  DType dtype = arg_dtype(info[2], op, "dtype");
  Device dev = arg_device(info[3], op, "device");
  uint64_t pattern;
  if (info[4].IsBigInt()) {
    if (dtype != DType::i64)
      throw_error(env, Code::invalid_arg_type, op + ": a bigint value needs dtype 'int64', got '" + dtype_name(dtype) + "'");
    bool lossless;
    pattern = static_cast<uint64_t>(info[4].As<Napi::BigInt>().Int64Value(&lossless));
    if (!lossless) throw_error(env, Code::invalid_arg_value, op + ": value does not fit in int64, got " + describe(info[4]));
  } else {
    double v = arg_number_any(info[4], op, "value");
    if (!dtype_is_floating(dtype) && std::isnan(v))
      throw_error(env, Code::invalid_arg_value, op + ": value NaN cannot be stored in dtype '" + dtype_name(dtype) + "'");
    pattern = encode_scalar(v, dtype);
  }
  TensorView t = allocate(env, op, dev, dtype, shape);
  check(env, op, fill_tensor(t, pattern));
  return NativeTensor::wrap(env, std::move(t));
}

// fromArray(op, data, shape, dtype, device): copies (and converts) a typed array.
Napi::Value FromArray(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string op = arg_string(info[0], "tensor", "op");
  Napi::Value data = info[1];
  auto shape = arg_shape(info[2], op, "shape");
  DType dtype = arg_dtype(info[3], op, "dtype");
  Device dev = arg_device(info[4], op, "device");
  if (!data.IsTypedArray())
    throw_error(env, Code::invalid_arg_type, op + ": data must be a typed array or an array of numbers, got " + describe(data));
  Napi::TypedArray ta = data.As<Napi::TypedArray>();
  bool from_f64 = false;
  DType src = dtype;
  switch (ta.TypedArrayType()) {
    case napi_float32_array: src = DType::f32; break;
    case napi_float64_array:
      if (dtype == DType::f64) src = DType::f64;  // same representation: a plain copy
      else from_f64 = true;
      break;
    case napi_int8_array: src = DType::i8; break;
    case napi_uint8_array: case napi_uint8_clamped_array: src = DType::u8; break;
    case napi_int32_array: src = DType::i32; break;
    case napi_uint32_array: src = DType::u32; break;
    case napi_bigint64_array: src = DType::i64; break;
    case napi_uint16_array:
      if (dtype != DType::f16 && dtype != DType::bf16)
        throw_error(env, Code::dtype, op + ": a Uint16Array holds raw float16 or bfloat16 bits and needs dtype 'float16' "
                                      "or 'bfloat16', got '" + dtype_name(dtype) + "'");
      src = dtype;
      break;
    default:
      throw_error(env, Code::dtype, op + ": data of this typed array type is not supported (use Float32Array, Float64Array, "
                                    "Int8Array, Uint8Array, Int32Array, Uint32Array, BigInt64Array, or Uint16Array for "
                                    "float16/bfloat16 bits)");
  }
  int64_t numel = 1;
  for (int64_t d : shape) numel = (d == 0 || numel <= (int64_t{1} << 53) / d) ? numel * d : -1;
  if (numel != static_cast<int64_t>(ta.ElementLength()))
    throw_error(env, Code::shape, op + ": data has " + std::to_string(ta.ElementLength()) + " elements but shape " +
                                      shape_str(shape) + " needs " + (numel < 0 ? std::string("more") : std::to_string(numel)));
  const void* host = static_cast<const char*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  TensorView t = allocate(env, op, dev, dtype, shape);
  if (!from_f64 && src == dtype) {
    check(env, op, upload_tensor(host, t));
  } else {
    // Convert on this thread (the user's array must be read before we return).
    static ThreadPool serial(1);
    void* staging = t.device().is_cpu() ? t.data() : std::malloc(std::max<size_t>(t.nbytes(), 1));
    if (!staging) throw_error(env, Code::oom, op + ": out of host memory staging " + std::to_string(t.nbytes()) + " bytes");
    if (from_f64) {
      convert_from_f64_cpu(static_cast<const double*>(host), staging, numel, dtype, serial);
    } else {
      CastParams p;
      p.src = host;
      p.dst = staging;
      p.n = numel;
      p.src_dtype = src;
      p.dst_dtype = dtype;
      cast_cpu(p, serial);
    }
    if (!t.device().is_cpu()) {
      Status st = upload_tensor(staging, t);
      std::free(staging);
      check(env, op, st);
    }
  }
  return NativeTensor::wrap(env, std::move(t));
}

// to(op, tensor, device): the same storage when already there, else a copy.
Napi::Value To(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string op = arg_string(info[0], "to", "op");
  const TensorView& src = arg_tensor(info[1], op, "tensor");
  Device dev = arg_device(info[2], op, "device");
  if (dev == src.device()) return NativeTensor::wrap(env, src);
  TensorView out;
  check(env, op, copy_to_device(src, dev, &out));
  return NativeTensor::wrap(env, std::move(out));
}

// clone(op, tensor): a copy on the same device.
Napi::Value Clone(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string op = arg_string(info[0], "clone", "op");
  const TensorView& src = arg_tensor(info[1], op, "tensor");
  TensorView out;
  check(env, op, copy_to_device(src, src.device(), &out));
  return NativeTensor::wrap(env, std::move(out));
}

// cast(op, tensor, dtype): the same storage when the dtype already matches.
Napi::Value Cast(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string op = arg_string(info[0], "cast", "op");
  const TensorView& src = arg_tensor(info[1], op, "tensor");
  DType dtype = arg_dtype(info[2], op, "dtype");
  if (dtype == src.dtype) return NativeTensor::wrap(env, src);
  TensorView out;
  check(env, op, cast_tensor(src, dtype, &out));
  return NativeTensor::wrap(env, std::move(out));
}

// random(op, shape, dtype, device, 'normal' | 'uniform', seed, a, b)
Napi::Value Random(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string op = arg_string(info[0], "random", "op");
  auto shape = arg_shape(info[1], op, "shape");
  DType dtype = arg_dtype(info[2], op, "dtype");
  Device dev = arg_device(info[3], op, "device");
  std::string dist = arg_string(info[4], op, "distribution");
  uint64_t seed = arg_seed(info[5], op, "seed");
  if (!dtype_is_float(dtype))
    throw_error(env, Code::dtype, op + ": dtype must be 'float32', 'float16' or 'bfloat16', got '" + dtype_name(dtype) + "'");
  Distribution d;
  double a, b;
  if (dist == "normal") {
    d = Distribution::kNormal;
    a = arg_number(info[6], op, "mean");
    b = arg_number(info[7], op, "std");
    if (b < 0) throw_error(env, Code::invalid_arg_value, op + ": std must be >= 0, got " + std::to_string(b));
  } else if (dist == "uniform") {
    d = Distribution::kUniform;
    a = arg_number(info[6], op, "low");
    b = arg_number(info[7], op, "high");
    if (!(a < b)) throw_error(env, Code::invalid_arg_value, op + ": low must be less than high, got low " +
                                                               std::to_string(a) + " and high " + std::to_string(b));
  } else {
    throw_error(env, Code::invalid_arg_value, op + ": distribution must be 'normal' or 'uniform', got '" + dist + "'");
  }
  TensorView t = allocate(env, op, dev, dtype, shape);
  check(env, op, random_tensor(t, d, seed, a, b));
  return NativeTensor::wrap(env, std::move(t));
}

}  // namespace

void register_tensor_bindings(Napi::Env env, Napi::Object exports) {
  exports.Set("empty", Napi::Function::New<Empty>(env, "empty"));
  exports.Set("full", Napi::Function::New<Full>(env, "full"));
  exports.Set("fromArray", Napi::Function::New<FromArray>(env, "fromArray"));
  exports.Set("to", Napi::Function::New<To>(env, "to"));
  exports.Set("clone", Napi::Function::New<Clone>(env, "clone"));
  exports.Set("cast", Napi::Function::New<Cast>(env, "cast"));
  exports.Set("random", Napi::Function::New<Random>(env, "random"));
}

}  // namespace sparq
