// SpGEMM (sparse.matmul) against the float64 Gustavson oracle: every test matrix, random
// rectangular products, edge shapes, explicit zeros, option semantics, errors, determinism.
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it, vi } from 'vitest';

import { Csr, SparqError, type ValueDType, internal, sparse, synchronize, tensor } from '../lib/index.js';
import { type RefCsr, type RefProduct, gustavson, randomCsr, transposeRef } from './oracle/sparse.js';
import { CUDA_TITLE, cudaReason, lcg } from './helpers.js';

const DIR = path.resolve(__dirname, 'data', 'matrices');
const read = (f: string): string => readFileSync(path.join(DIR, f), 'utf8');
// The float64 references of the larger matrices take a few seconds on a loaded machine.
vi.setConfig({ testTimeout: 30000 });

const GAMMA: Record<ValueDType, number> = { float32: 1e-5, float64: 1e-12 };

async function toRef(m: Csr): Promise<RefCsr> {
  const { indptr, indices, values } = await m.arrays();
  return { rows: m.rows, cols: m.cols, indptr: Array.from(indptr, Number), indices: Array.from(indices), values: Array.from(values) };
}

function fromRef(r: RefCsr, dtype: ValueDType, indexDType: 'int32' | 'int64' = 'int32'): Csr {
  return sparse.csr({
    rows: r.rows, cols: r.cols,
    indptr: indexDType === 'int64' ? BigInt64Array.from(r.indptr, (x) => BigInt(x)) : Int32Array.from(r.indptr),
    indices: Int32Array.from(r.indices),
    values: dtype === 'float32' ? Float32Array.from(r.values) : Float64Array.from(r.values),
  });
}

/** Structure exact, values within γ·Σ|a||b| (plus the input rounding for float32, covered by γ). */
async function expectProduct(c: Csr, ref: RefProduct, dtype: ValueDType): Promise<void> {
  expect([c.rows, c.cols, c.nnz, c.dtype]).toEqual([ref.rows, ref.cols, ref.indices.length, dtype]);
  const { indptr, indices, values } = await c.arrays();
  expect(Array.from(indptr, Number)).toEqual(ref.indptr);
  let badIdx = 0;
  for (let k = 0; k < ref.indices.length; k++) if (indices[k] !== ref.indices[k]) badIdx++;
  expect(badIdx).toBe(0);
  let worst = 0;
  for (let k = 0; k < ref.values.length; k++) {
    const err = Math.abs(values[k] - ref.values[k]);
    const tol = GAMMA[dtype] * ref.bound[k];
    if (!(err <= tol)) worst = Math.max(worst, tol > 0 ? err / tol : Infinity);
  }
  expect(worst).toBe(0);
}

interface Case { file: string; transposeB: boolean; products: number; nnz?: number }
// nnz(C) and products for bcsstk13 and pushpull are the figures of the spec (shared/specs/spgemm.md §7).
const CASES: Case[] = [
  { file: 'bcsstk13.mtx', transposeB: false, products: 4554541, nnz: 396773 },
  { file: 'pushpull.mtx', transposeB: false, products: 18295599, nnz: 2010366 },
  { file: 'zenios.mtx', transposeB: false, products: 0, nnz: 51631 },
  { file: 'west0067.mtx', transposeB: false, products: 0 },
  { file: 'karate.mtx', transposeB: false, products: 0 },
  { file: 'LFAT5.mtx', transposeB: false, products: 0 },
  { file: 'cryg2500.mtx', transposeB: false, products: 0 },
  { file: 'n1024-l1.mtx', transposeB: false, products: 0 },
  { file: 'n1024-l2.mtx', transposeB: false, products: 0 },
  { file: 'sparse-images-1024_subset.mtx', transposeB: true, products: 41400000 },
  { file: '1138_bus.mtx', transposeB: false, products: 0 },
  { file: 'hep-th.mtx', transposeB: false, products: 0 },
  { file: 'west0067.mtx', transposeB: true, products: 0 },
  { file: 'cryg2500.mtx', transposeB: true, products: 0 },
];

const cache = new Map<string, { a: RefCsr; b: RefCsr; ref: RefProduct }>();
async function refFor(c: Case): Promise<{ a: RefCsr; b: RefCsr; ref: RefProduct }> {
  const key = `${c.file}:${c.transposeB}`;
  if (!cache.has(key)) {
    const a = await toRef(sparse.fromMatrixMarket(read(c.file)));
    const b = c.transposeB ? transposeRef(a) : a;
    cache.set(key, { a, b, ref: gustavson(a, b) });
  }
  return cache.get(key)!;
}

function roundRef(r: RefCsr): RefCsr {
  return { ...r, values: r.values.map(Math.fround) };
}

describe('sparse.matmul on the test matrices (A·A; A·Aᵀ where marked)', () => {
  it.each(CASES.map((c) => [`${c.file}${c.transposeB ? ' · Aᵀ' : ' · A'}`, c] as const))('%s, float64 and float32', async (_, c) => {
    const { a, b, ref } = await refFor(c);
    if (c.nnz !== undefined) expect(ref.indices.length).toBe(c.nnz);
    if (c.products > 1e6) expect(Math.abs(ref.products - c.products) / c.products).toBeLessThan(0.01);
    await expectProduct(await sparse.matmul(fromRef(a, 'float64'), fromRef(b, 'float64')), ref, 'float64');
    const exact = a.values.every((v) => Math.fround(v) === v); // then the float64 reference serves float32 too
    const a32 = exact ? a : roundRef(a);
    const b32 = exact ? b : c.transposeB ? transposeRef(a32) : a32;
    await expectProduct(await sparse.matmul(fromRef(a32, 'float32'), fromRef(b32, 'float32')), exact ? ref : gustavson(a32, b32), 'float32');
  });

  it('sparse-images·Aᵀ has a row of ~91k products (the long-row path)', async () => {
    const { a, b } = await refFor(CASES[9]);
    let max = 0;
    for (let i = 0; i < a.rows; i++) {
      let p = 0;
      for (let k = a.indptr[i]; k < a.indptr[i + 1]; k++) p += b.indptr[a.indices[k] + 1] - b.indptr[a.indices[k]];
      max = Math.max(max, p);
    }
    expect(max).toBe(91140);
  });

  it('zenios: stored zeros make structure (51,631 entries); keepZeros: false drops exactly the zero values', async () => {
    const { a, ref } = await refFor(CASES[2]);
    const A = fromRef(a, 'float64');
    const kept = await sparse.matmul(A, A);
    const dropped = await sparse.matmul(A, A, { keepZeros: false });
    const k = await toRef(kept);
    const d = await toRef(dropped);
    const nonzero: RefCsr = { rows: k.rows, cols: k.cols, indptr: [0], indices: [], values: [] };
    for (let i = 0; i < k.rows; i++) {
      for (let p = k.indptr[i]; p < k.indptr[i + 1]; p++) {
        if (k.values[p] !== 0) {
          nonzero.indices.push(k.indices[p]);
          nonzero.values.push(k.values[p]);
        }
      }
      nonzero.indptr.push(nonzero.indices.length);
    }
    expect(d).toEqual(nonzero);
    expect(d.indices.length).toBe(ref.values.filter((v) => v !== 0).length);
    expect(d.indices.length).toBeLessThan(ref.indices.length / 10);
  });
});

/** B with 100,000 columns (wider than the CPU's dense rows): rows of A with 0..5 entries give hash rows, 100..190 entries wide dense rows. */
function wideCase(): { a: RefCsr; b: RefCsr } {
  const rand = lcg(3);
  const cols = 100000;
  // B: 300 rows of 0..40 random columns; A: rows of 0..200 entries, so C rows have ~0..8000 products.
  const b: RefCsr = { rows: 300, cols, indptr: [0], indices: [], values: [] };
  for (let i = 0; i < 300; i++) {
    const set = new Set<number>();
    const len = Math.floor(rand() * 41);
    while (set.size < len) set.add(Math.floor(rand() * cols));
    for (const c of [...set].sort((x, y) => x - y)) {
      b.indices.push(c);
      b.values.push(2 * rand() - 1);
    }
    b.indptr.push(b.indices.length);
  }
  const a: RefCsr = { rows: 40, cols: 300, indptr: [0], indices: [], values: [] };
  for (let i = 0; i < 40; i++) {
    const len = i < 30 ? i % 6 : 100 + 10 * i - 300;
    const set = new Set<number>();
    while (set.size < Math.min(len, 300)) set.add(Math.floor(rand() * 300));
    for (const c of [...set].sort((x, y) => x - y)) {
      a.indices.push(c);
      a.values.push(2 * rand() - 1);
    }
    a.indptr.push(a.indices.length);
  }
  return { a, b };
}

describe('sparse.matmul semantics', () => {
  it('random rectangular products, float32/float64, int32/int64 row pointers, empty rows and columns', async () => {
    const rand = lcg(7);
    const shapes: [number, number, number, number][] = [
      [1, 1, 1, 1], [5, 7, 3, 0.5], [40, 13, 29, 0.2], [64, 300, 17, 0.05], [3, 500, 200, 0.3], [257, 31, 2, 0.9], [20, 20, 20, 0],
    ];
    for (const [m, k, n, density] of shapes) {
      const a = randomCsr(m, k, density, rand);
      const b = randomCsr(k, n, density * 0.7, rand);
      const ref = gustavson(a, b);
      await expectProduct(await sparse.matmul(fromRef(a, 'float64', 'int64'), fromRef(b, 'float64')), ref, 'float64');
      const a32 = roundRef(a);
      const b32 = roundRef(b);
      const c = await sparse.matmul(fromRef(a32, 'float32'), fromRef(b32, 'float32', 'int64'));
      expect(c.indexDType).toBe('int64');
      await expectProduct(c, gustavson(a32, b32), 'float32');
    }
  });

  it('B wider than 65,536 columns: hash rows (few products) and wide dense rows (many), float32 and float64', async () => {
    const { a, b } = wideCase();
    await expectProduct(await sparse.matmul(fromRef(a, 'float64'), fromRef(b, 'float64')), gustavson(a, b), 'float64');
    const a32 = roundRef(a);
    const b32 = roundRef(b);
    await expectProduct(await sparse.matmul(fromRef(a32, 'float32'), fromRef(b32, 'float32')), gustavson(a32, b32), 'float32');
    const u = await toRef(await sparse.matmul(fromRef(a, 'float64'), fromRef(b, 'float64'), { sortColumns: false }));
    const ref = gustavson(a, b);
    for (let i = 0; i < u.rows; i++) {
      expect(u.indices.slice(u.indptr[i], u.indptr[i + 1]).sort((x, y) => x - y)).toEqual(ref.indices.slice(ref.indptr[i], ref.indptr[i + 1]));
    }
  });

  it('0 x n, n x 0 and k = 0 shapes', async () => {
    const empty = (r: number, c: number): RefCsr => ({ rows: r, cols: c, indptr: new Array(r + 1).fill(0), indices: [], values: [] });
    for (const [m, k, n] of [[0, 5, 3], [4, 0, 3], [4, 5, 0], [0, 0, 0]]) {
      const a = randomCsr(m, k, 0.5, lcg(m + k + n));
      const b = k === 0 ? empty(0, n) : randomCsr(k, n, 0.5, lcg(9));
      const c = await sparse.matmul(fromRef(a, 'float64'), fromRef(b, 'float64'));
      await expectProduct(c, gustavson(a, b), 'float64');
    }
  });

  it('keepZeros: a cancellation stays stored by default and goes with keepZeros: false', async () => {
    const a = sparse.csr({ rows: 1, cols: 2, indptr: [0, 2], indices: [0, 1], values: [1, 1] });
    const b = sparse.csr({ rows: 2, cols: 2, indptr: [0, 2, 4], indices: [0, 1, 0, 1], values: [2, 3, -2, 5] });
    const c = await toRef(await sparse.matmul(a, b));
    expect(c).toEqual({ rows: 1, cols: 2, indptr: [0, 2], indices: [0, 1], values: [0, 8] });
    const d = await toRef(await sparse.matmul(a, b, { keepZeros: false }));
    expect(d).toEqual({ rows: 1, cols: 2, indptr: [0, 1], indices: [1], values: [8] });
  });

  it('sortColumns: false gives each row the same entries (first-touch order)', async () => {
    const { a, ref } = await refFor(CASES[0]);
    const A = fromRef(a, 'float64');
    const u = await toRef(await sparse.matmul(A, A, { sortColumns: false }));
    expect(u.indptr).toEqual(ref.indptr);
    let unsortedRows = 0;
    let mismatched = 0;
    for (let i = 0; i < u.rows; i++) {
      const pairs = u.indices.slice(u.indptr[i], u.indptr[i + 1]).map((c, t) => [c, u.values[u.indptr[i] + t]]);
      if (pairs.some((p, t) => t > 0 && p[0] < pairs[t - 1][0])) unsortedRows++;
      pairs.sort((x, y) => x[0] - y[0]);
      pairs.forEach(([col, v], t) => {
        const r = ref.indptr[i] + t;
        if (col !== ref.indices[r] || Math.abs(v - ref.values[r]) > 1e-12 * ref.bound[r]) mismatched++;
      });
    }
    expect(mismatched).toBe(0);
    expect(unsortedRows).toBeGreaterThan(0);
  });

  it('deterministic results are bit-identical across runs (and the CPU is deterministic by default)', async () => {
    for (const c of [CASES[1], CASES[9]]) {
      const { a, b } = await refFor(c);
      const A = fromRef(a, 'float32');
      const B = c.transposeB ? fromRef(b, 'float32') : A;
      const runs = [];
      for (const deterministic of [true, true, false]) runs.push(await (await sparse.matmul(A, B, { deterministic })).values.data());
      expect(Buffer.from(runs[1].buffer).equals(Buffer.from(runs[0].buffer))).toBe(true);
      expect(Buffer.from(runs[2].buffer).equals(Buffer.from(runs[0].buffer))).toBe(true);
    }
  });

  it('the two-pass CPU path (numeric phase without the fused product) gives the same result', async () => {
    const n = internal.native();
    for (const c of [CASES[0], CASES[9], CASES[10], undefined]) {
      const { a, b } = c ? await refFor(c) : wideCase();
      const A = fromRef(a, 'float64');
      const B = !c || c.transposeB ? fromRef(b, 'float64') : A;
      const arg = (m: Csr) => ({ rows: m.rows, cols: m.cols, indptr: m.indptr._handle, indices: m.indices._handle, values: m.values._handle });
      const [rp] = n.spgemmSymbolic('test', arg(A), arg(B), true);
      const rowptr = new BigInt64Array(await n.read('test', rp));
      const nnz = Number(rowptr[A.rows]);
      const [, idx, val] = n.spgemmNumeric('test', arg(A), arg(B), rp, nnz, true, false, null, 'int32');
      const fused = await (await sparse.matmul(A, B)).arrays();
      const same = (x: ArrayBuffer, y: ArrayBufferView): boolean => Buffer.from(x).equals(Buffer.from(y.buffer, y.byteOffset, y.byteLength));
      expect(same(Int32Array.from(rowptr, Number).buffer, fused.indptr)).toBe(true);
      expect(same(await n.read('test', idx), fused.indices)).toBe(true);
      expect(same(await n.read('test', val), fused.values)).toBe(true);
    }
  });

  it('the raw numeric phase rejects a rowptr that spgemmSymbolic did not produce (never crashes)', async () => {
    // sparse.matmul always passes symbolic's own rowptr, but internal.native() lets anyone pass another.
    const n = internal.native();
    const arg = (m: Csr) => ({ rows: m.rows, cols: m.cols, indptr: m.indptr._handle, indices: m.indices._handle, values: m.values._handle });
    const rand = lcg(11);
    const small = { a: randomCsr(40, 30, 0.12, rand), b: randomCsr(30, 50, 0.2, rand) };
    for (const [k, { a, b }] of [small, wideCase()].entries()) {
      const A = fromRef(a, k ? 'float32' : 'float64');
      const B = fromRef(b, k ? 'float32' : 'float64');
      const [rp] = n.spgemmSymbolic('test', arg(A), arg(B), true);
      const truth = new BigInt64Array(await n.read('test', rp));
      const M = A.rows;
      const nnz = Number(truth[M]);
      const rows = Array.from({ length: M }, (_, i) => i);
      const full = rows.find((i) => truth[i + 1] - truth[i] >= 2 && i > 0)!; // a row with entries, not the first
      const next = rows.find((i) => i > full && truth[i + 1] > truth[i])!; // the next row with entries
      const forged: [string, (r: BigInt64Array) => void, number][] = [
        ['decreasing', (r) => { r[full] = r[full + 1] + 1n; }, nnz],
        ['first != 0', (r) => { r[0] = 1n; }, nnz],
        ['negative first', (r) => { r[0] = -4n; }, nnz],
        ['last != nnz', () => {}, nnz - 1],
        ['last != nnz (more)', () => {}, nnz + 3],
        ['right total, wrong split', (r) => { r[full + 1] -= 1n; }, nnz],
        ['right total, one row far too short', (r) => { for (let i = full + 1; i <= next; i++) r[i] = r[full] + 1n; }, nnz],
        ['right total, uniform split', (r) => { for (let i = 0; i <= M; i++) r[i] = BigInt(Math.floor((i * nnz) / M)); }, nnz],
        ['all zero', (r) => r.fill(0n), 0],
      ];
      for (const [name, forge, count] of forged) {
        const r = truth.slice();
        forge(r);
        const rowptr = tensor(r, { dtype: 'int64' });
        // Unfused (product null) and fused (the product of a symbolic call whose rowptr this is not).
        const [, product] = n.spgemmSymbolic('test', arg(A), arg(B), true);
        for (const prod of [null, product]) {
          for (const deterministic of [false, true]) {
            let err: unknown;
            try {
              const [, idx] = n.spgemmNumeric('test', arg(A), arg(B), rowptr._handle, count, !deterministic, deterministic, prod, 'int64');
              await n.read('test', idx);
            } catch (e) {
              err = e;
            }
            expect(err, `${name}, product ${prod ? 'fused' : 'null'}`).toBeInstanceOf(SparqError);
            expect(err).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringContaining('test: rowptr does not come from spgemmSymbolic on these inputs') });
          }
        }
        // The product is still usable with its own rowptr, and the unfused path with the true one.
        const own = n.spgemmSymbolic('test', arg(A), arg(B), true);
        for (const [ptr, prod] of [[own[0], own[1]], [rp, null]] as const) {
          const [, idx, val] = n.spgemmNumeric('test', arg(A), arg(B), ptr, nnz, true, false, prod, 'int32');
          const c = await (await sparse.matmul(A, B, { keepZeros: true })).arrays();
          expect(Buffer.from(await n.read('test', idx)).equals(Buffer.from(c.indices.buffer, c.indices.byteOffset, c.indices.byteLength))).toBe(true);
          expect(Buffer.from(await n.read('test', val)).equals(Buffer.from(c.values.buffer, c.values.byteOffset, c.values.byteLength))).toBe(true);
        }
        rowptr.dispose();
      }
    }
    // A malformed A (column 7 of 3) in a numeric call with no symbolic before it: checked, not read blindly.
    const bad = new Csr(2, 3, tensor(new Int32Array([0, 1, 2])), tensor(new Int32Array([0, 7])), tensor(new Float64Array([1, 2])));
    const b = new Csr(3, 2, tensor(new Int32Array([0, 1, 1, 2])), tensor(new Int32Array([0, 1])), tensor(new Float64Array([1, 1])));
    let err: unknown;
    try {
      const [, idx] = n.spgemmNumeric('test', arg(bad), arg(b), tensor(new BigInt64Array([0n, 1n, 2n]))._handle, 2, true, false, null, 'int64');
      await n.read('test', idx);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SparqError);
    expect(err).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringContaining('column index 7 at position 1 (row 1) is out of range [0, 3)') });
  });

  it('errors: inner dimensions, dtypes, devices, options, operands, malformed input, int32 overflow', async () => {
    const a = sparse.csr({ rows: 2, cols: 3, indptr: [0, 1, 2], indices: [0, 2], values: [1, 2] });
    const b = sparse.csr({ rows: 2, cols: 3, indptr: [0, 1, 2], indices: [0, 2], values: [1, 2] });
    await expect(sparse.matmul(a, b)).rejects.toMatchObject({ code: 'ERR_SPARQ_SHAPE', message: 'sparse.matmul: inner dimensions differ: A is 2 x 3 but B is 2 x 3' });
    const f32 = sparse.csr({ rows: 3, cols: 1, indptr: [0, 1, 1, 1], indices: [0], values: new Float32Array([1]) });
    await expect(sparse.matmul(a, f32)).rejects.toMatchObject({ code: 'ERR_SPARQ_DTYPE', message: 'sparse.matmul: B.values must have the dtype of A.values, float64, got float32' });
    await expect(sparse.matmul(a, {} as never)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE', message: 'sparse.matmul: B must be a Csr matrix, got an object' });
    await expect(sparse.matmul(a, a.transpose(), { deterministic: 1 as never })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE', message: 'sparse.matmul: options.deterministic must be a boolean, got the number 1' });
    const bad = sparse.csr({ rows: 3, cols: 2, indptr: [0, 1, 2, 2], indices: [0, 7], values: [1, 1] });
    // sparse.csr's own check fails first (the next read reports it); matmul checks again before using the data.
    await expect(bad.toDense()).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringContaining('sparse.csr: matrix: column index 7 at position 1 (row 1) is out of range [0, 2)') });
    await expect(sparse.matmul(a, bad)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringContaining('sparse.matmul: B: column index 7 at position 1 (row 1) is out of range [0, 2)') });
    // nnz(C) = 46341² > 2^31 - 1, found by the symbolic phase before anything of that size is allocated.
    const n = 46341;
    const col = sparse.csr({ rows: n, cols: 1, indptr: Int32Array.from({ length: n + 1 }, (_, i) => i), indices: new Int32Array(n), values: new Float32Array(n).fill(1) });
    const row = sparse.csr({ rows: 1, cols: n, indptr: [0, n], indices: Int32Array.from({ length: n }, (_, i) => i), values: new Float32Array(n).fill(1) });
    await expect(sparse.matmul(col, row)).rejects.toMatchObject({ code: 'ERR_SPARQ_UNSUPPORTED', message: 'sparse.matmul: C has 2147488281 stored entries, more than int32 row pointers can address (2147483647); give A int64 row pointers' });
  });
});

/** Bytes of C's three arrays, to compare two results bit for bit. */
async function bytesOf(c: Csr): Promise<Buffer[]> {
  const { indptr, indices, values } = await c.arrays();
  return [indptr, indices, values].map((a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength));
}

/** Whether `run` queued anything on the CPU stream (small products on an idle stream do not). */
async function queuesWork<T>(run: () => Promise<T>): Promise<{ out: T; queued: boolean }> {
  const n = internal.native();
  const before = n.cpuLastSeq();
  const pending = run();
  const queued = n.cpuLastSeq() !== before;
  return { out: await pending, queued };
}

describe('sparse.matmul on the CPU: small products at once on an idle stream, queued otherwise', () => {
  const rand = lcg(21);
  const a = randomCsr(30, 40, 0.15, rand);
  const b = randomCsr(40, 25, 0.2, rand);

  it('an idle stream computes a small product without queueing; a busy one queues it; both match the oracle bit for bit', async () => {
    const A = fromRef(a, 'float64', 'int64');
    const B = fromRef(b, 'float64');
    await synchronize('cpu');
    const now = await queuesWork(() => sparse.matmul(A, B));
    expect(now.queued).toBe(false);
    await expectProduct(now.out, gustavson(a, b), 'float64');
    internal.sleep(5); // the stream is busy: the product must wait its turn
    const later = await queuesWork(() => sparse.matmul(A, B));
    expect(later.queued).toBe(true);
    expect(await bytesOf(later.out)).toEqual(await bytesOf(now.out));
    // A product too large for the calling thread is queued even on an idle stream.
    const big = fromRef(randomCsr(400, 400, 0.1, rand), 'float64');
    await synchronize('cpu');
    expect((await queuesWork(() => sparse.matmul(big, big))).queued).toBe(true);
  });

  it('a product queued behind pending work sees the final values of its inputs', async () => {
    const A = fromRef(a, 'float64');
    await synchronize('cpu');
    internal.sleep(20);
    // B's values come from a queued cast that has not run yet when matmul is called.
    const v32 = tensor(Float32Array.from(b.values), { dtype: 'float32' });
    const B = new Csr(b.rows, b.cols, tensor(Int32Array.from(b.indptr)), tensor(Int32Array.from(b.indices)), v32.cast('float64'));
    const { out, queued } = await queuesWork(() => sparse.matmul(A, B));
    expect(queued).toBe(true);
    await expectProduct(out, gustavson(a, { ...b, values: b.values.map(Math.fround) }), 'float64');
  });

  it('an unreported failure of earlier work rejects a small product instead of being skipped', async () => {
    const A = fromRef(a, 'float64');
    const B = fromRef(b, 'float64');
    await synchronize('cpu');
    internal.fail('earlier op broke');
    const n = internal.native();
    while (n.cpuStreamState()[1] < n.cpuLastSeq()) await new Promise((r) => setTimeout(r, 1)); // it ran and failed
    await expect(sparse.matmul(A, B)).rejects.toThrow(/earlier op broke/);
    const { out, queued } = await queuesWork(() => sparse.matmul(A, B)); // reported once: back to normal
    expect(queued).toBe(false);
    await expectProduct(out, gustavson(a, b), 'float64');
  });

  it('malformed input is rejected the same way at once and when queued', async () => {
    const bad = new Csr(2, 3, tensor(new Int32Array([0, 1, 2])), tensor(new Int32Array([0, 7])), tensor(new Float64Array([1, 2])));
    const B = new Csr(3, 2, tensor(new Int32Array([0, 1, 1, 2])), tensor(new Int32Array([0, 1])), tensor(new Float64Array([1, 1])));
    const want = { code: 'ERR_INVALID_ARG_VALUE', message: expect.stringContaining('sparse.matmul: A: column index 7 at position 1 (row 1) is out of range [0, 3)') };
    await synchronize('cpu');
    await expect(sparse.matmul(bad, B)).rejects.toMatchObject(want);
    internal.sleep(2);
    await expect(sparse.matmul(bad, B)).rejects.toMatchObject(want);
    // A forged B row pointer (a row longer than B) is left to the full checks, not trusted.
    const forged = new Csr(3, 2, tensor(new Int32Array([0, 9, -4, 2])), tensor(new Int32Array([0, 1])), tensor(new Float64Array([1, 1])));
    const ok = new Csr(2, 3, tensor(new Int32Array([0, 1, 2])), tensor(new Int32Array([0, 2])), tensor(new Float64Array([1, 2])));
    await synchronize('cpu');
    await expect(sparse.matmul(ok, forged)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringContaining('sparse.matmul: B: indptr') });
  });

  it('short rows over a wide column range (bitmap read-out) and sortColumns: false, against the oracle', async () => {
    const r = lcg(5);
    const wide = randomCsr(300, 3000, 0.002, r); // ~6 entries per row spread over 3000 columns
    const wt = transposeRef(wide);
    for (const dtype of ['float64', 'float32'] as const) {
      const w = dtype === 'float32' ? roundRef(wide) : wide;
      const t = dtype === 'float32' ? roundRef(wt) : wt;
      const ref = gustavson(w, t);
      await expectProduct(await sparse.matmul(fromRef(w, dtype), fromRef(t, dtype)), ref, dtype);
      const u = await toRef(await sparse.matmul(fromRef(w, dtype), fromRef(t, dtype), { sortColumns: false }));
      expect(u.indptr).toEqual(ref.indptr);
      for (let i = 0; i < u.rows; i++) {
        expect(u.indices.slice(u.indptr[i], u.indptr[i + 1]).sort((x, y) => x - y)).toEqual(ref.indices.slice(ref.indptr[i], ref.indptr[i + 1]));
      }
    }
  });
});

describe.skipIf(cudaReason !== null)(`sparse.matmul on ${CUDA_TITLE}`, () => {
  it('every test matrix: CUDA structure equals the CPU, values within tolerance, deterministic mode bit-identical', async () => {
    for (const c of CASES) {
      const { a, b, ref } = await refFor(c);
      for (const dtype of ['float64', 'float32'] as const) {
        const A = fromRef(dtype === 'float32' ? roundRef(a) : a, dtype).to('cuda:0');
        const B = c.transposeB ? fromRef(dtype === 'float32' ? roundRef(b) : b, dtype).to('cuda:0') : A;
        const r = dtype === 'float32' ? gustavson(roundRef(a), c.transposeB ? roundRef(b) : roundRef(a)) : ref;
        await expectProduct(await sparse.matmul(A, B), r, dtype);
        const d1 = await (await sparse.matmul(A, B, { deterministic: true })).values.data();
        const d2 = await (await sparse.matmul(A, B, { deterministic: true })).values.data();
        expect(Buffer.from(d1.buffer).equals(Buffer.from(d2.buffer))).toBe(true);
      }
    }
  });

  it('B of 100,000 columns: every shared-memory bin and the global-memory fallback', async () => {
    const { a, b } = wideCase();
    for (const deterministic of [false, true]) {
      const c = await sparse.matmul(fromRef(a, 'float64').to('cuda:0'), fromRef(b, 'float64').to('cuda:0'), { deterministic });
      await expectProduct(c, gustavson(a, b), 'float64');
    }
  });
});
