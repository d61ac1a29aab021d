// Prefill attention with fp32 FMAs: the float32 path on every arch, float16/bfloat16 on sm_75
// (no bf16 mma there) and inputs not aligned to 16 bytes. Same tiling, masking and online softmax
// as the tensor-core kernel (sdpa_tc.cuh), plainer data movement:
// 4 warps x R query rows per block; per tile of 32 keys (one per lane) each warp computes its
// rows' scores lane by lane from shared memory, then accumulates P V with lane = output dim.
// Shared memory (f32): Q [BM][D+4], one K-then-V tile [32][D+4] (the +4 spreads the float4 rows
// over all banks), P [4][R][32].
#include "sdpa_kernels.cuh"

namespace sparq {
namespace attn {
namespace {

constexpr int kSimtWarps = 4, kSimtThreads = kSimtWarps * 32, kSimtBN = 32;

template <int D> struct SdpaSimtShape { static constexpr int R = D == 256 ? 4 : 8; };

template <int D, int R>
constexpr int simt_smem_bytes() {
  return ((R * kSimtWarps + kSimtBN) * (D + 4) + kSimtWarps * R * kSimtBN) * 4;
}

// Converts key rows [kt * 32, kt * 32 + 32) to f32 in `dst`; rows outside [lo, hi] become zeros.
template <typename T, int D>
__device__ __forceinline__ void load_tile_f32(float* dst, const T* src, int kt, int lo, int hi, int tid) {
  const int j0 = kt * kSimtBN;
  for (int idx = tid; idx < kSimtBN * D; idx += kSimtThreads) {
    const int r = idx / D, d = idx % D, j = j0 + r;
    dst[r * (D + 4) + d] = j >= lo && j <= hi ? to_f32(src[static_cast<int64_t>(j) * D + d]) : 0.0f;
  }
}

template <typename T, int D, int R>
__global__ void __launch_bounds__(kSimtThreads) sdpa_simt_kernel(const SdpaArgs a) {
  constexpr int BM = R * kSimtWarps, BN = kSimtBN, KS = D + 4, NC = D / 32;
  extern __shared__ __align__(16) float smem_f[];
  float* sQ = smem_f;
  float* sKV = sQ + BM * KS;
  float* sP = sKV + BN * KS;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;

  const SdpaTile tile = sdpa_tile(a, BM);
  const int64_t L = checked_length(a.kv_lengths, tile.b, a.Tk, tid == 0 ? a.error_word : nullptr);
  const KeyRange first = visible_keys(tile.i_min, L, a.Tq, a.causal, a.window_left, a.window_right);
  const KeyRange last = visible_keys(tile.i_max, L, a.Tq, a.causal, a.window_left, a.window_right);
  const int blk_lo = first.lo, blk_hi = last.hi;

  const int rows = static_cast<int>(tile.row_end - tile.row_begin);
  const T* qg = static_cast<const T*>(a.q) + tile.q_row0 * D;
  const T* kg = static_cast<const T*>(a.k) + tile.kv_row0 * D;
  const T* vg = static_cast<const T*>(a.v) + tile.kv_row0 * D;

  for (int idx = tid; idx < BM * D; idx += kSimtThreads) {
    const int r = idx / D, d = idx % D;
    sQ[r * KS + d] = r < rows ? to_f32(qg[static_cast<int64_t>(r) * D + d]) * a.scale_log2 : 0.0f;
  }
  KeyRange rr[R];
#pragma unroll
  for (int i = 0; i < R; ++i) {
    const int lr = warp * R + i;
    rr[i] = lr < rows ? visible_keys((tile.row_begin + lr) % a.Tq, L, a.Tq, a.causal, a.window_left, a.window_right)
                      : KeyRange{0, -1};
  }

  float acc[R][NC], m[R], lp[R];  // lp: this lane's share of the row sum
#pragma unroll
  for (int i = 0; i < R; ++i) {
#pragma unroll
    for (int c = 0; c < NC; ++c) acc[i][c] = 0.0f;
    m[i] = kNegInf;
    lp[i] = 0.0f;
  }
  float* myP = sP + warp * R * BN;
  const float* qrow = sQ + warp * R * KS;

  if (blk_lo <= blk_hi) {
    for (int kt = blk_lo / BN; kt <= blk_hi / BN; ++kt) {
      __syncthreads();  // Q written (first round); every warp done with the previous V tile
      load_tile_f32<T, D>(sKV, kg, kt, blk_lo, blk_hi, tid);
      __syncthreads();

      float s[R];
#pragma unroll
      for (int i = 0; i < R; ++i) s[i] = 0.0f;
      const float4* k4 = reinterpret_cast<const float4*>(sKV + lane * KS);
#pragma unroll 4
      for (int d4 = 0; d4 < D / 4; ++d4) {
        const float4 kv = k4[d4];
#pragma unroll
        for (int i = 0; i < R; ++i) {
          const float4 qv = reinterpret_cast<const float4*>(qrow + i * KS)[d4];
          s[i] = fmaf(qv.x, kv.x, s[i]);
          s[i] = fmaf(qv.y, kv.y, s[i]);
          s[i] = fmaf(qv.z, kv.z, s[i]);
          s[i] = fmaf(qv.w, kv.w, s[i]);
        }
      }
      const int j = kt * BN + lane;
#pragma unroll
      for (int i = 0; i < R; ++i) {
        const float x = j < rr[i].lo || j > rr[i].hi ? kNegInf : s[i];
        const float m_new = fmaxf(m[i], warp_max(x));
        const float off = softmax_offset(m_new);
        const float corr = exp2f(m[i] - off);
        const float p = exp2f(x - off);
        m[i] = m_new;
        lp[i] = lp[i] * corr + p;
#pragma unroll
        for (int c = 0; c < NC; ++c) acc[i][c] *= corr;
        myP[i * BN + lane] = p;
      }
      __syncthreads();  // every warp done with K
      load_tile_f32<T, D>(sKV, vg, kt, blk_lo, blk_hi, tid);
      __syncthreads();

#pragma unroll 2
      for (int j4 = 0; j4 < BN; j4 += 4) {
        float4 pv[R];
#pragma unroll
        for (int i = 0; i < R; ++i) pv[i] = *reinterpret_cast<const float4*>(myP + i * BN + j4);
#pragma unroll
        for (int jj = 0; jj < 4; ++jj) {
#pragma unroll
          for (int c = 0; c < NC; ++c) {
            const float v = sKV[(j4 + jj) * KS + lane + 32 * c];
#pragma unroll
            for (int i = 0; i < R; ++i) {
              const float p = jj == 0 ? pv[i].x : jj == 1 ? pv[i].y : jj == 2 ? pv[i].z : pv[i].w;
              acc[i][c] = fmaf(p, v, acc[i][c]);
            }
          }
        }
      }
    }
  }

  T* og = static_cast<T*>(a.out) + tile.q_row0 * D;
#pragma unroll
  for (int i = 0; i < R; ++i) {
    const float sum = warp_sum(lp[i]);
    const int lr = warp * R + i;
    if (lr >= rows) continue;
    const float inv = 1.0f / sum;
#pragma unroll
    for (int c = 0; c < NC; ++c)
      og[static_cast<int64_t>(lr) * D + lane + 32 * c] = from_f32<T>(sum == 0.0f ? 0.0f : acc[i][c] * inv);
    if (a.lse && lane == 0) a.lse[tile.q_row0 + lr] = sum == 0.0f ? kNegInf : (m[i] + log2f(sum)) * kLn2;
  }
}

}  // namespace

template <typename T, int D>
Status launch_sdpa_simt(SdpaArgs a, int64_t B, const DeviceLimits& dev, cudaStream_t stream) {
  constexpr int R = SdpaSimtShape<D>::R;
  constexpr int kSmem = simt_smem_bytes<D, R>();
  static std::atomic<uint64_t> smem_set{0};
  auto kernel = sdpa_simt_kernel<T, D, R>;
  SPARQ_RETURN_IF_ERROR(allow_dynamic_smem(reinterpret_cast<const void*>(kernel), kSmem, dev, &smem_set));
  const int64_t blocks = plan_sdpa_grid(a, B, R * kSimtWarps);
  if (blocks > 0x7fffffff) return Status(Code::unsupported, "too many query tiles (" + std::to_string(blocks) + ")");
  kernel<<<static_cast<unsigned>(blocks), kSimtThreads, kSmem, stream>>>(a);
  return cuda::check_launch("attention.sdpa");
}

template Status launch_sdpa_simt<float, 64>(SdpaArgs, int64_t, const DeviceLimits&, cudaStream_t);
template Status launch_sdpa_simt<float, 128>(SdpaArgs, int64_t, const DeviceLimits&, cudaStream_t);
template Status launch_sdpa_simt<float, 256>(SdpaArgs, int64_t, const DeviceLimits&, cudaStream_t);
template Status launch_sdpa_simt<f16_t, 64>(SdpaArgs, int64_t, const DeviceLimits&, cudaStream_t);
template Status launch_sdpa_simt<f16_t, 128>(SdpaArgs, int64_t, const DeviceLimits&, cudaStream_t);
template Status launch_sdpa_simt<f16_t, 256>(SdpaArgs, int64_t, const DeviceLimits&, cudaStream_t);
template Status launch_sdpa_simt<bf16_t, 64>(SdpaArgs, int64_t, const DeviceLimits&, cudaStream_t);
template Status launch_sdpa_simt<bf16_t, 128>(SdpaArgs, int64_t, const DeviceLimits&, cudaStream_t);
template Status launch_sdpa_simt<bf16_t, 256>(SdpaArgs, int64_t, const DeviceLimits&, cudaStream_t);

}  // namespace attn
}  // namespace sparq
