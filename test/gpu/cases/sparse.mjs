// @ts-check
// Parity of SpGEMM: sparse.matmul on the device against the CPU on the same matrices. Structure
// (row pointers and sorted column indices) bit for bit; values within 2γ·Σ|a||b| per entry (γ 1e-5
// float32, 1e-12 float64; Σ|a||b| is the CPU product of |A| and |B|). Covers every test matrix, all
// row bins (warp, 512/2048/4096-slot tables, the global-memory fallback for rows of more than
// 2048 entries, one-entry rows), int64 row pointers, deterministic mode (bit-identical runs),
// keepZeros: false, sortColumns: false, malformed input and transpose/toDense on the device; rows of
// C on both sides of every bin edge (32/33, 256/257, 1024/1025, 2048/2049) in sorted, unsorted and
// deterministic runs, B narrow enough that symbolic bins go by width, exact cancellation kept in
// every bin, empty shapes, and each fault the validation kernel reports, in A and in B.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** @typedef {import('../parity.mjs').Ctx} Ctx */
/** @typedef {import('../../../dist/cjs/index.js').Csr} Csr */

const DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'data', 'matrices');
const GAMMA = { float32: 1e-5, float64: 1e-12 };

/** @param {Ctx} ctx */
export async function run({ sparq, device, check, sameBits }) {
  const { sparse } = sparq;

  /** @param {Csr} m */
  async function arrays(m) {
    const a = await m.arrays();
    return { indptr: Array.from(a.indptr, Number), indices: a.indices, values: a.values };
  }

  /** A copy of m with |values| (same structure). @param {Csr} m */
  async function absOf(m) {
    const a = await m.arrays();
    const v = a.values.map(Math.abs);
    return sparse.csr({ rows: m.rows, cols: m.cols, indptr: a.indptr, indices: a.indices, values: v });
  }

  /**
   * C = A·B on the CPU and on the device; throws on any difference beyond the contract.
   * @param {Csr} a @param {Csr} b @param {string} what @param {object} [options]
   */
  async function compare(a, b, what, options = {}) {
    const dtype = /** @type {'float32' | 'float64'} */ (a.dtype);
    const cpu = await arrays(await sparse.matmul(a, b, options));
    const onDev = await sparse.matmul(a.to(device), b.to(device), options);
    if (onDev.device !== (device === 'cuda' ? 'cuda:0' : device)) throw new Error(`${what}: result on ${onDev.device}`);
    const dev = await arrays(onDev);
    sameBits(cpu.indptr, dev.indptr, `${what}: indptr`);
    sameBits(cpu.indices, dev.indices, `${what}: indices`);
    const bound = (await arrays(await sparse.matmul(await absOf(a), await absOf(b), options))).values;
    let bad = 0;
    let first = -1;
    for (let k = 0; k < cpu.values.length; k++) {
      if (!(Math.abs(cpu.values[k] - dev.values[k]) <= 2 * GAMMA[dtype] * bound[k])) {
        bad++;
        if (first < 0) first = k;
      }
    }
    if (bad) throw new Error(`${what}: ${bad} values out of tolerance; first at ${first}: cpu ${cpu.values[first]}, ${device} ${dev.values[first]}`);
  }

  /** A CSR from row lists of [col, value]. @param {number} cols @param {[number, number][][]} rowsOf @param {'float32' | 'float64'} dtype */
  function fromRows(cols, rowsOf, dtype, int64 = false) {
    const indptr = [0];
    const indices = [];
    const values = [];
    for (const r of rowsOf) {
      r.sort((x, y) => x[0] - y[0]);
      for (const [c, v] of r) {
        indices.push(c);
        values.push(v);
      }
      indptr.push(indices.length);
    }
    return sparse.csr({
      rows: rowsOf.length, cols,
      indptr: int64 ? BigInt64Array.from(indptr, (x) => BigInt(x)) : Int32Array.from(indptr),
      indices: Int32Array.from(indices),
      values: dtype === 'float32' ? Float32Array.from(values) : Float64Array.from(values),
    });
  }

  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  /** Rows with the given entry counts, columns drawn without repetition from [0, cols). @param {number[]} counts @param {number} cols */
  function rowsWith(counts, cols) {
    return counts.map((n) => {
      const set = new Set();
      while (set.size < Math.min(n, cols)) set.add(Math.floor(rand() * cols));
      return [...set].map((c) => /** @type {[number, number]} */ ([c, 2 * rand() - 1]));
    });
  }

  /**
   * sortColumns: false: the same row pointers; per row the same set of columns, each with its value
   * within the tolerance (rows are compared after sorting each by column).
   * @param {Csr} a @param {Csr} b @param {string} what @param {object} [options]
   */
  async function compareUnsorted(a, b, what, options = {}) {
    const dtype = /** @type {'float32' | 'float64'} */ (a.dtype);
    const opts = { ...options, sortColumns: false };
    const cpu = await arrays(await sparse.matmul(a, b, opts));
    const dev = await arrays(await sparse.matmul(a.to(device), b.to(device), opts));
    const bound = await arrays(await sparse.matmul(await absOf(a), await absOf(b), opts));
    sameBits(cpu.indptr, dev.indptr, `${what}: indptr`);
    /** @param {{ indices: Int32Array, values: ArrayLike<number> }} m @param {number} lo @param {number} hi */
    const rowMap = (m, lo, hi) => new Map(Array.from(m.indices.subarray(lo, hi), (c, j) => [c, m.values[lo + j]]));
    for (let r = 0; r + 1 < cpu.indptr.length; r++) {
      const [lo, hi] = [cpu.indptr[r], cpu.indptr[r + 1]];
      const want = rowMap(cpu, lo, hi);
      const got = rowMap(dev, lo, hi);
      const lim = rowMap(bound, bound.indptr[r], bound.indptr[r + 1]);
      if (got.size !== want.size) throw new Error(`${what}: row ${r} has ${got.size} distinct columns on ${device}, ${want.size} on cpu`);
      for (const [c, v] of want) {
        const g = got.get(c);
        if (g === undefined) throw new Error(`${what}: row ${r} lacks column ${c} on ${device}`);
        if (!(Math.abs(g - v) <= 2 * GAMMA[dtype] * /** @type {number} */ (lim.get(c)))) throw new Error(`${what}: row ${r} column ${c}: cpu ${v}, ${device} ${g}`);
      }
    }
  }

  /** Two runs on the device give the same bits (indices and values). @param {Csr} a @param {Csr} b @param {string} what @param {object} options */
  async function twiceSame(a, b, what, options) {
    const [da, db] = [a.to(device), b.to(device)];
    const r1 = await arrays(await sparse.matmul(da, db, options));
    const r2 = await arrays(await sparse.matmul(da, db, options));
    sameBits(r1.indptr, r2.indptr, `${what}: indptr run to run`);
    sameBits(r1.indices, r2.indices, `${what}: indices run to run`);
    sameBits(/** @type {any} */ (r1.values), /** @type {any} */ (r2.values), `${what}: values run to run`);
  }

  /**
   * B (cols x cols): row k holds the window of columns [k, k + W) (clipped at cols), values in [-1, 1).
   * A: for each target n, a row whose windows overlap to cover exactly n consecutive columns (so
   * nnz(C) of that row is n, with about 2n products), at a random offset; plus empty and one-entry rows.
   * @param {number[]} targets @param {number} cols @param {'float32' | 'float64'} dtype @param {boolean} int64
   */
  function windows(targets, cols, dtype, int64) {
    const W = 24;
    const bRows = Array.from({ length: cols }, (_, k) => Array.from({ length: Math.min(W, cols - k) }, (_, j) => /** @type {[number, number]} */ ([k + j, 2 * rand() - 1])));
    /** @type {[number, number][][]} */
    const aRows = [[]];
    for (const n of targets) {
      /** @type {Set<number>} */
      const ks = new Set();
      if (n < W) {
        ks.add(cols - n); // clipped windows [cols - n, cols) and [cols - n + 1, cols)
        ks.add(cols - n + 1);
      } else {
        const o = Math.floor(rand() * (cols - n + 1));
        for (let k = o; k + W < o + n; k += W / 2) ks.add(k);
        ks.add(o + n - W);
      }
      aRows.push([...ks].map((k) => /** @type {[number, number]} */ ([k, 2 * rand() - 1])));
      aRows.push([[Math.floor(rand() * cols), 2 * rand() - 1]], []); // a scaled copy of one B row, an empty row
    }
    return { a: fromRows(cols, aRows, dtype, int64), b: fromRows(cols, bRows, dtype, int64) };
  }
  // nnz(C) per row at each side of every bin edge (warp <= 32 < 512-slot <= 256 < 2048-slot <= 1024
  // < 4096-slot <= 2048 < global), with symbolic bins (by products, about 2n) landing one bin higher.
  const EDGES = [2, 5, 16, 31, 32, 33, 100, 128, 129, 255, 256, 257, 600, 1023, 1024, 1025, 2047, 2048, 2049, 3000, 7000];

  for (const file of fs.readdirSync(DIR).filter((f) => f.endsWith('.mtx')).sort()) {
    await check(`matmul ${file} float64 and float32`, async () => {
      const text = fs.readFileSync(path.join(DIR, file), 'utf8');
      for (const dtype of /** @type {const} */ (['float64', 'float32'])) {
        const a = sparse.fromMatrixMarket(text, { dtype });
        const b = a.rows === a.cols ? a : a.transpose();
        await compare(a, b, `${file} ${dtype}`);
      }
    });
  }

  await check('every row bin: warp, 512/2048/4096-slot tables, global fallback, one-entry rows; int64 row pointers', async () => {
    // Rows of C with about 1..6000 entries: A rows of 1..60 entries times B rows of ~100 entries in 20000 columns.
    const aCounts = [0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 60, 1, 2, 40, 60, 60];
    for (const dtype of /** @type {const} */ (['float64', 'float32'])) {
      const a = fromRows(400, rowsWith(aCounts, 400), dtype, true);
      const b = fromRows(20000, rowsWith(Array.from({ length: 400 }, (_, i) => (i % 7 === 0 ? 0 : 20 + (i % 180))), 20000), dtype);
      await compare(a, b, `bins ${dtype}`);
      await compare(a, b, `bins ${dtype} deterministic`, { deterministic: true });
    }
  });

  await check('deterministic: bit-identical runs on the device (long and short rows)', async () => {
    for (const file of ['pushpull.mtx', 'sparse-images-1024_subset.mtx']) {
      const a = sparse.fromMatrixMarket(fs.readFileSync(path.join(DIR, file)), { dtype: 'float32' }).to(device);
      const b = a.rows === a.cols ? a : a.transpose();
      const r1 = await (await sparse.matmul(a, b, { deterministic: true })).values.data();
      const r2 = await (await sparse.matmul(a, b, { deterministic: true })).values.data();
      sameBits(/** @type {any} */ (r1), /** @type {any} */ (r2), `${file} deterministic`);
    }
  });

  await check('keepZeros: false and sortColumns: false (zenios, stored zeros)', async () => {
    const a = sparse.fromMatrixMarket(fs.readFileSync(path.join(DIR, 'zenios.mtx')));
    await compare(a, a, 'zenios keepZeros false', { keepZeros: false });
    const cpu = await arrays(await sparse.matmul(a, a, { sortColumns: false }));
    const dev = await arrays(await sparse.matmul(a.to(device), a.to(device), { sortColumns: false }));
    sameBits(cpu.indptr, dev.indptr, 'unsorted indptr');
    for (let r = 0; r + 1 < cpu.indptr.length; r++) {
      const x = Array.from(cpu.indices.slice(cpu.indptr[r], cpu.indptr[r + 1])).sort((p, q) => p - q);
      const y = Array.from(dev.indices.slice(dev.indptr[r], dev.indptr[r + 1])).sort((p, q) => p - q);
      if (x.join() !== y.join()) throw new Error(`unsorted: row ${r} holds other columns`);
    }
  });

  await check('malformed input fails the product; transpose and toDense on the device', async () => {
    const bad = new sparse.Csr(2, 2, sparq.tensor([0, 1, 2], { dtype: 'int32' }), sparq.tensor([1, 5], { dtype: 'int32' }),
      sparq.tensor([1, 2], { dtype: 'float64' }));
    let code = 'no error';
    try {
      await sparse.matmul(bad.to(device), bad.to(device));
    } catch (e) {
      code = /** @type {any} */ (e).code;
    }
    if (code !== 'ERR_INVALID_ARG_VALUE') throw new Error(`malformed input: got ${code}`);
    const a = sparse.fromMatrixMarket(fs.readFileSync(path.join(DIR, 'west0067.mtx')));
    const t = a.to(device).transpose();
    sameBits(/** @type {any} */ (await (await a.transpose().toDense()).data()), /** @type {any} */ (await (await t.toDense()).data()), 'transpose');
  });

  await check('bin edges: nnz(C) per row on both sides of every table size, global fallback; sorted, unsorted, deterministic', async () => {
    for (const [cols, dtype, int64] of /** @type {const} */ ([[8000, 'float64', true], [8000, 'float32', false], [2048, 'float32', true]])) {
      const targets = EDGES.filter((n) => n <= cols);
      const { a, b } = windows(targets, cols, dtype, int64);
      const what = `edges ${cols} cols ${dtype}${int64 ? ' int64' : ''}`;
      const ptr = (await arrays(await sparse.matmul(a, b))).indptr; // the construction: row 1 + 3t has targets[t] entries
      targets.forEach((n, t) => {
        if (ptr[2 + 3 * t] - ptr[1 + 3 * t] !== n) throw new Error(`${what}: row ${1 + 3 * t} has ${ptr[2 + 3 * t] - ptr[1 + 3 * t]} entries, want ${n}`);
      });
      await compare(a, b, what);
      await compare(a, b, `${what} deterministic`, { deterministic: true });
      await compareUnsorted(a, b, `${what} unsorted`);
      await compareUnsorted(a, b, `${what} unsorted deterministic`, { deterministic: true });
      await twiceSame(a, b, `${what} deterministic`, { deterministic: true });
      await twiceSame(a, b, `${what} deterministic unsorted`, { deterministic: true, sortColumns: false });
    }
  });

  await check('many products into few columns: B 32 and 1500 columns wide (symbolic bins by width)', async () => {
    for (const width of [32, 1500]) {
      for (const dtype of /** @type {const} */ (['float64', 'float32'])) {
        const a = fromRows(300, rowsWith([0, 1, 2, 3, 40, 150, 300, 299, 5], 300), dtype);
        const b = fromRows(width, rowsWith(Array.from({ length: 300 }, (_, i) => (i % 11 === 0 ? 0 : 1 + (i * 7) % Math.min(width, 600))), width), dtype);
        await compare(a, b, `width ${width} ${dtype}`);
        await compare(a, b, `width ${width} ${dtype} deterministic`, { deterministic: true });
        await compareUnsorted(a, b, `width ${width} ${dtype} unsorted`);
      }
    }
  });

  await check('keepZeros: entries that cancel exactly stay (every bin); keepZeros: false drops them', async () => {
    // B's rows come in identical pairs (2j, 2j + 1) with small-integer values; an A row with +x on
    // 2j and -x on 2j + 1 gives exact zeros in any summation order. Lengths span every bin.
    const lengths = [3, 20, 32, 33, 200, 257, 800, 1025, 1500, 2049, 3000];
    const cols = 8000;
    /** @type {[number, number][][]} */
    const bRows = [];
    for (const n of lengths) {
      const row = rowsWith([n], cols)[0].map(([c]) => /** @type {[number, number]} */ ([c, 1 + Math.floor(rand() * 4)]));
      bRows.push(row, row.map(([c, v]) => /** @type {[number, number]} */ ([c, v])));
    }
    const aRows = lengths.map((_, j) => /** @type {[number, number][]} */ ([[2 * j, 2], [2 * j + 1, -2]]));
    aRows.push([[0, 0]]); // a stored zero times a row of B: a row of zeros (copy bin)
    aRows.push([[0, 1], [1, -1], [2 * lengths.length - 1, 1]]); // cancellation next to real entries
    for (const dtype of /** @type {const} */ (['float64', 'float32'])) {
      const a = fromRows(bRows.length, aRows, dtype);
      const b = fromRows(cols, bRows, dtype);
      for (const deterministic of [false, true]) {
        await compare(a, b, `cancel ${dtype}${deterministic ? ' deterministic' : ''}`, { deterministic });
        const dev = await arrays(await sparse.matmul(a.to(device), b.to(device), { deterministic }));
        for (let r = 0; r <= lengths.length; r++) {
          const n = r < lengths.length ? lengths[r] : lengths[0];
          if (dev.indptr[r + 1] - dev.indptr[r] !== n) throw new Error(`cancel ${dtype}: row ${r} keeps ${dev.indptr[r + 1] - dev.indptr[r]} entries, want ${n}`);
          for (let k = dev.indptr[r]; k < dev.indptr[r + 1]; k++) {
            if (dev.values[k] !== 0) throw new Error(`cancel ${dtype}: row ${r} holds ${dev.values[k]} at column ${dev.indices[k]}, want 0`);
          }
        }
      }
      const dropped = await arrays(await sparse.matmul(a.to(device), b.to(device), { keepZeros: false }));
      const last = lengths.length + 1;
      if (dropped.indptr[last] !== 0) throw new Error(`keepZeros false ${dtype}: the cancelled rows keep ${dropped.indptr[last]} entries`);
      if (dropped.indptr[last + 1] !== lengths[lengths.length - 1]) throw new Error(`keepZeros false ${dtype}: the mixed row keeps ${dropped.indptr[last + 1]} entries, want ${lengths[lengths.length - 1]}`);
      await compare(a, b, `cancel ${dtype} keepZeros false`, { keepZeros: false });
    }
  });

  await check('empty shapes: 0 rows, 0 inner, 0 columns, nnz 0, empty rows', async () => {
    /** @type {[string, Csr, Csr][]} */
    const cases = [
      ['0x0 * 0x0', fromRows(0, [], 'float64'), fromRows(0, [], 'float64')],
      ['0x5 * 5x3', fromRows(5, [], 'float32'), fromRows(3, [[[1, 1]], [], [], [[0, 2]], []], 'float32')],
      ['3x0 * 0x4', fromRows(0, [[], [], []], 'float64'), fromRows(4, [], 'float64')],
      ['nnz 0 * B', fromRows(5, [[], [], []], 'float64', true), fromRows(4, [[[1, 1]], [], [], [[0, 2]], []], 'float64')],
      ['A * 3x0', fromRows(3, [[[0, 1], [2, 1]], []], 'float32'), fromRows(0, [[], [], []], 'float32')],
      ['empty products', fromRows(4, [[[1, 1], [3, 1]], [], [[0, 5]]], 'float64'), fromRows(6, [[[5, 1]], [], [[2, 1]], []], 'float64')],
    ];
    for (const [what, a, b] of cases) {
      await compare(a, b, what);
      await compare(a, b, `${what} deterministic`, { deterministic: true });
      const c = await sparse.matmul(a.to(device), b.to(device));
      if (c.rows !== a.rows || c.cols !== b.cols) throw new Error(`${what}: C is ${c.rows} x ${c.cols}`);
    }
  });

  await check('malformed A or B (each fault of the validation kernel) rejects; the device stays usable', async () => {
    const t = (/** @type {number[]} */ v, /** @type {any} */ dtype) => sparq.tensor(v, { dtype });
    /** @type {[string, () => Csr][]} */
    const faults = [
      ['negative column', () => new sparse.Csr(2, 3, t([0, 1, 2], 'int32'), t([0, -1], 'int32'), t([1, 2], 'float64'))],
      ['unsorted row', () => new sparse.Csr(2, 3, t([0, 2, 2], 'int32'), t([2, 0], 'int32'), t([1, 2], 'float64'))],
      ['repeated column', () => new sparse.Csr(2, 3, t([0, 2, 2], 'int32'), t([1, 1], 'int32'), t([1, 2], 'float64'))],
      ['indptr[0] != 0', () => new sparse.Csr(2, 3, t([1, 1, 2], 'int32'), t([0, 1], 'int32'), t([1, 2], 'float64'))],
      ['decreasing indptr', () => new sparse.Csr(2, 3, t([0, 2, 1], 'int32'), t([0], 'int32'), t([1], 'float64'))],
      ['indptr past the entries', () => new sparse.Csr(2, 3, t([0, 1, 1000000], 'int32'), t([0, 1], 'int32'), t([1, 2], 'float64'))],
      ['indptr short of the entries', () => new sparse.Csr(2, 3, t([0, 1, 1], 'int32'), t([0, 1], 'int32'), t([1, 2], 'float64'))],
      ['int64 indptr far out', () => new sparse.Csr(2, 3, sparq.tensor(BigInt64Array.from([0n, 1n << 40n, 2n])), t([0, 1], 'int32'), t([1, 2], 'float64'))],
      ['0 rows, entries', () => new sparse.Csr(0, 3, t([0], 'int32'), t([0], 'int32'), t([1], 'float64'))],
    ];
    const good = fromRows(3, [[[0, 1], [2, 2]], [[1, 3]], []], 'float64');
    for (const [what, make] of faults) {
      const bad = make();
      // As A (times a valid 3 x 3) and as B (after an A whose entries select every row of it).
      /** @type {[number, number][][]} */
      const aRows = [Array.from({ length: bad.rows }, (_, k) => /** @type {[number, number]} */ ([k, 1])), [], [[0, 2]]];
      const aOfB = fromRows(bad.rows, aRows.slice(0, bad.rows ? 3 : 1), 'float64');
      for (const [side, a, b] of /** @type {[string, Csr, Csr][]} */ ([['A', bad, good], ['B', aOfB, bad]])) {
        let code = 'no error';
        try {
          await sparse.matmul(a.to(device), b.to(device));
        } catch (e) {
          code = /** @type {any} */ (e).code;
        }
        if (code !== 'ERR_INVALID_ARG_VALUE') throw new Error(`${what} in ${side}: got ${code}`);
      }
    }
    await compare(good, good.transpose(), 'a product after the faults');
  });

  await check('raw numeric phase: a forged rowptr (not from spgemmSymbolic) rejects in every bin; the device stays usable', async () => {
    // B rows 0-3: 10 entries, rows 4-11: 600, on disjoint columns, so a row of C has the summed length:
    // one-entry rows (copy), 20 (warp), 510 (512 table), 1200 (2048), 3000 (4096), 4800 (global, B.cols > 4096).
    /** @type {[number, number][][]} */
    const bRows = Array.from({ length: 12 }, (_, k) => {
      const len = k < 4 ? 10 : 600, start = k < 4 ? k * 10 : 40 + (k - 4) * 600;
      return Array.from({ length: len }, (_, j) => /** @type {[number, number]} */ ([start + j, 1 + ((j * 7 + k) % 5)]));
    });
    const pick = (/** @type {number[]} */ ks) => ks.map((k, j) => /** @type {[number, number]} */ ([k, j + 1]));
    const aRows = [pick([0]), pick([0, 1]), [], pick([4, 1]), pick([4, 5]), pick([4, 5, 6, 7, 8]), pick([4, 5, 6, 7, 8, 9, 10, 11]), pick([2, 3]), pick([6])];
    const n = sparq.internal.native();
    for (const dtype of /** @type {const} */ (['float32', 'float64'])) {
      const a = fromRows(12, aRows.map((r) => r.slice()), dtype).to(device);
      const b = fromRows(8000, bRows.map((r) => r.slice()), dtype).to(device);
      const arg = (/** @type {Csr} */ m) => ({ rows: m.rows, cols: m.cols, indptr: m.indptr._handle, indices: m.indices._handle, values: m.values._handle });
      const [rp] = n.spgemmSymbolic('parity', arg(a), arg(b), true);
      const truth = new BigInt64Array(await n.read('parity', rp));
      const M = a.rows, nnz = Number(truth[M]);
      /** @type {[string, (r: BigInt64Array) => void, number][]} */
      const forged = [
        ['decreasing', (r) => { r[4] = r[5] + 1n; }, nnz],
        ['first != 0', (r) => { r[0] = 1n; }, nnz],
        ['negative start', (r) => { r[0] = -8n; r[1] = -4n; }, nnz],
        ['last != nnz', () => {}, nnz - 1],
        ['last past nnz', (r) => { r[M] = BigInt(nnz + 5); }, nnz],
        ['all zero', (r) => r.fill(0n), 0],
        ['uniform split', (r) => { for (let i = 0; i <= M; i++) r[i] = BigInt(Math.floor((i * nnz) / M)); }, nnz],
      ];
      // Right total, one entry moved from row i to row i + 1, for every row with entries (every bin).
      for (let i = 0; i < M; i++) if (truth[i + 1] > truth[i]) forged.push([`row ${i} one short`, (r) => { r[i + 1] -= 1n; }, nnz]);
      // Tables sized from forged counts: row 1 (20 entries) told 2, row 5 (3000) told 30, so its warp table (64 slots) overflows.
      forged.push(['rows told too few', (r) => { r[2] = r[1] + 2n; r[6] = r[5] + 30n; }, nnz]);
      for (const [what, forge, count] of forged) {
        const r = truth.slice();
        forge(r);
        const rowptr = sparq.tensor(r, { dtype: 'int64' }).to(device);
        for (const [sort, det] of [[true, false], [false, false], [true, true]]) {
          const [, product] = n.spgemmSymbolic('parity', arg(a), arg(b), sort);
          let err = /** @type {any} */ (null);
          try {
            const [, idx] = n.spgemmNumeric('parity', arg(a), arg(b), rowptr._handle, count, sort, det, product, 'int64');
            await n.read('parity', idx);
          } catch (e) {
            err = e;
          }
          const tag = `${dtype} ${what} sort ${sort} deterministic ${det}`;
          if (!(err instanceof sparq.SparqError)) throw new Error(`${tag}: no SparqError (${err})`);
          if (err.code !== 'ERR_INVALID_ARG_VALUE' || !String(err.message).includes('rowptr does not come from spgemmSymbolic on these inputs'))
            throw new Error(`${tag}: got ${err.code}: ${err.message}`);
        }
        rowptr.dispose();
      }
      await compare(fromRows(12, aRows.map((x) => x.slice()), dtype), fromRows(8000, bRows.map((x) => x.slice()), dtype), `${dtype}: a product after the forged rowptrs`);
      await compare(fromRows(12, aRows.map((x) => x.slice()), dtype), fromRows(8000, bRows.map((x) => x.slice()), dtype), `${dtype}: deterministic, after`, { deterministic: true });
    }
  });
}
