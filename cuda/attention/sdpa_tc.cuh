// FlashAttention-2-style prefill on tensor cores (sm_80+, float16/bfloat16), included by the
// sdpa_tc_d*.cu translation units only.
//
// A block of WARPS warps owns BM = 16 * MT * WARPS query rows (each warp MT m16 row tiles) and
// walks the K/V tiles of BN keys that its rows can see. Shared memory holds the Q tile and one K
// and one V tile (rows padded by 16 bytes so that ldmatrix rows fall in distinct banks). The
// copies are cp.async and overlap the math: V(j) lands while S = Q K(j)^T and the softmax run,
// K(j+1) while O += P V(j) runs. Scores and O accumulate in f32; P is rounded to the input type
// for the P.V mma. Tiles outside the union of the rows' key ranges are never visited, tiles inside
// every row's range skip the mask, and K/V rows outside the union are zero-filled, so padding
// past kv_lengths is never read.
#pragma once
#include "sdpa_kernels.cuh"

namespace sparq {
namespace attn {

// Tile shapes per head dim. Two m16 tiles per warp reuse each K/V fragment twice where the
// registers allow it; ptxas (CUDA 13, sm_80/sm_90) gives 228-252 registers and no spills for all
// three, i.e. two 4-warp blocks per SM, and 36/51/66 KB of shared memory per block.
template <int D> struct SdpaTcShape;
template <> struct SdpaTcShape<64> { static constexpr int BN = 64, MT = 2, WARPS = 4; };
template <> struct SdpaTcShape<128> { static constexpr int BN = 32, MT = 2, WARPS = 4; };
template <> struct SdpaTcShape<256> { static constexpr int BN = 32, MT = 1, WARPS = 4; };

namespace {

// Issues the copies of key rows [kt * BN, kt * BN + BN) into `dst`; rows outside [lo, hi] are
// zero-filled without being read.
template <int D, int BN, int NT, typename T>
__device__ __forceinline__ void load_kv_tile(uint16_t* dst, const T* src, int kt, int lo, int hi, int tid) {
  constexpr int S = D + 8, CHUNKS = D / 8;
  static_assert(NT % CHUNKS == 0 && BN % (NT / CHUNKS) == 0, "whole copy rounds");
  constexpr int RSTEP = NT / CHUNKS;  // rows per round
  const int r0 = tid / CHUNKS, col = (tid % CHUNKS) * 8;
  const int j0 = kt * BN + r0;
  const T* from = src + static_cast<int64_t>(j0) * D + col;  // one base pointer keeps registers free
  uint16_t* to = dst + r0 * S + col;
#pragma unroll
  for (int it = 0; it < BN / RSTEP; ++it) {
    const int j = j0 + it * RSTEP;
    const bool ok = j >= lo && j <= hi;
    cp_async16(to + it * RSTEP * S, ok ? from + it * RSTEP * D : src, ok ? 16 : 0);
  }
}

template <typename T, int D, int BN, int MT, int WARPS>
__global__ void __launch_bounds__(WARPS * 32) sdpa_tc_kernel(const SdpaArgs a) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  constexpr int BM = 16 * MT * WARPS, NT = WARPS * 32, S = D + 8, NKT = BN / 8, NDT = D / 8, CHUNKS = D / 8;
  extern __shared__ __align__(16) unsigned char smem[];
  uint16_t* sQ = reinterpret_cast<uint16_t*>(smem);
  uint16_t* sK = sQ + BM * S;
  uint16_t* sV = sK + BN * S;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t4 = lane & 3;
  const int wrow = warp * 16 * MT;  // this warp's first row in the tile

  const SdpaTile tile = sdpa_tile(a, BM);
  const int64_t L = checked_length(a.kv_lengths, tile.b, a.Tk, tid == 0 ? a.error_word : nullptr);
  const KeyRange first = visible_keys(tile.i_min, L, a.Tq, a.causal, a.window_left, a.window_right);
  const KeyRange last = visible_keys(tile.i_max, L, a.Tq, a.causal, a.window_left, a.window_right);
  const int blk_lo = first.lo, blk_hi = last.hi;    // keys some row sees
  const int full_lo = last.lo, full_hi = first.hi;  // keys every row sees

  const int rows = static_cast<int>(tile.row_end - tile.row_begin);
  const T* qg = static_cast<const T*>(a.q) + tile.q_row0 * D;
  const T* kg = static_cast<const T*>(a.k) + tile.kv_row0 * D;
  const T* vg = static_cast<const T*>(a.v) + tile.kv_row0 * D;

  // The key ranges of this thread's fragment rows: (mt, h) -> tile row wrow + mt * 16 + g + 8h.
  KeyRange rr[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int lr = wrow + mt * 16 + g + 8 * h;
      rr[mt][h] = lr < rows ? visible_keys((tile.row_begin + lr) % a.Tq, L, a.Tq, a.causal, a.window_left, a.window_right)
                            : KeyRange{0, -1};
    }

  float o[MT][NDT][4];
  float m[MT][2], l[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
    for (int dt = 0; dt < NDT; ++dt) o[mt][dt][0] = o[mt][dt][1] = o[mt][dt][2] = o[mt][dt][3] = 0.0f;
    m[mt][0] = m[mt][1] = kNegInf;
    l[mt][0] = l[mt][1] = 0.0f;
  }

  if (blk_lo <= blk_hi) {
    const int kt0 = blk_lo / BN, kt1 = blk_hi / BN;
    static_assert(BM * CHUNKS % NT == 0, "whole copy rounds");
#pragma unroll
    for (int it = 0; it < BM * CHUNKS / NT; ++it) {
      const int c = tid + it * NT;
      const int r = c / CHUNKS, col = (c % CHUNKS) * 8;
      const bool ok = r < rows;
      cp_async16(sQ + r * S + col, ok ? qg + static_cast<int64_t>(r) * D + col : qg, ok ? 16 : 0);
    }
    load_kv_tile<D, BN, NT>(sK, kg, kt0, blk_lo, blk_hi, tid);
    cp_async_commit();

    for (int kt = kt0; kt <= kt1; ++kt) {
      cp_async_wait_all();
      __syncthreads();  // K(kt) (and Q) visible to all; every warp is done with V(kt - 1)
      load_kv_tile<D, BN, NT>(sV, vg, kt, blk_lo, blk_hi, tid);
      cp_async_commit();

      // S = Q K^T
      float s[MT][NKT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int nt = 0; nt < NKT; ++nt) s[mt][nt][0] = s[mt][nt][1] = s[mt][nt][2] = s[mt][nt][3] = 0.0f;
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        uint32_t qa[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) ldmatrix_x4(qa[mt], sQ + (wrow + mt * 16 + (lane & 15)) * S + kk * 16 + (lane >> 4) * 8);
#pragma unroll
        for (int nn = 0; nn < BN / 16; ++nn) {
          uint32_t kb[4];  // b0, b1 of key tiles 2nn and 2nn + 1
          ldmatrix_x4(kb, sK + (nn * 16 + (lane >> 4) * 8 + (lane & 7)) * S + kk * 16 + ((lane >> 3) & 1) * 8);
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            mma_16816<T>(s[mt][2 * nn], qa[mt], kb[0], kb[1]);
            mma_16816<T>(s[mt][2 * nn + 1], qa[mt], kb[2], kb[3]);
          }
        }
      }

      // Mask, online softmax, P as A fragments.
      const int j0 = kt * BN;
      const bool full = j0 >= full_lo && j0 + BN - 1 <= full_hi;
      uint32_t pa[MT][BN / 16][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          float mx = kNegInf;
#pragma unroll
          for (int nt = 0; nt < NKT; ++nt)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              float x = s[mt][nt][2 * h + e] * a.scale_log2;
              if (!full) {
                const int j = j0 + nt * 8 + 2 * t4 + e;
                if (j < rr[mt][h].lo || j > rr[mt][h].hi) x = kNegInf;  // replaces NaN scores too
              }
              s[mt][nt][2 * h + e] = x;
              mx = fmaxf(mx, x);
            }
          mx = quad_max(mx);
          const float m_new = fmaxf(m[mt][h], mx);
          const float off = softmax_offset(m_new);
          const float corr = exp2f(m[mt][h] - off);
          m[mt][h] = m_new;
          float sum = 0.0f;
#pragma unroll
          for (int nt = 0; nt < NKT; ++nt)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              const float p = exp2f(s[mt][nt][2 * h + e] - off);
              s[mt][nt][2 * h + e] = p;
              sum += p;
            }
          l[mt][h] = l[mt][h] * corr + sum;  // per-thread partial; the quad is summed at the end
#pragma unroll
          for (int dt = 0; dt < NDT; ++dt) {
            o[mt][dt][2 * h] *= corr;
            o[mt][dt][2 * h + 1] *= corr;
          }
        }
#pragma unroll
        for (int kc = 0; kc < BN / 16; ++kc) {
          pa[mt][kc][0] = pack2<T>(s[mt][2 * kc][0], s[mt][2 * kc][1]);
          pa[mt][kc][1] = pack2<T>(s[mt][2 * kc][2], s[mt][2 * kc][3]);
          pa[mt][kc][2] = pack2<T>(s[mt][2 * kc + 1][0], s[mt][2 * kc + 1][1]);
          pa[mt][kc][3] = pack2<T>(s[mt][2 * kc + 1][2], s[mt][2 * kc + 1][3]);
        }
      }

      cp_async_wait_all();
      __syncthreads();  // V(kt) visible to all; every warp is done with K(kt)
      if (kt < kt1) {
        load_kv_tile<D, BN, NT>(sK, kg, kt + 1, blk_lo, blk_hi, tid);
        cp_async_commit();
      }

      // O += P V
#pragma unroll
      for (int kc = 0; kc < BN / 16; ++kc)
#pragma unroll
        for (int dp = 0; dp < D / 16; ++dp) {
          uint32_t vb[4];  // b0, b1 of dim tiles 2dp and 2dp + 1
          ldmatrix_x4_trans(vb, sV + (kc * 16 + ((lane >> 3) & 1) * 8 + (lane & 7)) * S + dp * 16 + (lane >> 4) * 8);
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            mma_16816<T>(o[mt][2 * dp], pa[mt][kc], vb[0], vb[1]);
            mma_16816<T>(o[mt][2 * dp + 1], pa[mt][kc], vb[2], vb[3]);
          }
        }
    }
  }
  cp_async_wait_all();

  // Epilogue: normalise, round like the CPU, stage the warp's rows in its own part of sQ (only
  // this warp read them), then write 16 bytes per lane.
  float* lse_g = a.lse ? a.lse + tile.q_row0 : nullptr;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const float sum = quad_sum(l[mt][h]);
      const float inv = 1.0f / sum;
      const int lr = wrow + mt * 16 + g + 8 * h;
#pragma unroll
      for (int dt = 0; dt < NDT; ++dt) {
        uint32_t packed = 0;  // a row that saw no key is 0
        if (sum != 0.0f)
          packed = static_cast<uint32_t>(bits16_from_f32<T>(o[mt][dt][2 * h] * inv)) |
                   (static_cast<uint32_t>(bits16_from_f32<T>(o[mt][dt][2 * h + 1] * inv)) << 16);
        *reinterpret_cast<uint32_t*>(sQ + lr * S + dt * 8 + 2 * t4) = packed;
      }
      if (lse_g && t4 == 0 && lr < rows) lse_g[lr] = sum == 0.0f ? kNegInf : (m[mt][h] + log2f(sum)) * kLn2;
    }
  __syncwarp();
  T* og = static_cast<T*>(a.out) + tile.q_row0 * D;
  for (int c = lane; c < 16 * MT * CHUNKS; c += 32) {
    const int lr = wrow + c / CHUNKS, col = (c % CHUNKS) * 8;
    if (lr < rows) *reinterpret_cast<uint4*>(og + static_cast<int64_t>(lr) * D + col) = *reinterpret_cast<const uint4*>(sQ + lr * S + col);
  }
#endif
}

}  // namespace

template <typename T, int D>
Status launch_sdpa_tc(SdpaArgs a, int64_t B, const DeviceLimits& dev, cudaStream_t stream) {
  using Shape = SdpaTcShape<D>;
  constexpr int BM = 16 * Shape::MT * Shape::WARPS, NT = Shape::WARPS * 32;
  constexpr int kSmem = (BM + 2 * Shape::BN) * (D + 8) * 2;
  static std::atomic<uint64_t> smem_set{0};
  auto kernel = sdpa_tc_kernel<T, D, Shape::BN, Shape::MT, Shape::WARPS>;
  SPARQ_RETURN_IF_ERROR(allow_dynamic_smem(reinterpret_cast<const void*>(kernel), kSmem, dev, &smem_set));
  const int64_t blocks = plan_sdpa_grid(a, B, BM);
  if (blocks > 0x7fffffff) return Status(Code::unsupported, "too many query tiles (" + std::to_string(blocks) + ")");
  kernel<<<static_cast<unsigned>(blocks), NT, kSmem, stream>>>(a);
  return cuda::check_launch("attention.sdpa");
}

}  // namespace attn
}  // namespace sparq
