// Device helpers shared by the RAT kernels (scan.cu, attention.cu, cache.cu): the float32 gate,
// the recurrence step and InterRoPE angles. Element conversion, data-error reporting and warp
// reductions come from the dense family (cuda/attention/attention_cuda.cuh).
#pragma once
#include <cuda_runtime.h>

#include "../attention/attention_cuda.cuh"
#include "rat.h"

namespace sparq {
namespace rat_gpu {

using attn::from_f32;
using attn::to_f32;

// g = sigmoid(z) in float32 (expf, not __expf: the CPU's exp is accurate to 1e-7).
__device__ __forceinline__ float gate_of(float z) { return 1.0f / (1.0f + expf(-z)); }

// s = g * s + (1 - g) * x, with s = 0 at the first token of a chunk.
__device__ __forceinline__ float gate_step(float s, float x, float g, bool reset) {
  return g * (reset ? 0.0f : s) + (1.0f - g) * x;
}

// The value a T tensor stores for x, back in float32.
template <typename T>
__device__ __forceinline__ float rounded(float x) {
  return to_f32(from_f32<T>(x));
}

// cos/sin of InterRoPE pair i (of D / 2) at position pos: angle pos * base^(-2i / D) in double,
// as the CPU computes it.
__device__ __forceinline__ void rope_angle(double base, int D, int64_t pos, int i, float* c, float* s) {
  const double inv = pow(base, -2.0 * static_cast<double>(i) / static_cast<double>(D));
  double sd, cd;
  sincos(static_cast<double>(pos) * inv, &sd, &cd);
  *c = static_cast<float>(cd);
  *s = static_cast<float>(sd);
}

// The tensor-core route of the chunk attention (attention_sdpa.cu): whether it applies on a device
// of compute capability `major`, and the run itself, given the InterRoPE table [Nc][D / 2].
bool rat_attention_sdpa_route(const RatAttentionParams& p, int major);
Status rat_attention_sdpa(const RatAttentionParams& p, int device, const float* cos, const float* sin, cudaStream_t stream);

inline unsigned blocks_for(int64_t n, int threads) { return static_cast<unsigned>((n + threads - 1) / threads); }

}  // namespace rat_gpu
}  // namespace sparq
