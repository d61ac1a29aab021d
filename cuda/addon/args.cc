#include "args.h"

#include <cmath>
#include <sstream>

#include "addon_data.h"
#include "tensor_handle.h"

namespace sparq {
namespace {
constexpr double kMaxSafe = 9007199254740991.0;  // Number.MAX_SAFE_INTEGER

std::string number_str(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  std::ostringstream os;
  os.precision(17);
  os << d;
  return os.str();
}

[[noreturn]] void bad_type(const Napi::Value& v, const std::string& op, const char* name, const char* expected) {
  throw_error(v.Env(), Code::invalid_arg_type,
              op + ": " + name + " must be " + expected + ", got " + describe(v));
}
}  // namespace

std::string describe(const Napi::Value& v) {
  switch (v.Type()) {
    case napi_undefined: return "undefined";
    case napi_null: return "null";
    case napi_boolean: return v.As<Napi::Boolean>().Value() ? "true" : "false";
    case napi_number: return "the number " + number_str(v.As<Napi::Number>().DoubleValue());
    case napi_string: {
      std::string s = v.As<Napi::String>().Utf8Value();
      if (s.size() > 40) s = s.substr(0, 40) + "...";
      return "the string '" + s + "'";
    }
    case napi_bigint: {
      bool lossless;
      return "the bigint " + std::to_string(v.As<Napi::BigInt>().Int64Value(&lossless)) + "n";
    }
    case napi_symbol: return "a symbol";
    case napi_function: return "a function";
    case napi_external: return "an external";
    case napi_object: {
      if (v.IsArray()) return "an array of length " + std::to_string(v.As<Napi::Array>().Length());
      if (v.IsTypedArray()) return "a typed array";
      Napi::Value ctor = v.As<Napi::Object>().Get("constructor");
      if (ctor.IsFunction()) {
        std::string n = ctor.As<Napi::Object>().Get("name").ToString().Utf8Value();
        if (!n.empty() && n != "Object") return "an instance of " + n;
      }
      return "an object";
    }
    default: return "an unknown value";
  }
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string arg_string(const Napi::Value& v, const std::string& op, const char* name) {
  if (!v.IsString()) bad_type(v, op, name, "a string");
  return v.As<Napi::String>().Utf8Value();
}

double arg_number_any(const Napi::Value& v, const std::string& op, const char* name) {
  if (!v.IsNumber()) bad_type(v, op, name, "a number");
  return v.As<Napi::Number>().DoubleValue();
}

double arg_number(const Napi::Value& v, const std::string& op, const char* name) {
  double d = arg_number_any(v, op, name);
  if (!std::isfinite(d))
    throw_error(v.Env(), Code::invalid_arg_value, op + ": " + name + " must be a finite number, got " + number_str(d));
  return d;
}

int64_t arg_integer(const Napi::Value& v, const std::string& op, const char* name, int64_t lo, int64_t hi) {
  double d = arg_number_any(v, op, name);
  if (!(std::floor(d) == d) || d < static_cast<double>(lo) || d > static_cast<double>(hi) || std::fabs(d) > kMaxSafe)
    throw_error(v.Env(), Code::invalid_arg_value,
                op + ": " + name + " must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                    "], got " + number_str(d));
  return static_cast<int64_t>(d);
}

DType arg_dtype(const Napi::Value& v, const std::string& op, const char* name) {
  if (!v.IsString()) bad_type(v, op, name, "a dtype name ('float32', 'float64', 'float16', 'bfloat16', 'int8', 'uint8', 'int32', 'uint32' or 'int64')");
  DType t;
  std::string s = v.As<Napi::String>().Utf8Value();
  if (!dtype_from_name(s, &t))
    throw_error(v.Env(), Code::dtype,
                op + ": " + name + " must be one of 'float32', 'float64', 'float16', 'bfloat16', 'int8', 'uint8', "
                "'int32', 'uint32', 'int64', got '" + s + "'");
  return t;
}

Device arg_device(const Napi::Value& v, const std::string& op, const char* name) {
  if (!v.IsString()) bad_type(v, op, name, "a device ('cpu', 'cuda' or 'cuda:N')");
  std::string s = v.As<Napi::String>().Utf8Value();
  if (s == "cpu") return Device::cpu();
  if (s == "cuda") return Device::cuda(0);
  if (s.rfind("cuda:", 0) == 0 && s.size() > 5 && s.size() <= 8 && s.find_first_not_of("0123456789", 5) == std::string::npos)
    return Device::cuda(std::stoi(s.substr(5)));
  throw_error(v.Env(), Code::invalid_arg_value, op + ": " + name + " must be 'cpu', 'cuda' or 'cuda:N', got '" + s + "'");
}

std::vector<int64_t> arg_shape(const Napi::Value& v, const std::string& op, const char* name) {
  if (!v.IsArray()) bad_type(v, op, name, "an array of non-negative integers");
  Napi::Array a = v.As<Napi::Array>();
  uint32_t n = a.Length();
  if (n > 16)
    throw_error(v.Env(), Code::shape, op + ": " + name + " may have at most 16 dimensions, got " + std::to_string(n));
  std::vector<int64_t> shape(n);
  for (uint32_t i = 0; i < n; ++i) {
    std::string item = std::string(name) + "[" + std::to_string(i) + "]";
    Napi::Value e = a.Get(i);
    if (!e.IsNumber()) bad_type(e, op, item.c_str(), "a non-negative integer");
    double d = e.As<Napi::Number>().DoubleValue();
    if (!(std::floor(d) == d) || d < 0 || d > kMaxSafe)
      throw_error(v.Env(), Code::shape, op + ": " + item + " must be a non-negative integer, got " + number_str(d));
    shape[i] = static_cast<int64_t>(d);
  }
  return shape;
}

uint64_t arg_seed(const Napi::Value& v, const std::string& op, const char* name) {
  if (v.IsBigInt()) {
    bool lossless = false;
    uint64_t s = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless)
      throw_error(v.Env(), Code::invalid_arg_value, op + ": " + name + " must fit in 64 unsigned bits, got " + describe(v));
    return s;
  }
  if (!v.IsNumber()) bad_type(v, op, name, "a non-negative integer or a bigint");
  return static_cast<uint64_t>(arg_integer(v, op, name, 0, static_cast<int64_t>(kMaxSafe)));
}

const TensorView& arg_tensor(const Napi::Value& v, const std::string& op, const char* name) {
  Napi::Env env = v.Env();
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(addon_data(env).tensor_class.Value()))
    bad_type(v, op, name, "a sparq Tensor");
  NativeTensor* t = Napi::ObjectWrap<NativeTensor>::Unwrap(v.As<Napi::Object>());
  if (t->released())
    throw_error(env, Code::disposed, op + ": " + name + " has been disposed");
  return t->view();
}

}  // namespace sparq
