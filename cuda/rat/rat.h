// RAT (Wei et al., arXiv 2507.04416): chunked gated recurrence + inter-chunk softmax attention.
// The contract shared by the CPU (*_cpu.cc) and CUDA (*.cu) implementations. Tensors are
// contiguous row-major in the dense family's [B, heads, T, D] layout; the binding
// (cuda/addon/rat_bindings.cc) has checked shapes, dtypes and devices and allocated the outputs.
//
// Notation: chunk length L, token t sits in chunk c(t) = t / L at offset l(t) = t % L; Nc = ceil(T / L).
// Gate g = sigmoid(gate + bias) in float32. Per channel, with the state reset at l = 0:
//   v~_t = g_t * v~_{t-1} + (1 - g_t) * v_t,   k~_t = g_t * k~_{t-1} + (1 - g_t) * k_t
// (float32 state; outputs rounded to the dtype). Head h reads key group h % Gk and query group h % Gq.
// Attention of token t (head h), InterRoPE R_c = rotate-half RoPE at position c (none when
// rope_base == 0), s = scale:
//   logits a_j = s <R_c q_t, R_j k~_final(j)> for chunks j < c(t), and a_self = s <R_c q_t, R_c k~_t>;
//   y_t = softmax(a) . [v~_final(0..c-1), v~_t]
// where k~_final(j) = k~ at the last token of chunk j. The attention reads k~ and v~ as given (in
// their dtype), so scan + attention, forward and the decode cache all see the same values; rotated
// queries and keys are rounded to the dtype (as a RoPE op in that dtype stores them) on every path.
// Accumulation float32; LSE float32 natural log.
#pragma once
#include <cstdint>

#include "../core/cuda_context.h"
#include "../core/dtype.h"
#include "../core/status.h"
#include "../core/thread_pool.h"

namespace sparq {

struct RatScanParams {
  const void* v = nullptr;          // [B, H, T, D]
  const void* k = nullptr;          // [B, Gk, T, D]
  const void* gate = nullptr;       // [B, H, T, D] logits
  const float* gate_bias = nullptr; // [H, D] or nullptr
  void* v_out = nullptr;            // [B, H, T, D]
  void* k_out = nullptr;            // [B, H, T, D]
  void* v_final = nullptr;          // [B, H, Nc, D]: v~ at the last token of each chunk (the partial last chunk's last token)
  void* k_final = nullptr;          // [B, H, Nc, D], before RoPE
  DType dtype = DType::f32;         // of every tensor but gate_bias
  int64_t B = 0, H = 0, Gk = 0, T = 0, D = 0, L = 1;
};

Status rat_scan_cpu(const RatScanParams& p, ThreadPool& pool);
Status rat_scan_cuda(const RatScanParams& p, cudaStream_t stream);

struct RatAttentionParams {
  const void* q = nullptr;  // [B, Gq, T, D]
  const void* k = nullptr;  // k~ [B, H, T, D]
  const void* v = nullptr;  // v~ [B, H, T, D]
  void* out = nullptr;      // [B, H, T, D]
  float* lse = nullptr;     // [B, H, T] or nullptr
  DType dtype = DType::f32;
  int64_t B = 0, H = 0, Gq = 0, T = 0, D = 0, L = 1;  // D even
  double rope_base = 10000.0;  // 0: no RoPE
  float scale = 1.0f;
};

Status rat_attention_cpu(const RatAttentionParams& p, ThreadPool& pool);
Status rat_attention_cuda(const RatAttentionParams& p, cudaStream_t stream);

// Decode cache of one layer (float32, O(T / L) per sequence). Sequence b holds lengths[b] tokens:
// chunk slots j < lengths[b] / L hold R_j k~_final(j) (keys stored after InterRoPE) and v~_final(j);
// the running state of the unfinished chunk is in k_state / v_state (float32, before rounding; only
// meaningful when lengths[b] % L != 0: a step at l = 0 resets it).
struct RatCache {
  float* k_state = nullptr;   // [B, H, D]
  float* v_state = nullptr;   // [B, H, D]
  float* k_chunks = nullptr;  // [B, H, N, D]
  float* v_chunks = nullptr;  // [B, H, N, D]
  int32_t* lengths = nullptr; // [B], on the cache's device
  int64_t B = 0, H = 0, D = 0, L = 1, N = 0;  // N chunk slots: capacity N * L tokens
  double rope_base = 10000.0;
};

// Fills the cache from a prefill of T tokens: the inputs and the scan's chunk finals. Sequence b
// keeps its first prompt_lengths[b] tokens (the rest is padding and is never read); a value outside
// [0, min(T, N * L)] is a data error (CPU: Status; CUDA: error word) and leaves the cache unchanged
// on the CPU.
struct RatFillParams {
  RatCache cache;
  const void* v = nullptr;        // [B, H, T, D]
  const void* k = nullptr;        // [B, Gk, T, D]
  const void* gate = nullptr;     // [B, H, T, D]
  const float* gate_bias = nullptr;
  const void* k_final = nullptr;  // [B, H, Nc, D] from the scan
  const void* v_final = nullptr;
  const int32_t* prompt_lengths = nullptr;  // [B]
  DType dtype = DType::f32;
  int64_t Gk = 1, T = 0;
  int* error_word = nullptr;
};

Status rat_fill_cpu(const RatFillParams& p, ThreadPool& pool);
Status rat_fill_cuda(const RatFillParams& p, cudaStream_t stream);

// One token per sequence at position t = lengths[b] (each sequence at its own position): updates
// the state, attends over slots j < c(t) plus the self term, writes slot c(t) when the token ends
// its chunk, then lengths[b] += 1. lengths[b] outside [0, N * L) is a data error (nothing changes
// on the CPU; on CUDA that sequence is skipped).
struct RatStepParams {
  RatCache cache;
  const void* q = nullptr;     // [B, Gq, D]
  const void* k = nullptr;     // [B, Gk, D]
  const void* v = nullptr;     // [B, H, D]
  const void* gate = nullptr;  // [B, H, D]
  const float* gate_bias = nullptr;
  void* out = nullptr;         // [B, H, D]
  float* lse = nullptr;        // [B, H] or nullptr
  DType dtype = DType::f32;
  int64_t Gq = 1, Gk = 1;
  float scale = 1.0f;
  int* error_word = nullptr;
};

Status rat_step_cpu(const RatStepParams& p, ThreadPool& pool);
Status rat_step_cuda(const RatStepParams& p, cudaStream_t stream);

constexpr int64_t kRatMaxHeadDim = 256;
inline bool rat_cuda_head_dim_supported(int64_t D) { return D == 64 || D == 128 || D == 256; }

}  // namespace sparq
