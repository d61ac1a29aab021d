// Device helpers shared by the dense-attention kernels (sdpa, decode, merge, rope): element
// conversion, key-visibility ranges, online-softmax steps, and the sm_80+ tensor-core primitives
// (cp.async, ldmatrix, mma.sync m16n8k16) as inline PTX. Host helpers (device limits, dynamic
// shared memory opt-in) are defined in attention_cuda.cu.
#pragma once
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <type_traits>

#include "../core/convert.h"
#include "../core/device_errors.h"
#include "../core/status.h"

namespace sparq {
namespace attn {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// ---------------------------------------------------------------- host side

struct DeviceLimits {
  int index = 0;
  int sms = 0;         // multiprocessors
  int major = 0;       // compute capability
  int smem_optin = 0;  // largest dynamic shared memory a block may opt into (bytes)
};
// Limits of the current device (cached per device after the first query).
Status current_device_limits(DeviceLimits* out);

// Allows `kernel` to use `bytes` of dynamic shared memory on the current device; a no-op at or
// below the 48 KB default. `done` caches the devices already set (one bit per device index).
Status allow_dynamic_smem(const void* kernel, int bytes, const DeviceLimits& dev, std::atomic<uint64_t>* done);

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// ---------------------------------------------------------------- device side: data

// Widening is exact. float16 uses the hardware conversion, which gives the same value as
// core/half.h's f16_to_f32 for every input but NaN payloads (a NaN stays a NaN), at a fraction of
// the code; bfloat16 is a shift either way.
__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(f16_t v) {
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(v.bits));
  return f;
}
__device__ __forceinline__ float to_f32(bf16_t v) { return bf16_to_f32(v.bits); }

// Rounds to nearest even with the same bits as the CPU backend (core/half.h).
template <typename T>
__device__ __forceinline__ T from_f32(float v) { return Convert<T>::from(v); }

template <typename T>
__device__ __forceinline__ uint16_t bits16_from_f32(float v) {
  if constexpr (std::is_same<T, bf16_t>::value) return f32_to_bf16(v);
  else return f32_to_f16(v);
}

// The first data error found wins; later ones leave the word alone.
__device__ __forceinline__ void report_data_error(int* word, int code) {
  if (word) atomicCAS(word, 0, code);
}

// The valid length of sequence b: lengths[b] when given, checked against [0, cap]. An invalid
// value is reported and the sequence treated as empty, so nothing is read out of bounds.
__device__ __forceinline__ int64_t checked_length(const int32_t* lengths, int64_t b, int64_t cap, int* error_word) {
  if (!lengths) return cap;
  int64_t len = lengths[b];
  if (len < 0 || len > cap) {
    report_data_error(error_word, kDeviceErrorLengthOutOfRange);
    return 0;
  }
  return len;
}

// ---------------------------------------------------------------- device side: masking

// Keys visible to one query row: [lo, hi], empty when hi < lo (attention.h's masking rule).
struct KeyRange {
  int lo, hi;
};

// Query index i (of Tq) of a sequence with L valid keys sits at position p = L - Tq + i. Both
// bounds are nondecreasing in i, which is what lets a tile of rows use the ranges of its first
// and last query index (see sdpa_kernels.cuh).
__device__ __forceinline__ KeyRange visible_keys(int64_t i, int64_t L, int64_t Tq, bool causal, int64_t window_left,
                                                 int64_t window_right) {
  const int64_t p = L - Tq + i;
  int64_t lo = 0, hi = L - 1;
  if (causal && p < hi) hi = p;
  if (window_left >= 0 && p - window_left > lo) lo = p - window_left;
  if (window_right >= 0 && p + window_right < hi) hi = p + window_right;
  if (lo > L) lo = L;    // keeps both bounds in int range (L <= Tk < 2^31)
  if (hi < -1) hi = -1;
  return {static_cast<int>(lo), static_cast<int>(hi)};
}

// ---------------------------------------------------------------- device side: softmax

constexpr float kNegInf = -__builtin_huge_valf();

// Scores are kept in log2 units (scale * log2(e) folded in), so exp2 is the exponential.
// A running maximum of -inf (nothing seen yet) is replaced by 0 when used as the offset, so an
// all-masked row gives exp2(-inf) = 0 everywhere instead of exp2(-inf - -inf) = NaN.
__device__ __forceinline__ float softmax_offset(float m) { return m == kNegInf ? 0.0f : m; }

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
// Over the four lanes of an mma quad (the lanes that share a fragment row).
__device__ __forceinline__ float quad_max(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}
__device__ __forceinline__ float quad_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

// ---------------------------------------------------------------- device side: sm_80+ primitives
// Only called from code compiled for __CUDA_ARCH__ >= 800 (the launchers pick those kernels only
// on such devices); elsewhere the bodies are empty so that sm_75 still compiles.

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16 bytes global -> shared, asynchronously; src_bytes = 0 writes zeros and reads nothing.
__device__ __forceinline__ void cp_async16(void* dst, const void* src, int src_bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(src_bytes));
#endif
}
__device__ __forceinline__ void cp_async_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void cp_async_wait_all() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_all;\n" ::: "memory");
#endif
}

// Four 8x8 b16 matrices; lane l gives the row address of matrix l / 8.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* row) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(row)));
#endif
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* row) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(row)));
#endif
}

// c += a * b for one m16n8k16 tile, f32 accumulators. Fragment layouts (g = lane / 4, t = lane % 4):
//   a[0] = A[g][2t..2t+1], a[1] = A[g+8][2t..], a[2] = A[g][2t+8..], a[3] = A[g+8][2t+8..]
//   b0 = B[2t..2t+1][g],   b1 = B[2t+8..2t+9][g]          (low half = lower k)
//   c[0..1] = C[g][2t..2t+1], c[2..3] = C[g+8][2t..2t+1]
template <typename T>
__device__ __forceinline__ void mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  if constexpr (std::is_same<T, bf16_t>::value) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
#endif
}

// Two floats -> one register of two 16-bit values (lo in the low half), round to nearest even.
template <typename T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  uint32_t r = 0;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  if constexpr (std::is_same<T, bf16_t>::value) asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
  else asm("cvt.rn.f16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
#endif
  return r;
}

}  // namespace attn
}  // namespace sparq
