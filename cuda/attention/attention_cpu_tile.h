// One tile of dense attention on the CPU: up to kTileMaxRows query rows (a few query heads of one
// KV head x a few positions) against a range of keys, in blocks of kTileKeys keys with an online
// softmax (FlashAttention-2's recurrence, float32). sdpa_cpu.cc runs one tile per query tile;
// decode_cpu.cc one per split of the KV cache.
#pragma once
#include <cstdint>

#include "../core/dtype.h"
#include "attention.h"
#include "attention_cpu_kernels.h"

namespace sparq {
namespace attn_cpu {

constexpr int kTileMaxRows = 64;
constexpr int64_t kTileKeys = 64;

struct TileJob {
  // Query row r = t * heads + g (position t, head g) starts at q + g * q_head_stride + t * q_pos_stride
  // (elements of `dtype`).
  const void* q = nullptr;
  int64_t q_head_stride = 0, q_pos_stride = 0;
  int heads = 0, positions = 0;  // heads * positions <= kTileMaxRows
  const void* k = nullptr;       // [keys, D] of the KV head
  const void* v = nullptr;
  DType dtype = DType::f32;
  int64_t D = 0;  // <= kCpuMaxHeadDim
  float scale = 1.0f;
  // Position t sees keys [lo[t], hi[t]) (none when lo[t] >= hi[t]); keys outside them are never read.
  const int64_t* lo = nullptr;
  const int64_t* hi = nullptr;
  CpuLevel level = CpuLevel::baseline;
};

// A thread's scratch for its tiles: the accumulated state and the block buffers.
struct TileBuffers {
  // Per row r: o[r * D, (r + 1) * D) = sum_j exp(s_j - m[r]) v_j (not yet divided by l[r]), the
  // running max m[r] of the scores (-inf before any key) and l[r] = sum_j exp(s_j - m[r]).
  alignas(64) float o[kTileMaxRows * kCpuMaxHeadDim];
  float m[kTileMaxRows], l[kTileMaxRows];
  // Scaled queries (wide layout: transposed), scores then probabilities of a key block, and the
  // K and V blocks converted to float32.
  alignas(64) float q[kTileMaxRows * kCpuMaxHeadDim];
  alignas(64) float s[kTileMaxRows * kTileKeys];
  alignas(64) float k[kTileKeys * kCpuMaxHeadDim];
  alignas(64) float v[kTileKeys * kCpuMaxHeadDim];
};

// This thread's buffers (about 270 KiB: too much for the stack of some threads), allocated on
// first use; nullptr when that allocation fails.
TileBuffers* tile_buffers();

void attend_tile(const TileJob& job, TileBuffers& buf);

// Where finish_tile writes row r = t * heads + g: out + g * out_head_stride + t * out_pos_stride
// (elements of out_dtype) and, when lse is set, lse[g * lse_head_stride + t * lse_pos_stride].
struct TileOut {
  void* out = nullptr;
  DType out_dtype = DType::f32;
  int64_t out_head_stride = 0, out_pos_stride = 0;
  float* lse = nullptr;
  int64_t lse_head_stride = 0, lse_pos_stride = 0;
};

// out = o / l and lse = m + log(l); a row with l = 0 (it saw no key) gets out = 0 and lse = -inf.
void finish_tile(const TileJob& job, const TileBuffers& buf, const TileOut& dst);

}  // namespace attn_cpu
}  // namespace sparq
