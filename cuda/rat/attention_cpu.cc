// rat_attention_cpu (rat.h). Two passes:
// 1. Compaction: the final k~ of every full chunk, rotated by its chunk index, and its v~, into
//    float32 [B, H, T / L, D] (T / L rows per head: small next to the inputs).
// 2. One dense-attention tile (cuda/attention/attention_cpu_tile.h) per (batch, head, query tile):
//    row t sees compacted keys [0, c(t)), then the self term (R_c q_t . R_c k~_t, v~_t) is folded
//    into the tile's online-softmax state before the tile is finished. Queries are rotated into a
//    float32 row buffer first. The keys per query are T / L instead of T: a (T x T / L) attention.
#include <algorithm>
#include <atomic>
#include <memory>
#include <string>

#include "../attention/attention_cpu_tile.h"
#include "rat.h"
#include "rat_cpu.h"

namespace sparq {
namespace {

using attn_cpu::kTileMaxRows;

struct Job {
  const RatAttentionParams* p;
  const rat_cpu::RopeTable* rope;
  float* kc;  // [B, H, Nf, D]
  float* vc;
  int64_t Nf;
};

template <class Isa, typename T>
SPARQ_AI void compact_items(const Job& j, int64_t begin, int64_t end) {
  const RatAttentionParams& p = *j.p;
  const int64_t D = p.D;
  alignas(64) float row[kRatMaxHeadDim];
  for (int64_t item = begin; item < end; ++item) {  // item = (b * H + h) * Nf + chunk
    const int64_t c = item % j.Nf, bh = item / j.Nf;
    const int64_t src = (bh * p.T + (c + 1) * p.L - 1) * D;
    rat_cpu::rotate(*j.rope, c, rat_cpu::row_f32<Isa>(static_cast<const T*>(p.k) + src, row, D), j.kc + item * D, D);
    rat_cpu::round_row<T>(j.kc + item * D, D);
    rat_cpu::load_f32<Isa>(static_cast<const T*>(p.v) + src, j.vc + item * D, D);
  }
}

// Rotated queries of positions [t0, t0 + n) of head h into qbuf [n][D]; then, after the tile ran,
// the self terms.
template <class Isa, typename T>
SPARQ_AI void load_queries(const Job& j, int64_t b, int64_t h, int64_t t0, int64_t n, float* qbuf) {
  const RatAttentionParams& p = *j.p;
  const int64_t D = p.D;
  alignas(64) float row[kRatMaxHeadDim];
  const T* q = static_cast<const T*>(p.q) + ((b * p.Gq + h % p.Gq) * p.T + t0) * D;
  for (int64_t i = 0; i < n; ++i) {
    rat_cpu::rotate(*j.rope, (t0 + i) / p.L, rat_cpu::row_f32<Isa>(q + i * D, row, D), qbuf + i * D, D);
    rat_cpu::round_row<T>(qbuf + i * D, D);
  }
}

template <class Isa, typename T>
SPARQ_AI void add_self_terms(const Job& j, int64_t b, int64_t h, int64_t t0, int64_t n, const float* qbuf,
                             attn_cpu::TileBuffers& buf) {
  const RatAttentionParams& p = *j.p;
  const int64_t D = p.D;
  alignas(64) float row[kRatMaxHeadDim], kr[kRatMaxHeadDim];
  const int64_t off = ((b * p.H + h) * p.T + t0) * D;
  for (int64_t i = 0; i < n; ++i) {
    rat_cpu::rotate(*j.rope, (t0 + i) / p.L, rat_cpu::row_f32<Isa>(static_cast<const T*>(p.k) + off + i * D, row, D), kr, D);
    rat_cpu::round_row<T>(kr, D);
    const float a = p.scale * rat_cpu::dot(qbuf + i * D, kr, D);
    const float* v = rat_cpu::row_f32<Isa>(static_cast<const T*>(p.v) + off + i * D, row, D);
    rat_cpu::softmax_add(a, v, buf.m[i], buf.l[i], buf.o + i * D, D);
  }
}

template <class Isa>
SPARQ_AI void compact_level(const Job& j, int64_t b, int64_t e) {
  switch (j.p->dtype) {
    case DType::f16: return compact_items<Isa, f16_t>(j, b, e);
    case DType::bf16: return compact_items<Isa, bf16_t>(j, b, e);
    default: return compact_items<Isa, float>(j, b, e);
  }
}
template <class Isa>
SPARQ_AI void queries_level(const Job& j, int64_t b, int64_t h, int64_t t0, int64_t n, float* qbuf) {
  switch (j.p->dtype) {
    case DType::f16: return load_queries<Isa, f16_t>(j, b, h, t0, n, qbuf);
    case DType::bf16: return load_queries<Isa, bf16_t>(j, b, h, t0, n, qbuf);
    default: return load_queries<Isa, float>(j, b, h, t0, n, qbuf);
  }
}
template <class Isa>
SPARQ_AI void self_level(const Job& j, int64_t b, int64_t h, int64_t t0, int64_t n, const float* qbuf,
                         attn_cpu::TileBuffers& buf) {
  switch (j.p->dtype) {
    case DType::f16: return add_self_terms<Isa, f16_t>(j, b, h, t0, n, qbuf, buf);
    case DType::bf16: return add_self_terms<Isa, bf16_t>(j, b, h, t0, n, qbuf, buf);
    default: return add_self_terms<Isa, float>(j, b, h, t0, n, qbuf, buf);
  }
}

#if SPARQ_ATTN_HAVE_LEVELS
SPARQ_ATTN_TARGET_V4 void compact_v4(const Job& j, int64_t b, int64_t e) { compact_level<attn_cpu::IsaV4>(j, b, e); }
SPARQ_ATTN_TARGET_V3 void compact_v3(const Job& j, int64_t b, int64_t e) { compact_level<attn_cpu::IsaV3>(j, b, e); }
SPARQ_ATTN_TARGET_V4 void queries_v4(const Job& j, int64_t b, int64_t h, int64_t t0, int64_t n, float* q) {
  queries_level<attn_cpu::IsaV4>(j, b, h, t0, n, q);
}
SPARQ_ATTN_TARGET_V3 void queries_v3(const Job& j, int64_t b, int64_t h, int64_t t0, int64_t n, float* q) {
  queries_level<attn_cpu::IsaV3>(j, b, h, t0, n, q);
}
SPARQ_ATTN_TARGET_V4 void self_v4(const Job& j, int64_t b, int64_t h, int64_t t0, int64_t n, const float* q,
                                  attn_cpu::TileBuffers& buf) {
  self_level<attn_cpu::IsaV4>(j, b, h, t0, n, q, buf);
}
SPARQ_ATTN_TARGET_V3 void self_v3(const Job& j, int64_t b, int64_t h, int64_t t0, int64_t n, const float* q,
                                  attn_cpu::TileBuffers& buf) {
  self_level<attn_cpu::IsaV3>(j, b, h, t0, n, q, buf);
}
#endif
void compact_base(const Job& j, int64_t b, int64_t e) { compact_level<attn_cpu::IsaBaseline>(j, b, e); }
void queries_base(const Job& j, int64_t b, int64_t h, int64_t t0, int64_t n, float* q) {
  queries_level<attn_cpu::IsaBaseline>(j, b, h, t0, n, q);
}
void self_base(const Job& j, int64_t b, int64_t h, int64_t t0, int64_t n, const float* q, attn_cpu::TileBuffers& buf) {
  self_level<attn_cpu::IsaBaseline>(j, b, h, t0, n, q, buf);
}

}  // namespace

Status rat_attention_cpu(const RatAttentionParams& p, ThreadPool& pool) {
  if (p.D > kRatMaxHeadDim || p.D % 2 != 0)
    return Status(Code::unsupported, "head dim D = " + std::to_string(p.D) + " is not supported on the CPU");
  if (p.L < 1 || p.Gq < 1 || p.H % p.Gq != 0) return Status(Code::invalid_arg_value, "bad chunk size or query groups");
  if (p.B == 0 || p.H == 0 || p.T == 0) return Status::OK();
  const int64_t D = p.D, Nf = p.T / p.L, Nc = (p.T + p.L - 1) / p.L;
  const attn_cpu::CpuLevel level = attn_cpu::cpu_level();
  using attn_cpu::CpuLevel;

  rat_cpu::RopeTable rope;
  // Uninitialised on purpose: every element is written by the compaction before it is read.
  const size_t chunk_floats = static_cast<size_t>(p.B * p.H * Nf * D);
  std::unique_ptr<float[]> kc(new (std::nothrow) float[chunk_floats + 1]), vc(new (std::nothrow) float[chunk_floats + 1]);
  if (!kc || !vc) return Status(Code::oom, "out of host memory for the compacted chunk states");
  if (!rope.build(p.rope_base, D, Nc)) return Status(Code::oom, "out of host memory for the RoPE table");
  const Job job{&p, &rope, kc.get(), vc.get(), Nf};

  if (Nf > 0 && D > 0)
    pool.parallel_for(p.B * p.H * Nf, std::max<int64_t>(1, 4096 / std::max<int64_t>(D, 1)), [&](int64_t begin, int64_t end) {
#if SPARQ_ATTN_HAVE_LEVELS
      if (level == CpuLevel::v4) return compact_v4(job, begin, end);
      if (level == CpuLevel::v3) return compact_v3(job, begin, end);
#endif
      compact_base(job, begin, end);
    });

  // Query tiles of tq positions of one head; smaller tiles when there are few for the threads.
  const int64_t heads = p.B * p.H;
  int64_t tq = std::min<int64_t>(p.T, kTileMaxRows);
  const int64_t want = 4 * static_cast<int64_t>(pool.size());
  while (heads * ((p.T + tq - 1) / tq) < want && tq > 16) tq /= 2;
  const int64_t tiles = (p.T + tq - 1) / tq;
  std::atomic<bool> out_of_memory{false};

  pool.parallel_for(heads * tiles, 1, [&](int64_t begin, int64_t end) {
    attn_cpu::TileBuffers* buf = attn_cpu::tile_buffers();
    std::unique_ptr<float[]> qbuf(new (std::nothrow) float[kTileMaxRows * kRatMaxHeadDim]);
    if (!buf || !qbuf) {
      out_of_memory = true;
      return;
    }
    int64_t lo[kTileMaxRows], hi[kTileMaxRows];
    for (int64_t item = begin; item < end; ++item) {
      // Last query tiles first: they see the most chunks, so the pool ends balanced.
      const int64_t tile = tiles - 1 - item / heads, bh = item % heads, b = bh / p.H, h = bh % p.H;
      const int64_t t0 = tile * tq, n = std::min(tq, p.T - t0);
#if SPARQ_ATTN_HAVE_LEVELS
      if (level == CpuLevel::v4) queries_v4(job, b, h, t0, n, qbuf.get());
      else if (level == CpuLevel::v3) queries_v3(job, b, h, t0, n, qbuf.get());
      else
#endif
        queries_base(job, b, h, t0, n, qbuf.get());
      for (int64_t i = 0; i < n; ++i) {
        lo[i] = 0;
        hi[i] = (t0 + i) / p.L;  // the chunks before this token's own
      }
      attn_cpu::TileJob tj;
      tj.q = qbuf.get();
      tj.q_head_stride = 0;
      tj.q_pos_stride = D;
      tj.heads = 1;
      tj.positions = static_cast<int>(n);
      tj.k = job.kc + bh * Nf * D;
      tj.v = job.vc + bh * Nf * D;
      tj.dtype = DType::f32;
      tj.D = D;
      tj.scale = p.scale;
      tj.lo = lo;
      tj.hi = hi;
      tj.level = level;
      attn_cpu::attend_tile(tj, *buf);
#if SPARQ_ATTN_HAVE_LEVELS
      if (level == CpuLevel::v4) self_v4(job, b, h, t0, n, qbuf.get(), *buf);
      else if (level == CpuLevel::v3) self_v3(job, b, h, t0, n, qbuf.get(), *buf);
      else
#endif
        self_base(job, b, h, t0, n, qbuf.get(), *buf);

      attn_cpu::TileOut dst;
      dst.out = static_cast<char*>(p.out) + (bh * p.T + t0) * D * dtype_size(p.dtype);
      dst.out_dtype = p.dtype;
      dst.out_head_stride = 0;
      dst.out_pos_stride = D;
      if (p.lse) {
        dst.lse = p.lse + bh * p.T + t0;
        dst.lse_pos_stride = 1;
      }
      tj.dtype = p.dtype;  // finish_tile converts to out_dtype; the job's dtype is only for the inputs
      attn_cpu::finish_tile(tj, *buf, dst);
    }
  });
  if (out_of_memory) return Status(Code::oom, "out of host memory for the attention tile buffers");
  return Status::OK();
}

}  // namespace sparq
