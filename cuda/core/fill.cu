#include <cuda_runtime.h>

#include "fill.h"

namespace sparq {
namespace {
template <typename T>
__global__ void fill_kernel(T* __restrict__ dst, int64_t n, T v) {
  int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) dst[i] = v;
}
template <typename T>
void launch(const FillParams& p, cudaStream_t s) {
  int64_t blocks = (p.n + 255) / 256;
  if (blocks > 65535 * 8) blocks = 65535 * 8;
  fill_kernel<T><<<static_cast<unsigned>(blocks), 256, 0, s>>>(static_cast<T*>(p.dst), p.n, static_cast<T>(p.pattern));
}
}  // namespace

Status fill_cuda(const FillParams& p, cudaStream_t stream) {
  if (p.n <= 0) return Status::OK();
  switch (p.elem_size) {
    case 1: launch<uint8_t>(p, stream); break;
    case 2: launch<uint16_t>(p, stream); break;
    case 4: launch<uint32_t>(p, stream); break;
    case 8: launch<unsigned long long>(p, stream); break;
    default: return Status(Code::internal, "fill: element size " + std::to_string(p.elem_size));
  }
  return cuda::check_launch("fill");
}

}  // namespace sparq
