/**
 * References for sparse matrices, in float64 and independent of lib/sparse: a Matrix Market reader
 * into a map of (row, col) -> summed value, and Gustavson's row-wise product C = A·B with a dense
 * row accumulator, which also returns, per entry of C, the bound Σ_k |a_ik|·|b_kj| used by the
 * tolerance |c - c_ref| <= γ·Σ|a||b|. The structure is the structural pattern: every (i, j) reached
 * by at least one product, whatever its value (cancellations and stored zeros included).
 */

export interface RefCsr {
  rows: number;
  cols: number;
  indptr: number[];
  indices: number[];
  values: number[];
}

export interface RefProduct extends RefCsr {
  /** Σ_k |a_ik|·|b_kj| of each stored entry. */
  bound: number[];
  /** Total products (FLOPs / 2). */
  products: number;
}

/** Entries of a Matrix Market coordinate file, symmetric halves mirrored, duplicates summed. */
export function readMatrixMarketRef(text: string): { rows: number; cols: number; entries: Map<number, number> } {
  const lines = text.split(/\r?\n/);
  const head = lines[0].toLowerCase().split(/\s+/);
  const pattern = head[3] === 'pattern';
  const sym = head[4];
  let i = 1;
  while (lines[i].startsWith('%') || lines[i].trim() === '') i++;
  const [rows, cols] = lines[i].trim().split(/\s+/).map(Number);
  const entries = new Map<number, number>();
  const add = (r: number, c: number, v: number): void => {
    const key = r * cols + c;
    entries.set(key, (entries.get(key) ?? 0) + v);
  };
  for (i++; i < lines.length; i++) {
    const s = lines[i].trim();
    if (s === '' || s.startsWith('%')) continue;
    const t = s.split(/\s+/);
    const r = Number(t[0]) - 1;
    const c = Number(t[1]) - 1;
    const v = pattern ? 1 : Number(t[2]);
    add(r, c, v);
    if (sym !== 'general' && r !== c) add(c, r, sym === 'skew-symmetric' ? -v : v);
  }
  return { rows, cols, entries };
}

/** C = A·B by rows, float64, columns sorted. */
export function gustavson(a: RefCsr, b: RefCsr): RefProduct {
  if (a.cols !== b.rows) throw new Error('inner dimensions differ');
  const acc = new Float64Array(b.cols);
  const mag = new Float64Array(b.cols);
  const seen = new Uint8Array(b.cols);
  const out: RefProduct = { rows: a.rows, cols: b.cols, indptr: [0], indices: [], values: [], bound: [], products: 0 };
  for (let i = 0; i < a.rows; i++) {
    const touched: number[] = [];
    for (let p = a.indptr[i]; p < a.indptr[i + 1]; p++) {
      const k = a.indices[p];
      const x = a.values[p];
      for (let q = b.indptr[k]; q < b.indptr[k + 1]; q++) {
        const j = b.indices[q];
        if (!seen[j]) {
          seen[j] = 1;
          touched.push(j);
          acc[j] = 0;
          mag[j] = 0;
        }
        acc[j] += x * b.values[q];
        mag[j] += Math.abs(x) * Math.abs(b.values[q]);
        out.products++;
      }
    }
    touched.sort((x, y) => x - y);
    for (const j of touched) {
      out.indices.push(j);
      out.values.push(acc[j]);
      out.bound.push(mag[j]);
      seen[j] = 0;
    }
    out.indptr.push(out.indices.length);
  }
  return out;
}

/** Aᵀ by a plain scan. */
export function transposeRef(a: RefCsr): RefCsr {
  const rowsOf: { c: number; v: number }[][] = Array.from({ length: a.cols }, () => []);
  for (let i = 0; i < a.rows; i++) {
    for (let p = a.indptr[i]; p < a.indptr[i + 1]; p++) rowsOf[a.indices[p]].push({ c: i, v: a.values[p] });
  }
  const t: RefCsr = { rows: a.cols, cols: a.rows, indptr: [0], indices: [], values: [] };
  for (const r of rowsOf) {
    for (const e of r) {
      t.indices.push(e.c);
      t.values.push(e.v);
    }
    t.indptr.push(t.indices.length);
  }
  return t;
}

/** A random CSR matrix: each entry present with probability `density`, values in [-1, 1). */
export function randomCsr(rows: number, cols: number, density: number, rand: () => number): RefCsr {
  const m: RefCsr = { rows, cols, indptr: [0], indices: [], values: [] };
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      if (rand() < density) {
        m.indices.push(j);
        m.values.push(2 * rand() - 1);
      }
    }
    m.indptr.push(m.indices.length);
  }
  return m;
}
