// The tensor-core route of rat_attention_cuda (float16/bfloat16 on sm_80+, T > L): the inter-chunk
// part is an ordinary causal attention once the queries are regrouped, so it runs on the dense
// family's FlashAttention-2 kernel (sdpa_cuda, mma.sync) instead of FP32 FMAs:
//   queries  q'[b, h * L + l, c] = R_c q[b, h % Gq, c * L + l]   ([B, H * L, Nc, D]; GQA group L)
//   keys     k'[b, h, j] = R_j k~_final(j), v'[b, h, j] = v~_final(j), j < Nc - 1
//   sdpa(q', k', v', causal) with Tq = Nc, Tk = Nc - 1: bottom-right alignment puts query c at
//   position c - 1, so it sees exactly the chunks j < c (chunk 0 sees none: LSE -inf).
// A last pass merges each row with its self term (R_c q_t . R_c k~_t, v~_t) by LSE and writes
// out [B, H, T, D] (and the LSE). Rotated values are rounded to the dtype, as on every path.
#include <climits>
#include <string>

#include "../attention/attention.h"
#include "../core/cuda_context.h"
#include "rat_cuda.cuh"

namespace sparq {
namespace {

struct PackArgs {
  const void *q, *k, *v;
  const float *cos, *sin;  // [Nc][D / 2]
  void *qp, *kp, *vp;      // q' [B, H * L, Nc, D], k', v' [B, H, Nc - 1, D]
  int64_t B, H, Gq, T, L, Nc;
  int D;
};

// One thread per (b, h, l, c, pair) of q'; rows past T are zeros.
template <typename T>
__global__ void pack_queries_kernel(const PackArgs a) {
  const int half = a.D / 2;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= a.B * a.H * a.L * a.Nc * half) return;
  const int i = static_cast<int>(idx % half);
  int64_t rest = idx / half;
  const int64_t c = rest % a.Nc;
  rest /= a.Nc;
  const int64_t l = rest % a.L;
  rest /= a.L;
  const int64_t h = rest % a.H, b = rest / a.H, t = c * a.L + l;
  T* out = static_cast<T*>(a.qp) + (((b * a.H + h) * a.L + l) * a.Nc + c) * a.D;
  float y0 = 0.0f, y1 = 0.0f;
  if (t < a.T) {
    const T* src = static_cast<const T*>(a.q) + ((b * a.Gq + h % a.Gq) * a.T + t) * a.D;
    const float x0 = attn::to_f32(src[i]), x1 = attn::to_f32(src[i + half]);
    const float cs = a.cos[c * half + i], sn = a.sin[c * half + i];
    y0 = x0 * cs - x1 * sn;
    y1 = x0 * sn + x1 * cs;
  }
  out[i] = attn::from_f32<T>(y0);
  out[i + half] = attn::from_f32<T>(y1);
}

// One thread per (b, h, j, pair) of k' and v', j < Nc - 1.
template <typename T>
__global__ void pack_keys_kernel(const PackArgs a) {
  const int half = a.D / 2;
  const int64_t Nk = a.Nc - 1;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= a.B * a.H * Nk * half) return;
  const int i = static_cast<int>(idx % half);
  const int64_t row = idx / half, j = row % Nk, bh = row / Nk;
  const int64_t src = (bh * a.T + (j + 1) * a.L - 1) * a.D;
  const T* k = static_cast<const T*>(a.k) + src;
  const T* v = static_cast<const T*>(a.v) + src;
  const float x0 = attn::to_f32(k[i]), x1 = attn::to_f32(k[i + half]);
  const float cs = a.cos[j * half + i], sn = a.sin[j * half + i];
  T* kp = static_cast<T*>(a.kp) + row * a.D;
  T* vp = static_cast<T*>(a.vp) + row * a.D;
  kp[i] = attn::from_f32<T>(x0 * cs - x1 * sn);
  kp[i + half] = attn::from_f32<T>(x0 * sn + x1 * cs);
  vp[i] = v[i];
  vp[i + half] = v[i + half];
}

struct MergeArgs {
  const void *qp, *k, *v, *part;  // q', k~, v~, the sdpa output [B, H * L, Nc, D]
  const float* part_lse;          // [B, H * L, Nc]
  const float *cos, *sin;
  void* out;                      // [B, H, T, D]
  float* lse;                     // [B, H, T] or nullptr
  int64_t rows, H, T, L, Nc;      // rows = B * H * T
  int D;
  float scale;
};

constexpr int kMergeWarps = 8;

// One warp per (b, h, t): the self term, then the LSE merge with the chunk part.
template <typename T>
__global__ void __launch_bounds__(32 * kMergeWarps) merge_self_kernel(const MergeArgs a) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kMergeWarps + threadIdx.x / 32;
  if (row >= a.rows) return;
  const int lane = threadIdx.x % 32, half = a.D / 2;
  const int64_t t = row % a.T, bh = row / a.T, c = t / a.L, l = t % a.L;
  const int64_t prow = (bh * a.L + l) * a.Nc + c;  // row of q', the sdpa output and its LSE
  const T* q = static_cast<const T*>(a.qp) + prow * a.D;
  const T* k = static_cast<const T*>(a.k) + row * a.D;
  const T* v = static_cast<const T*>(a.v) + row * a.D;
  const T* part = static_cast<const T*>(a.part) + prow * a.D;
  float s = 0.0f;
  for (int i = lane; i < half; i += 32) {
    const float x0 = attn::to_f32(k[i]), x1 = attn::to_f32(k[i + half]);
    const float cs = a.cos[c * half + i], sn = a.sin[c * half + i];
    s += attn::to_f32(q[i]) * rat_gpu::rounded<T>(x0 * cs - x1 * sn) + attn::to_f32(q[i + half]) * rat_gpu::rounded<T>(x0 * sn + x1 * cs);
  }
  const float self = attn::warp_sum(s) * a.scale;
  const float pl = a.part_lse[prow];
  const float m = pl > self ? pl : self;
  const float wp = pl == attn::kNegInf ? 0.0f : expf(pl - m), ws = expf(self - m);
  const float inv = 1.0f / (wp + ws);
  T* out = static_cast<T*>(a.out) + row * a.D;
  for (int d = lane; d < a.D; d += 32) {
    const float o = wp == 0.0f ? ws * attn::to_f32(v[d]) : wp * attn::to_f32(part[d]) + ws * attn::to_f32(v[d]);
    out[d] = attn::from_f32<T>(o * inv);
  }
  if (a.lse && lane == 0) a.lse[row] = m + logf(wp + ws);
}

size_t align256(size_t n) { return (n + 255) / 256 * 256; }

template <typename T>
Status run(const RatAttentionParams& p, int device, const float* cos, const float* sin, cudaStream_t stream) {
  const int64_t Nc = (p.T + p.L - 1) / p.L, Nk = Nc - 1, HL = p.H * p.L;
  const size_t es = sizeof(T);
  const size_t q_bytes = align256(static_cast<size_t>(p.B * HL * Nc * p.D) * es);
  const size_t kv_bytes = align256(static_cast<size_t>(p.B * p.H * Nk * p.D) * es);
  const size_t lse_bytes = align256(static_cast<size_t>(p.B * HL * Nc) * sizeof(float));
  void* ws = nullptr;
  SPARQ_RETURN_IF_ERROR(cuda::alloc(device, 2 * q_bytes + 2 * kv_bytes + lse_bytes, &ws));
  char* base = static_cast<char*>(ws);
  PackArgs pk{p.q, p.k, p.v, cos, sin, base, base + q_bytes, base + q_bytes + kv_bytes, p.B, p.H, p.Gq, p.T, p.L, Nc,
              static_cast<int>(p.D)};
  void* part = base + q_bytes + 2 * kv_bytes;
  float* part_lse = reinterpret_cast<float*>(base + 2 * q_bytes + 2 * kv_bytes);
  const int64_t half = p.D / 2;
  pack_queries_kernel<T><<<rat_gpu::blocks_for(p.B * HL * Nc * half, 256), 256, 0, stream>>>(pk);
  Status st = cuda::check_launch("rat.attention (pack queries)");
  if (st.ok()) {
    pack_keys_kernel<T><<<rat_gpu::blocks_for(p.B * p.H * Nk * half, 256), 256, 0, stream>>>(pk);
    st = cuda::check_launch("rat.attention (pack keys)");
  }
  if (st.ok()) {
    SdpaParams sp;
    sp.q = pk.qp;
    sp.k = pk.kp;
    sp.v = pk.vp;
    sp.out = part;
    sp.lse = part_lse;
    sp.dtype = p.dtype;
    sp.B = p.B; sp.Hq = HL; sp.Hk = p.H; sp.Tq = Nc; sp.Tk = Nk; sp.D = p.D;
    sp.causal = true;
    sp.scale = p.scale;
    st = sdpa_cuda(sp, stream);
  }
  if (st.ok()) {
    MergeArgs m{pk.qp, p.k, p.v, part, part_lse, cos, sin, p.out, p.lse, p.B * p.H * p.T, p.H, p.T, p.L, Nc, static_cast<int>(p.D), p.scale};
    merge_self_kernel<T><<<rat_gpu::blocks_for(m.rows, kMergeWarps), 32 * kMergeWarps, 0, stream>>>(m);
    st = cuda::check_launch("rat.attention (self-term merge)");
  }
  cuda::free(device, ws);  // stream-ordered: after the kernels that use it
  return st;
}

}  // namespace

namespace rat_gpu {

bool rat_attention_sdpa_route(const RatAttentionParams& p, int major) {
  const int64_t Nc = (p.T + p.L - 1) / p.L;
  // The regrouped queries hold Nc * L <= T + L - 1 rows per head: at most twice T once T > L.
  return major >= 8 && (p.dtype == DType::f16 || p.dtype == DType::bf16) && p.T > p.L && p.H * p.L <= INT_MAX / 2 &&
         Nc <= INT_MAX - 1024;
}

Status rat_attention_sdpa(const RatAttentionParams& p, int device, const float* cos, const float* sin, cudaStream_t stream) {
  return p.dtype == DType::bf16 ? run<bf16_t>(p, device, cos, sin, stream) : run<f16_t>(p, device, cos, sin, stream);
}

}  // namespace rat_gpu

}  // namespace sparq
