// Fused KIVI decode attention on CUDA. One block per (split, KV head x head chunk, batch) serves up
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
};

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

  int64_t L = p.lengths[b];
  if (!c.length_ok(L)) {
    if (threadIdx.x == 0 && split == 0 && blockIdx.y == 0) attn::report_data_error(p.error_word, kDeviceErrorLengthOutOfRange);
    L = 0;
  }
  const int64_t Q = kivi_quantized_tokens(L, c.R, c.G), pages = Q / c.G;
  const int64_t per = (pages + a.splits - 1) / a.splits;
  const int64_t pg0 = split * per < pages ? split * per : pages;
  const int64_t pg1 = pg0 + per < pages ? pg0 + per : pages;
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

// Hq = 0 launches no attention block, but an invalid length is still a data error (as on the CPU).
__global__ void kivi_check_lengths_kernel(KiviCache c, const int32_t* lengths, int* error_word) {
  const int64_t b = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (b < c.B && !c.length_ok(lengths[b])) attn::report_data_error(error_word, kDeviceErrorLengthOutOfRange);
}

template <typename T, int kTile>
Status launch(const AttendArgs& a, const attn::DeviceLimits& dev, cudaStream_t stream) {
  static std::atomic<uint64_t> smem_done{0};
  const int bytes = smem_floats<kTile>(a.rows, static_cast<int>(a.p.cache.D)) * static_cast<int>(sizeof(float));
  SPARQ_RETURN_IF_ERROR(attn::allow_dynamic_smem(reinterpret_cast<const void*>(&kivi_attend_kernel<T, kTile>), bytes, dev, &smem_done));
  const dim3 grid(static_cast<unsigned>(a.splits), static_cast<unsigned>(a.p.cache.Hk * a.row_chunks), static_cast<unsigned>(a.p.cache.B));
  kivi_attend_kernel<T, kTile><<<grid, kThreads, bytes, stream>>>(a);
  SPARQ_RETURN_IF_ERROR(cuda::check_launch("kv.attend"));
  if (a.splits == 1) return Status::OK();
  const int64_t rows = a.p.cache.B * a.p.Hq;
  kivi_combine_kernel<T><<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(a.ws_out, a.ws_lse, a.splits, static_cast<int>(a.p.cache.D),
                                                                              static_cast<T*>(a.p.out), a.p.lse);
  return cuda::check_launch("kv.attend (merge)");
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
  // Splits: the grid about four blocks deep per SM, each split keeping at least 4 pages.
  int64_t splits = p.num_splits > 0 ? p.num_splits : (4 * static_cast<int64_t>(dev.sms) + per_split - 1) / per_split;
  if (p.num_splits <= 0 && splits > (c.P + 3) / 4) splits = (c.P + 3) / 4;
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
  switch (c.dtype) {
    case DType::f16: st = launch_typed<f16_t>(a, dev, stream); break;
    case DType::bf16: st = launch_typed<bf16_t>(a, dev, stream); break;
    default: st = launch_typed<float>(a, dev, stream); break;
  }
  if (ws) cuda::free(dev.index, ws);  // stream-ordered: after the kernels that use it
  return st;
}

}  // namespace sparq
