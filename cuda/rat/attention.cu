// rat_attention_cuda (rat.h). float16/bfloat16 on sm_80+ with T > L take the tensor-core route of
// attention_sdpa.cu; everything else (float32, sm_75, a single chunk) runs here, in two launches:
// 1. rope_table: cos/sin of InterRoPE for the chunk indices [0, Nc) (double angles, as the CPU),
//    a small workspace (Nc x D/2 floats).
// 2. chunk_attention: a block per (batch, head, 64-query tile), on a 1-D grid (gridDim.y would cap
//    B * H at 65535). Each query row is owned by four
//    threads (a quad), thread i of the quad holding dims d = 4e + i (so both halves of every
//    rotate-half pair, and conflict-free shared-memory reads). The online-softmax state starts
//    from the self term (m = a_self, l = 1, acc = v~_t): no merge pass. Key tiles are the final
//    rows of the chunks (k~ at t = (j + 1) L - 1), read from k~ and v~ in their dtype and rotated
//    by their chunk index as they are stored to shared memory (RoPE fused on load); row t masks
//    chunks j >= c(t).
#include <climits>
#include <string>

#include "../core/cuda_context.h"
#include "rat_cuda.cuh"

namespace sparq {
namespace {

using attn::kLog2e;
using attn::kNegInf;

constexpr int kRows = 64;             // query rows per block
constexpr int kThreads = kRows * 4;   // a quad per row

struct AttnArgs {
  const void *q, *k, *v;
  void* out;
  float* lse;
  const float *cos, *sin;  // [Nc][D / 2]
  int64_t H, Gq, T, L;
  int64_t heads;  // B * H: block x covers head x % heads of query tile rank x / heads
  float scale_log2;
};

__global__ void rope_table_kernel(float* cos, float* sin, int64_t n, int D, double base) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int half = D / 2;
  if (idx >= n * half) return;
  float c = 1.0f, s = 0.0f;
  if (base != 0.0) rat_gpu::rope_angle(base, D, idx / half, static_cast<int>(idx % half), &c, &s);
  cos[idx] = c;
  sin[idx] = s;
}

// Rotates this thread's dims (4e + part, e < E) of a row by cos/sin of one position: dim
// 4e + part pairs with 4(e + E/2) + part.
template <int E>
__device__ __forceinline__ void rotate_owned(float (&x)[E], const float* cos, const float* sin, int part) {
#pragma unroll
  for (int e = 0; e < E / 2; ++e) {
    const int i = 4 * e + part;
    const float a = x[e], b = x[e + E / 2], c = cos[i], s = sin[i];
    x[e] = a * c - b * s;
    x[e + E / 2] = a * s + b * c;
  }
}

template <typename T, int D>
struct Tiles {
  static constexpr int kKeys = D <= 128 ? 32 : 16;  // keys per shared-memory tile (32 KB of K and V)
};

template <typename T, int D>
__global__ void __launch_bounds__(kThreads, D <= 128 ? 2 : 1) chunk_attention_kernel(const AttnArgs a) {
  constexpr int E = D / 4, BK = Tiles<T, D>::kKeys, half = D / 2;
  __shared__ float ks[BK][D], vs[BK][D];
  const int64_t tiles = (a.T + kRows - 1) / kRows;
  const int64_t block = blockIdx.x;
  const int64_t tile = tiles - 1 - block / a.heads;  // the longest tiles (of every head) first
  const int64_t bh = block % a.heads, h = bh % a.H, b = bh / a.H;
  const int row = threadIdx.x / 4, part = threadIdx.x % 4;
  const int64_t t = tile * kRows + row;
  const bool active = t < a.T;
  const int64_t c = active ? t / a.L : 0;

  float q[E], acc[E], kr[E];
#pragma unroll
  for (int e = 0; e < E; ++e) q[e] = acc[e] = kr[e] = 0.0f;  // rows past T: zeros, no keys
  if (active) {
    const T* qp = static_cast<const T*>(a.q) + ((b * a.Gq + h % a.Gq) * a.T + t) * D + part;
    const int64_t off = (bh * a.T + t) * D + part;
    const T* kp = static_cast<const T*>(a.k) + off;
    const T* vp = static_cast<const T*>(a.v) + off;
#pragma unroll
    for (int e = 0; e < E; ++e) {
      q[e] = attn::to_f32(qp[4 * e]);
      kr[e] = attn::to_f32(kp[4 * e]);
      acc[e] = attn::to_f32(vp[4 * e]);
    }
    rotate_owned<E>(q, a.cos + c * half, a.sin + c * half, part);
    rotate_owned<E>(kr, a.cos + c * half, a.sin + c * half, part);
#pragma unroll
    for (int e = 0; e < E; ++e) {  // rotated values as the dtype stores them (rat.h)
      q[e] = rat_gpu::rounded<T>(q[e]);
      kr[e] = rat_gpu::rounded<T>(kr[e]);
    }
  }
  float self = 0.0f;
#pragma unroll
  for (int e = 0; e < E; ++e) {
    q[e] *= a.scale_log2;
    self += q[e] * kr[e];
  }
  // The self term starts the online softmax: m = a_self (log2 units), l = 1, acc = v~_t. Every
  // lane of the warp reaches this shuffle.
  float m = attn::quad_sum(self), l = 1.0f;
  // The CPU folds the self term in last (rat_cpu::softmax_add), so a NaN or +inf self score makes
  // the row NaN, and so does -inf when the row sees no chunk (exp(-inf - -inf)); -inf with chunks
  // weighs nothing. Here the self term comes first: poison l to give the same rows NaN.
  if (m != m || m == -kNegInf || (m == kNegInf && c == 0)) l = __int_as_float(0x7fffffff);

  // Chunks seen by the tile's last valid row: [0, c_max).
  const int64_t last = min(a.T - 1, tile * kRows + kRows - 1);
  const int64_t c_max = last / a.L;
  const T* kt = static_cast<const T*>(a.k) + bh * a.T * D;
  const T* vt = static_cast<const T*>(a.v) + bh * a.T * D;
  for (int64_t j0 = 0; j0 < c_max; j0 += BK) {
    const int n = static_cast<int>(min(static_cast<int64_t>(BK), c_max - j0));
    __syncthreads();  // the previous tile's readers are done
    // One thread per (key, pair): both halves of the pair, rotated by the key's chunk index.
    for (int i = threadIdx.x; i < BK * half; i += kThreads) {
      const int jj = i / half, p = i % half;
      float k0 = 0.0f, k1 = 0.0f, v0 = 0.0f, v1 = 0.0f;
      if (jj < n) {
        const int64_t j = j0 + jj, src = ((j + 1) * a.L - 1) * D;
        const float x0 = attn::to_f32(kt[src + p]), x1 = attn::to_f32(kt[src + p + half]);
        const float cs = a.cos[j * half + p], sn = a.sin[j * half + p];
        k0 = rat_gpu::rounded<T>(x0 * cs - x1 * sn);
        k1 = rat_gpu::rounded<T>(x0 * sn + x1 * cs);
        v0 = attn::to_f32(vt[src + p]);
        v1 = attn::to_f32(vt[src + p + half]);
      }
      ks[jj][p] = k0;
      ks[jj][p + half] = k1;
      vs[jj][p] = v0;
      vs[jj][p + half] = v1;
    }
    __syncthreads();
    float s[BK];
    float mb = kNegInf;
#pragma unroll
    for (int jj = 0; jj < BK; ++jj) {
      float x = 0.0f;
#pragma unroll
      for (int e = 0; e < E; ++e) x += q[e] * ks[jj][4 * e + part];
      x = attn::quad_sum(x);
      s[jj] = (j0 + jj < c) ? x : kNegInf;  // also masks jj >= n, since c <= c_max
      mb = fmaxf(mb, s[jj]);
    }
    // This row sees none of the tile (uniform per quad). Not `mb == -inf`: a tile whose visible
    // scores are all NaN must still run so that the NaN reaches the row, as on the CPU.
    if (j0 >= c) continue;
    const float mnew = fmaxf(m, mb);
    const float alpha = exp2f(m - mnew);
    float sum = 0.0f;
#pragma unroll
    for (int jj = 0; jj < BK; ++jj) {
      s[jj] = exp2f(s[jj] - mnew);
      sum += s[jj];
    }
    l = l * alpha + sum;
    m = mnew;
#pragma unroll
    for (int e = 0; e < E; ++e) {
      float o = acc[e] * alpha;
#pragma unroll
      for (int jj = 0; jj < BK; ++jj) o += s[jj] * vs[jj][4 * e + part];
      acc[e] = o;
    }
  }
  if (!active) return;
  T* out = static_cast<T*>(a.out) + (bh * a.T + t) * D + part;
  const float inv = 1.0f / l;
#pragma unroll
  for (int e = 0; e < E; ++e) out[4 * e] = attn::from_f32<T>(acc[e] * inv);
  if (a.lse && part == 0) a.lse[bh * a.T + t] = (m + log2f(l)) * attn::kLn2;
}

template <typename T>
Status launch_attention(const AttnArgs& a, int D, cudaStream_t stream) {
  const int64_t tiles = (a.T + kRows - 1) / kRows;
  if (tiles * a.heads > INT_MAX)
    return Status(Code::unsupported, "too many (query tile, head) blocks for one launch: " + std::to_string(tiles * a.heads));
  const dim3 grid(static_cast<unsigned>(tiles * a.heads));
  switch (D) {
    case 64: chunk_attention_kernel<T, 64><<<grid, kThreads, 0, stream>>>(a); break;
    case 128: chunk_attention_kernel<T, 128><<<grid, kThreads, 0, stream>>>(a); break;
    default: chunk_attention_kernel<T, 256><<<grid, kThreads, 0, stream>>>(a); break;
  }
  return cuda::check_launch("rat.attention");
}

}  // namespace

Status rat_attention_cuda(const RatAttentionParams& p, cudaStream_t stream) {
  if (!rat_cuda_head_dim_supported(p.D))
    return Status(Code::unsupported, "head dim D = " + std::to_string(p.D) + " is not supported on CUDA (64, 128 or 256)");
  if (p.L < 1 || p.Gq < 1 || p.H % p.Gq != 0) return Status(Code::invalid_arg_value, "bad chunk size or query groups");
  if (p.B == 0 || p.H == 0 || p.T == 0) return Status::OK();
  attn::DeviceLimits dev;
  SPARQ_RETURN_IF_ERROR(attn::current_device_limits(&dev));
  const int64_t Nc = (p.T + p.L - 1) / p.L, half = p.D / 2;
  const size_t table = static_cast<size_t>(Nc * half);
  void* ws = nullptr;
  SPARQ_RETURN_IF_ERROR(cuda::alloc(dev.index, 2 * table * sizeof(float), &ws));
  float* cos = static_cast<float*>(ws);
  float* sin = cos + table;
  AttnArgs a{p.q, p.k, p.v, p.out, p.lse, cos, sin, p.H, p.Gq, p.T, p.L, p.B * p.H, p.scale * kLog2e};
  rope_table_kernel<<<rat_gpu::blocks_for(static_cast<int64_t>(table), 256), 256, 0, stream>>>(cos, sin, Nc, static_cast<int>(p.D),
                                                                                                 p.rope_base);
  Status st = cuda::check_launch("rat.attention (rope table)");
  bool fma_route = st.ok();
  if (st.ok() && rat_gpu::rat_attention_sdpa_route(p, dev.major)) {
    st = rat_gpu::rat_attention_sdpa(p, dev.index, cos, sin, stream);
    // Its workspace (regrouped queries and their outputs: 2 * B * H * Nc * L * D elements, up to
    // 2 H / Gq times the size of q) is allocated before it launches anything: out of memory there,
    // the FMA kernel, which needs no workspace, still does the job (and writes every output).
    fma_route = st.code() == Code::oom;
    if (fma_route) st = Status::OK();
  }
  if (fma_route) {
    switch (p.dtype) {
      case DType::f16: st = launch_attention<f16_t>(a, static_cast<int>(p.D), stream); break;
      case DType::bf16: st = launch_attention<bf16_t>(a, static_cast<int>(p.D), stream); break;
      default: st = launch_attention<float>(a, static_cast<int>(p.D), stream); break;
    }
  }
  cuda::free(dev.index, ws);  // stream-ordered: after the kernels that use it
  return st;
}

}  // namespace sparq
