// Matrix Market parsing and writing, CSR construction and validation, dense round trips.
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { type Csr, sparse, tensor } from '../lib/index.js';
import { readMatrixMarketRef } from './oracle/sparse.js';

const DIR = path.resolve(__dirname, 'data', 'matrices');
const read = (f: string): string => readFileSync(path.join(DIR, f), 'utf8');

// Rows, cols and the expanded entry count of every test matrix (test/data/matrices/README.md).
const FILES: [string, number, number, number][] = [
  ['bcsstk13.mtx', 2003, 2003, 83883], ['pushpull.mtx', 4000, 4000, 196305], ['zenios.mtx', 2873, 2873, 27191],
  ['west0067.mtx', 67, 67, 294], ['karate.mtx', 34, 34, 156], ['LFAT5.mtx', 14, 14, 46], ['cryg2500.mtx', 2500, 2500, 12349],
  ['n1024-l1.mtx', 1024, 1024, 32768], ['n1024-l2.mtx', 1024, 1024, 32768],
  ['sparse-images-1024_subset.mtx', 1200, 1024, 122713], ['1138_bus.mtx', 1138, 1138, 4054], ['hep-th.mtx', 8361, 8361, 31502],
];

async function entriesOf(m: Csr): Promise<Map<number, number>> {
  const { indptr, indices, values } = await m.arrays();
  const out = new Map<number, number>();
  let unsorted = 0;
  for (let r = 0; r < m.rows; r++) {
    for (let k = Number(indptr[r]); k < Number(indptr[r + 1]); k++) {
      if (k > Number(indptr[r]) && indices[k] <= indices[k - 1]) unsorted++;
      out.set(r * m.cols + indices[k], values[k]);
    }
  }
  expect(unsorted).toBe(0);
  return out;
}

const rejects = (fn: () => unknown, code: string, message: string): void => {
  expect(fn).toThrowError(expect.objectContaining({ code, message }));
};

describe('sparse.fromMatrixMarket on the test matrices', () => {
  it.each(FILES)('%s: shape, expanded nnz and every value match the reference reader', async (file, rows, cols, nnz) => {
    const text = read(file);
    const m = sparse.fromMatrixMarket(text);
    expect([m.rows, m.cols, m.nnz, m.dtype, m.indexDType, m.device]).toEqual([rows, cols, nnz, 'float64', 'int32', 'cpu']);
    const ref = readMatrixMarketRef(text);
    expect(await entriesOf(m)).toEqual(ref.entries);
  });

  it('zenios keeps its stored zeros (14,375 stored, mirrored to 25,877 in the expansion)', async () => {
    const m = sparse.fromMatrixMarket(readFileSync(path.join(DIR, 'zenios.mtx'))); // a Buffer
    const { values } = await m.arrays();
    expect(values.filter((v) => v === 0).length).toBe(25877);
  });

  it('float32 values and int64 row pointers on request', async () => {
    const m = sparse.fromMatrixMarket(read('west0067.mtx'), { dtype: 'float32', indexDType: 'int64' });
    expect([m.dtype, m.indexDType]).toEqual(['float32', 'int64']);
    const ref = readMatrixMarketRef(read('west0067.mtx'));
    const got = await entriesOf(m);
    for (const [k, v] of ref.entries) expect(got.get(k)).toBe(Math.fround(v));
  });
});

describe('Matrix Market details', () => {
  const head = '%%MatrixMarket matrix coordinate';
  it('sums duplicates, expands symmetric, negates skew-symmetric mirrors, pattern = 1, integer, comments, CRLF', async () => {
    const dup = sparse.fromMatrixMarket(`${head} real general\n% comment\n\n2 3 4\n1 3 1.5\n2 1 -1\n1 3 2.25\n1 1 4\n`);
    expect(Object.fromEntries(await entriesOf(dup))).toEqual({ 0: 4, 2: 3.75, 3: -1 });
    const sym = sparse.fromMatrixMarket(`${head} real symmetric\r\n2 2 2\r\n1 1 3\r\n2 1 5\r\n`);
    expect(Object.fromEntries(await entriesOf(sym))).toEqual({ 0: 3, 1: 5, 2: 5 });
    const skew = sparse.fromMatrixMarket(`${head} integer skew-symmetric\n3 3 1\n3 1 7\n`);
    expect(Object.fromEntries(await entriesOf(skew))).toEqual({ 2: -7, 6: 7 });
    const pat = sparse.fromMatrixMarket(`${head} pattern general\n%%GraphBLAS type float\n2 2 2\n2 2\n1 2\n`);
    expect(Object.fromEntries(await entriesOf(pat))).toEqual({ 1: 1, 3: 1 });
    const empty = sparse.fromMatrixMarket(`${head} real general\n0 5 0\n`);
    expect([empty.rows, empty.cols, empty.nnz]).toEqual([0, 5, 0]);
  });

  it('names the line of each fault', () => {
    const E = 'ERR_INVALID_ARG_VALUE';
    const p = 'sparse.fromMatrixMarket: line';
    rejects(() => sparse.fromMatrixMarket('hello'), E, `${p} 1: expected a '%%MatrixMarket' header, got 'hello'`);
    rejects(() => sparse.fromMatrixMarket(`%%MatrixMarket matrix array real general\n2 2\n`), E, `${p} 1: only the 'coordinate' format is supported, got 'array'`);
    rejects(() => sparse.fromMatrixMarket(`${head} complex general\n1 1 1\n1 1 1 0\n`), E, `${p} 1: the field must be real, integer or pattern, got 'complex'`);
    rejects(() => sparse.fromMatrixMarket(`${head} real hermitian\n1 1 0\n`), E, `${p} 1: the symmetry must be general, symmetric or skew-symmetric, got 'hermitian'`);
    rejects(() => sparse.fromMatrixMarket(`${head} real general\n% c\n2 x 1\n`), E, `${p} 3: the size line must be three non-negative integers 'rows cols entries', got '2 x 1'`);
    rejects(() => sparse.fromMatrixMarket(`${head} real general\n2 2 2\n1 1 1\n3 1 1\n`), E, `${p} 4: row index must be an integer in [1, 2], got '3'`);
    rejects(() => sparse.fromMatrixMarket(`${head} real general\n2 2 1\n1 0 1\n`), E, `${p} 3: column index must be an integer in [1, 2], got '0'`);
    rejects(() => sparse.fromMatrixMarket(`${head} real general\n2 2 1\n1 1 abc\n`), E, `${p} 3: the value must be a number, got 'abc'`);
    rejects(() => sparse.fromMatrixMarket(`${head} real general\n2 2 1\n1 1\n`), E, `${p} 3: expected 3 fields (i j value), got '1 1'`);
    rejects(() => sparse.fromMatrixMarket(`${head} integer general\n2 2 1\n1 1 1.5\n`), E, `${p} 3: an integer matrix needs integer values, got '1.5'`);
    rejects(() => sparse.fromMatrixMarket(`${head} real symmetric\n2 2 1\n1 2 1\n`), E, `${p} 3: a symmetric file stores the lower triangle only, got row 1 < column 2`);
    rejects(() => sparse.fromMatrixMarket(`${head} real general\n2 2 1\n1 1 1\n2 2 1\n`), E, `${p} 4: more entries than the 1 the size line declares`);
    rejects(() => sparse.fromMatrixMarket(`${head} real general\n2 2 3\n1 1 1\n`), E, `${p} 4: the size line declares 3 entries but the file has 1`);
    rejects(() => sparse.fromMatrixMarket(42 as never), 'ERR_INVALID_ARG_TYPE', 'sparse.fromMatrixMarket: text must be a string or a Buffer, got the number 42');
  });

  it('toMatrixMarket round-trips every value exactly', async () => {
    for (const file of ['bcsstk13.mtx', 'west0067.mtx', 'zenios.mtx']) {
      const m = sparse.fromMatrixMarket(read(file));
      const back = sparse.fromMatrixMarket(await m.toMatrixMarket());
      expect(await entriesOf(back)).toEqual(await entriesOf(m));
    }
  });
});

describe('sparse.csr, fromDense/toDense, transpose', () => {
  it('builds from typed arrays and numbers; toDense/fromDense round trip', async () => {
    const m = sparse.csr({ rows: 2, cols: 3, indptr: [0, 2, 3], indices: [0, 2, 1], values: [1.5, -2, 0] });
    expect([m.nnz, m.dtype, m.indexDType, String(m)]).toEqual([3, 'float64', 'int32', 'Csr(2 x 3, nnz 3, float64, cpu)']);
    const d = await m.toDense();
    expect(d.shape).toEqual([2, 3]);
    expect(Array.from((await d.data()) as Float64Array)).toEqual([1.5, 0, -2, 0, 0, 0]);
    const back = await sparse.fromDense(d);
    expect(back.nnz).toBe(2); // the stored zero is not dense-visible
    expect(Object.fromEntries(await entriesOf(back))).toEqual({ 0: 1.5, 2: -2 });
    const f32 = await sparse.fromDense(tensor([[0, 1], [2, 0], [0, 0]], { dtype: 'float32' }), { indexDType: 'int64' });
    expect([f32.dtype, f32.indexDType, f32.nnz]).toEqual(['float32', 'int64', 2]);
    expect(Array.from((await f32.indptr.data()) as BigInt64Array)).toEqual([0n, 1n, 2n, 2n]);
  });

  it('transpose matches the definition (rectangular, empty rows and columns, int64 indptr)', async () => {
    const m = sparse.csr({ rows: 3, cols: 4, indptr: new BigInt64Array([0n, 2n, 2n, 4n]), indices: [1, 3, 0, 3], values: new Float32Array([1, 2, 3, 4]) });
    const t = m.transpose();
    expect([t.rows, t.cols, t.nnz, t.indexDType, t.dtype]).toEqual([4, 3, 4, 'int64', 'float32']);
    expect(Object.fromEntries(await entriesOf(t))).toEqual({ 2: 3, 3: 1, 9: 2, 11: 4 });
  });

  it('rejects bad shapes and types at once, malformed structure on the next read', async () => {
    rejects(() => sparse.csr({ rows: 2, cols: 2, indptr: [0, 1], indices: [0], values: [1] }), 'ERR_SPARQ_SHAPE', 'sparse.csr: indptr must have shape [rows + 1] = [3], got [2]');
    rejects(() => sparse.csr({ rows: 1, cols: 2, indptr: [0, 1], indices: [0], values: [1, 2] }), 'ERR_SPARQ_SHAPE', 'sparse.csr: indices and values must be 1-D of one length, got [1] and [2]');
    rejects(() => sparse.csr({ rows: -1, cols: 2, indptr: [0], indices: [], values: [] }), 'ERR_INVALID_ARG_VALUE', 'sparse.csr: rows must be an integer in [0, 2147483647], got the number -1');
    rejects(() => sparse.csr({ rows: 1, cols: 1, indptr: [0, 1], indices: new Float32Array([0]) as never, values: [1] }), 'ERR_INVALID_ARG_TYPE', 'sparse.csr: indices must be a Tensor or typed array of int32, got an instance of Float32Array');
    rejects(() => sparse.csr({ rows: 1, cols: 1, indptr: [0, 1], indices: [0], values: tensor([1], { dtype: 'int32' }) }), 'ERR_SPARQ_DTYPE', 'sparse.csr: values must be float32 or float64, got int32');
    const cases: [Parameters<typeof sparse.csr>[0], string][] = [
      [{ rows: 2, cols: 3, indptr: [0, 2, 1], indices: [0], values: [1] }, 'matrix: indptr must be non-decreasing, but indptr[1] = 2 > indptr[2] = 1'],
      [{ rows: 1, cols: 3, indptr: [1, 1], indices: [0], values: [1] }, 'matrix: indptr[0] must be 0, got 1'],
      [{ rows: 1, cols: 3, indptr: [0, 1], indices: [0, 1], values: [1, 1] }, 'matrix: indptr[1] = 1 must equal the number of stored entries, 2'],
      [{ rows: 2, cols: 3, indptr: [0, 1, 2], indices: [0, 3], values: [1, 1] }, 'matrix: column index 3 at position 1 (row 1) is out of range [0, 3)'],
      [{ rows: 1, cols: 3, indptr: [0, 2], indices: [2, 1], values: [1, 1] }, 'matrix: column indices of row 0 must be strictly increasing (sorted, no duplicates), but 1 follows 2 at position 1'],
      [{ rows: 1, cols: 3, indptr: [0, 2], indices: [1, 1], values: [1, 1] }, 'matrix: column indices of row 0 must be strictly increasing (sorted, no duplicates), but 1 follows 1 at position 1'],
    ];
    for (const [init, msg] of cases) {
      const m = sparse.csr(init);
      await expect(m.toDense()).rejects.toThrow(`sparse.csr: ${msg}`);
    }
  });
});
