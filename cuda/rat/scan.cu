// rat_scan_cuda (rat.h): one thread per (batch, head, chunk, channel), a sequential loop over the
// chunk's tokens with the state in a register. Consecutive threads own consecutive channels, so
// every load and store of a token row is coalesced; the kernel is memory-bound (reads v, k, gate
// once, writes v~, k~ once, plus the chunk finals: 5 + 2 / L rows per token).
#include <climits>
#include <string>

#include "../core/cuda_context.h"
#include "rat_cuda.cuh"

namespace sparq {
namespace {

constexpr int kThreads = 256;

struct ScanArgs {
  const void *v, *k, *gate;
  const float* bias;
  void *v_out, *k_out, *v_final, *k_final;
  int64_t H, Gk, T, D, L, Nc, total;
};

template <typename T>
__global__ void __launch_bounds__(kThreads) scan_kernel(const ScanArgs a) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (idx >= a.total) return;
  const int64_t d = idx % a.D, item = idx / a.D;
  const int64_t c = item % a.Nc, bh = item / a.Nc, h = bh % a.H, b = bh / a.H;
  const int64_t t0 = c * a.L, t1 = min(a.T, t0 + a.L);
  const float bias = a.bias ? a.bias[h * a.D + d] : 0.0f;
  const T* v = static_cast<const T*>(a.v) + bh * a.T * a.D + d;
  const T* g = static_cast<const T*>(a.gate) + bh * a.T * a.D + d;
  const T* k = static_cast<const T*>(a.k) + (b * a.Gk + h % a.Gk) * a.T * a.D + d;
  T* vo = static_cast<T*>(a.v_out) + bh * a.T * a.D + d;
  T* ko = static_cast<T*>(a.k_out) + bh * a.T * a.D + d;
  float sv = 0.0f, sk = 0.0f;
#pragma unroll 4
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t o = t * a.D;
    const float gt = rat_gpu::gate_of(attn::to_f32(g[o]) + bias);
    sv = rat_gpu::gate_step(sv, attn::to_f32(v[o]), gt, false);
    sk = rat_gpu::gate_step(sk, attn::to_f32(k[o]), gt, false);
    vo[o] = attn::from_f32<T>(sv);
    ko[o] = attn::from_f32<T>(sk);
  }
  const int64_t f = (bh * a.Nc + c) * a.D + d;
  static_cast<T*>(a.v_final)[f] = attn::from_f32<T>(sv);
  static_cast<T*>(a.k_final)[f] = attn::from_f32<T>(sk);
}

}  // namespace

Status rat_scan_cuda(const RatScanParams& p, cudaStream_t stream) {
  if (p.L < 1 || p.Gk < 1 || p.H % p.Gk != 0) return Status(Code::invalid_arg_value, "bad chunk size or key groups");
  if (p.B == 0 || p.H == 0 || p.T == 0 || p.D == 0) return Status::OK();
  ScanArgs a{p.v, p.k, p.gate, p.gate_bias, p.v_out, p.k_out, p.v_final, p.k_final, p.H, p.Gk, p.T, p.D, p.L, 0, 0};
  a.Nc = (p.T + p.L - 1) / p.L;
  a.total = p.B * p.H * a.Nc * p.D;
  const int64_t blocks = (a.total + kThreads - 1) / kThreads;
  if (blocks > INT_MAX) return Status(Code::unsupported, "rat.scan: the problem is too large for one launch");
  switch (p.dtype) {
    case DType::f16: scan_kernel<f16_t><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(a); break;
    case DType::bf16: scan_kernel<bf16_t><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(a); break;
    default: scan_kernel<float><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(a); break;
  }
  return cuda::check_launch("rat.scan");
}

}  // namespace sparq
