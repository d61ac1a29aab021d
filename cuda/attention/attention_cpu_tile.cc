// The CPU attention tile (see attention_cpu_tile.h), compiled once per ISA level and dtype.
//
// Two layouts, picked by the number of query rows:
// - wide (>= kWideMinRows rows, prefill): Q is transposed once per tile, so the scores of a key
//   block come out as S^T [keys][rows] from an outer-product micro-kernel (broadcast a key
//   element, vector over query rows) that reads K rows where they are, without packing, and the
//   softmax is vectorised across rows.
// - narrow (decode, short queries): one dot product per (row, key), vector over D.
// In both, O += P V broadcasts p and runs a vector over D. float16/bfloat16 K and V blocks are
// converted to float32 once per block; float32 blocks are used in place.
#include "attention_cpu_tile.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <memory>
#include <new>

namespace sparq {
namespace attn_cpu {
namespace {

constexpr int kWideMinRows = 16;

template <typename T>
SPARQ_AI const T* at(const void* base, int64_t elements) {
  return static_cast<const T*>(base) + elements;
}

// The float32 rows [k0, k0 + n) of a [keys, D] matrix: in place for float32, else converted into buf.
template <class Isa, typename T>
SPARQ_AI const float* block_f32(const void* base, int64_t k0, int64_t n, int64_t D, float* buf) {
  if constexpr (std::is_same<T, float>::value) {
    return at<float>(base, k0 * D);
  } else {
    load_f32<Isa>(at<T>(base, k0 * D), buf, n * D);
    return buf;
  }
}

// The number of rows from r on (at most `most`) that see the same block keys as row r.
SPARQ_AI int same_range_rows(const int32_t* a, const int32_t* b, int r, int M, int most) {
  int count = 1;
  while (count < most && r + count < M && a[r + count] == a[r] && b[r + count] == b[r]) ++count;
  return count;
}

// Scores of `count` (<= 4) rows that see the same keys, narrow layout.
template <class Isa>
SPARQ_AI void qk_dot_group(int count, const float* q, int64_t D, const float* k, int64_t n, float* s) {
  switch (count) {
    case 4: qk_dot<Isa, 4>(q, D, k, D, n, D, s, kTileKeys); break;
    case 3: qk_dot<Isa, 3>(q, D, k, D, n, D, s, kTileKeys); break;
    case 2: qk_dot<Isa, 2>(q, D, k, D, n, D, s, kTileKeys); break;
    default: qk_dot<Isa, 1>(q, D, k, D, n, D, s, kTileKeys); break;
  }
}

// Rows [r, r + count) (count <= 4) over keys [j0, j1).
template <class Isa>
SPARQ_AI void pv_group(int count, const float* p, int64_t p_row, int64_t p_key, int64_t j0, int64_t j1,
                       const float* v, int64_t D, float* o) {
  switch (count) {
    case 4: pv_rows<Isa, 4>(p, p_row, p_key, j0, j1, v, D, o, D, D); break;
    case 3: pv_rows<Isa, 3>(p, p_row, p_key, j0, j1, v, D, o, D, D); break;
    case 2: pv_rows<Isa, 2>(p, p_row, p_key, j0, j1, v, D, o, D, D); break;
    default: pv_rows<Isa, 1>(p, p_row, p_key, j0, j1, v, D, o, D, D); break;
  }
}

// Online-softmax step of the wide layout over st [n][cols]: masks (when `partial`) the keys a row
// does not see, turns scores into probabilities in place and updates m, l; alpha[r] is the factor
// that rescales the row's accumulated output.
SPARQ_AI void softmax_wide(float* __restrict st, int64_t n, int64_t cols, bool partial, const int32_t* __restrict a,
                           const int32_t* __restrict b, float* __restrict m, float* __restrict l,
                           float* __restrict alpha) {
  if (partial) {
    for (int32_t j = 0; j < n; ++j)
      for (int64_t i = 0; i < cols; ++i) {
        float s = st[j * cols + i];
        st[j * cols + i] = (j >= a[i] && j < b[i]) ? s : kNegInf;
      }
  }
  alignas(64) float mb[kTileMaxRows], shift[kTileMaxRows], sum[kTileMaxRows];
  for (int64_t i = 0; i < cols; ++i) mb[i] = kNegInf;
  for (int64_t j = 0; j < n; ++j)
    for (int64_t i = 0; i < cols; ++i) {
      float s = st[j * cols + i];
      mb[i] = s > mb[i] ? s : mb[i];
    }
  for (int64_t i = 0; i < cols; ++i) {
    float mnew = mb[i] > m[i] ? mb[i] : m[i];
    // A row that has seen no finite score keeps max -inf; shift by 0 then so exp gives 0, not NaN.
    shift[i] = mnew == kNegInf ? 0.0f : mnew;
    alpha[i] = exp_f32(m[i] - shift[i]);
    m[i] = mnew;
    sum[i] = 0.0f;
  }
  for (int64_t j = 0; j < n; ++j)
    for (int64_t i = 0; i < cols; ++i) {
      float p = exp_f32(st[j * cols + i] - shift[i]);
      st[j * cols + i] = p;
      sum[i] += p;
    }
  for (int64_t i = 0; i < cols; ++i) l[i] = l[i] * alpha[i] + sum[i];
}

// Online-softmax step of one row of the narrow layout, over its visible keys s[a, b).
template <class Isa>
SPARQ_AI void softmax_row(float* __restrict s, int64_t a, int64_t b, float& m, float& l, float& alpha) {
  constexpr int L = Isa::kLanes;
  float lane[L];
  for (int i = 0; i < L; ++i) lane[i] = kNegInf;
  int64_t j = a;
  for (; j + L <= b; j += L)
    for (int i = 0; i < L; ++i) lane[i] = s[j + i] > lane[i] ? s[j + i] : lane[i];
  float mb = kNegInf;
  for (int i = 0; i < L; ++i) mb = lane[i] > mb ? lane[i] : mb;
  for (; j < b; ++j) mb = s[j] > mb ? s[j] : mb;
  const float mnew = mb > m ? mb : m;
  const float shift = mnew == kNegInf ? 0.0f : mnew;
  alpha = exp_f32(m - shift);
  m = mnew;
  for (int i = 0; i < L; ++i) lane[i] = 0.0f;
  j = a;
  for (; j + L <= b; j += L)
    for (int i = 0; i < L; ++i) {
      float p = exp_f32(s[j + i] - shift);
      s[j + i] = p;
      lane[i] += p;
    }
  float sum = 0.0f;
  for (; j < b; ++j) {
    s[j] = exp_f32(s[j] - shift);
    sum += s[j];
  }
  for (int i = 0; i < L; ++i) sum += lane[i];
  l = l * alpha + sum;
}

// The tile's scaled queries: wide Q^T [D][cols] (padding columns zero), narrow Q [M][D].
template <class Isa, typename T>
SPARQ_AI void load_queries(const TileJob& job, bool wide, int64_t cols, float* __restrict qbuf) {
  const int64_t D = job.D;
  const int H = job.heads, M = job.heads * job.positions;
  alignas(64) float row[kCpuMaxHeadDim];
  for (int t = 0; t < job.positions; ++t)
    for (int g = 0; g < H; ++g) {
      const int r = t * H + g;
      load_f32<Isa>(at<T>(job.q, g * job.q_head_stride + t * job.q_pos_stride), row, D);
      if (wide) {
        for (int64_t d = 0; d < D; ++d) qbuf[d * cols + r] = row[d] * job.scale;
      } else {
        for (int64_t d = 0; d < D; ++d) qbuf[r * D + d] = row[d] * job.scale;
      }
    }
  if (wide)
    for (int64_t d = 0; d < D; ++d)
      for (int64_t r = M; r < cols; ++r) qbuf[d * cols + r] = 0.0f;
}

// Row r sees keys [a[r], b[r]) of the block [k0, k0 + n) (a = b = 0: none; padding rows up to
// `cols` see none). Returns true when every row sees the whole block.
SPARQ_AI bool block_ranges(const TileJob& job, int64_t k0, int64_t n, int64_t cols, int32_t* a, int32_t* b) {
  const int H = job.heads;
  bool full = true;
  for (int t = 0; t < job.positions; ++t) {
    int64_t lo = std::clamp<int64_t>(job.lo[t] - k0, 0, n), hi = std::clamp<int64_t>(job.hi[t] - k0, 0, n);
    if (lo >= hi) lo = hi = 0;
    full = full && lo == 0 && hi == n;
    for (int g = 0; g < H; ++g) {
      a[t * H + g] = static_cast<int32_t>(lo);
      b[t * H + g] = static_cast<int32_t>(hi);
    }
  }
  for (int64_t r = H * job.positions; r < cols; ++r) a[r] = b[r] = 0;
  return full;
}

// O += P V for one block. A masked key has p = 0, so with `use_union` all rows run over the union
// of their ranges in groups of kPvRows; otherwise (a V row there is Inf or NaN, and 0 * NaN would
// leak into rows that do not see it; or the narrow layout, which leaves p outside a row's range
// unset) only rows with identical ranges are grouped.
template <class Isa>
SPARQ_AI void accumulate_pv(const float* p, int64_t p_row, int64_t p_key, const int32_t* a, const int32_t* b, int M,
                            bool use_union, const float* v, int64_t D, float* o) {
  int32_t ua = INT32_MAX, ub = 0;
  for (int r = 0; r < M; ++r)
    if (a[r] < b[r]) {
      ua = std::min(ua, a[r]);
      ub = std::max(ub, b[r]);
    }
  for (int r = 0; r < M;) {
    if (use_union) {
      const int count = std::min(Isa::kPvRows, M - r);
      pv_group<Isa>(count, p + r * p_row, p_row, p_key, ua, ub, v, D, o + r * D);
      r += count;
    } else if (a[r] < b[r]) {
      const int count = same_range_rows(a, b, r, M, Isa::kPvRows);
      pv_group<Isa>(count, p + r * p_row, p_row, p_key, a[r], b[r], v, D, o + r * D);
      r += count;
    } else {
      ++r;
    }
  }
}

template <class Isa, typename T>
SPARQ_AI void attend(const TileJob& job, TileBuffers& buf) {
  static_assert(Isa::kPvRows <= 4 && Isa::kDotRows <= 4, "pv_group and qk_dot_group handle up to 4 rows");
  static_assert(16 % Isa::kLanes == 0 && Isa::kQkCols % Isa::kLanes == 0 && Isa::kPvCols % Isa::kLanes == 0,
                "tiles are whole vectors");
  const int64_t D = job.D;
  const int M = job.heads * job.positions;
  const bool wide = M >= kWideMinRows;
  const int64_t cols = (M + 15) / 16 * 16;  // wide: query rows padded to whole 16-float vectors
  std::fill(buf.m, buf.m + kTileMaxRows, kNegInf);
  std::fill(buf.l, buf.l + kTileMaxRows, 0.0f);
  std::fill(buf.o, buf.o + M * D, 0.0f);

  // The keys some row sees: the union of the rows' ranges, which is contiguous (they move with the
  // query position). Blocks outside it are never touched.
  int64_t kmin = INT64_MAX, kmax = 0;
  for (int t = 0; t < job.positions; ++t)
    if (job.lo[t] < job.hi[t]) {
      kmin = std::min(kmin, job.lo[t]);
      kmax = std::max(kmax, job.hi[t]);
    }
  if (kmin >= kmax) return;
  load_queries<Isa, T>(job, wide, cols, buf.q);

  alignas(64) int32_t a[kTileMaxRows], b[kTileMaxRows];
  alignas(64) float alpha[kTileMaxRows];
  for (int64_t k0 = kmin; k0 < kmax; k0 += kTileKeys) {
    const int64_t n = std::min(kTileKeys, kmax - k0);
    const bool full = block_ranges(job, k0, n, cols, a, b);
    const float* kb = block_f32<Isa, T>(job.k, k0, n, D, buf.k);
    if (wide) {  // buf.s = S^T [n][cols]
      qk_wide<Isa>(kb, D, n, buf.q, cols, D, buf.s);
      softmax_wide(buf.s, n, cols, !full, a, b, buf.m, buf.l, alpha);
    } else {  // buf.s = S [M][kTileKeys]
      for (int r = 0; r < M;) {
        const int count = same_range_rows(a, b, r, M, Isa::kDotRows);
        if (a[r] < b[r]) qk_dot_group<Isa>(count, buf.q + r * D, D, kb + a[r] * D, b[r] - a[r], buf.s + r * kTileKeys + a[r]);
        for (int i = r; i < r + count; ++i) {
          alpha[i] = 1.0f;
          if (a[i] < b[i]) softmax_row<Isa>(buf.s + i * kTileKeys, a[i], b[i], buf.m[i], buf.l[i], alpha[i]);
        }
        r += count;
      }
    }
    for (int r = 0; r < M; ++r)
      if (alpha[r] != 1.0f)
        for (int64_t d = 0; d < D; ++d) buf.o[r * D + d] *= alpha[r];

    const float* vb = block_f32<Isa, T>(job.v, k0, n, D, buf.v);
    const bool use_union = wide && (full || all_finite(vb, n * D));
    accumulate_pv<Isa>(buf.s, wide ? 1 : kTileKeys, wide ? cols : 1, a, b, M, use_union, vb, D, buf.o);
  }
}

template <class Isa, typename T>
SPARQ_AI void finish(const TileJob& job, const TileBuffers& buf, const TileOut& dst) {
  const int64_t D = job.D;
  for (int t = 0; t < job.positions; ++t)
    for (int g = 0; g < job.heads; ++g) {
      const int r = t * job.heads + g;
      const float l = buf.l[r];
      T* out = static_cast<T*>(dst.out) + g * dst.out_head_stride + t * dst.out_pos_stride;
      if (l == 0.0f) {
        std::memset(static_cast<void*>(out), 0, static_cast<size_t>(D) * sizeof(T));  // +0.0 in every float format
      } else {
        store_scaled<Isa>(buf.o + r * D, 1.0f / l, out, D);
      }
      if (dst.lse)
        dst.lse[g * dst.lse_head_stride + t * dst.lse_pos_stride] = l == 0.0f ? kNegInf : buf.m[r] + std::log(l);
    }
}

// One entry point per ISA level and dtype (each with its own stack frame of block buffers).
#if SPARQ_ATTN_HAVE_LEVELS
template <typename T>
SPARQ_ATTN_TARGET_V4 void attend_v4(const TileJob& job, TileBuffers& buf) { attend<IsaV4, T>(job, buf); }
template <typename T>
SPARQ_ATTN_TARGET_V3 void attend_v3(const TileJob& job, TileBuffers& buf) { attend<IsaV3, T>(job, buf); }
template <typename T>
SPARQ_ATTN_TARGET_V4 void finish_v4(const TileJob& job, const TileBuffers& buf, const TileOut& dst) {
  finish<IsaV4, T>(job, buf, dst);
}
template <typename T>
SPARQ_ATTN_TARGET_V3 void finish_v3(const TileJob& job, const TileBuffers& buf, const TileOut& dst) {
  finish<IsaV3, T>(job, buf, dst);
}
#endif
template <typename T>
void attend_baseline(const TileJob& job, TileBuffers& buf) { attend<IsaBaseline, T>(job, buf); }
template <typename T>
void finish_baseline(const TileJob& job, const TileBuffers& buf, const TileOut& dst) {
  finish<IsaBaseline, T>(job, buf, dst);
}

template <typename T>
void attend_typed(const TileJob& job, TileBuffers& buf) {
#if SPARQ_ATTN_HAVE_LEVELS
  if (job.level == CpuLevel::v4) return attend_v4<T>(job, buf);
  if (job.level == CpuLevel::v3) return attend_v3<T>(job, buf);
#endif
  attend_baseline<T>(job, buf);
}

template <typename T>
void finish_typed(const TileJob& job, const TileBuffers& buf, const TileOut& dst) {
#if SPARQ_ATTN_HAVE_LEVELS
  if (job.level == CpuLevel::v4) return finish_v4<T>(job, buf, dst);
  if (job.level == CpuLevel::v3) return finish_v3<T>(job, buf, dst);
#endif
  finish_baseline<T>(job, buf, dst);
}

}  // namespace

TileBuffers* tile_buffers() {
  thread_local std::unique_ptr<TileBuffers> buffers;
  if (!buffers) buffers.reset(new (std::nothrow) TileBuffers);
  return buffers.get();
}

void attend_tile(const TileJob& job, TileBuffers& buf) {
  switch (job.dtype) {
    case DType::f16: return attend_typed<f16_t>(job, buf);
    case DType::bf16: return attend_typed<bf16_t>(job, buf);
    default: return attend_typed<float>(job, buf);
  }
}

void finish_tile(const TileJob& job, const TileBuffers& buf, const TileOut& dst) {
  switch (dst.out_dtype) {
    case DType::f16: return finish_typed<f16_t>(job, buf, dst);
    case DType::bf16: return finish_typed<bf16_t>(job, buf, dst);
    default: return finish_typed<float>(job, buf, dst);
  }
}

}  // namespace attn_cpu
}  // namespace sparq
