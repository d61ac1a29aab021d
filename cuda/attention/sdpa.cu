// sdpa_cuda: validates, picks the kernel variant and launches it (kernels: sdpa_tc.cuh,
// sdpa_simt.cu). Tensor cores serve float16/bfloat16 on sm_80+ when q, k, v and out are 16-byte
// aligned (views can start anywhere); everything else runs the fp32-FMA kernel.
#include <climits>
#include <string>

#include "attention.h"
#include "sdpa_kernels.cuh"

namespace sparq {

namespace {

template <int D>
Status launch_for_dim(DType dtype, bool tensor_cores, const attn::SdpaArgs& a, int64_t B, const attn::DeviceLimits& dev,
                      cudaStream_t stream) {
  switch (dtype) {
    case DType::f32: return attn::launch_sdpa_simt<float, D>(a, B, dev, stream);
    case DType::f16:
      return tensor_cores ? attn::launch_sdpa_tc<f16_t, D>(a, B, dev, stream) : attn::launch_sdpa_simt<f16_t, D>(a, B, dev, stream);
    case DType::bf16:
      return tensor_cores ? attn::launch_sdpa_tc<bf16_t, D>(a, B, dev, stream)
                          : attn::launch_sdpa_simt<bf16_t, D>(a, B, dev, stream);
    default: return Status(Code::dtype, std::string("attention.sdpa: unsupported dtype ") + dtype_name(dtype));
  }
}

}  // namespace

Status sdpa_cuda(const SdpaParams& p, cudaStream_t stream) {
  if (!cuda_head_dim_supported(p.D))
    return Status(Code::unsupported, "head dim D = " + std::to_string(p.D) + " is not supported on CUDA (64, 128 or 256)");
  if (p.Hk <= 0 || p.Hq % p.Hk != 0) return Status(Code::shape, "Hq must be a multiple of Hk");
  if (p.B == 0 || p.Hq == 0 || p.Tq == 0) return Status::OK();
  // Key indices are ints in the kernels (with room for a tile past the end).
  if (p.Tk > INT_MAX - 1024) return Status(Code::unsupported, "Tk = " + std::to_string(p.Tk) + " is too long for the CUDA kernels");

  attn::DeviceLimits dev;
  SPARQ_RETURN_IF_ERROR(attn::current_device_limits(&dev));
  attn::SdpaArgs a;
  a.q = p.q;
  a.k = p.k;
  a.v = p.v;
  a.out = p.out;
  a.lse = p.lse;
  a.kv_lengths = p.kv_lengths;
  a.error_word = p.error_word;
  a.Hq = p.Hq;
  a.Hk = p.Hk;
  a.G = p.Hq / p.Hk;
  a.Tq = p.Tq;
  a.Tk = p.Tk;
  a.window_left = p.window_left < 0 ? -1 : p.window_left;
  a.window_right = p.window_right < 0 ? -1 : p.window_right;
  a.causal = p.causal;
  a.scale_log2 = p.scale * attn::kLog2e;

  const bool tensor_cores = dev.major >= 8 && (p.dtype == DType::f16 || p.dtype == DType::bf16) && attn::aligned16(p.q) &&
                            attn::aligned16(p.k) && attn::aligned16(p.v) && attn::aligned16(p.out);
  switch (p.D) {
    case 64: return launch_for_dim<64>(p.dtype, tensor_cores, a, p.B, dev, stream);
    case 128: return launch_for_dim<128>(p.dtype, tensor_cores, a, p.B, dev, stream);
    default: return launch_for_dim<256>(p.dtype, tensor_cores, a, p.B, dev, stream);
  }
}

}  // namespace sparq
