// cast: convert n contiguous elements from one dtype to another (rules in convert.h).
#pragma once
#include <cstdint>

#include "cuda_context.h"
#include "dtype.h"
#include "status.h"
#include "thread_pool.h"

namespace sparq {

struct CastParams {
  const void* src = nullptr;
  void* dst = nullptr;
  int64_t n = 0;
  DType src_dtype = DType::f32, dst_dtype = DType::f32;
};

Status cast_cpu(const CastParams& p, ThreadPool& pool);
Status cast_cuda(const CastParams& p, cudaStream_t stream);

// Which CPU code path converts float32 <-> float16 on this machine ("f16c" or "scalar").
const char* cast_cpu_f16_path();

// Host-only: JavaScript numbers (double) into any dtype, same rounding rules.
void convert_from_f64_cpu(const double* src, void* dst, int64_t n, DType dst_dtype, ThreadPool& pool);

}  // namespace sparq
