#include "tensor_ops.h"

#include <cstring>
#include <future>
#include <limits>
#include <string>

#include "cast.h"
#include "fill.h"
#include "launch.h"

namespace sparq {

Status allocate_tensor(Device dev, DType dtype, const std::vector<int64_t>& shape, TensorView* out) {
  if (dev.is_cuda()) SPARQ_RETURN_IF_ERROR(cuda::require_device(dev.index));
  int64_t numel = 1;
  const int64_t limit = std::numeric_limits<int64_t>::max() / 8;
  for (int64_t d : shape) {
    if (d != 0 && numel > limit / d)
      return Status(Code::oom, "a tensor of shape [" + std::to_string(shape.size()) + " dims] has more elements than memory can hold");
    numel *= d;
  }
  TensorView t;
  t.dtype = dtype;
  t.shape = shape;
  SPARQ_RETURN_IF_ERROR(Storage::allocate(dev, static_cast<size_t>(numel) * dtype_size(dtype), &t.storage));
  *out = std::move(t);
  return Status::OK();
}

Status upload_tensor(const void* host, const TensorView& dst) {
  size_t bytes = dst.nbytes();
  if (dst.device().is_cpu()) {
    // A fresh storage no queued task can see yet: copying now is safe and keeps the caller's array free.
    if (bytes) std::memcpy(dst.data(), host, bytes);
    return Status::OK();
  }
  return cuda::copy_to_device(dst.device().index, dst.data(), host, bytes);
}

Status copy_to_device(const TensorView& src, Device dst_dev, TensorView* out) {
  TensorView dst;
  SPARQ_RETURN_IF_ERROR(allocate_tensor(dst_dev, src.dtype, src.shape, &dst));
  size_t bytes = src.nbytes();
  Device from = src.device();
  if (from.is_cpu() && dst_dev.is_cuda()) {
    // The source may still be written by queued CPU ops; the copy must see their result.
    CpuStream& cpu = CpuStream::get();
    if (!cpu.idle()) cpu.wait(cpu.last_seq());
    SPARQ_RETURN_IF_ERROR(cuda::copy_to_device(dst_dev.index, dst.data(), src.data(), bytes));
  } else if (from.is_cuda() && dst_dev.is_cpu()) {
    // The device snapshot is taken now (stream order); the CPU stream waits for it to land.
    auto landed = std::make_shared<std::promise<Status>>();
    std::shared_future<Status> ready = landed->get_future().share();
    SPARQ_RETURN_IF_ERROR(cuda::read_async(from.index, src.data(), bytes, dst.data(),
                                           [landed](Status st) { landed->set_value(st); }));
    CpuStream::get().enqueue("to(cpu)", [ready, keep = dst.storage]() { return ready.get(); });
  } else if (from.is_cuda() && dst_dev.is_cuda() && from.index != dst_dev.index) {
    SPARQ_RETURN_IF_ERROR(cuda::copy_between_devices(dst_dev.index, dst.data(), from.index, src.data(), bytes,
                                                     src.storage));
  } else {  // same device: a plain copy (clone)
    CastParams p;
    p.src = src.data();
    p.dst = dst.data();
    p.n = src.numel();
    p.src_dtype = p.dst_dtype = src.dtype;
    SPARQ_RETURN_IF_ERROR(launch("copy", from, Keep{src.storage, dst.storage},
                                 [p](ThreadPool& pool) { return cast_cpu(p, pool); },
                                 [p, from](cudaStream_t) { return cuda::copy_on_device(from.index, p.dst, p.src, p.n * dtype_size(p.src_dtype)); }));
  }
  *out = std::move(dst);
  return Status::OK();
}

Status cast_tensor(const TensorView& src, DType dtype, TensorView* out) {
  TensorView dst;
  SPARQ_RETURN_IF_ERROR(allocate_tensor(src.device(), dtype, src.shape, &dst));
  CastParams p;
  p.src = src.data();
  p.dst = dst.data();
  p.n = src.numel();
  p.src_dtype = src.dtype;
  p.dst_dtype = dtype;
  SPARQ_RETURN_IF_ERROR(launch("cast", src.device(), Keep{src.storage, dst.storage},
                               [p](ThreadPool& pool) { return cast_cpu(p, pool); },
                               [p](cudaStream_t s) { return SPARQ_CUDA_CALL(cast_cuda(p, s)); }));
  *out = std::move(dst);
  return Status::OK();
}

Status fill_tensor(const TensorView& t, uint64_t pattern) {
  FillParams p;
  p.dst = t.data();
  p.n = t.numel();
  p.elem_size = dtype_size(t.dtype);
  p.pattern = pattern;
  return launch("fill", t.device(), Keep{t.storage}, [p](ThreadPool& pool) { return fill_cpu(p, pool); },
                [p](cudaStream_t s) { return SPARQ_CUDA_CALL(fill_cuda(p, s)); });
}

Status random_tensor(const TensorView& t, Distribution dist, uint64_t seed, double a, double b) {
  RandomParams p;
  p.dst = t.data();
  p.n = t.numel();
  p.dtype = t.dtype;
  p.dist = dist;
  p.seed = seed;
  p.a = a;
  p.b = b;
  return launch("random", t.device(), Keep{t.storage}, [p](ThreadPool& pool) { return random_cpu(p, pool); },
                [p](cudaStream_t s) { return SPARQ_CUDA_CALL(random_cuda(p, s)); });
}

}  // namespace sparq
