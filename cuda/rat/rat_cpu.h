// CPU building blocks shared by the RAT kernels (scan_cpu.cc, attention_cpu.cc, cache_cpu.cc):
// the float32 gate, InterRoPE tables and rotation, rounding to the I/O dtype. Everything is an
// always-inline template over the ISA traits of the dense family (attention_cpu_kernels.h), so each
// level's entry point gets its own vectorised copy.
#pragma once
#include <cmath>
#include <cstdint>
#include <new>
#include <vector>

#include "../attention/attention_cpu_kernels.h"
#include "rat.h"

namespace sparq {
namespace rat_cpu {

using attn_cpu::exp_f32;
using attn_cpu::load_f32;
using attn_cpu::store_f32;

// A row of D values as float32: the row itself for float32 (no copy), else converted into buf.
template <class Isa, typename T>
SPARQ_AI const float* row_f32(const T* src, float* buf, int64_t D) {
  if constexpr (std::is_same<T, float>::value) {
    return src;
  } else {
    load_f32<Isa>(src, buf, D);
    return buf;
  }
}

// The gate of one token row: z <- sigmoid(z + bias) in place (bias may be nullptr). Straight
// loops without branches so that GCC vectorises them, exp included.
SPARQ_AI void gate_row(float* __restrict z, const float* __restrict bias, int64_t D) {
  if (bias)
    for (int64_t d = 0; d < D; ++d) z[d] += bias[d];
  for (int64_t d = 0; d < D; ++d) z[d] = 1.0f / (1.0f + exp_f32(-z[d]));
}

// One step of the recurrence for D channels: s = g * s + (1 - g) * x, with s taken as 0 when
// `reset` (the first token of a chunk).
SPARQ_AI void state_step(float* __restrict s, const float* __restrict x, const float* __restrict g, bool reset, int64_t D) {
  if (reset) {
    for (int64_t d = 0; d < D; ++d) s[d] = (1.0f - g[d]) * x[d];
  } else {
    for (int64_t d = 0; d < D; ++d) s[d] = g[d] * s[d] + (1.0f - g[d]) * x[d];
  }
}

// The value the dtype stores for x, back in float32 (what the attention reads from a T tensor).
template <typename T>
SPARQ_AI float rounded(float x) {
  if constexpr (std::is_same<T, bf16_t>::value) return bf16_to_f32(f32_to_bf16(x));
  else if constexpr (std::is_same<T, f16_t>::value) return f16_to_f32(f32_to_f16(x));
  else return x;
}

// x[0, D) <- the values the dtype stores for them (a no-op for float32): rotated queries and keys
// are rounded like a RoPE op in that dtype would store them, on every backend.
template <typename T>
SPARQ_AI void round_row(float* x, int64_t D) {
  if constexpr (!std::is_same<T, float>::value)
    for (int64_t d = 0; d < D; ++d) x[d] = rounded<T>(x[d]);
}

// cos/sin of InterRoPE: rotate-half over all D dims, pair i at angle pos * base^(-2i / D), angles
// in double as rope.h. Row r of the table holds position positions[r] (or r when built for a range).
// Empty when base == 0 (no RoPE).
struct RopeTable {
  std::vector<float> cos, sin;  // [rows][D / 2]
  int64_t half = 0;
  bool on = false;
  // Rows for positions [0, n). False when out of memory.
  bool build(double base, int64_t D, int64_t n) {
    std::vector<int64_t> pos;
    try {
      pos.resize(static_cast<size_t>(n));
    } catch (const std::bad_alloc&) {
      return false;
    }
    for (int64_t i = 0; i < n; ++i) pos[i] = i;
    return build_for(base, D, pos);
  }
  bool build_for(double base, int64_t D, const std::vector<int64_t>& positions) {
    on = base != 0.0;
    half = D / 2;
    if (!on) return true;
    const int64_t n = static_cast<int64_t>(positions.size());
    try {
      cos.resize(static_cast<size_t>(n * half));
      sin.resize(static_cast<size_t>(n * half));
    } catch (const std::bad_alloc&) {
      return false;
    }
    std::vector<double> inv(static_cast<size_t>(half));
    for (int64_t i = 0; i < half; ++i) inv[i] = std::pow(base, -2.0 * static_cast<double>(i) / static_cast<double>(D));
    for (int64_t r = 0; r < n; ++r)
      for (int64_t i = 0; i < half; ++i) {
        const double th = static_cast<double>(positions[r]) * inv[i];
        cos[r * half + i] = static_cast<float>(std::cos(th));
        sin[r * half + i] = static_cast<float>(std::sin(th));
      }
    return true;
  }
  const float* c(int64_t row) const { return cos.data() + row * half; }
  const float* s(int64_t row) const { return sin.data() + row * half; }
};

// y = R x for one row of D floats with the table's row `pos` (y may not alias x); a copy when the
// table is off.
SPARQ_AI void rotate(const RopeTable& rt, int64_t pos, const float* __restrict x, float* __restrict y, int64_t D) {
  if (!rt.on) {
    for (int64_t d = 0; d < D; ++d) y[d] = x[d];
    return;
  }
  const int64_t h = D / 2;
  const float* __restrict c = rt.c(pos);
  const float* __restrict s = rt.s(pos);
  for (int64_t i = 0; i < h; ++i) {
    y[i] = x[i] * c[i] - x[i + h] * s[i];
    y[i + h] = x[i] * s[i] + x[i + h] * c[i];
  }
}

SPARQ_AI float dot(const float* __restrict a, const float* __restrict b, int64_t D) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t d = 0;
  for (; d + 8 <= D; d += 8)
    for (int i = 0; i < 8; ++i) acc[i] += a[d + i] * b[d + i];
  float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; d < D; ++d) s += a[d] * b[d];
  return s;
}

// Folds one more key (score a, value row v) into an online-softmax state (m, l, o[D]).
SPARQ_AI void softmax_add(float a, const float* __restrict v, float& m, float& l, float* __restrict o, int64_t D) {
  const bool first = m == attn_cpu::kNegInf;
  const float mnew = first || a > m ? a : m;  // NaN in a makes mnew NaN only when nothing was seen
  const float alpha = first ? 0.0f : exp_f32(m - mnew);
  const float p = exp_f32(a - mnew);
  for (int64_t d = 0; d < D; ++d) o[d] = o[d] * alpha + p * v[d];
  l = l * alpha + p;
  m = mnew;
}

}  // namespace rat_cpu
}  // namespace sparq
