// Compiled with -ffp-contract=off (CMakeLists.txt, binding.gyp): see hd.h.
#include "dispatch.h"
#include "random.h"
#include "random_math.h"

namespace sparq {

Status random_cpu(const RandomParams& p, ThreadPool& pool) {
  if (!dtype_is_float(p.dtype)) return Status(Code::internal, "random: non-float dtype");
  visit_dtype(p.dtype, [&](auto t) {
    using T = typename decltype(t)::type;
    if constexpr (IsFloatSrc<T>::value) {
      T* out = static_cast<T*>(p.dst);
      // One Philox block gives four elements: work in whole blocks, clipped to [0, n).
      int64_t blocks = (p.n + 3) / 4;
      pool.parallel_for(blocks, 1 << 12, [&](int64_t kb, int64_t ke) {
        float v[4];
        for (int64_t k = kb; k < ke; ++k) {
          random_block(p.dist, p.seed, static_cast<uint64_t>(k), p.a, p.b, v);
          int64_t base = 4 * k;
          int64_t m = p.n - base < 4 ? p.n - base : 4;
          for (int64_t j = 0; j < m; ++j) out[base + j] = Convert<T>::from(v[j]);
        }
      });
    }
  });
  return Status::OK();
}

}  // namespace sparq
