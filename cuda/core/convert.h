// Element conversions between dtypes, shared by the CPU and CUDA cast kernels.
// Rules: floats round to nearest even; float -> integer truncates toward zero and saturates to the
// target's range, NaN -> 0; integer -> integer saturates; integer -> float16/bfloat16 rounds once
// (through double, exact for every source up to 2^53). float64 sources round once to the target
// (never through float32); everything but int64 reaches float64 exactly.
#pragma once
#include <cstdint>
#include <type_traits>

#include "half.h"

namespace sparq {

// Storage types of the 16-bit floats: distinct so overloads cannot confuse them with integers.
struct f16_t { uint16_t bits; };
struct bf16_t { uint16_t bits; };

template <typename T> struct IntLimits;
template <> struct IntLimits<int8_t> { static constexpr int64_t lo = -128, hi = 127; };
template <> struct IntLimits<uint8_t> { static constexpr int64_t lo = 0, hi = 255; };
template <> struct IntLimits<int32_t> { static constexpr int64_t lo = -2147483648LL, hi = 2147483647LL; };
template <> struct IntLimits<uint32_t> { static constexpr int64_t lo = 0, hi = 4294967295LL; };

// ---- every source to a canonical form ----
SPARQ_HD float to_float(float v) { return v; }
SPARQ_HD float to_float(f16_t v) { return f16_to_f32(v.bits); }
SPARQ_HD float to_float(bf16_t v) { return bf16_to_f32(v.bits); }

template <typename S> struct IsFloatSrc { static constexpr bool value = false; };
template <> struct IsFloatSrc<float> { static constexpr bool value = true; };
template <> struct IsFloatSrc<f16_t> { static constexpr bool value = true; };
template <> struct IsFloatSrc<bf16_t> { static constexpr bool value = true; };

template <typename S> struct IsF64 { static constexpr bool value = std::is_same<S, double>::value; };

// ---- conversion to each destination ----
template <typename D> struct Convert;

template <> struct Convert<double> {
  template <typename S> SPARQ_HD static double from(S v) {
    if constexpr (IsFloatSrc<S>::value) return static_cast<double>(to_float(v));
    else return static_cast<double>(v);  // int64 rounds to nearest even; the rest are exact
  }
};

template <> struct Convert<float> {
  template <typename S> SPARQ_HD static float from(S v) {
    if constexpr (IsFloatSrc<S>::value) return to_float(v);
    else return static_cast<float>(v);  // integer -> float32 rounds to nearest even
  }
};

template <> struct Convert<f16_t> {
  template <typename S> SPARQ_HD static f16_t from(S v) {
    if constexpr (IsFloatSrc<S>::value) {
      if constexpr (sizeof(S) == 2 && !std::is_same<S, bf16_t>::value) return v;
      else return f16_t{f32_to_f16(to_float(v))};
    } else {
      return f16_t{f64_to_f16(static_cast<double>(v))};
    }
  }
};

template <> struct Convert<bf16_t> {
  template <typename S> SPARQ_HD static bf16_t from(S v) {
    if constexpr (IsFloatSrc<S>::value) {
      if constexpr (std::is_same<S, bf16_t>::value) return v;
      else return bf16_t{f32_to_bf16(to_float(v))};
    } else {
      return bf16_t{f64_to_bf16(static_cast<double>(v))};
    }
  }
};

// Float -> int64: truncate toward zero, saturate, NaN -> 0.
SPARQ_HD int64_t saturate_float_to_i64(double d, int64_t lo, int64_t hi) {
  if (!(d == d)) return 0;
  if (d <= static_cast<double>(lo)) return lo;
  if (d >= static_cast<double>(hi)) return hi;  // for int64, hi rounds up to 2^63: clamped here
  return static_cast<int64_t>(d);
}

// float32 -> a 32-bit-or-narrower integer with the same rules, written as selects so that CPU
// loops vectorise. Bounds are exact in float32: lo is a power of two (or 0) and hi + 1 is one.
template <typename D>
SPARQ_HD D saturate_f32(float f) {
  constexpr float lo = static_cast<float>(IntLimits<D>::lo);
  constexpr float hi_excl = static_cast<float>(IntLimits<D>::hi) + 1.0f;
  float v = f == f ? f : 0.0f;
  v = v < lo ? lo : v;
  D t = static_cast<D>(v < hi_excl ? v : 0.0f);  // in range: truncate (never out of range here)
  return v >= hi_excl ? static_cast<D>(IntLimits<D>::hi) : t;
}

template <typename D> struct ConvertInt {
  template <typename S> SPARQ_HD static D from(S v) {
    constexpr int64_t lo = IntLimits<D>::lo, hi = IntLimits<D>::hi;
    if constexpr (IsFloatSrc<S>::value) {
      return saturate_f32<D>(to_float(v));
    } else if constexpr (IsF64<S>::value) {
      return static_cast<D>(saturate_float_to_i64(v, lo, hi));
    } else {
      int64_t w = static_cast<int64_t>(v);
      return static_cast<D>(w < lo ? lo : (w > hi ? hi : w));
    }
  }
};
template <> struct Convert<int8_t> : ConvertInt<int8_t> {};
template <> struct Convert<uint8_t> : ConvertInt<uint8_t> {};
template <> struct Convert<int32_t> : ConvertInt<int32_t> {};
template <> struct Convert<uint32_t> : ConvertInt<uint32_t> {};

template <> struct Convert<int64_t> {
  template <typename S> SPARQ_HD static int64_t from(S v) {
    if constexpr (IsFloatSrc<S>::value) {
      return saturate_float_to_i64(static_cast<double>(to_float(v)), INT64_MIN, INT64_MAX);
    } else if constexpr (IsF64<S>::value) {
      return saturate_float_to_i64(v, INT64_MIN, INT64_MAX);
    } else {
      return static_cast<int64_t>(v);  // every other integer type fits
    }
  }
};

// Convert a double (a JavaScript number) to dtype D, with the same rules.
template <typename D> SPARQ_HD D from_double(double d) {
  if constexpr (std::is_same<D, double>::value) return d;
  else if constexpr (std::is_same<D, float>::value) return static_cast<float>(d);
  else if constexpr (std::is_same<D, f16_t>::value) return f16_t{f64_to_f16(d)};
  else if constexpr (std::is_same<D, bf16_t>::value) return bf16_t{f64_to_bf16(d)};
  else if constexpr (std::is_same<D, int64_t>::value) return saturate_float_to_i64(d, INT64_MIN, INT64_MAX);
  else return static_cast<D>(saturate_float_to_i64(d, IntLimits<D>::lo, IntLimits<D>::hi));
}

}  // namespace sparq
