#include <cuda_runtime.h>

#include "cast.h"
#include "dispatch.h"

namespace sparq {
namespace {

template <typename S, typename D>
__global__ void cast_kernel(const S* __restrict__ src, D* __restrict__ dst, int64_t n) {
  int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    dst[i] = Convert<D>::from(src[i]);
}

}  // namespace

Status cast_cuda(const CastParams& p, cudaStream_t stream) {
  if (p.n <= 0) return Status::OK();
  constexpr int kThreads = 256;
  // A grid-stride loop with a few waves of blocks: enough to saturate bandwidth on any SM count.
  int64_t blocks = (p.n + kThreads - 1) / kThreads;
  if (blocks > 65535 * 8) blocks = 65535 * 8;
  visit_dtype(p.src_dtype, [&](auto s) {
    using S = typename decltype(s)::type;
    visit_dtype(p.dst_dtype, [&](auto d) {
      using D = typename decltype(d)::type;
      cast_kernel<S, D><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
          static_cast<const S*>(p.src), static_cast<D*>(p.dst), p.n);
    });
  });
  return cuda::check_launch("cast");
}

}  // namespace sparq
