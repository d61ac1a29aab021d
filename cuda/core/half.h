// float16 / bfloat16 conversions, round to nearest even, shared bit for bit by the CPU and CUDA
// backends (and mirrored in lib/dtype.ts). Narrowing: NaN keeps its sign and top payload bits and
// is made quiet. Widening: float16 NaN becomes a quiet float32 NaN with its payload; bfloat16 is
// widened by a plain shift (its NaNs stay as they are).
#pragma once
#include "hd.h"

namespace sparq {

// ---- float16 ----
SPARQ_HD uint16_t f32_to_f16(float f) {
  uint32_t x = f32_bits(f);
  uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  uint32_t ax = x & 0x7FFFFFFFu;
  if (ax >= 0x7F800000u) {  // Inf or NaN
    return ax == 0x7F800000u ? static_cast<uint16_t>(sign | 0x7C00u)
                             : static_cast<uint16_t>(sign | 0x7E00u | ((ax >> 13) & 0x3FFu));
  }
  if (ax >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00u);  // >= 65520 rounds to Inf
  if (ax >= 0x38800000u) {  // normal half: rebias the exponent, round the 13 dropped bits
    uint32_t r = ax - 0x38000000u;
    r = (r + 0x0FFFu + ((r >> 13) & 1u)) >> 13;
    return static_cast<uint16_t>(sign | r);
  }
  uint32_t e = ax >> 23;
  if (e < 102) return sign;  // below 2^-25: rounds to zero
  // Subnormal half: value / 2^-24, i.e. the 24-bit significand shifted right by 126 - e (14..24).
  uint32_t m = (ax & 0x7FFFFFu) | 0x800000u;
  uint32_t shift = 126u - e;
  uint32_t k = m >> shift;
  uint32_t rem = m & ((1u << shift) - 1u);
  uint32_t halfway = 1u << (shift - 1u);
  if (rem > halfway || (rem == halfway && (k & 1u))) ++k;
  return static_cast<uint16_t>(sign | k);
}

SPARQ_HD float f16_to_f32(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t e = (h >> 10) & 0x1Fu;
  uint32_t m = h & 0x3FFu;
  // Inf, or NaN made quiet with its payload kept (what F16C's vcvtph2ps does).
  if (e == 31) return f32_from_bits(sign | 0x7F800000u | (m ? 0x400000u | (m << 13) : 0u));
  if (e == 0) {
    if (m == 0) return f32_from_bits(sign);
    int exp = 1;
    while (!(m & 0x400u)) { m <<= 1; --exp; }  // normalise the subnormal
    return f32_from_bits(sign | (static_cast<uint32_t>(exp + 112) << 23) | ((m & 0x3FFu) << 13));
  }
  return f32_from_bits(sign | ((e + 112u) << 23) | (m << 13));
}

// ---- bfloat16 ----
SPARQ_HD uint16_t f32_to_bf16(float f) {
  uint32_t x = f32_bits(f);
  uint32_t rounded = (x + 0x7FFFu + ((x >> 16) & 1u)) >> 16;
  uint32_t quiet_nan = (x >> 16) | 0x0040u;
  // A select rather than an early return, so that CPU loops vectorise.
  return static_cast<uint16_t>((x & 0x7FFFFFFFu) > 0x7F800000u ? quiet_nan : rounded);
}

SPARQ_HD float bf16_to_f32(uint16_t h) { return f32_from_bits(static_cast<uint32_t>(h) << 16); }

// ---- from double, rounded once (used for JavaScript numbers and integer sources) ----
// A small IEEE format with EXP_BITS exponent bits and MANT_BITS stored mantissa bits.
template <int EXP_BITS, int MANT_BITS>
SPARQ_HD uint16_t f64_to_small(double d) {
  constexpr int kBias = (1 << (EXP_BITS - 1)) - 1;
  constexpr int kEmin = 1 - kBias;
  constexpr uint32_t kInf = ((1u << EXP_BITS) - 1u) << MANT_BITS;
  uint64_t x = f64_bits(d);
  uint16_t sign = static_cast<uint16_t>((x >> 63) << (EXP_BITS + MANT_BITS));
  uint64_t ax = x & 0x7FFFFFFFFFFFFFFFull;
  uint64_t mant = ax & 0xFFFFFFFFFFFFFull;
  int biased = static_cast<int>(ax >> 52);
  if (biased == 0x7FF) {
    if (mant == 0) return static_cast<uint16_t>(sign | kInf);
    uint32_t quiet = 1u << (MANT_BITS - 1);
    return static_cast<uint16_t>(sign | kInf | quiet | static_cast<uint32_t>(mant >> (52 - MANT_BITS)));
  }
  if (ax == 0) return sign;
  uint64_t m = biased ? (mant | (1ull << 52)) : mant;
  int E = (biased ? biased : 1) - 1023;  // exponent of bit 52 of m
  if (E > kBias) return static_cast<uint16_t>(sign | kInf);
  int shift = 52 - MANT_BITS + (E >= kEmin ? 0 : kEmin - E);
  if (shift >= 54) return sign;  // below half the smallest subnormal
  uint64_t k = m >> shift;
  uint64_t rem = m & ((1ull << shift) - 1ull);
  uint64_t halfway = 1ull << (shift - 1);
  if (rem > halfway || (rem == halfway && (k & 1ull))) ++k;
  uint64_t bits = E >= kEmin ? (static_cast<uint64_t>(E - kEmin) << MANT_BITS) + k : k;
  if (bits >= kInf) bits = kInf;
  return static_cast<uint16_t>(sign | bits);
}

SPARQ_HD uint16_t f64_to_f16(double d) { return f64_to_small<5, 10>(d); }
SPARQ_HD uint16_t f64_to_bf16(double d) { return f64_to_small<8, 7>(d); }

}  // namespace sparq
