// Decode with fp32 FMAs: float32 on every arch, float16/bfloat16 on sm_75 and unaligned inputs.
// One block per (batch, KV head, GR query heads, split). A group of TPR lanes holds one key row
// (16-byte vectors, consecutive lanes on consecutive vectors); a warp covers 32 / TPR keys per
// step and runs two steps at a time so that four rows' loads are in flight per group. Each group
// keeps its own online-softmax state for the GR heads (scores reduced over the group with
// shuffles); groups merge by shuffles, warps through shared memory.
#include "decode_kernels.cuh"

namespace sparq {
namespace attn {
namespace {

template <typename T, int D>
struct SimtLayout {
  static constexpr int VE = 16 / static_cast<int>(sizeof(T));  // elements per 16-byte vector
  static constexpr int TPR = D / VE < 32 ? D / VE : 32;         // lanes per key row
  static constexpr int NV = D / (TPR * VE);                     // vectors per lane
  static constexpr int EPT = NV * VE;                           // elements per lane
  static constexpr int KPW = 32 / TPR;                          // keys per warp step
};

// Lane `tl` of a row group: element (v, e) of its slice is dim (v * TPR + tl) * VE + e.
template <typename T, int D>
__device__ __forceinline__ void load_slice(const T* row, bool ok, bool vec16, int tl, float (&f)[SimtLayout<T, D>::EPT]) {
  using Lt = SimtLayout<T, D>;
#pragma unroll
  for (int v = 0; v < Lt::NV; ++v) {
    const T* p = row + (v * Lt::TPR + tl) * Lt::VE;
    float* dst = f + v * Lt::VE;
    if (!ok) {
#pragma unroll
      for (int e = 0; e < Lt::VE; ++e) dst[e] = 0.0f;
    } else if (vec16) {
      const uint4 u = *reinterpret_cast<const uint4*>(p);
      if constexpr (std::is_same<T, float>::value) {
        dst[0] = __uint_as_float(u.x);
        dst[1] = __uint_as_float(u.y);
        dst[2] = __uint_as_float(u.z);
        dst[3] = __uint_as_float(u.w);
      } else {
        const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
        for (int e = 0; e < 8; ++e) dst[e] = to_f32(T{static_cast<uint16_t>(w[e >> 1] >> (16 * (e & 1)))});
      }
    } else {
#pragma unroll
      for (int e = 0; e < Lt::VE; ++e) dst[e] = to_f32(p[e]);
    }
  }
}

template <int TPR>
__device__ __forceinline__ float group_sum(float v) {
#pragma unroll
  for (int o = TPR / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

template <typename T, int D, int GR>
__global__ void __launch_bounds__(kDecodeThreads) decode_simt_kernel(const DecodeArgs a) {
  using Lt = SimtLayout<T, D>;
  constexpr int W = kDecodeWarps, NT = kDecodeThreads, TPR = Lt::TPR, VE = Lt::VE, NV = Lt::NV, EPT = Lt::EPT;
  __shared__ float sO[W][GR][D];
  __shared__ float sM[W][GR], sL[W][GR];
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, grp = lane / TPR, tl = lane % TPR;

  const DecodeBlock blk = decode_block(a, tid == 0);
  const int64_t row0 = blk.b * a.Hq + blk.head0;
  const T* qg = static_cast<const T*>(a.q) + row0 * D;
  float q[GR][EPT];
#pragma unroll
  for (int r = 0; r < GR; ++r)
#pragma unroll
    for (int v = 0; v < NV; ++v)
#pragma unroll
      for (int e = 0; e < VE; ++e)
        q[r][v * VE + e] = r < blk.nrows ? to_f32(qg[r * D + (v * TPR + tl) * VE + e]) * a.scale_log2 : 0.0f;

  float m[GR], l[GR], acc[GR][EPT];
#pragma unroll
  for (int r = 0; r < GR; ++r) {
    m[r] = kNegInf;
    l[r] = 0.0f;
#pragma unroll
    for (int e = 0; e < EPT; ++e) acc[r][e] = 0.0f;
  }

  const int64_t kv_off = (blk.b * a.Hk + blk.kvh) * a.Tmax * D;
  const T* kg = static_cast<const T*>(a.k) + kv_off;
  const T* vg = static_cast<const T*>(a.v) + kv_off;
  const int64_t step = W * Lt::KPW;  // keys per block step
  for (int64_t base = blk.begin + warp * Lt::KPW; base < blk.end; base += 2 * step) {
    const int64_t k0 = base + grp, k1 = base + step + grp;
    const bool ok0 = k0 < blk.end, ok1 = k1 < blk.end;
    float kf0[EPT], kf1[EPT], vf0[EPT], vf1[EPT];
    load_slice<T, D>(kg + k0 * D, ok0, a.vec16, tl, kf0);
    load_slice<T, D>(kg + k1 * D, ok1, a.vec16, tl, kf1);
    load_slice<T, D>(vg + k0 * D, ok0, a.vec16, tl, vf0);
    load_slice<T, D>(vg + k1 * D, ok1, a.vec16, tl, vf1);
#pragma unroll
    for (int r = 0; r < GR; ++r) {
      if (r >= blk.nrows) break;  // uniform over the block
      float s0 = 0.0f, s1 = 0.0f;
#pragma unroll
      for (int e = 0; e < EPT; ++e) {
        s0 = fmaf(q[r][e], kf0[e], s0);
        s1 = fmaf(q[r][e], kf1[e], s1);
      }
      s0 = group_sum<TPR>(s0);  // every lane shuffles; a missing key is masked after
      s1 = group_sum<TPR>(s1);
      s0 = ok0 ? s0 : kNegInf;
      s1 = ok1 ? s1 : kNegInf;
      const float m_new = fmaxf(m[r], fmaxf(s0, s1));
      const float off = softmax_offset(m_new);
      const float corr = exp2f(m[r] - off);
      const float p0 = exp2f(s0 - off), p1 = exp2f(s1 - off);
      m[r] = m_new;
      l[r] = l[r] * corr + p0 + p1;
#pragma unroll
      for (int e = 0; e < EPT; ++e) acc[r][e] = fmaf(p1, vf1[e], fmaf(p0, vf0[e], acc[r][e] * corr));
    }
  }

  // Merge the groups of the warp (butterfly: every group ends with the warp's state).
#pragma unroll
  for (int off = TPR; off < 32; off <<= 1)
#pragma unroll
    for (int r = 0; r < GR; ++r) {
      const MergeWeights w = merge_states(m[r], l[r], __shfl_xor_sync(0xffffffffu, m[r], off),
                                          __shfl_xor_sync(0xffffffffu, l[r], off));
#pragma unroll
      for (int e = 0; e < EPT; ++e) acc[r][e] = acc[r][e] * w.wa + __shfl_xor_sync(0xffffffffu, acc[r][e], off) * w.wb;
    }
  if (grp == 0) {
#pragma unroll
    for (int r = 0; r < GR; ++r) {
#pragma unroll
      for (int v = 0; v < NV; ++v)
#pragma unroll
        for (int e = 0; e < VE; ++e) sO[warp][r][(v * TPR + tl) * VE + e] = acc[r][v * VE + e];
      if (tl == 0) {
        sM[warp][r] = m[r];
        sL[warp][r] = l[r];
      }
    }
  }
  __syncthreads();

  // Merge the warps, one output element per thread.
  for (int idx = tid; idx < blk.nrows * D; idx += NT) {
    const int r = idx / D, d = idx % D;
    float mx = kNegInf;
#pragma unroll
    for (int w = 0; w < W; ++w) mx = fmaxf(mx, sM[w][r]);
    const float off = softmax_offset(mx);
    float sum = 0.0f, val = 0.0f;
#pragma unroll
    for (int w = 0; w < W; ++w) {
      const float wt = exp2f(sM[w][r] - off);
      sum += sL[w][r] * wt;
      val += sO[w][r][d] * wt;
    }
    store_decode_value<T>(a, row0 + r, blk.split, D, d, sum == 0.0f ? 0.0f : val / sum);
    if (d == 0) store_decode_lse(a, row0 + r, blk.split, mx, sum);
  }
}

}  // namespace

template <typename T, int D>
Status launch_decode_simt(const DecodeArgs& a, int64_t blocks, cudaStream_t stream) {
  const unsigned grid = static_cast<unsigned>(blocks);
  switch (a.rows_per_block) {
    case 1: decode_simt_kernel<T, D, 1><<<grid, kDecodeThreads, 0, stream>>>(a); break;
    case 4: decode_simt_kernel<T, D, 4><<<grid, kDecodeThreads, 0, stream>>>(a); break;
    case 8: decode_simt_kernel<T, D, 8><<<grid, kDecodeThreads, 0, stream>>>(a); break;
    default: return Status(Code::internal, "attention.decode: no SIMT kernel for " + std::to_string(a.rows_per_block) + " rows");
  }
  return cuda::check_launch("attention.decode");
}

#define SPARQ_DECODE_SIMT(T)                                                          \
  template Status launch_decode_simt<T, 64>(const DecodeArgs&, int64_t, cudaStream_t);  \
  template Status launch_decode_simt<T, 128>(const DecodeArgs&, int64_t, cudaStream_t); \
  template Status launch_decode_simt<T, 256>(const DecodeArgs&, int64_t, cudaStream_t);
SPARQ_DECODE_SIMT(float)
SPARQ_DECODE_SIMT(f16_t)
SPARQ_DECODE_SIMT(bf16_t)
#undef SPARQ_DECODE_SIMT

}  // namespace attn
}  // namespace sparq
