// Dense attention (prefill) on the CPU: FlashAttention-style tiles over (batch, KV head, query
// tile); the G = Hq / Hk query heads of a KV head are rows of the same tile, so each K/V block is
// read (and converted) once for all of them. The tile itself is in attention_cpu_tile.cc.
#include <algorithm>
#include <atomic>
#include <string>

#include "../core/device_errors.h"
#include "attention.h"
#include "attention_cpu_tile.h"

namespace sparq {

namespace {

using attn_cpu::kTileMaxRows;

// Keys [lo, hi) seen by the query at absolute position pos of a sequence of L keys (attention.h).
void visible_keys(const SdpaParams& p, int64_t L, int64_t pos, int64_t* lo, int64_t* hi) {
  int64_t a = 0, b = L;
  if (p.causal) b = std::min(b, pos + 1);
  if (p.window_left >= 0) a = std::max(a, pos - p.window_left);
  if (p.window_right >= 0) b = std::min(b, pos + p.window_right + 1);
  *lo = a;
  *hi = std::max(a, b);
}

}  // namespace

Status sdpa_cpu(const SdpaParams& p, ThreadPool& pool) {
  if (p.D < 0 || p.D > kCpuMaxHeadDim)
    return Status(Code::unsupported, "head dim D = " + std::to_string(p.D) + " is not supported on the CPU");
  if (p.Hk <= 0 || p.Hq % p.Hk != 0)
    return Status(Code::shape, "Hq = " + std::to_string(p.Hq) + " is not a multiple of Hk = " + std::to_string(p.Hk));
  if (p.kv_lengths)
    for (int64_t b = 0; b < p.B; ++b)
      if (p.kv_lengths[b] < 0 || p.kv_lengths[b] > p.Tk)
        return Status(Code::invalid_arg_value, device_error_message(kDeviceErrorLengthOutOfRange));
  if (p.B == 0 || p.Hq == 0 || p.Tq == 0) return Status::OK();

  // A tile holds `gh` heads of a KV head's group (all G when G <= kTileMaxRows) x `tq` positions.
  const int64_t G = p.Hq / p.Hk;
  const int64_t gh = std::min<int64_t>(G, kTileMaxRows);
  const int64_t head_chunks = (G + gh - 1) / gh;
  const int64_t groups = p.B * p.Hk * head_chunks;
  int64_t tq = std::min<int64_t>(p.Tq, kTileMaxRows / gh);
  // Few tiles for the threads: smaller query tiles, as long as they keep >= 16 rows.
  const int64_t want = 4 * static_cast<int64_t>(pool.size());
  while (groups * ((p.Tq + tq - 1) / tq) < want && tq > 1 && (tq / 2) * gh >= 16) tq /= 2;
  const int64_t tiles = (p.Tq + tq - 1) / tq;
  const size_t es = dtype_size(p.dtype);
  const attn_cpu::CpuLevel level = attn_cpu::cpu_level();
  std::atomic<bool> out_of_memory{false};

  pool.parallel_for(groups * tiles, 1, [&](int64_t begin, int64_t end) {
    attn_cpu::TileBuffers* buf = attn_cpu::tile_buffers();
    if (!buf) {
      out_of_memory = true;
      return;
    }
    int64_t lo[kTileMaxRows], hi[kTileMaxRows];
    for (int64_t item = begin; item < end; ++item) {
      // Last query tiles first: under a causal mask they are the longest, so the pool ends balanced.
      const int64_t tile = tiles - 1 - item / groups;
      int64_t rest = item % groups;
      const int64_t chunk = rest % head_chunks;
      rest /= head_chunks;
      const int64_t kvh = rest % p.Hk, b = rest / p.Hk;
      const int64_t h0 = kvh * G + chunk * gh, t0 = tile * tq;
      const int64_t L = p.kv_lengths ? p.kv_lengths[b] : p.Tk;

      attn_cpu::TileJob job;
      job.heads = static_cast<int>(std::min(gh, G - chunk * gh));
      job.positions = static_cast<int>(std::min(tq, p.Tq - t0));
      for (int t = 0; t < job.positions; ++t) visible_keys(p, L, L - p.Tq + t0 + t, &lo[t], &hi[t]);
      const int64_t q_off = ((b * p.Hq + h0) * p.Tq + t0) * p.D;
      job.q = static_cast<const char*>(p.q) + q_off * es;
      job.q_head_stride = p.Tq * p.D;
      job.q_pos_stride = p.D;
      job.k = static_cast<const char*>(p.k) + (b * p.Hk + kvh) * p.Tk * p.D * es;
      job.v = static_cast<const char*>(p.v) + (b * p.Hk + kvh) * p.Tk * p.D * es;
      job.dtype = p.dtype;
      job.D = p.D;
      job.scale = p.scale;
      job.lo = lo;
      job.hi = hi;
      job.level = level;
      attn_cpu::attend_tile(job, *buf);

      attn_cpu::TileOut dst;
      dst.out = static_cast<char*>(p.out) + q_off * es;
      dst.out_dtype = p.dtype;
      dst.out_head_stride = p.Tq * p.D;
      dst.out_pos_stride = p.D;
      if (p.lse) {
        dst.lse = p.lse + (b * p.Hq + h0) * p.Tq + t0;
        dst.lse_head_stride = p.Tq;
        dst.lse_pos_stride = 1;
      }
      attn_cpu::finish_tile(job, *buf, dst);
    }
  });
  if (out_of_memory) return Status(Code::oom, "out of host memory for the attention tile buffers");
  return Status::OK();
}

}  // namespace sparq
