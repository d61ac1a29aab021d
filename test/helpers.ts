/** Shared test helpers: which devices to run on, and why CUDA cases are skipped. */
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
