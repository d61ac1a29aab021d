// Tensors: creation, round trips for every dtype and device, views, lifetimes, memory accounting.
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { describe, expect, it } from 'vitest';

import { DTYPES, type DType, type Device, SparqError, Tensor, empty, full, memory, ones, synchronize, tensor, zeros } from '../lib/index.js';
import { CUDA_TITLE, cudaReason } from './helpers.js';

/** Sample data per dtype as the typed array the dtype reads back as. */
function sample(dtype: DType, n: number): ArrayBufferView & ArrayLike<number | bigint> {
  switch (dtype) {
    case 'float32': return Float32Array.from({ length: n }, (_, i) => i * 0.25 - 3);
    case 'float64': return Float64Array.from({ length: n }, (_, i) => i * 0.1 - 3e-300 + (i % 7) * 1e300);
    case 'float16': return Uint16Array.from({ length: n }, (_, i) => (i * 37) & 0x7bff);
    case 'bfloat16': return Uint16Array.from({ length: n }, (_, i) => (i * 41) & 0x7f7f);
    case 'int8': return Int8Array.from({ length: n }, (_, i) => (i % 256) - 128);
    case 'uint8': return Uint8Array.from({ length: n }, (_, i) => i % 256);
    case 'int32': return Int32Array.from({ length: n }, (_, i) => i * 1000003 - 7);
    case 'uint32': return Uint32Array.from({ length: n }, (_, i) => (i * 2654435761) >>> 0);
    case 'int64': return BigInt64Array.from({ length: n }, (_, i) => BigInt(i) * 1234567890123n - 5n);
  }
}

function roundTrips(device: Device): void {
  it.each(DTYPES)('%s: tensor -> data/dataSync/to(cpu) give the same values', async (dtype) => {
    const src = sample(dtype, 1031);
    const t = tensor(src as never, [1031], { dtype, device });
    expect(t.dtype).toBe(dtype);
    expect(t.device).toBe(device);
    expect(t.shape).toEqual([1031]);
    expect(await t.data()).toEqual(src);
    expect(t.dataSync()).toEqual(src);
    expect(await t.to('cpu').data()).toEqual(src);
    expect(await t.to('cpu').to(device).data()).toEqual(src);
    expect(await t.clone().data()).toEqual(src);
  });

  it('zeros, ones, full, empty', async () => {
    expect(Array.from(await zeros([2, 3], { device }).toFloat32())).toEqual([0, 0, 0, 0, 0, 0]);
    expect(Array.from((await ones([3], { dtype: 'int8', device }).data()) as Int8Array)).toEqual([1, 1, 1]);
    expect(Array.from(await full([2], 2.5, { dtype: 'bfloat16', device }).toFloat32())).toEqual([2.5, 2.5]);
    expect(Array.from(await full([2], NaN, { device }).toFloat32()).every(Number.isNaN)).toBe(true);
    expect(Array.from((await full([2], -(2n ** 62n), { dtype: 'int64', device }).data()) as BigInt64Array)).toEqual([-(2n ** 62n), -(2n ** 62n)]);
    expect(Array.from((await full([2], 1e10, { dtype: 'int32', device }).data()) as Int32Array)).toEqual([2147483647, 2147483647]);
    const e = empty([4, 5], { dtype: 'uint32', device });
    expect((await e.data()).length).toBe(20);
  });

  it('zero-size tensors and 0-d tensors', async () => {
    const z = zeros([3, 0, 2], { device });
    expect(z.size).toBe(0);
    expect((await z.data()).length).toBe(0);
    expect((await z.cast('float16').to('cpu').data()).length).toBe(0);
    const s = tensor(7, { device });
    expect(s.shape).toEqual([]);
    expect(Array.from(await s.toFloat32())).toEqual([7]);
  });
}

describe('round trips on cpu', () => roundTrips('cpu'));
describe.skipIf(cudaReason !== null)(`round trips on ${CUDA_TITLE}`, () => roundTrips('cuda:0'));

describe('creation from JavaScript data', () => {
  it('infers shapes from nested arrays and dtypes from typed arrays', async () => {
    const t = tensor([[1, 2, 3], [4, 5, 6]]);
    expect(t.shape).toEqual([2, 3]);
    expect(t.dtype).toBe('float32');
    expect(tensor(new Int32Array([1, 2])).dtype).toBe('int32');
    expect(tensor(new Uint8Array([1, 2])).dtype).toBe('uint8');
    expect(tensor([1n, 2n]).dtype).toBe('int64');
    expect(tensor(new Float64Array([0.1])).dtype).toBe('float32');
    expect(tensor(new Uint16Array([0x3c00]), { dtype: 'float16' }).dtype).toBe('float16');
  });

  it('converts numbers with the cast rules and copies the data', async () => {
    const src = new Float32Array([1.5, -2.5, 300]);
    const t = tensor(src, [3], { dtype: 'int8' });
    src[0] = 99;
    expect(Array.from((await t.data()) as Int8Array)).toEqual([1, -2, 127]);
    const f = tensor(src);
    src[1] = 42;
    expect(Array.from(await f.toFloat32())).toEqual([99, -2.5, 300]);
  });

  it('accepts a typed array that views part of a larger buffer', async () => {
    const buf = new Float32Array([9, 1, 2, 3, 9]);
    const t = tensor(buf.subarray(1, 4));
    expect(Array.from(await t.toFloat32())).toEqual([1, 2, 3]);
  });

  it('rejects ragged arrays, wrong element types and ambiguous Uint16Array', () => {
    expect(() => tensor([[1, 2], [3]])).toThrow(expect.objectContaining({ code: 'ERR_SPARQ_SHAPE' }));
    expect(() => tensor([1, 'a'] as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
    expect(() => tensor(new Uint16Array(2))).toThrow(expect.objectContaining({ code: 'ERR_SPARQ_DTYPE' }));
    expect(() => tensor(new Uint16Array(2), { dtype: 'int32' })).toThrow(expect.objectContaining({ code: 'ERR_SPARQ_DTYPE' }));
    expect(() => tensor(new Float32Array(6), [4, 2])).toThrow(/data has 6 elements but shape \[4, 2\] needs 8/);
    expect(() => tensor('abc' as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
    expect(() => tensor(new Float32Array(2), { dtype: 'float128' as never })).toThrow(expect.objectContaining({ code: 'ERR_SPARQ_DTYPE' }));
  });
});

describe('views', () => {
  it('reshape shares storage and infers -1', async () => {
    const t = tensor(Float32Array.from({ length: 24 }, (_, i) => i), [2, 3, 4]);
    const r = t.reshape([4, -1]);
    expect(r.shape).toEqual([4, 6]);
    t.dispose();
    expect(Array.from(await r.toFloat32())).toEqual(Array.from({ length: 24 }, (_, i) => i));
    expect(() => r.reshape([5, -1])).toThrow(expect.objectContaining({ code: 'ERR_SPARQ_SHAPE' }));
    expect(() => r.reshape([-1, -1])).toThrow(/only one dimension may be -1/);
    expect(() => r.reshape([7, 4])).toThrow(/cannot reshape a tensor of shape \[4, 6\] \(24 elements\) into \[7, 4\] \(28 elements\)/);
  });

  it('slice follows Array.prototype.slice on the leading dimension', async () => {
    const t = tensor(Float32Array.from({ length: 12 }, (_, i) => i), [4, 3]);
    expect(Array.from(await t.slice(1, 3).toFloat32())).toEqual([3, 4, 5, 6, 7, 8]);
    expect(t.slice(-1).shape).toEqual([1, 3]);
    expect(Array.from(await t.slice(-1).toFloat32())).toEqual([9, 10, 11]);
    expect(t.slice(3, 1).shape).toEqual([0, 3]);
    expect(t.slice(2, 100).shape).toEqual([2, 3]);
    expect(Array.from(await t.slice(1, 3).slice(1).toFloat32())).toEqual([6, 7, 8]);
    expect(Array.from(await t.slice(2).cast('int32').toFloat32())).toEqual([6, 7, 8, 9, 10, 11]);
    expect(() => tensor(1).slice(0)).toThrow(/cannot slice a 0-d tensor/);
    expect(() => t.slice(0.5)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
  });

  it('to() and cast() to what the tensor already is are views', async () => {
    const t = tensor([1, 2]);
    const same = t.to('cpu');
    t.dispose();
    expect(Array.from(await same.toFloat32())).toEqual([1, 2]);
  });
});

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;
/** A full GC, then a pause in which FinalizationRegistry callbacks run. */
async function collectGarbage(): Promise<void> {
  gc();
  await new Promise((r) => setTimeout(r, 20));
  gc();
  await new Promise((r) => setTimeout(r, 20));
}

describe('lifetimes', () => {
  it('dispose is idempotent; use after dispose throws ERR_SPARQ_DISPOSED', async () => {
    const t = tensor([1, 2, 3]);
    t.dispose();
    t.dispose();
    expect(t.isDisposed).toBe(true);
    expect(String(t)).toBe('Tensor(float32, [3], cpu, disposed)');
    for (const f of [() => t.dataSync(), () => t.cast('int8'), () => t.reshape([3]), () => t.slice(0), () => t.to('cpu'), () => t.clone()]) {
      expect(f).toThrow(expect.objectContaining({ code: 'ERR_SPARQ_DISPOSED' }));
    }
    await expect(t.data()).rejects.toMatchObject({ code: 'ERR_SPARQ_DISPOSED' });
  });

  it('Symbol.dispose releases at the end of a using-style block', () => {
    const t = tensor([1]);
    {
      const scope = t;
      scope[Symbol.dispose]();
    }
    expect(t.isDisposed).toBe(true);
  });

  it('new Tensor() is refused', () => {
    expect(() => new (Tensor as unknown as new () => unknown)()).toThrow(SparqError);
  });

  it('memory() counts host bytes and live tensors; dispose returns them', async () => {
    await collectGarbage(); // so that finalizers of earlier tests' tensors cannot run mid-test
    const before = memory('cpu');
    const t = zeros([1024, 256]); // 1 MiB
    const view = t.reshape([-1]);
    const during = memory('cpu');
    expect(during.bytes - before.bytes).toBe(1 << 20);
    expect(during.tensors - before.tensors).toBe(2);
    t.dispose();
    expect(memory('cpu').bytes - before.bytes).toBe(1 << 20); // the view still holds the storage
    view.dispose();
    await synchronize('cpu'); // the queued fill holds the storage until it has run
    expect(memory('cpu').bytes).toBe(before.bytes);
    expect(memory('cpu').tensors).toBe(before.tensors);
  });

  it('forgotten tensors are released by the garbage collector', async () => {
    const before = memory('cpu').bytes;
    (() => {
      for (let i = 0; i < 16; i++) zeros([1 << 18]); // 16 x 1 MiB, never disposed
    })();
    expect(memory('cpu').bytes).toBeGreaterThanOrEqual(before + 16 * 2 ** 20);
    await synchronize('cpu'); // queued fills hold their outputs until they have run
    for (let i = 0; i < 10 && memory('cpu').bytes > before; i++) await collectGarbage();
    // Other unreferenced tensors of this file may go too, so "at most" what it was before.
    expect(memory('cpu').bytes).toBeLessThanOrEqual(before);
  });
});
