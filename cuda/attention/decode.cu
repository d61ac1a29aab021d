// decode_cuda: picks the kernel (decode_tc.cu on sm_80+ for aligned float16/bfloat16, else
// decode_simt.cu), the number of KV splits, and merges the splits' partial states.
#include <string>

#include "attention.h"
#include "decode_kernels.cuh"

namespace sparq {
namespace {

using attn::DecodeArgs;

// Splits so that the grid fills the GPU about four blocks deep (a memory-bound kernel needs the
// loads of several blocks in flight per SM), each split keeping at least 128 keys (two 16-key
// steps per warp) so that the partial states written and merged stay a few percent of the K/V
// bytes read.
int choose_splits(int64_t blocks_per_split, int64_t Tmax, int sms) {
  const int64_t target = 4 * static_cast<int64_t>(sms);
  int64_t s = (target + blocks_per_split - 1) / blocks_per_split;
  const int64_t by_length = (Tmax + 127) / 128;
  if (s > by_length) s = by_length;
  if (s > attn::kMaxSplits) s = attn::kMaxSplits;
  return s < 1 ? 1 : static_cast<int>(s);
}

template <int kThreads>
__device__ __forceinline__ float block_reduce(float v, bool is_max, float* scratch) {
  v = is_max ? attn::warp_max(v) : attn::warp_sum(v);
  const int warp = threadIdx.x >> 5;
  if ((threadIdx.x & 31) == 0) scratch[warp] = v;
  __syncthreads();
  float r = scratch[0];
#pragma unroll
  for (int w = 1; w < kThreads / 32; ++w) r = is_max ? fmaxf(r, scratch[w]) : r + scratch[w];
  __syncthreads();  // scratch is reused by the next reduction
  return r;
}

// One block per (batch, query head) row: weights exp2(lse_s - max) of the splits, then the
// weighted mean of their normalised outputs.
template <typename T>
__global__ void __launch_bounds__(128) decode_combine_kernel(const float* __restrict__ ws_out, const float* __restrict__ ws_lse,
                                                             int splits, int D, T* __restrict__ out, float* __restrict__ lse) {
  __shared__ float weight[attn::kMaxSplits];
  __shared__ float scratch[4];
  const int64_t row = blockIdx.x;
  const float* row_lse = ws_lse + row * splits;
  float mx = attn::kNegInf;
  for (int s = threadIdx.x; s < splits; s += 128) mx = fmaxf(mx, row_lse[s]);
  mx = block_reduce<128>(mx, true, scratch);
  const float off = attn::softmax_offset(mx);
  float sum = 0.0f;
  for (int s = threadIdx.x; s < splits; s += 128) {
    weight[s] = exp2f(row_lse[s] - off);
    sum += weight[s];
  }
  sum = block_reduce<128>(sum, false, scratch);  // its barriers also publish weight[]
  const float inv = 1.0f / sum;
  const float* row_out = ws_out + row * splits * D;
  for (int d = threadIdx.x; d < D; d += 128) {
    float acc = 0.0f;
    for (int s = 0; s < splits; ++s) acc = fmaf(weight[s], row_out[static_cast<int64_t>(s) * D + d], acc);
    out[row * D + d] = attn::from_f32<T>(sum == 0.0f ? 0.0f : acc * inv);
  }
  if (lse && threadIdx.x == 0) lse[row] = sum == 0.0f ? attn::kNegInf : (mx + log2f(sum)) * attn::kLn2;
}

template <typename T, int D>
Status run_decode(const DecodeArgs& a, bool tensor_cores, int64_t blocks, cudaStream_t stream) {
  if constexpr (std::is_same<T, float>::value) return attn::launch_decode_simt<T, D>(a, blocks, stream);
  else return tensor_cores ? attn::launch_decode_tc<T, D>(a, blocks, stream) : attn::launch_decode_simt<T, D>(a, blocks, stream);
}

template <typename T>
Status run_for_type(const DecodeArgs& a, int64_t D, bool tensor_cores, int64_t blocks, int64_t rows, cudaStream_t stream) {
  Status st = D == 64    ? run_decode<T, 64>(a, tensor_cores, blocks, stream)
              : D == 128 ? run_decode<T, 128>(a, tensor_cores, blocks, stream)
                         : run_decode<T, 256>(a, tensor_cores, blocks, stream);
  if (!st.ok() || a.splits == 1) return st;
  decode_combine_kernel<T><<<static_cast<unsigned>(rows), 128, 0, stream>>>(a.ws_out, a.ws_lse, a.splits, static_cast<int>(D),
                                                                            static_cast<T*>(a.out), a.lse);
  return cuda::check_launch("attention.decode (merge)");
}

}  // namespace

Status decode_cuda(const DecodeParams& p, cudaStream_t stream) {
  if (!cuda_head_dim_supported(p.D))
    return Status(Code::unsupported, "head dim D = " + std::to_string(p.D) + " is not supported on CUDA (64, 128 or 256)");
  if (p.Hk <= 0 || p.Hq % p.Hk != 0) return Status(Code::shape, "Hq must be a multiple of Hk");
  if (p.B == 0 || p.Hq == 0) return Status::OK();

  attn::DeviceLimits dev;
  SPARQ_RETURN_IF_ERROR(attn::current_device_limits(&dev));
  DecodeArgs a;
  a.q = p.q;
  a.k = p.k_cache;
  a.v = p.v_cache;
  a.lengths = p.lengths;
  a.error_word = p.error_word;
  a.out = p.out;
  a.lse = p.lse;
  a.Hq = p.Hq;
  a.Hk = p.Hk;
  a.G = p.Hq / p.Hk;
  a.Tmax = p.Tmax;
  a.scale_log2 = p.scale * attn::kLog2e;
  a.vec16 = attn::aligned16(p.k_cache) && attn::aligned16(p.v_cache);
  const bool tensor_cores =
      dev.major >= 8 && (p.dtype == DType::f16 || p.dtype == DType::bf16) && a.vec16 && attn::aligned16(p.q);
  a.rows_per_block = tensor_cores ? attn::kDecodeTcRows : a.G == 1 ? 1 : a.G <= 4 ? 4 : 8;
  a.row_chunks = static_cast<int>((a.G + a.rows_per_block - 1) / a.rows_per_block);
  const int64_t per_split = p.B * p.Hk * a.row_chunks;
  a.splits = p.num_splits > 0 ? (p.num_splits > attn::kMaxSplits ? attn::kMaxSplits : p.num_splits)
                              : choose_splits(per_split, p.Tmax, dev.sms);
  const int64_t blocks = per_split * a.splits;
  const int64_t rows = p.B * p.Hq;
  if (blocks > 0x7fffffff || rows > 0x7fffffff)
    return Status(Code::unsupported, "attention.decode: too many blocks (" + std::to_string(blocks) + ")");

  void* ws = nullptr;
  if (a.splits > 1) {
    const size_t bytes = static_cast<size_t>(rows) * a.splits * (p.D + 1) * sizeof(float);
    SPARQ_RETURN_IF_ERROR(cuda::alloc(dev.index, bytes, &ws));
    a.ws_out = static_cast<float*>(ws);
    a.ws_lse = a.ws_out + rows * a.splits * p.D;
  }
  Status st;
  switch (p.dtype) {
    case DType::f32: st = run_for_type<float>(a, p.D, tensor_cores, blocks, rows, stream); break;
    case DType::f16: st = run_for_type<f16_t>(a, p.D, tensor_cores, blocks, rows, stream); break;
    case DType::bf16: st = run_for_type<bf16_t>(a, p.D, tensor_cores, blocks, rows, stream); break;
    default: st = Status(Code::dtype, std::string("attention.decode: unsupported dtype ") + dtype_name(p.dtype));
  }
  if (ws) cuda::free(dev.index, ws);  // stream-ordered: after the kernels that use it
  return st;
}

}  // namespace sparq
