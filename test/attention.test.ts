// Dense attention (attention.sdpa, attention.decode, attention.mergeStates) and rope: the CPU
// backend against the float64 oracle (test/oracle/attention.ts), on inputs that are first rounded
// to the dtype; CUDA against the same oracle and against the CPU.
import { describe, expect, it } from 'vitest';

import {
  type AttentionState, type Device, type FloatDType, type Tensor, attention, full, info, rope, synchronize, tensor,
} from '../lib/index.js';
import { type AttentionDims, type StateRef, decodeRef, mergeRef, ropeRef, sdpaRef, visibleKeys } from './oracle/attention.js';
import { CUDA_TITLE, cudaReason, gaussian, lcg, relErr } from './helpers.js';

/** Relative L2 error allowed against the oracle run on the same (rounded) inputs. */
const TOL: Record<FloatDType, number> = { float32: 1e-5, float16: 2e-3, bfloat16: 1e-2 };

/** LSE: -Infinity exactly where the oracle has it, else within float32 accumulation error. */
function expectLse(got: ArrayLike<number>, want: ArrayLike<number>, label: string, tol = 2e-5): void {
  expect(got.length, label).toBe(want.length);
  const bad: string[] = [];
  for (let i = 0; i < want.length; i++) {
    const ok = want[i] === -Infinity ? got[i] === -Infinity : Math.abs(got[i] - want[i]) <= tol * (1 + Math.abs(want[i]));
    if (!ok && bad.length < 5) bad.push(`lse[${i}] = ${got[i]}, want ${want[i]}`);
  }
  expect(bad, label).toEqual([]);
}

function expectState(got: { out: ArrayLike<number>; lse: ArrayLike<number> }, want: StateRef, tol: number, label: string): void {
  expect(relErr(got.out, want.out), label).toBeLessThanOrEqual(tol);
  expectLse(got.lse, want.lse, label);
}

async function read(s: AttentionState): Promise<{ out: Float32Array; lse: Float32Array }> {
  return { out: await s.out.toFloat32(), lse: await s.lse.toFloat32() };
}

// ---- sdpa -------------------------------------------------------------------------------------

interface SdpaCase extends AttentionDims {
  dtype?: FloatDType;
  causal?: boolean;
  window?: [number, number];
  kvLengths?: number[];
  scale?: number;
  seed?: number;
  std?: number;
}

function label(c: SdpaCase): string {
  return JSON.stringify(c);
}

/** Runs sdpa on `device` and the oracle on the values the device actually holds. */
async function runSdpa(c: SdpaCase, device: Device): Promise<{ got: { out: Float32Array; lse: Float32Array }; ref: StateRef }> {
  const { B, Hq, Hk, Tq, Tk, D } = c;
  const dtype = c.dtype ?? 'float32';
  const seed = c.seed ?? 1;
  const make = (n: number, s: number, shape: number[]) => tensor(gaussian(n, s, c.std ?? 1), shape, { dtype, device });
  const q = make(B * Hq * Tq * D, seed, [B, Hq, Tq, D]);
  const k = make(B * Hk * Tk * D, seed + 1, [B, Hk, Tk, D]);
  const v = make(B * Hk * Tk * D, seed + 2, [B, Hk, Tk, D]);
  const kvLengths = c.kvLengths ? tensor(Int32Array.from(c.kvLengths), [B], { device }) : undefined;
  const res = attention.sdpa(q, k, v, { causal: c.causal, window: c.window, scale: c.scale, kvLengths, returnLse: true });
  const ref = sdpaRef(await q.toFloat32(), await k.toFloat32(), await v.toFloat32(), c, c);
  return { got: await read(res), ref };
}

async function checkSdpa(cases: SdpaCase[], device: Device): Promise<void> {
  for (const c of cases) {
    const { got, ref } = await runSdpa(c, device);
    expectState(got, ref, TOL[c.dtype ?? 'float32'], label(c));
    if (device !== 'cpu') {
      const cpu = await runSdpa(c, 'cpu');
      expect(relErr(got.out, cpu.got.out), `${label(c)} vs cpu`).toBeLessThanOrEqual(TOL[c.dtype ?? 'float32']);
      expectLse(got.lse, cpu.got.lse, `${label(c)} vs cpu`);
    }
  }
}

const GQA_CASES: SdpaCase[] = [
  ...[1, 4, 8].flatMap((ratio) => [false, true].map((causal) => ({ B: 2, Hq: 8, Hk: 8 / ratio, Tq: 37, Tk: 129, D: 64, causal, seed: ratio }))),
  { B: 1, Hq: 130, Hk: 2, Tq: 3, Tk: 40, D: 16, causal: true }, // 65 query heads per KV head: more than one tile holds
];

// Key counts around the 64-key block (1, 63, 65, 127, 129) and a long one; 40 query rows per tile.
const TK_CASES: SdpaCase[] = [1, 63, 65, 127, 129, 1000].flatMap((Tk) => [false, true].map((causal) => (
  { B: 1, Hq: 2, Hk: 1, Tq: 20, Tk, D: 32, causal, seed: Tk })));

const D_CASES: SdpaCase[] = [1, 8, 64, 96, 128, 256].map((D) => ({ B: 1, Hq: 4, Hk: 2, Tq: 17, Tk: 70, D, causal: D % 3 === 0, seed: D }));

// Causal alignment is bottom-right: the queries are the last Tq positions of the Tk keys.
const ALIGN_CASES: SdpaCase[] = [
  { B: 1, Hq: 2, Hk: 2, Tq: 1, Tk: 50, D: 16, causal: true },
  { B: 2, Hq: 4, Hk: 1, Tq: 1, Tk: 77, D: 64, causal: false },
  { B: 1, Hq: 2, Hk: 1, Tq: 3, Tk: 40, D: 16, causal: true }, // 6 rows: the narrow layout
  { B: 1, Hq: 2, Hk: 1, Tq: 50, Tk: 30, D: 16, causal: true }, // Tq > Tk: the first 20 rows see nothing
  { B: 1, Hq: 1, Hk: 1, Tq: 130, Tk: 70, D: 8, causal: true },
  { B: 1, Hq: 3, Hk: 3, Tq: 30, Tk: 100, D: 24, causal: true }, // Tq < Tk
];

const WINDOW_CASES: SdpaCase[] = [
  { window: [5, -1] as [number, number] }, // left only
  { window: [-1, 3] as [number, number] }, // right only
  { window: [4, 2] as [number, number] }, // both
  { window: [6, -1] as [number, number], causal: true }, // window + causal
  { window: [70, 9] as [number, number], causal: true }, // causal cuts the right side
  { window: [0, 0] as [number, number] }, // window 0: each query sees its own position only
  { window: [0, 0] as [number, number], causal: true },
  { window: [200, 200] as [number, number] }, // wider than the sequence
  { window: [3, 1] as [number, number], kvLengths: [0, 1, 60] },
].map((w, i) => ({ B: 3, Hq: 4, Hk: 2, Tq: 24, Tk: 60, D: 16, seed: 40 + i, ...w }));

const LENGTH_CASES: SdpaCase[] = [false, true].flatMap((causal) => [
  { B: 4, Hq: 4, Hk: 2, Tq: 9, Tk: 97, D: 32, causal, kvLengths: [0, 1, 50, 97] },
  { B: 3, Hq: 2, Hk: 2, Tq: 1, Tk: 65, D: 64, causal, kvLengths: [1, 0, 64] },
]);

/** Random small configurations: shapes, GQA ratios, masks, windows, lengths and dtypes. */
function randomCases(count: number, seed: number): SdpaCase[] {
  const u = lcg(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(u() * (hi - lo + 1));
  return Array.from({ length: count }, (_, i) => {
    const B = int(1, 3);
    const Hk = int(1, 3);
    const Tk = int(0, 150);
    const c: SdpaCase = {
      B, Hk, Hq: Hk * [1, 2, 3, 8][int(0, 3)], Tq: int(1, 80), Tk, D: [1, 5, 16, 33, 64][int(0, 4)], seed: i,
      causal: u() < 0.5, dtype: (['float32', 'float32', 'float16', 'bfloat16'] as const)[int(0, 3)],
    };
    if (u() < 0.4) c.window = [int(-1, 20), int(-1, 20)];
    if (u() < 0.4) c.kvLengths = Array.from({ length: B }, () => int(0, Tk));
    return c;
  });
}

describe('attention.sdpa against the float64 oracle', () => {
  it('GQA ratios 1, 4, 8 (Hk = 1: MQA) and 65, causal and not', async () => {
    await checkSdpa(GQA_CASES, 'cpu');
  });
  it('Tk = 1, 63, 65, 127, 129, 1000 (not a multiple of the tiles)', async () => {
    await checkSdpa(TK_CASES, 'cpu');
  });
  it('head dims D = 1, 8, 64, 96, 128, 256', async () => {
    await checkSdpa(D_CASES, 'cpu');
  });
  it('Tq = 1, Tq > Tk and Tq < Tk with a causal mask aligned bottom-right', async () => {
    await checkSdpa(ALIGN_CASES, 'cpu');
  });
  it('windows: left only, right only, both, with causal, window 0, wider than the sequence', async () => {
    await checkSdpa(WINDOW_CASES, 'cpu');
  });
  it('ragged kvLengths including 0 and 1', async () => {
    await checkSdpa(LENGTH_CASES, 'cpu');
  });
  it('float16 and bfloat16 (float32 accumulation, outputs rounded to the dtype)', async () => {
    await checkSdpa((['float16', 'bfloat16'] as const).flatMap((dtype) => [
      { B: 2, Hq: 8, Hk: 2, Tq: 33, Tk: 150, D: 128, causal: true, dtype, std: 2 },
      { B: 1, Hq: 4, Hk: 4, Tq: 1, Tk: 99, D: 64, dtype, std: 2 },
      { B: 2, Hq: 2, Hk: 1, Tq: 20, Tk: 70, D: 96, dtype, window: [8, 2] as [number, number], kvLengths: [70, 33] },
    ]), 'cpu');
  });
  it('a scale option, peaked softmax (large scores) and a multi-threaded size', async () => {
    await checkSdpa([
      { B: 1, Hq: 2, Hk: 1, Tq: 40, Tk: 90, D: 32, scale: 0.3 },
      { B: 1, Hq: 2, Hk: 2, Tq: 40, Tk: 90, D: 32, std: 4, causal: true },
      { B: 2, Hq: 4, Hk: 4, Tq: 300, Tk: 300, D: 64, causal: true },
    ], 'cpu');
  });

  it('60 random configurations (shapes, GQA, masks, windows, lengths, dtypes)', async () => {
    await checkSdpa(randomCases(60, 2024), 'cpu');
  });

  it('rows that see no key are exactly 0 with LSE -Infinity', async () => {
    // Sequence 0 has no keys; in sequence 1 (4 keys, 6 queries, causal) queries 0 and 1 sit before key 0.
    const { got } = await runSdpa({ B: 2, Hq: 2, Hk: 1, Tq: 6, Tk: 4, D: 8, causal: true, kvLengths: [0, 4] }, 'cpu');
    for (let b = 0; b < 2; b++) {
      for (let h = 0; h < 2; h++) {
        for (let i = 0; i < 6; i++) {
          const row = (b * 2 + h) * 6 + i;
          const empty = b === 0 || i < 2;
          expect(got.lse[row] === -Infinity, `row ${row}`).toBe(empty);
          if (empty) expect(Array.from(got.out.subarray(row * 8, row * 8 + 8))).toEqual(new Array(8).fill(0));
        }
      }
    }
  });

  it('window as one number w means [w, w]', async () => {
    const data = { q: gaussian(2 * 30 * 16, 1), k: gaussian(2 * 30 * 16, 2), v: gaussian(2 * 30 * 16, 3) };
    const q = tensor(data.q, [1, 2, 30, 16]);
    const k = tensor(data.k, [1, 2, 30, 16]);
    const v = tensor(data.v, [1, 2, 30, 16]);
    const a = await attention.sdpa(q, k, v, { window: 4 }).toFloat32();
    const b = await attention.sdpa(q, k, v, { window: [4, 4] }).toFloat32();
    expect(a).toEqual(b);
    const ref = sdpaRef(data.q, data.k, data.v, { B: 1, Hq: 2, Hk: 2, Tq: 30, Tk: 30, D: 16 }, { window: [4, 4] });
    expect(relErr(a, ref.out)).toBeLessThanOrEqual(1e-5);
  });

  it('without returnLse returns the output tensor alone, in the input dtype', async () => {
    const q = tensor(gaussian(64, 5), [1, 1, 4, 16], { dtype: 'bfloat16' });
    const out = attention.sdpa(q, q, q);
    expect(out.dtype).toBe('bfloat16');
    expect(out.shape).toEqual([1, 1, 4, 16]);
  });

  it('keys past kvLengths are never read (NaN padding does not leak)', async () => {
    const B = 2, H = 2, Tq = 20, Tk = 90, D = 16, lengths = [37, 90];
    const k = gaussian(B * H * Tk * D, 7);
    const v = gaussian(B * H * Tk * D, 8);
    for (let h = 0; h < H; h++) {
      for (let j = lengths[0]; j < Tk; j++) {
        for (let d = 0; d < D; d++) k[(h * Tk + j) * D + d] = v[(h * Tk + j) * D + d] = NaN;
      }
    }
    const q = gaussian(B * H * Tq * D, 9);
    for (const causal of [false, true]) {
      const res = await read(attention.sdpa(tensor(q, [B, H, Tq, D]), tensor(k, [B, H, Tk, D]), tensor(v, [B, H, Tk, D]), {
        causal, kvLengths: tensor(Int32Array.from(lengths)), returnLse: true,
      }));
      expectState(res, sdpaRef(q, k, v, { B, Hq: H, Hk: H, Tq, Tk, D }, { causal, kvLengths: lengths }), 1e-5, `causal ${causal}`);
    }
  });

  // NaN behaviour, as found: a NaN anywhere in key row j makes the whole output row and the LSE
  // NaN in exactly the query rows that see key j; a NaN in V[j, d] makes only column d of those
  // rows' outputs NaN (the LSE stays finite). Every other value matches the oracle.
  it('a NaN in key row j makes out and LSE NaN in exactly the rows that see j; a NaN in V[j, d] only out[:, d] of those rows', async () => {
    const shapes = [
      { Hq: 2, Tq: 40, Tk: 100, window: [-1, -1] as [number, number] }, // wide tiles
      { Hq: 2, Tq: 40, Tk: 100, window: [6, -1] as [number, number] },
      { Hq: 2, Tq: 3, Tk: 100, window: [28, -1] as [number, number] }, // narrow tiles; position 99 does not see 70
    ];
    for (const s of shapes) {
      for (const where of ['k', 'v'] as const) {
        const { Hq, Tq, Tk, window } = s;
        const D = 8, j = 70;
        const q = gaussian(Hq * Tq * D, 1);
        const k = gaussian(Tk * D, 2);
        const v = gaussian(Tk * D, 3);
        (where === 'k' ? k : v)[j * D + 5] = NaN;
        const res = await read(attention.sdpa(tensor(q, [1, Hq, Tq, D]), tensor(k, [1, 1, Tk, D]), tensor(v, [1, 1, Tk, D]), {
          causal: true, window, returnLse: true,
        }));
        const ref = sdpaRef(q, k, v, { B: 1, Hq, Hk: 1, Tq, Tk, D }, { causal: true, window });
        let seeing = 0;
        for (let h = 0; h < Hq; h++) {
          for (let i = 0; i < Tq; i++) {
            const row = h * Tq + i;
            const sees = visibleKeys(i, Tq, Tk, true, window).includes(j);
            const outRow = Array.from(res.out.subarray(row * D, (row + 1) * D));
            const tag = `${JSON.stringify(s)} NaN in ${where}, row ${row}`;
            if (sees) seeing++;
            const nanAt = outRow.map((x, d) => (Number.isNaN(x) ? d : -1)).filter((d) => d >= 0);
            expect(nanAt, tag).toEqual(!sees ? [] : where === 'k' ? outRow.map((_, d) => d) : [5]);
            expect(Number.isNaN(res.lse[row]), tag).toBe(sees && where === 'k');
            const finite = (x: number[]) => x.map((y) => (Number.isNaN(y) ? 0 : y));
            if (where === 'v' || !sees) {
              expect(relErr(finite(outRow), finite(Array.from(ref.out.subarray(row * D, (row + 1) * D)))), tag).toBeLessThanOrEqual(1e-5);
            }
          }
        }
        expect(seeing).toBeGreaterThan(0);
        expect(seeing).toBeLessThan(Hq * Tq);
      }
    }
  });

  it('zero-size: B = 0, Tq = 0, Tk = 0 (out 0, LSE -Infinity) and D = 0 (LSE = log of the keys seen)', async () => {
    const t = (shape: number[]) => tensor(new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(0.5), shape);
    const b0 = attention.sdpa(t([0, 2, 4, 8]), t([0, 1, 5, 8]), t([0, 1, 5, 8]), { returnLse: true });
    expect(b0.out.shape).toEqual([0, 2, 4, 8]);
    expect(b0.lse.shape).toEqual([0, 2, 4]);
    expect((await b0.out.data()).length).toBe(0);
    const tq0 = attention.sdpa(t([1, 2, 0, 8]), t([1, 1, 5, 8]), t([1, 1, 5, 8]), { returnLse: true });
    expect(tq0.out.shape).toEqual([1, 2, 0, 8]);
    expect((await tq0.lse.data()).length).toBe(0);
    const tk0 = await read(attention.sdpa(t([1, 2, 3, 8]), t([1, 1, 0, 8]), t([1, 1, 0, 8]), { returnLse: true }));
    expect(Array.from(tk0.out)).toEqual(new Array(48).fill(0));
    expect(Array.from(tk0.lse)).toEqual(new Array(6).fill(-Infinity));
    const d0 = await read(attention.sdpa(t([1, 1, 3, 0]), t([1, 1, 5, 0]), t([1, 1, 5, 0]), { causal: true, returnLse: true }));
    expect(d0.out.length).toBe(0);
    expect(Array.from(d0.lse).map((x) => Math.exp(x))).toEqual([3, 4, 5].map((n) => expect.closeTo(n, 5)));
  });
});

/** CUDA handles D = 64, 128, 256: other cases run there with D = 64. */
function onCudaDims(c: SdpaCase): SdpaCase {
  return { ...c, D: [64, 128, 256].includes(c.D) ? c.D : 64 };
}

describe(`attention.sdpa on ${CUDA_TITLE}`, () => {
  it.skipIf(cudaReason !== null)(`GQA, tile edges, head dims, alignment, windows, lengths on ${CUDA_TITLE}`, async () => {
    await checkSdpa([...GQA_CASES, ...TK_CASES, ...D_CASES, ...ALIGN_CASES, ...WINDOW_CASES, ...LENGTH_CASES].map(onCudaDims), 'cuda:0');
  });
  it.skipIf(cudaReason !== null)(`60 random configurations on ${CUDA_TITLE}`, async () => {
    await checkSdpa(randomCases(60, 2024).map(onCudaDims), 'cuda:0');
  });
  it.skipIf(cudaReason !== null)(`float16 and bfloat16 on ${CUDA_TITLE}`, async () => {
    await checkSdpa((['float16', 'bfloat16'] as const).flatMap((dtype) => [
      { B: 2, Hq: 8, Hk: 2, Tq: 33, Tk: 150, D: 128, causal: true, dtype, std: 2 },
      { B: 1, Hq: 4, Hk: 4, Tq: 1, Tk: 99, D: 64, dtype, std: 2 },
      { B: 2, Hq: 2, Hk: 1, Tq: 20, Tk: 70, D: 256, dtype, window: [8, 2] as [number, number], kvLengths: [70, 33] },
      { B: 1, Hq: 2, Hk: 1, Tq: 50, Tk: 30, D: 64, dtype, causal: true },
    ]), 'cuda:0');
  });
});

// ---- mergeStates --------------------------------------------------------------------------------

/** Keys [from, to) of every (batch, head) of a [B, H, T, D] array, as a new [B, H, to - from, D] array. */
function keyRange(x: Float32Array, B: number, H: number, T: number, D: number, from: number, to: number): Float32Array {
  const out = new Float32Array(B * H * (to - from) * D);
  for (let bh = 0; bh < B * H; bh++) out.set(x.subarray((bh * T + from) * D, (bh * T + to) * D), bh * (to - from) * D);
  return out;
}

describe('attention.mergeStates', () => {
  const B = 2, Hq = 4, Hk = 2, Tq = 16, Tk = 100, D = 32;
  const dims = { B, Hq, Hk, Tq, Tk, D };
  const qd = gaussian(B * Hq * Tq * D, 11, 2);
  const kd = gaussian(B * Hk * Tk * D, 12);
  const vd = gaussian(B * Hk * Tk * D, 13);

  /** sdpa over keys [from, to), built from separate K/V tensors (slice() only cuts the batch dim). */
  function part(from: number, to: number, device: Device, dtype: FloatDType = 'float32'): AttentionState {
    const opts = { dtype, device };
    return attention.sdpa(tensor(qd, [B, Hq, Tq, D], opts), tensor(keyRange(kd, B, Hk, Tk, D, from, to), [B, Hk, to - from, D], opts),
      tensor(keyRange(vd, B, Hk, Tk, D, from, to), [B, Hk, to - from, D], opts), { returnLse: true });
  }

  /** The oracle on the inputs rounded to dtype. */
  async function oracle(dtype: FloatDType): Promise<StateRef> {
    const round = (x: Float32Array) => tensor(x, { dtype }).toFloat32();
    return sdpaRef(await round(qd), await round(kd), await round(vd), dims);
  }

  async function checkSplit(device: Device): Promise<void> {
    for (const dtype of ['float32', 'float16', 'bfloat16'] as const) {
      const ref = await oracle(dtype);
      for (const a of [1, 37, 64, 99]) {
        const merged = await read(attention.mergeStates([part(0, a, device, dtype), part(a, Tk, device, dtype)]));
        expectState(merged, ref, TOL[dtype], `${dtype} split at ${a}`);
      }
    }
  }

  it('merging sdpa over keys [0, a) and [a, Tk) equals sdpa over all keys (float32, float16, bfloat16)', async () => {
    await checkSplit('cpu');
    const whole = await read(attention.sdpa(tensor(qd, [B, Hq, Tq, D]), tensor(kd, [B, Hk, Tk, D]), tensor(vd, [B, Hk, Tk, D]), { returnLse: true }));
    const merged = await read(attention.mergeStates([part(0, 50, 'cpu'), part(50, Tk, 'cpu')]));
    expect(relErr(merged.out, whole.out)).toBeLessThanOrEqual(1e-5);
    expectLse(merged.lse, whole.lse, 'merged vs whole');
  });

  it('a part whose LSE is all -Infinity weighs nothing, whatever its out holds', async () => {
    const p1 = part(0, 60, 'cpu');
    const garbage = { out: tensor(new Float32Array(B * Hq * Tq * D).fill(NaN), [B, Hq, Tq, D]), lse: full([B, Hq, Tq], -Infinity) };
    const a = await read(attention.mergeStates([p1, garbage]));
    const b = await read(attention.mergeStates([garbage, p1]));
    const want = await read(p1);
    expect(a).toEqual(want);
    expect(b).toEqual(want);
    const none = await read(attention.mergeStates([garbage, garbage]));
    expect(Array.from(none.out).every((x) => x === 0)).toBe(true);
    expect(Array.from(none.lse).every((x) => x === -Infinity)).toBe(true);
  });

  it('is associative: ((p1, p2), p3) = (p1, (p2, p3)) = (p1, p2, p3) = all keys', async () => {
    const [p1, p2, p3] = [part(0, 20, 'cpu'), part(20, 71, 'cpu'), part(71, Tk, 'cpu')];
    const left = await read(attention.mergeStates([attention.mergeStates([p1, p2]), p3]));
    const right = await read(attention.mergeStates([p1, attention.mergeStates([p2, p3])]));
    const flat = await read(attention.mergeStates([p1, p2, p3]));
    expect(relErr(left.out, flat.out)).toBeLessThanOrEqual(1e-6);
    expect(relErr(right.out, flat.out)).toBeLessThanOrEqual(1e-6);
    expectLse(left.lse, flat.lse, 'left', 1e-6);
    expectLse(right.lse, flat.lse, 'right', 1e-6);
    expectState(flat, await oracle('float32'), 1e-5, 'three parts vs oracle');
  });

  it('random states of any shape (far-apart LSEs, -Infinity entries, D = 300) against the oracle', async () => {
    const rows = 37, Dm = 300, n = 4;
    const u = lcg(5);
    const parts = Array.from({ length: n }, (_, i) => ({
      out: gaussian(rows * Dm, 20 + i),
      lse: Float32Array.from({ length: rows }, () => (u() < 0.2 ? -Infinity : (u() - 0.5) * 100)),
    }));
    const got = await read(attention.mergeStates(parts.map((p) => ({ out: tensor(p.out, [rows, Dm]), lse: tensor(p.lse) }))));
    expectState(got, mergeRef(parts, rows, Dm), 1e-5, 'random states');
  });

  it.skipIf(cudaReason !== null)(`split merges and -Infinity parts on ${CUDA_TITLE}`, async () => {
    await checkSplit('cuda:0');
    const p1 = part(0, 60, 'cuda:0');
    const garbage = { out: tensor(new Float32Array(B * Hq * Tq * D).fill(NaN), [B, Hq, Tq, D], { device: 'cuda:0' }),
      lse: full([B, Hq, Tq], -Infinity, { device: 'cuda:0' }) };
    expect(await read(attention.mergeStates([p1, garbage]))).toEqual(await read(p1));
  });
});

// ---- decode -------------------------------------------------------------------------------------

interface DecodeCase {
  B: number;
  Hq: number;
  Hk: number;
  Tmax: number;
  D: number;
  lengths: number[];
  dtype?: FloatDType;
  seed?: number;
}

async function runDecode(c: DecodeCase, device: Device, splits?: number): Promise<{
  got: { out: Float32Array; lse: Float32Array }; prefill: { out: Float32Array; lse: Float32Array }; ref: StateRef;
}> {
  const { B, Hq, Hk, Tmax, D } = c;
  const opts = { dtype: c.dtype ?? 'float32', device };
  const seed = c.seed ?? 3;
  const q = tensor(gaussian(B * Hq * D, seed, 2), [B, Hq, D], opts);
  const kc = tensor(gaussian(B * Hk * Tmax * D, seed + 1), [B, Hk, Tmax, D], opts);
  const vc = tensor(gaussian(B * Hk * Tmax * D, seed + 2), [B, Hk, Tmax, D], opts);
  const lengths = tensor(Int32Array.from(c.lengths), { device });
  const got = await read(attention.decode(q, kc, vc, { lengths, splits, returnLse: true }));
  const prefill = await read(attention.sdpa(q.reshape([B, Hq, 1, D]), kc, vc, { causal: true, kvLengths: lengths, returnLse: true }));
  const ref = decodeRef(await q.toFloat32(), await kc.toFloat32(), await vc.toFloat32(), c.lengths, c);
  return { got, prefill, ref };
}

async function checkDecode(cases: DecodeCase[], device: Device): Promise<void> {
  for (const c of cases) {
    const tol = TOL[c.dtype ?? 'float32'];
    for (const splits of [undefined, 1, 2, 7, 1000]) {
      const tag = `${JSON.stringify(c)} splits ${splits}`;
      const { got, prefill, ref } = await runDecode(c, device, splits);
      expectState(got, ref, tol, tag);
      expect(relErr(got.out, prefill.out), `${tag} vs prefill`).toBeLessThanOrEqual(tol);
      expectLse(got.lse, prefill.lse, `${tag} vs prefill`);
      if (device !== 'cpu') {
        const cpu = await runDecode(c, 'cpu', splits);
        expect(relErr(got.out, cpu.got.out), `${tag} vs cpu`).toBeLessThanOrEqual(tol);
      }
    }
  }
}

const DECODE_CASES: DecodeCase[] = [
  ...[1, 4, 8].map((ratio) => ({ B: 4, Hq: 8, Hk: 8 / ratio, Tmax: 300, D: 128, lengths: [300, 1, 0, 157], seed: ratio })),
  { B: 1, Hq: 4, Hk: 1, Tmax: 5000, D: 64, lengths: [4999] }, // few items: the chosen split count is > 1
  { B: 2, Hq: 32, Hk: 2, Tmax: 129, D: 64, lengths: [129, 65] }, // 16 heads per KV head: the wide layout
  { B: 1, Hq: 65, Hk: 1, Tmax: 100, D: 64, lengths: [77] }, // more heads per KV head than a tile holds
  { B: 2, Hq: 2, Hk: 2, Tmax: 65, D: 1, lengths: [64, 65] },
  { B: 2, Hq: 6, Hk: 3, Tmax: 200, D: 96, lengths: [200, 63] },
  { B: 1, Hq: 2, Hk: 1, Tmax: 127, D: 256, lengths: [127] },
];

describe('attention.decode', () => {
  it('equals the oracle and the last row of causal sdpa with kvLengths (out and LSE), for splits auto, 1, 2, 7, 1000', async () => {
    await checkDecode(DECODE_CASES, 'cpu');
  });
  it('float16 and bfloat16', async () => {
    await checkDecode((['float16', 'bfloat16'] as const).flatMap((dtype) => [
      { B: 2, Hq: 8, Hk: 2, Tmax: 300, D: 128, lengths: [300, 77], dtype },
      { B: 1, Hq: 4, Hk: 4, Tmax: 1000, D: 64, lengths: [999], dtype },
    ]), 'cpu');
  });
  it('a NaN in cache row j makes exactly the sequences whose length exceeds j NaN', async () => {
    const B = 2, H = 2, Tmax = 80, D = 16, j = 50;
    const k = gaussian(B * H * Tmax * D, 1);
    for (let bh = 0; bh < B * H; bh++) k[(bh * Tmax + j) * D + 3] = NaN;
    for (const splits of [1, 3]) {
      const out = await attention.decode(tensor(gaussian(B * H * D, 2), [B, H, D]), tensor(k, [B, H, Tmax, D]),
        tensor(gaussian(B * H * Tmax * D, 3), [B, H, Tmax, D]), { lengths: tensor(Int32Array.from([j, j + 1])), splits }).toFloat32();
      expect(Array.from(out.subarray(0, H * D)).every(Number.isFinite), `splits ${splits}`).toBe(true);
      expect(Array.from(out.subarray(H * D)).every(Number.isNaN), `splits ${splits}`).toBe(true);
    }
  });
  it('zero-size: B = 0, and Tmax = 0 (out 0, LSE -Infinity)', async () => {
    const e = attention.decode(tensor(new Float32Array(0), [0, 2, 8]), tensor(new Float32Array(0), [0, 1, 4, 8]),
      tensor(new Float32Array(0), [0, 1, 4, 8]), { lengths: tensor(new Int32Array(0)), returnLse: true });
    expect(e.out.shape).toEqual([0, 2, 8]);
    expect((await e.lse.data()).length).toBe(0);
    const z = await read(attention.decode(tensor(new Float32Array(16).fill(1), [1, 2, 8]), tensor(new Float32Array(0), [1, 1, 0, 8]),
      tensor(new Float32Array(0), [1, 1, 0, 8]), { lengths: tensor(Int32Array.from([0])), returnLse: true }));
    expect(Array.from(z.out)).toEqual(new Array(16).fill(0));
    expect(Array.from(z.lse)).toEqual([-Infinity, -Infinity]);
  });
  it.skipIf(cudaReason !== null)(`decode on ${CUDA_TITLE}`, async () => {
    await checkDecode(DECODE_CASES.filter((c) => [64, 128, 256].includes(c.D)), 'cuda:0');
    await checkDecode((['float16', 'bfloat16'] as const).map((dtype) => ({ B: 2, Hq: 8, Hk: 2, Tmax: 300, D: 128, lengths: [300, 77], dtype })), 'cuda:0');
  });
});

// ---- rope ---------------------------------------------------------------------------------------

interface RopeCase {
  B: number;
  H: number;
  T: number;
  D: number;
  style?: 'half' | 'interleaved';
  positions?: number[];
  perBatch?: boolean;
  offset?: number;
  rotaryDim?: number;
  base?: number;
  dtype?: FloatDType;
}

async function runRope(c: RopeCase, device: Device): Promise<{ x: Float32Array; got: Float32Array; ref: Float64Array }> {
  const xt = tensor(gaussian(c.B * c.H * c.T * c.D, c.T + c.D), [c.B, c.H, c.T, c.D], { dtype: c.dtype ?? 'float32', device });
  const positions = c.positions ? tensor(Int32Array.from(c.positions), c.perBatch ? [c.B, c.T] : [c.T], { device }) : undefined;
  const got = await rope(xt, { style: c.style, positions, offset: c.offset, rotaryDim: c.rotaryDim, base: c.base }).toFloat32();
  const x = await xt.toFloat32();
  const ref = ropeRef(x, c, { ...c, interleaved: c.style === 'interleaved' });
  return { x, got, ref };
}

const ROPE_CASES: RopeCase[] = (['half', 'interleaved'] as const).flatMap((style) => [
  { B: 2, H: 3, T: 5, D: 16, style },
  { B: 2, H: 3, T: 5, D: 16, style, offset: 7 },
  { B: 2, H: 3, T: 5, D: 16, style, positions: [0, 3, 1, 100000, 2 ** 20] },
  { B: 2, H: 3, T: 4, D: 16, style, positions: [0, 1, 2, 3, 40, 41, 42, 43], perBatch: true },
  { B: 1, H: 2, T: 6, D: 16, style, rotaryDim: 8, base: 500 },
  { B: 1, H: 2, T: 9, D: 300, style, rotaryDim: 290, offset: 3 }, // more pairs than one chunk
]);

describe('rope', () => {
  it('matches its formula: rotate-half and interleaved, positions [T] and [B, T], offset, rotaryDim < D', async () => {
    for (const c of ROPE_CASES) {
      const { got, ref } = await runRope(c, 'cpu');
      expect(relErr(got, ref), JSON.stringify(c)).toBeLessThanOrEqual(2e-6);
    }
  });
  it('float16 and bfloat16', async () => {
    for (const dtype of ['float16', 'bfloat16'] as const) {
      for (const c of ROPE_CASES) {
        const { got, ref } = await runRope({ ...c, dtype }, 'cpu');
        expect(relErr(got, ref), `${dtype} ${JSON.stringify(c)}`).toBeLessThanOrEqual(TOL[dtype]);
      }
    }
  });
  it('preserves the norm of every rotated pair and copies the dims past rotaryDim exactly', async () => {
    for (const style of ['half', 'interleaved'] as const) {
      const c: RopeCase = { B: 2, H: 2, T: 7, D: 24, style, rotaryDim: 20, offset: 1000 };
      const { x, got } = await runRope(c, 'cpu');
      for (let row = 0; row < 2 * 2 * 7; row++) {
        const o = row * 24;
        for (let i = 0; i < 10; i++) {
          const [a, b] = style === 'half' ? [i, i + 10] : [2 * i, 2 * i + 1];
          const before = x[o + a] ** 2 + x[o + b] ** 2;
          const after = got[o + a] ** 2 + got[o + b] ** 2;
          expect(Math.abs(after - before)).toBeLessThanOrEqual(1e-5 * (before + 1e-30));
        }
        expect(Array.from(got.subarray(o + 20, o + 24))).toEqual(Array.from(x.subarray(o + 20, o + 24)));
      }
    }
  });
  it('position 0 is the identity', async () => {
    const x = tensor(gaussian(64, 1), [1, 1, 4, 16]);
    const out = await rope(x, { positions: tensor(Int32Array.from([0, 0, 0, 0])) }).toFloat32();
    expect(out).toEqual(await x.toFloat32());
  });
  it.skipIf(cudaReason !== null)(`rope on ${CUDA_TITLE}`, async () => {
    for (const c of ROPE_CASES) {
      for (const dtype of ['float32', 'float16', 'bfloat16'] as const) {
        const { got, ref } = await runRope({ ...c, dtype }, 'cuda:0');
        expect(relErr(got, ref), `${dtype} ${JSON.stringify(c)}`).toBeLessThanOrEqual(dtype === 'float32' ? 2e-6 : TOL[dtype]);
        const cpu = await runRope({ ...c, dtype }, 'cpu');
        expect(relErr(got, cpu.got), `${dtype} ${JSON.stringify(c)} vs cpu`).toBeLessThanOrEqual(dtype === 'float32' ? 2e-6 : TOL[dtype]);
      }
    }
  });
});

// ---- bad inputs ---------------------------------------------------------------------------------

function zerosOf(shape: number[], dtype: FloatDType | 'int32' = 'float32', device: Device = 'cpu'): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return dtype === 'int32' ? tensor(new Int32Array(n), shape, { device }) : tensor(new Float32Array(n), shape, { dtype, device });
}

function err(code: string, message: RegExp): unknown {
  return expect.objectContaining({ code, message: expect.stringMatching(message) });
}

describe('bad inputs', () => {
  const q = zerosOf([1, 2, 5, 8]);
  const k = zerosOf([1, 1, 6, 8]);

  it('sdpa: shapes, dtypes, head dims, head ratio and options throw at once with exact codes', () => {
    expect(() => attention.sdpa(zerosOf([2, 5, 8]), k, k)).toThrow(err('ERR_SPARQ_SHAPE', /attention\.sdpa: q must have shape \[B, Hq, Tq, D\], got \[2, 5, 8\]/));
    expect(() => attention.sdpa(q, zerosOf([1, 1, 6, 4]), k)).toThrow(err('ERR_SPARQ_SHAPE', /k must have shape \[B, Hk, Tk, D\] with B = 1, D = 8 \(from q\), got \[1, 1, 6, 4\]/));
    expect(() => attention.sdpa(q, k, zerosOf([1, 1, 7, 8]))).toThrow(err('ERR_SPARQ_SHAPE', /v must have shape \[B, Hk, Tk, D\] with the shape of k, \[1, 1, 6, 8\], got \[1, 1, 7, 8\]/));
    expect(() => attention.sdpa(q, zerosOf([1, 1, 6, 8], 'float16'), k)).toThrow(err('ERR_SPARQ_DTYPE', /k must be float32 \(the dtype of q\), got float16/));
    expect(() => attention.sdpa(zerosOf([1, 2, 5, 8], 'int32'), k, k)).toThrow(err('ERR_SPARQ_DTYPE', /q must be float32, float16 or bfloat16, got int32/));
    expect(() => attention.sdpa(zerosOf([1, 1, 5, 300]), zerosOf([1, 1, 6, 300]), zerosOf([1, 1, 6, 300])))
      .toThrow(err('ERR_SPARQ_UNSUPPORTED', /head dim D = 300 is not supported \(at most 256\)/));
    expect(() => attention.sdpa(zerosOf([1, 3, 5, 8]), zerosOf([1, 2, 6, 8]), zerosOf([1, 2, 6, 8])))
      .toThrow(err('ERR_SPARQ_SHAPE', /the query heads Hq = 3 must be a multiple of the KV heads Hk = 2/));
    expect(() => attention.sdpa(q, zerosOf([1, 0, 6, 8]), zerosOf([1, 0, 6, 8]))).toThrow(err('ERR_SPARQ_SHAPE', /Hk = 0/));
    expect(() => attention.sdpa(q, k, k, { kvLengths: zerosOf([1]) as Tensor<'int32'> })).toThrow(err('ERR_SPARQ_DTYPE', /kvLengths must be int32, got float32/));
    expect(() => attention.sdpa(q, k, k, { kvLengths: zerosOf([2], 'int32') as Tensor<'int32'> })).toThrow(err('ERR_SPARQ_SHAPE', /kvLengths must have shape \[B\]/));
    expect(() => attention.sdpa(q, k, k, { window: [-2, 0] })).toThrow(err('ERR_INVALID_ARG_VALUE', /window\[0\] must be an integer in \[-1, /));
    expect(() => attention.sdpa(q, k, k, { window: 1.5 })).toThrow(err('ERR_INVALID_ARG_VALUE', /window\[0\] must be an integer/));
    expect(() => attention.sdpa(q, k, k, { window: 'x' as never })).toThrow(err('ERR_INVALID_ARG_TYPE', /window must be a number or \[left, right\]/));
    expect(() => attention.sdpa(q, k, k, { causal: 1 as never })).toThrow(err('ERR_INVALID_ARG_TYPE', /causal must be a boolean/));
    expect(() => attention.sdpa(q, k, k, { scale: NaN })).toThrow(err('ERR_INVALID_ARG_VALUE', /scale must be a finite number/));
    expect(() => attention.sdpa(q, {} as never, k)).toThrow(err('ERR_INVALID_ARG_TYPE', /k must be a sparq Tensor/));
    const gone = zerosOf([1, 1, 6, 8]);
    gone.dispose();
    expect(() => attention.sdpa(q, gone, k)).toThrow(err('ERR_SPARQ_DISPOSED', /k has been disposed/));
  });

  it('sdpa: kvLengths > Tk or < 0 returns at once; the next read rejects with ERR_INVALID_ARG_VALUE, and the stream goes on', async () => {
    for (const bad of [7, -1]) {
      const out = attention.sdpa(q, k, k, { kvLengths: tensor(Int32Array.from([bad])) });
      expect(out.shape).toEqual([1, 2, 5, 8]);
      await expect(out.data()).rejects.toThrow(err('ERR_INVALID_ARG_VALUE', /a length in the lengths tensor is outside \[0, capacity\]/));
      expect(Array.from(await attention.sdpa(q, k, k, { kvLengths: tensor(Int32Array.from([6])) }).toFloat32())).toEqual(new Array(80).fill(0));
    }
  });

  it('decode: shapes, dtypes, options; lengths > Tmax or < 0 reject the next read', async () => {
    const qd = zerosOf([1, 2, 8]);
    const lengths = tensor(Int32Array.from([3]));
    expect(() => attention.decode(q, k, k, { lengths })).toThrow(err('ERR_SPARQ_SHAPE', /attention\.decode: q must have shape \[B, Hq, D\], got \[1, 2, 5, 8\]/));
    expect(() => attention.decode(qd, zerosOf([1, 1, 6, 4]), k, { lengths })).toThrow(err('ERR_SPARQ_SHAPE', /kCache must have shape \[B, Hk, Tmax, D\]/));
    expect(() => attention.decode(qd, k, k, { lengths: zerosOf([2], 'int32') as Tensor<'int32'> })).toThrow(err('ERR_SPARQ_SHAPE', /lengths must have shape \[B\]/));
    expect(() => attention.decode(qd, k, zerosOf([1, 1, 6, 8], 'bfloat16'), { lengths })).toThrow(err('ERR_SPARQ_DTYPE', /vCache must be float32 \(the dtype of q\), got bfloat16/));
    expect(() => attention.decode(zerosOf([1, 3, 8]), zerosOf([1, 2, 6, 8]), zerosOf([1, 2, 6, 8]), { lengths })).toThrow(err('ERR_SPARQ_SHAPE', /multiple of the KV heads/));
    expect(() => attention.decode(qd, k, k, { lengths, splits: -1 })).toThrow(err('ERR_INVALID_ARG_VALUE', /splits must be an integer in \[0, 1024\]/));
    expect(() => attention.decode(qd, k, k, undefined as never)).toThrow(err('ERR_INVALID_ARG_TYPE', /options must be an object with lengths/));
    expect(() => attention.decode(zerosOf([1, 1, 300]), zerosOf([1, 1, 6, 300]), zerosOf([1, 1, 6, 300]), { lengths }))
      .toThrow(err('ERR_SPARQ_UNSUPPORTED', /head dim D = 300/));
    for (const bad of [7, -3]) {
      const out = attention.decode(qd, k, k, { lengths: tensor(Int32Array.from([bad])), splits: 2 });
      await expect(out.data()).rejects.toThrow(err('ERR_INVALID_ARG_VALUE', /a length in the lengths tensor is outside \[0, capacity\]/));
    }
    expect(Array.from(await attention.decode(qd, k, k, { lengths }).toFloat32())).toEqual(new Array(16).fill(0));
  });

  it('mergeStates: parts must agree in shape and dtype', () => {
    const s = { out: zerosOf([4, 8]), lse: zerosOf([4]) as Tensor<'float32'> };
    expect(() => attention.mergeStates([])).toThrow(err('ERR_INVALID_ARG_VALUE', /parts must hold at least one \{ out, lse \}, got 0/));
    expect(() => attention.mergeStates('x' as never)).toThrow(err('ERR_INVALID_ARG_TYPE', /parts must be an array/));
    expect(() => attention.mergeStates([s, { out: zerosOf([4, 9]), lse: s.lse }])).toThrow(err('ERR_SPARQ_SHAPE', /parts\[1\]\.out must have shape \[4, 8\]/));
    expect(() => attention.mergeStates([s, { out: zerosOf([4, 8], 'float16'), lse: s.lse }])).toThrow(err('ERR_SPARQ_DTYPE', /parts\[1\]\.out must be float32/));
    expect(() => attention.mergeStates([{ out: s.out, lse: zerosOf([5]) as Tensor<'float32'> }])).toThrow(err('ERR_SPARQ_SHAPE', /parts\[0\]\.lse must have shape \[4\]/));
    expect(() => attention.mergeStates([{ out: s.out, lse: zerosOf([4], 'float16') as never }])).toThrow(err('ERR_SPARQ_DTYPE', /parts\[0\]\.lse must be float32/));
    expect(() => attention.mergeStates([{ out: s.out } as never])).toThrow(err('ERR_INVALID_ARG_TYPE', /lse/));
  });

  it('rope: shapes, dtypes, options; a negative position rejects the next read', async () => {
    const x = zerosOf([1, 2, 4, 8]);
    expect(() => rope(zerosOf([2, 4, 8]))).toThrow(err('ERR_SPARQ_SHAPE', /rope: x must have shape \[B, H, T, D\], got \[2, 4, 8\]/));
    expect(() => rope(zerosOf([1, 2, 4, 8], 'int32'))).toThrow(err('ERR_SPARQ_DTYPE', /x must be float32, float16 or bfloat16/));
    expect(() => rope(x, { rotaryDim: 5 })).toThrow(err('ERR_INVALID_ARG_VALUE', /rotaryDim must be even and in \[2, D = 8\], got 5/));
    expect(() => rope(x, { rotaryDim: 10 })).toThrow(err('ERR_INVALID_ARG_VALUE', /rotaryDim must be an integer in \[0, 8\]/));
    expect(() => rope(x, { style: 'neox' as never })).toThrow(err('ERR_INVALID_ARG_VALUE', /style must be 'half' or 'interleaved'/));
    expect(() => rope(x, { base: 0 })).toThrow(err('ERR_INVALID_ARG_VALUE', /base must be > 0/));
    expect(() => rope(x, { offset: -1 })).toThrow(err('ERR_INVALID_ARG_VALUE', /offset must be an integer/));
    expect(() => rope(x, { positions: zerosOf([5], 'int32') as Tensor<'int32'> })).toThrow(err('ERR_SPARQ_SHAPE', /positions must have shape \[T\] or \[B, T\]/));
    expect(() => rope(x, { positions: zerosOf([4]) as never })).toThrow(err('ERR_SPARQ_DTYPE', /positions must be int32/));
    for (const positions of [tensor(Int32Array.from([0, 1, -2, 3])), tensor(Int32Array.from([0, 1, 2, 3, 4, 5, 6, -7]), [2, 4])]) {
      const out = rope(positions.shape.length === 2 ? zerosOf([2, 2, 4, 8]) : x, { positions: positions as Tensor<'int32'> });
      await expect(out.data()).rejects.toThrow(err('ERR_INVALID_ARG_VALUE', /a position in the positions tensor is negative/));
    }
    expect(Array.from(await rope(x, { offset: 3 }).toFloat32()).every((v) => v === 0)).toBe(true);
  });

  it('zero-size mergeStates and rope', async () => {
    const m = attention.mergeStates([{ out: zerosOf([0, 8]), lse: zerosOf([0]) as Tensor<'float32'> }]);
    expect(m.out.shape).toEqual([0, 8]);
    expect((await m.lse.data()).length).toBe(0);
    expect(rope(zerosOf([1, 2, 0, 8])).shape).toEqual([1, 2, 0, 8]);
    expect((await rope(zerosOf([1, 2, 0, 8])).data()).length).toBe(0);
  });

  it.skipIf(cudaReason !== null)(`device mismatch (needs a CUDA device: ${CUDA_TITLE})`, () => {
    const kc = zerosOf([1, 1, 6, 8], 'float32', 'cuda:0');
    expect(() => attention.sdpa(q, kc, k)).toThrow(err('ERR_SPARQ_DEVICE', /k is on cuda:0 but q is on cpu/));
    expect(() => attention.decode(zerosOf([1, 2, 8]), kc, kc, { lengths: tensor(Int32Array.from([3])) })).toThrow(err('ERR_SPARQ_DEVICE', /kCache is on cuda:0 but q is on cpu/));
    expect(() => attention.sdpa(zerosOf([1, 2, 5, 8], 'float32', 'cuda:0'), kc, kc, { kvLengths: tensor(Int32Array.from([3])) }))
      .toThrow(err('ERR_SPARQ_DEVICE', /kvLengths is on cpu but q is on cuda:0/));
    expect(() => rope(zerosOf([1, 2, 4, 8], 'float32', 'cuda:0'), { positions: tensor(Int32Array.from([0, 1, 2, 3])) }))
      .toThrow(err('ERR_SPARQ_DEVICE', /positions is on cpu but x is on cuda:0/));
  });
});

// ---- ISA levels -----------------------------------------------------------------------------------

// The CPU kernels are compiled for x86-64-v4 (AVX-512), x86-64-v3 (AVX2) and the portable
// baseline, each with its own register blocking; SPARQ_CPU_ISA, read at each op call, picks a
// lower level than the CPU's. Vitest runs each file in its own process.
describe('CPU kernel ISA levels', () => {
  async function withLevel<T>(level: string | undefined, fn: () => Promise<T>): Promise<T> {
    await synchronize('cpu');
    const saved = process.env.SPARQ_CPU_ISA;
    if (level === undefined) delete process.env.SPARQ_CPU_ISA;
    else process.env.SPARQ_CPU_ISA = level;
    try {
      return await fn();
    } finally {
      await synchronize('cpu');
      if (saved === undefined) delete process.env.SPARQ_CPU_ISA;
      else process.env.SPARQ_CPU_ISA = saved;
    }
  }

  for (const level of ['baseline', 'x86-64-v3']) {
    it(`SPARQ_CPU_ISA=${level}: sdpa (wide and narrow tiles, all dtypes), decode, merge and rope match the oracle`, async () => {
      await withLevel(level, async () => {
        await checkSdpa([
          GQA_CASES[3], TK_CASES[5], D_CASES[3], ALIGN_CASES[2], WINDOW_CASES[4], LENGTH_CASES[2],
          { B: 2, Hq: 8, Hk: 2, Tq: 33, Tk: 150, D: 128, causal: true, dtype: 'float16' },
          { B: 1, Hq: 4, Hk: 4, Tq: 1, Tk: 99, D: 64, dtype: 'bfloat16' },
        ], 'cpu');
        await checkDecode([DECODE_CASES[1], { B: 2, Hq: 8, Hk: 2, Tmax: 300, D: 128, lengths: [300, 77], dtype: 'float16' }], 'cpu');
        for (const c of [ROPE_CASES[2], ROPE_CASES[9], { ...ROPE_CASES[3], dtype: 'float16' as const }]) {
          const { got, ref } = await runRope(c, 'cpu');
          expect(relErr(got, ref)).toBeLessThanOrEqual(c.dtype ? TOL[c.dtype] : 2e-6);
        }
      });
    });
  }

  it('SPARQ_CPU_ISA=baseline runs other code than the default (on an FMA machine the last bits differ)', async () => {
    const run = () => runSdpa({ B: 1, Hq: 4, Hk: 2, Tq: 64, Tk: 200, D: 64, causal: true }, 'cpu');
    const fast = await withLevel(undefined, run);
    const portable = await withLevel('baseline', run);
    expectState(portable.got, fast.ref, 1e-5, 'baseline');
    const differ = fast.got.out.some((x, i) => x !== portable.got.out[i]);
    expect(differ).toBe(info().build.cpu.features.fma === true);
  });
});
