// float16/bfloat16 conversions: TypeScript, C++ (scalar and F16C paths) and CUDA agree bit for
// bit; special values and rounding follow IEEE 754 round-to-nearest-even.
import { describe, expect, it } from 'vitest';

import { attention, bfloat16Bits, bfloat16Value, float16Bits, float16Value, full, random, tensor, zeros } from '../lib/index.js';
import { CUDA_TITLE, cudaReason, lcg } from './helpers.js';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
const fromBits = (b: number): number => {
  u32[0] = b >>> 0;
  return f32[0];
};

/** Expected float16 bits of a float32 bit pattern, NaN payloads included. */
function f16OfF32Bits(b: number): number {
  const x = fromBits(b);
  if (Number.isNaN(x)) return ((b >>> 16) & 0x8000) | 0x7e00 | ((b >>> 13) & 0x3ff);
  return float16Bits(x);
}
function bf16OfF32Bits(b: number): number {
  const x = fromBits(b);
  if (Number.isNaN(x)) return (b >>> 16) | 0x40;
  return bfloat16Bits(x);
}

/** Interesting float32 bit patterns: every float16/bfloat16 value, its neighbours and midpoints. */
function probePatterns(): Uint32Array {
  const out: number[] = [];
  for (let h = 0; h < 65536; h++) {
    const v = float16Value(h);
    f32[0] = v;
    const b = u32[0];
    out.push(b, (b + 1) >>> 0, (b - 1) >>> 0, (b + 0x1000) >>> 0, (b + 0x0fff) >>> 0, (b + 0x1001) >>> 0); // 0x1000 = half an f16 ulp
    const bb = h << 16;
    out.push(bb >>> 0, (bb + 0x8000) >>> 0, (bb + 0x7fff) >>> 0, (bb + 0x8001) >>> 0); // bf16 ties and neighbours
  }
  const rnd = lcg(7);
  for (let i = 0; i < 200000; i++) out.push(Math.floor(rnd() * 2 ** 32));
  return Uint32Array.from(out);
}

describe('TypeScript conversions (IEEE 754 facts)', () => {
  it('float16 special values and rounding', () => {
    expect(float16Bits(0)).toBe(0x0000);
    expect(float16Bits(-0)).toBe(0x8000);
    expect(float16Bits(1)).toBe(0x3c00);
    expect(float16Bits(65504)).toBe(0x7bff);
    expect(float16Bits(65519.99)).toBe(0x7bff);
    expect(float16Bits(65520)).toBe(0x7c00); // tie between 65504 and 2^16 goes to the even one: Inf
    expect(float16Bits(Infinity)).toBe(0x7c00);
    expect(float16Bits(-Infinity)).toBe(0xfc00);
    expect(float16Bits(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(float16Bits(2 ** -25)).toBe(0x0000); // tie with 0: even
    expect(float16Bits(3 * 2 ** -25)).toBe(0x0002); // tie between 1 and 2 ulps: even
    expect(float16Bits(2 ** -14)).toBe(0x0400); // smallest normal
    expect(float16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie: down to even
    expect(float16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie: up to even
    expect(float16Bits(NaN) & 0x7e00).toBe(0x7e00);
    expect(float16Value(0x7bff)).toBe(65504);
    expect(float16Value(0x0001)).toBe(2 ** -24);
    expect(Object.is(float16Value(0x8000), -0)).toBe(true);
  });

  it('bfloat16 special values and rounding', () => {
    expect(bfloat16Bits(1)).toBe(0x3f80);
    expect(bfloat16Bits(-2)).toBe(0xc000);
    expect(bfloat16Bits(1 + 2 ** -8)).toBe(0x3f80); // tie: even
    expect(bfloat16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82);
    expect(bfloat16Bits(3.4028234663852886e38)).toBe(0x7f80); // float32 max rounds past bf16 max: Inf
    expect(bfloat16Bits(2 ** -133)).toBe(0x0001); // smallest bf16 subnormal
    expect(bfloat16Value(0x7f7f)).toBe(3.3895313892515355e38);
    expect(bfloat16Bits(-Infinity)).toBe(0xff80);
  });

  it('float16 round trip is the identity on every non-NaN pattern', () => {
    for (let h = 0; h < 65536; h++) {
      if ((h & 0x7c00) === 0x7c00 && h & 0x3ff) continue;
      expect(float16Bits(float16Value(h))).toBe(h);
    }
  });
});

describe('native conversions equal the TypeScript ones bit for bit', () => {
  const patterns = probePatterns();
  const inputs = new Float32Array(patterns.buffer);

  async function checkPath(device: 'cpu' | 'cuda:0'): Promise<void> {
    const src = tensor(inputs, { device });
    const f16 = (await src.cast('float16').data()) as Uint16Array;
    const bf16 = (await src.cast('bfloat16').data()) as Uint16Array;
    let bad16 = 0;
    let badbf = 0;
    for (let i = 0; i < patterns.length; i++) {
      if (f16[i] !== f16OfF32Bits(patterns[i])) bad16++;
      if (bf16[i] !== bf16OfF32Bits(patterns[i])) badbf++;
    }
    expect({ bad16, badbf }).toEqual({ bad16: 0, badbf: 0 });

    const all = new Uint16Array(65536).map((_, i) => i);
    for (const dt of ['float16', 'bfloat16'] as const) {
      const back = await tensor(all, { dtype: dt, device }).toFloat32();
      const viaCast = (await tensor(all, { dtype: dt, device }).cast('float32').data()) as Float32Array;
      const b32 = new Uint32Array(viaCast.buffer);
      let bad = 0;
      for (let h = 0; h < 65536; h++) {
        const want = dt === 'float16' ? float16Value(h) : bfloat16Value(h);
        if (Number.isNaN(want)) {
          // NaN payloads widen exactly to the top of the float32 mantissa; float16 NaNs become quiet.
          const wantBits = dt === 'float16' ? ((h & 0x8000) << 16) | 0x7fc00000 | ((h & 0x3ff) << 13) : h << 16;
          if (b32[h] !== wantBits >>> 0 || !Number.isNaN(back[h])) bad++;
        } else if (!Object.is(viaCast[h], want) || !Object.is(back[h], want)) {
          bad++;
        }
      }
      expect(bad, dt).toBe(0);
    }
  }

  it('cpu', async () => {
    await checkPath('cpu');
  });
  it.skipIf(cudaReason !== null)(CUDA_TITLE, async () => {
    await checkPath('cuda:0');
  });

  it('numbers (double) round once to float16/bfloat16', async () => {
    const xs = [1 + 2 ** -11 + 2 ** -40, 65519.999999, 65520, 2 ** -25 + 2 ** -60, -0, 1e300, -1e-300, 0.1, 1 / 3];
    const h = (await tensor(xs, { dtype: 'float16' }).data()) as Uint16Array;
    const b = (await tensor(xs, { dtype: 'bfloat16' }).data()) as Uint16Array;
    expect(Array.from(h)).toEqual(xs.map(float16Bits));
    expect(Array.from(b)).toEqual(xs.map(bfloat16Bits));
    // Double rounding would give 0x3c00 here: 1 + 2^-11 + 2^-40 is just above the tie.
    expect(h[0]).toBe(0x3c01);
  });
});

describe('float64 tensors', () => {
  it('hold doubles exactly: Float64Array in, Float64Array out, full() keeps every bit', async () => {
    const xs = new Float64Array([0.1, -0, 1e-310, 2 ** 53 + 2, -1e300, NaN, Infinity]);
    const t = tensor(xs, { dtype: 'float64' });
    expect(t.dtype).toBe('float64');
    expect(t.byteLength).toBe(56);
    const back = (await t.data()) as Float64Array;
    expect(back).toBeInstanceOf(Float64Array);
    for (let i = 0; i < xs.length; i++) expect(Object.is(back[i], xs[i])).toBe(true);
    expect(Array.from((await full([2], 0.1, { dtype: 'float64' }).data()) as Float64Array)).toEqual([0.1, 0.1]);
    expect(Number.isNaN(((await full([1], NaN, { dtype: 'float64' }).data()) as Float64Array)[0])).toBe(true);
  });

  it('float64 -> float32 rounds once (toFloat32 and cast agree with Math.fround)', async () => {
    const xs = [1 + 2 ** -24 + 2 ** -60, 0.1, 1e39, -1e-46, 3.4028235677973366e38];
    const t = tensor(xs, { dtype: 'float64' });
    expect(Array.from(await t.toFloat32())).toEqual(xs.map(Math.fround));
    expect(Array.from((await t.cast('float32').data()) as Float32Array)).toEqual(xs.map(Math.fround));
  });

  it('random and attention reject float64 with the dtype error', async () => {
    expect(() => random.normal([2], { dtype: 'float64' as never })).toThrowError(
      expect.objectContaining({ code: 'ERR_SPARQ_DTYPE', message: "random.normal: dtype must be 'float32', 'float16' or 'bfloat16', got 'float64'" }));
    const q = zeros([1, 1, 1, 8], { dtype: 'float64' });
    expect(() => attention.sdpa(q, q, q)).toThrowError(
      expect.objectContaining({ code: 'ERR_SPARQ_DTYPE', message: 'attention.sdpa: q must be float32, float16 or bfloat16, got float64' }));
  });
});
