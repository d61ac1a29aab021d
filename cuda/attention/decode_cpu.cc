// One decode step on the CPU (flash-decoding): work items are (batch, KV head, split of the cache),
// with the G query heads of the KV head as the rows of one tile (attention_cpu_tile.cc). With
// more than one split, each item writes a partial state (normalised output + LSE) and a second
// pass merges the splits of each query head by LSE.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <new>
#include <string>
#include <vector>

#include "../core/device_errors.h"
#include "attention.h"
#include "attention_cpu_tile.h"

namespace sparq {

namespace {

using attn_cpu::kTileMaxRows;

// Splits when the caller leaves the choice: enough items for the pool, and at least ~512 keys each.
int64_t auto_splits(int64_t items_per_split, int64_t Tmax, int threads) {
  const int64_t want = (4 * threads + items_per_split - 1) / items_per_split;
  return std::max<int64_t>(1, std::min(want, Tmax / 512));
}

// Merges the `splits` partial states of one query head: rows part[s * D, (s + 1) * D), lse[s].
template <typename T>
void merge_splits(const float* part, const float* lse, int64_t splits, int64_t D, T* out, float* out_lse, float* acc) {
  float m = attn_cpu::kNegInf;
  for (int64_t s = 0; s < splits; ++s) m = (lse[s] > m || lse[s] != lse[s]) ? lse[s] : m;  // NaN wins
  if (m == attn_cpu::kNegInf) {
    for (int64_t d = 0; d < D; ++d) out[d] = Convert<T>::from(0.0f);
    if (out_lse) *out_lse = attn_cpu::kNegInf;
    return;
  }
  std::fill(acc, acc + D, 0.0f);
  float total = 0.0f;
  for (int64_t s = 0; s < splits; ++s) {
    const float w = std::exp(lse[s] - m);
    if (w == 0.0f) continue;  // an empty split (lse = -inf) weighs nothing
    total += w;
    for (int64_t d = 0; d < D; ++d) acc[d] += w * part[s * D + d];
  }
  const float inv = 1.0f / total;
  for (int64_t d = 0; d < D; ++d) out[d] = Convert<T>::from(acc[d] * inv);
  if (out_lse) *out_lse = m + std::log(total);
}

}  // namespace

Status decode_cpu(const DecodeParams& p, ThreadPool& pool) {
  if (p.D < 0 || p.D > kCpuMaxHeadDim)
    return Status(Code::unsupported, "head dim D = " + std::to_string(p.D) + " is not supported on the CPU");
  if (p.Hk <= 0 || p.Hq % p.Hk != 0)
    return Status(Code::shape, "Hq = " + std::to_string(p.Hq) + " is not a multiple of Hk = " + std::to_string(p.Hk));
  if (p.B > 0 && !p.lengths) return Status(Code::internal, "decode_cpu: lengths is null");
  for (int64_t b = 0; b < p.B; ++b)
    if (p.lengths[b] < 0 || p.lengths[b] > p.Tmax)
      return Status(Code::invalid_arg_value, device_error_message(kDeviceErrorLengthOutOfRange));
  if (p.B == 0 || p.Hq == 0) return Status::OK();

  const int64_t G = p.Hq / p.Hk;
  const int64_t gh = std::min<int64_t>(G, kTileMaxRows);
  const int64_t head_chunks = (G + gh - 1) / gh;
  const int64_t groups = p.B * p.Hk * head_chunks;
  int64_t splits = p.num_splits > 0 ? p.num_splits : auto_splits(groups, p.Tmax, pool.size());
  splits = std::max<int64_t>(1, std::min(splits, p.Tmax));
  // Partial states take B * Hq * splits * (D + 1) floats: keep them under 256 MiB.
  while (splits > 1 && p.B * p.Hq * splits * (p.D + 1) > (int64_t{64} << 20)) splits /= 2;

  std::vector<float> part, part_lse;
  if (splits > 1) {
    try {
      part.resize(static_cast<size_t>(p.B * p.Hq * splits * p.D));
      part_lse.resize(static_cast<size_t>(p.B * p.Hq * splits));
    } catch (const std::bad_alloc&) {
      return Status(Code::oom, "out of host memory for the partial states of " + std::to_string(splits) + " splits");
    }
  }
  const size_t es = dtype_size(p.dtype);
  const attn_cpu::CpuLevel level = attn_cpu::cpu_level();
  std::atomic<bool> out_of_memory{false};

  pool.parallel_for(groups * splits, 1, [&](int64_t begin, int64_t end) {
    attn_cpu::TileBuffers* buf = attn_cpu::tile_buffers();
    if (!buf) {
      out_of_memory = true;
      return;
    }
    for (int64_t item = begin; item < end; ++item) {
      const int64_t split = item % splits;
      int64_t rest = item / splits;
      const int64_t chunk = rest % head_chunks;
      rest /= head_chunks;
      const int64_t kvh = rest % p.Hk, b = rest / p.Hk;
      const int64_t h0 = kvh * G + chunk * gh;
      const int64_t L = p.lengths[b], per_split = (L + splits - 1) / splits;
      int64_t lo = std::min(L, split * per_split), hi = std::min(L, lo + per_split);

      attn_cpu::TileJob job;
      job.heads = static_cast<int>(std::min(gh, G - chunk * gh));
      job.positions = 1;
      job.q = static_cast<const char*>(p.q) + (b * p.Hq + h0) * p.D * es;
      job.q_head_stride = p.D;
      job.k = static_cast<const char*>(p.k_cache) + (b * p.Hk + kvh) * p.Tmax * p.D * es;
      job.v = static_cast<const char*>(p.v_cache) + (b * p.Hk + kvh) * p.Tmax * p.D * es;
      job.dtype = p.dtype;
      job.D = p.D;
      job.scale = p.scale;
      job.lo = &lo;
      job.hi = &hi;
      job.level = level;
      attn_cpu::attend_tile(job, *buf);

      attn_cpu::TileOut dst;
      if (splits == 1) {
        dst.out = static_cast<char*>(p.out) + (b * p.Hq + h0) * p.D * es;
        dst.out_dtype = p.dtype;
        dst.out_head_stride = p.D;
        dst.lse = p.lse ? p.lse + b * p.Hq + h0 : nullptr;
        dst.lse_head_stride = 1;
      } else {
        const int64_t row0 = (b * p.Hq + h0) * splits + split;
        dst.out = part.data() + row0 * p.D;
        dst.out_dtype = DType::f32;
        dst.out_head_stride = splits * p.D;
        dst.lse = part_lse.data() + row0;
        dst.lse_head_stride = splits;
      }
      attn_cpu::finish_tile(job, *buf, dst);
    }
  });
  if (out_of_memory) return Status(Code::oom, "out of host memory for the attention tile buffers");
  if (splits == 1) return Status::OK();

  pool.parallel_for(p.B * p.Hq, 16, [&](int64_t begin, int64_t end) {
    alignas(64) float acc[kCpuMaxHeadDim];
    for (int64_t row = begin; row < end; ++row) {
      const float* pr = part.data() + row * splits * p.D;
      const float* pl = part_lse.data() + row * splits;
      float* lse = p.lse ? p.lse + row : nullptr;
      switch (p.dtype) {
        case DType::f16: merge_splits(pr, pl, splits, p.D, static_cast<f16_t*>(p.out) + row * p.D, lse, acc); break;
        case DType::bf16: merge_splits(pr, pl, splits, p.D, static_cast<bf16_t*>(p.out) + row * p.D, lse, acc); break;
        default: merge_splits(pr, pl, splits, p.D, static_cast<float*>(p.out) + row * p.D, lse, acc); break;
      }
    }
  });
  return Status::OK();
}

}  // namespace sparq
