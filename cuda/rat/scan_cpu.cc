// rat_scan_cpu (rat.h): one work item per (batch, head, chunk), a sequential loop over the chunk's
// tokens with the float32 state of all D channels vectorised. Memory-bound: each input row is read
// once, each output row written once.
#include <algorithm>
#include <string>

#include "rat.h"
#include "rat_cpu.h"

namespace sparq {
namespace {

template <class Isa, typename T>
SPARQ_AI void scan_items(const RatScanParams& p, int64_t begin, int64_t end) {
  const int64_t D = p.D, L = p.L, T_ = p.T, Nc = (p.T + p.L - 1) / p.L;
  alignas(64) float sv[kRatMaxHeadDim], sk[kRatMaxHeadDim], x[kRatMaxHeadDim], z[kRatMaxHeadDim];
  for (int64_t item = begin; item < end; ++item) {
    const int64_t c = item % Nc, bh = item / Nc, h = bh % p.H, b = bh / p.H;
    const int64_t t0 = c * L, t1 = std::min(T_, t0 + L);
    const int64_t row = bh * T_;                               // [b, h] of v, gate and the outputs
    const int64_t krow = (b * p.Gk + h % p.Gk) * T_;           // [b, h % Gk] of k
    const float* bias = p.gate_bias ? p.gate_bias + h * D : nullptr;
    for (int64_t t = t0; t < t1; ++t) {
      rat_cpu::load_f32<Isa>(static_cast<const T*>(p.gate) + (row + t) * D, z, D);
      rat_cpu::gate_row(z, bias, D);
      rat_cpu::load_f32<Isa>(static_cast<const T*>(p.v) + (row + t) * D, x, D);
      rat_cpu::state_step(sv, x, z, t == t0, D);
      rat_cpu::load_f32<Isa>(static_cast<const T*>(p.k) + (krow + t) * D, x, D);
      rat_cpu::state_step(sk, x, z, t == t0, D);
      rat_cpu::store_f32<Isa>(sv, static_cast<T*>(p.v_out) + (row + t) * D, D);
      rat_cpu::store_f32<Isa>(sk, static_cast<T*>(p.k_out) + (row + t) * D, D);
    }
    rat_cpu::store_f32<Isa>(sv, static_cast<T*>(p.v_final) + (bh * Nc + c) * D, D);
    rat_cpu::store_f32<Isa>(sk, static_cast<T*>(p.k_final) + (bh * Nc + c) * D, D);
  }
}

template <class Isa>
SPARQ_AI void scan_level(const RatScanParams& p, int64_t begin, int64_t end) {
  switch (p.dtype) {
    case DType::f16: return scan_items<Isa, f16_t>(p, begin, end);
    case DType::bf16: return scan_items<Isa, bf16_t>(p, begin, end);
    default: return scan_items<Isa, float>(p, begin, end);
  }
}

#if SPARQ_ATTN_HAVE_LEVELS
SPARQ_ATTN_TARGET_V4 void scan_v4(const RatScanParams& p, int64_t b, int64_t e) { scan_level<attn_cpu::IsaV4>(p, b, e); }
SPARQ_ATTN_TARGET_V3 void scan_v3(const RatScanParams& p, int64_t b, int64_t e) { scan_level<attn_cpu::IsaV3>(p, b, e); }
#endif
void scan_baseline(const RatScanParams& p, int64_t b, int64_t e) { scan_level<attn_cpu::IsaBaseline>(p, b, e); }

}  // namespace

Status rat_scan_cpu(const RatScanParams& p, ThreadPool& pool) {
  if (p.D > kRatMaxHeadDim) return Status(Code::unsupported, "head dim D = " + std::to_string(p.D) + " is not supported on the CPU");
  if (p.L < 1 || p.Gk < 1 || p.H % p.Gk != 0) return Status(Code::invalid_arg_value, "bad chunk size or key groups");
  if (p.B == 0 || p.H == 0 || p.T == 0 || p.D == 0) return Status::OK();
  const int64_t items = p.B * p.H * ((p.T + p.L - 1) / p.L);
  const attn_cpu::CpuLevel level = attn_cpu::cpu_level();
  // About 32K elements per chunk of items keeps the pool's overhead small.
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(p.L * p.D, 1));
  pool.parallel_for(items, grain, [&](int64_t begin, int64_t end) {
#if SPARQ_ATTN_HAVE_LEVELS
    if (level == attn_cpu::CpuLevel::v4) return scan_v4(p, begin, end);
    if (level == attn_cpu::CpuLevel::v3) return scan_v3(p, begin, end);
#endif
    scan_baseline(p, begin, end);
  });
  return Status::OK();
}

}  // namespace sparq
