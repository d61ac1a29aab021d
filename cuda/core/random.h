// random: seeded uniform and normal streams, identical on every backend (see philox.h).
#pragma once
#include <cstdint>

#include "cuda_context.h"
#include "dtype.h"
#include "status.h"
#include "thread_pool.h"

namespace sparq {

enum class Distribution { kUniform, kNormal };

struct RandomParams {
  void* dst = nullptr;
  int64_t n = 0;
  DType dtype = DType::f32;  // float32, float16 or bfloat16
  Distribution dist = Distribution::kNormal;
  uint64_t seed = 0;
  double a = 0, b = 1;  // uniform: [low, high); normal: mean, std
};

Status random_cpu(const RandomParams& p, ThreadPool& pool);
Status random_cuda(const RandomParams& p, cudaStream_t stream);

}  // namespace sparq
