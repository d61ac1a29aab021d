// KIVI quantize, dequantize and cache append on the CPU (math in kivi_math.h, layouts in kv.h).
// Quantization (kv.quantize, and the pages that append/prefill complete) runs in GCC vectors of the
// level picked per call (AVX-512, AVX2 or the SSE2 baseline; SPARQ_CPU_ISA lowers it): one work
// item per page of G tokens (keys and values together), one pass for a group's min and max.
// Without trapping math GCC may execute the code computation's selects unconditionally and so
// vectorise it; the results are the same IEEE operations, bit for bit (checked against the
// oracle and the CUDA kernels). Before the includes, so that every inline function agrees.
#pragma GCC optimize("no-trapping-math")
#include <algorithm>
#include <cstring>
#include <type_traits>
#include <utility>
#include <string>
#include <vector>

#include "../attention/attention_cpu_kernels.h"
#include "../core/convert.h"
#include "../core/device_errors.h"
#include "kivi_math.h"
#include "kv.h"

namespace sparq {
namespace {

bool has_f16c() {
  static const bool yes = attn_cpu::hardware_level() != attn_cpu::CpuLevel::baseline;  // x86-64-v3+ implies F16C
  return yes;
}

// n values of T -> float32 (exact).
template <typename T>
void to_f32(const T* src, float* dst, int64_t n) {
  if constexpr (std::is_same<T, float>::value) {
    std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
  } else if constexpr (std::is_same<T, bf16_t>::value) {
    const uint16_t* s = reinterpret_cast<const uint16_t*>(src);
    for (int64_t i = 0; i < n; ++i) dst[i] = f32_from_bits(static_cast<uint32_t>(s[i]) << 16);
  } else {
    const uint16_t* s = reinterpret_cast<const uint16_t*>(src);
#if defined(__x86_64__)
    if (has_f16c()) return attn_cpu::f16_to_f32_f16c(s, dst, n);
#endif
    for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(s[i]);
  }
}

// Per-thread float32 staging for a page's rows.
std::vector<float>& staging(size_t n) {
  thread_local std::vector<float> buf;
  if (buf.size() < n) buf.resize(n);
  return buf;
}

// One per-channel group set (a key page) from x [G][D] float32: codes [D][G*b/32], scale/min [D].
template <typename T>
void quantize_channel_page(const float* x, int64_t G, int64_t D, int bits, uint32_t* codes, T* scale, T* min) {
  const int per = 32 / bits;
  const int64_t W = G / per;
  float mn[kKvMaxHeadDim], mx[kKvMaxHeadDim], sf[kKvMaxHeadDim], mf[kKvMaxHeadDim];
  uint32_t c[kKvMaxHeadDim];
  for (int64_t d = 0; d < D; ++d) mn[d] = mx[d] = x[d];
  for (int64_t t = 1; t < G; ++t)
    for (int64_t d = 0; d < D; ++d) {
      const float v = x[t * D + d];
      mn[d] = v < mn[d] ? v : mn[d];
      mx[d] = v > mx[d] ? v : mx[d];
    }
  for (int64_t d = 0; d < D; ++d) kivi::group_params(mn[d], mx[d], bits, &scale[d], &min[d], &sf[d], &mf[d]);
  std::fill(codes, codes + D * W, 0u);
  for (int64_t t = 0; t < G; ++t) {
    for (int64_t d = 0; d < D; ++d) c[d] = kivi::code_of(x[t * D + d], sf[d], mf[d], bits);  // vectorises
    const int64_t word = t / per;
    const int shift = static_cast<int>(t % per) * bits;
    for (int64_t d = 0; d < D; ++d) codes[d * W + word] |= c[d] << shift;
  }
}

// One token's per-token groups from x [D] float32: codes [D*b/32], scale/min [D/G].
template <typename T>
void quantize_token_row(const float* x, int64_t G, int64_t D, int bits, uint32_t* codes, T* scale, T* min) {
  const int per = 32 / bits;
  uint32_t c[kKvMaxGroup];
  for (int64_t g = 0; g < D / G; ++g) {
    const float* xg = x + g * G;
    float mn = xg[0], mx = mn;
    for (int64_t i = 1; i < G; ++i) {
      mn = xg[i] < mn ? xg[i] : mn;
      mx = xg[i] > mx ? xg[i] : mx;
    }
    float sf, mf;
    kivi::group_params(mn, mx, bits, &scale[g], &min[g], &sf, &mf);
    for (int64_t i = 0; i < G; ++i) c[i] = kivi::code_of(xg[i], sf, mf, bits);  // vectorises
    uint32_t* w = codes + g * G / per;
    for (int64_t j = 0; j < G / per; ++j) {
      uint32_t word = 0;
      for (int i = 0; i < per; ++i) word |= c[j * per + i] << (i * bits);
      w[j] = word;
    }
  }
}

// ---- vectorised quantization (NL float lanes: 4 SSE2, 8 AVX2, 16 AVX-512) ----------------------
// Same IEEE operations as kivi::code_of / group_params lane by lane, so the same bits. The min and
// max of a group must equal the sequential scan's (mn = x < mn ? x : mn from x[0]): every lane
// starts from x[0] (a NaN x[0] keeps every lane NaN, otherwise NaN never wins), so any order of
// combining gives the same value; only the sign of a zero extreme can depend on the order, and
// such groups are rescanned sequentially.
#pragma GCC diagnostic ignored "-Wpsabi"
template <int N> struct FV { typedef float T __attribute__((vector_size(4 * N))); };
template <int N> struct IV { typedef int32_t T __attribute__((vector_size(4 * N))); };
template <int N> struct UV { typedef uint32_t T __attribute__((vector_size(4 * N))); };

template <int N>
SPARQ_AI typename FV<N>::T vload(const float* p) {
  typename FV<N>::T v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

template <int N, int BITS>
SPARQ_AI typename UV<N>::T code_vec(typename FV<N>::T x, typename FV<N>::T s, typename FV<N>::T m) {
  using F = typename FV<N>::T;
  using I = typename IV<N>::T;
  const F zero = F{}, qmax = F{} + static_cast<float>((1 << BITS) - 1), magic = F{} + 8388608.0f;
  F r = (x - m) / s;
  r = r > zero ? r : zero;  // also maps NaN to 0
  r = r < qmax ? r : qmax;
  const F rounded = (r + magic) - magic;
  const I code = __builtin_convertvector(rounded, I) & (s > zero);
  return reinterpret_cast<const typename UV<N>::T&>(code);
}

template <int N, size_t... Is>
SPARQ_AI typename UV<N / 2>::T fold_pairs(typename UV<N>::T v, std::index_sequence<Is...>) {
  return __builtin_shufflevector(v, v, (2 * Is)...) | __builtin_shufflevector(v, v, (2 * Is + 1)...);
}
template <int N, size_t... Is>
SPARQ_AI typename FV<N / 2>::T lo_half(typename FV<N>::T v, std::index_sequence<Is...>) { return __builtin_shufflevector(v, v, Is...); }
template <int N, size_t... Is>
SPARQ_AI typename FV<N / 2>::T hi_half(typename FV<N>::T v, std::index_sequence<Is...>) {
  return __builtin_shufflevector(v, v, (N / 2 + Is)...);
}

// The extreme of the lanes (MAX: largest) under the "NaN never wins" rule.
template <int N, bool MAX>
SPARQ_AI float hreduce(typename FV<N>::T v) {
  if constexpr (N == 1) {
    return v[0];
  } else if constexpr (N == 2) {
    if constexpr (MAX) return v[1] > v[0] ? v[1] : v[0];
    else return v[1] < v[0] ? v[1] : v[0];
  } else {
    const auto lo = lo_half<N>(v, std::make_index_sequence<N / 2>{}), hi = hi_half<N>(v, std::make_index_sequence<N / 2>{});
    if constexpr (MAX) return hreduce<N / 2, MAX>(hi > lo ? hi : lo);
    else return hreduce<N / 2, MAX>(hi < lo ? hi : lo);
  }
}

// OR-folds adjacent lanes STEPS times and stores the N >> STEPS results (ORs into dst when one is left).
template <int N, int STEPS>
SPARQ_AI void fold_store(typename UV<N>::T v, uint32_t* dst) {
  if constexpr (STEPS == 0) {
    std::memcpy(dst, &v, sizeof(v));
  } else if constexpr (N == 2) {
    static_assert(STEPS == 1, "folds past one lane");
    *dst |= v[0] | v[1];
  } else {
    fold_store<N / 2, STEPS - 1>(fold_pairs<N>(v, std::make_index_sequence<N / 2>{}), dst);
  }
}

constexpr int log2i(int n) { return n <= 1 ? 0 : 1 + log2i(n / 2); }

// Converts n values of rows[t] (one row per t) to float32 rows of buf (stride D).
template <int NL, typename T>
SPARQ_AI void rows_to_f32(const T* const* rows, int64_t n, int64_t D, float* buf) {
  for (int64_t t = 0; t < n; ++t) {
#if defined(__x86_64__)
    if constexpr (NL >= 8 && std::is_same<T, f16_t>::value) {
      attn_cpu::f16_to_f32_f16c(reinterpret_cast<const uint16_t*>(rows[t]), buf + t * D, D);
      continue;
    }
#endif
    to_f32(rows[t], buf + t * D, D);
  }
}

// A key page: rows[t] (t < G) of D values -> codes [D][G*b/32], scale/min [D]. D % NL == 0.
template <int NL, int BITS, typename T>
SPARQ_AI void channel_page_vec(const T* const* rows, int64_t G, int64_t D, uint32_t* codes, T* scale, T* min, float* buf) {
  using F = typename FV<NL>::T;
  using U = typename UV<NL>::T;
  constexpr int per = 32 / BITS;
  const int64_t W = G / per;
  rows_to_f32<NL>(rows, G, D, buf);
  alignas(64) float sf[kKvMaxHeadDim], mf[kKvMaxHeadDim];
  for (int64_t d0 = 0; d0 < D; d0 += NL) {  // per channel in token order: the sequential scan itself
    F mn = vload<NL>(buf + d0), mx = mn;
    for (int64_t t = 1; t < G; ++t) {
      const F v = vload<NL>(buf + t * D + d0);
      mn = v < mn ? v : mn;
      mx = v > mx ? v : mx;
    }
    for (int l = 0; l < NL; ++l) kivi::group_params(mn[l], mx[l], BITS, &scale[d0 + l], &min[d0 + l], &sf[d0 + l], &mf[d0 + l]);
  }
  for (int64_t d0 = 0; d0 < D; d0 += NL) {
    const F s = vload<NL>(sf + d0), m = vload<NL>(mf + d0);
    for (int64_t j = 0; j < W; ++j) {
      U word = U{};
      for (int i = 0; i < per; ++i) word |= code_vec<NL, BITS>(vload<NL>(buf + (j * per + i) * D + d0), s, m) << (i * BITS);
      for (int l = 0; l < NL; ++l) codes[(d0 + l) * W + j] = word[l];
    }
  }
}

// Rows of per-token groups: rows[r] (r < n) of D values -> codes [n][D*b/32], scale/min [n][D/G]. G % NL == 0.
// kRowBlock rows at a time, in three passes (extremes, group parameters, codes) so that the
// divisions of neighbouring groups overlap instead of waiting on each other.
constexpr int64_t kRowBlock = 32;

template <int NL, int BITS, typename T>
SPARQ_AI void token_rows_vec(const T* const* rows, int64_t n, int64_t G, int64_t D, uint32_t* codes, T* scale, T* min, float* buf) {
  using F = typename FV<NL>::T;
  using U = typename UV<NL>::T;
  constexpr int per = 32 / BITS;
  constexpr bool kWide = per <= NL;  // a vector holds whole words
  const int64_t groups = D / G, W = D / per;
  U shift;
  for (int l = 0; l < NL; ++l) shift[l] = static_cast<uint32_t>(BITS * (l % per));
  alignas(64) float lo[kRowBlock * kKvMaxHeadDim / 4], hi[kRowBlock * kKvMaxHeadDim / 4];  // G >= NL >= 4
  for (int64_t r0 = 0; r0 < n; r0 += kRowBlock) {
    const int64_t m = std::min(kRowBlock, n - r0), ng = m * groups;
    rows_to_f32<NL>(rows + r0, m, D, buf);
    for (int64_t i = 0; i < ng; ++i) {  // group i = (row i / groups, group i % groups): buf + i * G
      const float* xg = buf + i * G;
      F mn = F{} + xg[0], mx = mn;
      for (int64_t j = 0; j < G; j += NL) {
        const F v = vload<NL>(xg + j);
        mn = v < mn ? v : mn;
        mx = v > mx ? v : mx;
      }
      float l = hreduce<NL, false>(mn), h = hreduce<NL, true>(mx);
      if (l == 0.0f || h == 0.0f) {  // a zero extreme: its sign is the first one's in scan order
        l = h = xg[0];
        for (int64_t j = 1; j < G; ++j) {
          l = xg[j] < l ? xg[j] : l;
          h = xg[j] > h ? xg[j] : h;
        }
      }
      lo[i] = l;
      hi[i] = h;
    }
    T* sc = scale + r0 * groups;
    T* mi = min + r0 * groups;
    for (int64_t i = 0; i < ng; ++i) kivi::group_params(lo[i], hi[i], BITS, &sc[i], &mi[i], &lo[i], &hi[i]);  // lo, hi <- sf, mf
    uint32_t* w0 = codes + r0 * W;
    if constexpr (NL / per <= 1) std::fill(w0, w0 + m * W, 0u);  // one word per vector or less: ORed in
    for (int64_t i = 0; i < ng; ++i) {
      const float* xg = buf + i * G;
      const F s = F{} + lo[i], mf = F{} + hi[i];
      uint32_t* w = w0 + i * (G / per);
      for (int64_t v = 0; v < G / NL; ++v) {
        const U c = code_vec<NL, BITS>(vload<NL>(xg + v * NL), s, mf);
        if constexpr (kWide) {
          fold_store<NL, log2i(per)>(c << shift, w + v * (NL / per));
        } else {
          const uint32_t off = static_cast<uint32_t>(BITS * ((v * NL) % per));
          fold_store<NL, log2i(NL)>(c << (shift + off), w + v * NL / per);
        }
      }
    }
  }
}

// One level's entry points: the bits dispatch, and the scalar code where the vectors do not fit.
template <int NL, typename T>
SPARQ_AI void channel_page_level(const T* const* rows, int64_t G, int64_t D, int bits, uint32_t* codes, T* scale, T* min, float* buf) {
  if (D % NL != 0 || D > kKvMaxHeadDim) {
    rows_to_f32<NL>(rows, G, D, buf);
    return quantize_channel_page(buf, G, D, bits, codes, scale, min);
  }
  if (bits == 2) channel_page_vec<NL, 2>(rows, G, D, codes, scale, min, buf);
  else if (bits == 4) channel_page_vec<NL, 4>(rows, G, D, codes, scale, min, buf);
  else channel_page_vec<NL, 8>(rows, G, D, codes, scale, min, buf);
}
template <int NL, typename T>
SPARQ_AI void token_rows_level(const T* const* rows, int64_t n, int64_t G, int64_t D, int bits, uint32_t* codes, T* scale, T* min,
                               float* buf) {
  if (G % NL != 0) {
    const int64_t W = D * bits / 32, groups = D / G;
    for (int64_t r = 0; r < n; ++r) {
      rows_to_f32<NL>(rows + r, 1, D, buf);
      quantize_token_row(buf, G, D, bits, codes + r * W, scale + r * groups, min + r * groups);
    }
    return;
  }
  if (bits == 2) token_rows_vec<NL, 2>(rows, n, G, D, codes, scale, min, buf);
  else if (bits == 4) token_rows_vec<NL, 4>(rows, n, G, D, codes, scale, min, buf);
  else token_rows_vec<NL, 8>(rows, n, G, D, codes, scale, min, buf);
}

#if SPARQ_ATTN_HAVE_LEVELS
template <typename T>
SPARQ_ATTN_TARGET_V4 void channel_page_v4(const T* const* rows, int64_t G, int64_t D, int bits, uint32_t* codes, T* scale, T* min, float* buf) {
  channel_page_level<16>(rows, G, D, bits, codes, scale, min, buf);
}
template <typename T>
SPARQ_ATTN_TARGET_V3 void channel_page_v3(const T* const* rows, int64_t G, int64_t D, int bits, uint32_t* codes, T* scale, T* min, float* buf) {
  channel_page_level<8>(rows, G, D, bits, codes, scale, min, buf);
}
template <typename T>
SPARQ_ATTN_TARGET_V4 void token_rows_v4(const T* const* rows, int64_t n, int64_t G, int64_t D, int bits, uint32_t* codes, T* scale, T* min,
                                        float* buf) {
  token_rows_level<16>(rows, n, G, D, bits, codes, scale, min, buf);
}
template <typename T>
SPARQ_ATTN_TARGET_V3 void token_rows_v3(const T* const* rows, int64_t n, int64_t G, int64_t D, int bits, uint32_t* codes, T* scale, T* min,
                                        float* buf) {
  token_rows_level<8>(rows, n, G, D, bits, codes, scale, min, buf);
}
#endif
template <typename T>
void channel_page_baseline(const T* const* rows, int64_t G, int64_t D, int bits, uint32_t* codes, T* scale, T* min, float* buf) {
  channel_page_level<4>(rows, G, D, bits, codes, scale, min, buf);
}
template <typename T>
void token_rows_baseline(const T* const* rows, int64_t n, int64_t G, int64_t D, int bits, uint32_t* codes, T* scale, T* min, float* buf) {
  token_rows_level<4>(rows, n, G, D, bits, codes, scale, min, buf);
}

// G rows -> a per-channel group set; n rows -> their per-token groups (at the level picked per call).
template <typename T>
void channel_page(attn_cpu::CpuLevel level, const T* const* rows, int64_t G, int64_t D, int bits, uint32_t* codes, T* scale, T* min) {
  float* buf = staging(static_cast<size_t>(G * D)).data();
#if SPARQ_ATTN_HAVE_LEVELS
  if (level == attn_cpu::CpuLevel::v4) return channel_page_v4(rows, G, D, bits, codes, scale, min, buf);
  if (level == attn_cpu::CpuLevel::v3) return channel_page_v3(rows, G, D, bits, codes, scale, min, buf);
#endif
  channel_page_baseline(rows, G, D, bits, codes, scale, min, buf);
}
template <typename T>
void token_rows(attn_cpu::CpuLevel level, const T* const* rows, int64_t n, int64_t G, int64_t D, int bits, uint32_t* codes, T* scale,
                T* min) {
  float* buf = staging(static_cast<size_t>(kRowBlock * D)).data();
#if SPARQ_ATTN_HAVE_LEVELS
  if (level == attn_cpu::CpuLevel::v4) return token_rows_v4(rows, n, G, D, bits, codes, scale, min, buf);
  if (level == attn_cpu::CpuLevel::v3) return token_rows_v3(rows, n, G, D, bits, codes, scale, min, buf);
#endif
  token_rows_baseline(rows, n, G, D, bits, codes, scale, min, buf);
}

template <typename T>
void quantize_typed(const KiviQuantParams& p, ThreadPool& pool) {
  const T* x = static_cast<const T*>(p.x);
  T* scale = static_cast<T*>(p.scale);
  T* min = static_cast<T*>(p.min);
  const int per = 32 / p.bits;
  const attn_cpu::CpuLevel level = attn_cpu::cpu_level();
  if (p.per_channel) {
    const int64_t pages = p.T / p.G, W = p.G / per;
    pool.parallel_for(p.outer * pages, 1, [&](int64_t begin, int64_t end) {
      const T* rows[kKvMaxGroup];
      for (int64_t item = begin; item < end; ++item) {
        for (int64_t t = 0; t < p.G; ++t) rows[t] = x + (item * p.G + t) * p.D;  // (outer, page) is contiguous
        channel_page(level, rows, p.G, p.D, p.bits, p.codes + item * p.D * W, scale + item * p.D, min + item * p.D);
      }
    });
  } else {
    const int64_t W = p.D / per, groups = p.D / p.G;
    pool.parallel_for(p.outer * p.T, 64, [&](int64_t begin, int64_t end) {
      const T* rows[kKvMaxGroup];
      for (int64_t r0 = begin; r0 < end; r0 += kKvMaxGroup) {
        const int64_t n = std::min<int64_t>(kKvMaxGroup, end - r0);
        for (int64_t r = 0; r < n; ++r) rows[r] = x + (r0 + r) * p.D;
        token_rows(level, rows, n, p.G, p.D, p.bits, p.codes + r0 * W, scale + r0 * groups, min + r0 * groups);
      }
    });
  }
}

template <typename T>
void dequantize_typed(const KiviDequantParams& p, ThreadPool& pool) {
  const T* scale = static_cast<const T*>(p.scale);
  const T* min = static_cast<const T*>(p.min);
  T* out = static_cast<T*>(p.out);
  const int per = 32 / p.bits;
  const uint32_t mask = (1u << p.bits) - 1u;
  if (p.per_channel) {
    const int64_t pages = p.T / p.G, W = p.G / per;
    pool.parallel_for(p.outer * pages, 1, [&](int64_t begin, int64_t end) {
      for (int64_t item = begin; item < end; ++item) {
        const uint32_t* c = p.codes + item * p.D * W;
        T* o = out + item * p.G * p.D;
        for (int64_t d = 0; d < p.D; ++d) {
          const float s = kivi::widen(scale[item * p.D + d]), m = kivi::widen(min[item * p.D + d]);
          for (int64_t t = 0; t < p.G; ++t) {
            const uint32_t code = (c[d * W + t / per] >> ((t % per) * p.bits)) & mask;
            o[t * p.D + d] = Convert<T>::from(kivi::dequant(code, s, m));
          }
        }
      }
    });
  } else {
    const int64_t W = p.D / per, groups = p.D / p.G;
    pool.parallel_for(p.outer * p.T, 64, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r)
        for (int64_t d = 0; d < p.D; ++d) {
          const uint32_t code = (p.codes[r * W + d / per] >> ((d % per) * p.bits)) & mask;
          const int64_t g = r * groups + d / p.G;
          out[r * p.D + d] = Convert<T>::from(kivi::dequant(code, kivi::widen(scale[g]), kivi::widen(min[g])));
        }
    });
  }
}

// ---- append ----

struct Flush {
  int64_t b, page, first_token;  // page index in sequence b; its first token
};

template <typename T>
void append_typed(const KiviAppendParams& p, const std::vector<int64_t>& count, ThreadPool& pool) {
  const KiviCache& c = p.cache;
  const int64_t C = c.tail_cap(), D = c.D, G = c.G, Hk = c.Hk, P = c.P;
  const int64_t kw = c.k_words(), vw = c.v_words(), vg = c.v_groups();
  const T* k_in = static_cast<const T*>(p.k);
  const T* v_in = static_cast<const T*>(p.v);
  T* k_tail = static_cast<T*>(c.k_tail);
  T* v_tail = static_cast<T*>(c.v_tail);

  std::vector<Flush> flushes;
  for (int64_t b = 0; b < c.B; ++b) {
    const int64_t L = p.lengths[b];
    const int64_t q0 = kivi_quantized_tokens(L, c.R, G), q1 = kivi_quantized_tokens(L + count[b], c.R, G);
    for (int64_t t = q0; t < q1; t += G) flushes.push_back({b, t / G, t});
  }
  // Token t of sequence b (head h) before this append: in the tail if t < L, else in the input.
  auto row = [&](const T* tail, const T* in, int64_t b, int64_t h, int64_t t) -> const T* {
    const int64_t L = p.lengths[b];
    if (t < L) return tail + ((b * Hk + h) * C + t % C) * D;
    return in + ((b * Hk + h) * p.n + (t - L)) * D;
  };

  // Phase 1: quantize completed pages (reads tail slots that phase 2 may overwrite). One item per
  // (page, head): G key rows and G value rows, a few microseconds of work.
  const attn_cpu::CpuLevel level = attn_cpu::cpu_level();
  pool.parallel_for(static_cast<int64_t>(flushes.size()) * Hk, 1, [&](int64_t begin, int64_t end) {
    const T* krows[kKvMaxGroup];
    const T* vrows[kKvMaxGroup];
    for (int64_t item = begin; item < end; ++item) {
      const Flush& f = flushes[item / Hk];
      const int64_t h = item % Hk, bh = f.b * Hk + h, page = bh * P + f.page;
      for (int64_t t = 0; t < G; ++t) {
        krows[t] = row(k_tail, k_in, f.b, h, f.first_token + t);
        vrows[t] = row(v_tail, v_in, f.b, h, f.first_token + t);
      }
      channel_page(level, krows, G, D, c.key_bits, c.k_codes + page * D * kw, static_cast<T*>(c.k_scale) + page * D,
                   static_cast<T*>(c.k_min) + page * D);
      token_rows(level, vrows, G, G, D, c.value_bits, c.v_codes + page * G * vw, static_cast<T*>(c.v_scale) + page * G * vg,
                 static_cast<T*>(c.v_min) + page * G * vg);
    }
  });
  // Phase 2: new tokens that stay in full precision go to their tail slots.
  pool.parallel_for(c.B * Hk, 1, [&](int64_t begin, int64_t end) {
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / Hk, L = p.lengths[b], L1 = L + count[b];
      const int64_t first = std::max(L, kivi_quantized_tokens(L1, c.R, G));
      for (int64_t t = first; t < L1; ++t) {
        const int64_t src = (bh * p.n + (t - L)) * D, dst = (bh * C + t % C) * D;
        std::copy(k_in + src, k_in + src + D, k_tail + dst);
        std::copy(v_in + src, v_in + src + D, v_tail + dst);
      }
    }
  });
  for (int64_t b = 0; b < c.B; ++b) p.lengths[b] = static_cast<int32_t>(p.lengths[b] + count[b]);
}

template <typename Fn>
void visit_float(DType t, Fn&& fn) {
  switch (t) {
    case DType::f16: fn(f16_t{}); break;
    case DType::bf16: fn(bf16_t{}); break;
    default: fn(float{}); break;
  }
}

}  // namespace

Status kivi_quantize_cpu(const KiviQuantParams& p, ThreadPool& pool) {
  visit_float(p.dtype, [&](auto tag) { quantize_typed<decltype(tag)>(p, pool); });
  return Status::OK();
}

Status kivi_dequantize_cpu(const KiviDequantParams& p, ThreadPool& pool) {
  visit_float(p.dtype, [&](auto tag) { dequantize_typed<decltype(tag)>(p, pool); });
  return Status::OK();
}

Status kivi_append_cpu(const KiviAppendParams& p, ThreadPool& pool) {
  const KiviCache& c = p.cache;
  std::vector<int64_t> count(static_cast<size_t>(c.B));
  // Every length and count is checked before anything is written: a failed append changes nothing.
  for (int64_t b = 0; b < c.B; ++b) {
    const int64_t L = p.lengths[b];
    count[b] = p.counts ? p.counts[b] : p.n;
    if (count[b] < 0 || count[b] > p.n || !c.length_ok(L) || !c.length_ok(L + count[b]))
      return Status(Code::invalid_arg_value, device_error_message(kDeviceErrorLengthOutOfRange));
  }
  visit_float(c.dtype, [&](auto tag) { append_typed<decltype(tag)>(p, count, pool); });
  return Status::OK();
}

}  // namespace sparq
