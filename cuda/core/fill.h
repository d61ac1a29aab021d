// fill: write one element's bit pattern n times (the value is encoded on the host, see encode_scalar).
#pragma once
#include <cstdint>

#include "cuda_context.h"
#include "dtype.h"
#include "status.h"
#include "thread_pool.h"

namespace sparq {

struct FillParams {
  void* dst = nullptr;
  int64_t n = 0;
  size_t elem_size = 4;   // 1, 2, 4 or 8
  uint64_t pattern = 0;   // the element's bits, in the low elem_size bytes
};

Status fill_cpu(const FillParams& p, ThreadPool& pool);
Status fill_cuda(const FillParams& p, cudaStream_t stream);

// The bits of `value` converted to `dtype` with the cast rules (round to nearest even, saturate).
uint64_t encode_scalar(double value, DType dtype);

}  // namespace sparq
