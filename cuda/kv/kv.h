// KIVI KV-cache quantization: the contract shared by the CPU (kivi_cpu.cc, kivi_attend_cpu.cc) and
// CUDA (kivi.cu, kivi_attend.cu) implementations. Tensors are contiguous row-major; the binding
// (cuda/addon/kv_bindings.cc) has checked shapes, dtypes and devices and allocated the outputs.
//
// Math (KIVI, asymmetric min-max round-to-nearest-even, kivi_math.h): a group's min and scale
// (max - min) / (2^b - 1) are rounded to the metadata dtype (the cache dtype) and the codes are
// computed against those STORED values, so every backend produces the same code bits.
// Packing: LSB-first, 32 / b codes per uint32 word (code j of a word at bits [b*j, b*j + b)).
//
// Layouts (per KV head; "page" = one key group of G tokens):
//   per-channel ('channel', keys): codes u32 [..., T/G, D, G*b/32], scale/min [..., T/G, D]
//   per-token   ('token', values): codes u32 [..., T, D*b/32],      scale/min [..., T, D/G]
// Cache (B sequences, Hk KV heads, P pages per sequence, residual R, tail capacity C = R + G):
//   kCodes u32 [B, Hk, P, D, G*kb/32], kScale/kMin [B, Hk, P, D]
//   vCodes u32 [B, Hk, P, G, D*vb/32], vScale/vMin [B, Hk, P, G, D/G]
//   kTail/vTail [B, Hk, C, D] (cache dtype): token t >= Q(L) of a sequence lives in slot t mod C.
// A sequence of L tokens has its first Q(L) = (L >= R + G ? floor((L - R) / G) * G : 0) tokens in
// pages (page i = tokens [iG, iG + G)) and the rest, 0 ... R + G - 1 of them, in the tail. Q
// depends on L alone, so streaming appends and a one-shot prefill quantize the same groups, each
// token exactly once, and groups never span sequences.
#pragma once
#include <cstdint>

#include "../core/cuda_context.h"
#include "../core/dtype.h"
#include "../core/hd.h"
#include "../core/status.h"
#include "../core/thread_pool.h"

namespace sparq {

constexpr int64_t kKvMaxHeadDim = 256;
constexpr int64_t kKvMaxGroup = 256;

SPARQ_HD int64_t kivi_quantized_tokens(int64_t L, int64_t R, int64_t G) { return L >= R + G ? (L - R) / G * G : 0; }

// ---- standalone quantize / dequantize of x [outer, T, D] ----
struct KiviQuantParams {
  const void* x = nullptr;   // [outer, T, D], dtype
  uint32_t* codes = nullptr; // layouts above
  void* scale = nullptr;     // dtype
  void* min = nullptr;       // dtype
  DType dtype = DType::f32;
  int64_t outer = 0, T = 0, D = 0, G = 0;
  int bits = 2;
  bool per_channel = false;  // true: groups of G tokens of one channel; false: G channels of one token
};
Status kivi_quantize_cpu(const KiviQuantParams& p, ThreadPool& pool);
Status kivi_quantize_cuda(const KiviQuantParams& p, cudaStream_t stream);

struct KiviDequantParams {
  const uint32_t* codes = nullptr;
  const void* scale = nullptr;
  const void* min = nullptr;
  void* out = nullptr;  // [outer, T, D], dtype
  DType dtype = DType::f32;
  int64_t outer = 0, T = 0, D = 0, G = 0;
  int bits = 2;
  bool per_channel = false;
};
Status kivi_dequantize_cpu(const KiviDequantParams& p, ThreadPool& pool);
Status kivi_dequantize_cuda(const KiviDequantParams& p, cudaStream_t stream);

// ---- the cache's storage ----
struct KiviCache {
  uint32_t* k_codes = nullptr;
  void* k_scale = nullptr;
  void* k_min = nullptr;
  uint32_t* v_codes = nullptr;
  void* v_scale = nullptr;
  void* v_min = nullptr;
  void* k_tail = nullptr;
  void* v_tail = nullptr;
  DType dtype = DType::f16;
  int64_t B = 0, Hk = 0, P = 0, D = 0, G = 0, R = 0;
  int key_bits = 2, value_bits = 2;

  SPARQ_HD int64_t tail_cap() const { return R + G; }
  SPARQ_HD int64_t k_words() const { return G * key_bits / 32; }    // per channel of a page
  SPARQ_HD int64_t v_words() const { return D * value_bits / 32; }  // per token
  SPARQ_HD int64_t v_groups() const { return D / G; }               // per token
  // The largest valid length: every page full and a full tail.
  SPARQ_HD int64_t max_length() const { return P * G + R + G - 1; }
  SPARQ_HD bool length_ok(int64_t L) const { return L >= 0 && L <= max_length() && kivi_quantized_tokens(L, R, G) <= P * G; }
};

// Appends counts[b] (or n when counts is null) tokens of k/v [B, Hk, n, D] to sequence b, whose
// length is lengths[b]; lengths[b] grows by that count. Tokens that complete a page are quantized
// (keys per channel, values per token) straight from the tail and the input; the rest go to the
// tail. An invalid length or count (the new length not valid for the cache, a count outside
// [0, n]) is a data error: the CPU returns it before changing anything; CUDA reports it through
// the error word and leaves that sequence unchanged.
struct KiviAppendParams {
  KiviCache cache;
  const void* k = nullptr;  // [B, Hk, n, D], cache dtype
  const void* v = nullptr;
  int64_t n = 0;
  int32_t* lengths = nullptr;       // [B], read and updated
  const int32_t* counts = nullptr;  // [B] or null
  int* error_word = nullptr;
};
Status kivi_append_cpu(const KiviAppendParams& p, ThreadPool& pool);
Status kivi_append_cuda(const KiviAppendParams& p, cudaStream_t stream);

// Fused decode attention over the cache: out[b, h] = softmax(scale * q[b, h] . K_b) V_b over the
// lengths[b] tokens of sequence b (pages dequantized in registers, then the tail), with GQA
// (query head h reads KV head h / (Hq / Hk)). Split-KV over pages, merged by LSE. An empty
// sequence gives out = 0, lse = -inf. An invalid length is a data error, as for append.
struct KiviAttendParams {
  KiviCache cache;
  const void* q = nullptr;  // [B, Hq, D], cache dtype
  const int32_t* lengths = nullptr;
  void* out = nullptr;      // [B, Hq, D], cache dtype
  float* lse = nullptr;     // [B, Hq] or null (natural log)
  int64_t Hq = 0;
  float scale = 1.0f;
  int num_splits = 0;       // 0: chosen from the problem size
  int* error_word = nullptr;
};
Status kivi_attend_cpu(const KiviAttendParams& p, ThreadPool& pool);
Status kivi_attend_cuda(const KiviAttendParams& p, cudaStream_t stream);

}  // namespace sparq
