#include <cuda_runtime.h>

#include <cstdint>

#include "cast.h"
#include "dispatch.h"

namespace sparq {
namespace {

constexpr int kThreads = 256;

// N elements moved as one 16-byte (or narrower) access: one element per thread leaves too few
// bytes in flight to reach the copy bandwidth (H100: 51% of copy for float32 -> float16).
template <typename T, int N>
struct alignas(sizeof(T) * N) Pack {
  T v[N];
};

// Elements per thread: 16 bytes of the wider of the two types.
template <typename S, typename D>
constexpr int pack_width() {
  return 16 / static_cast<int>(sizeof(S) > sizeof(D) ? sizeof(S) : sizeof(D));
}

template <typename S, typename D, int N>
__global__ void cast_packed_kernel(const S* __restrict__ src, D* __restrict__ dst, int64_t packs, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const auto* in = reinterpret_cast<const Pack<S, N>*>(src);
  auto* out = reinterpret_cast<Pack<D, N>*>(dst);
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < packs; i += stride) {
    const Pack<S, N> a = in[i];
    Pack<D, N> b;
#pragma unroll
    for (int j = 0; j < N; ++j) b.v[j] = Convert<D>::from(a.v[j]);
    out[i] = b;
  }
  // The last n mod N elements (fewer than one block of threads).
  const int64_t tail = packs * N + threadIdx.x;
  if (blockIdx.x == 0 && tail < n) dst[tail] = Convert<D>::from(src[tail]);
}

template <typename S, typename D>
__global__ void cast_kernel(const S* __restrict__ src, D* __restrict__ dst, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    dst[i] = Convert<D>::from(src[i]);
}

// A grid-stride loop with at most a few waves of blocks: enough to saturate bandwidth on any SM count.
unsigned blocks_for(int64_t items) {
  int64_t blocks = (items + kThreads - 1) / kThreads;
  if (blocks > 65535 * 8) blocks = 65535 * 8;
  return static_cast<unsigned>(blocks < 1 ? 1 : blocks);
}

}  // namespace

Status cast_cuda(const CastParams& p, cudaStream_t stream) {
  if (p.n <= 0) return Status::OK();
  visit_dtype(p.src_dtype, [&](auto s) {
    using S = typename decltype(s)::type;
    visit_dtype(p.dst_dtype, [&](auto d) {
      using D = typename decltype(d)::type;
      constexpr int N = pack_width<S, D>();
      const auto src = reinterpret_cast<uintptr_t>(p.src), dst = reinterpret_cast<uintptr_t>(p.dst);
      if (src % (sizeof(S) * N) == 0 && dst % (sizeof(D) * N) == 0) {  // views at odd offsets take the plain kernel
        const int64_t packs = p.n / N;
        cast_packed_kernel<S, D, N><<<blocks_for(packs), kThreads, 0, stream>>>(static_cast<const S*>(p.src), static_cast<D*>(p.dst),
                                                                               packs, p.n);
      } else {
        cast_kernel<S, D><<<blocks_for(p.n), kThreads, 0, stream>>>(static_cast<const S*>(p.src), static_cast<D*>(p.dst), p.n);
      }
    });
  });
  return cuda::check_launch("cast");
}

}  // namespace sparq
