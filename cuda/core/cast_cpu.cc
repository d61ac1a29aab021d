#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>

#include "cast.h"
#include "dispatch.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace sparq {
namespace {

constexpr int64_t kGrain = 1 << 16;  // elements per task: big enough to amortise the hand-off

// Built three times and picked at load time by the CPU (GCC function multiversioning): x86-64-v4
// (AVX-512), x86-64-v3 (AVX2) and the portable baseline.
template <typename S, typename D>
#if defined(__x86_64__)
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
void cast_range(const S* __restrict src, D* __restrict dst, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) dst[i] = Convert<D>::from(src[i]);
}

#if defined(__x86_64__)
// F16C converts 8 lanes per instruction with the same round-to-nearest-even and NaN rules as
// half.h (checked bit for bit by test/dtype.test.ts on every float16 pattern).
__attribute__((target("avx,f16c"))) void f32_to_f16_f16c(const float* src, uint16_t* dst, int64_t b, int64_t e) {
  int64_t i = b;
  for (; i + 8 <= e; i += 8) {
    __m256 v = _mm256_loadu_ps(src + i);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
  }
  for (; i < e; ++i) dst[i] = f32_to_f16(src[i]);
}
__attribute__((target("avx,f16c"))) void f16_to_f32_f16c(const uint16_t* src, float* dst, int64_t b, int64_t e) {
  int64_t i = b;
  for (; i + 8 <= e; i += 8) {
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(v));
  }
  for (; i < e; ++i) dst[i] = f16_to_f32(src[i]);
}
// float16 on either side, another type on the other: convert through a float32 buffer so that the
// float16 half runs on F16C. Exact: float16 -> float32 loses nothing, and the float sources that
// feed float16 (float32, bfloat16) reach float32 exactly too.
template <typename S, typename D>
__attribute__((target("avx,f16c"))) void cast_via_f32_f16c(const S* src, D* dst, int64_t b, int64_t e) {
  constexpr int64_t kChunk = 512;
  alignas(64) float buf[kChunk];
  for (int64_t i = b; i < e; i += kChunk) {
    int64_t m = e - i < kChunk ? e - i : kChunk;
    if constexpr (std::is_same<S, f16_t>::value) f16_to_f32_f16c(reinterpret_cast<const uint16_t*>(src + i), buf, 0, m);
    else for (int64_t j = 0; j < m; ++j) buf[j] = to_float(src[i + j]);
    if constexpr (std::is_same<D, f16_t>::value) f32_to_f16_f16c(buf, reinterpret_cast<uint16_t*>(dst + i), 0, m);
    else for (int64_t j = 0; j < m; ++j) dst[i + j] = Convert<D>::from(buf[j]);
  }
}

// SPARQ_CPU_ISA=baseline turns the vector paths off (for tests of the portable code and for
// comparisons in benchmarks).
bool have_f16c() {
  static const bool ok = __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx") &&
                         !(std::getenv("SPARQ_CPU_ISA") && std::string(std::getenv("SPARQ_CPU_ISA")) == "baseline");
  return ok;
}
#else
bool have_f16c() { return false; }
#endif

}  // namespace

const char* cast_cpu_f16_path() { return have_f16c() ? "f16c" : "scalar"; }

Status cast_cpu(const CastParams& p, ThreadPool& pool) {
  if (p.n <= 0) return Status::OK();
  if (p.src_dtype == p.dst_dtype) {
    size_t es = dtype_size(p.src_dtype);
    pool.parallel_for(p.n, kGrain, [&](int64_t b, int64_t e) {
      std::memcpy(static_cast<char*>(p.dst) + b * es, static_cast<const char*>(p.src) + b * es, (e - b) * es);
    });
    return Status::OK();
  }
#if defined(__x86_64__)
  if (have_f16c() && p.src_dtype == DType::f32 && p.dst_dtype == DType::f16) {
    pool.parallel_for(p.n, kGrain, [&](int64_t b, int64_t e) {
      f32_to_f16_f16c(static_cast<const float*>(p.src), static_cast<uint16_t*>(p.dst), b, e);
    });
    return Status::OK();
  }
  if (have_f16c() && p.src_dtype == DType::f16 && p.dst_dtype == DType::f32) {
    pool.parallel_for(p.n, kGrain, [&](int64_t b, int64_t e) {
      f16_to_f32_f16c(static_cast<const uint16_t*>(p.src), static_cast<float*>(p.dst), b, e);
    });
    return Status::OK();
  }
#endif
  visit_dtype(p.src_dtype, [&](auto s) {
    using S = typename decltype(s)::type;
    visit_dtype(p.dst_dtype, [&](auto d) {
      using D = typename decltype(d)::type;
#if defined(__x86_64__)
      constexpr bool f16_src = std::is_same<S, f16_t>::value;
      constexpr bool f16_dst_from_float = std::is_same<D, f16_t>::value && IsFloatSrc<S>::value;
      if constexpr (f16_src || f16_dst_from_float) {
        if (have_f16c()) {
          pool.parallel_for(p.n, kGrain, [&](int64_t b, int64_t e) {
            cast_via_f32_f16c(static_cast<const S*>(p.src), static_cast<D*>(p.dst), b, e);
          });
          return;
        }
      }
#endif
      pool.parallel_for(p.n, kGrain, [&](int64_t b, int64_t e) {
        cast_range(static_cast<const S*>(p.src), static_cast<D*>(p.dst), b, e);
      });
    });
  });
  return Status::OK();
}

void convert_from_f64_cpu(const double* src, void* dst, int64_t n, DType dst_dtype, ThreadPool& pool) {
  visit_dtype(dst_dtype, [&](auto d) {
    using D = typename decltype(d)::type;
    D* out = static_cast<D*>(dst);
    pool.parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) out[i] = from_double<D>(src[i]);
    });
  });
}

}  // namespace sparq
