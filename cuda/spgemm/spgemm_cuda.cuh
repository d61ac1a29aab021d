// Device-side pieces shared by the CUDA SpGEMM kernels: a CSR accessor that never reads out of
// bounds (malformed input is reported by the validation kernel, and the other kernels must stay
// memory-safe meanwhile), the shared-memory hash insert, and bins.
#pragma once
#include <cuda_runtime.h>

#include <climits>
#include <cstdint>

#include "../core/device_errors.h"
#include "spgemm.h"

namespace sparq {
namespace spg {

constexpr int kHashScale = 107;  // h = col * 107 mod size, linear probing (nsparse / OpSparse)

struct DevCsr {
  int64_t rows, cols, stored;
  const void* indptr;
  bool i64;
  const int32_t* idx;
  const void* val;

  __device__ __forceinline__ int64_t raw_ptr(int64_t i) const {
    return i64 ? static_cast<const int64_t*>(indptr)[i] : static_cast<const int32_t*>(indptr)[i];
  }
  // Entries [lo, hi) of row i, clamped into [0, stored] so a bad indptr cannot send reads astray.
  __device__ __forceinline__ void range(int64_t i, int64_t* lo, int64_t* hi) const {
    int64_t a = raw_ptr(i), b = raw_ptr(i + 1);
    a = a < 0 ? 0 : (a > stored ? stored : a);
    b = b < a ? a : (b > stored ? stored : b);
    *lo = a;
    *hi = b;
  }
};

inline DevCsr dev_csr(const CsrRef& m) {
  return DevCsr{m.rows, m.cols, m.stored, m.indptr, m.indptr64, m.indices, m.values};
}

__device__ __forceinline__ void report(int* word, int code) {
  if (word) atomicCAS(word, 0, code);
}

// Slot of `col` in a shared table of `mask + 1` keys (-1 = empty), inserting it if absent.
// `fresh` is set when this call inserted it. Returns -1 only if the table is full (never, when
// sized from the symbolic counts; the probe bound keeps a miscount from looping forever).
__device__ __forceinline__ int hash_slot(int* keys, int mask, int col, bool* fresh) {
  int h = static_cast<int>((static_cast<unsigned>(col) * static_cast<unsigned>(kHashScale)) & static_cast<unsigned>(mask));
  for (int probe = 0; probe <= mask; ++probe) {
    int k = keys[h];
    if (k == col) { *fresh = false; return h; }
    if (k == -1) {
      int old = atomicCAS(&keys[h], -1, col);
      if (old == -1) { *fresh = true; return h; }
      if (old == col) { *fresh = false; return h; }
    }
    h = (h + 1) & mask;
  }
  *fresh = false;
  return -1;
}

// Bins of rows, by the size of the hash table a row needs (symbolic: min(products, cols);
// numeric: nnz of the row of C). kBinCopy: rows of A with one entry (C's row is a scaled row of B).
enum Bin : int { kBinWarp = 0, kBin512, kBin2048, kBin4096, kBinGlobal, kBinCopy, kNumBins };
constexpr int64_t kWarpMax = 32, kMax512 = 256, kMax2048 = 1024, kMax4096 = 2048;

__device__ __forceinline__ int bin_of(int64_t need) {
  return need <= kWarpMax ? kBinWarp : need <= kMax512 ? kBin512 : need <= kMax2048 ? kBin2048
                                                                 : need <= kMax4096 ? kBin4096 : kBinGlobal;
}

__device__ __forceinline__ double atomic_add(double* p, double v) { return atomicAdd(p, v); }
__device__ __forceinline__ float atomic_add(float* p, float v) { return atomicAdd(p, v); }

}  // namespace spg
}  // namespace sparq
