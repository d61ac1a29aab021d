/** Shared test helpers: which devices to run on, why CUDA cases are skipped, seeded data, error measures. */
import { expect } from 'vitest';

import { cuda } from '../lib/index.js';

export const cudaReason: string | null = cuda.unavailableReason();
/** Title suffix of CUDA cases: says why they are skipped. */
export const CUDA_TITLE = cudaReason === null ? 'cuda:0' : `cuda (skipped: ${cudaReason})`;

/** Deterministic pseudo-random numbers for inputs (not the library's RNG). */
export function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** n samples of N(0, std²) from a seeded Box–Muller stream. */
export function gaussian(n: number, seed: number, std = 1): Float32Array {
  const u = lcg(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = std * Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
  return out;
}

/** Relative L2 error ‖got − want‖ / ‖want‖ (absolute when want is all zeros). */
export function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  expect(got.length).toBe(want.length);
  let num = 0;
  let den = 0;
  for (let i = 0; i < want.length; i++) {
    num += (got[i] - want[i]) ** 2;
    den += want[i] ** 2;
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}
