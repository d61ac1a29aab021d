// The RAT decode cache on CUDA (rat.h): fill from a prefill, and the fused decode step.
// Step: a block per (batch, head). Its threads update the float32 state of the D channels, round
// it to the dtype (what the prefill's attention reads), rotate q and k~ by the chunk index, write
// the chunk slot when the token ends its chunk, then each warp runs an online softmax over a
// strided share of the finished chunks (lanes split D) and the warps' states are merged with the
// self term in shared memory. lengths[b] += 1 runs as a separate launch, after every head of b
// has read it.
#include <climits>
#include <string>

#include "../core/cuda_context.h"
#include "rat_cuda.cuh"

namespace sparq {
namespace {

using attn::kLog2e;
using attn::kNegInf;

constexpr int kFillThreads = 128;
// A decode step is latency-bound (one block per (batch, head), each warp walks its chunks one
// dependent load after another). With fewer blocks than SMs, 32 warps per block keep more chunk
// loads in flight (H100, 16 heads, B = 1: T = 4K 18 -> 15 us, T = 32K 93 -> 44 us); with many
// blocks, 8 warps per block fill the GPU better (B = 64: 104 us with 8, 153 us with 32).
constexpr int kStepWarpsFew = 32, kStepWarpsMany = 8;

template <typename T>
__global__ void __launch_bounds__(kFillThreads) fill_kernel(const RatFillParams p) {
  const RatCache& c = p.cache;
  const int64_t bh = blockIdx.x, b = bh / c.H, h = bh % c.H;
  const int64_t D = c.D, L = c.L, half = D / 2, Nc = (p.T + L - 1) / L;
  const int64_t cap = min(p.T, c.N * L);
  int64_t len = p.prompt_lengths[b];
  if (len < 0 || len > cap) {
    if (threadIdx.x == 0) attn::report_data_error(p.error_word, kDeviceErrorLengthOutOfRange);
    return;
  }
  const int64_t full = len / L;
  const T* kf = static_cast<const T*>(p.k_final) + bh * Nc * D;
  const T* vf = static_cast<const T*>(p.v_final) + bh * Nc * D;
  for (int64_t idx = threadIdx.x; idx < full * half; idx += kFillThreads) {
    const int64_t j = idx / half;
    const int i = static_cast<int>(idx % half);
    float cs = 1.0f, sn = 0.0f;
    if (c.rope_base != 0.0) rat_gpu::rope_angle(c.rope_base, static_cast<int>(D), j, i, &cs, &sn);
    const float a = attn::to_f32(kf[j * D + i]), bb = attn::to_f32(kf[j * D + i + half]);
    float* kc = c.k_chunks + (bh * c.N + j) * D;
    float* vc = c.v_chunks + (bh * c.N + j) * D;
    kc[i] = rat_gpu::rounded<T>(a * cs - bb * sn);
    kc[i + half] = rat_gpu::rounded<T>(a * sn + bb * cs);
    vc[i] = attn::to_f32(vf[j * D + i]);
    vc[i + half] = attn::to_f32(vf[j * D + i + half]);
  }
  const T* v = static_cast<const T*>(p.v) + bh * p.T * D;
  const T* g = static_cast<const T*>(p.gate) + bh * p.T * D;
  const T* k = static_cast<const T*>(p.k) + (b * p.Gk + h % p.Gk) * p.T * D;
  for (int64_t d = threadIdx.x; d < D; d += kFillThreads) {
    const float bias = p.gate_bias ? p.gate_bias[h * D + d] : 0.0f;
    float sv = 0.0f, sk = 0.0f;
    for (int64_t t = full * L; t < len; ++t) {
      const float gt = rat_gpu::gate_of(attn::to_f32(g[t * D + d]) + bias);
      sv = rat_gpu::gate_step(sv, attn::to_f32(v[t * D + d]), gt, false);
      sk = rat_gpu::gate_step(sk, attn::to_f32(k[t * D + d]), gt, false);
    }
    c.v_state[bh * D + d] = sv;
    c.k_state[bh * D + d] = sk;
  }
  if (h == 0 && threadIdx.x == 0) c.lengths[b] = static_cast<int32_t>(len);
}

template <typename T, int D, int kStepWarps>
__global__ void __launch_bounds__(32 * kStepWarps) step_kernel(const RatStepParams p) {
  constexpr int kStepThreads = 32 * kStepWarps;
  constexpr int half = D / 2, E = D / 32;  // E dims per lane: d = lane + 32e
  const RatCache& c = p.cache;
  const int64_t bh = blockIdx.x, b = bh / c.H, h = bh % c.H;
  const int64_t t = c.lengths[b];
  if (t < 0 || t >= c.N * c.L) {
    if (threadIdx.x == 0) attn::report_data_error(p.error_word, kDeviceErrorLengthOutOfRange);
    return;
  }
  const int64_t ch = t / c.L, l = t % c.L;
  __shared__ float qs[D], kraw[D], kr[D], vs[D];
  __shared__ float wm[kStepWarps], wl[kStepWarps], wacc[kStepWarps][D];
  __shared__ float self_score;

  for (int d = threadIdx.x; d < D; d += kStepThreads) {
    const float bias = p.gate_bias ? p.gate_bias[h * D + d] : 0.0f;
    const float gt = rat_gpu::gate_of(attn::to_f32(static_cast<const T*>(p.gate)[bh * D + d]) + bias);
    const float sv = rat_gpu::gate_step(c.v_state[bh * D + d], attn::to_f32(static_cast<const T*>(p.v)[bh * D + d]), gt, l == 0);
    const float sk = rat_gpu::gate_step(c.k_state[bh * D + d],
                                        attn::to_f32(static_cast<const T*>(p.k)[(b * p.Gk + h % p.Gk) * D + d]), gt, l == 0);
    c.v_state[bh * D + d] = sv;
    c.k_state[bh * D + d] = sk;
    vs[d] = rat_gpu::rounded<T>(sv);
    kraw[d] = rat_gpu::rounded<T>(sk);
  }
  __syncthreads();
  const T* qp = static_cast<const T*>(p.q) + (b * p.Gq + h % p.Gq) * D;
  for (int i = threadIdx.x; i < half; i += kStepThreads) {
    float cs = 1.0f, sn = 0.0f;
    if (c.rope_base != 0.0) rat_gpu::rope_angle(c.rope_base, D, ch, i, &cs, &sn);
    const float a = attn::to_f32(qp[i]), bq = attn::to_f32(qp[i + half]);
    // Rotated values as the dtype stores them (rat.h), then the scale (log2 units) on q.
    qs[i] = rat_gpu::rounded<T>(a * cs - bq * sn) * p.scale * kLog2e;
    qs[i + half] = rat_gpu::rounded<T>(a * sn + bq * cs) * p.scale * kLog2e;
    kr[i] = rat_gpu::rounded<T>(kraw[i] * cs - kraw[i + half] * sn);
    kr[i + half] = rat_gpu::rounded<T>(kraw[i] * sn + kraw[i + half] * cs);
  }
  __syncthreads();
  float* kslot = c.k_chunks + (bh * c.N + ch) * D;
  float* vslot = c.v_chunks + (bh * c.N + ch) * D;
  if (l == c.L - 1)
    for (int d = threadIdx.x; d < D; d += kStepThreads) {
      kslot[d] = kr[d];
      vslot[d] = vs[d];
    }

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float q[E], acc[E];
#pragma unroll
  for (int e = 0; e < E; ++e) {
    q[e] = qs[lane + 32 * e];
    acc[e] = 0.0f;
  }
  if (warp == 0) {
    float s = 0.0f;
#pragma unroll
    for (int e = 0; e < E; ++e) s += q[e] * kr[lane + 32 * e];
    s = attn::warp_sum(s);
    if (lane == 0) self_score = s;
  }
  float m = kNegInf, lsum = 0.0f;
  const float* kc = c.k_chunks + bh * c.N * D;
  const float* vc = c.v_chunks + bh * c.N * D;
  for (int64_t j = warp; j < ch; j += kStepWarps) {
    float s = 0.0f;
#pragma unroll
    for (int e = 0; e < E; ++e) s += q[e] * kc[j * D + lane + 32 * e];
    s = attn::warp_sum(s);
    // softmax_offset: a -inf score on an empty state weighs 0 instead of exp2(-inf - -inf) = NaN,
    // so lsum stays 0 exactly while the warp has seen nothing that counts (see the merge below).
    const float mnew = fmaxf(m, s), off = attn::softmax_offset(mnew);
    const float alpha = exp2f(m - off), w = exp2f(s - off);  // m = -inf at first: alpha = 0
    lsum = lsum * alpha + w;
#pragma unroll
    for (int e = 0; e < E; ++e) acc[e] = acc[e] * alpha + w * vc[j * D + lane + 32 * e];
    m = mnew;
  }
#pragma unroll
  for (int e = 0; e < E; ++e) wacc[warp][lane + 32 * e] = acc[e];
  if (lane == 0) {
    wm[warp] = m;
    wl[warp] = lsum;
  }
  __syncthreads();
  const float a_self = self_score;
  float mt = a_self;
  for (int w = 0; w < kStepWarps; ++w) mt = fmaxf(mt, wm[w]);
  const float ws = exp2f(a_self - mt);
  float total = ws;
  // A warp counts unless it saw nothing (wl = 0). Not `wm == -inf`: fmaxf ignores NaN, so a warp
  // whose only scores are NaN keeps m = -inf with wl = NaN, and that NaN must reach the row, as
  // on the CPU.
  for (int w = 0; w < kStepWarps; ++w) total += wl[w] == 0.0f ? 0.0f : wl[w] * exp2f(wm[w] - mt);
  T* out = static_cast<T*>(p.out) + bh * D;
  for (int d = threadIdx.x; d < D; d += kStepThreads) {
    float o = ws * vs[d];
    for (int w = 0; w < kStepWarps; ++w)
      if (wl[w] != 0.0f) o += exp2f(wm[w] - mt) * wacc[w][d];
    out[d] = attn::from_f32<T>(o / total);
  }
  if (p.lse && threadIdx.x == 0) p.lse[bh] = (mt + log2f(total)) * attn::kLn2;
}

__global__ void advance_kernel(int32_t* lengths, int64_t B, int64_t cap) {
  const int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (b < B && lengths[b] >= 0 && lengths[b] < cap) lengths[b] += 1;
}

template <typename T, int kWarps>
void launch_step(const RatStepParams& p, unsigned blocks, cudaStream_t stream) {
  switch (p.cache.D) {
    case 64: step_kernel<T, 64, kWarps><<<blocks, 32 * kWarps, 0, stream>>>(p); break;
    case 128: step_kernel<T, 128, kWarps><<<blocks, 32 * kWarps, 0, stream>>>(p); break;
    default: step_kernel<T, 256, kWarps><<<blocks, 32 * kWarps, 0, stream>>>(p); break;
  }
}

template <typename T>
Status launch_step(const RatStepParams& p, cudaStream_t stream) {
  attn::DeviceLimits dev;
  SPARQ_RETURN_IF_ERROR(attn::current_device_limits(&dev));
  const unsigned blocks = static_cast<unsigned>(p.cache.B * p.cache.H);
  if (blocks < static_cast<unsigned>(dev.sms)) launch_step<T, kStepWarpsFew>(p, blocks, stream);
  else launch_step<T, kStepWarpsMany>(p, blocks, stream);
  return cuda::check_launch("rat.cache.step");
}

Status check_cache(const RatCache& c) {
  if (!rat_cuda_head_dim_supported(c.D))
    return Status(Code::unsupported, "head dim D = " + std::to_string(c.D) + " is not supported on CUDA (64, 128 or 256)");
  if (c.L < 1 || c.N < 0) return Status(Code::invalid_arg_value, "bad chunk size or capacity");
  if (c.B * c.H > INT_MAX) return Status(Code::unsupported, "too many (batch, head) rows for one launch");
  return Status::OK();
}

}  // namespace

Status rat_fill_cuda(const RatFillParams& p, cudaStream_t stream) {
  SPARQ_RETURN_IF_ERROR(check_cache(p.cache));
  if (p.Gk < 1 || p.cache.H % p.Gk != 0) return Status(Code::invalid_arg_value, "bad key groups");
  if (p.cache.B == 0 || p.cache.H == 0) return Status::OK();
  const unsigned blocks = static_cast<unsigned>(p.cache.B * p.cache.H);
  switch (p.dtype) {
    case DType::f16: fill_kernel<f16_t><<<blocks, kFillThreads, 0, stream>>>(p); break;
    case DType::bf16: fill_kernel<bf16_t><<<blocks, kFillThreads, 0, stream>>>(p); break;
    default: fill_kernel<float><<<blocks, kFillThreads, 0, stream>>>(p); break;
  }
  return cuda::check_launch("rat.cache.prefill");
}

Status rat_step_cuda(const RatStepParams& p, cudaStream_t stream) {
  SPARQ_RETURN_IF_ERROR(check_cache(p.cache));
  if (p.Gq < 1 || p.Gk < 1 || p.cache.H % p.Gq != 0 || p.cache.H % p.Gk != 0) return Status(Code::invalid_arg_value, "bad groups");
  if (p.cache.B == 0) return Status::OK();
  if (p.cache.H > 0) {
    Status st;
    switch (p.dtype) {
      case DType::f16: st = launch_step<f16_t>(p, stream); break;
      case DType::bf16: st = launch_step<bf16_t>(p, stream); break;
      default: st = launch_step<float>(p, stream); break;
    }
    SPARQ_RETURN_IF_ERROR(st);
  }
  advance_kernel<<<rat_gpu::blocks_for(p.cache.B, 128), 128, 0, stream>>>(p.cache.lengths, p.cache.B, p.cache.N * p.cache.L);
  return cuda::check_launch("rat.cache.step (advance)");
}

}  // namespace sparq
