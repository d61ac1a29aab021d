#include <cuda_runtime.h>

#include "dispatch.h"
#include "random.h"
#include "random_math.h"

namespace sparq {
namespace {
template <typename T>
__global__ void random_kernel(T* __restrict__ dst, int64_t n, Distribution dist, uint64_t seed, double a, double b) {
  // One thread per Philox block of four elements.
  int64_t blocks = (n + 3) / 4;
  int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < blocks; k += stride) {
    float v[4];
    random_block(dist, seed, static_cast<uint64_t>(k), a, b, v);
    int64_t base = 4 * k;
    for (int j = 0; j < 4 && base + j < n; ++j) dst[base + j] = Convert<T>::from(v[j]);
  }
}
}  // namespace

Status random_cuda(const RandomParams& p, cudaStream_t stream) {
  if (p.n <= 0) return Status::OK();
  int64_t blocks = ((p.n + 3) / 4 + 255) / 256;
  if (blocks > 65535 * 8) blocks = 65535 * 8;
  Status st = Status(Code::internal, "random: non-float dtype");
  visit_dtype(p.dtype, [&](auto t) {
    using T = typename decltype(t)::type;
    if constexpr (IsFloatSrc<T>::value) {
      random_kernel<T><<<static_cast<unsigned>(blocks), 256, 0, stream>>>(static_cast<T*>(p.dst), p.n, p.dist,
                                                                          p.seed, p.a, p.b);
      st = cuda::check_launch("random");
    }
  });
  return st;
}

}  // namespace sparq
