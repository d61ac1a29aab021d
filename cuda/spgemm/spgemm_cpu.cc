// SpGEMM on the CPU: rows split into chunks of about equal work (products), each chunk on one
// thread; every row is computed by one thread with its products in input order, so results are
// bit-identical run to run and for any thread count (`deterministic` costs nothing here).
// Per row the accumulator is chosen by width: a small open-addressing hash table (fits L1) for
// rows with few products in a wide B, a dense row (byte marks, zeroed as it is read out) for the rest.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "../core/dispatch.h"
#include "spgemm.h"

namespace sparq {
namespace {

constexpr int64_t kMaxHashSlots = 4096;          // hash tables up to 16 KB of keys
constexpr const char* kBadRowptr = "rowptr does not come from spgemmSymbolic on these inputs";
constexpr int64_t kDenseMaxCols = int64_t{1} << 26;  // wider rows always hash (memory per thread)
constexpr int64_t kDenseCacheCols = int64_t{1} << 16;
constexpr int64_t kRankSortMax = 64;  // rows up to this many entries are sorted by rank counting
constexpr uint32_t kHashScale = 107;             // multiplicative hash, as in nsparse/OpSparse
constexpr int64_t kMaxFusedEntries = int64_t{1} << 25;  // larger products take two passes
constexpr int64_t kRowWork = 16;  // the fixed cost of a row, in products

int64_t next_pow2(int64_t v) {
  int64_t p = 1;
  while (p < v) p <<= 1;
  return p;
}

// A and B with their row pointers typed (int32 or int64), so the row loops index plain arrays
// instead of testing the pointer width at every access.
template <typename PA, typename PB>
struct Operands {
  const PA* ap;
  const int32_t* ai;
  const void* av;
  const PB* bp;
  const int32_t* bi;
  const void* bv;
  int64_t bcols;
};

// Calls fn(Operands<PA, PB>) for the row pointer types of A and B.
template <typename Fn>
void with_operands(const SpgemmParams& p, Fn&& fn) {
  auto make = [&](auto* ap, auto* bp) {
    using PA = std::remove_const_t<std::remove_pointer_t<decltype(ap)>>;
    using PB = std::remove_const_t<std::remove_pointer_t<decltype(bp)>>;
    fn(Operands<PA, PB>{ap, p.a.indices, p.a.values, bp, p.b.indices, p.b.values, p.b.cols});
  };
  const auto* a32 = static_cast<const int32_t*>(p.a.indptr);
  const auto* a64 = static_cast<const int64_t*>(p.a.indptr);
  const auto* b32 = static_cast<const int32_t*>(p.b.indptr);
  const auto* b64 = static_cast<const int64_t*>(p.b.indptr);
  if (!p.a.indptr64 && !p.b.indptr64) make(a32, b32);
  else if (!p.a.indptr64) make(a32, b64);
  else if (!p.b.indptr64) make(a64, b32);
  else make(a64, b64);
}

// Products of row i: the sum of the lengths of the B rows its entries select.
template <typename PA, typename PB>
int64_t row_products(const Operands<PA, PB>& o, int64_t i) {
  int64_t n = 0;
  for (int64_t e = o.ap[i]; e < o.ap[i + 1]; ++e) {
    const int32_t k = o.ai[e];
    n += o.bp[k + 1] - o.bp[k];
  }
  return n;
}

// A dense row of up to kDenseCacheCols columns stays in L2 and beats hashing (one load and compare
// per product, no probing); wider rows hash unless the row has many products.
bool use_hash(int64_t products, int64_t cols) {
  if (cols <= kDenseCacheCols) return false;
  return cols > kDenseMaxCols || next_pow2(2 * products) <= kMaxHashSlots;
}

// Row ranges of about equal work (products + a constant per row), several per thread so that a
// thread that drew heavy rows does not hold the rest up.
std::vector<int64_t> balanced_chunks(const std::vector<int64_t>& work, int threads) {
  const int64_t rows = static_cast<int64_t>(work.size());
  int64_t total = 0;
  for (int64_t w : work) total += w;
  // A chunk is worth handing to another thread from about 32K units (~50 us): smaller products run inline.
  const int64_t target = std::max<int64_t>(total / (static_cast<int64_t>(threads) * 16), 32768);
  std::vector<int64_t> bounds{0};
  int64_t acc = 0;
  for (int64_t i = 0; i < rows; ++i) {
    acc += work[i];
    if (acc >= target) {
      bounds.push_back(i + 1);
      acc = 0;
    }
  }
  if (bounds.back() != rows) bounds.push_back(rows);
  return bounds;
}

// Per-thread accumulators, reused across rows and calls. The row loops below work on raw
// pointers taken from them, so the compiler keeps everything in registers.
template <typename T>
struct Scratch {
  std::vector<uint8_t> marks;  // dense: 1 when column c is in the current row (zero between rows; padded to 8)
  std::vector<T> dense;        // dense: the row's sums (zero between rows)
  std::vector<int32_t> keys;   // hash: -1 = empty
  std::vector<T> hvals;
  std::vector<int32_t> touched;  // columns (dense) in first-touch order
  std::vector<uint64_t> order;   // (col << 32 | slot) of hash rows, for sorting
  std::vector<uint64_t> bits;    // dense: the touched columns as a bitmap, to read them out in order (zero between rows)
  std::vector<uint64_t> summary; // bit w set when bits[w] != 0, so the read-out skips empty words (zero between rows)

  void begin_dense(int64_t cols, int64_t products) {
    if (static_cast<int64_t>(dense.size()) < cols) {
      marks.assign((cols + 7) / 8 * 8, 0);
      dense.assign(cols, T(0));
      bits.assign((cols + 63) / 64, 0);
      summary.assign((cols + 4095) / 4096, 0);
    }
    const int64_t need = std::min(products, cols);
    if (static_cast<int64_t>(touched.size()) < need) touched.resize(need);
  }
  void begin_hash(int64_t slots) {
    if (static_cast<int64_t>(keys.size()) < slots) {
      keys.resize(slots);
      hvals.resize(slots);
      order.resize(slots);
    }
    std::fill(keys.begin(), keys.begin() + slots, -1);
  }
};

// Marks column c; returns 1 when it was not marked yet. Branch-free. (Byte marks, not bits: a plain
// store per product, no read-modify-write chain when many products hit neighbouring columns.)
inline int64_t mark_col(uint8_t* marks, int32_t c) {
  const int64_t fresh = marks[c] == 0;
  marks[c] = 1;
  return fresh;
}

// Calls emit(c) for every marked column in [cmin, cmax], ascending, clearing the marks: eight
// columns per load, so a sparse range is skipped quickly.
template <typename F>
inline void scan_marks(uint8_t* marks, int32_t cmin, int32_t cmax, F emit) {
  for (int64_t g = cmin & ~int64_t{7}; g <= cmax; g += 8) {
    uint64_t word;
    std::memcpy(&word, marks + g, 8);
    if (!word) continue;
    std::memset(marks + g, 0, 8);
    for (; word; word &= word - 1) emit(static_cast<int32_t>(g + (__builtin_ctzll(word) >> 3)));
  }
}

// One lookup per chunk of rows, not per row (TLS access costs a call in a shared library). The
// scratch lives on the heap: handed a thread_local object itself, GCC specialises the row functions
// for its address and then recomputes that address (a __tls_get_addr call) at every use.
template <typename T>
Scratch<T>& scratch() {
  thread_local std::unique_ptr<Scratch<T>> s;
  if (!s) s.reset(new Scratch<T>());
  return *s;
}

// Slot of `col` in a table of `mask + 1` keys; `fresh` tells whether it was just inserted.
inline int64_t hash_slot(int32_t* keys, int32_t col, int64_t mask, bool* fresh) {
  int64_t h = (static_cast<uint32_t>(col) * kHashScale) & mask;
  while (true) {
    const int32_t k = keys[h];
    if (k == col) { *fresh = false; return h; }
    if (k == -1) { keys[h] = col; *fresh = true; return h; }
    h = (h + 1) & mask;
  }
}

template <typename PA, typename PB>
int64_t symbolic_row(const Operands<PA, PB>& o, int64_t i, int64_t products, Scratch<float>& s) {
  const int64_t lo = o.ap[i], hi = o.ap[i + 1];
  if (hi - lo == 0) return 0;
  if (hi - lo == 1) return products;  // one B row, whose columns are distinct
  const int32_t* bi = o.bi;
  int64_t n = 0;
  if (use_hash(products, o.bcols)) {
    const int64_t slots = next_pow2(2 * products);
    s.begin_hash(slots);
    int32_t* keys = s.keys.data();
    bool fresh;
    for (int64_t e = lo; e < hi; ++e) {
      const int32_t k = o.ai[e];
      const int64_t fe = o.bp[k + 1];
      for (int64_t f = o.bp[k]; f < fe; ++f) {
        hash_slot(keys, bi[f], slots - 1, &fresh);
        n += fresh;
      }
    }
  } else {
    s.begin_dense(o.bcols, products);
    uint8_t* marks = s.marks.data();
    int32_t cmin = INT32_MAX, cmax = -1;
    for (int64_t e = lo; e < hi; ++e) {
      const int32_t k = o.ai[e];
      const int64_t fb = o.bp[k], fe = o.bp[k + 1];
      if (fb == fe) continue;
      cmin = std::min(cmin, bi[fb]);
      cmax = std::max(cmax, bi[fe - 1]);
      for (int64_t f = fb; f < fe; ++f) n += mark_col(marks, bi[f]);
    }
    if (cmax >= 0) std::fill(marks + cmin, marks + cmax + 1, uint8_t{0});
  }
  return n;
}

// One row of C leaving the dense accumulator, column by column in the order given: nothing is
// written at or past cap (the row's size from rowptr, which a raw caller may have forged); n counts
// the row's true entries; the accumulator is left clean.
template <typename T>
struct RowOut {
  int32_t* cols;
  T* vals;
  T* dense;
  int64_t cap, n = 0;
  void take(int32_t c) {
    if (n < cap) {
      cols[n] = c;
      vals[n] = dense[c];
    }
    ++n;
    dense[c] = T(0);
  }
};

// A sorted row of C whose column range spans fewer 64-column words than about twice its products
// (short rows over a wide range: meshes, power grids): each product sets its column's bit, and the
// read-out walks the range's words. No list of touched columns (its append, which depends on the
// previous product's mark, serialises the loop) and no sort. The bits are left clear.
template <typename T, typename PA, typename PB>
int64_t bitmap_row(const Operands<PA, PB>& o, int64_t lo, int64_t hi, int32_t cmin, int32_t cmax, int32_t* cols, T* vals,
                   Scratch<T>& s, int64_t cap) {
  const T* av = static_cast<const T*>(o.av);
  const T* bv = static_cast<const T*>(o.bv);
  const int32_t* bi = o.bi;
  T* dense = s.dense.data();
  uint64_t* bits = s.bits.data();
  for (int64_t e = lo; e < hi; ++e) {
    const int32_t k = o.ai[e];
    const T x = av[e];
    const int64_t fe = o.bp[k + 1];
    for (int64_t f = o.bp[k]; f < fe; ++f) {
      const int32_t c = bi[f];
      dense[c] += x * bv[f];
      bits[c >> 6] |= uint64_t{1} << (c & 63);
    }
  }
  RowOut<T> out{cols, vals, dense, cap};
  for (int64_t w = cmin >> 6; w <= (cmax >> 6); ++w) {
    uint64_t word = bits[w];
    if (!word) continue;
    bits[w] = 0;
    for (; word; word &= word - 1) {
      const int32_t c = static_cast<int32_t>(w * 64 + __builtin_ctzll(word));
      out.take(c);
    }
  }
  return out.n;
}

// Row i of C into cols/vals, which have room for `cap` entries (the row's size from rowptr, which
// a raw caller may have forged): nothing is written at or past cap. Returns the row's true count;
// the caller reports a row whose count differs from its cap. The scratch is left clean either way.
template <typename T, typename PA, typename PB>
int64_t numeric_row(const Operands<PA, PB>& o, bool sort_columns, int64_t i, int64_t products, int32_t* cols, T* vals,
                    Scratch<T>& s, int64_t cap) {
  const T* av = static_cast<const T*>(o.av);
  const T* bv = static_cast<const T*>(o.bv);
  const int32_t* bi = o.bi;
  const int64_t lo = o.ap[i], hi = o.ap[i + 1];
  if (hi - lo == 0) return 0;
  if (hi - lo == 1) {  // a scaled copy of one B row: already sorted
    const int32_t k = o.ai[lo];
    const T x = av[lo];
    const int64_t fb = o.bp[k], fe = o.bp[k + 1];
    if (fe - fb > cap) return fe - fb;
    for (int64_t f = fb; f < fe; ++f) {
      cols[f - fb] = bi[f];
      vals[f - fb] = x * bv[f];
    }
    return fe - fb;
  }
  if (use_hash(products, o.bcols)) {
    const int64_t slots = next_pow2(2 * products), mask = slots - 1;
    s.begin_hash(slots);
    int32_t* keys = s.keys.data();
    T* hv = s.hvals.data();
    uint64_t* order = s.order.data();
    int64_t n = 0;
    bool fresh;
    for (int64_t e = lo; e < hi; ++e) {
      const int32_t k = o.ai[e];
      const T x = av[e];
      const int64_t fe = o.bp[k + 1];
      for (int64_t f = o.bp[k]; f < fe; ++f) {
        const int32_t c = bi[f];
        const int64_t h = hash_slot(keys, c, mask, &fresh);
        if (fresh) {
          hv[h] = x * bv[f];
          order[n++] = (static_cast<uint64_t>(c) << 32) | static_cast<uint64_t>(h);
        } else {
          hv[h] += x * bv[f];
        }
      }
    }
    if (n > cap) return n;
    if (sort_columns) std::sort(order, order + n);
    for (int64_t q = 0; q < n; ++q) {
      cols[q] = static_cast<int32_t>(order[q] >> 32);
      vals[q] = hv[order[q] & 0xffffffffu];
    }
    return n;
  }
  s.begin_dense(o.bcols, products);
  uint8_t* marks = s.marks.data();
  T* dense = s.dense.data();
  int32_t* touched = s.touched.data();
  // The row's column range, from the first and last column of each B row it reads.
  int32_t cmin = INT32_MAX, cmax = -1;
  for (int64_t e = lo; e < hi; ++e) {
    const int32_t k = o.ai[e];
    const int64_t fb = o.bp[k], fe = o.bp[k + 1];
    if (fb == fe) continue;
    cmin = std::min(cmin, bi[fb]);
    cmax = std::max(cmax, bi[fe - 1]);
  }
  if (cmax < 0) return 0;
  // Narrow range: the marks alone give the columns (sorted by a scan, or in first-touch order by a
  // second walk over the products), no list of touched columns needed.
  const bool via_marks = (cmax - cmin) / 8 <= std::min(products, o.bcols) / 4;
  if (sort_columns && !via_marks && (cmax >> 6) - (cmin >> 6) < 2 * products + 8)
    return bitmap_row(o, lo, hi, cmin, cmax, cols, vals, s, cap);
  int64_t n = 0;
  for (int64_t e = lo; e < hi; ++e) {
    const int32_t k = o.ai[e];
    const T x = av[e];
    const int64_t fb = o.bp[k], fe = o.bp[k + 1];
    // Branch-free: the dense row is all zeros between rows, so every product just adds.
    if (via_marks) {
      for (int64_t f = fb; f < fe; ++f) {
        const int32_t c = bi[f];
        dense[c] += x * bv[f];
        marks[c] = 1;
      }
    } else {
      for (int64_t f = fb; f < fe; ++f) {
        const int32_t c = bi[f];
        dense[c] += x * bv[f];
        touched[n] = c;
        n += mark_col(marks, c);
      }
    }
  }
  if (via_marks && !sort_columns) {
    // First-touch order without a list: walk the products again and emit each column at its
    // first visit (clearing its mark). A load and a branch per product (mispredicted about once
    // per entry of C); keeping the list in the hot loop cost about twice that on banded rows.
    RowOut<T> out{cols, vals, dense, cap};
    for (int64_t e = lo; e < hi; ++e) {
      const int32_t k = o.ai[e];
      const int64_t fb = o.bp[k], fe = o.bp[k + 1];
      for (int64_t f = fb; f < fe; ++f) {
        const int32_t c = bi[f];
        if (!marks[c]) continue;
        marks[c] = 0;
        out.take(c);
      }
    }
    return out.n;
  }
  // Sorted output four ways, by rough cost in ns: scan the marks (one load per 8 columns), a
  // two-level bitmap of the touched columns (two bits set per entry; the read-out visits only
  // nonempty 64-column words), rank counting (n² branch-free compares, short rows only) or a
  // comparison sort. The bitmap pays a mispredicted branch about once per nonempty word; it wins
  // on long rows over a wide range (graphs).
  const int64_t words = (cmax - cmin) / 8 + 1;
  const int64_t bit_words = (cmax >> 6) - (cmin >> 6) + 1;
  const double scan_cost = 2.0 * words + 3.0 * n;
  const double bitmap_cost = 1.0 * (bit_words / 64 + 1) + 5.0 * std::min(n, bit_words) + 6.0 * n;
  const double rank_cost = n <= kRankSortMax ? 0.25 * n * n + 5.0 * n : 1e300;
  const double sort_cost = 4.0 * n * (64 - __builtin_clzll(static_cast<uint64_t>(n) | 1)) + 5.0 * n;
  if (sort_columns && !via_marks && bitmap_cost < scan_cost && bitmap_cost <= rank_cost && bitmap_cost <= sort_cost) {
    uint64_t* bits = s.bits.data();
    uint64_t* summary = s.summary.data();
    for (int64_t q = 0; q < n; ++q) {
      const int32_t c = touched[q];
      bits[c >> 6] |= uint64_t{1} << (c & 63);
      summary[c >> 12] |= uint64_t{1} << ((c >> 6) & 63);
      marks[c] = 0;
    }
    RowOut<T> out{cols, vals, dense, cap};
    for (int64_t sw = cmin >> 12; sw <= (cmax >> 12); ++sw) {
      for (uint64_t sum = summary[sw]; sum; sum &= sum - 1) {
        const int64_t w = sw * 64 + __builtin_ctzll(sum);
        for (uint64_t word = bits[w]; word; word &= word - 1) {
          const int32_t c = static_cast<int32_t>(w * 64 + __builtin_ctzll(word));
          out.take(c);
        }
        bits[w] = 0;
      }
      summary[sw] = 0;
    }
    return out.n;
  }
  if (via_marks || (sort_columns && scan_cost <= rank_cost && scan_cost <= sort_cost)) {
    // Columns in order straight from the marks: one load per 8 columns plus one step per entry.
    RowOut<T> out{cols, vals, dense, cap};
    scan_marks(marks, cmin, cmax, [&](int32_t c) {
      out.take(c);
    });
    return out.n;
  }
  if (sort_columns && rank_cost <= sort_cost) {
    // Short row: each column's place is the count of smaller ones (columns are distinct). O(n²)
    // compares without branches, which vectorise; cheaper than a comparison sort at this size.
    for (int64_t q = 0; q < (n <= cap ? n : 0); ++q) {
      const int32_t c = touched[q];
      int32_t r = 0;
      for (int32_t j = 0; j < static_cast<int32_t>(n); ++j) r += touched[j] < c;
      cols[r] = c;
      vals[r] = dense[c];
    }
    for (int64_t q = 0; q < n; ++q) {
      dense[touched[q]] = T(0);
      marks[touched[q]] = 0;
    }
    return n;
  }
  if (sort_columns && n <= cap) std::sort(touched, touched + n);
  for (int64_t q = 0; q < n; ++q) {
    const int32_t c = touched[q];
    if (n <= cap) {
      cols[q] = c;
      vals[q] = dense[c];
    }
    dense[c] = T(0);
    marks[c] = 0;
  }
  return n;
}

std::vector<int64_t> products_per_row(const SpgemmParams& p, ThreadPool& pool) {
  std::vector<int64_t> w(static_cast<size_t>(p.a.rows));
  const int64_t grain = std::max<int64_t>(4096, 65536 * p.a.rows / std::max<int64_t>(p.a.stored, 1));  // ~64K entries per task
  with_operands(p, [&](const auto& o) {
    pool.parallel_for(p.a.rows, grain, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) w[i] = row_products(o, i);
    });
  });
  return w;
}

// Calls rows_fn(chunk, begin, end) for row chunks of about equal work, in parallel.
std::vector<int64_t> chunk_bounds(const std::vector<int64_t>& products, int threads) {
  std::vector<int64_t> work(products.size());
  for (size_t i = 0; i < products.size(); ++i) work[i] = products[i] + kRowWork;
  return balanced_chunks(work, threads);
}

void run_chunks(const std::vector<int64_t>& bounds, ThreadPool& pool, const std::function<void(int64_t, int64_t, int64_t)>& rows_fn) {
  pool.parallel_for(static_cast<int64_t>(bounds.size()) - 1, 1, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c) rows_fn(c, bounds[c], bounds[c + 1]);
  });
}

// Freed chunk buffers, kept for the next product: repeated products (benchmarks, chains) reuse
// warm pages instead of faulting fresh ones in. At most 64 buffers and 256 MB are kept.
class BufferPool {
 public:
  static BufferPool& get() {
    static BufferPool* pool = new BufferPool();  // never destroyed: products may outlive statics
    return *pool;
  }
  void* take(size_t bytes, size_t* cap) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      size_t best = free_.size();
      for (size_t i = 0; i < free_.size(); ++i) {
        const size_t c = free_[i].first;
        if (c >= bytes && c <= 4 * bytes + (size_t{64} << 10) && (best == free_.size() || c < free_[best].first)) best = i;
      }
      if (best < free_.size()) {
        void* p = free_[best].second;
        *cap = free_[best].first;
        cached_ -= *cap;
        free_[best] = free_.back();
        free_.pop_back();
        return p;
      }
    }
    *cap = bytes;
    return std::malloc(std::max<size_t>(bytes, 1));
  }
  void give(void* p, size_t cap) {
    if (!p) return;
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (free_.size() < 64 && cached_ + cap <= (size_t{256} << 20)) {
        free_.emplace_back(cap, p);
        cached_ += cap;
        return;
      }
    }
    std::free(p);
  }

 private:
  std::mutex mu_;
  std::vector<std::pair<size_t, void*>> free_;
  size_t cached_ = 0;
};

}  // namespace

void CpuProduct::Chunk::release() {
  BufferPool::get().give(cols, cols_cap);
  BufferPool::get().give(vals, vals_cap);
  cols = nullptr;
  vals = nullptr;
}

bool spgemm_is_small_cpu(const SpgemmParams& p, int64_t max_work) {
  // Only the row pointers of B are read (their array has its checked shape, its values may be
  // anything): a row longer than B's entries means B is malformed, which the full path reports.
  if (p.b.cols > kDenseCacheCols || p.b.rows > max_work || p.a.rows > max_work) return false;
  int64_t longest = 0;
  for (int64_t k = 0; k < p.b.rows; ++k) {
    const int64_t len = p.b.ptr(k + 1) - p.b.ptr(k);
    if (len < 0 || len > p.b.stored) return false;
    longest = std::max(longest, len);
  }
  // Σ over A's entries of the B row each selects is at most stored(A) · longest (stored(A) is
  // tested first, so the product cannot overflow).
  return p.a.stored <= max_work && p.a.stored * longest + kRowWork * p.a.rows <= max_work;
}

Status spgemm_symbolic_cpu(const SpgemmParams& p, ThreadPool& pool, CpuProduct* out) {
  if (!p.a_valid) SPARQ_RETURN_IF_ERROR(csr_validate_cpu(p.a, pool));
  const bool b_is_a = p.b.indptr == p.a.indptr && p.b.indices == p.a.indices && p.b.rows == p.a.rows && p.b.cols == p.a.cols &&
                      p.b.stored == p.a.stored && p.b.indptr64 == p.a.indptr64;
  if (!b_is_a && !p.b_valid) SPARQ_RETURN_IF_ERROR(csr_validate_cpu(p.b, pool));  // A·A: checked once
  const std::vector<int64_t> products = products_per_row(p, pool);
  const std::vector<int64_t> bounds = chunk_bounds(products, pool.size());
  int64_t* rp = p.rowptr_c;
  rp[0] = 0;
  // Fuse only when the transient copy of C is bounded (Σ min(products, cols) >= nnz(C)).
  int64_t bound = 0;
  for (int64_t w : products) bound += std::min(w, p.b.cols);
  if (out && bound > kMaxFusedEntries) out = nullptr;
  if (!out) {
    with_operands(p, [&](const auto& o) {
      run_chunks(bounds, pool, [&](int64_t, int64_t b, int64_t e) {
        Scratch<float>& s = scratch<float>();
        for (int64_t i = b; i < e; ++i) rp[i + 1] = symbolic_row(o, i, products[i], s);
      });
    });
  } else {
    // Fused: compute C now, chunk by chunk, into buffers that the numeric phase copies out.
    const size_t chunks = bounds.size() - 1;
    const size_t es = dtype_size(p.dtype);
    out->bounds = bounds;
    out->chunks.assign(chunks, {});
    std::atomic<bool> oom{false};
    visit_dtype(p.dtype, [&](auto t) {
      using T = typename decltype(t)::type;
      if constexpr (std::is_same<T, float>::value || std::is_same<T, double>::value) with_operands(p, [&](const auto& o) {
        run_chunks(bounds, pool, [&](int64_t c, int64_t b, int64_t e) {
          int64_t cap = 0;  // Σ min(products, cols) bounds the chunk's entries
          for (int64_t i = b; i < e; ++i) cap += std::min(products[i], p.b.cols);
          CpuProduct::Chunk& ch = out->chunks[c];
          ch.cols = static_cast<int32_t*>(BufferPool::get().take(cap * sizeof(int32_t), &ch.cols_cap));
          ch.vals = static_cast<char*>(BufferPool::get().take(cap * es, &ch.vals_cap));
          if (!ch.cols || !ch.vals) {
            oom = true;
            return;
          }
          int64_t used = 0;
          Scratch<T>& s = scratch<T>();
          for (int64_t i = b; i < e; ++i) {
            const int64_t n = numeric_row<T>(o, p.sort_columns, i, products[i], ch.cols + used, reinterpret_cast<T*>(ch.vals) + used, s,
                                             std::numeric_limits<int64_t>::max());  // cap covers the chunk's bound
            rp[i + 1] = n;
            used += n;
          }
          ch.used = used;
        });
      });
    });
    if (oom) return Status(Code::oom, "out of host memory for the rows of C");
  }
  for (int64_t i = 0; i < p.a.rows; ++i) rp[i + 1] += rp[i];
  if (out && !out->bounds.empty()) out->rowptr.assign(rp, rp + p.a.rows + 1);  // numeric checks its rowptr against it
  return Status::OK();
}

Status spgemm_numeric_cpu(const SpgemmParams& p, ThreadPool& pool, CpuProduct* done) {
  const size_t es = dtype_size(p.dtype);
  // rowptr comes from the caller (a raw native call can pass any int64 tensor): check it before any
  // write. O(rows), against a product that costs far more.
  const int64_t* rp = p.rowptr_c;
  bool monotone = rp[0] == 0 && rp[p.a.rows] == p.nnz_c;
  for (int64_t i = 0; i < p.a.rows && monotone; ++i) monotone = rp[i] <= rp[i + 1];
  if (!monotone) return Status(Code::invalid_arg_value, kBadRowptr + std::string(" (it must run from 0 to nnz without decreasing)"));
  if (done && !done->bounds.empty()) {
    // The symbolic phase computed C: copy each chunk to its place (rows are contiguous), once the
    // rowptr is the one that phase produced (otherwise rows would land under the wrong row).
    const int64_t chunks = static_cast<int64_t>(done->bounds.size()) - 1;
    if (static_cast<int64_t>(done->rowptr.size()) != p.a.rows + 1 ||
        std::memcmp(done->rowptr.data(), rp, done->rowptr.size() * sizeof(int64_t)) != 0)
      return Status(Code::invalid_arg_value, kBadRowptr + std::string(" (it differs from the one that computed the product)"));
    const int64_t bytes = p.rowptr_c[p.a.rows] * static_cast<int64_t>(sizeof(int32_t) + es);
    pool.parallel_for(chunks, bytes < (int64_t{4} << 20) ? chunks : 1, [&](int64_t b, int64_t e) {  // small C: one memcpy pass
      for (int64_t c = b; c < e; ++c) {
        CpuProduct::Chunk& ch = done->chunks[c];
        const int64_t o = p.rowptr_c[done->bounds[c]];
        std::memcpy(p.indices_c + o, ch.cols, ch.used * sizeof(int32_t));
        std::memcpy(static_cast<char*>(p.values_c) + o * es, ch.vals, ch.used * es);
        ch.release();  // free as we go
      }
    });
    done->bounds.clear();
    return Status::OK();
  }
  // The unfused pass reads A and B: a raw numeric call may not have run symbolic on them.
  if (!p.a_valid) SPARQ_RETURN_IF_ERROR(csr_validate_cpu(p.a, pool));
  if (!p.b_valid) SPARQ_RETURN_IF_ERROR(csr_validate_cpu(p.b, pool));
  const std::vector<int64_t> products = products_per_row(p, pool);
  std::atomic<int64_t> bad_row{-1};
  visit_dtype(p.dtype, [&](auto t) {
    using T = typename decltype(t)::type;
    if constexpr (std::is_same<T, float>::value || std::is_same<T, double>::value) with_operands(p, [&](const auto& ops) {
      T* vals = static_cast<T*>(p.values_c);
      run_chunks(chunk_bounds(products, pool.size()), pool, [&](int64_t, int64_t b, int64_t e) {
        Scratch<T>& s = scratch<T>();
        for (int64_t i = b; i < e; ++i) {
          const int64_t o = rp[i];
          const int64_t n = numeric_row<T>(ops, p.sort_columns, i, products[i], p.indices_c + o, vals + o, s, rp[i + 1] - o);
          if (n != rp[i + 1] - o) bad_row.store(i);
        }
      });
    });
  });
  if (bad_row.load() >= 0)
    return Status(Code::invalid_arg_value, kBadRowptr + std::string(" (row ") + std::to_string(bad_row.load()) +
                                               " of C has a different number of entries)");
  return Status::OK();
}

}  // namespace sparq
