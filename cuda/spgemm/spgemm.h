// SpGEMM contract: C = A·B for CSR matrices (Gustavson row-wise product, accumulation per row in a
// hash table or a dense row). Three phases, the first two in one call because the output's size is
// data-dependent: symbolic (validate, products per row, row nnz -> rowptr_c, int64 [M + 1],
// exclusive prefix sum) then, once the caller knows nnz(C) = rowptr_c[M], numeric (values, columns
// sorted per row). The structural pattern is kept: an entry whose products cancel to 0 stays, and
// stored zeros in A or B take part (drop them afterwards with the zero-compaction ops).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../core/cuda_context.h"
#include "../core/dtype.h"
#include "../core/status.h"
#include "../core/thread_pool.h"

namespace sparq {

// A read-only CSR matrix: rows + 1 row pointers (int32 or int64), int32 column indices, values
// (float32 or float64, or null where only the structure is used) of length `stored`.
struct CsrRef {
  const char* name = "A";  // for messages
  int64_t rows = 0, cols = 0;
  const void* indptr = nullptr;
  bool indptr64 = false;
  const int32_t* indices = nullptr;
  const void* values = nullptr;
  int64_t stored = 0;  // length of indices / values

  int64_t ptr(int64_t i) const {
    return indptr64 ? static_cast<const int64_t*>(indptr)[i] : static_cast<const int32_t*>(indptr)[i];
  }
};

struct SpgemmParams {
  CsrRef a, b;                   // a.cols == b.rows (checked by the binding)
  DType dtype = DType::f32;      // of both value arrays and of C
  int64_t* rowptr_c = nullptr;   // [a.rows + 1]: written by symbolic, read by numeric
  int64_t nnz_c = 0;             // numeric: nnz(C) as the caller states it (rowptr_c is checked against it)
  int32_t* indices_c = nullptr;  // [nnz(C)], numeric
  void* values_c = nullptr;      // [nnz(C)], numeric
  bool sort_columns = true;
  bool deterministic = false;    // CPU: always (one thread per row, products in input order)
  bool a_valid = false, b_valid = false;  // already validated by an earlier product (skip the checks)
  int* error_word = nullptr;     // CUDA: data errors (malformed CSR)
  int device = 0;                // CUDA: device index (scratch allocations)
  int sm_count = 80;             // CUDA: grid sizing
};

// Checks that `m` is well formed: indptr[0] = 0, non-decreasing, indptr[rows] = stored; column
// indices in [0, cols) and strictly increasing within each row. The message names the first fault.
Status csr_validate_cpu(const CsrRef& m, ThreadPool& pool);
Status csr_validate_cuda(const CsrRef& m, int* error_word, cudaStream_t stream);

// CPU: with `product`, the symbolic phase also computes C (values needed) into per-chunk buffers,
// and the numeric phase only copies them to their place: one pass over the products instead of
// two, for a transient copy of C. Without it each phase does its own pass.
struct CpuProduct {
  struct Chunk {
    int32_t* cols = nullptr;  // its rows' columns back to back (from the buffer pool: no zero-fill)
    char* vals = nullptr;     // its rows' values
    size_t cols_cap = 0, vals_cap = 0;
    int64_t used = 0;
    void release();
  };
  std::vector<int64_t> bounds;  // row chunks [bounds[c], bounds[c + 1])
  std::vector<Chunk> chunks;
  std::vector<int64_t> rowptr;  // C's rowptr as symbolic computed it: numeric only accepts that one
  CpuProduct() = default;
  CpuProduct(const CpuProduct&) = delete;
  CpuProduct& operator=(const CpuProduct&) = delete;
  ~CpuProduct() {
    for (Chunk& c : chunks) c.release();
  }
};
// True when C = A·B surely costs at most `max_work` units (a product, or a row at 16), judged
// from the row pointers of B alone (A and B need not be validated yet), and B fits a dense row.
bool spgemm_is_small_cpu(const SpgemmParams& p, int64_t max_work);
Status spgemm_symbolic_cpu(const SpgemmParams& p, ThreadPool& pool, CpuProduct* product);
Status spgemm_numeric_cpu(const SpgemmParams& p, ThreadPool& pool, CpuProduct* product);
Status spgemm_symbolic_cuda(const SpgemmParams& p, cudaStream_t stream);
Status spgemm_numeric_cuda(const SpgemmParams& p, cudaStream_t stream);

// Zero compaction, in two steps: counts of nonzero values per row -> rowptr_out int64 [rows + 1]
// (prefix sum), then the copy of the nonzero entries into the new arrays.
struct CompactParams {
  CsrRef m;                      // values required; indptr int64
  DType dtype = DType::f32;
  int64_t* rowptr_out = nullptr;
  int32_t* indices_out = nullptr;
  void* values_out = nullptr;
};
Status csr_nonzero_rowptr_cpu(const CompactParams& p, ThreadPool& pool);
Status csr_compact_cpu(const CompactParams& p, ThreadPool& pool);

// Transpose (CPU): a stable counting sort by column, so the output's columns come out sorted.
struct TransposeParams {
  CsrRef m;
  DType dtype = DType::f32;
  void* indptr_out = nullptr;    // [cols + 1], same index dtype as m.indptr
  int32_t* indices_out = nullptr;
  void* values_out = nullptr;
};
Status csr_transpose_cpu(const TransposeParams& p, ThreadPool& pool);

}  // namespace sparq
