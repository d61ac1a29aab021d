// KIVI KV-cache quantization (kv.quantize, kv.dequantize, kv.createCache): bit layout, codes
// against the oracle (test/oracle/kv.ts) bit for bit, error figures from the spec, streaming vs
// one-shot, fused attend against float64 attention over the dequantized cache, bit accounting,
// bad inputs. CUDA twins compare with the CPU.
import { describe, expect, it } from 'vitest';

import { type Device, type KiviCache, type KvBits, type KvFloatDType, type Tensor, internal, kv, synchronize, tensor } from '../lib/index.js';
import { type CacheSpec, type MetaDType, cacheContents, decodeRef, quantizeRef, quantizedTokens } from './oracle/kv.js';
import { CUDA_TITLE, cudaReason, gaussian, lcg, relErr } from './helpers.js';

async function f32(t: Tensor): Promise<Float32Array> {
  return t.toFloat32();
}

/** A tensor holding `data` rounded to dtype, and the rounded values. */
async function rounded(data: Float32Array, shape: number[], dtype: KvFloatDType, device: Device = 'cpu') {
  const t = tensor(data, shape, { dtype: 'float32', device }).cast(dtype);
  return { t, values: await t.toFloat32() };
}

function firstMismatch(got: ArrayLike<number>, want: ArrayLike<number>): string | null {
  if (got.length !== want.length) return `length ${got.length} vs ${want.length}`;
  for (let i = 0; i < want.length; i++) if (got[i] !== want[i] && !(Number.isNaN(got[i]) && Number.isNaN(want[i]))) return `[${i}] ${got[i]} vs ${want[i]}`;
  return null;
}

describe('kv.quantize bit layout (spec §11.1)', () => {
  it('2-bit codes j mod 4 pack to 0xE4E4E4E4 along channels (token axis) and along tokens (channel axis)', async () => {
    const x = Float32Array.from({ length: 16 }, (_, j) => j % 4);
    const byToken = kv.quantize(tensor(x, [1, 16]), { bits: 2, axis: 'token', groupSize: 16 });
    expect(Array.from(await byToken.codes.data())).toEqual([0xe4e4e4e4]);
    expect(byToken.codes.shape).toEqual([1, 1]);
    const byChannel = kv.quantize(tensor(x, [16, 1]), { bits: 2, axis: 'channel', groupSize: 16 });
    expect(byChannel.codes.shape).toEqual([1, 1, 1]);
    expect(Array.from(await byChannel.codes.data())).toEqual([0xe4e4e4e4]);
  });

  it('4-bit codes 0..15 pack to 0x76543210, 0xFEDCBA98; 8-bit to 0x03020100 ...', async () => {
    const x = Float32Array.from({ length: 16 }, (_, j) => j);
    const q4 = kv.quantize(tensor(x, [1, 16]), { bits: 4, axis: 'token', groupSize: 16 });
    expect(Array.from(await q4.codes.data())).toEqual([0x76543210, 0xfedcba98]);
    // 8-bit: 0..255 in a group of 256 gives scale 1, codes = values
    const x8 = Float32Array.from({ length: 256 }, (_, j) => j);
    const q8 = kv.quantize(tensor(x8, [1, 256]), { bits: 8, axis: 'token', groupSize: 256 });
    expect(Array.from(await q8.codes.data()).slice(0, 2)).toEqual([0x03020100, 0x07060504]);
  });
});

describe('kv.quantize codes equal the oracle bit for bit', () => {
  const cases: { dtype: MetaDType; bits: KvBits; axis: 'channel' | 'token'; G: number }[] = [];
  for (const dtype of ['float32', 'float16', 'bfloat16'] as const)
    for (const bits of [2, 4, 8] as const)
      for (const axis of ['channel', 'token'] as const) cases.push({ dtype, bits, axis, G: bits === 2 ? 32 : 16 });
  it.each(cases)('%o', async ({ dtype, bits, axis, G }) => {
    const outer = 3, T = 64, D = 64;
    const data = gaussian(outer * T * D, 7 + bits, 2);
    for (let d = 0; d < D; d++) data[d] = 0.75; // a zero-range channel group (and token groups) in row 0
    for (let i = 0; i < D; i++) data[5 * D + i] = -1.5;
    const { t, values } = await rounded(data, [outer, T, D], dtype);
    const q = kv.quantize(t, { bits, axis, groupSize: G });
    const ref = quantizeRef(values, outer, T, D, bits, G, axis, dtype);
    expect(firstMismatch(await q.codes.data(), ref.codes)).toBeNull();
    expect(firstMismatch(await f32(q.scale), ref.scale)).toBeNull();
    expect(firstMismatch(await f32(q.min), ref.min)).toBeNull();
    const deq = await f32(kv.dequantize(q));
    const tol = dtype === 'float32' ? 1e-6 : dtype === 'float16' ? 1e-3 : 8e-3;
    expect(relErr(deq, ref.deq)).toBeLessThan(tol);
  });
});

describe('KIVI error figures (spec §1(e), §11.2)', () => {
  it('N(0,1) groups of 32: relative RMSE 2-bit 0.393, 4-bit 0.078, 8-bit 0.0046', async () => {
    const x = gaussian(65536 * 32, 3);
    const t = tensor(x, [65536, 32]);
    const want: Record<number, [number, number]> = { 2: [0.393, 0.005], 4: [0.078, 0.002], 8: [0.0046, 0.0002] };
    for (const bits of [2, 4, 8] as const) {
      const deq = await f32(kv.dequantize(kv.quantize(t, { bits, axis: 'token', groupSize: 32 })));
      const e = relErr(deq, x);
      expect(Math.abs(e - want[bits][0]), `bits ${bits}: ${e}`).toBeLessThanOrEqual(want[bits][1]);
    }
  });

  it('keys with outlier channels: per-channel beats per-token by >= 2x at 2 bits', async () => {
    const T = 4096, D = 128;
    const u = gaussian(D * 2, 11);
    const chScale = Array.from({ length: D }, (_, d) => Math.exp(0.5 * u[d]) * ([3, 17, 64, 100].includes(d) ? 10 : 1));
    const g = gaussian(T * D, 12);
    const x = new Float32Array(T * D);
    for (let t = 0; t < T; t++) for (let d = 0; d < D; d++) x[t * D + d] = (g[t * D + d] + u[D + d]) * chScale[d];
    const k = tensor(x, [1, T, D]);
    const errOf = async (axis: 'channel' | 'token') => relErr(await f32(kv.dequantize(kv.quantize(k, { bits: 2, axis, groupSize: 32 }))), x);
    const perChannel = await errOf('channel'), perToken = await errOf('token');
    expect(perToken / perChannel).toBeGreaterThanOrEqual(2);
  });

  it('a zero-range group dequantizes exactly (no NaN), float16 and float32, both axes', async () => {
    for (const dtype of ['float16', 'float32'] as const)
      for (const axis of ['channel', 'token'] as const) {
        const x = new Float32Array(32 * 32).fill(-3.25);
        const { t, values } = await rounded(x, [32, 32], dtype);
        const q = kv.quantize(t, { bits: 2, axis, groupSize: 32 });
        expect(Array.from(await f32(q.scale)).every((s) => s === 0)).toBe(true);
        expect(Array.from(await f32(kv.dequantize(q)))).toEqual(Array.from(values));
      }
  });
});

// ---- the cache -------------------------------------------------------------------------------

interface CacheCase {
  B: number;
  Hk: number;
  gqa: number;
  D: number;
  G: number;
  R: number;
  keyBits: KvBits;
  valueBits: KvBits;
  lengths: number[];
  dtype?: KvFloatDType;
  maxTokens?: number;
  splits?: number;
}

function spec(c: CacheCase): CacheSpec {
  return { B: c.B, Hk: c.Hk, D: c.D, G: c.G, R: c.R, keyBits: c.keyBits, valueBits: c.valueBits, dtype: c.dtype ?? 'float16' };
}

function makeCache(c: CacheCase, device: Device = 'cpu'): KiviCache {
  return kv.createCache({
    format: 'kivi', keyBits: c.keyBits, valueBits: c.valueBits, groupSize: c.G, residual: c.R, batch: c.B, kvHeads: c.Hk,
    headDim: c.D, maxTokens: c.maxTokens ?? Math.max(...c.lengths, 1), dtype: c.dtype ?? 'float16', device,
  });
}

/** Live contents of a cache as comparable arrays: pages in use and live tail slots. */
async function snapshot(cache: KiviCache): Promise<Record<string, number[]>> {
  const s = cache.state();
  const C = cache.residual + cache.groupSize, D = cache.headDim;
  const kt = await f32(s.kTail), vt = await f32(s.vTail);
  const tail: number[] = [];
  cache.lengths.forEach((L, b) => {
    for (let h = 0; h < cache.kvHeads; h++)
      for (let t = cache.quantizedTokens(L); t < L; t++) {
        const o = ((b * cache.kvHeads + h) * C + (t % C)) * D;
        tail.push(...kt.subarray(o, o + D), ...vt.subarray(o, o + D));
      }
  });
  return {
    kCodes: Array.from(await s.kCodes.data()), kScale: Array.from(await f32(s.kScale)), kMin: Array.from(await f32(s.kMin)),
    vCodes: Array.from(await s.vCodes.data()), vScale: Array.from(await f32(s.vScale)), vMin: Array.from(await f32(s.vMin)),
    lengths: Array.from(await s.lengths.data()), tail,
  };
}

/** k, v [B, Hk, T, D] rounded to the cache dtype. */
async function tokens(c: CacheCase, T: number, seed: number, device: Device = 'cpu') {
  const dtype = c.dtype ?? 'float16';
  const k = await rounded(gaussian(c.B * c.Hk * T * c.D, seed, 1.5), [c.B, c.Hk, T, c.D], dtype, device);
  const v = await rounded(gaussian(c.B * c.Hk * T * c.D, seed + 1), [c.B, c.Hk, T, c.D], dtype, device);
  return { k, v };
}

/** Tokens [t0, t1) of x [B, Hk, T, D] as a new tensor. */
function tokenSlice(x: Float32Array, c: CacheCase, T: number, t0: number, t1: number, device: Device = 'cpu'): Tensor {
  const n = t1 - t0, out = new Float32Array(c.B * c.Hk * n * c.D);
  for (let bh = 0; bh < c.B * c.Hk; bh++) out.set(x.subarray((bh * T + t0) * c.D, (bh * T + t1) * c.D), bh * n * c.D);
  return tensor(out, [c.B, c.Hk, n, c.D], { device }).cast(c.dtype ?? 'float16');
}

describe('KiviCache: streaming appends and a one-shot prefill', () => {
  const c: CacheCase = { B: 2, Hk: 2, gqa: 1, D: 32, G: 32, R: 32, keyBits: 2, valueBits: 4, lengths: [], maxTokens: 200 };
  it('one token at a time, random chunks and prefill give identical codes, scales, mins and tails', async () => {
    const T = 170;
    const { k, v } = await tokens(c, T, 21);
    const oneShot = makeCache(c);
    oneShot.prefill(k.t, v.t);
    const byToken = makeCache(c);
    for (let t = 0; t < T; t++) byToken.append(tokenSlice(k.values, c, T, t, t + 1), tokenSlice(v.values, c, T, t, t + 1));
    const chunked = makeCache(c);
    const u = lcg(5);
    for (let t = 0; t < T;) {
      const n = Math.min(T - t, 1 + Math.floor(u() * 70));
      chunked.append(tokenSlice(k.values, c, T, t, t + n), tokenSlice(v.values, c, T, t, t + n));
      t += n;
    }
    const want = await snapshot(oneShot);
    expect(want.lengths).toEqual([T, T]);
    expect(await snapshot(byToken)).toEqual(want);
    expect(await snapshot(chunked)).toEqual(want);
    // The pages hold exactly the oracle's codes of the first Q tokens of each (b, h).
    const Q = quantizedTokens(T, c.R, c.G);
    expect(Q).toBe(128);
    const P = oneShot.pages;
    for (let bh = 0; bh < c.B * c.Hk; bh++) {
      const kRef = quantizeRef(k.values.subarray(bh * T * c.D, (bh * T + Q) * c.D), 1, Q, c.D, 2, c.G, 'channel', 'float16');
      const words = (c.G * 2) / 32;
      expect(want.kCodes.slice(bh * P * c.D * words, (bh * P * c.D + Q / c.G * c.D) * words)).toEqual(Array.from(kRef.codes));
      const vRef = quantizeRef(v.values.subarray(bh * T * c.D, (bh * T + Q) * c.D), 1, Q, c.D, 4, c.G, 'token', 'float16');
      const vw = (c.D * 4) / 32;
      expect(want.vCodes.slice(bh * P * c.G * vw, (bh * P * c.G + Q) * vw)).toEqual(Array.from(vRef.codes));
    }
    for (const x of [oneShot, byToken, chunked]) x.dispose();
  });

  it('ragged prefill equals per-sequence streaming', async () => {
    const T = 150, lengths = [150, 37];
    const { k, v } = await tokens(c, T, 31);
    const a = makeCache(c);
    a.prefill(k.t, v.t, lengths);
    expect(a.lengths).toEqual(lengths);
    const b = makeCache(c);
    b.prefill(tokenSlice(k.values, c, T, 0, 37), tokenSlice(v.values, c, T, 0, 37));
    // the longer sequence continues; the shorter one must not change: prefill again ragged
    const b2 = makeCache(c);
    b2.prefill(k.t, v.t, [100, 37]);
    b2.prefill(k.t, v.t, lengths); // prefill replaces the contents
    expect(await snapshot(b2)).toEqual(await snapshot(a));
    const sa = await snapshot(a), sb = await snapshot(b);
    // sequence 1 (37 tokens: no page yet) has the same tail in both
    expect(quantizedTokens(37, c.R, c.G)).toBe(0);
    expect(sb.lengths).toEqual([37, 37]);
    expect(sa.tail.slice(-c.Hk * 37 * 2 * c.D)).toEqual(sb.tail.slice(-c.Hk * 37 * 2 * c.D));
    for (const x of [a, b, b2]) x.dispose();
  });
});

/** Fills a cache by prefill (ragged) and checks attend against float64 attention over the dequantized contents. */
async function checkAttend(c: CacheCase, device: Device = 'cpu', chunked = false): Promise<void> {
  const T = Math.max(...c.lengths, 1), Hq = c.Hk * c.gqa, dtype = c.dtype ?? 'float16';
  const { k, v } = await tokens(c, T, 41 + T, device);
  const cache = makeCache(c, device);
  if (chunked) {
    // grow every sequence to T, streaming in two pieces
    const cut = Math.floor(T / 3);
    cache.prefill(tokenSlice(k.values, c, T, 0, cut, device), tokenSlice(v.values, c, T, 0, cut, device));
    cache.append(tokenSlice(k.values, c, T, cut, T, device), tokenSlice(v.values, c, T, cut, T, device));
  } else {
    cache.prefill(k.t, v.t, c.lengths);
  }
  const lengths = cache.lengths.slice();
  const q = await rounded(gaussian(c.B * Hq * c.D, 99 + T, 1.5), [c.B, Hq, c.D], dtype, device);
  const res = cache.attend(q.t as Tensor<never>, { returnLse: true, splits: c.splits });
  const cont = cacheContents(k.values, v.values, T, lengths, spec(c));
  const scale = 1 / Math.sqrt(c.D);
  const ref = decodeRef(q.values, cont.k, cont.v, c.B, Hq, c.Hk, T, c.D, lengths, scale);
  const out = await f32(res.out), lse = await f32(res.lse);
  const outTol = dtype === 'float32' ? 1e-3 : dtype === 'float16' ? 2e-3 : 1e-2; // output rounding to the dtype included
  expect(relErr(out, ref.out), JSON.stringify(c)).toBeLessThanOrEqual(outTol);
  for (let i = 0; i < lse.length; i++) {
    if (ref.lse[i] === -Infinity) expect(lse[i]).toBe(-Infinity);
    else expect(Math.abs(lse[i] - ref.lse[i])).toBeLessThanOrEqual(1e-3 * (1 + Math.abs(ref.lse[i])));
  }
  cache.dispose();
}

describe('KiviCache.attend ≡ attention over the dequantized cache (rel. error ≤ 1e-3)', () => {
  it.each([1, 4, 8])('GQA %i, float32 cache (kernel error only), ragged batch with an empty sequence', async (gqa) => {
    await checkAttend({ B: 3, Hk: 2, gqa, D: 64, G: 32, R: 32, keyBits: 2, valueBits: 2, lengths: [197, 0, 64], dtype: 'float32' });
  });

  // G = 32, D = 128 with 1 or 2 query heads per KV head and 2/4-bit codes take the CPU's narrow fast
  // path (codes never expanded); G = 32, D = 64/128/256, up to 16 heads per KV head, 2/4/8-bit take
  // the head-blocked fast path; the rest take the tile path.
  it.each([[2, 2, 1], [2, 4, 2], [4, 2, 1], [4, 4, 2], [8, 2, 1]] as const)('fast path: keyBits %i, valueBits %i, GQA %i, D = 128, G = 32', async (kb, vb, gqa) => {
    await checkAttend({ B: 3, Hk: 2, gqa, D: 128, G: 32, R: 32, keyBits: kb, valueBits: vb, lengths: [230, 0, 70], dtype: 'float32' });
    await checkAttend({ B: 2, Hk: 1, gqa, D: 128, G: 32, R: 32, keyBits: kb, valueBits: vb, lengths: [300, 129], dtype: 'float16', splits: 2 });
  });

  it.each([[2, 2, 4, 128], [4, 2, 8, 128], [2, 4, 8, 128], [8, 8, 4, 128], [2, 8, 3, 64], [4, 4, 8, 256], [8, 2, 16, 64], [2, 2, 5, 256]] as const)(
    'head-blocked fast path: keyBits %i, valueBits %i, GQA %i, D = %i, G = 32', async (kb, vb, gqa, D) => {
      await checkAttend({ B: 2, Hk: 2, gqa, D, G: 32, R: 32, keyBits: kb, valueBits: vb, lengths: [230, 70], dtype: 'float32' });
      await checkAttend({ B: 1, Hk: 1, gqa, D, G: 32, R: 32, keyBits: kb, valueBits: vb, lengths: [300], dtype: 'float16', splits: 2 });
    });

  it('every tail length 0 ... R + G - 1 (R = 32, G = 16, 4-bit K, 2-bit V)', async () => {
    const R = 32, G = 16;
    const lengths: number[] = [];
    for (let tail = 0; tail < R + G; tail++) lengths.push(tail < R + G && tail >= R ? 3 * G + tail : tail); // tails < R: no pages yet
    for (let tail = R; tail < R + G; tail++) expect(lengths[tail] - quantizedTokens(lengths[tail], R, G)).toBe(tail);
    // batch of all 48 tail lengths at once
    await checkAttend({ B: lengths.length, Hk: 1, gqa: 2, D: 32, G, R, keyBits: 4, valueBits: 2, lengths, dtype: 'float32' });
  });

  it('R = 0 (every full group quantized), 8-bit, split count forced', async () => {
    await checkAttend({ B: 2, Hk: 1, gqa: 4, D: 32, G: 8, R: 0, keyBits: 8, valueBits: 8, lengths: [77, 8], dtype: 'float32', splits: 3 });
  });

  it.each(['float16', 'bfloat16'] as const)('%s cache, streamed', async (dtype) => {
    await checkAttend({ B: 2, Hk: 2, gqa: 4, D: 128, G: 32, R: 64, keyBits: 2, valueBits: 4, lengths: [300, 300], dtype }, 'cpu', true);
  });
});

describe('KiviCache accounting', () => {
  it('bitsPerElement = 3.05 for 2-bit, G = 32, R = 128, float16 at T = 32,768', async () => {
    const T = 32768, D = 32;
    const cache = kv.createCache({ format: 'kivi', keyBits: 2, valueBits: 2, groupSize: 32, residual: 128, batch: 1, kvHeads: 1, headDim: D, maxTokens: T });
    expect(cache.bitsPerElement).toBe(0);
    const x = tensor(gaussian(T * D, 1), [1, 1, T, D]).cast('float16');
    cache.prefill(x, x);
    expect(cache.bitsPerElement).toBeCloseTo(3 + (13 * 128) / T, 10);
    expect(cache.bitsPerElement.toFixed(2)).toBe('3.05');
    // storage: codes + fp16 scale/min for 32,640 tokens' pages, a 160-token tail, lengths
    const pages = (T - 128) / 32;
    expect(cache.pages).toBe(pages);
    expect(cache.bytes).toBe(2 * pages * 32 * D * 2 / 8 + 2 * pages * 32 * D * 2 * 2 / 32 + 2 * 160 * D * 2 + 4);
    cache.dispose();
    expect(cache.bytes).toBe(0);
  });
});

describe('bad inputs: clear errors, cache unchanged', () => {
  const base = { format: 'kivi', keyBits: 2, valueBits: 2, groupSize: 32, residual: 32, batch: 2, kvHeads: 2, headDim: 64, maxTokens: 100 } as const;

  it('createCache rejects bad options', () => {
    expect(() => kv.createCache({ ...base, keyBits: 3 as KvBits })).toThrow(expect.objectContaining({
      code: 'ERR_INVALID_ARG_VALUE', message: 'kv.createCache: keyBits must be 2, 4 or 8, got the number 3' }));
    expect(() => kv.createCache({ ...base, groupSize: 48 })).toThrow(expect.objectContaining({
      code: 'ERR_SPARQ_SHAPE', message: 'kv.createCache: groupSize 48 must divide headDim 64' }));
    expect(() => kv.createCache({ ...base, groupSize: 8 })).toThrow(expect.objectContaining({
      code: 'ERR_INVALID_ARG_VALUE', message: 'kv.createCache: groupSize must be a multiple of 16 (32 / bits), got 8' }));
    expect(() => kv.createCache({ ...base, format: 'zip' as 'kivi' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
    expect(() => kv.createCache({ ...base, headDim: 512, groupSize: 32 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
    expect(() => kv.createCache({ ...base, dtype: 'int8' as KvFloatDType })).toThrow(expect.objectContaining({ code: 'ERR_SPARQ_DTYPE' }));
  });

  it('quantize rejects bad bits, group sizes and shapes', () => {
    const x = tensor(new Float32Array(64 * 48), [64, 48]);
    expect(() => kv.quantize(x, { bits: 3 as KvBits, axis: 'token', groupSize: 16 })).toThrow(expect.objectContaining({
      code: 'ERR_INVALID_ARG_VALUE', message: 'kv.quantize: bits must be 2, 4 or 8, got 3' }));
    expect(() => kv.quantize(x, { bits: 2, axis: 'token', groupSize: 32 })).toThrow(expect.objectContaining({
      code: 'ERR_SPARQ_SHAPE', message: 'kv.quantize: groupSize 32 must divide the channel count D = 48 (axis \'token\')' }));
    expect(() => kv.quantize(x, { bits: 2, axis: 'channel', groupSize: 24 })).toThrow(expect.objectContaining({
      code: 'ERR_INVALID_ARG_VALUE', message: 'kv.quantize: groupSize must be a multiple of 16 (32 / bits), got 24' }));
    expect(() => kv.quantize(x, { bits: 2, axis: 'channel', groupSize: 48 })).toThrow(expect.objectContaining({
      code: 'ERR_SPARQ_SHAPE', message: 'kv.quantize: groupSize 48 must divide the token count T = 64 (axis \'channel\')' }));
    expect(() => kv.quantize(x, { bits: 2, axis: 'rows' as 'token', groupSize: 16 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
    expect(() => kv.quantize(tensor(new Int32Array(32), [1, 32]) as never, { bits: 2, axis: 'token', groupSize: 16 }))
      .toThrow(expect.objectContaining({ code: 'ERR_SPARQ_DTYPE' }));
  });

  it('append past maxTokens, wrong shapes or dtypes fail and leave the cache unchanged', async () => {
    const c: CacheCase = { B: 2, Hk: 2, gqa: 2, D: 64, G: 32, R: 32, keyBits: 2, valueBits: 2, lengths: [], maxTokens: 100 };
    const cache = makeCache(c);
    const { k, v } = await tokens(c, 90, 3);
    cache.prefill(k.t, v.t);
    const q = (await rounded(gaussian(2 * 4 * 64, 5), [2, 4, 64], 'float16')).t as Tensor<never>;
    const before = await snapshot(cache);
    const outBefore = await f32(cache.attend(q));
    const more = await tokens(c, 11, 4);
    expect(() => cache.append(more.k.t as Tensor<never>, more.v.t as Tensor<never>)).toThrow(expect.objectContaining({
      code: 'ERR_INVALID_ARG_VALUE', message: 'KiviCache.append: sequence 0 would hold 101 tokens, more than maxTokens = 100' }));
    const wrongHeads = (await rounded(new Float32Array(2 * 3 * 64), [2, 3, 1, 64], 'float16')).t;
    expect(() => cache.append(wrongHeads as Tensor<never>, wrongHeads as Tensor<never>)).toThrow(expect.objectContaining({
      code: 'ERR_SPARQ_SHAPE', message: 'KiviCache.append: k must have shape [B, Hk, n, D] = [2, 2, n, 64], got [2, 3, 1, 64]' }));
    const f32tok = tensor(new Float32Array(2 * 2 * 64), [2, 2, 1, 64]);
    expect(() => cache.append(f32tok as Tensor<never>, f32tok as Tensor<never>)).toThrow(expect.objectContaining({
      code: 'ERR_SPARQ_DTYPE', message: 'KiviCache.append: k must be float16 (the cache dtype), got float32' }));
    expect(() => cache.prefill(more.k.t as Tensor<never>, more.v.t as Tensor<never>, [12, 0])).toThrow(expect.objectContaining({
      code: 'ERR_INVALID_ARG_VALUE', message: 'KiviCache.prefill: lengths[0] must be an integer in [0, 11] (the tokens given), got the number 12' }));
    expect(() => cache.prefill(more.k.t as Tensor<never>, more.v.t as Tensor<never>, [1])).toThrow(expect.objectContaining({ code: 'ERR_SPARQ_SHAPE' }));
    expect(() => cache.attend(tensor(new Float32Array(2 * 3 * 64), [2, 3, 64]).cast('float16') as Tensor<never>)).toThrow(expect.objectContaining({
      code: 'ERR_SPARQ_SHAPE', message: 'KiviCache.attend: the query heads Hq = 3 must be a multiple of the KV heads Hk = 2' }));
    expect(() => cache.attend(tensor(new Float32Array(2 * 4 * 32), [2, 4, 32]).cast('float16') as Tensor<never>)).toThrow(expect.objectContaining({ code: 'ERR_SPARQ_SHAPE' }));
    expect(cache.lengths).toEqual([90, 90]);
    expect(await snapshot(cache)).toEqual(before);
    expect(Array.from(await f32(cache.attend(q)))).toEqual(Array.from(outBefore));
    // exactly up to maxTokens works
    const fit = await tokens(c, 10, 6);
    cache.append(fit.k.t as Tensor<never>, fit.v.t as Tensor<never>);
    expect(cache.lengths).toEqual([100, 100]);
    cache.dispose();
    expect(() => cache.attend(q)).toThrow(expect.objectContaining({ code: 'ERR_SPARQ_DISPOSED' }));
  });
});

describe('the stateless native cache ops', () => {
  it('a lengths tensor that does not fit the cache fails the queued op (data error) and writes nothing', async () => {
    const c: CacheCase = { B: 2, Hk: 2, gqa: 1, D: 64, G: 32, R: 32, keyBits: 2, valueBits: 2, lengths: [], maxTokens: 100 };
    const cache = makeCache(c);
    const { k, v } = await tokens(c, 70, 13);
    cache.prefill(k.t, v.t);
    const before = await snapshot(cache);
    const s = cache.state();
    const state = [s.kCodes, s.kScale, s.kMin, s.vCodes, s.vScale, s.vMin, s.kTail, s.vTail].map((t) => t._handle);
    const lengths = tensor(Int32Array.from([70, 5000]), [2]);
    internal.native().kvAppend('kv.append', state, 2, 2, 32, 32, lengths._handle, k.t._handle, v.t._handle, null);
    await expect(lengths.data()).rejects.toMatchObject({
      code: 'ERR_INVALID_ARG_VALUE', message: expect.stringContaining('a length in the lengths tensor is outside [0, capacity]') });
    expect(Array.from(await lengths.data())).toEqual([70, 5000]);
    expect(await snapshot(cache)).toEqual(before);
    const q = (await rounded(gaussian(2 * 2 * 64, 5), [2, 2, 64], 'float16')).t;
    internal.native().kvAttend('kv.attend', state, 2, 2, 32, 32, lengths._handle, q._handle, undefined, false, 0);
    await expect(lengths.data()).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
    cache.dispose();
  });
});

// The CPU quantize and attend kernels are compiled for x86-64-v4 (AVX-512), x86-64-v3 (AVX2) and the
// portable baseline (each its own vector width); SPARQ_CPU_ISA, read at each op call, picks a level
// below the CPU's. Each level must give the oracle's codes bit for bit, including the groups whose
// min or max is a signed zero (the first zero in scan order decides its sign) or that hold NaNs.
describe('CPU kernel ISA levels', () => {
  async function withLevel(level: string | undefined, fn: () => Promise<void>): Promise<void> {
    await synchronize('cpu');
    const saved = process.env.SPARQ_CPU_ISA;
    if (level === undefined) delete process.env.SPARQ_CPU_ISA;
    else process.env.SPARQ_CPU_ISA = level;
    try {
      await fn();
    } finally {
      await synchronize('cpu');
      if (saved === undefined) delete process.env.SPARQ_CPU_ISA;
      else process.env.SPARQ_CPU_ISA = saved;
    }
  }

  /** Gaussian rows, with token groups (row r, channels [0, 32)) and channel groups (channel c) that have edge cases. */
  function edgeData(outer: number, T: number, D: number, seed: number): Float32Array {
    const x = gaussian(outer * T * D, seed, 2);
    const zeroMin = [[-0, 0], [0, -0]], zeroMax = [[0, -0], [-0, 0]];
    for (let o = 0; o < outer; o++) {
      const row = (t: number) => (o * T + t) * D;
      // token groups: zero extremes of both signs (in both orders), NaN first, NaN later
      for (let i = 0; i < 2; i++) {
        const a = row(i), b = row(2 + i);
        for (let j = 0; j < 32; j++) x[a + j] = 0.25 + j / 8; // min zero: the two zeros decide its sign
        x[a + 3] = zeroMin[i][0];
        x[a + 17] = zeroMin[i][1];
        for (let j = 0; j < 32; j++) x[b + j] = -0.25 - j / 8;
        x[b + 5] = zeroMax[i][0];
        x[b + 30] = zeroMax[i][1];
      }
      x[row(4)] = NaN;
      x[row(5) + 9] = NaN;
      x[row(6) + 31] = -Infinity;
      // channel groups (tokens 0..31 of channel 40 + i): the same cases along tokens
      for (let i = 0; i < 2; i++) {
        for (let t = 0; t < 32; t++) x[row(t) + 40 + i] = 0.5 + t / 16;
        x[row(2) + 40 + i] = zeroMin[i][0];
        x[row(20) + 40 + i] = zeroMin[i][1];
      }
      x[row(0) + 44] = NaN;
      x[row(7) + 45] = NaN;
    }
    return x;
  }

  function sameBits(got: ArrayLike<number>, want: ArrayLike<number>): string | null {
    if (got.length !== want.length) return `length ${got.length} vs ${want.length}`;
    for (let i = 0; i < want.length; i++) if (!Object.is(got[i], want[i]) && !(Number.isNaN(got[i]) && Number.isNaN(want[i]))) return `[${i}] ${show(got[i])} vs ${show(want[i])}`;
    return null;
  }
  const show = (x: number) => (Object.is(x, -0) ? '-0' : String(x));

  for (const level of [undefined, 'x86-64-v3', 'baseline']) {
    const name = level ?? 'default';
    it(`SPARQ_CPU_ISA=${name}: quantize equals the oracle bit for bit (signed-zero and NaN groups, every bits, G, dtype)`, async () => {
      await withLevel(level, async () => {
        const outer = 2, T = 64, D = 96;
        for (const dtype of ['float32', 'float16', 'bfloat16'] as const)
          for (const bits of [2, 4, 8] as const)
            for (const G of bits === 2 ? [16, 32] : [8, 32])
              for (const axis of ['channel', 'token'] as const) {
                const { t, values } = await rounded(edgeData(outer, T, D, 3 + bits + G), [outer, T, D], dtype);
                const q = kv.quantize(t, { bits, axis, groupSize: G });
                const ref = quantizeRef(values, outer, T, D, bits, G, axis, dtype);
                const what = `${dtype} ${bits}-bit ${axis} G=${G}`;
                expect(firstMismatch(await q.codes.data(), ref.codes), what).toBeNull();
                expect(sameBits(await f32(q.scale), ref.scale), what).toBeNull();
                expect(sameBits(await f32(q.min), ref.min), what).toBeNull();
                for (const x of [t, q.codes, q.scale, q.min]) x.dispose();
              }
      });
    });

    it(`SPARQ_CPU_ISA=${name}: prefill's pages equal the oracle's per-channel / per-token quantization`, async () => {
      await withLevel(level, async () => {
        for (const [kb, vb, D] of [[2, 4, 128], [4, 2, 64], [8, 8, 256]] as const) {
          const c: CacheCase = { B: 1, Hk: 2, gqa: 1, D, G: 32, R: 32, keyBits: kb, valueBits: vb, lengths: [32 + 4 * 32], dtype: 'float16' };
          const T = c.lengths[0], P = 4;
          const k = await rounded(edgeData(c.Hk, T, D, 11 + D), [1, c.Hk, T, D], 'float16');
          const v = await rounded(edgeData(c.Hk, T, D, 12 + D), [1, c.Hk, T, D], 'float16');
          const cache = makeCache(c);
          cache.prefill(k.t, v.t);
          const st = cache.state();
          const pages = (x: Float32Array) => {
            const out = new Float32Array(c.Hk * P * 32 * D);
            for (let h = 0; h < c.Hk; h++) out.set(x.subarray(h * T * D, h * T * D + P * 32 * D), h * P * 32 * D);
            return out;
          };
          const kr = quantizeRef(pages(k.values), c.Hk, P * 32, D, kb, 32, 'channel', 'float16');
          const vr = quantizeRef(pages(v.values), c.Hk, P * 32, D, vb, 32, 'token', 'float16');
          const what = `${kb}/${vb}-bit D=${D}`;
          expect(firstMismatch(await st.kCodes.data(), kr.codes), what).toBeNull();
          expect(sameBits(await f32(st.kScale), kr.scale), what).toBeNull();
          expect(sameBits(await f32(st.kMin), kr.min), what).toBeNull();
          expect(firstMismatch(await st.vCodes.data(), vr.codes), what).toBeNull();
          expect(sameBits(await f32(st.vScale), vr.scale), what).toBeNull();
          expect(sameBits(await f32(st.vMin), vr.min), what).toBeNull();
          cache.dispose();
          k.t.dispose();
          v.t.dispose();
        }
      });
    });

    it(`SPARQ_CPU_ISA=${name}: attend fast paths (narrow and head-blocked) and the tile path match the oracle`, async () => {
      await withLevel(level, async () => {
        for (const [kb, vb, gqa, D, G] of [[2, 2, 1, 128, 32], [4, 4, 2, 128, 32], [2, 2, 8, 128, 32], [4, 8, 4, 64, 32], [8, 2, 8, 256, 32], [2, 4, 4, 64, 16]] as const)
          await checkAttend({ B: 2, Hk: 2, gqa, D, G, R: 32, keyBits: kb, valueBits: vb, lengths: [200, 75], dtype: 'float16', splits: 2 });
      });
    });
  }
});

describe('CUDA', () => {
  it.skipIf(cudaReason !== null)(`quantize codes equal the CPU's bit for bit ${CUDA_TITLE}`, async () => {
    for (const dtype of ['float32', 'float16', 'bfloat16'] as const)
      for (const bits of [2, 4, 8] as const)
        for (const axis of ['channel', 'token'] as const) {
          const { t } = await rounded(gaussian(4 * 64 * 128, bits, 3), [4, 64, 128], dtype);
          const cpu = kv.quantize(t, { bits, axis, groupSize: 32 });
          const gpu = kv.quantize(t.to('cuda'), { bits, axis, groupSize: 32 });
          expect(firstMismatch(await gpu.codes.data(), await cpu.codes.data())).toBeNull();
          expect(firstMismatch(await f32(gpu.scale), await f32(cpu.scale))).toBeNull();
          expect(firstMismatch(await f32(kv.dequantize(gpu)), await f32(kv.dequantize(cpu)))).toBeNull();
        }
  });

  it.skipIf(cudaReason !== null)(`cache streaming and attend match the CPU ${CUDA_TITLE}`, async () => {
    const c: CacheCase = { B: 3, Hk: 2, gqa: 4, D: 128, G: 32, R: 64, keyBits: 2, valueBits: 4, lengths: [300, 0, 129], maxTokens: 320 };
    const T = 300;
    const { k, v } = await tokens(c, T, 8);
    const cpu = makeCache(c), gpu = makeCache(c, 'cuda');
    cpu.prefill(k.t, v.t, c.lengths);
    gpu.prefill(k.t.to('cuda'), v.t.to('cuda'), c.lengths);
    for (let i = 0; i < 5; i++) {
      const one = await tokens(c, 1, 50 + i);
      cpu.append(one.k.t as Tensor<never>, one.v.t as Tensor<never>);
      gpu.append(one.k.t.to('cuda') as Tensor<never>, one.v.t.to('cuda') as Tensor<never>);
    }
    expect(await snapshot(gpu)).toEqual(await snapshot(cpu));
    const q = (await rounded(gaussian(3 * 8 * 128, 9), [3, 8, 128], 'float16')).t as Tensor<never>;
    for (const dev of ['cpu', 'cuda'] as const) await checkAttend({ ...c, lengths: [300, 0, 129] }, dev);
    const a = await f32(cpu.attend(q)), b = await f32(gpu.attend(q.to('cuda')));
    expect(relErr(b, a)).toBeLessThanOrEqual(2e-3);
    cpu.dispose();
    gpu.dispose();
  });
});
