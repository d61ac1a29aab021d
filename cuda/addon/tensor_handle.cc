#include "tensor_handle.h"

#include <algorithm>

#include "addon_data.h"
#include "args.h"

namespace sparq {

Napi::Function NativeTensor::define(Napi::Env env) {
  return DefineClass(env, "NativeTensor",
                     {
                         InstanceAccessor<&NativeTensor::get_dtype>("dtype"),
                         InstanceAccessor<&NativeTensor::get_shape>("shape"),
                         InstanceAccessor<&NativeTensor::get_device>("device"),
                         InstanceAccessor<&NativeTensor::get_disposed>("disposed"),
                         InstanceMethod<&NativeTensor::release>("release"),
                         InstanceMethod<&NativeTensor::reshape>("reshape"),
                         InstanceMethod<&NativeTensor::slice>("slice"),
                     });
}

Napi::Object NativeTensor::wrap(Napi::Env env, TensorView view) {
  Napi::Object obj = addon_data(env).tensor_class.New({});
  NativeTensor* t = Unwrap(obj);
  t->view_ = std::move(view);
  t->released_ = false;
  sync_external_memory(env);
  return obj;
}

NativeTensor::NativeTensor(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeTensor>(info) {}

void NativeTensor::check_alive(const std::string& op) const {
  if (released_) throw_error(Env(), Code::disposed, op + ": the tensor has been disposed");
}

Napi::Value NativeTensor::get_dtype(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), dtype_name(view_.dtype));
}

Napi::Value NativeTensor::get_shape(const Napi::CallbackInfo& info) {
  Napi::Array a = Napi::Array::New(info.Env(), view_.shape.size());
  for (size_t i = 0; i < view_.shape.size(); ++i) a.Set(static_cast<uint32_t>(i), static_cast<double>(view_.shape[i]));
  return a;
}

Napi::Value NativeTensor::get_device(const Napi::CallbackInfo& info) {
  if (!view_.storage) return info.Env().Null();
  return Napi::String::New(info.Env(), view_.device().name());
}

Napi::Value NativeTensor::get_disposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), released_);
}

Napi::Value NativeTensor::release(const Napi::CallbackInfo& info) {
  if (!released_) {
    released_ = true;
    view_.storage.reset();
    sync_external_memory(info.Env());
  }
  return info.Env().Undefined();
}

// reshape(op, shape): a view with the same elements; one dimension may be -1 (inferred).
Napi::Value NativeTensor::reshape(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string op = arg_string(info[0], "reshape", "op");
  check_alive(op);
  if (!info[1].IsArray()) throw_error(env, Code::invalid_arg_type, op + ": shape must be an array of integers, got " + describe(info[1]));
  Napi::Array a = info[1].As<Napi::Array>();
  std::vector<int64_t> shape;
  int infer = -1;
  int64_t known = 1;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value e = a.Get(i);
    std::string item = "shape[" + std::to_string(i) + "]";
    if (e.IsNumber() && e.As<Napi::Number>().DoubleValue() == -1) {
      if (infer >= 0) throw_error(env, Code::shape, op + ": only one dimension may be -1, got " + describe(info[1]) + " with two");
      infer = static_cast<int>(i);
      shape.push_back(1);
      continue;
    }
    int64_t d = arg_integer(e, op, item.c_str(), 0, int64_t{1} << 53);
    if (d != 0 && known > (int64_t{1} << 62) / d)
      throw_error(env, Code::shape, op + ": shape " + describe(info[1]) + " has too many elements");
    shape.push_back(d);
    known *= d;
  }
  if (shape.size() > 16) throw_error(env, Code::shape, op + ": at most 16 dimensions, got " + std::to_string(shape.size()));
  int64_t numel = view_.numel();
  if (infer >= 0) {
    if (known == 0 || numel % known != 0)
      throw_error(env, Code::shape, op + ": cannot infer the -1 dimension of " + shape_str(shape) + " for a tensor of shape " +
                                        shape_str(view_.shape) + " (" + std::to_string(numel) + " elements)");
    shape[infer] = numel / known;
    known *= shape[infer];
  }
  if (known != numel)
    throw_error(env, Code::shape, op + ": cannot reshape a tensor of shape " + shape_str(view_.shape) + " (" +
                                      std::to_string(numel) + " elements) into " + shape_str(shape) + " (" +
                                      std::to_string(known) + " elements)");
  TensorView v = view_;
  v.shape = shape;
  return wrap(env, std::move(v));
}

// slice(op, start, end): rows [start, end) of the leading dimension, as a view. Follows
// Array.prototype.slice: negative indices count from the end, out-of-range ones are clamped.
Napi::Value NativeTensor::slice(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string op = arg_string(info[0], "slice", "op");
  check_alive(op);
  if (view_.shape.empty()) throw_error(env, Code::shape, op + ": cannot slice a 0-d tensor (shape [])");
  int64_t rows = view_.shape[0];
  const int64_t big = int64_t{1} << 53;
  auto index = [&](const Napi::Value& v, const char* name, int64_t dflt) {
    if (v.IsUndefined()) return dflt;
    int64_t i = arg_integer(v, op, name, -big, big);
    if (i < 0) i += rows;
    return std::min(std::max<int64_t>(i, 0), rows);
  };
  int64_t start = index(info[1], "start", 0);
  int64_t end = std::max(start, index(info[2], "end", rows));
  TensorView v = view_;
  int64_t row_elems = rows ? view_.numel() / rows : 0;
  v.shape[0] = end - start;
  v.offset += start * row_elems;
  return wrap(env, std::move(v));
}

}  // namespace sparq
