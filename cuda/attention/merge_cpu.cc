// Merge of attention states by LSE on the CPU (attention.h, MergeParams): per row, the weights
// w_i = exp(lse_i - max lse) and then out = sum_i w_i out_i / sum_i w_i, over column chunks so
// that any D works without heap memory. Accumulation in float32.
#include <algorithm>
#include <cmath>

#include "attention.h"
#include "attention_cpu_kernels.h"

namespace sparq {

namespace {

using attn_cpu::kNegInf;

constexpr int64_t kChunk = 256;  // columns per pass

template <class Isa, typename T>
SPARQ_AI void merge_rows(const MergeParams& p, int64_t begin, int64_t end) {
  const int64_t n = static_cast<int64_t>(p.outs.size()), D = p.D;
  alignas(64) float acc[kChunk], x[kChunk];
  for (int64_t row = begin; row < end; ++row) {
    float m = kNegInf;
    for (int64_t i = 0; i < n; ++i) {
      const float li = p.lses[i][row];
      m = (li > m || li != li) ? li : m;  // NaN wins: it must reach the output
    }
    T* out = static_cast<T*>(p.out) + row * D;
    if (m == kNegInf) {  // no part saw a key
      std::fill(acc, acc + std::min(D, kChunk), 0.0f);
      for (int64_t c = 0; c < D; c += kChunk) attn_cpu::store_f32<Isa>(acc, out + c, std::min(kChunk, D - c));
      if (p.lse) p.lse[row] = kNegInf;
      continue;
    }
    float total = 0.0f;
    for (int64_t i = 0; i < n; ++i) total += std::exp(p.lses[i][row] - m);
    const float inv = 1.0f / total;
    for (int64_t c = 0; c < D; c += kChunk) {
      const int64_t w = std::min(kChunk, D - c);
      std::fill(acc, acc + w, 0.0f);
      for (int64_t i = 0; i < n; ++i) {
        const float wi = std::exp(p.lses[i][row] - m);
        if (wi == 0.0f) continue;  // lse = -inf: the part weighs nothing (whatever its out holds)
        attn_cpu::load_f32<Isa>(static_cast<const T*>(p.outs[i]) + row * D + c, x, w);
        for (int64_t d = 0; d < w; ++d) acc[d] += wi * x[d];
      }
      attn_cpu::store_scaled<Isa>(acc, inv, out + c, w);
    }
    if (p.lse) p.lse[row] = m + std::log(total);
  }
}

template <class Isa>
SPARQ_AI void merge_level(const MergeParams& p, int64_t begin, int64_t end) {
  switch (p.dtype) {
    case DType::f16: merge_rows<Isa, f16_t>(p, begin, end); break;
    case DType::bf16: merge_rows<Isa, bf16_t>(p, begin, end); break;
    default: merge_rows<Isa, float>(p, begin, end); break;
  }
}

#if SPARQ_ATTN_HAVE_LEVELS
SPARQ_ATTN_TARGET_V4 void merge_v4(const MergeParams& p, int64_t b, int64_t e) { merge_level<attn_cpu::IsaV4>(p, b, e); }
SPARQ_ATTN_TARGET_V3 void merge_v3(const MergeParams& p, int64_t b, int64_t e) { merge_level<attn_cpu::IsaV3>(p, b, e); }
#endif
void merge_baseline(const MergeParams& p, int64_t b, int64_t e) { merge_level<attn_cpu::IsaBaseline>(p, b, e); }

}  // namespace

Status merge_cpu(const MergeParams& p, ThreadPool& pool) {
  if (p.rows <= 0 || p.outs.empty()) return Status::OK();
  const attn_cpu::CpuLevel level = attn_cpu::cpu_level();
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 14) / (std::max<int64_t>(p.D, 1) * static_cast<int64_t>(p.outs.size())));
  pool.parallel_for(p.rows, grain, [&](int64_t begin, int64_t end) {
#if SPARQ_ATTN_HAVE_LEVELS
    if (level == attn_cpu::CpuLevel::v4) return merge_v4(p, begin, end);
    if (level == attn_cpu::CpuLevel::v3) return merge_v3(p, begin, end);
#endif
    merge_baseline(p, begin, end);
  });
  return Status::OK();
}

}  // namespace sparq
