// Rotary position embedding (RoPE, Su et al. 2021) on x [B, H, T, D], out of place.
// For rotary dims r = rotary_dim (even, <= D; the other D - r dims are copied), pair index
// i in [0, r/2) and position pos: theta = pos * base^(-2i / r);
//   rotate-half (Llama/HF): the pair is (x[i], x[i + r/2]);
//   interleaved (GPT-J):    the pair is (x[2i], x[2i + 1]);
//   (a, b) -> (a cos theta - b sin theta, a sin theta + b cos theta).
// pos = positions ? positions[t] (or positions[b, t] when positions_per_batch) : offset + t.
// Angles are computed in double, the rotation in float32. A negative position is a data error
// (kDeviceErrorPositionOutOfRange; see attention.h for how CPU and CUDA report it).
#pragma once
#include <cstdint>

#include "../core/cuda_context.h"
#include "../core/dtype.h"
#include "../core/status.h"
#include "../core/thread_pool.h"

namespace sparq {

struct RopeParams {
  const void* x = nullptr;  // [B, H, T, D]
  void* out = nullptr;      // [B, H, T, D], same dtype
  DType dtype = DType::f32;
  int64_t B = 0, H = 0, T = 0, D = 0;
  int64_t rotary_dim = 0;   // even, 2 <= rotary_dim <= D
  const int32_t* positions = nullptr;  // [T] or [B, T] (positions_per_batch), or nullptr
  bool positions_per_batch = false;
  int64_t offset = 0;       // used when positions is nullptr
  double base = 10000.0;
  bool interleaved = false;
  int* error_word = nullptr;
};

Status rope_cpu(const RopeParams& p, ThreadPool& pool);
Status rope_cuda(const RopeParams& p, cudaStream_t stream);

}  // namespace sparq
