// Fused KIVI decode attention on CUDA, two kernels.
//
// Fast kernel (G a multiple of 32, 16-byte aligned cache, the smem budget below): bandwidth first.
// Grid (splits, KV heads x head chunks, B), 4 warps per block; the block's pages are dealt to its
// warps round-robin and each warp runs its own online softmax, so the page loop has no block
// barrier at all. Per warp, a 3-stage cp.async ring of RAW pages (K codes, V codes, the four
// metadata rows: 3 KB for D = 128, G = 32, 2-bit, f16) keeps the next two pages in flight while
// the current one is computed (about 2 x 3 KB per warp, 40 KB per SM with 5 blocks resident).
// Nothing is dequantized into shared memory; per page and query head:
//   scores   s_t = sum_d (q_d k_scale_d) code_dt + sum_d q_d k_min_d  (lane = token, loop over d)
//   values   o_d += sum_t (p_t v_scale_tg) code_td + sum_t p_t v_min_tg (lane = channels d = lane + 32i)
// with codes turned into floats by or-ing them into the mantissa of 2^23. Per 32-token window:
// warp shuffles for the softmax and 3 __syncwarp. At the end the 4 warps merge by LSE through
// shared memory (one __syncthreads), then the splits merge in the combine kernel.
//
// General kernel (every other shape): one block per (split, KV head x head chunk, batch) serves up
// to kMaxRows query heads of its KV head, so every code word is read once per step. The block walks
// its pages (and, in the last split, the full-precision tail) in sub-blocks of kTile tokens:
//   1. dequantize the K sub-block into shared memory as [D][kTile] floats and the V sub-block as
//      [kTile][D] (one thread per code word: shifts and masks, code * scale + min);
//   2. scores q.k in fp32 (log2 units), one thread per (head, token);
//   3. online-softmax update, one warp per head;
//   4. P.V, one thread per output dim, the accumulators of every head in registers.
// Splits write normalised partial outputs + LSE, merged by a combine kernel (as attention.decode).
#include <cuda_runtime.h>

#include <atomic>
#include <string>

#include "../attention/attention_cuda.cuh"
#include "kivi_math.h"
#include "kv.h"

namespace sparq {
namespace {

constexpr int kThreads = 128;
constexpr int kMaxRows = 8;  // query heads per block
constexpr int kMaxDims = 2;  // output dims per thread: D <= kThreads * kMaxDims = 256
constexpr int kMaxSplits = 1024;
constexpr int kParts = 4;    // threads per score at most

struct AttendArgs {
  KiviAttendParams p;
  int64_t heads = 1;  // query heads per KV head
  int rows = 1;       // query heads per block (<= kMaxRows)
  int row_chunks = 1;
  int splits = 1;
  float* ws_out = nullptr;  // splits > 1: [B * Hq, splits, D]
  float* ws_lse = nullptr;  //             [B * Hq, splits] (log2 units)
  int q_bytes = 0;          // fast kernel: shared q, then one region per warp
  int region_bytes = 0;
};

// Sequence b's length L (0 if invalid: reported once), its quantized tokens Q and the pages
// [pg0, pg1) of split `split`.
struct Span {
  int64_t L, Q, pg0, pg1;
};
__device__ Span span_of(const AttendArgs& a, int64_t b, int split) {
  const KiviCache& c = a.p.cache;
  int64_t L = a.p.lengths[b];
  if (!c.length_ok(L)) {
    if (threadIdx.x == 0 && split == 0 && blockIdx.y == 0) attn::report_data_error(a.p.error_word, kDeviceErrorLengthOutOfRange);
    L = 0;
  }
  const int64_t Q = kivi_quantized_tokens(L, c.R, c.G), pages = Q / c.G;
  const int64_t per = (pages + a.splits - 1) / a.splits;
  const int64_t pg0 = split * per < pages ? split * per : pages;
  return {L, Q, pg0, pg0 + per < pages ? pg0 + per : pages};
}

template <int kTile>
constexpr int smem_floats(int rows, int D) {
  return rows * D + D * (kTile + 1) + kTile * (D + 1) + kParts * kMaxRows * kTile + 3 * rows;
}

template <int kTile>
struct Smem {
  float* q;      // [rows][D], scaled by scale * log2(e)
  float* kt;     // [D][kTile + 1]
  float* vt;     // [kTile][D + 1]
  float* s;      // [kParts][kMaxRows][kTile]: partial scores; part 0 then holds the probabilities
  float* alpha;  // [rows]: rescale of the previous accumulators
  float* m;      // [rows]: running max (log2 units)
  float* l;      // [rows]: running sum
  __device__ Smem(float* base, int rows, int D)
      : q(base), kt(q + rows * D), vt(kt + D * (kTile + 1)), s(vt + kTile * (D + 1)), alpha(s + kParts * kMaxRows * kTile), m(alpha + rows), l(m + rows) {}
};

// Steps 2-4 for n tokens already in kt/vt.
template <int kTile>
__device__ void attend_tile(const Smem<kTile>& sm, int rows, int D, int n, float (&acc)[kMaxRows][kMaxDims]) {
  __syncthreads();  // kt/vt written
  // With few (head, token) pairs, up to kParts threads share a dot product (part p takes dims
  // p, p + parts, ...); a warp's lanes have one part and consecutive tokens: no bank conflicts.
  const int pairs = rows * n;
  const int parts = pairs >= kThreads ? 1 : (kThreads / pairs < kParts ? kThreads / pairs : kParts);
  for (int idx = threadIdx.x; idx < pairs * parts; idx += kThreads) {
    const int part = idx / pairs, rt = idx - part * pairs, r = rt / n, t = rt - r * n;
    const float* q = sm.q + r * D;
    const float* k = sm.kt + t;
    float s = 0.0f;
    for (int d = part; d < D; d += parts) s = fmaf(q[d], k[d * (kTile + 1)], s);
    sm.s[(part * kMaxRows + r) * kTile + t] = s;
  }
  __syncthreads();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  for (int r = warp; r < rows; r += kThreads / 32) {
    float s = attn::kNegInf;
    if (lane < n) {
      s = sm.s[r * kTile + lane];
      for (int part = 1; part < parts; ++part) s += sm.s[(part * kMaxRows + r) * kTile + lane];
    }
    const float mold = sm.m[r];
    const float mnew = fmaxf(mold, attn::warp_max(s));
    const float off = attn::softmax_offset(mnew);
    const float pr = lane < n ? exp2f(s - off) : 0.0f;
    const float sum = attn::warp_sum(pr);
    if (lane < n) sm.s[r * kTile + lane] = pr;
    if (lane == 0) {
      const float a = exp2f(mold - off);
      sm.alpha[r] = a;
      sm.l[r] = sm.l[r] * a + sum;
      sm.m[r] = mnew;
    }
  }
  __syncthreads();
#pragma unroll
  for (int r = 0; r < kMaxRows; ++r) {
    if (r < rows) {
      const float a = sm.alpha[r];
      const float* pr = sm.s + r * kTile;
#pragma unroll
      for (int i = 0; i < kMaxDims; ++i) {
        const int d = threadIdx.x + i * kThreads;
        if (d < D) {
          float o = acc[r][i] * a;
          for (int t = 0; t < n; ++t) o = fmaf(pr[t], sm.vt[t * (D + 1) + d], o);
          acc[r][i] = o;
        }
      }
    }
  }
  __syncthreads();  // kt/vt/s are rewritten next
}

template <typename T, int kTile>
__global__ void __launch_bounds__(kThreads) kivi_attend_kernel(AttendArgs a) {
  extern __shared__ float smem_raw[];
  const KiviAttendParams& p = a.p;
  const KiviCache& c = p.cache;
  const int D = static_cast<int>(c.D), G = static_cast<int>(c.G);
  const int split = blockIdx.x;
  const int chunk = static_cast<int>(blockIdx.y % a.row_chunks);
  const int64_t kvh = blockIdx.y / a.row_chunks, b = blockIdx.z;
  const int64_t head0 = kvh * a.heads + static_cast<int64_t>(chunk) * a.rows;
  const int rows = static_cast<int>(a.heads - chunk * a.rows < a.rows ? a.heads - chunk * a.rows : a.rows);
  Smem<kTile> sm(smem_raw, rows, D);

  const Span sp = span_of(a, b, split);
  const int64_t L = sp.L, Q = sp.Q, pg0 = sp.pg0, pg1 = sp.pg1;
  const bool with_tail = split == a.splits - 1;

  const float qscale = p.scale * attn::kLog2e;
  const T* q = static_cast<const T*>(p.q) + (b * p.Hq + head0) * D;
  for (int i = threadIdx.x; i < rows * D; i += kThreads) sm.q[i] = attn::to_f32(q[i]) * qscale;
  for (int r = threadIdx.x; r < rows; r += kThreads) {
    sm.m[r] = attn::kNegInf;
    sm.l[r] = 0.0f;
  }
  float acc[kMaxRows][kMaxDims];
#pragma unroll
  for (int r = 0; r < kMaxRows; ++r)
#pragma unroll
    for (int i = 0; i < kMaxDims; ++i) acc[r][i] = 0.0f;

  const int64_t bh = b * c.Hk + kvh;
  const int kb = c.key_bits, vb = c.value_bits, kper = 32 / kb, vper = 32 / vb;
  const uint32_t kmask = (1u << kb) - 1u, vmask = (1u << vb) - 1u;
  const int64_t kw = c.k_words(), vw = c.v_words(), vg = c.v_groups();
  const T* ks = static_cast<const T*>(c.k_scale);
  const T* km = static_cast<const T*>(c.k_min);
  const T* vs = static_cast<const T*>(c.v_scale);
  const T* vm = static_cast<const T*>(c.v_min);

  for (int64_t pg = pg0; pg < pg1; ++pg) {
    const int64_t page = bh * c.P + pg;
    const uint32_t* kc = c.k_codes + page * D * kw;
    for (int off = 0; off < G; off += kTile) {
      const int n = G - off < kTile ? G - off : kTile;
      // One thread per code word: one load of the word, its scale and min, kper codes unpacked.
      // K: lanes take consecutive words (coalesced); smem rows of kTile + 1 keep them conflict-free.
      const int kwords = n / kper;
      for (int idx = threadIdx.x; idx < D * kwords; idx += kThreads) {
        const int d = idx / kwords, j = idx - d * kwords;
        const uint32_t w = kc[d * kw + off / kper + j];
        const float s = attn::to_f32(ks[page * D + d]), m = attn::to_f32(km[page * D + d]);
        float* dst = sm.kt + d * (kTile + 1) + j * kper;
        for (int i = 0; i < kper; ++i) dst[i] = kivi::dequant((w >> (i * kb)) & kmask, s, m);
      }
      // V: lanes take consecutive tokens of one word column; rows of D + 1 floats keep the stores
      // conflict-free.
      const int vwords = D / vper;
      for (int idx = threadIdx.x; idx < n * vwords; idx += kThreads) {
        const int j = idx / n, t = idx - j * n;
        const int64_t slot = page * G + off + t;
        const uint32_t w = c.v_codes[slot * vw + j];
        const int64_t g = slot * vg + j * vper / G;
        const float s = attn::to_f32(vs[g]), m = attn::to_f32(vm[g]);
        float* dst = sm.vt + t * (D + 1) + j * vper;
        for (int i = 0; i < vper; ++i) dst[i] = kivi::dequant((w >> (i * vb)) & vmask, s, m);
      }
      attend_tile<kTile>(sm, rows, D, n, acc);
    }
  }
  if (with_tail) {
    const int64_t C = c.tail_cap();
    const T* kt = static_cast<const T*>(c.k_tail) + bh * C * D;
    const T* vt = static_cast<const T*>(c.v_tail) + bh * C * D;
    for (int64_t t0 = Q; t0 < L; t0 += kTile) {
      const int n = static_cast<int>(L - t0 < kTile ? L - t0 : kTile);
      for (int idx = threadIdx.x; idx < n * D; idx += kThreads) {
        const int t = idx / D, d = idx - t * D;
        const int64_t row = ((t0 + t) % C) * D;
        sm.kt[d * (kTile + 1) + t] = attn::to_f32(kt[row + d]);
        sm.vt[t * (D + 1) + d] = attn::to_f32(vt[row + d]);
      }
      attend_tile<kTile>(sm, rows, D, n, acc);
    }
  }
  __syncthreads();
#pragma unroll
  for (int r = 0; r < kMaxRows; ++r) {  // compile-time r keeps acc in registers
    if (r >= rows) break;
    const int64_t row = b * p.Hq + head0 + r;
    const float l = sm.l[r], m = sm.m[r];
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
#pragma unroll
    for (int i = 0; i < kMaxDims; ++i) {
      const int d = threadIdx.x + i * kThreads;
      if (d >= D) break;
      const float val = acc[r][i] * inv;
      if (a.splits == 1) static_cast<T*>(p.out)[row * D + d] = attn::from_f32<T>(val);
      else a.ws_out[(row * a.splits + split) * D + d] = val;
    }
    if (threadIdx.x == 0) {
      const float lse2 = l > 0.0f ? m + log2f(l) : attn::kNegInf;
      if (a.splits > 1) a.ws_lse[row * a.splits + split] = lse2;
      else if (p.lse) p.lse[row] = lse2 * attn::kLn2;
    }
  }
}

// One block per (batch, query head) row: weights of the splits by LSE, then their weighted mean.
template <typename T>
__global__ void __launch_bounds__(kThreads) kivi_combine_kernel(const float* __restrict ws_out, const float* __restrict ws_lse, int splits,
                                                                int D, T* __restrict out, float* __restrict lse) {
  __shared__ float weight[kMaxSplits];
  __shared__ float red[kThreads / 32];
  const int64_t row = blockIdx.x;
  const float* rl = ws_lse + row * splits;
  float mx = attn::kNegInf;
  for (int s = threadIdx.x; s < splits; s += kThreads) mx = fmaxf(mx, rl[s]);
  mx = attn::warp_max(mx);
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = mx;
  __syncthreads();
  mx = red[0];
  for (int w = 1; w < kThreads / 32; ++w) mx = fmaxf(mx, red[w]);
  __syncthreads();
  const float off = attn::softmax_offset(mx);
  float sum = 0.0f;
  for (int s = threadIdx.x; s < splits; s += kThreads) {
    weight[s] = exp2f(rl[s] - off);
    sum += weight[s];
  }
  sum = attn::warp_sum(sum);
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = sum;
  __syncthreads();
  sum = 0.0f;
  for (int w = 0; w < kThreads / 32; ++w) sum += red[w];
  const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
  const float* ro = ws_out + row * splits * D;
  for (int d = threadIdx.x; d < D; d += kThreads) {
    float acc = 0.0f;
    for (int s = 0; s < splits; ++s) acc = fmaf(weight[s], ro[static_cast<int64_t>(s) * D + d], acc);
    out[row * D + d] = attn::from_f32<T>(acc * inv);
  }
  if (lse && threadIdx.x == 0) lse[row] = sum > 0.0f ? (mx + log2f(sum)) * attn::kLn2 : attn::kNegInf;
}

// ---------------------------------------------------------------- fast kernel (see the top)
namespace fast {

constexpr int kWarps = 4;
constexpr int kStages = 3;  // pages per warp: one computed, two in flight

// 16 bytes global -> shared; asynchronous (cp.async, L2 only) from sm_80, a plain copy before.
__device__ __forceinline__ void copy16(void* dst, const void* src) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(src) : "memory");
#else
  *static_cast<uint4*>(dst) = __ldg(static_cast<const uint4*>(src));
#endif
}
__device__ __forceinline__ void commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
// Waits until at most N of this thread's groups are pending.
template <int N>
__device__ __forceinline__ void wait_pending() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#endif
}

// A code (0..255) as a float: or it into the mantissa of 2^23, subtract 2^23 (exact).
__device__ __forceinline__ float code_float(uint32_t code) { return __uint_as_float(code | 0x4B000000u) - 8388608.0f; }

// Sizes of one raw page in a stage buffer: K codes, V codes, then kScale, kMin, vScale, vMin
// (D elements each). All are multiples of 16 bytes because G and D are multiples of 32.
struct Geo {
  int D, G, kb, vb, kw, vw, vg, kcb, vcb, mb;
  __device__ int unit() const { return kcb + vcb + 4 * mb; }
};

__device__ __forceinline__ void copy_bytes(char* dst, const void* src, int bytes, int lane) {
  const char* s = static_cast<const char*>(src);
  for (int i = lane * 16; i < bytes; i += 32 * 16) copy16(dst + i, s + i);
}

// Issues the copies of page `page` (an index into [B * Hk * P]) into buf.
template <typename T>
__device__ void load_page(char* buf, const KiviCache& c, const Geo& g, int64_t page, int lane) {
  copy_bytes(buf, c.k_codes + page * g.D * g.kw, g.kcb, lane);
  copy_bytes(buf + g.kcb, c.v_codes + page * g.G * g.vw, g.vcb, lane);
  char* meta = buf + g.kcb + g.vcb;
  const int64_t mo = page * g.D;  // also the page's vScale/vMin offset: G * (D / G) = D per page
  copy_bytes(meta, static_cast<const T*>(c.k_scale) + mo, g.mb, lane);
  copy_bytes(meta + g.mb, static_cast<const T*>(c.k_min) + mo, g.mb, lane);
  copy_bytes(meta + 2 * g.mb, static_cast<const T*>(c.v_scale) + mo, g.mb, lane);
  copy_bytes(meta + 3 * g.mb, static_cast<const T*>(c.v_min) + mo, g.mb, lane);
}

// One warp's running softmax: m, l are warp-uniform; acc[r][i] is output dim lane + 32 i of head r.
template <int kRows, int kDims>
struct State {
  float m[kRows], l[kRows], acc[kRows][kDims];
};

// Online-softmax step for one 32-token window; s[r] is this lane's score (-inf: no token).
template <int kRows, int kDims>
__device__ __forceinline__ void softmax_step(State<kRows, kDims>& st, const float (&s)[kRows], float (&p)[kRows], int rows) {
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    if (r >= rows) break;
    const float mnew = fmaxf(st.m[r], attn::warp_max(s[r]));
    const float off = attn::softmax_offset(mnew);
    p[r] = exp2f(s[r] - off);
    const float a = exp2f(st.m[r] - off);
    st.l[r] = st.l[r] * a + attn::warp_sum(p[r]);
    st.m[r] = mnew;
#pragma unroll
    for (int i = 0; i < kDims; ++i) st.acc[r][i] *= a;
  }
}

// Per-warp shared scratch: qs [rows][D] (q * kScale of the current page), at [rows][32][vg]
// (p * vScale of the window's tokens).
template <typename T, int kRows, int kDims>
__device__ void attend_page(const char* buf, const Geo& g, const float* sq, float* qs, float* at, int rows, int dims, int lane,
                            State<kRows, kDims>& st) {
  const int D = g.D;
  const uint32_t* kc = reinterpret_cast<const uint32_t*>(buf);
  const uint32_t* vc = reinterpret_cast<const uint32_t*>(buf + g.kcb);
  const T* ks = reinterpret_cast<const T*>(buf + g.kcb + g.vcb);
  const T *km = ks + D, *vs = km + D, *vm = vs + D;
  // Per page: q * kScale into qs, and the min term q . kMin (warp-uniform).
  float qm[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    if (r >= rows) break;
    float part = 0.0f;
    for (int d = lane; d < D; d += 32) {
      const float qv = sq[r * D + d];
      qs[r * D + d] = qv * attn::to_f32(ks[d]);
      part = fmaf(qv, attn::to_f32(km[d]), part);
    }
    qm[r] = attn::warp_sum(part);
  }
  __syncwarp();
  const int kper = 32 / g.kb, vper = 32 / g.vb;
  const uint32_t kmask = (1u << g.kb) - 1u, vmask = (1u << g.vb) - 1u;
  int vcol[kDims], vsh[kDims], vgi[kDims];  // where output dim lane + 32 i sits in a V row
#pragma unroll
  for (int i = 0; i < kDims; ++i) {
    const int d = lane + 32 * i;
    vcol[i] = d / vper;
    vsh[i] = (d - vcol[i] * vper) * g.vb;
    vgi[i] = 32 * i / g.G;  // the same group for every lane: G is a multiple of 32
  }
  for (int w0 = 0; w0 < g.G; w0 += 32) {
    // Scores: lane = token w0 + lane; its code of channel d is in word d * kw + col.
    const int off = w0 + lane, col = off / kper, sh = (off - col * kper) * g.kb;
    float s[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) s[r] = r < rows ? qm[r] : 0.0f;
    for (int d = 0; d < D; d += 4) {
      float f[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) f[j] = code_float((kc[(d + j) * g.kw + col] >> sh) & kmask);
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        if (r >= rows) break;
        const float4 w = *reinterpret_cast<const float4*>(qs + r * D + d);
        s[r] = fmaf(w.x, f[0], fmaf(w.y, f[1], fmaf(w.z, f[2], fmaf(w.w, f[3], s[r]))));
      }
    }
    float p[kRows];
    softmax_step(st, s, p, rows);
    // Value coefficients of this lane's token; the min term reduced over the window at once.
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      if (r >= rows) break;
      for (int gi = 0; gi < g.vg; ++gi) {
        at[(r * 32 + lane) * g.vg + gi] = p[r] * attn::to_f32(vs[off * g.vg + gi]);
        const float mt = attn::warp_sum(p[r] * attn::to_f32(vm[off * g.vg + gi]));
#pragma unroll
        for (int i = 0; i < kDims; ++i)
          if (i < dims && vgi[i] == gi) st.acc[r][i] += mt;
      }
    }
    __syncwarp();
    for (int t = 0; t < 32; ++t) {
      const uint32_t* row = vc + (w0 + t) * g.vw;
#pragma unroll
      for (int i = 0; i < kDims; ++i) {
        if (i >= dims) break;
        const float f = code_float((row[vcol[i]] >> vsh[i]) & vmask);
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
          if (r >= rows) break;
          st.acc[r][i] = fmaf(at[(r * 32 + t) * g.vg + vgi[i]], f, st.acc[r][i]);
        }
      }
    }
    __syncwarp();  // at is rewritten by the next window
  }
}

// Full-precision tail tokens [t0, min(t0 + 32, L)), lane = token for the scores.
template <typename T, int kRows, int kDims>
__device__ void attend_tail(const T* kt, const T* vt, int64_t C, int D, int64_t t0, int64_t L, const float* sq, int rows, int dims, int lane,
                            State<kRows, kDims>& st) {
  const int64_t tok = t0 + lane;
  const bool live = tok < L;
  const T* krow = kt + (live ? tok % C : 0) * D;
  float s[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) s[r] = 0.0f;
  for (int d = 0; d < D; ++d) {
    const float k = attn::to_f32(krow[d]);
#pragma unroll
    for (int r = 0; r < kRows; ++r)
      if (r < rows) s[r] = fmaf(sq[r * D + d], k, s[r]);
  }
#pragma unroll
  for (int r = 0; r < kRows; ++r)
    if (!live) s[r] = attn::kNegInf;
  float p[kRows];
  softmax_step(st, s, p, rows);
  const int n = static_cast<int>(L - t0 < 32 ? L - t0 : 32);
  for (int t = 0; t < n; ++t) {
    const T* vrow = vt + ((t0 + t) % C) * D;
    float pt[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) pt[r] = r < rows ? __shfl_sync(0xffffffffu, p[r], t) : 0.0f;
#pragma unroll
    for (int i = 0; i < kDims; ++i) {
      if (i >= dims) break;
      const float v = attn::to_f32(vrow[lane + 32 * i]);
#pragma unroll
      for (int r = 0; r < kRows; ++r)
        if (r < rows) st.acc[r][i] = fmaf(pt[r], v, st.acc[r][i]);
    }
  }
}

template <typename T, int kRows, int kDims>
__global__ void __launch_bounds__(kWarps * 32) kivi_attend_fast_kernel(AttendArgs a) {
  extern __shared__ float4 smem_fast[];
  const KiviAttendParams& p = a.p;
  const KiviCache& c = p.cache;
  const int split = blockIdx.x;
  const int chunk = static_cast<int>(blockIdx.y % a.row_chunks);
  const int64_t kvh = blockIdx.y / a.row_chunks, b = blockIdx.z;
  const int64_t head0 = kvh * a.heads + static_cast<int64_t>(chunk) * a.rows;
  const int rows = static_cast<int>(a.heads - chunk * a.rows < a.rows ? a.heads - chunk * a.rows : a.rows);
  Geo g;
  g.D = static_cast<int>(c.D);
  g.G = static_cast<int>(c.G);
  g.kb = c.key_bits;
  g.vb = c.value_bits;
  g.kw = static_cast<int>(c.k_words());
  g.vw = static_cast<int>(c.v_words());
  g.vg = static_cast<int>(c.v_groups());
  g.kcb = g.D * g.kw * 4;
  g.vcb = g.G * g.vw * 4;
  g.mb = g.D * static_cast<int>(sizeof(T));
  const int D = g.D, dims = D / 32;

  const Span sp = span_of(a, b, split);
  const int64_t L = sp.L, Q = sp.Q, pg0 = sp.pg0, pg1 = sp.pg1;

  float* sq = reinterpret_cast<float*>(smem_fast);  // [rows][D], scaled by scale * log2(e)
  const float qscale = p.scale * attn::kLog2e;
  const T* q = static_cast<const T*>(p.q) + (b * p.Hq + head0) * D;
  for (int i = threadIdx.x; i < rows * D; i += kWarps * 32) sq[i] = attn::to_f32(q[i]) * qscale;
  __syncthreads();

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  char* region = reinterpret_cast<char*>(smem_fast) + a.q_bytes + warp * a.region_bytes;
  const int unit = g.unit();
  float* qs = reinterpret_cast<float*>(region + kStages * unit);
  float* at = qs + rows * D;
  State<kRows, kDims> st;
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    st.m[r] = attn::kNegInf;
    st.l[r] = 0.0f;
#pragma unroll
    for (int i = 0; i < kDims; ++i) st.acc[r][i] = 0.0f;
  }

  // This warp's pages: pg0 + warp, pg0 + warp + kWarps, ...; unit i lives in stage i % kStages.
  const int64_t bh = b * c.Hk + kvh;
  const int64_t first = pg0 + warp;
  const int64_t count = pg1 > first ? (pg1 - first + kWarps - 1) / kWarps : 0;
  for (int i = 0; i < kStages - 1; ++i) {
    if (i < count) load_page<T>(region + i * unit, c, g, bh * c.P + first + i * kWarps, lane);
    commit();  // empty groups keep the group count = the unit index
  }
  for (int64_t i = 0; i < count; ++i) {
    const int64_t next = i + kStages - 1;
    if (next < count) load_page<T>(region + (next % kStages) * unit, c, g, bh * c.P + first + next * kWarps, lane);
    commit();
    wait_pending<kStages - 1>();  // unit i has landed (for this lane's copies) ...
    __syncwarp();                 // ... and for every lane's
    attend_page<T, kRows, kDims>(region + (i % kStages) * unit, g, sq, qs, at, rows, dims, lane, st);
    __syncwarp();  // the stage is refilled in the next iteration
  }
  wait_pending<0>();
  if (split == a.splits - 1) {
    const int64_t C = c.tail_cap();
    const T* kt = static_cast<const T*>(c.k_tail) + bh * C * D;
    const T* vt = static_cast<const T*>(c.v_tail) + bh * C * D;
    for (int64_t t0 = Q + warp * 32; t0 < L; t0 += kWarps * 32) attend_tail<T, kRows, kDims>(kt, vt, C, D, t0, L, sq, rows, dims, lane, st);
  }

  // Merge the warps by LSE: region = [m rows][l rows][acc rows x D] (fits: region >= rows * D + kStages * unit).
  __syncthreads();
  float* mine = reinterpret_cast<float*>(region);
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    if (r >= rows) break;
    if (lane == 0) {
      mine[r] = st.m[r];
      mine[rows + r] = st.l[r];
    }
#pragma unroll
    for (int i = 0; i < kDims; ++i)
      if (i < dims) mine[2 * rows + r * D + lane + 32 * i] = st.acc[r][i];
  }
  __syncthreads();
  const char* regions = reinterpret_cast<const char*>(smem_fast) + a.q_bytes;
  for (int idx = threadIdx.x; idx < rows * D; idx += kWarps * 32) {
    const int r = idx / D, d = idx - r * D;
    float mx = attn::kNegInf;
    for (int w = 0; w < kWarps; ++w) mx = fmaxf(mx, reinterpret_cast<const float*>(regions + w * a.region_bytes)[r]);
    const float off = attn::softmax_offset(mx);
    float l = 0.0f, o = 0.0f;
    for (int w = 0; w < kWarps; ++w) {
      const float* x = reinterpret_cast<const float*>(regions + w * a.region_bytes);
      const float e = exp2f(x[r] - off);
      l += x[rows + r] * e;
      o += x[2 * rows + r * D + d] * e;
    }
    const int64_t row = b * p.Hq + head0 + r;
    const float val = o * (l > 0.0f ? 1.0f / l : 0.0f);
    if (a.splits == 1) static_cast<T*>(p.out)[row * D + d] = attn::from_f32<T>(val);
    else a.ws_out[(row * a.splits + split) * D + d] = val;
    if (d == 0) {
      const float lse2 = l > 0.0f ? off + log2f(l) : attn::kNegInf;
      if (a.splits > 1) a.ws_lse[row * a.splits + split] = lse2;
      else if (p.lse) p.lse[row] = lse2 * attn::kLn2;
    }
  }
}

// Shared-memory layout of the fast kernel for this problem, or false when it does not apply.
bool plan(const KiviCache& c, int rows, size_t elem, const attn::DeviceLimits& dev, int* q_bytes, int* region_bytes) {
  if (c.G % 32 != 0 || c.D % 32 != 0 || c.D > 256) return false;
  const void* bases[] = {c.k_codes, c.v_codes, c.k_scale, c.k_min, c.v_scale, c.v_min};
  for (const void* ptr : bases)
    if (reinterpret_cast<uintptr_t>(ptr) % 16 != 0) return false;
  const int64_t unit = c.D * c.k_words() * 4 + c.G * c.v_words() * 4 + 4 * c.D * static_cast<int64_t>(elem);
  const int64_t region = kStages * unit + rows * c.D * 4 + rows * 32 * c.v_groups() * 4;
  const int64_t total = rows * c.D * 4 + kWarps * region;
  const int64_t cap = dev.smem_optin < 96 * 1024 ? dev.smem_optin : 96 * 1024;
  if (total > cap) return false;
  *q_bytes = static_cast<int>(rows * c.D * 4);
  *region_bytes = static_cast<int>(region);
  return true;
}

}  // namespace fast

// Hq = 0 launches no attention block, but an invalid length is still a data error (as on the CPU).
__global__ void kivi_check_lengths_kernel(KiviCache c, const int32_t* lengths, int* error_word) {
  const int64_t b = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (b < c.B && !c.length_ok(lengths[b])) attn::report_data_error(error_word, kDeviceErrorLengthOutOfRange);
}

template <typename T>
Status combine(const AttendArgs& a, cudaStream_t stream) {
  if (a.splits == 1) return Status::OK();
  const int64_t rows = a.p.cache.B * a.p.Hq;
  kivi_combine_kernel<T><<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(a.ws_out, a.ws_lse, a.splits, static_cast<int>(a.p.cache.D),
                                                                              static_cast<T*>(a.p.out), a.p.lse);
  return cuda::check_launch("kv.attend (merge)");
}

dim3 grid_of(const AttendArgs& a) {
  return dim3(static_cast<unsigned>(a.splits), static_cast<unsigned>(a.p.cache.Hk * a.row_chunks), static_cast<unsigned>(a.p.cache.B));
}

template <typename T, int kTile>
Status launch(const AttendArgs& a, const attn::DeviceLimits& dev, cudaStream_t stream) {
  static std::atomic<uint64_t> smem_done{0};
  const int bytes = smem_floats<kTile>(a.rows, static_cast<int>(a.p.cache.D)) * static_cast<int>(sizeof(float));
  SPARQ_RETURN_IF_ERROR(attn::allow_dynamic_smem(reinterpret_cast<const void*>(&kivi_attend_kernel<T, kTile>), bytes, dev, &smem_done));
  kivi_attend_kernel<T, kTile><<<grid_of(a), kThreads, bytes, stream>>>(a);
  SPARQ_RETURN_IF_ERROR(cuda::check_launch("kv.attend"));
  return combine<T>(a, stream);
}

// The fast kernel for this problem, with the smem opt-in flag of its instantiation.
using FastFn = void (*)(AttendArgs);
template <typename T>
FastFn fast_fn(int rows, int64_t D, std::atomic<uint64_t>** done) {
  static std::atomic<uint64_t> flags[4];
  const int v = (rows == 1 ? 0 : 2) + (D <= 128 ? 0 : 1);
  *done = &flags[v];
  switch (v) {
    case 0: return fast::kivi_attend_fast_kernel<T, 1, 4>;
    case 1: return fast::kivi_attend_fast_kernel<T, 1, 8>;
    case 2: return fast::kivi_attend_fast_kernel<T, kMaxRows, 4>;
    default: return fast::kivi_attend_fast_kernel<T, kMaxRows, 8>;
  }
}

FastFn fast_fn(DType dt, int rows, int64_t D, std::atomic<uint64_t>** done) {
  switch (dt) {
    case DType::f16: return fast_fn<f16_t>(rows, D, done);
    case DType::bf16: return fast_fn<bf16_t>(rows, D, done);
    default: return fast_fn<float>(rows, D, done);
  }
}

template <typename T>
Status launch_typed(const AttendArgs& a, const attn::DeviceLimits& dev, cudaStream_t stream) {
  return a.p.cache.D <= 128 ? launch<T, 32>(a, dev, stream) : launch<T, 16>(a, dev, stream);
}

}  // namespace

Status kivi_attend_cuda(const KiviAttendParams& p, cudaStream_t stream) {
  const KiviCache& c = p.cache;
  if (c.D > kThreads * kMaxDims)
    return Status(Code::unsupported, "head dim D = " + std::to_string(c.D) + " is not supported on CUDA (at most 256)");
  if (c.B == 0) return Status::OK();
  if (p.Hq == 0) {
    kivi_check_lengths_kernel<<<static_cast<unsigned>((c.B + kThreads - 1) / kThreads), kThreads, 0, stream>>>(c, p.lengths, p.error_word);
    return cuda::check_launch("kv.attend (lengths)");
  }
  attn::DeviceLimits dev;
  SPARQ_RETURN_IF_ERROR(attn::current_device_limits(&dev));
  AttendArgs a;
  a.p = p;
  a.heads = p.Hq / c.Hk;
  a.rows = static_cast<int>(a.heads < kMaxRows ? a.heads : kMaxRows);
  a.row_chunks = static_cast<int>((a.heads + a.rows - 1) / a.rows);
  const int64_t per_split = c.B * c.Hk * a.row_chunks;
  if (c.B > 65535 || c.Hk * a.row_chunks > 65535) return Status(Code::unsupported, "kv.attend: too many sequences or heads for one launch");
  const bool use_fast = fast::plan(c, a.rows, dtype_size(c.dtype), dev, &a.q_bytes, &a.region_bytes);
  FastFn fn = nullptr;
  int fast_bytes = 0;
  // Splits: the general kernel aims at a grid about four blocks deep per SM, each split keeping at
  // least 4 pages; the fast one at one full wave of resident blocks, each warp keeping 2 pages.
  int64_t depth = 4, min_pages = 4;
  if (use_fast) {
    std::atomic<uint64_t>* done = nullptr;
    fn = fast_fn(c.dtype, a.rows, c.D, &done);
    fast_bytes = a.q_bytes + fast::kWarps * a.region_bytes;
    // One opt-in per instantiation, so it must cover the largest plan fast::plan accepts (the bytes
    // vary with the query heads per block and the dtype): its budget.
    const int budget = dev.smem_optin < 96 * 1024 ? dev.smem_optin : 96 * 1024;
    SPARQ_RETURN_IF_ERROR(attn::allow_dynamic_smem(reinterpret_cast<const void*>(fn), budget, dev, done));
    int resident = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&resident, fn, fast::kWarps * 32, static_cast<size_t>(fast_bytes)) != cudaSuccess)
      return cuda::check_launch("kv.attend (occupancy)");
    depth = resident > 0 ? resident : 1;
    min_pages = 2 * fast::kWarps;
  }
  int64_t splits = p.num_splits > 0 ? p.num_splits : (depth * static_cast<int64_t>(dev.sms) + per_split - 1) / per_split;
  if (p.num_splits <= 0 && splits > (c.P + min_pages - 1) / min_pages) splits = (c.P + min_pages - 1) / min_pages;
  if (splits > kMaxSplits) splits = kMaxSplits;
  a.splits = splits < 1 ? 1 : static_cast<int>(splits);
  void* ws = nullptr;
  const int64_t rows = c.B * p.Hq;
  if (a.splits > 1) {
    SPARQ_RETURN_IF_ERROR(cuda::alloc(dev.index, static_cast<size_t>(rows) * a.splits * (c.D + 1) * sizeof(float), &ws));
    a.ws_out = static_cast<float*>(ws);
    a.ws_lse = a.ws_out + rows * a.splits * c.D;
  }
  Status st;
  if (use_fast) {
    fn<<<grid_of(a), fast::kWarps * 32, fast_bytes, stream>>>(a);
    st = cuda::check_launch("kv.attend");
    if (st.ok()) {
      switch (c.dtype) {
        case DType::f16: st = combine<f16_t>(a, stream); break;
        case DType::bf16: st = combine<bf16_t>(a, stream); break;
        default: st = combine<float>(a, stream); break;
      }
    }
  } else {
    switch (c.dtype) {
      case DType::f16: st = launch_typed<f16_t>(a, dev, stream); break;
      case DType::bf16: st = launch_typed<bf16_t>(a, dev, stream); break;
      default: st = launch_typed<float>(a, dev, stream); break;
    }
  }
  if (ws) cuda::free(dev.index, ws);  // stream-ordered: after the kernels that use it
  return st;
}

}  // namespace sparq
