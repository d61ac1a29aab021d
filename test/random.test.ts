// Seeded random streams: Philox known-answer vectors, agreement with the float64 reference,
// distribution checks, and identical bits on every device and for every shape.
import { describe, expect, it } from 'vitest';

import { float16Bits, bfloat16Bits, random } from '../lib/index.js';
import { normalRef, philox4x32_10, uniformRef } from './oracle/philox.js';
import { CUDA_TITLE, cudaReason } from './helpers.js';

describe('Philox4x32-10 reference', () => {
  it('matches the Random123 known-answer vectors', () => {
    expect(philox4x32_10([0, 0, 0, 0], [0, 0])).toEqual([0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
    expect(philox4x32_10([0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff]))
      .toEqual([0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]);
    expect(philox4x32_10([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]))
      .toEqual([0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]);
  });
});

describe('random.uniform', () => {
  it('equals the reference exactly (24-bit values are exact in float32)', async () => {
    const n = 4099;
    const got = (await random.uniform([n], { seed: 12345, low: -2, high: 3 }).data()) as Float32Array;
    const want = uniformRef(12345n, n, -2, 3);
    for (let i = 0; i < n; i++) expect(got[i]).toBe(Math.fround(want[i]));
  });

  it('covers [low, high) evenly', async () => {
    const n = 1 << 20;
    const v = (await random.uniform([n], { seed: 3 }).data()) as Float32Array;
    const bins = new Array(16).fill(0);
    let min = 1;
    let max = 0;
    for (const x of v) {
      bins[Math.floor(x * 16)]++;
      min = Math.min(min, x);
      max = Math.max(max, x);
    }
    expect(min).toBeGreaterThanOrEqual(0);
    expect(max).toBeLessThan(1);
    // chi-square with 15 degrees of freedom: 37.7 is the 0.1% critical value
    const e = n / 16;
    const chi2 = bins.reduce((s, b) => s + (b - e) ** 2 / e, 0);
    expect(chi2).toBeLessThan(37.7);
  });
});

describe('random.normal', () => {
  it('agrees with the Box-Muller reference to float32 rounding', async () => {
    const n = 10007;
    const got = (await random.normal([n], { seed: 2n ** 40n + 7n, mean: 1, std: 2 }).data()) as Float32Array;
    const want = normalRef(2n ** 40n + 7n, n, 1, 2);
    let exact = 0;
    for (let i = 0; i < n; i++) {
      const ulp = Math.abs(Math.fround(want[i]) - Math.fround(want[i] * (1 + 2 ** -23))) || 2 ** -149;
      expect(Math.abs(got[i] - want[i])).toBeLessThanOrEqual(ulp);
      if (got[i] === Math.fround(want[i])) exact++;
    }
    expect(exact / n).toBeGreaterThan(0.99);
  });

  it('has mean 0, variance 1 and normal tails', async () => {
    const n = 1 << 21;
    const v = (await random.normal([n], { seed: 99 }).data()) as Float32Array;
    let s = 0;
    let s2 = 0;
    let beyond2 = 0;
    for (const x of v) {
      s += x;
      s2 += x * x;
      if (Math.abs(x) > 2) beyond2++;
    }
    const mean = s / n;
    const variance = s2 / n - mean * mean;
    expect(Math.abs(mean)).toBeLessThan(5 / Math.sqrt(n));
    expect(Math.abs(variance - 1)).toBeLessThan(0.005);
    expect(beyond2 / n).toBeGreaterThan(0.0455 - 0.001); // P(|Z| > 2) = 0.0455
    expect(beyond2 / n).toBeLessThan(0.0455 + 0.001);
  });

  it('16-bit outputs are the float32 stream rounded to nearest even', async () => {
    const f = (await random.normal([5000], { seed: 5 }).data()) as Float32Array;
    const h = (await random.normal([5000], { seed: 5, dtype: 'float16' }).data()) as Uint16Array;
    const b = (await random.normal([5000], { seed: 5, dtype: 'bfloat16' }).data()) as Uint16Array;
    expect(Array.from(h)).toEqual(Array.from(f, float16Bits));
    expect(Array.from(b)).toEqual(Array.from(f, bfloat16Bits));
  });
});

describe('reproducibility', () => {
  it('depends only on the seed and the element index (not the shape)', async () => {
    const a = (await random.normal([6, 7], { seed: 11 }).data()) as Float32Array;
    const b = (await random.normal([42], { seed: 11 }).data()) as Float32Array;
    const c = (await random.normal([42], { seed: 12 }).data()) as Float32Array;
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
  });

  it('unseeded calls differ; random.seed() replays them', async () => {
    random.seed(2024);
    const a = (await random.uniform([8]).data()) as Float32Array;
    const b = (await random.uniform([8]).data()) as Float32Array;
    random.seed(2024);
    const a2 = (await random.uniform([8]).data()) as Float32Array;
    expect(a).not.toEqual(b);
    expect(a2).toEqual(a);
  });

  it.skipIf(cudaReason !== null)(`${CUDA_TITLE} gives the same bits as cpu`, async () => {
    for (const dtype of ['float32', 'float16', 'bfloat16'] as const) {
      const cpu = await random.normal([100003], { seed: 77, dtype }).data();
      const gpu = await random.normal([100003], { seed: 77, dtype, device: 'cuda:0' }).data();
      expect(gpu).toEqual(cpu);
      const ucpu = await random.uniform([1001], { seed: 78, dtype, low: -1, high: 4 }).data();
      const ugpu = await random.uniform([1001], { seed: 78, dtype, low: -1, high: 4, device: 'cuda:0' }).data();
      expect(ugpu).toEqual(ucpu);
    }
  });
});
