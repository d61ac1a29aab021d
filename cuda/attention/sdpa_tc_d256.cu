// Tensor-core prefill kernels for head dim 256 (one translation unit per D keeps builds parallel).
#include "sdpa_tc.cuh"

namespace sparq {
namespace attn {

template Status launch_sdpa_tc<f16_t, 256>(SdpaArgs, int64_t, const DeviceLimits&, cudaStream_t);
template Status launch_sdpa_tc<bf16_t, 256>(SdpaArgs, int64_t, const DeviceLimits&, cudaStream_t);

}  // namespace attn
}  // namespace sparq
