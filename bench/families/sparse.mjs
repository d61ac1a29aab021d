// @ts-check
// SpGEMM benchmarks: C = A·A (A·Aᵀ for the rectangular matrix) on every test matrix, as GFLOP/s
// (2 x products / time) and time per product, side by side with SciPy on the CPU and CuPy
// (cuSPARSE) on CUDA. Timed by the wall clock from the call to the settled promise: analysis,
// symbolic phase, the read of nnz(C), allocation and numeric phase, as OpSparse times its total.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { sparq } from '../harness.mjs';

/** @typedef {import('../run.mjs').BenchCase} BenchCase */

const DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'test', 'data', 'matrices');
const ALL = ['bcsstk13', 'pushpull', 'zenios', 'west0067', 'karate', 'LFAT5', 'cryg2500', 'n1024-l1', 'n1024-l2',
  'sparse-images-1024_subset', '1138_bus', 'hep-th'];
const QUICK = ['west0067', 'bcsstk13'];

/**
 * Products of A·A (A·Aᵀ when `t`): Σ_k (entries of column k of the left factor) x (entries of row k
 * of the right one), counted from the file's coordinates (symmetric halves mirrored).
 * @param {string} text @param {boolean} t A·Aᵀ (forced for a rectangular A)
 */
function countProducts(text, t) {
  const lines = text.split('\n');
  const sym = !/\sgeneral\s*$/i.test(lines[0].trim());
  let i = 1;
  while (lines[i].startsWith('%')) i++;
  const [rows, cols] = lines[i].trim().split(/\s+/).map(Number);
  const rowCount = new Float64Array(rows);
  const colCount = new Float64Array(cols);
  for (i++; i < lines.length; i++) {
    const s = lines[i].trim();
    if (!s || s.startsWith('%')) continue;
    const [r, c] = s.split(/\s+/, 2).map((x) => Number(x) - 1);
    rowCount[r]++;
    colCount[c]++;
    if (sym && r !== c) {
      rowCount[c]++;
      colCount[r]++;
    }
  }
  let p = 0;
  t = t || rows !== cols;
  // A·Aᵀ: row k of Aᵀ is column k of A.
  if (t) for (let k = 0; k < cols; k++) p += colCount[k] * colCount[k];
  else for (let k = 0; k < rows; k++) p += colCount[k] * rowCount[k];
  return { rows, cols, products: p, t };
}

/**
 * @param {{ device: string, quick: boolean }} ctx
 * @returns {BenchCase[]}
 */
export function cases({ device, quick }) {
  const dev = /** @type {any} */ (device);
  const dtype = 'float64';
  /** @type {BenchCase[]} */
  const out = [];
  for (const name of quick ? QUICK : ALL) {
    const file = path.join(DIR, `${name}.mtx`);
    const text = fs.readFileSync(file, 'utf8');
    const { rows, cols, products, t } = countProducts(text, false);
    out.push({
      name: `spgemm ${name} ${t ? 'A·Aᵀ' : 'A·A'} ${dtype}`,
      shape: `${rows} x ${cols}, ${products} products`,
      bytes: 0,
      flops: 2 * products,
      // On the CPU the promise settles when C is complete; on CUDA the numeric phase may still run.
      clock: device === 'cpu' ? 'settled' : 'wall',
      runs: 31, // the small products take ~0.2 ms: more runs for a steady median
      setup: () => {
        const a = sparq.sparse.fromMatrixMarket(text, { dtype }).to(dev);
        return t ? [a, a.transpose()] : [a, a];
      },
      run: ([a, b]) => sparq.sparse.matmul(a, b),
      peer: { script: 'sparse.py', args: { file, transpose: t, dtype } },
    });
  }
  if (device !== 'cpu' && !quick) out.push(compressionStress(dev, dtype));
  return out;
}

/**
 * GPU only: a product whose intermediate products (8.6e9) dwarf C (1.3e8 entries), the case where
 * cuSPARSE's default algorithm needs buffers in proportion to the products. A = rows x 64 with
 * every row full, B = 64 x 64 full.
 * @param {any} dev @param {'float64'} dtype
 * @returns {BenchCase}
 */
function compressionStress(dev, dtype) {
  const rows = 1 << 21, width = 64;
  return {
    name: `spgemm compression stress A·B ${dtype}`,
    shape: `A ${rows} x ${width} (every row full) · B ${width} x ${width} (full): ${rows * width * width} products, ${rows * width} entries in C`,
    bytes: 0,
    flops: 2 * rows * width * width,
    clock: 'wall',
    runs: 3,
    setup: () => {
      const indptr = new Int32Array(rows + 1);
      const indices = new Int32Array(rows * width);
      const values = new Float64Array(rows * width);
      for (let r = 0; r < rows; r++) {
        indptr[r + 1] = (r + 1) * width;
        for (let j = 0; j < width; j++) {
          indices[r * width + j] = j;
          values[r * width + j] = 1 + ((r + j) % 7) / 8;
        }
      }
      const a = sparq.sparse.csr({ rows, cols: width, indptr, indices, values, device: dev });
      const b = sparq.sparse.csr({
        rows: width, cols: width, device: dev,
        indptr: Int32Array.from({ length: width + 1 }, (_, r) => r * width),
        indices: Int32Array.from({ length: width * width }, (_, i) => i % width),
        values: new Float64Array(width * width).fill(0.5),
      });
      return Object.assign([a, b], { dispose: () => { a.dispose(); b.dispose(); } });
    },
    run: ([a, b]) => sparq.sparse.matmul(a, b),
    peer: { script: 'sparse.py', args: { generate: { rows, width }, dtype, runs: 3 } },
  };
}
