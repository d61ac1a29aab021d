// Split-KV decode (flash-decoding) on CUDA: arguments, the block -> (batch, KV head, row chunk,
// split) mapping, result stores, and the launchers (decode_tc.cu: tensor cores, sm_80+,
// float16/bfloat16; decode_simt.cu: fp32 FMA, any dtype and arch). decode.cu chooses the split
// count and merges the splits.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "../core/cuda_context.h"
#include "attention_cuda.cuh"

namespace sparq {
namespace attn {

constexpr int kDecodeWarps = 4, kDecodeThreads = kDecodeWarps * 32;
constexpr int kDecodeTcRows = 16;  // query heads per tensor-core block: the mma's M
constexpr int kMaxSplits = 1024;

struct DecodeArgs {
  const void* q = nullptr;  // [B, Hq, D]
  const void* k = nullptr;  // [B, Hk, Tmax, D]
  const void* v = nullptr;
  const int32_t* lengths = nullptr;
  int* error_word = nullptr;
  void* out = nullptr;      // [B, Hq, D]: written directly when splits == 1
  float* lse = nullptr;     // [B, Hq] or null
  float* ws_out = nullptr;  // splits > 1: [B * Hq, splits, D] normalised partial outputs
  float* ws_lse = nullptr;  //             [B * Hq, splits] partial LSE in log2 units (-inf: empty)
  int64_t Hq = 0, Hk = 0, G = 0, Tmax = 0;
  int splits = 1;
  int rows_per_block = 1;  // query heads of one KV head handled together (row chunk)
  int row_chunks = 1;      // ceil(G / rows_per_block)
  float scale_log2 = 0;
  bool vec16 = false;      // K/V rows start on 16-byte boundaries (SIMT kernel's vector loads)
};

// A block's work: query heads [head0, head0 + nrows) of KV head kvh in batch b, keys [begin, end).
struct DecodeBlock {
  int64_t b, kvh, head0, begin, end;
  int nrows, split;
};

__device__ __forceinline__ DecodeBlock decode_block(const DecodeArgs& a, bool report) {
  int64_t bid = blockIdx.x;
  DecodeBlock d;
  d.split = static_cast<int>(bid % a.splits);
  bid /= a.splits;
  const int rc = static_cast<int>(bid % a.row_chunks);
  bid /= a.row_chunks;
  d.kvh = bid % a.Hk;
  d.b = bid / a.Hk;
  d.head0 = d.kvh * a.G + static_cast<int64_t>(rc) * a.rows_per_block;
  const int64_t left = a.G - static_cast<int64_t>(rc) * a.rows_per_block;
  d.nrows = static_cast<int>(left < a.rows_per_block ? left : a.rows_per_block);
  const int64_t L = checked_length(a.lengths, d.b, a.Tmax, report ? a.error_word : nullptr);
  // Each sequence is cut into `splits` equal spans (multiples of 16 keys), so ragged lengths
  // still spread evenly over the blocks.
  int64_t per = (L + a.splits - 1) / a.splits;
  per = (per + 15) / 16 * 16;
  const int64_t begin = d.split * per;
  d.begin = begin < L ? begin : L;
  d.end = d.begin + per < L ? d.begin + per : L;
  return d;
}

// Stores element `dim` of row (b, head) for this block's split: the final output when there is a
// single split, else the partial in the workspace. `val` is already normalised.
template <typename T>
__device__ __forceinline__ void store_decode_value(const DecodeArgs& a, int64_t row, int split, int D, int dim, float val) {
  if (a.splits == 1) static_cast<T*>(a.out)[row * D + dim] = from_f32<T>(val);
  else a.ws_out[(row * a.splits + split) * D + dim] = val;
}

// m: the row's running maximum (log2 units); sum: its softmax denominator (0: no key seen).
__device__ __forceinline__ void store_decode_lse(const DecodeArgs& a, int64_t row, int split, float m, float sum) {
  const float lse2 = sum == 0.0f ? kNegInf : m + log2f(sum);
  if (a.splits > 1) a.ws_lse[row * a.splits + split] = lse2;
  else if (a.lse) a.lse[row] = lse2 * kLn2;
}

// Merges the softmax state (mb, lb) of other keys into (ma, la) and returns the weights the
// unnormalised outputs take: o = oa * wa + ob * wb. An empty state (m = -inf) weighs 0.
struct MergeWeights {
  float wa, wb;
};
__device__ __forceinline__ MergeWeights merge_states(float& ma, float& la, float mb, float lb) {
  const float m = fmaxf(ma, mb);
  const float off = softmax_offset(m);
  const MergeWeights w{exp2f(ma - off), exp2f(mb - off)};
  la = la * w.wa + lb * w.wb;
  ma = m;
  return w;
}

template <typename T, int D>
Status launch_decode_tc(const DecodeArgs& a, int64_t blocks, cudaStream_t stream);
template <typename T, int D>
Status launch_decode_simt(const DecodeArgs& a, int64_t blocks, cudaStream_t stream);

}  // namespace attn
}  // namespace sparq
