// merge_cuda: LSE merge of attention states (attention.h, MergeParams), elementwise over rows.
// A warp takes one row: lane i holds part i's LSE, the warp reduces max and sum, and then the lanes
// stride over the row's D columns. Part pointers travel by value in the kernel arguments, up to
// kMaxParts per launch; more parts are merged in rounds through a float32 "carry" state (out, lse)
// that the next round reads as one more part, so there is a single rounding to the output dtype.
// Same rules as merge_cpu.cc: a NaN LSE wins the maximum (and so reaches the output), a part
// whose weight is 0 is not read, a row whose parts are all -inf gives 0 and -inf.
#include <string>

#include "../core/cuda_context.h"
#include "attention.h"
#include "attention_cuda.cuh"

namespace sparq {
namespace {

constexpr int kMaxParts = 16;  // + 1 carry <= 32 lanes
constexpr int kWarps = 4, kThreads = kWarps * 32, kRowsPerWarp = 4;

template <typename T>
struct MergeInputs {
  const T* out[kMaxParts];
  const float* lse[kMaxParts];
  int n = 0;
  const float* carry_out = nullptr;  // [rows, D] f32 from the previous round, or null
  const float* carry_lse = nullptr;
};

__device__ __forceinline__ float max_nan_wins(float a, float b) { return a != a ? a : b != b ? b : fmaxf(a, b); }

template <typename T, typename O>
__global__ void __launch_bounds__(kThreads) merge_kernel(const MergeInputs<T> in, O* __restrict__ out, float* __restrict__ lse,
                                                          int64_t rows, int64_t D) {
  __shared__ float weight[kWarps][32];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int n = in.n, carry_slot = in.carry_lse ? n : -1;
  const int64_t first = (static_cast<int64_t>(blockIdx.x) * kWarps + warp) * kRowsPerWarp;
  for (int64_t row = first; row < first + kRowsPerWarp && row < rows; ++row) {
    float li = attn::kNegInf;
    if (lane < n) li = in.lse[lane][row];
    else if (lane == carry_slot) li = in.carry_lse[row];
    float m = li;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) m = max_nan_wins(m, __shfl_xor_sync(0xffffffffu, m, o));
    const bool empty = m == attn::kNegInf;
    const float wi = empty ? 0.0f : expf(li - m);
    const float total = attn::warp_sum(wi);
    __syncwarp();  // the previous row's readers are done with weight[warp]
    weight[warp][lane] = wi;
    __syncwarp();
    const float inv = 1.0f / total;
    for (int64_t d = lane; d < D; d += 32) {
      float acc = 0.0f;
      for (int i = 0; i < n; ++i) {
        const float w = weight[warp][i];
        if (w != 0.0f) acc = fmaf(w, attn::to_f32(in.out[i][row * D + d]), acc);
      }
      if (carry_slot >= 0 && weight[warp][carry_slot] != 0.0f)
        acc = fmaf(weight[warp][carry_slot], in.carry_out[row * D + d], acc);
      out[row * D + d] = attn::from_f32<O>(empty ? 0.0f : acc * inv);
    }
    if (lse && lane == 0) lse[row] = empty ? attn::kNegInf : m + logf(total);
  }
}

template <typename T, typename O>
Status launch_round(const MergeInputs<T>& in, O* out, float* lse, int64_t rows, int64_t D, cudaStream_t stream) {
  const int64_t rows_per_block = kWarps * kRowsPerWarp;
  const int64_t blocks = (rows + rows_per_block - 1) / rows_per_block;
  if (blocks > 0x7fffffff) return Status(Code::unsupported, "attention.mergeStates: too many rows (" + std::to_string(rows) + ")");
  merge_kernel<T, O><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(in, out, lse, rows, D);
  return cuda::check_launch("attention.mergeStates");
}

template <typename T>
Status merge_typed(const MergeParams& p, cudaStream_t stream) {
  const int n = static_cast<int>(p.outs.size());
  MergeInputs<T> in;
  auto fill = [&](int from, int count) {
    for (int i = 0; i < count; ++i) {
      in.out[i] = static_cast<const T*>(p.outs[from + i]);
      in.lse[i] = p.lses[from + i];
    }
    in.n = count;
  };
  if (n <= kMaxParts) {
    fill(0, n);
    return launch_round<T, T>(in, static_cast<T*>(p.out), p.lse, p.rows, p.D, stream);
  }
  // Rounds: parts [0, 16) -> carry; carry + the next 16 parts -> carry; ...; the last round writes
  // the output. Two carry buffers alternate (a round reads one and writes the other).
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) {
    cudaGetLastError();
    return Status(Code::cuda, "attention.mergeStates: cudaGetDevice failed");
  }
  const size_t state_floats = static_cast<size_t>(p.rows) * (p.D + 1);
  void* ws = nullptr;
  SPARQ_RETURN_IF_ERROR(cuda::alloc(dev, 2 * state_floats * sizeof(float), &ws));
  float* buf[2] = {static_cast<float*>(ws), static_cast<float*>(ws) + state_floats};
  Status st;
  int done = 0, round = 0;
  while (st.ok() && done < n) {
    const int count = n - done < kMaxParts ? n - done : kMaxParts;
    fill(done, count);
    done += count;
    float* carry_out = buf[round & 1];
    float* carry_lse = carry_out + p.rows * p.D;
    if (done == n) {
      st = launch_round<T, T>(in, static_cast<T*>(p.out), p.lse, p.rows, p.D, stream);
    } else {
      st = launch_round<T, float>(in, carry_out, carry_lse, p.rows, p.D, stream);
      in.carry_out = carry_out;
      in.carry_lse = carry_lse;
    }
    ++round;
  }
  cuda::free(dev, ws);  // stream-ordered: after the rounds
  return st;
}

}  // namespace

Status merge_cuda(const MergeParams& p, cudaStream_t stream) {
  if (p.outs.empty() || p.outs.size() != p.lses.size()) return Status(Code::invalid_arg_value, "mergeStates needs matching parts");
  if (p.rows <= 0) return Status::OK();
  switch (p.dtype) {
    case DType::f32: return merge_typed<float>(p, stream);
    case DType::f16: return merge_typed<f16_t>(p, stream);
    case DType::bf16: return merge_typed<bf16_t>(p, stream);
    default: return Status(Code::dtype, std::string("attention.mergeStates: unsupported dtype ") + dtype_name(p.dtype));
  }
}

}  // namespace sparq
