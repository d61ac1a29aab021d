// Decode on tensor cores (sm_80+, float16/bfloat16): one block per (batch, KV head, 16 query
// heads, split); each of its 4 warps takes 16-key steps of the split in turn and computes
// S = Q K^T (16 heads x 16 keys) and O += P V with mma.sync m16n8k16, straight from registers:
// no shared memory for K/V and no ldmatrix.
//
// The trick is that a dot product does not care in which order its terms are summed, and an
// output column can live anywhere as long as the store knows where. So each lane loads whole
// 16-byte vectors of K and V rows (four lanes cover 64 contiguous bytes of a row: full sectors)
// and uses them as mma fragments as they are:
//   S: the k index (head dim) is permuted. Lane (g, t) loads key row g of an 8-key tile at
//      vectors 4i + t, i < D/32; vector 4i + t supplies k chunks 2i and 2i + 1 (b0 = its
//      elements 0-1 | 4-5, b1 = 2-3 | 6-7). Q's A fragments are built with the same permutation
//      (once per block, in shared memory, fragment order).
//   P V: the n index (output dim) is permuted. Lane (g, t) loads keys 2t, 2t+1, 2t+8, 2t+9 of the
//      16-key step at vectors 8v + g, v < D/64; element e of vector v is dim slot g of n tile
//      8v + e, so one __byte_perm pairs two keys into a b register. Output slot s of n tile nd
//      is head dim ((nd / 8) * 8 + s) * 8 + nd % 8.
// The warps' softmax states are merged through shared memory at the end.
#include "decode_kernels.cuh"

namespace sparq {
namespace attn {
namespace {

// Blocks per SM asked of ptxas: what the registers allow without spills on sm_80..sm_120
// (116 / 168 / 255 registers for D = 64 / 128 / 256).
template <typename T, int D>
__global__ void __launch_bounds__(kDecodeThreads, D == 64 ? 4 : D == 128 ? 3 : 1) decode_tc_kernel(const DecodeArgs a) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  constexpr int W = kDecodeWarps, NT = kDecodeThreads, NC = D / 16, NDT = D / 8, KV = D / 32, VV = D / 64;
  constexpr int RED = NDT * 4 + 4;  // per-lane state: o, m[2], l[2]
  // V's loads go out with K's, except at D = 256 where O (128 registers) and both K and V
  // (64 each) would not fit: there V is loaded once S is done with K.
  constexpr bool kEarlyV = D <= 128;
  __shared__ uint4 sQf[NC][32];     // Q A-fragments of chunk c for lane l
  __shared__ float sRed[W / 2][RED][32];
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t4 = lane & 3;

  const DecodeBlock blk = decode_block(a, tid == 0);
  const int64_t row0 = blk.b * a.Hq + blk.head0;  // q/out row of the block's first head
  const T* qg = static_cast<const T*>(a.q) + row0 * D;
  for (int idx = tid; idx < NC * 32; idx += NT) {
    const int c = idx >> 5, ln = idx & 31, gg = ln >> 2, tt = ln & 3;
    const int d0 = ((c >> 1) * 4 + tt) * 8 + (c & 1) * 4;
    const uint2 zero = make_uint2(0u, 0u);
    const uint2 lo = gg < blk.nrows ? *reinterpret_cast<const uint2*>(qg + gg * D + d0) : zero;
    const uint2 hi = gg + 8 < blk.nrows ? *reinterpret_cast<const uint2*>(qg + (gg + 8) * D + d0) : zero;
    sQf[c][ln] = make_uint4(lo.x, hi.x, lo.y, hi.y);
  }
  __syncthreads();

  float o[NDT][4];
#pragma unroll
  for (int nd = 0; nd < NDT; ++nd) o[nd][0] = o[nd][1] = o[nd][2] = o[nd][3] = 0.0f;
  float m[2] = {kNegInf, kNegInf}, l[2] = {0.0f, 0.0f};  // rows g and g + 8; l: this lane's share

  const int64_t kv_off = (blk.b * a.Hk + blk.kvh) * a.Tmax * D;
  const T* kg = static_cast<const T*>(a.k) + kv_off;
  const T* vg = static_cast<const T*>(a.v) + kv_off;
  const uint4 zero4 = make_uint4(0u, 0u, 0u, 0u);

  for (int64_t k0 = blk.begin + warp * 16; k0 < blk.end; k0 += W * 16) {
    uint4 kr[2][KV];
#pragma unroll
    for (int nt = 0; nt < 2; ++nt) {
      const int64_t key = k0 + nt * 8 + g;
      const uint4* src = reinterpret_cast<const uint4*>(kg + key * D) + t4;
#pragma unroll
      for (int i = 0; i < KV; ++i) kr[nt][i] = key < blk.end ? src[i * 4] : zero4;
    }
    uint4 vr[4][VV];
    auto load_v = [&]() {
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        const int64_t key = k0 + (kk >> 1) * 8 + 2 * t4 + (kk & 1);
        const uint4* src = reinterpret_cast<const uint4*>(vg + key * D) + g;
#pragma unroll
        for (int v = 0; v < VV; ++v) vr[kk][v] = key < blk.end ? src[v * 8] : zero4;
      }
    };
    if constexpr (kEarlyV) load_v();

    float s[2][4] = {{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}};
#pragma unroll
    for (int c = 0; c < NC; ++c) {
      const uint4 q4 = sQf[c][lane];
      const uint32_t qa[4] = {q4.x, q4.y, q4.z, q4.w};
#pragma unroll
      for (int nt = 0; nt < 2; ++nt) {
        const uint4& kv = kr[nt][c >> 1];
        mma_16816<T>(s[nt], qa, (c & 1) ? kv.z : kv.x, (c & 1) ? kv.w : kv.y);
      }
    }
    if constexpr (!kEarlyV) load_v();

#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float mx = kNegInf;
#pragma unroll
      for (int nt = 0; nt < 2; ++nt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int64_t key = k0 + nt * 8 + 2 * t4 + e;
          const float x = key < blk.end ? s[nt][2 * h + e] * a.scale_log2 : kNegInf;
          s[nt][2 * h + e] = x;
          mx = fmaxf(mx, x);
        }
      const float m_new = fmaxf(m[h], quad_max(mx));
      const float off = softmax_offset(m_new);
      const float corr = exp2f(m[h] - off);
      m[h] = m_new;
      float sum = 0.0f;
#pragma unroll
      for (int nt = 0; nt < 2; ++nt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const float p = exp2f(s[nt][2 * h + e] - off);
          s[nt][2 * h + e] = p;
          sum += p;
        }
      l[h] = l[h] * corr + sum;
#pragma unroll
      for (int nd = 0; nd < NDT; ++nd) {
        o[nd][2 * h] *= corr;
        o[nd][2 * h + 1] *= corr;
      }
    }
    const uint32_t pa[4] = {pack2<T>(s[0][0], s[0][1]), pack2<T>(s[0][2], s[0][3]), pack2<T>(s[1][0], s[1][1]),
                            pack2<T>(s[1][2], s[1][3])};
#pragma unroll
    for (int nd = 0; nd < NDT; ++nd) {
      const int vi = nd >> 3;
      const uint32_t sel = (nd & 1) ? 0x7632u : 0x5410u;  // high or low halves of the two keys
      uint32_t x0, x1, x2, x3;  // word (nd & 7) / 2 of the four keys' vectors
      switch ((nd & 7) >> 1) {
        case 0: x0 = vr[0][vi].x, x1 = vr[1][vi].x, x2 = vr[2][vi].x, x3 = vr[3][vi].x; break;
        case 1: x0 = vr[0][vi].y, x1 = vr[1][vi].y, x2 = vr[2][vi].y, x3 = vr[3][vi].y; break;
        case 2: x0 = vr[0][vi].z, x1 = vr[1][vi].z, x2 = vr[2][vi].z, x3 = vr[3][vi].z; break;
        default: x0 = vr[0][vi].w, x1 = vr[1][vi].w, x2 = vr[2][vi].w, x3 = vr[3][vi].w; break;
      }
      mma_16816<T>(o[nd], pa, __byte_perm(x0, x1, sel), __byte_perm(x2, x3, sel));
    }
  }

  // Merge the warps' states: warps [half, 2 half) hand theirs to warps [0, half).
#pragma unroll
  for (int half = W / 2; half >= 1; half >>= 1) {
    if (warp >= half && warp < 2 * half) {
      float(*dst)[32] = sRed[warp - half];
#pragma unroll
      for (int nd = 0; nd < NDT; ++nd)
#pragma unroll
        for (int e = 0; e < 4; ++e) dst[nd * 4 + e][lane] = o[nd][e];
      dst[NDT * 4][lane] = m[0];
      dst[NDT * 4 + 1][lane] = m[1];
      dst[NDT * 4 + 2][lane] = l[0];
      dst[NDT * 4 + 3][lane] = l[1];
    }
    __syncthreads();
    if (warp < half) {
      const float(*src)[32] = sRed[warp];
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const MergeWeights w = merge_states(m[h], l[h], src[NDT * 4 + h][lane], src[NDT * 4 + 2 + h][lane]);
#pragma unroll
        for (int nd = 0; nd < NDT; ++nd) {
          o[nd][2 * h] = o[nd][2 * h] * w.wa + src[nd * 4 + 2 * h][lane] * w.wb;
          o[nd][2 * h + 1] = o[nd][2 * h + 1] * w.wa + src[nd * 4 + 2 * h + 1][lane] * w.wb;
        }
      }
    }
    __syncthreads();
  }
  if (warp != 0) return;

#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const float sum = quad_sum(l[h]);
    const int r = g + 8 * h;
    if (r >= blk.nrows) continue;
    const int64_t row = row0 + r;
    const float inv = 1.0f / sum;
#pragma unroll
    for (int nd = 0; nd < NDT; ++nd)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int dim = ((nd >> 3) * 8 + 2 * t4 + e) * 8 + (nd & 7);
        store_decode_value<T>(a, row, blk.split, D, dim, sum == 0.0f ? 0.0f : o[nd][2 * h + e] * inv);
      }
    if (t4 == 0) store_decode_lse(a, row, blk.split, m[h], sum);
  }
#endif
}

}  // namespace

template <typename T, int D>
Status launch_decode_tc(const DecodeArgs& a, int64_t blocks, cudaStream_t stream) {
  decode_tc_kernel<T, D><<<static_cast<unsigned>(blocks), kDecodeThreads, 0, stream>>>(a);
  return cuda::check_launch("attention.decode");
}

template Status launch_decode_tc<f16_t, 64>(const DecodeArgs&, int64_t, cudaStream_t);
template Status launch_decode_tc<f16_t, 128>(const DecodeArgs&, int64_t, cudaStream_t);
template Status launch_decode_tc<f16_t, 256>(const DecodeArgs&, int64_t, cudaStream_t);
template Status launch_decode_tc<bf16_t, 64>(const DecodeArgs&, int64_t, cudaStream_t);
template Status launch_decode_tc<bf16_t, 128>(const DecodeArgs&, int64_t, cudaStream_t);
template Status launch_decode_tc<bf16_t, 256>(const DecodeArgs&, int64_t, cudaStream_t);

}  // namespace attn
}  // namespace sparq
