// CSR helpers on the CPU: validation, zero compaction, transpose.
#include <algorithm>
#include <atomic>
#include <string>
#include <vector>

#include "../core/dispatch.h"
#include "spgemm.h"

namespace sparq {
namespace {

std::string s(int64_t v) { return std::to_string(v); }

// The first fault of row r, or an empty string.
std::string row_fault(const CsrRef& m, int64_t r) {
  const int64_t lo = m.ptr(r), hi = m.ptr(r + 1);
  for (int64_t e = lo; e < hi; ++e) {
    const int32_t c = m.indices[e];
    if (c < 0 || c >= m.cols)
      return std::string(m.name) + ": column index " + s(c) + " at position " + s(e) + " (row " + s(r) +
             ") is out of range [0, " + s(m.cols) + ")";
    if (e > lo && c <= m.indices[e - 1])
      return std::string(m.name) + ": column indices of row " + s(r) +
             " must be strictly increasing (sorted, no duplicates), but " + s(c) + " follows " + s(m.indices[e - 1]) +
             " at position " + s(e);
  }
  return std::string();
}

// The first row in [b, e) with a column out of range or out of order, or e. Branch-free per entry
// (one test per row), as valid input is the common case; the fault itself is worded by row_fault.
template <typename P>
int64_t first_bad_row(const P* ptr, const int32_t* idx, int64_t cols, int64_t b, int64_t e) {
  const uint32_t ucols = static_cast<uint32_t>(cols);
  for (int64_t r = b; r < e; ++r) {
    const int64_t lo = ptr[r], hi = ptr[r + 1];
    if (lo == hi) continue;
    uint32_t bad = static_cast<uint32_t>(idx[lo]) >= ucols;  // negative columns wrap to large
    for (int64_t k = lo + 1; k < hi; ++k)
      bad |= (static_cast<uint32_t>(idx[k]) >= ucols) | (idx[k] <= idx[k - 1]);
    if (bad) return r;
  }
  return e;
}

template <typename P>
bool any_decrease(const P* ptr, int64_t rows) {
  bool bad = false;
  for (int64_t r = 0; r < rows; ++r) bad |= ptr[r + 1] < ptr[r];
  return bad;
}

}  // namespace

Status csr_validate_cpu(const CsrRef& m, ThreadPool& pool) {
  const std::string n = m.name;
  if (m.ptr(0) != 0) return Status(Code::invalid_arg_value, n + ": indptr[0] must be 0, got " + s(m.ptr(0)));
  bool decreasing = false;  // a branch-free pass first: the loop below words the first fault
  if (m.indptr64) decreasing = any_decrease(static_cast<const int64_t*>(m.indptr), m.rows);
  else decreasing = any_decrease(static_cast<const int32_t*>(m.indptr), m.rows);
  for (int64_t r = 0; decreasing && r < m.rows; ++r) {
    if (m.ptr(r + 1) < m.ptr(r))
      return Status(Code::invalid_arg_value, n + ": indptr must be non-decreasing, but indptr[" + s(r) + "] = " + s(m.ptr(r)) +
                                                 " > indptr[" + s(r + 1) + "] = " + s(m.ptr(r + 1)));
  }
  if (m.ptr(m.rows) != m.stored)
    return Status(Code::invalid_arg_value, n + ": indptr[" + s(m.rows) + "] = " + s(m.ptr(m.rows)) +
                                               " must equal the number of stored entries, " + s(m.stored));
  std::atomic<int64_t> first_bad{m.rows};
  const int64_t grain = std::max<int64_t>(256, 65536 * m.rows / std::max<int64_t>(m.stored, 1));  // ~64K entries per task
  auto scan = [&](const auto* ptr) {
    pool.parallel_for(m.rows, grain, [&](int64_t b, int64_t e) {
      const int64_t r = first_bad_row(ptr, m.indices, m.cols, b, e);
      if (r < e) {
        int64_t cur = first_bad.load();
        while (r < cur && !first_bad.compare_exchange_weak(cur, r)) {}
      }
    });
  };
  if (m.indptr64) scan(static_cast<const int64_t*>(m.indptr));
  else scan(static_cast<const int32_t*>(m.indptr));
  if (first_bad.load() < m.rows) return Status(Code::invalid_arg_value, row_fault(m, first_bad.load()));
  return Status::OK();
}

Status csr_nonzero_rowptr_cpu(const CompactParams& p, ThreadPool& pool) {
  const CsrRef& m = p.m;
  visit_dtype(p.dtype, [&](auto t) {
    using T = typename decltype(t)::type;
    if constexpr (std::is_same<T, float>::value || std::is_same<T, double>::value) {
      const T* v = static_cast<const T*>(m.values);
      pool.parallel_for(m.rows, 1024, [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
          int64_t n = 0;
          for (int64_t k = m.ptr(r); k < m.ptr(r + 1); ++k) n += v[k] != T(0);
          p.rowptr_out[r + 1] = n;
        }
      });
    }
  });
  p.rowptr_out[0] = 0;
  for (int64_t r = 0; r < m.rows; ++r) p.rowptr_out[r + 1] += p.rowptr_out[r];
  return Status::OK();
}

Status csr_compact_cpu(const CompactParams& p, ThreadPool& pool) {
  const CsrRef& m = p.m;
  visit_dtype(p.dtype, [&](auto t) {
    using T = typename decltype(t)::type;
    if constexpr (std::is_same<T, float>::value || std::is_same<T, double>::value) {
      const T* v = static_cast<const T*>(m.values);
      T* vo = static_cast<T*>(p.values_out);
      pool.parallel_for(m.rows, 1024, [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
          int64_t o = p.rowptr_out[r];
          for (int64_t k = m.ptr(r); k < m.ptr(r + 1); ++k) {
            if (v[k] != T(0)) {
              p.indices_out[o] = m.indices[k];
              vo[o++] = v[k];
            }
          }
        }
      });
    }
  });
  return Status::OK();
}

Status csr_transpose_cpu(const TransposeParams& p, ThreadPool& pool) {
  (void)pool;  // a counting sort: one pass to count, one to place (memory-bound, serial)
  const CsrRef& m = p.m;
  std::vector<int64_t> next(static_cast<size_t>(m.cols) + 1, 0);
  for (int64_t k = 0; k < m.stored; ++k) next[static_cast<size_t>(m.indices[k]) + 1]++;
  for (int64_t c = 0; c < m.cols; ++c) next[c + 1] += next[c];
  for (int64_t c = 0; c <= m.cols; ++c) {
    if (m.indptr64) static_cast<int64_t*>(p.indptr_out)[c] = next[c];
    else static_cast<int32_t*>(p.indptr_out)[c] = static_cast<int32_t>(next[c]);
  }
  const size_t es = dtype_size(p.dtype);
  const char* v = static_cast<const char*>(m.values);
  char* vo = static_cast<char*>(p.values_out);
  for (int64_t r = 0; r < m.rows; ++r) {
    for (int64_t k = m.ptr(r); k < m.ptr(r + 1); ++k) {
      const int64_t o = next[m.indices[k]]++;
      p.indices_out[o] = static_cast<int32_t>(r);
      std::copy(v + k * es, v + (k + 1) * es, vo + o * es);
    }
  }
  return Status::OK();
}

}  // namespace sparq
