// rope_cuda (rope.h). One block per (batch, token): the block computes the cos/sin of its position
// once per chunk of 128 pairs (double angles, as the CPU does: theta = pos * base^(-2i / r) with
// the same host-computed base^(-2i / r) table, passed by value) and applies them to every head.
// The rotation runs in f32 and rounds to the input dtype like the CPU (core/half.h).
#include <climits>
#include <cmath>
#include <string>

#include "../core/cuda_context.h"
#include "attention_cuda.cuh"
#include "rope.h"

namespace sparq {
namespace {

constexpr int kThreads = 128;
constexpr int kPairs = 128;  // pairs per chunk (and entries of the by-value frequency table)

struct RopeArgs {
  const void* x;
  void* out;
  const int32_t* positions;
  int* error_word;
  int64_t H, T, D, offset, rotary_dim;
  int half;  // rotary_dim / 2
  bool per_batch, interleaved;
  double base;
  double inv_freq[kPairs];  // base^(-2i / rotary_dim) for the first kPairs pairs
};

template <typename T>
__global__ void __launch_bounds__(kThreads) rope_kernel(const RopeArgs a) {
  __shared__ float cs[kPairs], sn[kPairs];
  const int64_t bt = blockIdx.x;
  const int64_t b = bt / a.T, t = bt % a.T;
  int64_t pos = a.positions ? a.positions[a.per_batch ? bt : t] : a.offset + t;
  if (pos < 0) {
    if (threadIdx.x == 0) attn::report_data_error(a.error_word, kDeviceErrorPositionOutOfRange);
    pos = 0;  // the op fails when it is read; keep the output defined meanwhile
  }
  const T* x = static_cast<const T*>(a.x) + (b * a.H * a.T + t) * a.D;  // head 0 of this token
  T* out = static_cast<T*>(a.out) + (b * a.H * a.T + t) * a.D;
  const int64_t head_stride = a.T * a.D;

  for (int c0 = 0; c0 < a.half; c0 += kPairs) {
    const int n = a.half - c0 < kPairs ? a.half - c0 : kPairs;
    if (c0 > 0) __syncthreads();  // the previous chunk's readers are done
    for (int i = threadIdx.x; i < n; i += kThreads) {
      const int pair = c0 + i;
      // Pairs past the table (rotary_dim > 256) take the device pow: within an ulp of the host's.
      const double inv = pair < kPairs ? a.inv_freq[pair] : pow(a.base, -2.0 * pair / static_cast<double>(a.rotary_dim));
      double sd, cd;
      sincos(static_cast<double>(pos) * inv, &sd, &cd);
      cs[i] = static_cast<float>(cd);
      sn[i] = static_cast<float>(sd);
    }
    __syncthreads();
    for (int64_t idx = threadIdx.x; idx < a.H * n; idx += kThreads) {
      const int64_t h = idx / n;
      const int i = static_cast<int>(idx % n), pair = c0 + i;
      const int64_t row = h * head_stride;
      const int64_t ia = row + (a.interleaved ? 2 * pair : pair);
      const int64_t ib = row + (a.interleaved ? 2 * pair + 1 : pair + a.half);
      const float u = attn::to_f32(x[ia]), v = attn::to_f32(x[ib]);
      out[ia] = attn::from_f32<T>(u * cs[i] - v * sn[i]);
      out[ib] = attn::from_f32<T>(u * sn[i] + v * cs[i]);
    }
  }
  const int64_t tail = a.D - a.rotary_dim;  // dims [rotary_dim, D) pass through
  for (int64_t idx = threadIdx.x; idx < a.H * tail; idx += kThreads) {
    const int64_t e = (idx / tail) * head_stride + a.rotary_dim + idx % tail;
    out[e] = x[e];
  }
}

}  // namespace

Status rope_cuda(const RopeParams& p, cudaStream_t stream) {
  if (p.rotary_dim < 2 || p.rotary_dim % 2 != 0 || p.rotary_dim > p.D || p.rotary_dim / 2 > INT_MAX)
    return Status(Code::invalid_arg_value, "rope: rotary_dim must be even and in [2, D]");
  if (p.B == 0 || p.H == 0 || p.T == 0) return Status::OK();
  const int64_t blocks = p.B * p.T;
  if (blocks > 0x7fffffff) return Status(Code::unsupported, "rope: too many tokens (" + std::to_string(blocks) + ")");
  RopeArgs a;
  a.x = p.x;
  a.out = p.out;
  a.positions = p.positions;
  a.error_word = p.error_word;
  a.H = p.H;
  a.T = p.T;
  a.D = p.D;
  a.offset = p.offset;
  a.rotary_dim = p.rotary_dim;
  a.base = p.base;
  a.half = static_cast<int>(p.rotary_dim / 2);
  a.per_batch = p.positions && p.positions_per_batch;
  a.interleaved = p.interleaved;
  for (int i = 0; i < a.half && i < kPairs; ++i)  // the CPU's table, bit for bit (rope_cpu.cc)
    a.inv_freq[i] = std::pow(p.base, -2.0 * static_cast<double>(i) / static_cast<double>(p.rotary_dim));
  const unsigned grid = static_cast<unsigned>(blocks);
  switch (p.dtype) {
    case DType::f32: rope_kernel<float><<<grid, kThreads, 0, stream>>>(a); break;
    case DType::f16: rope_kernel<f16_t><<<grid, kThreads, 0, stream>>>(a); break;
    case DType::bf16: rope_kernel<bf16_t><<<grid, kThreads, 0, stream>>>(a); break;
    default: return Status(Code::dtype, std::string("rope: unsupported dtype ") + dtype_name(p.dtype));
  }
  return cuda::check_launch("rope");
}

}  // namespace sparq
