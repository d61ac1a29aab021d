/**
 * References for KIVI quantization, written from the paper's math (jy-yuan/KIVI quant/new_pack.py),
 * not from the C++: per-group min/max, scale = (max - min) / (2^b - 1) rounded to the metadata
 * dtype, codes RNE(clamp((x - min) / scale)) against the stored values (float32 arithmetic, as the
 * kernels' contract), LSB-first packing; the cache's token -> page/tail rule; and float64 decode
 * attention over a dequantized cache.
 */
import { bfloat16Bits, bfloat16Value, float16Bits, float16Value } from '../../lib/index.js';

export type MetaDType = 'float32' | 'float16' | 'bfloat16';

/** Rounds a float32 value to the metadata dtype and back. */
export function roundMeta(x: number, dtype: MetaDType): number {
  if (dtype === 'float32') return Math.fround(x);
  if (dtype === 'float16') return float16Value(float16Bits(x));
  return bfloat16Value(bfloat16Bits(x));
}

/** Round half to even. */
export function rne(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

export interface GroupRef {
  codes: number[];
  scale: number;
  min: number;
}

/** One group of values (already float32-representable). */
export function quantizeGroup(x: ArrayLike<number>, bits: number, dtype: MetaDType): GroupRef {
  let mn = x[0], mx = x[0];
  for (let i = 1; i < x.length; i++) {
    if (x[i] < mn) mn = x[i];
    if (x[i] > mx) mx = x[i];
  }
  const qmax = 2 ** bits - 1;
  const scale = roundMeta(Math.fround(Math.fround(mx - mn) / qmax), dtype);
  const min = roundMeta(mn, dtype);
  const codes = Array.from(x, (v) => {
    if (!(scale > 0)) return 0;
    const r = Math.fround(Math.fround(v - min) / scale);
    return rne(Math.min(Math.max(r, 0), qmax));
  });
  return { codes, scale, min };
}

/** Packs codes LSB-first, 32 / bits per uint32 word. */
export function pack(codes: ArrayLike<number>, bits: number): Uint32Array {
  const per = 32 / bits;
  const out = new Uint32Array(Math.ceil(codes.length / per));
  for (let j = 0; j < codes.length; j++) out[Math.floor(j / per)] = (out[Math.floor(j / per)] | (codes[j] << (bits * (j % per)))) >>> 0;
  return out;
}

export interface QuantRef {
  codes: Uint32Array;
  scale: Float64Array;
  min: Float64Array;
  /** code * scale + min, float64. */
  deq: Float64Array;
}

/**
 * x [outer, T, D] flat. 'channel': codes [outer, T/G, D, G*b/32], scale/min [outer, T/G, D];
 * 'token': codes [outer, T, D*b/32], scale/min [outer, T, D/G].
 */
export function quantizeRef(x: ArrayLike<number>, outer: number, T: number, D: number, bits: number, G: number,
  axis: 'channel' | 'token', dtype: MetaDType): QuantRef {
  const per = 32 / bits;
  const deq = new Float64Array(outer * T * D);
  if (axis === 'channel') {
    const pages = T / G, W = G / per;
    const codes = new Uint32Array(outer * pages * D * W);
    const scale = new Float64Array(outer * pages * D), min = new Float64Array(outer * pages * D);
    for (let o = 0; o < outer; o++)
      for (let p = 0; p < pages; p++)
        for (let d = 0; d < D; d++) {
          const idx = (t: number) => (o * T + p * G + t) * D + d;
          const g = quantizeGroup(Array.from({ length: G }, (_, t) => x[idx(t)]), bits, dtype);
          const m = (o * pages + p) * D + d;
          scale[m] = g.scale;
          min[m] = g.min;
          codes.set(pack(g.codes, bits), m * W);
          g.codes.forEach((c, t) => { deq[idx(t)] = c * g.scale + g.min; });
        }
    return { codes, scale, min, deq };
  }
  const W = D / per, groups = D / G;
  const codes = new Uint32Array(outer * T * W);
  const scale = new Float64Array(outer * T * groups), min = new Float64Array(outer * T * groups);
  for (let r = 0; r < outer * T; r++)
    for (let g = 0; g < groups; g++) {
      const q = quantizeGroup(Array.from({ length: G }, (_, i) => x[r * D + g * G + i]), bits, dtype);
      scale[r * groups + g] = q.scale;
      min[r * groups + g] = q.min;
      codes.set(pack(q.codes, bits), r * W + (g * G) / per);
      q.codes.forEach((c, i) => { deq[r * D + g * G + i] = c * q.scale + q.min; });
    }
  return { codes, scale, min, deq };
}

/** Tokens of a sequence of L tokens that sit in quantized pages (KIVI with a sliding residual). */
export function quantizedTokens(L: number, R: number, G: number): number {
  return L >= R + G ? Math.floor((L - R) / G) * G : 0;
}

export interface CacheSpec {
  B: number;
  Hk: number;
  D: number;
  G: number;
  R: number;
  keyBits: number;
  valueBits: number;
  dtype: MetaDType;
}

/**
 * The K and V a KIVI cache holds for tokens k, v [B, Hk, Tmax, D] (values already in the cache
 * dtype) with lengths[b] tokens each: the first quantizedTokens(L) dequantized (keys per channel
 * over pages of G tokens, values per token), the rest exact.
 */
export function cacheContents(k: ArrayLike<number>, v: ArrayLike<number>, Tmax: number, lengths: readonly number[], s: CacheSpec):
  { k: Float64Array; v: Float64Array } {
  const { B, Hk, D, G, R } = s;
  const ko = Float64Array.from(k), vo = Float64Array.from(v);
  for (let b = 0; b < B; b++) {
    const Q = quantizedTokens(lengths[b], R, G);
    if (Q === 0) continue;
    for (let h = 0; h < Hk; h++) {
      const off = (b * Hk + h) * Tmax * D;
      const kq = quantizeRef(Array.from(k).slice(off, off + Q * D), 1, Q, D, s.keyBits, G, 'channel', s.dtype);
      const vq = quantizeRef(Array.from(v).slice(off, off + Q * D), 1, Q, D, s.valueBits, G, 'token', s.dtype);
      ko.set(kq.deq, off);
      vo.set(vq.deq, off);
    }
  }
  return { k: ko, v: vo };
}

/** float64 decode attention: q [B, Hq, D] over k, v [B, Hk, Tmax, D] with lengths; out [B, Hq, D], lse [B, Hq]. */
export function decodeRef(q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, B: number, Hq: number, Hk: number,
  Tmax: number, D: number, lengths: readonly number[], scale: number): { out: Float64Array; lse: Float64Array } {
  const out = new Float64Array(B * Hq * D), lse = new Float64Array(B * Hq);
  const g = Hq / Hk;
  for (let b = 0; b < B; b++)
    for (let h = 0; h < Hq; h++) {
      const L = lengths[b], kv = (b * Hk + Math.floor(h / g)) * Tmax * D, qo = (b * Hq + h) * D;
      if (L === 0) {
        lse[b * Hq + h] = -Infinity;
        continue;
      }
      const s = new Float64Array(L);
      let m = -Infinity;
      for (let t = 0; t < L; t++) {
        let dot = 0;
        for (let d = 0; d < D; d++) dot += q[qo + d] * k[kv + t * D + d];
        s[t] = dot * scale;
        m = Math.max(m, s[t]);
      }
      let z = 0;
      for (let t = 0; t < L; t++) {
        const w = Math.exp(s[t] - m);
        z += w;
        for (let d = 0; d < D; d++) out[qo + d] += w * v[kv + t * D + d];
      }
      for (let d = 0; d < D; d++) out[qo + d] /= z;
      lse[b * Hq + h] = m + Math.log(z);
    }
  return { out, lse };
}
