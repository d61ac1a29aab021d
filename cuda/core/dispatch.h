// Turns a runtime DType into a C++ storage type inside a generic lambda.
#pragma once
#include <cstdint>

#include "convert.h"
#include "dtype.h"

namespace sparq {

template <typename T> struct Tag { using type = T; };

// Calls fn(Tag<T>{}) with the storage type of `t`.
template <typename Fn>
inline void visit_dtype(DType t, Fn&& fn) {
  switch (t) {
    case DType::f32: fn(Tag<float>{}); break;
    case DType::f16: fn(Tag<f16_t>{}); break;
    case DType::bf16: fn(Tag<bf16_t>{}); break;
    case DType::i8: fn(Tag<int8_t>{}); break;
    case DType::u8: fn(Tag<uint8_t>{}); break;
    case DType::i32: fn(Tag<int32_t>{}); break;
    case DType::u32: fn(Tag<uint32_t>{}); break;
    case DType::i64: fn(Tag<int64_t>{}); break;
    case DType::f64: fn(Tag<double>{}); break;
  }
}

}  // namespace sparq
