// RoPE on the CPU (rope.h). Work items are token positions: cos/sin of a position are computed
// once (in double, per the contract) and applied to every head (and every batch row when the
// positions are shared), in chunks of pairs so that any head dim works without heap memory.
#include <algorithm>
#include <cmath>
#include <new>
#include <vector>

#include "../core/device_errors.h"
#include "attention_cpu_kernels.h"
#include "rope.h"

namespace sparq {

namespace {

constexpr int64_t kPairs = 128;  // pairs per chunk

// Rotates the pairs [i0, i0 + n) of one row (cos/sin c, s for those pairs) from x into y.
template <class Isa, typename T>
SPARQ_AI void rotate_chunk(const T* x, T* y, int64_t i0, int64_t n, int64_t half, bool interleaved, const float* c,
                           const float* s) {
  alignas(64) float a[kPairs], b[kPairs], ra[kPairs], rb[kPairs], buf[2 * kPairs];
  if (interleaved) {
    attn_cpu::load_f32<Isa>(x + 2 * i0, buf, 2 * n);
    for (int64_t i = 0; i < n; ++i) {
      a[i] = buf[2 * i];
      b[i] = buf[2 * i + 1];
    }
  } else {
    attn_cpu::load_f32<Isa>(x + i0, a, n);
    attn_cpu::load_f32<Isa>(x + half + i0, b, n);
  }
  for (int64_t i = 0; i < n; ++i) {
    ra[i] = a[i] * c[i] - b[i] * s[i];
    rb[i] = a[i] * s[i] + b[i] * c[i];
  }
  if (interleaved) {
    for (int64_t i = 0; i < n; ++i) {
      buf[2 * i] = ra[i];
      buf[2 * i + 1] = rb[i];
    }
    attn_cpu::store_f32<Isa>(buf, y + 2 * i0, 2 * n);
  } else {
    attn_cpu::store_f32<Isa>(ra, y + i0, n);
    attn_cpu::store_f32<Isa>(rb, y + half + i0, n);
  }
}

struct RopeJob {
  const RopeParams* p;
  const double* inv_freq;  // [rotary_dim / 2]: base^(-2i / rotary_dim)
};

// Positions [begin, end) of the item space: (b, t) pairs, or t alone (all batches) when the
// positions do not depend on b.
template <class Isa, typename T>
SPARQ_AI void rope_items(const RopeJob& job, int64_t begin, int64_t end) {
  const RopeParams& p = *job.p;
  const bool per_batch = p.positions && p.positions_per_batch;
  const int64_t half = p.rotary_dim / 2, D = p.D;
  alignas(64) float c[kPairs], s[kPairs];
  for (int64_t item = begin; item < end; ++item) {
    const int64_t t = per_batch ? item % p.T : item;
    const int64_t b_first = per_batch ? item / p.T : 0, b_end = per_batch ? b_first + 1 : p.B;
    const double pos = p.positions ? static_cast<double>(p.positions[per_batch ? item : t])
                                   : static_cast<double>(p.offset + t);
    for (int64_t i0 = 0; i0 < half; i0 += kPairs) {
      const int64_t n = std::min(kPairs, half - i0);
      for (int64_t i = 0; i < n; ++i) {
        const double theta = pos * job.inv_freq[i0 + i];
        c[i] = static_cast<float>(std::cos(theta));
        s[i] = static_cast<float>(std::sin(theta));
      }
      for (int64_t b = b_first; b < b_end; ++b)
        for (int64_t h = 0; h < p.H; ++h) {
          const int64_t off = ((b * p.H + h) * p.T + t) * D;
          rotate_chunk<Isa>(static_cast<const T*>(p.x) + off, static_cast<T*>(p.out) + off, i0, n, half, p.interleaved, c, s);
        }
    }
    if (p.rotary_dim < D)
      for (int64_t b = b_first; b < b_end; ++b)
        for (int64_t h = 0; h < p.H; ++h) {
          const int64_t off = ((b * p.H + h) * p.T + t) * D;
          std::copy(static_cast<const T*>(p.x) + off + p.rotary_dim, static_cast<const T*>(p.x) + off + D,
                    static_cast<T*>(p.out) + off + p.rotary_dim);
        }
  }
}

template <class Isa>
SPARQ_AI void rope_level(const RopeJob& job, int64_t begin, int64_t end) {
  switch (job.p->dtype) {
    case DType::f16: rope_items<Isa, f16_t>(job, begin, end); break;
    case DType::bf16: rope_items<Isa, bf16_t>(job, begin, end); break;
    default: rope_items<Isa, float>(job, begin, end); break;
  }
}

#if SPARQ_ATTN_HAVE_LEVELS
SPARQ_ATTN_TARGET_V4 void rope_v4(const RopeJob& j, int64_t b, int64_t e) { rope_level<attn_cpu::IsaV4>(j, b, e); }
SPARQ_ATTN_TARGET_V3 void rope_v3(const RopeJob& j, int64_t b, int64_t e) { rope_level<attn_cpu::IsaV3>(j, b, e); }
#endif
void rope_baseline(const RopeJob& j, int64_t b, int64_t e) { rope_level<attn_cpu::IsaBaseline>(j, b, e); }

}  // namespace

Status rope_cpu(const RopeParams& p, ThreadPool& pool) {
  if (p.rotary_dim < 2 || p.rotary_dim % 2 != 0 || p.rotary_dim > p.D)
    return Status(Code::invalid_arg_value, "rotary_dim must be even and in [2, D]");
  const int64_t n_pos = p.positions ? (p.positions_per_batch ? p.B * p.T : p.T) : 0;
  for (int64_t i = 0; i < n_pos; ++i)
    if (p.positions[i] < 0) return Status(Code::invalid_arg_value, device_error_message(kDeviceErrorPositionOutOfRange));
  if (p.B == 0 || p.H == 0 || p.T == 0) return Status::OK();

  std::vector<double> inv_freq;
  try {
    inv_freq.resize(static_cast<size_t>(p.rotary_dim / 2));
  } catch (const std::bad_alloc&) {
    return Status(Code::oom, "out of host memory for the RoPE frequencies");
  }
  for (int64_t i = 0; i < p.rotary_dim / 2; ++i)
    inv_freq[i] = std::pow(p.base, -2.0 * static_cast<double>(i) / static_cast<double>(p.rotary_dim));

  const RopeJob job{&p, inv_freq.data()};
  const int64_t items = p.positions && p.positions_per_batch ? p.B * p.T : p.T;
  const int64_t per_item = (p.positions && p.positions_per_batch ? 1 : p.B) * p.H * p.D;
  const attn_cpu::CpuLevel level = attn_cpu::cpu_level();
  pool.parallel_for(items, std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(per_item, 1)),
                    [&](int64_t begin, int64_t end) {
#if SPARQ_ATTN_HAVE_LEVELS
                      if (level == attn_cpu::CpuLevel::v4) return rope_v4(job, begin, end);
                      if (level == attn_cpu::CpuLevel::v3) return rope_v3(job, begin, end);
#endif
                      rope_baseline(job, begin, end);
                    });
  return Status::OK();
}

}  // namespace sparq
