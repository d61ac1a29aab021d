// CPU building blocks of dense attention: the ISA levels the hot code is compiled for, a
// vectorisable exp, float16/bfloat16 row conversions and the register-blocked micro-kernels.
//
// Everything here is `always_inline` templates: a level's entry point (a function compiled with
// target("arch=x86-64-v4") etc., see SPARQ_ATTN_TARGET_*) inlines them, so the code below is
// vectorised for that level with that level's register blocking (Isa* traits). Loops are plain
// C++ that GCC vectorises (contiguous, no calls); the micro-kernels hold their accumulators in
// GCC vector types, one register each.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <type_traits>

#include "../core/convert.h"
#include "../core/half.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#define SPARQ_AI inline __attribute__((always_inline))

namespace sparq {
namespace attn_cpu {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// ---------------------------------------------------------------------------------------------
// ISA levels. Picked per op call: the hardware's best, lowered by SPARQ_CPU_ISA=baseline (the
// portable code, as for the casts) or SPARQ_CPU_ISA=x86-64-v3 (the AVX2 code on an AVX-512 CPU;
// for tests and comparisons).
enum class CpuLevel { baseline, v3, v4 };

inline CpuLevel hardware_level() {
#if defined(__x86_64__)
  static const CpuLevel level = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) return CpuLevel::v4;
    if (__builtin_cpu_supports("x86-64-v3")) return CpuLevel::v3;
    return CpuLevel::baseline;
  }();
  return level;
#else
  return CpuLevel::baseline;
#endif
}

inline CpuLevel cpu_level() {
  CpuLevel hw = hardware_level();
  const char* env = std::getenv("SPARQ_CPU_ISA");
  if (env && std::strcmp(env, "baseline") == 0) return CpuLevel::baseline;
  if (env && std::strcmp(env, "x86-64-v3") == 0 && hw == CpuLevel::v4) return CpuLevel::v3;
  return hw;
}

#if defined(__x86_64__)
#define SPARQ_ATTN_TARGET_V4 __attribute__((target("arch=x86-64-v4")))
#define SPARQ_ATTN_TARGET_V3 __attribute__((target("arch=x86-64-v3")))
#define SPARQ_ATTN_HAVE_LEVELS 1
#else
#define SPARQ_ATTN_HAVE_LEVELS 0
#endif

// Register blocking per level, measured on a Sapphire Rapids core: the accumulator tiles take 8-16
// of the vector registers (32 zmm on AVX-512, 16 ymm on AVX2, 16 xmm on SSE2), leaving room for
// the operands. kLanes: floats per vector. Scores (wide): kQkKeys keys x kQkCols query columns;
// O += P V: kPvRows rows x kPvCols dims; scores (narrow): kDotRows rows x 4 keys.
struct IsaBaseline {
  static constexpr int kLanes = 4, kQkKeys = 4, kQkCols = 8, kPvRows = 4, kPvCols = 8, kDotRows = 2;
  static constexpr bool kF16c = false;
};
struct IsaV3 {
  static constexpr int kLanes = 8, kQkKeys = 4, kQkCols = 16, kPvRows = 4, kPvCols = 16, kDotRows = 2;
  static constexpr bool kF16c = true;
};
struct IsaV4 {
  static constexpr int kLanes = 16, kQkKeys = 4, kQkCols = 64, kPvRows = 4, kPvCols = 64, kDotRows = 4;
  static constexpr bool kF16c = true;
};

// ---------------------------------------------------------------------------------------------
// exp for float32 that GCC vectorises (std::exp is a call): exp(x) = 2^n * e^r with
// n = round(x / ln 2), r = x - n ln 2 (Cody-Waite, two constants) and e^r from Cephes' expf
// minimax polynomial. Relative error below 1e-7 on [-87.3, 88.37] (measured against double exp);
// below -87.3 (and for -inf) it returns 0, from 88.37 to ln(FLT_MAX) exp(88.37), above that +inf;
// NaN gives NaN. Attention only needs x <= 0.
SPARQ_AI float exp_f32(float x) {
  const float kMin = -87.3365448f, kMaxArg = 88.3762589f, kOverflow = 88.7228394f;
  const float kLog2e = 1.44269504088896341f, kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  const float kRound = 12582912.0f;  // 1.5 * 2^23: x + kRound rounds x to an integer
  float xc = x < kMin ? kMin : x;
  xc = xc > kMaxArg ? kMaxArg : xc;
  float t = xc * kLog2e + kRound;
  float n = t - kRound;
  int32_t ni = static_cast<int32_t>(f32_bits(t) - f32_bits(kRound));  // n as an integer, in [-126, 127]
  float r = xc - n * kLn2Hi;
  r = r - n * kLn2Lo;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  float y = p * f32_from_bits(static_cast<uint32_t>(ni + 127) << 23);
  y = x < kMin ? 0.0f : y;
  y = x > kOverflow ? std::numeric_limits<float>::infinity() : y;
  return x != x ? x : y;
}

// ---------------------------------------------------------------------------------------------
// Row conversions to and from float32. T is float, f16_t or bf16_t (cuda/core/convert.h).
#if defined(__x86_64__)
// F16C: 8 lanes per instruction, round to nearest even and NaN rules as half.h.
__attribute__((target("avx,f16c"))) inline void f16_to_f32_f16c(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  for (; i < n; ++i) dst[i] = f16_to_f32(src[i]);
}
__attribute__((target("avx,f16c"))) inline void f32_to_f16_f16c(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < n; ++i) dst[i] = f32_to_f16(src[i]);
}
#endif

template <class Isa, typename T>
SPARQ_AI void load_f32(const T* __restrict src, float* __restrict dst, int64_t n) {
  if constexpr (std::is_same<T, float>::value) {
    std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
  } else if constexpr (std::is_same<T, bf16_t>::value) {
    const uint16_t* s = reinterpret_cast<const uint16_t*>(src);
    for (int64_t i = 0; i < n; ++i) dst[i] = f32_from_bits(static_cast<uint32_t>(s[i]) << 16);
  } else {
    const uint16_t* s = reinterpret_cast<const uint16_t*>(src);
#if defined(__x86_64__)
    if constexpr (Isa::kF16c) {
      f16_to_f32_f16c(s, dst, n);
      return;
    }
#endif
    for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(s[i]);
  }
}

// dst = src * mul, rounded to nearest even into T.
template <class Isa, typename T>
SPARQ_AI void store_scaled(const float* __restrict src, float mul, T* __restrict dst, int64_t n) {
  if constexpr (std::is_same<T, float>::value) {
    for (int64_t i = 0; i < n; ++i) dst[i] = src[i] * mul;
  } else {
    uint16_t* d = reinterpret_cast<uint16_t*>(dst);
    constexpr int64_t kChunk = 256;
    float buf[kChunk];
    for (int64_t c = 0; c < n; c += kChunk) {
      int64_t m = n - c < kChunk ? n - c : kChunk;
      for (int64_t i = 0; i < m; ++i) buf[i] = src[c + i] * mul;
      if constexpr (std::is_same<T, bf16_t>::value) {
        for (int64_t i = 0; i < m; ++i) d[c + i] = f32_to_bf16(buf[i]);
      } else {
#if defined(__x86_64__)
        if constexpr (Isa::kF16c) {
          f32_to_f16_f16c(buf, d + c, m);
          continue;
        }
#endif
        for (int64_t i = 0; i < m; ++i) d[c + i] = f32_to_f16(buf[i]);
      }
    }
  }
}

template <class Isa, typename T>
SPARQ_AI void store_f32(const float* __restrict src, T* __restrict dst, int64_t n) {
  store_scaled<Isa>(src, 1.0f, dst, n);
}

// True when x[0, n) holds no Inf or NaN (x - x is 0 exactly for finite x).
SPARQ_AI bool all_finite(const float* __restrict x, int64_t n) {
  int bad = 0;
  for (int64_t i = 0; i < n; ++i) bad |= !(x[i] - x[i] == 0.0f);
  return bad == 0;
}

// ---------------------------------------------------------------------------------------------
// Micro-kernels. Row-major tiles; `ld*` are leading dimensions in floats. Their accumulators are
// GCC vectors of one register each (FloatVec<Isa::kLanes>): with plain float arrays GCC keeps
// them in registers on AVX-512 but spills them on SSE2, and never finds the horizontal sums.

template <int N>
struct FloatVec {
  typedef float type __attribute__((vector_size(N * sizeof(float))));
  // The same for unaligned memory, as the intrinsics' own loadu/storeu types are declared.
  typedef float unaligned __attribute__((vector_size(N * sizeof(float)), aligned(4), may_alias));
};

// (Vectors go by reference: by value they would draw GCC's ABI warnings in the baseline code.)
template <int N>
SPARQ_AI void load_vec(const float* p, typename FloatVec<N>::type& v) {
  v = *reinterpret_cast<const typename FloatVec<N>::unaligned*>(p);
}
template <int N>
SPARQ_AI void store_vec(const typename FloatVec<N>::type& v, float* p) {
  *reinterpret_cast<typename FloatVec<N>::unaligned*>(p) = v;
}

// Sum of the lanes: halves are added until four lanes are left.
template <int N>
SPARQ_AI float hsum(const typename FloatVec<N>::type& v) {
  if constexpr (N <= 4) {
    float s = v[0];
    for (int i = 1; i < N; ++i) s += v[i];
    return s;
  } else {
    typename FloatVec<N / 2>::type lo, hi;
    std::memcpy(&lo, &v, sizeof(lo));
    std::memcpy(&hi, reinterpret_cast<const char*>(&v) + sizeof(lo), sizeof(hi));
    lo += hi;
    return hsum<N / 2>(lo);
  }
}

// Scores, "wide" layout: st[j][c] = sum_d k[j][d] * qt[d][c] for KEYS keys j and COLS query
// columns c (qt is Q transposed and scaled). Inner loop: broadcast one key element, vector over
// the query columns; the KEYS x COLS accumulators stay in registers for the whole sum over D.
template <int LANES, int KEYS, int COLS>
SPARQ_AI void qk_wide_tile(const float* __restrict k, int64_t ldk, const float* __restrict qt, int64_t ldq,
                           int64_t D, float* __restrict st) {
  using V = typename FloatVec<LANES>::type;
  constexpr int NV = COLS / LANES;
  V acc[KEYS][NV], q[NV];
  for (int r = 0; r < KEYS; ++r)
    for (int c = 0; c < NV; ++c) acc[r][c] = V{};
  for (int64_t d = 0; d < D; ++d) {
    for (int c = 0; c < NV; ++c) load_vec<LANES>(qt + d * ldq + c * LANES, q[c]);
    for (int r = 0; r < KEYS; ++r) {
      const float kv = k[r * ldk + d];
      for (int c = 0; c < NV; ++c) acc[r][c] += kv * q[c];
    }
  }
  for (int r = 0; r < KEYS; ++r)
    for (int c = 0; c < NV; ++c) store_vec<LANES>(acc[r][c], st + r * ldq + c * LANES);
}

// st[j][0, cols) for keys j < n; cols is a multiple of 16 (the padded row count).
template <class Isa>
SPARQ_AI void qk_wide(const float* __restrict k, int64_t ldk, int64_t n, const float* __restrict qt, int64_t cols,
                      int64_t D, float* __restrict st) {
  constexpr int L = Isa::kLanes, KB = Isa::kQkKeys, CB = Isa::kQkCols;
  int64_t c = 0;
  for (; c + CB <= cols; c += CB) {
    int64_t j = 0;
    for (; j + KB <= n; j += KB) qk_wide_tile<L, KB, CB>(k + j * ldk, ldk, qt + c, cols, D, st + j * cols + c);
    for (; j < n; ++j) qk_wide_tile<L, 1, CB>(k + j * ldk, ldk, qt + c, cols, D, st + j * cols + c);
  }
  for (; c < cols; c += 16) {
    int64_t j = 0;
    for (; j + KB <= n; j += KB) qk_wide_tile<L, KB, 16>(k + j * ldk, ldk, qt + c, cols, D, st + j * cols + c);
    for (; j < n; ++j) qk_wide_tile<L, 1, 16>(k + j * ldk, ldk, qt + c, cols, D, st + j * cols + c);
  }
}

// Scores, "narrow" layout for few query rows: s[r][j] = q[r] . k[j] for ROWS rows (stride ldq,
// output stride lds) and KEYS keys, vector over D with one accumulator register per (row, key).
template <int LANES, int ROWS, int KEYS>
SPARQ_AI void qk_dot_tile(const float* __restrict q, int64_t ldq, const float* __restrict k, int64_t ldk, int64_t D,
                          float* __restrict s, int64_t lds) {
  using V = typename FloatVec<LANES>::type;
  V acc[ROWS][KEYS];
  for (int r = 0; r < ROWS; ++r)
    for (int j = 0; j < KEYS; ++j) acc[r][j] = V{};
  int64_t d = 0;
  for (; d + LANES <= D; d += LANES) {
    V kv[KEYS], qv;
    for (int j = 0; j < KEYS; ++j) load_vec<LANES>(k + j * ldk + d, kv[j]);
    for (int r = 0; r < ROWS; ++r) {
      load_vec<LANES>(q + r * ldq + d, qv);
      for (int j = 0; j < KEYS; ++j) acc[r][j] += qv * kv[j];
    }
  }
  for (int r = 0; r < ROWS; ++r)
    for (int j = 0; j < KEYS; ++j) {
      float sum = hsum<LANES>(acc[r][j]);
      for (int64_t e = d; e < D; ++e) sum += q[r * ldq + e] * k[j * ldk + e];
      s[r * lds + j] = sum;
    }
}

// s[r][j] for ROWS rows and keys j < n.
template <class Isa, int ROWS>
SPARQ_AI void qk_dot(const float* __restrict q, int64_t ldq, const float* __restrict k, int64_t ldk, int64_t n,
                     int64_t D, float* __restrict s, int64_t lds) {
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) qk_dot_tile<Isa::kLanes, ROWS, 4>(q, ldq, k + j * ldk, ldk, D, s + j, lds);
  for (; j < n; ++j) qk_dot_tile<Isa::kLanes, ROWS, 1>(q, ldq, k + j * ldk, ldk, D, s + j, lds);
}

// o[r][0, COLS) += sum_{j in [j0, j1)} p(r, j) * v[j][0, COLS) for ROWS rows, where
// p(r, j) = p[r * p_row + j * p_key]. Inner loop: broadcast p, vector over the head dim.
template <int LANES, int ROWS, int COLS>
SPARQ_AI void pv_tile(const float* __restrict p, int64_t p_row, int64_t p_key, int64_t j0, int64_t j1,
                      const float* __restrict v, int64_t ldv, float* __restrict o, int64_t ldo) {
  using V = typename FloatVec<LANES>::type;
  constexpr int NV = COLS / LANES;
  V acc[ROWS][NV], vr[NV];
  for (int r = 0; r < ROWS; ++r)
    for (int c = 0; c < NV; ++c) load_vec<LANES>(o + r * ldo + c * LANES, acc[r][c]);
  for (int64_t j = j0; j < j1; ++j) {
    for (int c = 0; c < NV; ++c) load_vec<LANES>(v + j * ldv + c * LANES, vr[c]);
    for (int r = 0; r < ROWS; ++r) {
      const float pj = p[r * p_row + j * p_key];
      for (int c = 0; c < NV; ++c) acc[r][c] += pj * vr[c];
    }
  }
  for (int r = 0; r < ROWS; ++r)
    for (int c = 0; c < NV; ++c) store_vec<LANES>(acc[r][c], o + r * ldo + c * LANES);
}

// The last D % 16 columns, accumulated in memory.
template <int ROWS>
SPARQ_AI void pv_tail(const float* __restrict p, int64_t p_row, int64_t p_key, int64_t j0, int64_t j1,
                      const float* __restrict v, int64_t ldv, float* __restrict o, int64_t ldo, int64_t cols) {
  for (int64_t j = j0; j < j1; ++j)
    for (int r = 0; r < ROWS; ++r) {
      const float pj = p[r * p_row + j * p_key];
      for (int64_t c = 0; c < cols; ++c) o[r * ldo + c] += pj * v[j * ldv + c];
    }
}

// ROWS rows, all over keys [j0, j1), every column of D.
template <class Isa, int ROWS>
SPARQ_AI void pv_rows(const float* __restrict p, int64_t p_row, int64_t p_key, int64_t j0, int64_t j1,
                      const float* __restrict v, int64_t ldv, float* __restrict o, int64_t ldo, int64_t D) {
  constexpr int L = Isa::kLanes, CB = Isa::kPvCols;
  int64_t c = 0;
  for (; c + CB <= D; c += CB) pv_tile<L, ROWS, CB>(p, p_row, p_key, j0, j1, v + c, ldv, o + c, ldo);
  for (; c + 16 <= D; c += 16) pv_tile<L, ROWS, 16>(p, p_row, p_key, j0, j1, v + c, ldv, o + c, ldo);
  if (c < D) pv_tail<ROWS>(p, p_row, p_key, j0, j1, v + c, ldv, o + c, ldo, D - c);
}

}  // namespace attn_cpu
}  // namespace sparq
