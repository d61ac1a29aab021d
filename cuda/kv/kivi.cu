// KIVI quantize, dequantize and cache append on CUDA. The group math is kivi_math.h, shared with
// the CPU, so the codes are bit-identical; layouts are in kv.h.
#include <cuda_runtime.h>

#include <string>

#include "../attention/attention_cuda.cuh"
#include "kivi_math.h"
#include "kv.h"

namespace sparq {
namespace {

constexpr int kThreads = 128;

template <typename T>
__device__ __forceinline__ float ld(const T* p) {
  return kivi::widen(*p);
}

// Channel d of a key group: the G tokens at rows(t)[d]. Writes W = G*bits/32 words and the
// channel's scale/min.
template <typename T, typename Rows>
__device__ void quantize_channel(const Rows& rows, int64_t d, int64_t G, int bits, uint32_t* codes, T* scale, T* min) {
  float mn = ld(rows(0) + d), mx = mn;
  for (int64_t t = 1; t < G; ++t) {
    const float x = ld(rows(t) + d);
    mn = x < mn ? x : mn;
    mx = x > mx ? x : mx;
  }
  float sf, mf;
  kivi::group_params(mn, mx, bits, scale, min, &sf, &mf);
  const int per = 32 / bits;
  for (int64_t j = 0; j < G / per; ++j) {
    uint32_t w = 0;
    for (int i = 0; i < per; ++i) w |= kivi::code_of(ld(rows(j * per + i) + d), sf, mf, bits) << (i * bits);
    codes[j] = w;
  }
}

// Group g of a token row x[D]: G channels -> G*bits/32 words, one scale/min.
template <typename T>
__device__ void quantize_token_group(const T* x, int64_t G, int bits, uint32_t* codes, T* scale, T* min) {
  float mn = ld(x), mx = mn;
  for (int64_t i = 1; i < G; ++i) {
    const float v = ld(x + i);
    mn = v < mn ? v : mn;
    mx = v > mx ? v : mx;
  }
  float sf, mf;
  kivi::group_params(mn, mx, bits, scale, min, &sf, &mf);
  const int per = 32 / bits;
  for (int64_t j = 0; j < G / per; ++j) {
    uint32_t w = 0;
    for (int i = 0; i < per; ++i) w |= kivi::code_of(ld(x + j * per + i), sf, mf, bits) << (i * bits);
    codes[j] = w;
  }
}

// ---- standalone quantize / dequantize ----

template <typename T>
__global__ void quantize_channel_kernel(KiviQuantParams p) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  const int64_t items = p.outer * (p.T / p.G);
  if (idx >= items * p.D) return;
  const int64_t item = idx / p.D, d = idx % p.D, W = p.G * p.bits / 32;
  const T* base = static_cast<const T*>(p.x) + item * p.G * p.D;
  auto rows = [&](int64_t t) { return base + t * p.D; };
  quantize_channel<T>(rows, d, p.G, p.bits, p.codes + idx * W, static_cast<T*>(p.scale) + idx, static_cast<T*>(p.min) + idx);
}

template <typename T>
__global__ void quantize_token_kernel(KiviQuantParams p) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  const int64_t groups = p.D / p.G;
  if (idx >= p.outer * p.T * groups) return;
  const int64_t row = idx / groups, g = idx % groups, W = p.D * p.bits / 32;
  quantize_token_group<T>(static_cast<const T*>(p.x) + row * p.D + g * p.G, p.G, p.bits,
                          p.codes + row * W + g * p.G * p.bits / 32, static_cast<T*>(p.scale) + idx, static_cast<T*>(p.min) + idx);
}

template <typename T>
__global__ void dequantize_kernel(KiviDequantParams p) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (idx >= p.outer * p.T * p.D) return;
  const int per = 32 / p.bits;
  const uint32_t mask = (1u << p.bits) - 1u;
  const int64_t d = idx % p.D, r = idx / p.D;  // r = row (outer, t)
  const T* scale = static_cast<const T*>(p.scale);
  const T* min = static_cast<const T*>(p.min);
  uint32_t code;
  int64_t meta;
  if (p.per_channel) {
    const int64_t t = r % p.T, o = r / p.T, page = o * (p.T / p.G) + t / p.G, tt = t % p.G, W = p.G / per;
    code = (p.codes[(page * p.D + d) * W + tt / per] >> ((tt % per) * p.bits)) & mask;
    meta = page * p.D + d;
  } else {
    code = (p.codes[r * (p.D / per) + d / per] >> ((d % per) * p.bits)) & mask;
    meta = r * (p.D / p.G) + d / p.G;
  }
  static_cast<T*>(p.out)[idx] = Convert<T>::from(kivi::dequant(code, kivi::widen(scale[meta]), kivi::widen(min[meta])));
}

// ---- append ----

__device__ __forceinline__ int64_t quantized(int64_t L, int64_t R, int64_t G) { return kivi_quantized_tokens(L, R, G); }

// The length and count of sequence b, or false (the sequence is left alone) when invalid.
__device__ __forceinline__ bool sequence(const KiviAppendParams& p, int64_t b, int64_t* L, int64_t* n) {
  *L = p.lengths[b];
  *n = p.counts ? p.counts[b] : p.n;
  return *n >= 0 && *n <= p.n && p.cache.length_ok(*L) && p.cache.length_ok(*L + *n);
}

// Block (flush i, KV head h, batch b): quantizes page q0/G + i of (b, h) when it completes in this
// append. Threads take the D key channels, then the G x D/G value groups.
template <typename T>
__global__ void __launch_bounds__(kThreads) append_flush_kernel(KiviAppendParams p) {
  const KiviCache& c = p.cache;
  const int64_t b = blockIdx.z, h = blockIdx.y, i = blockIdx.x;
  int64_t L, n;
  if (!sequence(p, b, &L, &n)) return;  // reported by append_lengths_kernel
  const int64_t q0 = quantized(L, c.R, c.G), q1 = quantized(L + n, c.R, c.G);
  if (q0 + i * c.G >= q1) return;
  const int64_t first = q0 + i * c.G, bh = b * c.Hk + h, page = bh * c.P + first / c.G, C = c.tail_cap();
  auto source = [&](const void* tail, const void* in, int64_t t) -> const T* {
    if (t < L) return static_cast<const T*>(tail) + (bh * C + t % C) * c.D;
    return static_cast<const T*>(in) + (bh * p.n + (t - L)) * c.D;
  };
  auto krows = [&](int64_t t) { return source(c.k_tail, p.k, first + t); };
  const int64_t kw = c.k_words(), vw = c.v_words(), vg = c.v_groups();
  for (int64_t d = threadIdx.x; d < c.D; d += kThreads)
    quantize_channel<T>(krows, d, c.G, c.key_bits, c.k_codes + (page * c.D + d) * kw, static_cast<T*>(c.k_scale) + page * c.D + d,
                        static_cast<T*>(c.k_min) + page * c.D + d);
  for (int64_t idx = threadIdx.x; idx < c.G * vg; idx += kThreads) {
    const int64_t t = idx / vg, g = idx % vg, slot = page * c.G + t;
    quantize_token_group<T>(source(c.v_tail, p.v, first + t) + g * c.G, c.G, c.value_bits,
                            c.v_codes + slot * vw + g * c.G * c.value_bits / 32, static_cast<T*>(c.v_scale) + slot * vg + g,
                            static_cast<T*>(c.v_min) + slot * vg + g);
  }
}

// Block (x, KV head h, batch b) takes token j = count - 1 - x of sequence b's append: the tokens
// that stay in full precision are among its last R + G - 1, so the grid needs no more blocks than
// that. Each goes to its tail slot. Runs after the flush kernel, which may still read the slot's
// previous token.
template <typename T>
__global__ void __launch_bounds__(kThreads) append_tail_kernel(KiviAppendParams p) {
  const KiviCache& c = p.cache;
  const int64_t b = blockIdx.z, h = blockIdx.y;
  int64_t L, n;
  if (!sequence(p, b, &L, &n)) return;
  const int64_t j = n - 1 - static_cast<int64_t>(blockIdx.x);
  if (j < 0) return;
  const int64_t t = L + j;
  if (t < quantized(L + n, c.R, c.G)) return;
  const int64_t bh = b * c.Hk + h, src = (bh * p.n + j) * c.D, dst = (bh * c.tail_cap() + t % c.tail_cap()) * c.D;
  const T* k = static_cast<const T*>(p.k);
  const T* v = static_cast<const T*>(p.v);
  for (int64_t d = threadIdx.x; d < c.D; d += kThreads) {
    static_cast<T*>(c.k_tail)[dst + d] = k[src + d];
    static_cast<T*>(c.v_tail)[dst + d] = v[src + d];
  }
}

// Also the one place that reports an invalid length or count: it is the only kernel launched for
// every append (n = 0 launches no flush or tail blocks), so a bad sequence is never silently skipped.
__global__ void append_lengths_kernel(KiviAppendParams p) {
  const int64_t b = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (b >= p.cache.B) return;
  int64_t L, n;
  if (sequence(p, b, &L, &n)) p.lengths[b] = static_cast<int32_t>(L + n);
  else attn::report_data_error(p.error_word, kDeviceErrorLengthOutOfRange);
}

// In int64: the callers compare it with the grid limit before narrowing (a cast first would wrap).
int64_t blocks_for(int64_t n) { return (n + kThreads - 1) / kThreads; }

template <typename Fn>
Status visit(DType t, Fn&& fn) {
  switch (t) {
    case DType::f16: return fn(f16_t{});
    case DType::bf16: return fn(bf16_t{});
    default: return fn(float{});
  }
}

}  // namespace

Status kivi_quantize_cuda(const KiviQuantParams& p, cudaStream_t stream) {
  const int64_t n = p.per_channel ? p.outer * (p.T / p.G) * p.D : p.outer * p.T * (p.D / p.G);
  if (n == 0) return Status::OK();
  if (blocks_for(n) > 0x7fffffffu) return Status(Code::unsupported, "the tensor is too large");
  return visit(p.dtype, [&](auto tag) {
    using T = decltype(tag);
    const unsigned blocks = static_cast<unsigned>(blocks_for(n));
    if (p.per_channel) quantize_channel_kernel<T><<<blocks, kThreads, 0, stream>>>(p);
    else quantize_token_kernel<T><<<blocks, kThreads, 0, stream>>>(p);
    return cuda::check_launch("kv.quantize");
  });
}

Status kivi_dequantize_cuda(const KiviDequantParams& p, cudaStream_t stream) {
  const int64_t n = p.outer * p.T * p.D;
  if (n == 0) return Status::OK();
  if (blocks_for(n) > 0x7fffffffu) return Status(Code::unsupported, "the tensor is too large");
  return visit(p.dtype, [&](auto tag) {
    dequantize_kernel<decltype(tag)><<<static_cast<unsigned>(blocks_for(n)), kThreads, 0, stream>>>(p);
    return cuda::check_launch("kv.dequantize");
  });
}

Status kivi_append_cuda(const KiviAppendParams& p, cudaStream_t stream) {
  const KiviCache& c = p.cache;
  if (c.B == 0) return Status::OK();
  if (c.B > 65535 || c.Hk > 65535 || p.n > 0x7fffffff) return Status(Code::unsupported, "kv.append: the batch, heads or tokens are too many for one launch");
  // At most (G - 1 + n) / G pages complete per sequence (the tail holds at most R + G - 1 tokens).
  const int64_t flushes = (c.G - 1 + p.n) / c.G;
  return visit(c.dtype, [&](auto tag) {
    using T = decltype(tag);
    if (flushes > 0) {
      append_flush_kernel<T><<<dim3(static_cast<unsigned>(flushes), static_cast<unsigned>(c.Hk), static_cast<unsigned>(c.B)), kThreads, 0,
                               stream>>>(p);
      SPARQ_RETURN_IF_ERROR(cuda::check_launch("kv.append (flush)"));
    }
    const int64_t tail_blocks = p.n < c.R + c.G - 1 ? p.n : c.R + c.G - 1;
    if (tail_blocks > 0) {
      append_tail_kernel<T><<<dim3(static_cast<unsigned>(tail_blocks), static_cast<unsigned>(c.Hk), static_cast<unsigned>(c.B)), kThreads,
                              0, stream>>>(p);
      SPARQ_RETURN_IF_ERROR(cuda::check_launch("kv.append (tail)"));
    }
    append_lengths_kernel<<<static_cast<unsigned>(blocks_for(c.B)), kThreads, 0, stream>>>(p);
    return cuda::check_launch("kv.append (lengths)");
  });
}

}  // namespace sparq
