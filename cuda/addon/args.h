// Argument checks, once, for every op. Messages name the op, the argument, what was expected and
// what came: "sparq.zeros: shape[1] must be a non-negative integer, got -3".
#pragma once
#include <napi.h>

#include <string>
#include <vector>

#include "../core/device.h"
#include "../core/dtype.h"
#include "../core/storage.h"

namespace sparq {

// A short description of a JavaScript value for error messages.
std::string describe(const Napi::Value& v);

std::string arg_string(const Napi::Value& v, const std::string& op, const char* name);
double arg_number(const Napi::Value& v, const std::string& op, const char* name);        // finite
double arg_number_any(const Napi::Value& v, const std::string& op, const char* name);    // NaN/Inf allowed
int64_t arg_integer(const Napi::Value& v, const std::string& op, const char* name, int64_t lo, int64_t hi);
DType arg_dtype(const Napi::Value& v, const std::string& op, const char* name);
Device arg_device(const Napi::Value& v, const std::string& op, const char* name);
std::vector<int64_t> arg_shape(const Napi::Value& v, const std::string& op, const char* name);
uint64_t arg_seed(const Napi::Value& v, const std::string& op, const char* name);

std::string shape_str(const std::vector<int64_t>& shape);

// The view held by a NativeTensor argument; throws ERR_SPARQ_DISPOSED for a disposed tensor.
const TensorView& arg_tensor(const Napi::Value& v, const std::string& op, const char* name);

}  // namespace sparq
