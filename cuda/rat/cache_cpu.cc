// The RAT decode cache on the CPU (rat.h): fill from a prefill, and one step per sequence. Work
// items are (batch, head) rows; every check runs before anything is written, so a failed call
// leaves the cache as it was.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <string>
#include <vector>

#include "../core/device_errors.h"
#include "rat.h"
#include "rat_cpu.h"

namespace sparq {
namespace {

// ---- fill

struct FillJob {
  const RatFillParams* p;
  const rat_cpu::RopeTable* rope;
};

template <class Isa, typename T>
SPARQ_AI void fill_items(const FillJob& j, int64_t begin, int64_t end) {
  const RatFillParams& p = *j.p;
  const RatCache& c = p.cache;
  const int64_t D = c.D, L = c.L, T_ = p.T, Nc = (p.T + c.L - 1) / c.L;
  alignas(64) float row[kRatMaxHeadDim], x[kRatMaxHeadDim], z[kRatMaxHeadDim];
  for (int64_t bh = begin; bh < end; ++bh) {
    const int64_t b = bh / c.H, h = bh % c.H;
    const int64_t len = p.prompt_lengths[b], full = len / L;
    for (int64_t ch = 0; ch < full; ++ch) {
      const int64_t src = (bh * Nc + ch) * D, dst = (bh * c.N + ch) * D;
      rat_cpu::load_f32<Isa>(static_cast<const T*>(p.k_final) + src, row, D);
      rat_cpu::rotate(*j.rope, ch, row, c.k_chunks + dst, D);
      rat_cpu::round_row<T>(c.k_chunks + dst, D);
      rat_cpu::load_f32<Isa>(static_cast<const T*>(p.v_final) + src, c.v_chunks + dst, D);
    }
    // The float32 state of the unfinished chunk, recomputed from its inputs (at most L - 1 tokens).
    float* sk = c.k_state + bh * D;
    float* sv = c.v_state + bh * D;
    std::fill(sk, sk + D, 0.0f);
    std::fill(sv, sv + D, 0.0f);
    const float* bias = p.gate_bias ? p.gate_bias + h * D : nullptr;
    const int64_t krow = (b * p.Gk + h % p.Gk) * T_;
    for (int64_t t = full * L; t < len; ++t) {
      rat_cpu::load_f32<Isa>(static_cast<const T*>(p.gate) + (bh * T_ + t) * D, z, D);
      rat_cpu::gate_row(z, bias, D);
      rat_cpu::load_f32<Isa>(static_cast<const T*>(p.v) + (bh * T_ + t) * D, x, D);
      rat_cpu::state_step(sv, x, z, t == full * L, D);
      rat_cpu::load_f32<Isa>(static_cast<const T*>(p.k) + (krow + t) * D, x, D);
      rat_cpu::state_step(sk, x, z, t == full * L, D);
    }
  }
}

// ---- step

struct StepJob {
  const RatStepParams* p;
  const rat_cpu::RopeTable* rope;  // row b: the chunk index of sequence b's token
};

template <class Isa, typename T>
SPARQ_AI void step_items(const StepJob& j, int64_t begin, int64_t end, float* scores) {
  const RatStepParams& p = *j.p;
  const RatCache& c = p.cache;
  const int64_t D = c.D, L = c.L;
  alignas(64) float x[kRatMaxHeadDim], z[kRatMaxHeadDim], ks[kRatMaxHeadDim], vs[kRatMaxHeadDim];
  alignas(64) float qr[kRatMaxHeadDim], kr[kRatMaxHeadDim], o[kRatMaxHeadDim];
  for (int64_t bh = begin; bh < end; ++bh) {
    const int64_t b = bh / c.H, h = bh % c.H;
    const int64_t t = c.lengths[b], ch = t / L, l = t % L;
    const float* bias = p.gate_bias ? p.gate_bias + h * D : nullptr;
    float* sk = c.k_state + bh * D;
    float* sv = c.v_state + bh * D;
    rat_cpu::load_f32<Isa>(static_cast<const T*>(p.gate) + bh * D, z, D);
    rat_cpu::gate_row(z, bias, D);
    rat_cpu::load_f32<Isa>(static_cast<const T*>(p.v) + bh * D, x, D);
    rat_cpu::state_step(sv, x, z, l == 0, D);
    rat_cpu::load_f32<Isa>(static_cast<const T*>(p.k) + (b * p.Gk + h % p.Gk) * D, x, D);
    rat_cpu::state_step(sk, x, z, l == 0, D);
    // The attention reads the states as the prefill reads k~ and v~: rounded to the dtype.
    for (int64_t d = 0; d < D; ++d) {
      ks[d] = rat_cpu::rounded<T>(sk[d]);
      vs[d] = rat_cpu::rounded<T>(sv[d]);
    }
    rat_cpu::rotate(*j.rope, b, ks, kr, D);
    rat_cpu::round_row<T>(kr, D);
    rat_cpu::load_f32<Isa>(static_cast<const T*>(p.q) + (b * p.Gq + h % p.Gq) * D, x, D);
    rat_cpu::rotate(*j.rope, b, x, qr, D);
    rat_cpu::round_row<T>(qr, D);

    // Softmax over the self term and the ch finished chunks (two passes over the scores).
    const float* kc = c.k_chunks + bh * c.N * D;
    const float* vc = c.v_chunks + bh * c.N * D;
    const float self = p.scale * rat_cpu::dot(qr, kr, D);
    float m = self;
    if (ch > 0) attn_cpu::qk_dot<Isa, 1>(qr, D, kc, D, ch, D, scores, 0);  // the dense family's micro-kernel
    for (int64_t i = 0; i < ch; ++i) {
      scores[i] *= p.scale;
      m = scores[i] > m ? scores[i] : m;
    }
    if (self != self) m = self;  // NaN wins
    const float w_self = rat_cpu::exp_f32(self - m);
    float sum = w_self;
    for (int64_t i = 0; i < ch; ++i) {
      scores[i] = rat_cpu::exp_f32(scores[i] - m);
      sum += scores[i];
    }
    for (int64_t d = 0; d < D; ++d) o[d] = w_self * vs[d];
    if (ch > 0) attn_cpu::pv_rows<Isa, 1>(scores, 0, 1, 0, ch, vc, D, o, D, D);
    attn_cpu::store_scaled<Isa>(o, 1.0f / sum, static_cast<T*>(p.out) + bh * D, D);
    if (p.lse) p.lse[bh] = m + std::log(sum);
    if (l == L - 1) {  // the chunk is complete: its final state becomes slot ch
      std::copy(kr, kr + D, c.k_chunks + (bh * c.N + ch) * D);
      std::copy(vs, vs + D, c.v_chunks + (bh * c.N + ch) * D);
    }
  }
}

template <class Isa>
SPARQ_AI void fill_level(const FillJob& j, int64_t b, int64_t e) {
  switch (j.p->dtype) {
    case DType::f16: return fill_items<Isa, f16_t>(j, b, e);
    case DType::bf16: return fill_items<Isa, bf16_t>(j, b, e);
    default: return fill_items<Isa, float>(j, b, e);
  }
}
template <class Isa>
SPARQ_AI void step_level(const StepJob& j, int64_t b, int64_t e, float* s) {
  switch (j.p->dtype) {
    case DType::f16: return step_items<Isa, f16_t>(j, b, e, s);
    case DType::bf16: return step_items<Isa, bf16_t>(j, b, e, s);
    default: return step_items<Isa, float>(j, b, e, s);
  }
}

#if SPARQ_ATTN_HAVE_LEVELS
SPARQ_ATTN_TARGET_V4 void fill_v4(const FillJob& j, int64_t b, int64_t e) { fill_level<attn_cpu::IsaV4>(j, b, e); }
SPARQ_ATTN_TARGET_V3 void fill_v3(const FillJob& j, int64_t b, int64_t e) { fill_level<attn_cpu::IsaV3>(j, b, e); }
SPARQ_ATTN_TARGET_V4 void step_v4(const StepJob& j, int64_t b, int64_t e, float* s) { step_level<attn_cpu::IsaV4>(j, b, e, s); }
SPARQ_ATTN_TARGET_V3 void step_v3(const StepJob& j, int64_t b, int64_t e, float* s) { step_level<attn_cpu::IsaV3>(j, b, e, s); }
#endif
void fill_base(const FillJob& j, int64_t b, int64_t e) { fill_level<attn_cpu::IsaBaseline>(j, b, e); }
void step_base(const StepJob& j, int64_t b, int64_t e, float* s) { step_level<attn_cpu::IsaBaseline>(j, b, e, s); }

Status check_cache(const RatCache& c) {
  if (c.D > kRatMaxHeadDim || c.D % 2 != 0)
    return Status(Code::unsupported, "head dim D = " + std::to_string(c.D) + " is not supported on the CPU");
  if (c.L < 1 || c.N < 0) return Status(Code::invalid_arg_value, "bad chunk size or capacity");
  return Status::OK();
}

}  // namespace

Status rat_fill_cpu(const RatFillParams& p, ThreadPool& pool) {
  const RatCache& c = p.cache;
  SPARQ_RETURN_IF_ERROR(check_cache(c));
  if (p.Gk < 1 || c.H % p.Gk != 0) return Status(Code::invalid_arg_value, "bad key groups");
  const int64_t cap = std::min(p.T, c.N * c.L);
  for (int64_t b = 0; b < c.B; ++b)
    if (p.prompt_lengths[b] < 0 || p.prompt_lengths[b] > cap)
      return Status(Code::invalid_arg_value, device_error_message(kDeviceErrorLengthOutOfRange));
  rat_cpu::RopeTable rope;
  if (!rope.build(c.rope_base, c.D, std::max<int64_t>(c.N, 1))) return Status(Code::oom, "out of host memory for the RoPE table");
  const FillJob job{&p, &rope};
  const attn_cpu::CpuLevel level = attn_cpu::cpu_level();
  pool.parallel_for(c.B * c.H, 1, [&](int64_t begin, int64_t end) {
#if SPARQ_ATTN_HAVE_LEVELS
    if (level == attn_cpu::CpuLevel::v4) return fill_v4(job, begin, end);
    if (level == attn_cpu::CpuLevel::v3) return fill_v3(job, begin, end);
#endif
    fill_base(job, begin, end);
  });
  for (int64_t b = 0; b < c.B; ++b) c.lengths[b] = p.prompt_lengths[b];
  return Status::OK();
}

Status rat_step_cpu(const RatStepParams& p, ThreadPool& pool) {
  const RatCache& c = p.cache;
  SPARQ_RETURN_IF_ERROR(check_cache(c));
  if (p.Gq < 1 || p.Gk < 1 || c.H % p.Gq != 0 || c.H % p.Gk != 0) return Status(Code::invalid_arg_value, "bad groups");
  for (int64_t b = 0; b < c.B; ++b)
    if (c.lengths[b] < 0 || c.lengths[b] >= c.N * c.L)
      return Status(Code::invalid_arg_value, device_error_message(kDeviceErrorLengthOutOfRange));
  int64_t most = 0;  // the longest sequence's chunk count: the largest score buffer a row needs
  std::vector<int64_t> chunk;  // the chunk index of each sequence's token: its InterRoPE position
  try {
    chunk.resize(static_cast<size_t>(c.B));
  } catch (const std::bad_alloc&) {
    return Status(Code::oom, "out of host memory for the decode step");
  }
  for (int64_t b = 0; b < c.B; ++b) {
    chunk[b] = c.lengths[b] / c.L;
    most = std::max<int64_t>(most, chunk[b]);
  }
  rat_cpu::RopeTable rope;
  if (!rope.build_for(c.rope_base, c.D, chunk)) return Status(Code::oom, "out of host memory for the RoPE table");
  const StepJob job{&p, &rope};
  const attn_cpu::CpuLevel level = attn_cpu::cpu_level();
  std::atomic<bool> out_of_memory{false};
  pool.parallel_for(c.B * c.H, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, (most + 1) * c.D)), [&](int64_t begin, int64_t end) {
    std::vector<float> scores;
    try {
      scores.resize(static_cast<size_t>(most + 1));
    } catch (const std::bad_alloc&) {
      out_of_memory = true;
      return;
    }
#if SPARQ_ATTN_HAVE_LEVELS
    if (level == attn_cpu::CpuLevel::v4) return step_v4(job, begin, end, scores.data());
    if (level == attn_cpu::CpuLevel::v3) return step_v3(job, begin, end, scores.data());
#endif
    step_base(job, begin, end, scores.data());
  });
  if (out_of_memory) return Status(Code::oom, "out of host memory for the decode scores");
  for (int64_t b = 0; b < c.B; ++b) c.lengths[b] += 1;
  return Status::OK();
}

}  // namespace sparq
