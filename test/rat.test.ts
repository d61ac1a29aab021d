// RAT (rat.scan, rat.attention, rat.forward, rat.createCache): the CPU backend against the float64
// oracle (test/oracle/rat.ts) on inputs first rounded to the dtype, the limit cases L = T and L = 1,
// prefill ≡ token-by-token decode (across chunk boundaries, partial chunks, ragged batches), the
// head -> group mapping, and bad inputs. CUDA twins compare against the oracle and the CPU.
import { describe, expect, it } from 'vitest';

import {
  type Device, type FloatDType, type Tensor, attention, memory, synchronize, bfloat16Bits, bfloat16Value, float16Bits, float16Value, rat, rope, tensor, zeros,
} from '../lib/index.js';
import { type RatDims, ratAttentionRef, ratRef, ratScanRef } from './oracle/rat.js';
import { CUDA_TITLE, cudaReason, gaussian, lcg, relErr } from './helpers.js';

const TOL: Record<FloatDType, number> = { float32: 2e-5, float16: 3e-3, bfloat16: 2e-2 };

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const rounder: Record<FloatDType, (x: number) => number> = {
  float32: (x) => Math.fround(x),
  float16: (x) => float16Value(float16Bits(x)),
  bfloat16: (x) => bfloat16Value(bfloat16Bits(x)),
};

interface Case extends RatDims {
  dtype?: FloatDType;
  bias?: boolean;
  ropeBase?: number;
  scale?: number;
  seed?: number;
}

interface Inputs {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  gate: Tensor;
  gateBias?: Tensor<'float32'>;
  host: { q: Float32Array; k: Float32Array; v: Float32Array; gate: Float32Array; bias?: Float32Array };
}

/** Random inputs of a case on `device`, and the values the device holds (rounded to the dtype). */
async function inputs(c: Case, device: Device = 'cpu'): Promise<Inputs> {
  const { B, H, Gq, Gk, T, D } = c;
  const dtype = c.dtype ?? 'float32';
  const seed = c.seed ?? 1;
  const make = (shape: number[], s: number, std = 1) => tensor(gaussian(shape.reduce((a, b) => a * b, 1), s, std), shape, { dtype, device });
  const q = make([B, Gq, T, D], seed);
  const k = make([B, Gk, T, D], seed + 1);
  const v = make([B, H, T, D], seed + 2);
  const gate = make([B, H, T, D], seed + 3, 2);
  const gateBias = c.bias ? tensor(gaussian(H * D, seed + 4), [H, D], { device }) : undefined;
  return {
    q, k, v, gate, gateBias,
    host: { q: await q.toFloat32(), k: await k.toFloat32(), v: await v.toFloat32(), gate: await gate.toFloat32(), bias: await gateBias?.toFloat32() },
  };
}

function label(c: Case): string {
  return JSON.stringify(c);
}

const ropeOpts = (c: Case) => (c.ropeBase === 0 ? { rope: false } : { ropeBase: c.ropeBase });

async function checkForward(c: Case, device: Device = 'cpu'): Promise<void> {
  const dtype = c.dtype ?? 'float32';
  const x = await inputs(c, device);
  const res = rat.forward(x.q, x.k, x.v, x.gate, { chunkSize: c.L, gateBias: x.gateBias, scale: c.scale, returnLse: true, ...ropeOpts(c) });
  const ref = ratRef(x.host.q, x.host.k, x.host.v, x.host.gate, c,
    { gateBias: x.host.bias, ropeBase: c.ropeBase, scale: c.scale, round: rounder[dtype] });
  expect(res.out.dtype).toBe(dtype);
  expect(res.out.shape).toEqual([c.B, c.H, c.T, c.D]);
  expect(relErr(await res.out.toFloat32(), ref.out), label(c)).toBeLessThanOrEqual(TOL[dtype]);
  expect(maxAbsDiff(await res.lse.toFloat32(), ref.lse), label(c)).toBeLessThanOrEqual(dtype === 'float32' ? 2e-5 : 5e-2);
}

// T not a multiple of L (partial last chunk), L = 1, L > T, key/query groups, gate bias, head dims.
const FORWARD_CASES: Case[] = [
  { B: 1, H: 2, Gq: 2, Gk: 2, T: 37, D: 16, L: 8 },
  { B: 2, H: 4, Gq: 2, Gk: 1, T: 50, D: 8, L: 16, bias: true },
  { B: 1, H: 3, Gq: 1, Gk: 3, T: 33, D: 32, L: 4, seed: 7 },
  { B: 1, H: 2, Gq: 2, Gk: 2, T: 20, D: 6, L: 1 },
  { B: 1, H: 2, Gq: 1, Gk: 1, T: 9, D: 4, L: 64 },
  { B: 1, H: 1, Gq: 1, Gk: 1, T: 130, D: 64, L: 3, seed: 3 }, // two 64-row tiles, 43 chunks
  { B: 1, H: 2, Gq: 2, Gk: 2, T: 40, D: 16, L: 5, ropeBase: 500, scale: 0.7 },
  { B: 1, H: 2, Gq: 2, Gk: 2, T: 40, D: 16, L: 5, ropeBase: 0 }, // NoPE
];

describe('rat.scan against the float64 oracle', () => {
  it('ṽ, k̃ and chunk finals: partial last chunk, L = 1, L > T, key groups, gate bias, all dtypes', async () => {
    const cases: Case[] = [
      { B: 2, H: 4, Gq: 1, Gk: 2, T: 23, D: 12, L: 5, bias: true },
      { B: 1, H: 2, Gq: 1, Gk: 1, T: 7, D: 3, L: 1 },
      { B: 1, H: 1, Gq: 1, Gk: 1, T: 7, D: 255, L: 10 }, // an odd D is fine for the scan
      ...(['float16', 'bfloat16'] as const).map((dtype) => ({ B: 1, H: 2, Gq: 1, Gk: 2, T: 19, D: 16, L: 4, dtype, bias: true })),
    ];
    for (const c of cases) {
      const dtype = c.dtype ?? 'float32';
      const x = await inputs(c);
      const s = rat.scan(x.v, x.k, x.gate, { chunkSize: c.L, gateBias: x.gateBias });
      const ref = ratScanRef(x.host.v, x.host.k, x.host.gate, c, { gateBias: x.host.bias });
      const Nc = Math.ceil(c.T / c.L);
      expect(s.kFinal.shape).toEqual([c.B, c.H, Nc, c.D]);
      const tol = dtype === 'float32' ? 1e-6 : TOL[dtype] / 4;
      expect(relErr(await s.vTilde.toFloat32(), ref.vTilde), label(c)).toBeLessThanOrEqual(tol);
      expect(relErr(await s.kTilde.toFloat32(), ref.kTilde), label(c)).toBeLessThanOrEqual(tol);
      expect(relErr(await s.vFinal.toFloat32(), ref.vFinal), label(c)).toBeLessThanOrEqual(tol);
      expect(relErr(await s.kFinal.toFloat32(), ref.kFinal), label(c)).toBeLessThanOrEqual(tol);
    }
  });

  it('the finals are exactly the rows of ṽ and k̃ at each chunk end', async () => {
    const c: Case = { B: 1, H: 2, Gq: 1, Gk: 1, T: 11, D: 4, L: 4, dtype: 'bfloat16' };
    const x = await inputs(c);
    const s = rat.scan(x.v, x.k, x.gate, { chunkSize: c.L });
    const kt = await s.kTilde.toFloat32();
    const kf = await s.kFinal.toFloat32();
    for (let h = 0; h < 2; h++) {
      for (const [j, t] of [[0, 3], [1, 7], [2, 10]]) {
        expect(Array.from(kf.subarray((h * 3 + j) * 4, (h * 3 + j + 1) * 4))).toEqual(Array.from(kt.subarray((h * 11 + t) * 4, (h * 11 + t + 1) * 4)));
      }
    }
  });
});

describe('rat.attention and rat.forward against the float64 oracle', () => {
  it('partial last chunk, L = 1, L > T, groups, bias, D = 4..64, ropeBase, scale, NoPE (out and LSE)', async () => {
    for (const c of FORWARD_CASES) await checkForward(c);
  });

  it('float16 and bfloat16 (float32 state and accumulation)', async () => {
    for (const dtype of ['float16', 'bfloat16'] as const) {
      await checkForward({ B: 2, H: 2, Gq: 1, Gk: 2, T: 45, D: 32, L: 8, dtype, bias: true });
    }
  });

  it('a multi-threaded size: T = 700, L = 16, H = 4, D = 128', async () => {
    await checkForward({ B: 1, H: 4, Gq: 2, Gk: 2, T: 700, D: 128, L: 16, seed: 11 });
  });

  it('attention alone on arbitrary k̃, ṽ matches its oracle; forward equals scan then attention', async () => {
    const c: Case = { B: 1, H: 4, Gq: 2, Gk: 1, T: 29, D: 16, L: 6, bias: true };
    const x = await inputs(c);
    const out = rat.attention(x.q, x.v, x.gate, { chunkSize: c.L });
    const ref = ratAttentionRef(x.host.q, x.host.v, x.host.gate, c);
    expect(relErr(await out.toFloat32(), ref.out)).toBeLessThanOrEqual(TOL.float32);
    const s = rat.scan(x.v, x.k, x.gate, { chunkSize: c.L, gateBias: x.gateBias });
    const two = await rat.attention(x.q, s.kTilde, s.vTilde, { chunkSize: c.L }).toFloat32();
    const one = await rat.forward(x.q, x.k, x.v, x.gate, { chunkSize: c.L, gateBias: x.gateBias }).toFloat32();
    expect(Array.from(one)).toEqual(Array.from(two));
  });
});

describe('limit cases', () => {
  it('L >= T: the output is exactly ṽ (a pure gated RNN), every dtype', async () => {
    for (const dtype of ['float32', 'float16', 'bfloat16'] as const) {
      for (const L of [25, 1000]) {
        const c: Case = { B: 2, H: 2, Gq: 1, Gk: 2, T: 25, D: 8, L, dtype };
        const x = await inputs(c);
        const y = rat.forward(x.q, x.k, x.v, x.gate, { chunkSize: L });
        const s = rat.scan(x.v, x.k, x.gate, { chunkSize: L });
        expect(Array.from(await y.toFloat32())).toEqual(Array.from(await s.vTilde.toFloat32()));
      }
    }
  });

  it('L = 1: causal softmax attention over ((1-g)k, (1-g)v) with token RoPE (checked with attention.sdpa and rope)', async () => {
    const c: Case = { B: 2, H: 4, Gq: 4, Gk: 4, T: 33, D: 16, L: 1 };
    const x = await inputs(c);
    const y = await rat.forward(x.q, x.k, x.v, x.gate, { chunkSize: 1 }).toFloat32();
    // (1 - g) k and (1 - g) v, then token RoPE on q and k and a causal sdpa.
    const g = x.host.gate.map((z) => 1 / (1 + Math.exp(-z)));
    const kg = tensor(x.host.k.map((kv, i) => (1 - g[i]) * kv), [2, 4, 33, 16]);
    const vg = tensor(x.host.v.map((vv, i) => (1 - g[i]) * vv), [2, 4, 33, 16]);
    const want = await attention.sdpa(rope(x.q), rope(kg), vg, { causal: true }).toFloat32();
    expect(relErr(y, want)).toBeLessThanOrEqual(1e-5);
  });
});

describe('head -> group mapping', () => {
  it('head h uses q and k group h % G (tiled, not interleaved)', async () => {
    const c: Case = { B: 1, H: 6, Gq: 2, Gk: 3, T: 21, D: 8, L: 4 };
    const x = await inputs(c);
    const y = await rat.forward(x.q, x.k, x.v, x.gate, { chunkSize: 4 }).toFloat32();
    // Expand groups to heads explicitly: head h <- group h % G.
    const expand = (src: Float32Array, G: number, map: (h: number) => number) => {
      const n = c.T * c.D;
      const out = new Float32Array(c.H * n);
      for (let h = 0; h < c.H; h++) out.set(src.subarray(map(h) * n, (map(h) + 1) * n), h * n);
      return tensor(out, [1, c.H, c.T, c.D]);
    };
    const tiled = await rat.forward(expand(x.host.q, 2, (h) => h % 2), expand(x.host.k, 3, (h) => h % 3), x.v, x.gate, { chunkSize: 4 }).toFloat32();
    expect(Array.from(y)).toEqual(Array.from(tiled));
    const inter = await rat.forward(expand(x.host.q, 2, (h) => Math.floor(h / 3)), expand(x.host.k, 3, (h) => Math.floor(h / 2)), x.v, x.gate,
      { chunkSize: 4 }).toFloat32();
    expect(relErr(inter, y)).toBeGreaterThan(1e-2);
  });
});

// ---- decode cache ----------------------------------------------------------------------------

/** Row t of a [B, G, T, D] tensor for every batch as a [B, G, D] tensor. */
function rowAt(host: Float32Array, B: number, G: number, T: number, D: number, t: number, dtype: FloatDType, device: Device, only?: number[]): Tensor {
  const out = new Float32Array(B * G * D);
  for (let b = 0; b < B; b++) {
    const tt = only ? only[b] : t;
    for (let g = 0; g < G; g++) out.set(host.subarray(((b * G + g) * T + tt) * D, ((b * G + g) * T + tt + 1) * D), (b * G + g) * D);
  }
  return tensor(out, [B, G, D], { dtype, device });
}

async function checkDecode(c: Case, prompt: number[], device: Device = 'cpu'): Promise<void> {
  const dtype = c.dtype ?? 'float32';
  const { B, H, Gq, Gk, T, D, L } = c;
  const x = await inputs(c, device);
  const full = await rat.forward(x.q, x.k, x.v, x.gate, { chunkSize: L, gateBias: x.gateBias, returnLse: true }).out.toFloat32();
  const cache = rat.createCache({ batch: B, heads: H, headDim: D, chunkSize: L, maxTokens: T + Math.max(...prompt), device, gateBias: x.gateBias });
  const { host } = x;
  const pre = cache.prefill(x.q, x.k, x.v, x.gate, { lengths: prompt });
  const preOut = await pre.toFloat32();
  // Prefill rows before each sequence's length are forward's rows.
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const o = ((b * H + h) * T) * D;
      expect(maxAbsDiff(preOut.subarray(o, o + prompt[b] * D), full.subarray(o, o + prompt[b] * D))).toBe(0);
    }
  }
  expect(cache.lengths).toEqual(prompt);
  // Then each sequence steps from its own position; every step's output is forward's row.
  const steps = T - Math.min(...prompt);
  let worst = 0;
  const pos = [...prompt];
  for (let s = 0; s < steps; s++) {
    const at = pos.map((p) => Math.min(p, T - 1)); // a sequence past T is fed its last row again and not compared
    const y = await cache.step(rowAt(host.q, B, Gq, T, D, 0, dtype, device, at), rowAt(host.k, B, Gk, T, D, 0, dtype, device, at),
      rowAt(host.v, B, H, T, D, 0, dtype, device, at), rowAt(host.gate, B, H, T, D, 0, dtype, device, at)).toFloat32();
    for (let b = 0; b < B; b++) {
      if (pos[b] >= T) continue;
      for (let h = 0; h < H; h++) {
        const want = full.subarray(((b * H + h) * T + at[b]) * D, ((b * H + h) * T + at[b] + 1) * D);
        const got = y.subarray((b * H + h) * D, (b * H + h + 1) * D);
        worst = Math.max(worst, relErr(got, want));
      }
    }
    for (let b = 0; b < B; b++) pos[b] += 1;
  }
  expect(worst, `${label(c)} prompt ${prompt}`).toBeLessThanOrEqual(dtype === 'float32' ? 1e-5 : TOL[dtype]);
  expect(cache.lengths).toEqual(pos);
  cache.dispose();
}

describe('rat decode cache', () => {
  it('prefill ≡ token-by-token decode across chunk boundaries and a partial last chunk (from 0, mid-chunk and chunk-end prompts)', async () => {
    const c: Case = { B: 1, H: 2, Gq: 1, Gk: 2, T: 27, D: 16, L: 4, bias: true };
    for (const p of [0, 5, 8, 26]) await checkDecode(c, [p]);
  });

  it('ragged: each sequence at its own position (prompts 0, 3, 9 in one batch)', async () => {
    await checkDecode({ B: 3, H: 2, Gq: 2, Gk: 1, T: 20, D: 8, L: 3 }, [9, 3, 0]);
    await checkDecode({ B: 3, H: 4, Gq: 2, Gk: 2, T: 18, D: 32, L: 5, bias: true, seed: 4 }, [0, 3, 9]);
  });

  it('float16 and bfloat16: the cache reads the states rounded to the dtype, as the prefill does', async () => {
    for (const dtype of ['float16', 'bfloat16'] as const) await checkDecode({ B: 2, H: 2, Gq: 1, Gk: 1, T: 14, D: 16, L: 4, dtype }, [6, 1]);
  });

  it('prefill ignores padding past each length (NaN padding does not leak into the cache)', async () => {
    const c: Case = { B: 2, H: 2, Gq: 1, Gk: 1, T: 12, D: 8, L: 4 };
    const x = await inputs(c);
    const poisoned = (h: Float32Array, G: number, lens: number[]) => {
      const out = Float32Array.from(h);
      for (let b = 0; b < 2; b++) for (let g = 0; g < G; g++) for (let t = lens[b]; t < 12; t++) out.fill(NaN, ((b * G + g) * 12 + t) * 8, ((b * G + g) * 12 + t + 1) * 8);
      return tensor(out, [2, G, 12, 8]);
    };
    const lens = [7, 4];
    const a = rat.createCache({ batch: 2, heads: 2, headDim: 8, chunkSize: 4, maxTokens: 16 });
    const b = rat.createCache({ batch: 2, heads: 2, headDim: 8, chunkSize: 4, maxTokens: 16 });
    a.prefill(x.q, x.k, x.v, x.gate, { lengths: lens });
    b.prefill(poisoned(x.host.q, 1, lens), poisoned(x.host.k, 1, lens), poisoned(x.host.v, 2, lens), poisoned(x.host.gate, 2, lens), { lengths: lens });
    const q = tensor(gaussian(16, 8), [2, 1, 8]);
    const kk = tensor(gaussian(16, 9), [2, 1, 8]);
    const vv = tensor(gaussian(32, 10), [2, 2, 8]);
    const gg = tensor(gaussian(32, 11), [2, 2, 8]);
    for (let s = 0; s < 5; s++) {
      const ya = await a.step(q, kk, vv, gg).toFloat32();
      const yb = await b.step(q, kk, vv, gg).toFloat32();
      expect(Array.from(yb)).toEqual(Array.from(ya));
      expect(ya.every(Number.isFinite)).toBe(true);
    }
  });

  it('holds O(T / L) memory: float32 states [B, H, D] and ⌈maxTokens / L⌉ chunk slots', async () => {
    await synchronize('cpu');
    const before = memory('cpu').bytes;
    const cache = rat.createCache({ batch: 2, heads: 4, headDim: 64, chunkSize: 16, maxTokens: 4000 });
    const N = Math.ceil(4000 / 16);
    expect(memory('cpu').bytes - before).toBe(2 * 2 * 4 * 64 * 4 * (N + 1) + 2 * 4);
    cache.dispose();
    await synchronize('cpu'); // queued fills hold their tensors until they have run
    expect(memory('cpu').bytes).toBe(before);
  });

  it('a failed call leaves the cache unchanged; a full sequence fails before anything is enqueued', async () => {
    const c: Case = { B: 2, H: 2, Gq: 1, Gk: 1, T: 6, D: 8, L: 4 };
    const x = await inputs(c);
    const mk = () => rat.createCache({ batch: 2, heads: 2, headDim: 8, chunkSize: 4, maxTokens: 7 });
    const a = mk();
    const b = mk();
    a.prefill(x.q, x.k, x.v, x.gate);
    b.prefill(x.q, x.k, x.v, x.gate);
    const args = [tensor(gaussian(16, 1), [2, 1, 8]), tensor(gaussian(16, 2), [2, 1, 8]), tensor(gaussian(32, 3), [2, 2, 8]), tensor(gaussian(32, 4), [2, 2, 8])] as const;
    expect(() => b.step(args[0], args[1], args[2], zeros([2, 2, 7]))).toThrow(expect.objectContaining({ code: 'ERR_SPARQ_SHAPE' }));
    expect(() => b.step(args[0], args[1], args[2], args[3].cast('float16'))).toThrow(expect.objectContaining({ code: 'ERR_SPARQ_DTYPE' }));
    expect(() => b.prefill(x.q, x.k, x.v, x.gate, { lengths: [7, 1] })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
    expect(b.lengths).toEqual([6, 6]);
    expect(Array.from(await b.step(...args).toFloat32())).toEqual(Array.from(await a.step(...args).toFloat32()));
    expect(b.lengths).toEqual([7, 7]);
    expect(() => b.step(...args)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringMatching(/rat\.cache\.step: sequence 0 is full \(maxTokens = 7\)/) }));
    expect(b.lengths).toEqual([7, 7]);
    b.reset();
    expect(b.lengths).toEqual([0, 0]);
  });
});

// ---- bad inputs ---------------------------------------------------------------------------------

function err(code: string, message: RegExp): unknown {
  return expect.objectContaining({ code, message: expect.stringMatching(message) });
}

describe('bad inputs', () => {
  const z = (shape: number[], dtype: FloatDType | 'int32' = 'float32') => zeros(shape, { dtype });
  const v = z([1, 4, 10, 8]);
  const k = z([1, 2, 10, 8]);

  it('scan: shapes, dtypes, groups, chunk size, bias', () => {
    expect(() => rat.scan(z([4, 10, 8]), k, v, { chunkSize: 4 })).toThrow(err('ERR_SPARQ_SHAPE', /rat\.scan: v must have shape \[B, H, T, D\], got \[4, 10, 8\]/));
    expect(() => rat.scan(v, z([1, 2, 9, 8]), v, { chunkSize: 4 })).toThrow(err('ERR_SPARQ_SHAPE', /k must have shape \[B, Gk, T, D\] with B = 1, T = 10, D = 8 \(from v\), got \[1, 2, 9, 8\]/));
    expect(() => rat.scan(v, z([1, 3, 10, 8]), v, { chunkSize: 4 })).toThrow(err('ERR_SPARQ_SHAPE', /the heads H = 4 must be a multiple of the key groups G = 3/));
    expect(() => rat.scan(v, k, z([1, 4, 10, 7]), { chunkSize: 4 })).toThrow(err('ERR_SPARQ_SHAPE', /gate must have shape \[B, H, T, D\] with the shape of v/));
    expect(() => rat.scan(v, z([1, 2, 10, 8], 'float16'), v, { chunkSize: 4 })).toThrow(err('ERR_SPARQ_DTYPE', /k must be float32 \(the dtype of v\), got float16/));
    expect(() => rat.scan(z([1, 4, 10, 8], 'int32'), k, v, { chunkSize: 4 })).toThrow(err('ERR_SPARQ_DTYPE', /v must be float32, float16 or bfloat16, got int32/));
    expect(() => rat.scan(v, k, v, { chunkSize: 0 })).toThrow(err('ERR_INVALID_ARG_VALUE', /chunkSize must be an integer in \[1, /));
    expect(() => rat.scan(v, k, v, { chunkSize: 2.5 })).toThrow(err('ERR_INVALID_ARG_VALUE', /chunkSize must be an integer/));
    expect(() => rat.scan(v, k, v, undefined as never)).toThrow(err('ERR_INVALID_ARG_TYPE', /rat\.scan: options must be an object with chunkSize/));
    expect(() => rat.scan(v, k, v, { chunkSize: 4, gateBias: z([4, 7]) as Tensor<'float32'> })).toThrow(err('ERR_SPARQ_SHAPE', /gateBias must have shape \[H, D\] with H = 4, D = 8, got \[4, 7\]/));
    expect(() => rat.scan(v, k, v, { chunkSize: 4, gateBias: z([4, 8], 'float16') as never })).toThrow(err('ERR_SPARQ_DTYPE', /gateBias must be float32, got float16/));
    expect(() => rat.scan(v, {} as never, v, { chunkSize: 4 })).toThrow(err('ERR_INVALID_ARG_TYPE', /k must be a sparq Tensor/));
  });

  it('attention and forward: shapes, groups, head dims, rope options, scale', () => {
    const q = z([1, 2, 10, 8]);
    expect(() => rat.attention(z([1, 2, 10]), v, v, { chunkSize: 4 })).toThrow(err('ERR_SPARQ_SHAPE', /rat\.attention: q must have shape \[B, Gq, T, D\], got \[1, 2, 10\]/));
    expect(() => rat.attention(q, z([1, 4, 11, 8]), v, { chunkSize: 4 })).toThrow(err('ERR_SPARQ_SHAPE', /kTilde must have shape \[B, H, T, D\] with B = 1, T = 10, D = 8 \(from q\)/));
    expect(() => rat.attention(q, v, z([1, 3, 10, 8]), { chunkSize: 4 })).toThrow(err('ERR_SPARQ_SHAPE', /vTilde must have shape \[B, H, T, D\] with the shape of kTilde/));
    expect(() => rat.attention(z([1, 3, 10, 8]), v, v, { chunkSize: 4 })).toThrow(err('ERR_SPARQ_SHAPE', /the heads H = 4 must be a multiple of the query groups G = 3/));
    expect(() => rat.attention(z([1, 1, 10, 7]), z([1, 1, 10, 7]), z([1, 1, 10, 7]), { chunkSize: 4 })).toThrow(err('ERR_SPARQ_UNSUPPORTED', /head dim D = 7 is not supported \(RoPE needs an even D\)/));
    expect(() => rat.attention(z([1, 1, 2, 258]), z([1, 1, 2, 258]), z([1, 1, 2, 258]), { chunkSize: 4 })).toThrow(err('ERR_SPARQ_UNSUPPORTED', /head dim D = 258 is not supported \(at most 256\)/));
    expect(() => rat.attention(q, v, v, { chunkSize: 4, ropeBase: -1 })).toThrow(err('ERR_INVALID_ARG_VALUE', /ropeBase must be a finite number > 0/));
    expect(() => rat.attention(q, v, v, { chunkSize: 4, rope: 'no' as never })).toThrow(err('ERR_INVALID_ARG_TYPE', /rope must be a boolean/));
    expect(() => rat.attention(q, v, v, { chunkSize: 4, scale: NaN })).toThrow(err('ERR_INVALID_ARG_VALUE', /scale must be a finite number/));
    expect(() => rat.forward(q, k, v, z([1, 4, 10, 6]), { chunkSize: 4 })).toThrow(err('ERR_SPARQ_SHAPE', /rat\.forward: gate must have shape/));
    expect(() => rat.forward(q, k, z([1, 4, 11, 8]), z([1, 4, 11, 8]), { chunkSize: 4 })).toThrow(err('ERR_SPARQ_SHAPE', /rat\.forward: k must have shape/));
  });

  it('createCache and prefill: options and lengths', () => {
    const base = { batch: 1, heads: 4, headDim: 8, chunkSize: 4, maxTokens: 12 };
    expect(() => rat.createCache({ ...base, chunkSize: 0 })).toThrow(err('ERR_INVALID_ARG_VALUE', /rat\.createCache: chunkSize must be an integer in \[1, /));
    expect(() => rat.createCache({ ...base, batch: -1 })).toThrow(err('ERR_INVALID_ARG_VALUE', /batch must be an integer in \[0, /));
    expect(() => rat.createCache({ ...base, headDim: 7 })).toThrow(err('ERR_SPARQ_UNSUPPORTED', /head dim D = 7 is not supported/));
    expect(() => rat.createCache({ ...base, device: 'tpu' as never })).toThrow(expect.objectContaining({ name: 'SparqError' }));
    expect(() => rat.createCache({ ...base, device: 'cuda:0' })).toThrow(err('ERR_SPARQ_UNSUPPORTED', /head dim D = 8 is not supported on CUDA/));
    expect(() => rat.createCache({ ...base, scale: Infinity })).toThrow(err('ERR_INVALID_ARG_VALUE', /rat\.createCache: scale must be a finite number/));
    expect(() => rat.createCache({ ...base, ropeBase: 0 })).toThrow(err('ERR_INVALID_ARG_VALUE', /ropeBase must be a finite number > 0/));
    const cache = rat.createCache(base);
    const q = z([1, 2, 10, 8]);
    expect(() => cache.prefill(q, k, v, v, { lengths: [11] })).toThrow(err('ERR_INVALID_ARG_VALUE', /lengths\[0\] must be an integer in \[0, min\(T = 10, maxTokens = 12\)\], got the number 11/));
    expect(() => cache.prefill(q, k, v, v, { lengths: [1, 2] })).toThrow(err('ERR_INVALID_ARG_VALUE', /lengths must be an array of 1 integers/));
    expect(() => cache.prefill(q, k, z([1, 4, 10, 16]), z([1, 4, 10, 16]))).toThrow(err('ERR_SPARQ_SHAPE', /rat\.cache\.prefill: v must have shape|kTilde must have shape|k must have shape/));
    expect(() => cache.step(z([1, 2, 8]), z([1, 2, 8]), z([1, 3, 8]), z([1, 4, 8]))).toThrow(err('ERR_SPARQ_SHAPE', /rat\.cache\.step: v must have shape \[B, H, D\] with B = 1, H = 4, D = 8 \(the cache\), got \[1, 3, 8\]/));
    expect(() => cache.step(z([1, 3, 8]), z([1, 2, 8]), z([1, 4, 8]), z([1, 4, 8]))).toThrow(err('ERR_SPARQ_SHAPE', /the heads H = 4 must be a multiple of the query groups G = 3/));
    expect(cache.lengths).toEqual([0]);
  });
});

describe('zero sizes and CPU ISA levels', () => {
  it('T = 0 and B = 0 give empty outputs; H = 0 too', async () => {
    for (const [B, H, T] of [[1, 2, 0], [0, 2, 5], [1, 0, 5]]) {
      const g = zeros([B, 1, T, 8]);
      const v = zeros([B, H, T, 8]);
      const y = rat.forward(g, g, v, v, { chunkSize: 4 });
      expect(y.shape).toEqual([B, H, T, 8]);
      expect((await y.toFloat32()).length).toBe(0);
    }
  });

  async function withLevel<T>(level: string, fn: () => Promise<T>): Promise<T> {
    await synchronize('cpu');
    const saved = process.env.SPARQ_CPU_ISA;
    process.env.SPARQ_CPU_ISA = level;
    try {
      return await fn();
    } finally {
      await synchronize('cpu');
      if (saved === undefined) delete process.env.SPARQ_CPU_ISA;
      else process.env.SPARQ_CPU_ISA = saved;
    }
  }

  for (const level of ['baseline', 'x86-64-v3']) {
    it(`SPARQ_CPU_ISA=${level}: forward (wide tiles, all dtypes) and decode match the oracle`, async () => {
      await withLevel(level, async () => {
        await checkForward({ B: 1, H: 2, Gq: 1, Gk: 2, T: 140, D: 64, L: 4, bias: true });
        await checkForward({ B: 1, H: 2, Gq: 2, Gk: 1, T: 70, D: 32, L: 8, dtype: 'float16' });
        await checkForward({ B: 1, H: 2, Gq: 2, Gk: 1, T: 70, D: 32, L: 8, dtype: 'bfloat16' });
        await checkDecode({ B: 2, H: 2, Gq: 1, Gk: 1, T: 20, D: 16, L: 4 }, [3, 9]);
      });
    });
  }
});

describe(`rat on ${CUDA_TITLE}`, () => {
  it.skipIf(cudaReason !== null)('forward against the oracle and the CPU (D = 64, 128, 256; all dtypes)', async () => {
    for (const D of [64, 128, 256]) {
      for (const dtype of ['float32', 'float16', 'bfloat16'] as const) {
        const c: Case = { B: 2, H: 4, Gq: 2, Gk: 2, T: 150, D, L: 16, dtype, bias: true };
        await checkForward(c, 'cuda:0');
        const x = await inputs(c, 'cuda:0');
        const opts = { chunkSize: 16, gateBias: x.gateBias };
        const gpu = await rat.forward(x.q, x.k, x.v, x.gate, opts).toFloat32();
        const cpu = await rat.forward(x.q.to('cpu'), x.k.to('cpu'), x.v.to('cpu'), x.gate.to('cpu'), { chunkSize: 16, gateBias: x.gateBias?.to('cpu') }).toFloat32();
        expect(relErr(gpu, cpu)).toBeLessThanOrEqual(TOL[dtype]);
      }
    }
  });

  it.skipIf(cudaReason !== null)('decode cache: prefill ≡ decode, ragged', async () => {
    await checkDecode({ B: 3, H: 2, Gq: 1, Gk: 2, T: 40, D: 64, L: 8, bias: true }, [0, 13, 32], 'cuda:0');
    await checkDecode({ B: 1, H: 2, Gq: 2, Gk: 2, T: 20, D: 128, L: 4, dtype: 'bfloat16' }, [5], 'cuda:0');
  });
});
