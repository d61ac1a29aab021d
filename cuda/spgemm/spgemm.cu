// CUDA SpGEMM (spgemm.h). Rows are binned by the hash table they need (symbolic: min(products,
// cols); numeric: the row's nnz), each bin runs its kernel over the bin's row list:
//   warp per row, 64-slot shared table (<= 32 entries);
//   block per row, 512 / 2048 / 4096-slot shared tables (<= 256 / 1024 / 2048 entries);
//   block per row over a dense row in global memory (more): the long-row fallback;
//   rows of A with one entry: a scaled copy of one row of B (no table).
// Insertion is atomicCAS on the key, accumulation atomicAdd on the value (SMASH / nsparse /
// OpSparse). `deterministic` accumulates each row in input order instead (one A entry at a time,
// a barrier between them: within one row of B the columns are distinct, so no two threads add to
// the same slot at once) and always sorts, since slot positions depend on insertion races.
// Bin lists live on the device; kernels read their counts there, so nothing waits for the host.
#include <cub/block/block_scan.cuh>
#include <cub/device/device_scan.cuh>

#include <algorithm>
#include <string>
#include <type_traits>
#include <vector>

#include "../core/dispatch.h"
#include "spgemm_cuda.cuh"

namespace sparq {
namespace {

using spg::DevCsr;

constexpr int kWarpsPerBlock = 8;        // warp-per-row kernels: 256 threads, 8 rows at a time
// Grid-stride loops over a bin list count in int64: a list holds up to 2^31 - 1 rows, and an int
// t + gridDim.x past INT_MAX would overflow (undefined) instead of ending the loop.
constexpr int kGlobalThreads = 512;
constexpr size_t kGlobalScratchCap = size_t{512} << 20;  // dense rows of the fallback, all blocks

__device__ __forceinline__ int warp_sum(int v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// ---- validation: one warp per row ----
__global__ void validate_kernel(DevCsr m, int* word) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x >> 5);
  if (blockIdx.x == 0 && threadIdx.x == 0 && m.rows == 0 && (m.raw_ptr(0) != 0 || m.stored != 0))
    spg::report(word, kDeviceErrorMalformedCsr);
  for (int64_t r = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5; r < m.rows; r += warps) {
    const int64_t a = m.raw_ptr(r), b = m.raw_ptr(r + 1);
    bool bad = (r == 0 && a != 0) || b < a || (r == m.rows - 1 && b != m.stored);
    int64_t lo, hi;
    m.range(r, &lo, &hi);
    for (int64_t e = lo + lane; e < hi && !bad; e += 32) {
      const int32_t c = m.idx[e];
      bad = c < 0 || c >= m.cols || (e > lo && c <= m.idx[e - 1]);
    }
    if (__any_sync(0xffffffffu, bad) && lane == 0) spg::report(word, kDeviceErrorMalformedCsr);
  }
}

// ---- analysis: bins (and, in the symbolic phase, the counts of trivial rows) ----
// symbolic: rowptr[i + 1] = nnz for empty and one-entry rows, other rows go to their bin.
// numeric: every row with entries goes to a bin (kBinCopy for one-entry rows of A).
// numeric: rowptr comes from the caller, so a row whose range leaves [0, nnz_c] or cannot hold its
// entries (none though it has products, more than its products or B's columns) is reported here and
// never binned; the kernels then check the exact count (one compare per row).
__global__ void analyze_kernel(DevCsr A, DevCsr B, int64_t* rowptr, bool symbolic, int64_t nnz_c, int* counts, int32_t* lists,
                               int* word) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (symbolic && i == 0) rowptr[0] = 0;
  if (i >= A.rows) return;
  int64_t lo, hi;
  A.range(i, &lo, &hi);
  int64_t products = 0;
  for (int64_t e = lo; e < hi; ++e) {
    const int32_t k = A.idx[e];
    if (k < 0 || k >= B.rows) continue;
    int64_t blo, bhi;
    B.range(k, &blo, &bhi);
    products += bhi - blo;
  }
  int bin;
  if (symbolic) {
    if (products == 0 || hi - lo == 1) {
      rowptr[i + 1] = products;
      return;
    }
    bin = spg::bin_of(products < B.cols ? products : B.cols);
  } else {
    const int64_t o = rowptr[i], end = rowptr[i + 1], nnz = end - o;
    const bool bad = o < 0 || end < o || end > nnz_c || (i == 0 && o != 0) || (i == A.rows - 1 && end != nnz_c) ||
                     (nnz == 0) != (products == 0) || nnz > products || nnz > B.cols || (hi - lo == 1 && nnz != products);
    if (bad) spg::report(word, kDeviceErrorBadRowPointers);
    if (bad || nnz == 0) return;
    bin = hi - lo == 1 ? spg::kBinCopy : spg::bin_of(nnz);
  }
  const int pos = atomicAdd(&counts[bin], 1);
  lists[bin * A.rows + pos] = static_cast<int32_t>(i);
}

// Calls f(a_entry, col, b_entry) for every valid product of row `row`, spread over the warps of
// the group (warp w takes entries w, w + nwarps, ...; its lanes take the B row).
template <typename F>
__device__ __forceinline__ void for_products(const DevCsr& A, const DevCsr& B, int64_t row, int warp, int nwarps, int lane, F f) {
  int64_t lo, hi;
  A.range(row, &lo, &hi);
  for (int64_t e = lo + warp; e < hi; e += nwarps) {
    const int32_t k = A.idx[e];
    if (k < 0 || k >= B.rows) continue;
    int64_t blo, bhi;
    B.range(k, &blo, &bhi);
    for (int64_t f2 = blo + lane; f2 < bhi; f2 += 32) {
      const int32_t c = B.idx[f2];
      if (c >= 0 && c < B.cols) f(e, c, f2);
    }
  }
}

// ---- symbolic ----
__global__ void __launch_bounds__(256) sym_warp_kernel(DevCsr A, DevCsr B, int64_t* rowptr, const int* count, const int32_t* list) {
  __shared__ int keys[kWarpsPerBlock][64];
  const int w = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int n = *count;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + w; t < n; t += static_cast<int64_t>(gridDim.x) * kWarpsPerBlock) {
    const int32_t row = list[t];
    keys[w][lane] = -1;
    keys[w][lane + 32] = -1;
    __syncwarp();
    int local = 0;
    int64_t lo, hi;
    A.range(row, &lo, &hi);
    for (int64_t e = lo + lane; e < hi; e += 32) {  // lane per A entry: B rows here are short
      const int32_t k = A.idx[e];
      if (k < 0 || k >= B.rows) continue;
      int64_t blo, bhi;
      B.range(k, &blo, &bhi);
      for (int64_t f = blo; f < bhi; ++f) {
        const int32_t c = B.idx[f];
        if (c < 0 || c >= B.cols) continue;
        bool fresh;
        spg::hash_slot(keys[w], 63, c, &fresh);
        local += fresh;
      }
    }
    local = warp_sum(local);
    if (lane == 0) rowptr[row + 1] = local;
    __syncwarp();
  }
}

template <int TABLE, int THREADS>
__global__ void __launch_bounds__(THREADS) sym_block_kernel(DevCsr A, DevCsr B, int64_t* rowptr, const int* count, const int32_t* list) {
  __shared__ int keys[TABLE];
  __shared__ int total;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int n = *count;
  for (int64_t t = blockIdx.x; t < n; t += gridDim.x) {
    const int32_t row = list[t];
    for (int s = threadIdx.x; s < TABLE; s += THREADS) keys[s] = -1;
    if (threadIdx.x == 0) total = 0;
    __syncthreads();
    int local = 0;
    for_products(A, B, row, warp, THREADS / 32, lane, [&](int64_t, int32_t c, int64_t) {
      bool fresh;
      spg::hash_slot(keys, TABLE - 1, c, &fresh);
      local += fresh;
    });
    local = warp_sum(local);
    if (lane == 0) atomicAdd(&total, local);
    __syncthreads();
    if (threadIdx.x == 0) rowptr[row + 1] = total;
    __syncthreads();
  }
}

// Long rows: a dense row of marks per block in global memory. A mark holds the row that set it,
// so nothing is cleared between rows (each row is handled by one block).
__global__ void __launch_bounds__(kGlobalThreads) sym_global_kernel(DevCsr A, DevCsr B, int64_t* rowptr, const int* count,
                                                                   const int32_t* list, int* marks) {
  __shared__ int total;
  int* mark = marks + static_cast<int64_t>(blockIdx.x) * B.cols;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int n = *count;
  for (int64_t t = blockIdx.x; t < n; t += gridDim.x) {
    const int32_t row = list[t];
    if (threadIdx.x == 0) total = 0;
    __syncthreads();
    int local = 0;
    for_products(A, B, row, warp, kGlobalThreads / 32, lane, [&](int64_t, int32_t c, int64_t) {
      local += atomicExch(&mark[c], row) != row;
    });
    local = warp_sum(local);
    if (lane == 0) atomicAdd(&total, local);
    __syncthreads();
    if (threadIdx.x == 0) rowptr[row + 1] = total;
  }
}

// ---- numeric ----
template <typename T>
__global__ void __launch_bounds__(256) num_copy_kernel(DevCsr A, DevCsr B, const int64_t* rowptr, int32_t* oc, T* ov,
                                                       const int* count, const int32_t* list) {
  const int w = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int n = *count;
  const T* av = static_cast<const T*>(A.val);
  const T* bv = static_cast<const T*>(B.val);
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + w; t < n; t += static_cast<int64_t>(gridDim.x) * kWarpsPerBlock) {
    const int32_t row = list[t];
    int64_t lo, hi;
    A.range(row, &lo, &hi);
    const int32_t k = A.idx[lo];
    if (k < 0 || k >= B.rows) continue;
    int64_t blo, bhi;
    B.range(k, &blo, &bhi);
    const int64_t o = rowptr[row], cap = rowptr[row + 1] - o;
    const T x = av[lo];
    for (int64_t j = lane; j < bhi - blo && j < cap; j += 32) {
      oc[o + j] = B.idx[blo + j];
      ov[o + j] = x * bv[blo + j];
    }
  }
}

template <typename T>
__global__ void __launch_bounds__(256) num_warp_kernel(DevCsr A, DevCsr B, const int64_t* rowptr, int32_t* oc, T* ov,
                                                       const int* count, const int32_t* list, bool deterministic, int* word) {
  __shared__ int keys[kWarpsPerBlock][64];
  __shared__ T vals[kWarpsPerBlock][64];
  const int w = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int n = *count;
  const T* av = static_cast<const T*>(A.val);
  const T* bv = static_cast<const T*>(B.val);
  int* K = keys[w];
  T* V = vals[w];
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + w; t < n; t += static_cast<int64_t>(gridDim.x) * kWarpsPerBlock) {
    const int32_t row = list[t];
    K[lane] = K[lane + 32] = -1;
    V[lane] = V[lane + 32] = T(0);
    __syncwarp();
    int64_t lo, hi;
    A.range(row, &lo, &hi);
    bool lost = false;  // a column the table could not hold: the row has more entries than its rowptr says
    if (!deterministic) {
      for (int64_t e = lo + lane; e < hi; e += 32) {
        const int32_t k = A.idx[e];
        if (k < 0 || k >= B.rows) continue;
        int64_t blo, bhi;
        B.range(k, &blo, &bhi);
        for (int64_t f = blo; f < bhi; ++f) {
          const int32_t c = B.idx[f];
          if (c < 0 || c >= B.cols) continue;
          bool fresh;
          const int s = spg::hash_slot(K, 63, c, &fresh);
          if (s >= 0) spg::atomic_add(&V[s], av[e] * bv[f]);
          lost |= s < 0;
        }
      }
    } else {
      for (int64_t e = lo; e < hi; ++e) {  // input order; the lanes split one row of B
        const int32_t k = A.idx[e];
        if (k >= 0 && k < B.rows) {
          int64_t blo, bhi;
          B.range(k, &blo, &bhi);
          for (int64_t f = blo + lane; f < bhi; f += 32) {
            const int32_t c = B.idx[f];
            if (c < 0 || c >= B.cols) continue;
            bool fresh;
            const int s = spg::hash_slot(K, 63, c, &fresh);
            if (s >= 0) V[s] += av[e] * bv[f];
            lost |= s < 0;
          }
        }
        __syncwarp();
      }
    }
    __syncwarp();
    // Compact the two slots of each lane, then each entry's rank among the keys is its place.
    const int k0 = K[lane], k1 = K[lane + 32];
    const T v0 = V[lane], v1 = V[lane + 32];
    const unsigned b0 = __ballot_sync(0xffffffffu, k0 >= 0), b1 = __ballot_sync(0xffffffffu, k1 >= 0);
    const unsigned below = (1u << lane) - 1;
    const int n0 = __popc(b0), m = n0 + __popc(b1);
    __syncwarp();
    if (k0 >= 0) { K[__popc(b0 & below)] = k0; V[__popc(b0 & below)] = v0; }
    if (k1 >= 0) { K[n0 + __popc(b1 & below)] = k1; V[n0 + __popc(b1 & below)] = v1; }
    __syncwarp();
    const int64_t o = rowptr[row], cap = rowptr[row + 1] - o;
    const bool fits = !__any_sync(0xffffffffu, lost) && m == cap;
    if (!fits && lane == 0) spg::report(word, kDeviceErrorBadRowPointers);
    for (int j = lane; j < (fits ? m : 0); j += 32) {
      const int key = K[j];
      int rank = 0;
      for (int q = 0; q < m; ++q) rank += K[q] < key;
      oc[o + rank] = key;
      ov[o + rank] = V[j];
    }
    __syncwarp();
  }
}

// Sorts keys[0, P) (P a power of two) with their values, ascending: a bitonic network in shared memory.
template <typename T, int THREADS>
__device__ void bitonic_sort(int* keys, T* vals, int P) {
  for (int size = 2; size <= P; size <<= 1) {
    for (int stride = size >> 1; stride > 0; stride >>= 1) {
      for (int i = threadIdx.x; i < P / 2; i += THREADS) {
        const int lo = 2 * stride * (i / stride) + (i % stride), hi = lo + stride;
        const bool up = (lo & size) == 0;
        if ((keys[lo] > keys[hi]) == up) {
          const int tk = keys[lo]; keys[lo] = keys[hi]; keys[hi] = tk;
          const T tv = vals[lo]; vals[lo] = vals[hi]; vals[hi] = tv;
        }
      }
      __syncthreads();
    }
  }
}

template <typename T, int TABLE, int THREADS>
__global__ void __launch_bounds__(THREADS) num_block_kernel(DevCsr A, DevCsr B, const int64_t* rowptr, int32_t* oc, T* ov,
                                                            const int* count, const int32_t* list, bool deterministic, bool sort,
                                                            int* word) {
  extern __shared__ __align__(16) unsigned char smem[];
  int* keys = reinterpret_cast<int*>(smem);
  T* vals = reinterpret_cast<T*>(smem + TABLE * sizeof(int));
  __shared__ int total, lost;  // lost: a column the table could not hold (rowptr understates the row)
  constexpr int SLOTS = TABLE / THREADS;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int n = *count;
  const T* av = static_cast<const T*>(A.val);
  const T* bv = static_cast<const T*>(B.val);
  for (int64_t t = blockIdx.x; t < n; t += gridDim.x) {
    const int32_t row = list[t];
    for (int s = threadIdx.x; s < TABLE; s += THREADS) {
      keys[s] = -1;
      vals[s] = T(0);
    }
    if (threadIdx.x == 0) total = lost = 0;
    __syncthreads();
    if (!deterministic) {
      for_products(A, B, row, warp, THREADS / 32, lane, [&](int64_t e, int32_t c, int64_t f) {
        bool fresh;
        const int s = spg::hash_slot(keys, TABLE - 1, c, &fresh);
        if (s >= 0) spg::atomic_add(&vals[s], av[e] * bv[f]);
        else lost = 1;
      });
    } else {
      int64_t lo, hi;
      A.range(row, &lo, &hi);
      for (int64_t e = lo; e < hi; ++e) {
        const int32_t k = A.idx[e];
        if (k >= 0 && k < B.rows) {
          int64_t blo, bhi;
          B.range(k, &blo, &bhi);
          for (int64_t f = blo + threadIdx.x; f < bhi; f += THREADS) {
            const int32_t c = B.idx[f];
            if (c < 0 || c >= B.cols) continue;
            bool fresh;
            const int s = spg::hash_slot(keys, TABLE - 1, c, &fresh);
            if (s >= 0) vals[s] += av[e] * bv[f];
            else lost = 1;
          }
        }
        __syncthreads();
      }
    }
    __syncthreads();
    // Compact the occupied slots to the front, then sort them.
    int rk[SLOTS];
    T rv[SLOTS];
#pragma unroll
    for (int j = 0; j < SLOTS; ++j) {
      rk[j] = keys[threadIdx.x + j * THREADS];
      rv[j] = vals[threadIdx.x + j * THREADS];
    }
    __syncthreads();
#pragma unroll
    for (int j = 0; j < SLOTS; ++j) {
      if (rk[j] >= 0) {
        const int pos = atomicAdd(&total, 1);
        keys[pos] = rk[j];
        vals[pos] = rv[j];
      }
    }
    __syncthreads();
    const int m = total;
    const int64_t o = rowptr[row], cap = rowptr[row + 1] - o;
    if (lost || m != cap) {  // uniform over the block: skip the row, write nothing
      if (threadIdx.x == 0) spg::report(word, kDeviceErrorBadRowPointers);
      __syncthreads();  // everyone has read total and lost before the next row resets them
      continue;
    }
    if (sort || deterministic) {
      int P = 1;
      while (P < m) P <<= 1;
      for (int s = m + threadIdx.x; s < P; s += THREADS) keys[s] = INT_MAX;
      __syncthreads();
      bitonic_sort<T, THREADS>(keys, vals, P);
    }
    for (int s = threadIdx.x; s < m; s += THREADS) {
      oc[o + s] = keys[s];
      ov[o + s] = vals[s];
    }
    __syncthreads();
  }
}

// Long rows: a dense row (marks + values) per block in global memory; values are kept at zero
// between rows, and the compaction walks the columns in order, so output is sorted for free.
// Min. 1 block per SM: without it ptxas for sm_90 held this kernel to 32 registers and spilled; it
// runs at most 2 blocks per SM (global_blocks), which 46 registers x 512 threads still allow.
template <typename T>
__global__ void __launch_bounds__(kGlobalThreads, 1) num_global_kernel(DevCsr A, DevCsr B, const int64_t* rowptr, int32_t* oc, T* ov,
                                                                    const int* count, const int32_t* list, int* marks, T* dense,
                                                                    bool deterministic, int* word) {
  using Scan = cub::BlockScan<int, kGlobalThreads>;
  __shared__ typename Scan::TempStorage scan;
  int* mark = marks + static_cast<int64_t>(blockIdx.x) * B.cols;
  T* acc = dense + static_cast<int64_t>(blockIdx.x) * B.cols;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int n = *count;
  const T* av = static_cast<const T*>(A.val);
  const T* bv = static_cast<const T*>(B.val);
  for (int64_t t = blockIdx.x; t < n; t += gridDim.x) {
    const int32_t row = list[t];
    if (!deterministic) {
      for_products(A, B, row, warp, kGlobalThreads / 32, lane, [&](int64_t e, int32_t c, int64_t f) {
        mark[c] = row;
        spg::atomic_add(&acc[c], av[e] * bv[f]);
      });
    } else {
      int64_t lo, hi;
      A.range(row, &lo, &hi);
      for (int64_t e = lo; e < hi; ++e) {
        const int32_t k = A.idx[e];
        if (k >= 0 && k < B.rows) {
          int64_t blo, bhi;
          B.range(k, &blo, &bhi);
          for (int64_t f = blo + threadIdx.x; f < bhi; f += kGlobalThreads) {
            const int32_t c = B.idx[f];
            if (c < 0 || c >= B.cols) continue;
            mark[c] = row;
            acc[c] += av[e] * bv[f];
          }
        }
        __syncthreads();
      }
    }
    __syncthreads();
    const int64_t o = rowptr[row], cap = rowptr[row + 1] - o;
    int64_t base = 0;
    for (int64_t c0 = 0; c0 < B.cols; c0 += kGlobalThreads) {
      const int64_t c = c0 + threadIdx.x;
      const int flag = c < B.cols && mark[c] == row;
      int pos, sum;
      Scan(scan).ExclusiveSum(flag, pos, sum);
      if (flag) {
        if (base + pos < cap) {
          oc[o + base + pos] = static_cast<int32_t>(c);
          ov[o + base + pos] = acc[c];
        }
        acc[c] = T(0);
      }
      base += sum;
      __syncthreads();  // the scan storage is reused
    }
    // The dense row has no capacity limit, so its count is only known at the end: writes above stay
    // inside the row's range [o, o + cap), and a count that differs fails the call.
    if (base != cap && threadIdx.x == 0) spg::report(word, kDeviceErrorBadRowPointers);
  }
}

// ---- host side ----
struct Scratch {
  int device;
  std::vector<void*> held;
  ~Scratch() {
    for (void* p : held) cuda::free(device, p);
  }
  template <typename P>
  Status get(size_t bytes, P** out) {
    void* p = nullptr;
    SPARQ_RETURN_IF_ERROR(cuda::alloc(device, std::max<size_t>(bytes, 16), &p));
    held.push_back(p);
    *out = static_cast<P*>(p);
    return Status::OK();
  }
};

unsigned grid_for(int64_t items, int64_t per_block, int64_t cap) {
  const int64_t g = (items + per_block - 1) / per_block;
  return static_cast<unsigned>(std::max<int64_t>(1, std::min(g, cap)));
}

// Bin lists: counts[kNumBins] then kNumBins lists of M rows, in one allocation with `extra` bytes
// after them (the symbolic scan's temporary storage) at *extra_out.
Status bin_rows(const SpgemmParams& p, bool symbolic, Scratch& s, cudaStream_t stream, int** counts, int32_t** lists,
                size_t extra = 0, void** extra_out = nullptr) {
  const int64_t M = p.a.rows;
  const size_t lists_at = 256, extra_at = (lists_at + sizeof(int32_t) * spg::kNumBins * static_cast<size_t>(M) + 255) / 256 * 256;
  char* base;
  SPARQ_RETURN_IF_ERROR(s.get(extra_at + extra, &base));
  *counts = reinterpret_cast<int*>(base);
  *lists = reinterpret_cast<int32_t*>(base + lists_at);
  if (extra_out) *extra_out = base + extra_at;
  cudaMemsetAsync(*counts, 0, sizeof(int) * spg::kNumBins, stream);
  analyze_kernel<<<grid_for(M, 256, INT32_MAX), 256, 0, stream>>>(spg::dev_csr(p.a), spg::dev_csr(p.b), p.rowptr_c, symbolic,
                                                                  p.nnz_c, *counts, *lists, p.error_word);
  return Status::OK();
}

// Blocks for the long-row fallback: at most two per SM and kGlobalScratchCap bytes of dense rows.
int global_blocks(const SpgemmParams& p, size_t bytes_per_col) {
  const size_t row_bytes = std::max<size_t>(1, static_cast<size_t>(p.b.cols) * bytes_per_col);
  return static_cast<int>(std::max<size_t>(1, std::min<size_t>(2 * p.sm_count, kGlobalScratchCap / row_bytes)));
}

// Opts a kernel in to `bytes` of dynamic shared memory (static + dynamic above 48 KB needs it).
template <typename K>
Status allow_smem(K kernel, size_t bytes) {
  if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)) != cudaSuccess) {
    cudaGetLastError();
    return Status(Code::cuda, "spgemm: the device cannot give " + std::to_string(bytes) + " bytes of shared memory to a block");
  }
  return Status::OK();
}

template <typename T>
Status numeric_typed(const SpgemmParams& p, Scratch& s, cudaStream_t stream, const int* counts, const int32_t* lists) {
  const int64_t M = p.a.rows;
  const DevCsr A = spg::dev_csr(p.a), B = spg::dev_csr(p.b);
  T* ov = static_cast<T*>(p.values_c);
  const int64_t warp_cap = int64_t{32} * p.sm_count, block_cap = int64_t{8} * p.sm_count;
  const bool det = p.deterministic;
  auto list = [&](int bin) { return lists + static_cast<int64_t>(bin) * M; };
  // Before the launches below: a failed opt-in clears the error state, which would hide their errors.
  const size_t slot = sizeof(int) + sizeof(T);
  SPARQ_RETURN_IF_ERROR(allow_smem(num_block_kernel<T, 4096, 512>, 4096 * slot));
  num_copy_kernel<T><<<grid_for(M, kWarpsPerBlock, warp_cap), 256, 0, stream>>>(A, B, p.rowptr_c, p.indices_c, ov,
                                                                                 counts + spg::kBinCopy, list(spg::kBinCopy));
  num_warp_kernel<T><<<grid_for(M, kWarpsPerBlock, warp_cap), 256, 0, stream>>>(A, B, p.rowptr_c, p.indices_c, ov,
                                                                                 counts + spg::kBinWarp, list(spg::kBinWarp), det, p.error_word);
  num_block_kernel<T, 512, 128><<<grid_for(M, 1, block_cap), 128, 512 * slot, stream>>>(
      A, B, p.rowptr_c, p.indices_c, ov, counts + spg::kBin512, list(spg::kBin512), det, p.sort_columns, p.error_word);
  num_block_kernel<T, 2048, 256><<<grid_for(M, 1, block_cap), 256, 2048 * slot, stream>>>(
      A, B, p.rowptr_c, p.indices_c, ov, counts + spg::kBin2048, list(spg::kBin2048), det, p.sort_columns, p.error_word);
  num_block_kernel<T, 4096, 512><<<grid_for(M, 1, block_cap), 512, 4096 * slot, stream>>>(
      A, B, p.rowptr_c, p.indices_c, ov, counts + spg::kBin4096, list(spg::kBin4096), det, p.sort_columns, p.error_word);
  if (p.b.cols > spg::kMax4096) {  // only then can a row of C outgrow the shared tables
    const int G = global_blocks(p, sizeof(int) + sizeof(T));
    int* marks;
    T* dense;
    SPARQ_RETURN_IF_ERROR(s.get(sizeof(int) * static_cast<size_t>(G) * p.b.cols, &marks));
    SPARQ_RETURN_IF_ERROR(s.get(sizeof(T) * static_cast<size_t>(G) * p.b.cols, &dense));
    cudaMemsetAsync(marks, 0xff, sizeof(int) * static_cast<size_t>(G) * p.b.cols, stream);
    cudaMemsetAsync(dense, 0, sizeof(T) * static_cast<size_t>(G) * p.b.cols, stream);
    num_global_kernel<T><<<G, kGlobalThreads, 0, stream>>>(A, B, p.rowptr_c, p.indices_c, ov, counts + spg::kBinGlobal,
                                                           list(spg::kBinGlobal), marks, dense, det, p.error_word);
  }
  return cuda::check_launch("sparse.matmul (numeric)");
}

}  // namespace

Status csr_validate_cuda(const CsrRef& m, int* error_word, cudaStream_t stream) {
  const int64_t warps = std::max<int64_t>(m.rows, 1);
  validate_kernel<<<grid_for(warps, 8, 65535), 256, 0, stream>>>(spg::dev_csr(m), error_word);
  return cuda::check_launch("sparse: CSR validation");
}

Status spgemm_symbolic_cuda(const SpgemmParams& p, cudaStream_t stream) {
  // Operands that an earlier product validated are not checked again (A·A: checked once).
  if (!p.a_valid) SPARQ_RETURN_IF_ERROR(csr_validate_cuda(p.a, p.error_word, stream));
  const bool b_is_a = p.b.indptr == p.a.indptr && p.b.indptr64 == p.a.indptr64 && p.b.indices == p.a.indices &&
                      p.b.rows == p.a.rows && p.b.cols == p.a.cols && p.b.stored == p.a.stored;
  if (!p.b_valid && !b_is_a) SPARQ_RETURN_IF_ERROR(csr_validate_cuda(p.b, p.error_word, stream));
  const int64_t M = p.a.rows;
  if (M == 0) {
    cudaMemsetAsync(p.rowptr_c, 0, sizeof(int64_t), stream);
    return cuda::check_launch("sparse.matmul (symbolic)");
  }
  // rowptr[1..M] get the row counts, then an inclusive scan turns them into row pointers; the
  // analysis writes rowptr[0] = 0.
  size_t temp_bytes = 0;
  cub::DeviceScan::InclusiveSum(nullptr, temp_bytes, p.rowptr_c + 1, p.rowptr_c + 1, static_cast<int>(M), stream);
  Scratch s{p.device, {}};
  int* counts;
  int32_t* lists;
  void* temp;
  SPARQ_RETURN_IF_ERROR(bin_rows(p, true, s, stream, &counts, &lists, temp_bytes, &temp));
  const DevCsr A = spg::dev_csr(p.a), B = spg::dev_csr(p.b);
  auto list = [&](int bin) { return lists + static_cast<int64_t>(bin) * M; };
  const int64_t warp_cap = int64_t{32} * p.sm_count, block_cap = int64_t{8} * p.sm_count;
  sym_warp_kernel<<<grid_for(M, kWarpsPerBlock, warp_cap), 256, 0, stream>>>(A, B, p.rowptr_c, counts + spg::kBinWarp, list(spg::kBinWarp));
  sym_block_kernel<512, 128><<<grid_for(M, 1, block_cap), 128, 0, stream>>>(A, B, p.rowptr_c, counts + spg::kBin512, list(spg::kBin512));
  sym_block_kernel<2048, 256><<<grid_for(M, 1, block_cap), 256, 0, stream>>>(A, B, p.rowptr_c, counts + spg::kBin2048, list(spg::kBin2048));
  sym_block_kernel<4096, 512><<<grid_for(M, 1, block_cap), 512, 0, stream>>>(A, B, p.rowptr_c, counts + spg::kBin4096, list(spg::kBin4096));
  if (p.b.cols > spg::kMax4096) {
    const int G = global_blocks(p, sizeof(int));
    int* marks;
    SPARQ_RETURN_IF_ERROR(s.get(sizeof(int) * static_cast<size_t>(G) * p.b.cols, &marks));
    cudaMemsetAsync(marks, 0xff, sizeof(int) * static_cast<size_t>(G) * p.b.cols, stream);
    sym_global_kernel<<<G, kGlobalThreads, 0, stream>>>(A, B, p.rowptr_c, counts + spg::kBinGlobal, list(spg::kBinGlobal), marks);
  }
  cub::DeviceScan::InclusiveSum(temp, temp_bytes, p.rowptr_c + 1, p.rowptr_c + 1, static_cast<int>(M), stream);
  return cuda::check_launch("sparse.matmul (symbolic)");
}

Status spgemm_numeric_cuda(const SpgemmParams& p, cudaStream_t stream) {
  if (p.a.rows == 0) return Status::OK();
  Scratch s{p.device, {}};
  int* counts;
  int32_t* lists;
  SPARQ_RETURN_IF_ERROR(bin_rows(p, false, s, stream, &counts, &lists));
  Status st = Status::OK();
  visit_dtype(p.dtype, [&](auto t) {
    using T = typename decltype(t)::type;
    if constexpr (std::is_same<T, float>::value || std::is_same<T, double>::value) st = numeric_typed<T>(p, s, stream, counts, lists);
    else st = Status(Code::internal, "spgemm: values must be float32 or float64");
  });
  return st;
}

}  // namespace sparq
