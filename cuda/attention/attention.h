// Dense attention: the contract shared by the CPU (sdpa_cpu.cc, decode_cpu.cc, merge_cpu.cc)
// and CUDA (sdpa.cu, decode.cu, merge.cu) implementations. Tensors are contiguous row-major; the
// binding (cuda/addon/attention_bindings.cc) has checked shapes, dtypes and devices, and allocated
// the outputs. Accumulation is float32; LSE is float32 in natural-log units.
//
// Masking (sdpa): for batch b let L = kv_lengths ? kv_lengths[b] : Tk. Query row i sits at absolute
// position p = L - Tq + i (queries are the last Tq positions: "bottom-right" alignment). Key j is
// visible iff  j < L  and  (!causal || j <= p)  and  (window_left < 0 || j >= p - window_left)
//           and  (window_right < 0 || j <= p + window_right).
// A row that sees no key gets out = 0 and lse = -inf. NaN in an input propagates to the rows that
// see it. A kv_lengths value outside [0, Tk] is a data error: the CPU kernel returns
// Status(Code::invalid_arg_value, device_error_message(kDeviceErrorLengthOutOfRange)); a CUDA kernel
// writes kDeviceErrorLengthOutOfRange to `error_word` (atomicCAS from 0) and treats the row as empty.
#pragma once
#include <cstdint>
#include <vector>

#include "../core/cuda_context.h"
#include "../core/dtype.h"
#include "../core/status.h"
#include "../core/thread_pool.h"

namespace sparq {

// out[b, h, i, :] = softmax(scale * q[b, h, i, :] . k[b, h / G, j, :] over visible j) @ v[b, h / G, :, :]
// with G = Hq / Hk (GQA: query head h reads KV head h / G).
struct SdpaParams {
  const void* q = nullptr;  // [B, Hq, Tq, D]
  const void* k = nullptr;  // [B, Hk, Tk, D]
  const void* v = nullptr;  // [B, Hk, Tk, D]
  void* out = nullptr;      // [B, Hq, Tq, D], same dtype as q
  float* lse = nullptr;     // [B, Hq, Tq] or nullptr
  DType dtype = DType::f32; // float32, float16 or bfloat16 (q, k, v and out alike)
  int64_t B = 0, Hq = 0, Hk = 0, Tq = 0, Tk = 0, D = 0;
  const int32_t* kv_lengths = nullptr;  // [B] or nullptr (= Tk for every sequence)
  bool causal = false;
  int64_t window_left = -1, window_right = -1;  // -1: unbounded
  float scale = 1.0f;
  int* error_word = nullptr;  // CUDA only: the device's error word
};

// Head dims the CUDA kernels handle (the CPU handles any D <= kCpuMaxHeadDim).
inline bool cuda_head_dim_supported(int64_t D) { return D == 64 || D == 128 || D == 256; }
constexpr int64_t kCpuMaxHeadDim = 256;

Status sdpa_cpu(const SdpaParams& p, ThreadPool& pool);
Status sdpa_cuda(const SdpaParams& p, cudaStream_t stream);

// One decode step over a KV cache: the last row of sdpa with Tq = 1 and causal masking, i.e. the
// query of sequence b attends to keys [0, lengths[b]). Split-KV (flash-decoding): the keys are cut
// into splits processed in parallel and merged by LSE.
struct DecodeParams {
  const void* q = nullptr;        // [B, Hq, D]
  const void* k_cache = nullptr;  // [B, Hk, Tmax, D]
  const void* v_cache = nullptr;  // [B, Hk, Tmax, D]
  const int32_t* lengths = nullptr;  // [B], each in [0, Tmax] (else a data error, as above)
  void* out = nullptr;            // [B, Hq, D]
  float* lse = nullptr;           // [B, Hq] or nullptr
  DType dtype = DType::f32;
  int64_t B = 0, Hq = 0, Hk = 0, Tmax = 0, D = 0;
  float scale = 1.0f;
  int num_splits = 0;  // 0: the implementation chooses
  int* error_word = nullptr;
};

Status decode_cpu(const DecodeParams& p, ThreadPool& pool);
Status decode_cuda(const DecodeParams& p, cudaStream_t stream);

// Merge of partial attention states over disjoint key sets (FlashInfer's merge_state):
// m = max_i lse_i; w_i = exp(lse_i - m); out = sum_i w_i out_i / sum_i w_i; lse = m + log(sum_i w_i).
// Parts with lse = -inf weigh nothing; if every part has -inf, out = 0 and lse = -inf.
struct MergeParams {
  std::vector<const void*> outs;   // each [rows, D], dtype `dtype`
  std::vector<const float*> lses;  // each [rows]
  void* out = nullptr;             // [rows, D]
  float* lse = nullptr;            // [rows] or nullptr
  DType dtype = DType::f32;
  int64_t rows = 0, D = 0;
};

Status merge_cpu(const MergeParams& p, ThreadPool& pool);
Status merge_cuda(const MergeParams& p, cudaStream_t stream);

}  // namespace sparq
