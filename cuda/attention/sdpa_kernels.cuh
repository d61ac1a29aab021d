// Dense prefill attention on CUDA: the kernel arguments, the tiling of query rows into blocks,
// and the per-(dtype, D) launchers, each instantiated in its own translation unit
// (sdpa_tc_d*.cu: tensor cores, sm_80+, float16/bfloat16; sdpa_simt.cu: fp32 FMA, any arch).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "../core/cuda_context.h"
#include "attention_cuda.cuh"

namespace sparq {
namespace attn {

struct SdpaArgs {
  const void* q = nullptr;  // [B, Hq, Tq, D]
  const void* k = nullptr;  // [B, Hk, Tk, D]
  const void* v = nullptr;
  void* out = nullptr;      // [B, Hq, Tq, D]
  float* lse = nullptr;     // [B, Hq, Tq] or null
  const int32_t* kv_lengths = nullptr;
  int* error_word = nullptr;
  int64_t Hq = 0, Hk = 0, G = 0, Tq = 0, Tk = 0;
  int64_t window_left = -1, window_right = -1;
  bool causal = false;
  float scale_log2 = 0;  // scale * log2(e): scores are kept in log2 units
  // Tiling, set by plan_sdpa_grid. The G query heads of KV head h are adjacent in q, so a
  // (batch, KV head) "group" owns G * Tq consecutive rows of q/out/lse, and a block takes up to
  // BM of them: small Tq packs several heads into one block, which then reads K/V once for all.
  int64_t rows_per_group = 0;
  int64_t tiles_per_group = 0;
  int64_t tiles_per_head = 0;  // > 0: tiles never straddle two heads (see plan_sdpa_grid)
};

// Fills the tiling fields of `a` for blocks of BM rows and returns the number of blocks.
inline int64_t plan_sdpa_grid(SdpaArgs& a, int64_t B, int BM) {
  a.rows_per_group = a.G * a.Tq;
  // A tile straddling two heads holds both the last and the first queries of a sequence, so under
  // a causal or window mask it must visit the union of their key ranges: avoid that when every
  // head fills at least one tile by itself.
  const bool masked = a.causal || a.window_left >= 0 || a.window_right >= 0;
  if (masked && a.Tq >= BM) {
    a.tiles_per_head = (a.Tq + BM - 1) / BM;
    a.tiles_per_group = a.G * a.tiles_per_head;
  } else {
    a.tiles_per_head = 0;
    a.tiles_per_group = (a.rows_per_group + BM - 1) / BM;
  }
  return B * a.Hk * a.tiles_per_group;
}

// What one block works on: rows [row_begin, row_end) of group (b, kvh), whose query indices
// (position within the sequence's Tq queries) lie in [i_min, i_max]. q_row0 is the index of the
// tile's first q/out row and kv_row0 that of the group's first K/V row (in rows of D elements).
struct SdpaTile {
  int64_t b, kvh, row_begin, row_end, i_min, i_max, q_row0, kv_row0;
};

__device__ __forceinline__ SdpaTile sdpa_tile(const SdpaArgs& a, int BM) {
  const int64_t bid = blockIdx.x;
  const int64_t group = bid / a.tiles_per_group;
  const int64_t tile = bid % a.tiles_per_group;
  SdpaTile t;
  t.b = group / a.Hk;
  t.kvh = group % a.Hk;
  // Later queries see more keys under a causal mask: hand them out first.
  if (a.tiles_per_head > 0) {
    const int64_t head = tile / a.tiles_per_head;
    const int64_t k = a.tiles_per_head - 1 - tile % a.tiles_per_head;
    t.row_begin = head * a.Tq + k * BM;
    const int64_t end = (head + 1) * a.Tq;
    t.row_end = t.row_begin + BM < end ? t.row_begin + BM : end;
  } else {
    const int64_t k = a.tiles_per_group - 1 - tile;
    t.row_begin = k * BM;
    t.row_end = t.row_begin + BM < a.rows_per_group ? t.row_begin + BM : a.rows_per_group;
  }
  if (t.row_begin / a.Tq == (t.row_end - 1) / a.Tq) {
    t.i_min = t.row_begin % a.Tq;
    t.i_max = (t.row_end - 1) % a.Tq;
  } else {  // spans the end of one head and the start of the next
    t.i_min = 0;
    t.i_max = a.Tq - 1;
  }
  t.q_row0 = (t.b * a.Hq + t.kvh * a.G) * a.Tq + t.row_begin;
  t.kv_row0 = (t.b * a.Hk + t.kvh) * a.Tk;
  return t;
}

// Launchers: plan the grid, opt into shared memory, launch on `stream`.
template <typename T, int D>
Status launch_sdpa_tc(SdpaArgs a, int64_t B, const DeviceLimits& dev, cudaStream_t stream);
template <typename T, int D>
Status launch_sdpa_simt(SdpaArgs a, int64_t B, const DeviceLimits& dev, cudaStream_t stream);

}  // namespace attn
}  // namespace sparq
