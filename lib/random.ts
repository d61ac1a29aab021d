/**
 * Seeded random tensors. Element i depends only on (seed, i) through Philox4x32-10, and the
 * transforms use exactly rounded arithmetic, so CPU and CUDA give the same bits for the same seed.
 * Without a seed, each call takes the next seed of a process-wide sequence (see random.seed()).
 */
import type { Device } from './device.js';
import type { DType } from './dtype.js';
import { native } from './native.js';
import { queued } from './stream.js';
import { Tensor } from './tensor.js';

export type FloatDType = 'float32' | 'float16' | 'bfloat16';

export interface RandomOptions<D extends FloatDType> {
  /** A non-negative integer or a bigint < 2^64. */
  seed?: number | bigint;
  dtype?: D;
  device?: Device;
}

const MASK64 = (1n << 64n) - 1n;
let state = BigInt(Date.now()) ^ (BigInt(process.pid) << 32n);

/** splitmix64: turns the sequence state into well-spread seeds. */
function nextSeed(): bigint {
  state = (state + 0x9e3779b97f4a7c15n) & MASK64;
  let z = state;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}

export const random = {
  /** Restarts the sequence of seeds used by calls without `seed`. */
  seed(seed: number | bigint): void {
    state = BigInt(seed) & MASK64;
  },

  /** Normal(mean, std) values; `std` >= 0. */
  normal<D extends FloatDType = 'float32'>(shape: readonly number[], options?: RandomOptions<D> & { mean?: number; std?: number }): Tensor<D> {
    return Tensor._wrap<D & DType>(queued(random.normal, () => native().random('random.normal', shape, options?.dtype ?? 'float32',
      options?.device ?? 'cpu', 'normal', options?.seed ?? nextSeed(), options?.mean ?? 0, options?.std ?? 1)));
  },

  /** Uniform values in [low, high) (rounding to the dtype can give `high` itself). */
  uniform<D extends FloatDType = 'float32'>(shape: readonly number[], options?: RandomOptions<D> & { low?: number; high?: number }): Tensor<D> {
    return Tensor._wrap<D & DType>(queued(random.uniform, () => native().random('random.uniform', shape, options?.dtype ?? 'float32',
      options?.device ?? 'cpu', 'uniform', options?.seed ?? nextSeed(), options?.low ?? 0, options?.high ?? 1)));
  },
};
