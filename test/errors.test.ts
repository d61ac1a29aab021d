// Every bad input gets a typed SparqError that names the op, the argument, what was expected and
// what came; nothing a caller passes can crash the process.
import { describe, expect, it } from 'vitest';

import { SparqError, cuda, full, internal, random, synchronize, tensor, zeros } from '../lib/index.js';
import { lcg } from './helpers.js';

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(SparqError);
    return (e as SparqError).code;
  }
  return undefined;
}

describe('messages name the op, the argument, the expectation and what came', () => {
  it.each([
    [() => zeros([2, -3]), 'ERR_SPARQ_SHAPE', 'sparq.zeros: shape[1] must be a non-negative integer, got -3'],
    [() => zeros([2, 1.5]), 'ERR_SPARQ_SHAPE', 'sparq.zeros: shape[1] must be a non-negative integer, got 1.5'],
    [() => zeros('abc' as never), 'ERR_INVALID_ARG_TYPE', "sparq.zeros: shape must be an array of non-negative integers, got the string 'abc'"],
    [() => zeros([2], { dtype: 'float128' as never }), 'ERR_SPARQ_DTYPE', "sparq.zeros: dtype must be one of 'float32', 'float64', 'float16', 'bfloat16', 'int8', 'uint8', 'int32', 'uint32', 'int64', got 'float128'"],
    [() => zeros([2], { device: 'gpu' as never }), 'ERR_INVALID_ARG_VALUE', "sparq.zeros: device must be 'cpu', 'cuda' or 'cuda:N', got 'gpu'"],
    [() => full([2], 'x' as never), 'ERR_INVALID_ARG_TYPE', "sparq.full: value must be a number, got the string 'x'"],
    [() => full([2], NaN, { dtype: 'int32' }), 'ERR_INVALID_ARG_VALUE', "sparq.full: value NaN cannot be stored in dtype 'int32'"],
    [() => full([2], 5n), 'ERR_INVALID_ARG_TYPE', "sparq.full: a bigint value needs dtype 'int64', got 'float32'"],
    [() => random.normal([2], { std: -1 }), 'ERR_INVALID_ARG_VALUE', 'random.normal: std must be >= 0'],
    [() => random.uniform([2], { low: 1, high: 1 }), 'ERR_INVALID_ARG_VALUE', 'random.uniform: low must be less than high'],
    [() => random.normal([2], { dtype: 'int8' as never }), 'ERR_SPARQ_DTYPE', "random.normal: dtype must be 'float32', 'float16' or 'bfloat16', got 'int8'"],
    [() => random.normal([2], { seed: -1 }), 'ERR_INVALID_ARG_VALUE', 'random.normal: seed must be an integer in [0, 9007199254740991], got -1'],
    [() => random.normal([2], { seed: 2n ** 64n }), 'ERR_INVALID_ARG_VALUE', 'random.normal: seed must fit in 64 unsigned bits'],
    [() => random.normal([2], { mean: Infinity }), 'ERR_INVALID_ARG_VALUE', 'random.normal: mean must be a finite number, got Infinity'],
    [() => tensor([1]).cast('half' as never), 'ERR_SPARQ_DTYPE', "Tensor.cast: dtype must be one of"],
    [() => zeros([2 ** 20, 2 ** 20, 2 ** 20]), 'ERR_SPARQ_OOM', 'sparq.zeros: a tensor of shape'],
    [() => zeros([2 ** 17, 2 ** 17, 2 ** 9]), 'ERR_SPARQ_OOM', 'sparq.zeros: out of host memory allocating 35184372088832 bytes'],
  ])('%#', (f, code, text) => {
    let err: unknown;
    try {
      f();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SparqError);
    expect((err as SparqError).code).toBe(code);
    expect((err as SparqError).message).toContain(text);
  });

  it('asking for CUDA without it says why', () => {
    if (cuda.available()) return; // covered by the GPU parity runner there
    const reason = cuda.unavailableReason()!;
    expect(reason.length).toBeGreaterThan(10);
    let err: SparqError | undefined;
    try {
      zeros([2], { device: 'cuda' });
    } catch (e) {
      err = e as SparqError;
    }
    expect(err?.code).toBe('ERR_SPARQ_DEVICE');
    expect(err?.message).toBe(`sparq.zeros: CUDA is unavailable: ${reason}`);
    expect(codeOf(() => tensor([1, 2]).to('cuda:3'))).toBe('ERR_SPARQ_DEVICE');
    expect(codeOf(() => random.uniform([2], { device: 'cuda:0' }))).toBe('ERR_SPARQ_DEVICE');
  });

  it('sizes past int32 are handled as 64-bit (views and metadata, no allocation)', () => {
    const big = zeros([0, 2 ** 31 + 5]);
    expect(big.shape).toEqual([0, 2 ** 31 + 5]);
    expect(big.reshape([2 ** 31 + 5, 0]).shape).toEqual([2 ** 31 + 5, 0]);
  });
});

describe('no input crashes the process', () => {
  const live = tensor([1, 2, 3, 4, 5, 6]);
  const dead = tensor([1]);
  dead.dispose();
  const n = internal.native();
  const garbage: unknown[] = [
    undefined, null, true, -1, 0, 1, 1.5, NaN, Infinity, 2 ** 60, -0, 'cpu', 'cuda', 'cuda:7', 'cuda:x', 'float32',
    'int64', 'normal', 'bogus', '', [], [2, 3], [6], [-1], [1e20], [NaN], [[1]], ['2'], [65536, 65536, 65536], {},
    live._handle, dead._handle, new n.NativeTensor(), Symbol('s'), 10n, -1n, 2n ** 70n, () => 1, new Float32Array(6),
    new Uint16Array(6), new Float64Array(1), new BigUint64Array(1), new DataView(new ArrayBuffer(4)), new ArrayBuffer(8),
    n.marker('m', 'cpu'), live, Object.create(null),
  ];
  const skip = new Set(['hold', 'debugSleep', 'debugFail', 'NativeTensor', 'setErrorClass']);

  it('native functions: random argument lists throw SparqErrors, never crash', async () => {
    const rnd = lcg(1);
    const pick = (): unknown => garbage[Math.floor(rnd() * garbage.length)];
    const others: string[] = [];
    let calls = 0;
    for (const [name, fn] of Object.entries(n)) {
      if (skip.has(name) || typeof fn !== 'function') continue;
      for (let i = 0; i < 1500; i++) {
        const args = Array.from({ length: 1 + Math.floor(rnd() * 8) }, pick);
        if (rnd() < 0.7) args[0] = `fuzz.${name}`; // reach past the op-name check most of the time
        calls++;
        try {
          const r = (fn as (...a: unknown[]) => unknown)(...args);
          if (r instanceof Promise) await r.catch((e: unknown) => e);
          if (r && typeof (r as { release?: () => void }).release === 'function') (r as { release: () => void }).release();
        } catch (e) {
          if (!(e instanceof SparqError)) others.push(`${name}: ${String(e)}`);
        }
      }
    }
    await synchronize('cpu').catch(() => undefined);
    expect(calls).toBeGreaterThan(20000);
    expect(others).toEqual([]);
  });

  it('handle methods with bad arguments', () => {
    const h = live._handle!;
    for (const a of garbage) {
      for (const b of garbage.slice(0, 12)) {
        for (const f of [() => h.reshape('fuzz', a as never), () => h.slice('fuzz', a as never, b as never)]) {
          try {
            const r = f();
            r.release();
          } catch (e) {
            expect(e).toBeInstanceOf(SparqError);
          }
        }
      }
    }
  });

  it('public API with bad arguments', () => {
    const fns: ((a: unknown, b: unknown) => unknown)[] = [
      (a, b) => tensor(a as never, b as never), (a, b) => zeros(a as never, b as never), (a, b) => full(a as never, b as never),
      (a, b) => random.normal(a as never, b as never), (a) => live.cast(a as never), (a) => live.to(a as never),
      (a) => live.reshape(a as never), (a, b) => live.slice(a as never, b as never),
    ];
    const opts = [undefined, {}, { dtype: 'bogus' }, { device: 'nope' }, { dtype: 'int8', device: 'cuda:9' }, { seed: -3 }];
    for (const f of fns) {
      for (const a of garbage) {
        for (const b of [...garbage.slice(0, 8), ...opts]) {
          try {
            const r = f(a, b);
            if (r && typeof (r as { dispose?: () => void }).dispose === 'function') (r as { dispose: () => void }).dispose();
          } catch (e) {
            expect(e).toBeInstanceOf(SparqError);
          }
        }
      }
    }
  });
});
