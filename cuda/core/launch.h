// Runs an op on the stream of its device. CPU: queued on the CPU stream (the task keeps `keep`
// alive until it has run). CUDA: launched at once on the device's stream; stream-ordered frees
// make holding references unnecessary there.
#pragma once
#include <memory>
#include <utility>
#include <vector>

#include "cpu_stream.h"
#include "cuda_context.h"
#include "device.h"
#include "storage.h"

#ifdef SPARQ_HAVE_CUDA
#define SPARQ_CUDA_CALL(expr) (expr)
#else
// CPU-only build: the CUDA kernels are not linked; device checks reject CUDA tensors earlier.
#define SPARQ_CUDA_CALL(expr) ::sparq::cuda::require_device(0)
#endif

namespace sparq {

using Keep = std::vector<std::shared_ptr<Storage>>;

template <typename CpuFn, typename CudaFn>
Status launch(const char* op, Device dev, Keep keep, CpuFn&& cpu_fn, CudaFn&& cuda_fn) {
  if (dev.is_cpu()) {
    CpuStream& s = CpuStream::get();
    s.enqueue(op, [keep = std::move(keep), cpu_fn = std::forward<CpuFn>(cpu_fn)]() mutable {
      return cpu_fn(CpuStream::get().pool());
    });
    return Status::OK();
  }
  cudaStream_t stream;
  SPARQ_RETURN_IF_ERROR(cuda::stream(dev.index, &stream));
  return cuda_fn(stream);
}

}  // namespace sparq
