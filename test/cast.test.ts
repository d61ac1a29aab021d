// cast between every pair of dtypes on every device, against the reference rules.
import { describe, expect, it } from 'vitest';

import { DTYPES, type DType, tensor } from '../lib/index.js';
import { convertValue, storedValue } from './oracle/cast.js';
import { CUDA_TITLE, cudaReason } from './helpers.js';

/** Source values per dtype, chosen to hit rounding, truncation and saturation edges. */
const SOURCE: Record<DType, (number | bigint)[]> = {
  float32: [0, -0, 1.5, -1.5, 2.5, -2.7, 127.9, 128, -129, 255.5, 256, 3e9, -3e9, 65520, 1e-8, NaN, Infinity, -Infinity, 4294967296, 1.00048828125],
  // float64 -> narrower rounds once: 1 + 2^-11 + 2^-40 is above float16's tie (through float32 it would tie
  // and go to even), likewise 1 + 2^-8 + 2^-40 for bfloat16 and 1 + 2^-24 + 2^-60 for float32.
  float64: [0, -0, 0.1, -2.5, 1 + 2 ** -11 + 2 ** -40, 1 + 2 ** -8 + 2 ** -40, 1 + 2 ** -24 + 2 ** -60, 1e300, -1e300, 5e-324,
    3e9, -3e9, 2 ** 53 + 2, 2 ** 63, -(2 ** 63), 2147483647.9, 4294967295.5, -128.9, NaN, Infinity, -Infinity],
  float16: [0, 1.5, -2.5, 255, 256.5, -128, 65504, Infinity, -Infinity, NaN, 2 ** -24, 0.333],
  bfloat16: [0, 1.5, -2.5, 3e9, -3e9, 1e20, Infinity, NaN, 1e-30, 300],
  int8: [-128, -1, 0, 1, 127],
  uint8: [0, 1, 127, 128, 255],
  int32: [-2147483648, -70000, -129, -1, 0, 255, 256, 65535, 16777217, 2147483647],
  uint32: [0, 1, 255, 256, 2147483648, 4294967295, 16777217],
  int64: [-(2n ** 63n), -(2n ** 40n), -1n, 0n, 255n, 2n ** 31n, 2n ** 53n, 2n ** 63n - 1n],
};

function build(dtype: DType): { data: number[] | bigint[]; expected: (number | bigint)[] } {
  // The source tensor holds SOURCE converted to `dtype`; expectations start from its stored values.
  const stored = SOURCE[dtype].map((v) => convertValue(v, dtype));
  return { data: stored as number[] | bigint[], expected: stored.map((s) => storedValue(s, dtype)) };
}

function sameStored(a: number | bigint, b: number | bigint): boolean {
  return typeof a === 'bigint' || typeof b === 'bigint' ? BigInt(a) === BigInt(b) : Object.is(a, b);
}

async function checkAllPairs(device: 'cpu' | 'cuda:0'): Promise<void> {
  const failures: string[] = [];
  for (const from of DTYPES) {
    const { data, expected } = build(from);
    const raw = from === 'int64' ? BigInt64Array.from(data as bigint[])
      : from === 'float16' || from === 'bfloat16' ? Uint16Array.from(data as number[])
      : (data as number[]);
    const src = tensor(raw as never, { dtype: from, device });
    for (const to of DTYPES) {
      const got = Array.from((await src.cast(to).data()) as ArrayLike<number | bigint>);
      const want = expected.map((v) => convertValue(v, to));
      for (let i = 0; i < want.length; i++) {
        const w = want[i];
        const isNaNBits = (to === 'float16' && typeof w === 'number' && (w & 0x7c00) === 0x7c00 && (w & 0x3ff) !== 0)
          || (to === 'bfloat16' && typeof w === 'number' && (w & 0x7f80) === 0x7f80 && (w & 0x7f) !== 0)
          || ((to === 'float32' || to === 'float64') && Number.isNaN(w));
        const ok = isNaNBits ? (to === 'float32' || to === 'float64' ? Number.isNaN(got[i] as number) : ((got[i] as number) & 0x7fff) > (to === 'float16' ? 0x7c00 : 0x7f80)) : sameStored(got[i], w);
        if (!ok) failures.push(`${from}(${String(expected[i])}) -> ${to}: got ${String(got[i])}, want ${String(w)}`);
      }
    }
  }
  expect(failures).toEqual([]);
}

describe('cast', () => {
  it('every dtype pair on cpu', async () => {
    await checkAllPairs('cpu');
  });
  it.skipIf(cudaReason !== null)(`every dtype pair on ${CUDA_TITLE}`, async () => {
    await checkAllPairs('cuda:0');
  });

  it('saturates, truncates toward zero and maps NaN to 0', async () => {
    const t = tensor([NaN, 1e10, -1e10, 2.9, -2.9, 300, -300], { dtype: 'float32' });
    expect(Array.from((await t.cast('int32').data()) as Int32Array)).toEqual([0, 2147483647, -2147483648, 2, -2, 300, -300]);
    expect(Array.from((await t.cast('int8').data()) as Int8Array)).toEqual([0, 127, -128, 2, -2, 127, -128]);
    expect(Array.from((await t.cast('uint8').data()) as Uint8Array)).toEqual([0, 255, 0, 2, 0, 255, 0]);
    expect(Array.from((await t.cast('int64').data()) as BigInt64Array)).toEqual([0n, 10000000000n, -10000000000n, 2n, -2n, 300n, -300n]);
  });

  it('cast to the same dtype is a view; to another a copy that survives disposing the source', async () => {
    const t = tensor([1, 2, 3]);
    const same = t.cast('float32');
    const half = t.cast('float16');
    t.dispose();
    expect(await same.toFloat32()).toEqual(new Float32Array([1, 2, 3]));
    expect(await half.toFloat32()).toEqual(new Float32Array([1, 2, 3]));
  });

  it('large tensors (multi-threaded, not a multiple of any chunk)', async () => {
    const n = (1 << 20) + 13;
    const src = new Float32Array(n);
    for (let i = 0; i < n; i++) src[i] = (i % 4099) - 2049.5;
    const out = (await tensor(src).cast('int32').data()) as Int32Array;
    let bad = 0;
    for (let i = 0; i < n; i++) if (out[i] !== Math.trunc(src[i])) bad++;
    expect(bad).toBe(0);
  });
});
