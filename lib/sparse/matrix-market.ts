/**
 * Matrix Market `coordinate` text <-> COO triplets. Parsing follows the NIST format: a header
 * `%%MatrixMarket matrix coordinate <real|integer|pattern> <general|symmetric|skew-symmetric>`,
 * `%` comment lines, a size line `rows cols entries`, then one 1-based `i j [value]` per line.
 * Symmetric files store one triangle: the mirror entries are added here (negated for
 * skew-symmetric); pattern entries get the value 1. Errors name the line.
 */
import { fail } from '../errors.js';

export interface Coo {
  rows: number;
  cols: number;
  /** 0-based row and column of each entry (mirrors included), in file order. */
  r: Int32Array;
  c: Int32Array;
  v: Float64Array;
}

const OP = 'sparse.fromMatrixMarket';

function bad(line: number, what: string): never {
  return fail('ERR_INVALID_ARG_VALUE', `${OP}: line ${line}: ${what}`);
}

function parseIndex(tok: string | undefined, line: number, name: string, max: number): number {
  if (tok === undefined) bad(line, `missing the ${name} index`);
  const n = Number(tok);
  if (!/^[0-9]+$/.test(tok) || n < 1 || n > max) bad(line, `${name} index must be an integer in [1, ${max}], got '${tok}'`);
  return n - 1;
}

export function parseMatrixMarket(text: string): Coo {
  const lines = text.split('\n');
  const header = (lines[0] ?? '').trim().split(/\s+/).map((t) => t.toLowerCase());
  if (header[0] !== '%%matrixmarket') bad(1, `expected a '%%MatrixMarket' header, got '${(lines[0] ?? '').trim().slice(0, 60)}'`);
  if (header[1] !== 'matrix') bad(1, `only 'matrix' objects are supported, got '${header[1] ?? ''}'`);
  if (header[2] !== 'coordinate') bad(1, `only the 'coordinate' format is supported, got '${header[2] ?? ''}'`);
  const field = header[3];
  if (field !== 'real' && field !== 'integer' && field !== 'pattern') {
    bad(1, `the field must be real, integer or pattern, got '${field ?? ''}'`);
  }
  const symmetry = header[4];
  if (symmetry !== 'general' && symmetry !== 'symmetric' && symmetry !== 'skew-symmetric') {
    bad(1, `the symmetry must be general, symmetric or skew-symmetric, got '${symmetry ?? ''}'`);
  }
  let li = 1;
  while (li < lines.length && (lines[li].trim() === '' || lines[li].trimStart().startsWith('%'))) li++;
  if (li >= lines.length) bad(li, 'missing the size line (rows cols entries)');
  const size = lines[li].trim().split(/\s+/);
  const sizeNums = size.map(Number);
  if (size.length !== 3 || !sizeNums.every((n, i) => /^[0-9]+$/.test(size[i]) && Number.isSafeInteger(n))) {
    bad(li + 1, `the size line must be three non-negative integers 'rows cols entries', got '${lines[li].trim()}'`);
  }
  const [rows, cols, entries] = sizeNums;
  if (rows > 2147483647 || cols > 2147483647) bad(li + 1, `rows and cols must be at most 2147483647, got ${rows} x ${cols}`);
  const mirror = symmetry !== 'general';
  const cap = mirror ? 2 * entries : entries;
  const r = new Int32Array(cap);
  const c = new Int32Array(cap);
  const v = new Float64Array(cap);
  const wantTokens = field === 'pattern' ? 2 : 3;
  let n = 0;
  let seen = 0;
  for (li = li + 1; li < lines.length; li++) {
    const raw = lines[li];
    const s = raw.trim();
    if (s === '' || s.startsWith('%')) continue;
    const line = li + 1;
    if (seen === entries) bad(line, `more entries than the ${entries} the size line declares`);
    const tok = s.split(/\s+/);
    if (tok.length < wantTokens) bad(line, `expected ${wantTokens} fields (${field === 'pattern' ? 'i j' : 'i j value'}), got '${s}'`);
    if (tok.length > wantTokens) bad(line, `expected ${wantTokens} fields, got ${tok.length}: '${s}'`);
    const i = parseIndex(tok[0], line, 'row', rows);
    const j = parseIndex(tok[1], line, 'column', cols);
    let x = 1;
    if (field !== 'pattern') {
      x = Number(tok[2]);
      if (tok[2] === '' || Number.isNaN(x) && !/^[+-]?nan$/i.test(tok[2])) bad(line, `the value must be a number, got '${tok[2]}'`);
      if (field === 'integer' && !Number.isInteger(x)) bad(line, `an integer matrix needs integer values, got '${tok[2]}'`);
    }
    if (mirror && i < j) bad(line, `a ${symmetry} file stores the lower triangle only, got row ${i + 1} < column ${j + 1}`);
    if (symmetry === 'skew-symmetric' && i === j) bad(line, `a skew-symmetric matrix has no diagonal entries, got (${i + 1}, ${j + 1})`);
    r[n] = i;
    c[n] = j;
    v[n++] = x;
    if (mirror && i !== j) {
      r[n] = j;
      c[n] = i;
      v[n++] = symmetry === 'skew-symmetric' ? -x : x;
    }
    seen++;
  }
  if (seen !== entries) bad(lines.length, `the size line declares ${entries} entries but the file has ${seen}`);
  return { rows, cols, r: r.subarray(0, n), c: c.subarray(0, n), v: v.subarray(0, n) };
}

/**
 * COO triplets to CSR arrays: rows in order, columns sorted within each row, duplicates summed
 * (in file order, so the sum is the same every time).
 */
export function cooToCsr(coo: Coo): { indptr: Float64Array; indices: Int32Array; values: Float64Array } {
  const { rows, r, c, v } = coo;
  const count = new Float64Array(rows + 1);
  for (let k = 0; k < r.length; k++) count[r[k] + 1]++;
  for (let i = 0; i < rows; i++) count[i + 1] += count[i];
  const next = count.slice(0, rows);
  const pc = new Int32Array(r.length);
  const pv = new Float64Array(r.length);
  for (let k = 0; k < r.length; k++) {
    const o = next[r[k]]++;
    pc[o] = c[k];
    pv[o] = v[k];
  }
  // Sort each row by column (stable: duplicates keep file order), then merge duplicates.
  const indptr = new Float64Array(rows + 1);
  const indices = new Int32Array(r.length);
  const values = new Float64Array(r.length);
  let out = 0;
  let order: number[] = [];
  for (let i = 0; i < rows; i++) {
    const lo = count[i];
    const hi = count[i + 1];
    let sorted = true;
    for (let k = lo + 1; k < hi; k++) if (pc[k] <= pc[k - 1]) { sorted = false; break; }
    if (sorted) {
      for (let k = lo; k < hi; k++) {
        indices[out] = pc[k];
        values[out++] = pv[k];
      }
    } else {
      order = [];
      for (let k = lo; k < hi; k++) order.push(k);
      order.sort((x, y) => pc[x] - pc[y] || x - y);
      let last = -1;
      for (const k of order) {
        if (pc[k] === last) {
          values[out - 1] += pv[k];
        } else {
          indices[out] = pc[k];
          values[out++] = pv[k];
          last = pc[k];
        }
      }
    }
    indptr[i + 1] = out;
  }
  return { indptr, indices: indices.slice(0, out), values: values.slice(0, out) };
}

/** Matrix Market text of CSR arrays (`real general`, 1-based, row-major order). */
export function formatMatrixMarket(rows: number, cols: number, indptr: ArrayLike<number | bigint>, indices: Int32Array,
  values: Float32Array | Float64Array): string {
  const parts: string[] = ['%%MatrixMarket matrix coordinate real general', `${rows} ${cols} ${indices.length}`];
  for (let i = 0; i < rows; i++) {
    const lo = Number(indptr[i]);
    const hi = Number(indptr[i + 1]);
    for (let k = lo; k < hi; k++) parts.push(`${i + 1} ${indices[k] + 1} ${values[k]}`);
  }
  return parts.join('\n') + '\n';
}
