// Fused KIVI decode attention on the CPU. Work items are (batch, KV head, split of the pages);
// an item serves every query head of its KV head, so each code word is read once per step. Per
// block of G tokens (one page, or a piece of the full-precision tail) the keys are dequantized
// into an L1-resident [D][G] float tile and the values into [G][D], then every query head does
// q.k, an online-softmax update and P.V on them. With several splits each item writes a partial
// state (normalised output + LSE) and a second pass merges them by LSE. Pages of G = 32 with
// D = 64/128/256 skip the tiles (fast paths below: scores and P.V straight from the codes).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>
#include <string>
#include <type_traits>
#include <vector>

#include "../attention/attention_cpu_kernels.h"
#include "../core/device_errors.h"
#include "kivi_math.h"
#include "kv.h"

namespace sparq {
namespace {

using attn_cpu::CpuLevel;
using attn_cpu::exp_f32;
using attn_cpu::kNegInf;

// Per-thread scratch, grown on demand.
struct Scratch {
  std::vector<float> kt, vt, q, acc, s, m, l;
};

struct Item {
  const KiviAttendParams* p;
  int64_t b, kvh, page_begin, page_end;
  bool with_tail;
  float* out;        // [heads][out_stride] normalised output (float32 partials or nullptr: see finish)
  float* lse;        // [heads] at lse_stride
  int64_t out_stride, lse_stride;
};

// The 32 / BITS codes of a word as floats: one variable shift of the broadcast word per lane
// (vpsrlvd on AVX2/AVX-512; GCC left alone unpacks lane by lane), a mask and a conversion. The
// vector types never cross a call (everything is inlined into a level's entry point).
#pragma GCC diagnostic ignored "-Wpsabi"
template <int N> struct Lanes;
template <> struct Lanes<16> {
  typedef uint32_t U __attribute__((vector_size(64)));
  typedef int32_t I __attribute__((vector_size(64)));
  typedef float F __attribute__((vector_size(64)));
};
template <> struct Lanes<8> {
  typedef uint32_t U __attribute__((vector_size(32)));
  typedef int32_t I __attribute__((vector_size(32)));
  typedef float F __attribute__((vector_size(32)));
};
template <> struct Lanes<4> {
  typedef uint32_t U __attribute__((vector_size(16)));
  typedef int32_t I __attribute__((vector_size(16)));
  typedef float F __attribute__((vector_size(16)));
};

// NL: the level's native lanes (Isa::kLanes); a word's 32 / BITS codes come as kChunks vectors of
// kLanes <= NL lanes (wider generic vectors are lowered through the stack on AVX2 and SSE2).
template <int BITS, int NL>
struct Unpack {
  static constexpr int kPer = 32 / BITS;
  static constexpr int kLanes = kPer < NL ? kPer : NL;
  static constexpr int kChunks = kPer / kLanes;
  using U = typename Lanes<kLanes>::U;
  using I = typename Lanes<kLanes>::I;
  using F = typename Lanes<kLanes>::F;
  // {0, BITS, 2 BITS, ...} as a constant.
  static SPARQ_AI U shifts() {
    if constexpr (kLanes == 16) return U{0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
    else if constexpr (kLanes == 8 && BITS == 2) return U{0, 2, 4, 6, 8, 10, 12, 14};
    else if constexpr (kLanes == 8) return U{0, 4, 8, 12, 16, 20, 24, 28};
    else if constexpr (BITS == 2) return U{0, 2, 4, 6};
    else if constexpr (BITS == 4) return U{0, 4, 8, 12};
    else return U{0, 8, 16, 24};
  }
  // Codes [c * kLanes, (c + 1) * kLanes) of w as floats.
  static SPARQ_AI F codes(uint32_t w, int c) {
    const U x = ((U{} + (w >> (c * kLanes * BITS))) >> shifts()) & ((1u << BITS) - 1u);
    return __builtin_convertvector(reinterpret_cast<const I&>(x), F);  // codes < 256: signed is exact
  }
  // dst[0, kPer) = code * s + m
  static SPARQ_AI void run(uint32_t w, float s, float m, float* __restrict dst) {
    for (int c = 0; c < kChunks; ++c) {
      const F x = codes(w, c) * s + m;
      std::memcpy(dst + c * kLanes, &x, sizeof(x));
    }
  }
};

// K page codes [D][G*b/32] -> kt[d][t] = code * scale[d] + min[d] (row stride ld).
template <class Isa, int BITS, typename T>
SPARQ_AI void dequant_k_page(const uint32_t* __restrict codes, const T* __restrict scale, const T* __restrict min, int64_t D,
                             int64_t G, int64_t ld, float* __restrict kt) {
  constexpr int kPer = 32 / BITS;
  const int64_t W = G / kPer;
  for (int64_t d = 0; d < D; ++d) {
    const float s = kivi::widen(scale[d]), m = kivi::widen(min[d]);
    for (int64_t j = 0; j < W; ++j) Unpack<BITS, Isa::kLanes>::run(codes[d * W + j], s, m, kt + d * ld + j * kPer);
  }
}

// V page codes [G][D*b/32] -> vt[t][d] = code * scale[t][d / G] + min[t][d / G].
template <class Isa, int BITS, typename T>
SPARQ_AI void dequant_v_page(const uint32_t* __restrict codes, const T* __restrict scale, const T* __restrict min, int64_t D,
                             int64_t G, float* __restrict vt) {
  constexpr int kPer = 32 / BITS;
  const int64_t W = D / kPer, groups = D / G, words_per_group = G / kPer;
  for (int64_t t = 0; t < G; ++t)
    for (int64_t g = 0; g < groups; ++g) {
      const float s = kivi::widen(scale[t * groups + g]), m = kivi::widen(min[t * groups + g]);
      for (int64_t j = g * words_per_group; j < (g + 1) * words_per_group; ++j)
        Unpack<BITS, Isa::kLanes>::run(codes[t * W + j], s, m, vt + t * D + j * kPer);
    }
}

template <class Isa, typename T>
SPARQ_AI void dequant_k(int bits, const uint32_t* codes, const T* scale, const T* min, int64_t D, int64_t G, int64_t ld, float* kt) {
  if (bits == 2) dequant_k_page<Isa, 2>(codes, scale, min, D, G, ld, kt);
  else if (bits == 4) dequant_k_page<Isa, 4>(codes, scale, min, D, G, ld, kt);
  else dequant_k_page<Isa, 8>(codes, scale, min, D, G, ld, kt);
}
template <class Isa, typename T>
SPARQ_AI void dequant_v(int bits, const uint32_t* codes, const T* scale, const T* min, int64_t D, int64_t G, float* vt) {
  if (bits == 2) dequant_v_page<Isa, 2>(codes, scale, min, D, G, vt);
  else if (bits == 4) dequant_v_page<Isa, 4>(codes, scale, min, D, G, vt);
  else dequant_v_page<Isa, 8>(codes, scale, min, D, G, vt);
}

constexpr int64_t kPad = 32;  // kt rows are padded to a multiple of this many columns

SPARQ_AI int64_t padded(int64_t n) { return (n + kPad - 1) / kPad * kPad; }

// Scores of one head: s[t] = q . kt[:, t] for the columns of kt [D][ld] up to padded(n). Blocks
// of kCols = 2 vectors of columns, with 4 partial sums over d: 8 independent FMA chains.
template <class Isa>
SPARQ_AI void head_scores(const float* __restrict q, int64_t D, const float* __restrict kt, int64_t ld, int64_t n,
                          float* __restrict s) {
  constexpr int kCols = 2 * Isa::kLanes;
  for (int64_t t0 = 0; t0 < n; t0 += kCols) {
    float acc[4][kCols] = {};
    for (int64_t d = 0; d + 4 <= D; d += 4)
      for (int u = 0; u < 4; ++u) {
        const float qd = q[d + u];
        const float* __restrict k = kt + (d + u) * ld + t0;
        for (int i = 0; i < kCols; ++i) acc[u][i] += qd * k[i];
      }
    for (int64_t d = D / 4 * 4; d < D; ++d)
      for (int i = 0; i < kCols; ++i) acc[0][i] += q[d] * kt[d * ld + t0 + i];
    for (int i = 0; i < kCols; ++i) s[t0 + i] = (acc[0][i] + acc[1][i]) + (acc[2][i] + acc[3][i]);
  }
}

// acc = acc * alpha + sum_t p[t] v[t], in register blocks of 8 vectors of dims when D allows.
template <class Isa>
SPARQ_AI void head_pv(const float* __restrict p, const float* __restrict vt, int64_t D, int64_t n, float alpha, float* __restrict acc) {
  constexpr int kDims = 8 * Isa::kLanes;
  int64_t d0 = 0;
  for (; d0 + kDims <= D; d0 += kDims) {
    float a[kDims];
    for (int i = 0; i < kDims; ++i) a[i] = acc[d0 + i] * alpha;
    for (int64_t t = 0; t < n; ++t) {
      const float pt = p[t];
      const float* __restrict v = vt + t * D + d0;
      for (int i = 0; i < kDims; ++i) a[i] += pt * v[i];
    }
    for (int i = 0; i < kDims; ++i) acc[d0 + i] = a[i];
  }
  if (d0 == D) return;
  for (int64_t d = d0; d < D; ++d) acc[d] *= alpha;
  for (int64_t t = 0; t < n; ++t)
    for (int64_t d = d0; d < D; ++d) acc[d] += p[t] * vt[t * D + d];
}

// Online-softmax update of head h with n new scores s (replaced by their probabilities). Returns
// the factor the head's accumulator is to be scaled by, or -1 when the scores add nothing.
SPARQ_AI float softmax_update(int64_t h, float* __restrict s, int64_t n, Scratch& sc) {
  float mx = sc.m[h];
  for (int64_t t = 0; t < n; ++t) mx = s[t] > mx ? s[t] : mx;
  if (mx == kNegInf) return -1.0f;  // only -inf scores (cannot happen for finite inputs)
  const float alpha = exp_f32(sc.m[h] - mx);
  float sum = 0.0f;
  for (int64_t t = 0; t < n; ++t) {
    s[t] = exp_f32(s[t] - mx);
    sum += s[t];
  }
  sc.m[h] = mx;
  sc.l[h] = sc.l[h] * alpha + sum;
  return alpha;
}

// n tokens (kt [D][ld], read up to column padded(n) - 1; vt [n][D]) for every head: scores,
// online softmax, P.V.
template <class Isa>
SPARQ_AI void attend_block(int64_t heads, int64_t D, int64_t n, int64_t ld, const float* __restrict kt,
                           const float* __restrict vt, Scratch& sc) {
  float* __restrict s = sc.s.data();
  for (int64_t h = 0; h < heads; ++h) {
    head_scores<Isa>(sc.q.data() + h * D, D, kt, ld, n, s);
    const float alpha = softmax_update(h, s, n, sc);
    if (alpha >= 0.0f) head_pv<Isa>(s, vt, D, n, alpha, sc.acc.data() + h * D);
  }
}

// ---- narrow fast path: G = 32, D = 128, 1 or 2 query heads per KV head, 2- or 4-bit -------------
// Every accumulator of the page (all 128 output dims) in registers and no per-page set-up: for
// MHA and GQA 2 this beats the head-blocked path below (fewer heads to share the unpacking).
// The codes are never written out: scores = sum_d (q_d scale_d) code_dt + sum_d q_d min_d, and
// out += sum_t (p_t scale_tg) code_td + sum_t p_t min_tg, with every accumulator in registers.
constexpr int kNarrowG = 32, kFastD = 128;

// sum_d a[d] b[d] over 128 dims in 16 independent lanes (vectorises without reassociation).
SPARQ_AI float dot128(const float* __restrict a, const float* __restrict b) {
  float part[16] = {};
  for (int d = 0; d < kFastD; d += 16)
    for (int i = 0; i < 16; ++i) part[i] += a[d + i] * b[d + i];
  float r = 0.0f;
  for (int i = 0; i < 16; ++i) r += part[i];
  return r;
}

template <class Isa, int KB, int VB, int NH, typename T>
SPARQ_AI void page_narrow(const KiviCache& c, int64_t page, Scratch& sc) {
  using UK = Unpack<KB, Isa::kLanes>;
  using UV = Unpack<VB, Isa::kLanes>;
  using FK = typename UK::F;
  using FV = typename UV::F;
  constexpr int kCk = UK::kChunks, kCv = UV::kChunks, kLv = UV::kLanes;
  alignas(64) float sf[kFastD], mf[kFastD], s[NH][kNarrowG];
  attn_cpu::load_f32<Isa>(static_cast<const T*>(c.k_scale) + page * kFastD, sf, kFastD);
  attn_cpu::load_f32<Isa>(static_cast<const T*>(c.k_min) + page * kFastD, mf, kFastD);
  const float* q = sc.q.data();
  // Scores: KB words (of kPk tokens) per channel.
  FK acc[NH][KB * kCk];
  for (int h = 0; h < NH; ++h)
    for (int j = 0; j < KB * kCk; ++j) acc[h][j] = FK{};
  const uint32_t* kc = c.k_codes + page * kFastD * KB;
  for (int d = 0; d < kFastD; ++d) {
    float qs[NH];
    for (int h = 0; h < NH; ++h) qs[h] = q[h * kFastD + d] * sf[d];
    for (int j = 0; j < KB; ++j)
      for (int ch = 0; ch < kCk; ++ch) {
        const FK cf = UK::codes(kc[d * KB + j], ch);
        for (int h = 0; h < NH; ++h) acc[h][j * kCk + ch] += qs[h] * cf;
      }
  }
  float alpha[NH];
  bool any = false;
  for (int h = 0; h < NH; ++h) {
    std::memcpy(s[h], acc[h], sizeof(acc[h]));
    const float c0 = dot128(q + h * kFastD, mf);
    for (int t = 0; t < kNarrowG; ++t) s[h][t] += c0;
    alpha[h] = softmax_update(h, s[h], kNarrowG, sc);
    if (alpha[h] < 0.0f) {  // nothing to add for this head
      alpha[h] = 1.0f;
      for (int t = 0; t < kNarrowG; ++t) s[h][t] = 0.0f;
    } else {
      any = true;
    }
  }
  if (!any) return;
  // P.V: VB words (of 32 / VB channels) per group of 32 channels, 4 groups per token.
  constexpr int kVecs = kFastD / kLv, kGroups = kFastD / kNarrowG;
  alignas(64) float vsf[kNarrowG * kGroups], vmf[kNarrowG * kGroups];
  attn_cpu::load_f32<Isa>(static_cast<const T*>(c.v_scale) + page * kNarrowG * kGroups, vsf, kNarrowG * kGroups);
  attn_cpu::load_f32<Isa>(static_cast<const T*>(c.v_min) + page * kNarrowG * kGroups, vmf, kNarrowG * kGroups);
  FV out[NH][kVecs];
  float bias[NH][kGroups] = {};
  for (int h = 0; h < NH; ++h)
    for (int k = 0; k < kVecs; ++k) {
      FV a;
      std::memcpy(&a, sc.acc.data() + h * kFastD + k * kLv, sizeof(a));
      out[h][k] = a * alpha[h];
    }
  const uint32_t* vc = c.v_codes + page * kNarrowG * (kFastD * VB / 32);
  for (int t = 0; t < kNarrowG; ++t)
    for (int g = 0; g < kGroups; ++g) {
      float ps[NH];
      for (int h = 0; h < NH; ++h) {
        ps[h] = s[h][t] * vsf[t * kGroups + g];
        bias[h][g] += s[h][t] * vmf[t * kGroups + g];
      }
      for (int j = 0; j < VB; ++j)
        for (int ch = 0; ch < kCv; ++ch) {
          const FV cf = UV::codes(vc[(t * kGroups + g) * VB + j], ch);
          for (int h = 0; h < NH; ++h) out[h][(g * VB + j) * kCv + ch] += ps[h] * cf;
        }
    }
  for (int h = 0; h < NH; ++h)
    for (int k = 0; k < kVecs; ++k) {
      const FV a = out[h][k] + bias[h][k / (VB * kCv)];
      std::memcpy(sc.acc.data() + h * kFastD + k * kLv, &a, sizeof(a));
    }
}

// ---- fast path: G = 32, D = 64/128/256, up to 16 query heads per KV head, 2/4/8-bit ------------
// The codes are never written out: scores = sum_d (q_d scale_d) code_dt + sum_d q_d min_d, and
// out += sum_t (p_t scale_tg) code_td + sum_t p_t min_tg. Each unpacked code vector serves a block
// of HB query heads (GQA: the heads of a KV head share the page), with the HB heads' accumulators
// in registers: 32 tokens (scores) or one 32-channel group (P.V) per head.
constexpr int kFastG = 32, kFastMaxHeads = 16;

SPARQ_AI bool fast_dim(int64_t D) { return D == 64 || D == 128 || D == 256; }

// sum_d a[d] b[d] over D (a multiple of 16) dims in 16 independent lanes.
SPARQ_AI float dot_lanes(const float* __restrict a, const float* __restrict b, int64_t D) {
  float part[16] = {};
  for (int64_t d = 0; d < D; d += 16)
    for (int i = 0; i < 16; ++i) part[i] += a[d + i] * b[d + i];
  float r = 0.0f;
  for (int i = 0; i < 16; ++i) r += part[i];
  return r;
}

// Vectors of one 32-value block of BITS-bit codes (a channel's 32 tokens, a token's 32 channels).
template <class Isa, int BITS>
constexpr int block_vecs() { return BITS * Unpack<BITS, Isa::kLanes>::kChunks; }

// Register budget for the HB heads' accumulators: 16 of AVX-512's 32 vectors, 8 of 16 elsewhere.
template <class Isa, int BITS>
constexpr int head_block() {
  constexpr int budget = Isa::kLanes == 16 ? 16 : 8, per_head = block_vecs<Isa, BITS>();
  constexpr int hb = budget / per_head;
  return hb >= 8 ? 8 : hb >= 4 ? 4 : hb >= 2 ? 2 : 1;
}

// s[h][t] += sum_d qsf[h][d] code_dt for HB heads: K codes [D][KB] (32 tokens per channel).
template <class Isa, int KB, int HB, int D>
SPARQ_AI void scores_heads(const uint32_t* __restrict kc, const float* __restrict qsf, float (*s)[kFastG]) {
  using UK = Unpack<KB, Isa::kLanes>;
  using FK = typename UK::F;
  constexpr int kCk = UK::kChunks, kV = block_vecs<Isa, KB>();
  FK acc[HB][kV];
  for (int h = 0; h < HB; ++h)
    for (int j = 0; j < kV; ++j) acc[h][j] = FK{};
  for (int d = 0; d < D; ++d)
    for (int j = 0; j < KB; ++j)
      for (int ch = 0; ch < kCk; ++ch) {
        const FK cf = UK::codes(kc[d * KB + j], ch);
        for (int h = 0; h < HB; ++h) acc[h][j * kCk + ch] += qsf[h * D + d] * cf;
      }
  for (int h = 0; h < HB; ++h) std::memcpy(s[h], acc[h], sizeof(acc[h]));
}

// acc[h][g*32 .. +32] = acc * alpha[h] + sum_t ps[h][g][t] code_t,(g) + bias[h][g] for HB heads.
template <class Isa, int VB, int HB, int D>
SPARQ_AI void pv_heads(const uint32_t* __restrict vc, int g, const float* __restrict ps, const float* __restrict bias,
                       const float* __restrict alpha, float* __restrict acc) {
  constexpr int groups = D / kFastG;
  using UV = Unpack<VB, Isa::kLanes>;
  using FV = typename UV::F;
  constexpr int kCv = UV::kChunks, kLv = UV::kLanes, kV = block_vecs<Isa, VB>();
  FV out[HB][kV];
  for (int h = 0; h < HB; ++h)
    for (int k = 0; k < kV; ++k) {
      FV a;
      std::memcpy(&a, acc + h * D + g * kFastG + k * kLv, sizeof(a));
      out[h][k] = a * alpha[h];
    }
  for (int t = 0; t < kFastG; ++t)
    for (int j = 0; j < VB; ++j)
      for (int ch = 0; ch < kCv; ++ch) {
        const FV cf = UV::codes(vc[(t * groups + g) * VB + j], ch);
        for (int h = 0; h < HB; ++h) out[h][j * kCv + ch] += ps[(h * groups + g) * kFastG + t] * cf;
      }
  for (int h = 0; h < HB; ++h)
    for (int k = 0; k < kV; ++k) {
      const FV a = out[h][k] + bias[h * groups + g];
      std::memcpy(acc + h * D + g * kFastG + k * kLv, &a, sizeof(a));
    }
}

template <class Isa, int KB, int D>
SPARQ_AI void page_scores(const uint32_t* kc, const float* qsf, int64_t heads, float (*s)[kFastG]) {
  constexpr int HB = head_block<Isa, KB>();  // blocks of HB heads, then of HB / 2, ... 1
  int64_t h = 0;
  if constexpr (HB >= 8)
    for (; h + 8 <= heads; h += 8) scores_heads<Isa, KB, 8, D>(kc, qsf + h * D, s + h);
  if constexpr (HB >= 4)
    for (; h + 4 <= heads; h += 4) scores_heads<Isa, KB, 4, D>(kc, qsf + h * D, s + h);
  if constexpr (HB >= 2)
    for (; h + 2 <= heads; h += 2) scores_heads<Isa, KB, 2, D>(kc, qsf + h * D, s + h);
  for (; h < heads; ++h) scores_heads<Isa, KB, 1, D>(kc, qsf + h * D, s + h);
}

template <class Isa, int VB, int D>
SPARQ_AI void page_pv(const uint32_t* vc, const float* ps, const float* bias, const float* alpha, int64_t heads, float* acc) {
  constexpr int HB = head_block<Isa, VB>(), groups = D / kFastG;
  for (int g = 0; g < groups; ++g) {
    int64_t h = 0;
    if constexpr (HB >= 8)
      for (; h + 8 <= heads; h += 8) pv_heads<Isa, VB, 8, D>(vc, g, ps + h * groups * kFastG, bias + h * groups, alpha + h, acc + h * D);
    if constexpr (HB >= 4)
      for (; h + 4 <= heads; h += 4) pv_heads<Isa, VB, 4, D>(vc, g, ps + h * groups * kFastG, bias + h * groups, alpha + h, acc + h * D);
    if constexpr (HB >= 2)
      for (; h + 2 <= heads; h += 2) pv_heads<Isa, VB, 2, D>(vc, g, ps + h * groups * kFastG, bias + h * groups, alpha + h, acc + h * D);
    for (; h < heads; ++h) pv_heads<Isa, VB, 1, D>(vc, g, ps + h * groups * kFastG, bias + h * groups, alpha + h, acc + h * D);
  }
}

// N (a multiple of 8) scales or mins -> float32 (whole F16C vectors where the level has F16C).
#if defined(__x86_64__)
template <int N>
__attribute__((target("avx,f16c"))) inline void f16_meta_f16c(const uint16_t* __restrict src, float* __restrict dst) {
  static_assert(N % 8 == 0, "whole F16C vectors");
  for (int i = 0; i < N; i += 8)
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
}
#endif
template <class Isa, int N, typename T>
SPARQ_AI void load_meta(const T* __restrict src, float* __restrict dst) {
#if defined(__x86_64__)
  if constexpr (Isa::kF16c && std::is_same<T, f16_t>::value) return f16_meta_f16c<N>(reinterpret_cast<const uint16_t*>(src), dst);
#endif
  attn_cpu::load_f32<Isa>(src, dst, N);
}

template <class Isa, typename T, int D>
SPARQ_AI void page_fast(const KiviCache& c, int64_t heads, int64_t page, Scratch& sc) {
  constexpr int groups = D / kFastG;
  alignas(64) float sf[kKvMaxHeadDim], mf[kKvMaxHeadDim], s[kFastMaxHeads][kFastG];
  alignas(64) float qsf[kFastMaxHeads * kKvMaxHeadDim];
  load_meta<Isa, D>(static_cast<const T*>(c.k_scale) + page * D, sf);
  load_meta<Isa, D>(static_cast<const T*>(c.k_min) + page * D, mf);
  const float* q = sc.q.data();
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t d = 0; d < D; ++d) qsf[h * D + d] = q[h * D + d] * sf[d];
  const uint32_t* kc = c.k_codes + page * D * c.key_bits;  // [D][kb] words: 32 tokens per channel
  if (c.key_bits == 2) page_scores<Isa, 2, D>(kc, qsf, heads, s);
  else if (c.key_bits == 4) page_scores<Isa, 4, D>(kc, qsf, heads, s);
  else page_scores<Isa, 8, D>(kc, qsf, heads, s);
  alignas(64) float alpha[kFastMaxHeads];
  bool any = false;
  for (int64_t h = 0; h < heads; ++h) {
    const float c0 = dot_lanes(q + h * D, mf, D);
    for (int t = 0; t < kFastG; ++t) s[h][t] += c0;
    alpha[h] = softmax_update(h, s[h], kFastG, sc);
    if (alpha[h] < 0.0f) {  // nothing to add for this head
      alpha[h] = 1.0f;
      for (int t = 0; t < kFastG; ++t) s[h][t] = 0.0f;
    } else {
      any = true;
    }
  }
  if (!any) return;
  // Per (head, group): ps[t] = p_t scale_tg and bias = sum_t p_t min_tg, from [g][t] copies.
  alignas(64) float vsf[kFastG * kKvMaxHeadDim / kFastG], vmf[kFastG * kKvMaxHeadDim / kFastG];
  alignas(64) float vsft[kKvMaxHeadDim / kFastG][kFastG], vmft[kKvMaxHeadDim / kFastG][kFastG];
  alignas(64) float ps[kFastMaxHeads * kKvMaxHeadDim], bias[kFastMaxHeads * kKvMaxHeadDim / kFastG];
  load_meta<Isa, kFastG * groups>(static_cast<const T*>(c.v_scale) + page * kFastG * groups, vsf);
  load_meta<Isa, kFastG * groups>(static_cast<const T*>(c.v_min) + page * kFastG * groups, vmf);
  for (int t = 0; t < kFastG; ++t)
    for (int64_t g = 0; g < groups; ++g) {
      vsft[g][t] = vsf[t * groups + g];
      vmft[g][t] = vmf[t * groups + g];
    }
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t g = 0; g < groups; ++g) {
      float* p = ps + (h * groups + g) * kFastG;
      for (int t = 0; t < kFastG; ++t) p[t] = s[h][t] * vsft[g][t];
      bias[h * groups + g] = dot_lanes(s[h], vmft[g], kFastG);
    }
  const uint32_t* vc = c.v_codes + page * kFastG * (D * c.value_bits / 32);
  if (c.value_bits == 2) page_pv<Isa, 2, D>(vc, ps, bias, alpha, heads, sc.acc.data());
  else if (c.value_bits == 4) page_pv<Isa, 4, D>(vc, ps, bias, alpha, heads, sc.acc.data());
  else page_pv<Isa, 8, D>(vc, ps, bias, alpha, heads, sc.acc.data());
}

template <class Isa, typename T>
SPARQ_AI bool try_page_fast(const KiviCache& c, int64_t heads, int64_t page, Scratch& sc) {
  if (c.G != kFastG || !fast_dim(c.D) || heads > kFastMaxHeads) return false;
  if (c.D == kFastD && heads <= 2 && c.key_bits != 8 && c.value_bits != 8) {
    const int sel = (heads == 2 ? 4 : 0) + (c.key_bits == 4 ? 2 : 0) + (c.value_bits == 4 ? 1 : 0);
    switch (sel) {
      case 0: page_narrow<Isa, 2, 2, 1, T>(c, page, sc); break;
      case 1: page_narrow<Isa, 2, 4, 1, T>(c, page, sc); break;
      case 2: page_narrow<Isa, 4, 2, 1, T>(c, page, sc); break;
      case 3: page_narrow<Isa, 4, 4, 1, T>(c, page, sc); break;
      case 4: page_narrow<Isa, 2, 2, 2, T>(c, page, sc); break;
      case 5: page_narrow<Isa, 2, 4, 2, T>(c, page, sc); break;
      case 6: page_narrow<Isa, 4, 2, 2, T>(c, page, sc); break;
      default: page_narrow<Isa, 4, 4, 2, T>(c, page, sc); break;
    }
    return true;
  }
  if (c.D == 64) page_fast<Isa, T, 64>(c, heads, page, sc);
  else if (c.D == 128) page_fast<Isa, T, 128>(c, heads, page, sc);
  else page_fast<Isa, T, 256>(c, heads, page, sc);
  return true;
}

template <class Isa, typename T>
SPARQ_AI void run_item(const Item& it, Scratch& sc) {
  const KiviAttendParams& p = *it.p;
  const KiviCache& c = p.cache;
  const int64_t D = c.D, G = c.G, C = c.tail_cap();
  const int64_t heads = p.Hq / c.Hk, h0 = it.kvh * heads, bh = it.b * c.Hk + it.kvh;
  sc.q.resize(heads * D);
  sc.acc.assign(heads * D, 0.0f);
  sc.m.assign(heads, kNegInf);
  sc.l.assign(heads, 0.0f);
  const int64_t ld = padded(G);
  sc.s.resize(ld);
  sc.kt.resize(D * ld);  // columns past a block's n are read but their scores never used
  sc.vt.resize(G * D);
  const T* q = static_cast<const T*>(p.q) + (it.b * p.Hq + h0) * D;
  attn_cpu::load_f32<Isa>(q, sc.q.data(), heads * D);
  for (int64_t i = 0; i < heads * D; ++i) sc.q[i] *= p.scale;

  const int64_t kw = c.k_words(), vw = c.v_words(), vg = c.v_groups();
  for (int64_t pg = it.page_begin; pg < it.page_end; ++pg) {
    const int64_t page = bh * c.P + pg;
    if (try_page_fast<Isa, T>(c, heads, page, sc)) continue;
    dequant_k<Isa>(c.key_bits, c.k_codes + page * D * kw, static_cast<const T*>(c.k_scale) + page * D,
              static_cast<const T*>(c.k_min) + page * D, D, G, ld, sc.kt.data());
    dequant_v<Isa>(c.value_bits, c.v_codes + page * G * vw, static_cast<const T*>(c.v_scale) + page * G * vg,
              static_cast<const T*>(c.v_min) + page * G * vg, D, G, sc.vt.data());
    attend_block<Isa>(heads, D, G, ld, sc.kt.data(), sc.vt.data(), sc);
  }
  if (it.with_tail) {
    const int64_t L = p.lengths[it.b], Q = kivi_quantized_tokens(L, c.R, G);
    const T* kt = static_cast<const T*>(c.k_tail) + bh * C * D;
    const T* vt = static_cast<const T*>(c.v_tail) + bh * C * D;
    float row[kKvMaxHeadDim];
    for (int64_t t0 = Q; t0 < L; t0 += G) {
      const int64_t n = std::min(G, L - t0);
      for (int64_t t = 0; t < n; ++t) {
        const int64_t slot = (t0 + t) % C;
        attn_cpu::load_f32<Isa>(kt + slot * D, row, D);
        for (int64_t d = 0; d < D; ++d) sc.kt[d * ld + t] = row[d];
        attn_cpu::load_f32<Isa>(vt + slot * D, sc.vt.data() + t * D, D);
      }
      attend_block<Isa>(heads, D, n, ld, sc.kt.data(), sc.vt.data(), sc);
    }
  }
  for (int64_t h = 0; h < heads; ++h) {
    const float l = sc.l[h];
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    float* o = it.out + h * it.out_stride;
    for (int64_t d = 0; d < D; ++d) o[d] = sc.acc[h * D + d] * inv;
    it.lse[h * it.lse_stride] = l > 0.0f ? sc.m[h] + std::log(l) : kNegInf;
  }
}

#if SPARQ_ATTN_HAVE_LEVELS
template <typename T>
SPARQ_ATTN_TARGET_V4 void run_v4(const Item& it, Scratch& sc) { run_item<attn_cpu::IsaV4, T>(it, sc); }
template <typename T>
SPARQ_ATTN_TARGET_V3 void run_v3(const Item& it, Scratch& sc) { run_item<attn_cpu::IsaV3, T>(it, sc); }
#endif
template <typename T>
void run_baseline(const Item& it, Scratch& sc) { run_item<attn_cpu::IsaBaseline, T>(it, sc); }

template <typename T>
void run_typed(CpuLevel level, const Item& it, Scratch& sc) {
#if SPARQ_ATTN_HAVE_LEVELS
  if (level == CpuLevel::v4) return run_v4<T>(it, sc);
  if (level == CpuLevel::v3) return run_v3<T>(it, sc);
#endif
  run_baseline<T>(it, sc);
}

// Splits: enough items for ~4 per thread, each split keeping at least 8 pages.
int64_t choose_splits(int64_t items_per_split, int64_t pages, int threads) {
  const int64_t want = (4 * threads + items_per_split - 1) / items_per_split;
  return std::max<int64_t>(1, std::min(want, pages / 8));
}

template <typename T>
void store_row(const float* src, T* dst, int64_t D) {
  for (int64_t d = 0; d < D; ++d) dst[d] = Convert<T>::from(src[d]);
}

}  // namespace

Status kivi_attend_cpu(const KiviAttendParams& p, ThreadPool& pool) {
  const KiviCache& c = p.cache;
  for (int64_t b = 0; b < c.B; ++b)
    if (!c.length_ok(p.lengths[b])) return Status(Code::invalid_arg_value, device_error_message(kDeviceErrorLengthOutOfRange));
  if (c.B == 0 || p.Hq == 0) return Status::OK();
  const int64_t heads = p.Hq / c.Hk, D = c.D;
  int64_t max_pages = 0;
  for (int64_t b = 0; b < c.B; ++b) max_pages = std::max(max_pages, kivi_quantized_tokens(p.lengths[b], c.R, c.G) / c.G);
  int64_t splits = p.num_splits > 0 ? p.num_splits : choose_splits(c.B * c.Hk, max_pages, pool.size());
  splits = std::max<int64_t>(1, std::min<int64_t>(splits, std::max<int64_t>(1, max_pages)));

  const int64_t rows = c.B * p.Hq;
  std::vector<float> part, part_lse;
  try {
    part.resize(static_cast<size_t>(rows * splits * D));
    part_lse.resize(static_cast<size_t>(rows * splits));
  } catch (const std::bad_alloc&) {
    return Status(Code::oom, "out of host memory for the partial states of " + std::to_string(splits) + " splits");
  }
  const CpuLevel level = attn_cpu::cpu_level();
  pool.parallel_for(c.B * c.Hk * splits, 1, [&](int64_t begin, int64_t end) {
    thread_local Scratch sc;
    for (int64_t i = begin; i < end; ++i) {
      const int64_t split = i % splits, bh = i / splits;
      Item it;
      it.p = &p;
      it.b = bh / c.Hk;
      it.kvh = bh % c.Hk;
      const int64_t pages = kivi_quantized_tokens(p.lengths[it.b], c.R, c.G) / c.G;
      const int64_t per = (pages + splits - 1) / splits;
      it.page_begin = std::min(pages, split * per);
      it.page_end = std::min(pages, it.page_begin + per);
      it.with_tail = split == splits - 1;
      const int64_t row0 = (it.b * p.Hq + it.kvh * heads) * splits + split;
      it.out = part.data() + row0 * D;
      it.out_stride = splits * D;
      it.lse = part_lse.data() + row0;
      it.lse_stride = splits;
      switch (c.dtype) {
        case DType::f16: run_typed<f16_t>(level, it, sc); break;
        case DType::bf16: run_typed<bf16_t>(level, it, sc); break;
        default: run_typed<float>(level, it, sc); break;
      }
    }
  });
  // Merge the splits of each query head by LSE.
  pool.parallel_for(rows, 16, [&](int64_t begin, int64_t end) {
    float acc[kKvMaxHeadDim];
    for (int64_t r = begin; r < end; ++r) {
      const float* pl = part_lse.data() + r * splits;
      const float* po = part.data() + r * splits * D;
      float m = kNegInf;
      for (int64_t s = 0; s < splits; ++s) m = pl[s] > m ? pl[s] : m;
      float total = 0.0f;
      std::fill(acc, acc + D, 0.0f);
      if (m != kNegInf)
        for (int64_t s = 0; s < splits; ++s) {
          const float w = std::exp(pl[s] - m);
          if (w == 0.0f) continue;
          total += w;
          for (int64_t d = 0; d < D; ++d) acc[d] += w * po[s * D + d];
        }
      const float inv = total > 0.0f ? 1.0f / total : 0.0f;
      for (int64_t d = 0; d < D; ++d) acc[d] *= inv;
      if (p.lse) p.lse[r] = total > 0.0f ? m + std::log(total) : kNegInf;
      switch (c.dtype) {
        case DType::f16: store_row(acc, static_cast<f16_t*>(p.out) + r * D, D); break;
        case DType::bf16: store_row(acc, static_cast<bf16_t*>(p.out) + r * D, D); break;
        default: store_row(acc, static_cast<float*>(p.out) + r * D, D); break;
      }
    }
  });
  return Status::OK();
}

}  // namespace sparq
