// Element types shared by every backend. Codes are stable: the TypeScript layer uses the names.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace sparq {

enum class DType : uint8_t { f32 = 0, f16, bf16, i8, u8, i32, u32, i64, f64 };
constexpr int kNumDTypes = 9;

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: case DType::i32: case DType::u32: return 4;
    case DType::f16: case DType::bf16: return 2;
    case DType::i8: case DType::u8: return 1;
    case DType::i64: case DType::f64: return 8;
  }
  return 0;
}

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "float32";
    case DType::f16: return "float16";
    case DType::bf16: return "bfloat16";
    case DType::i8: return "int8";
    case DType::u8: return "uint8";
    case DType::i32: return "int32";
    case DType::u32: return "uint32";
    case DType::i64: return "int64";
    case DType::f64: return "float64";
  }
  return "?";
}

inline bool dtype_from_name(const std::string& s, DType* out) {
  for (int i = 0; i < kNumDTypes; ++i) {
    if (s == dtype_name(static_cast<DType>(i))) { *out = static_cast<DType>(i); return true; }
  }
  return false;
}

// The compute floats of the dense kernels (attention, random): float32 and the 16-bit floats.
inline bool dtype_is_float(DType t) { return t == DType::f32 || t == DType::f16 || t == DType::bf16; }
// Any floating-point dtype, float64 included (can hold NaN).
inline bool dtype_is_floating(DType t) { return dtype_is_float(t) || t == DType::f64; }

}  // namespace sparq
