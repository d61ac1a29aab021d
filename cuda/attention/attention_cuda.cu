// Host helpers of the attention launchers: cached device limits and the dynamic shared memory
// opt-in.
#include <cuda_runtime.h>

#include <mutex>
#include <string>

#include "attention_cuda.cuh"

namespace sparq {
namespace attn {
namespace {

constexpr int kMaxDevices = 64;  // as many as cuda_context.cu supports

Status cuda_error(cudaError_t e, const char* what) {
  cudaGetLastError();  // clear a non-sticky error so it does not leak into the next launch check
  return Status(Code::cuda, std::string(what) + ": " + cudaGetErrorName(e) + ": " + cudaGetErrorString(e));
}

}  // namespace

Status current_device_limits(DeviceLimits* out) {
  static std::once_flag once[kMaxDevices];
  static DeviceLimits limits[kMaxDevices];
  static cudaError_t errors[kMaxDevices];
  int dev = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e != cudaSuccess) return cuda_error(e, "cudaGetDevice");
  if (dev < 0 || dev >= kMaxDevices) return Status(Code::unsupported, "sparq supports at most 64 CUDA devices");
  std::call_once(once[dev], [dev] {
    DeviceLimits& l = limits[dev];
    l.index = dev;
    cudaError_t err = cudaDeviceGetAttribute(&l.sms, cudaDevAttrMultiProcessorCount, dev);
    if (err == cudaSuccess) err = cudaDeviceGetAttribute(&l.major, cudaDevAttrComputeCapabilityMajor, dev);
    if (err == cudaSuccess) err = cudaDeviceGetAttribute(&l.smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
    errors[dev] = err;
  });
  if (errors[dev] != cudaSuccess) return cuda_error(errors[dev], "cudaDeviceGetAttribute");
  *out = limits[dev];
  return Status::OK();
}

Status allow_dynamic_smem(const void* kernel, int bytes, const DeviceLimits& dev, std::atomic<uint64_t>* done) {
  if (bytes <= 48 * 1024) return Status::OK();
  if (bytes > dev.smem_optin)
    return Status(Code::unsupported, "needs " + std::to_string(bytes) + " bytes of shared memory per block; cuda:" +
                                         std::to_string(dev.index) + " allows " + std::to_string(dev.smem_optin));
  const uint64_t bit = uint64_t{1} << dev.index;
  if (done->load(std::memory_order_acquire) & bit) return Status::OK();
  cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
  if (e != cudaSuccess) return cuda_error(e, "cudaFuncSetAttribute");
  done->fetch_or(bit, std::memory_order_acq_rel);
  return Status::OK();
}

}  // namespace attn
}  // namespace sparq
