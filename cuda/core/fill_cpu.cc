#include <cstring>

#include "dispatch.h"
#include "fill.h"

namespace sparq {
namespace {
template <typename T>
void fill_typed(const FillParams& p, ThreadPool& pool) {
  T v = static_cast<T>(p.pattern);
  T* out = static_cast<T*>(p.dst);
  pool.parallel_for(p.n, 1 << 17, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) out[i] = v;
  });
}
}  // namespace

uint64_t encode_scalar(double value, DType dtype) {
  uint64_t bits = 0;
  visit_dtype(dtype, [&](auto t) {
    using T = typename decltype(t)::type;
    T v = from_double<T>(value);
    std::memcpy(&bits, &v, sizeof(T));
  });
  return bits;
}

Status fill_cpu(const FillParams& p, ThreadPool& pool) {
  switch (p.elem_size) {
    case 1: fill_typed<uint8_t>(p, pool); break;
    case 2: fill_typed<uint16_t>(p, pool); break;
    case 4: fill_typed<uint32_t>(p, pool); break;
    case 8: fill_typed<uint64_t>(p, pool); break;
    default: return Status(Code::internal, "fill: element size " + std::to_string(p.elem_size));
  }
  return Status::OK();
}

}  // namespace sparq
