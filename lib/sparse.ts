/**
 * Sparse matrices in CSR form and SpGEMM (C = A·B, Gustavson row-wise products accumulated per row
 * in a hash table or a dense row; see docs/sparse.md). A CSR matrix holds three tensors: indptr
 * (int32 or int64, [rows + 1]), indices (int32 column indices, [nnz], sorted and unique within each
 * row) and values (float32 or float64, [nnz]).
 *
 * The size of a product is known only after its symbolic phase, so `matmul` is async. On the CPU
 * one queued task validates, multiplies and allocates C at its final size, and the promise settles
 * with C (one hop back to the event loop); a small product (up to about 2^18 products) on an idle
 * CPU stream is computed at once on the calling thread instead. On CUDA it waits for the row counts
 * of C (without blocking the event loop), then queues the numeric phase.
 * Malformed matrices (unsorted or out-of-range indices, a bad indptr) are found by the native
 * checks when the work runs: `matmul` rejects with the fault; for `sparse.csr` the next read reports it.
 */
import type { Device, DeviceName } from './device.js';
import { describe, fail } from './errors.js';
import { native } from './native.js';
import { cooToCsr, formatMatrixMarket, parseMatrixMarket } from './sparse/matrix-market.js';
import { queued, settle } from './stream.js';
import { Tensor, handleOf } from './tensor.js';
import { tensor } from './creation.js';

export type IndexDType = 'int32' | 'int64';
export type ValueDType = 'float32' | 'float64';

const INT32_MAX = 2147483647;

/** A sparse matrix in compressed sparse row form. Immutable; dispose() frees its tensors. */
export class Csr<V extends ValueDType = ValueDType> {
  /** @internal the structure passed a product's checks (the tensors are immutable): later products skip them */
  _valid = false;

  /** @internal use sparse.csr() */
  constructor(
    readonly rows: number,
    readonly cols: number,
    readonly indptr: Tensor<IndexDType>,
    readonly indices: Tensor<'int32'>,
    readonly values: Tensor<V>,
  ) {}

  /** Stored entries (explicit zeros included). */
  get nnz(): number {
    return this.indices.size;
  }
  get dtype(): V {
    return this.values.dtype;
  }
  get indexDType(): IndexDType {
    return this.indptr.dtype;
  }
  get device(): DeviceName {
    return this.values.device;
  }
  get shape(): [number, number] {
    return [this.rows, this.cols];
  }

  /** This matrix on `device` (the same tensors if it is already there). */
  to(device: Device): Csr<V> {
    return new Csr(this.rows, this.cols, this.indptr.to(device), this.indices.to(device), this.values.to(device));
  }

  /** Aᵀ, columns sorted (a counting sort; on CUDA the data goes through the host). */
  transpose(): Csr<V> {
    const home = this.device;
    const m = home === 'cpu' ? this : this.to('cpu');
    const [p, i, v] = queued(this.transpose, () => native().csrTranspose('sparse.transpose', nativeCsr(m, true)));
    const t = new Csr<V>(this.cols, this.rows, Tensor._wrap<IndexDType>(p), Tensor._wrap<'int32'>(i), Tensor._wrap<V>(v));
    if (home === 'cpu') return t;
    m.dispose(); // queued work keeps what it still needs
    const moved = t.to(home);
    t.dispose();
    return moved;
  }

  /** The dense [rows, cols] tensor (stored entries written in, the rest 0), on this matrix's device. */
  async toDense(): Promise<Tensor<V>> {
    const { indptr, indices, values } = await this.arrays();
    const dense = this.dtype === 'float32' ? new Float32Array(this.rows * this.cols) : new Float64Array(this.rows * this.cols);
    for (let r = 0; r < this.rows; r++) {
      for (let k = Number(indptr[r]); k < Number(indptr[r + 1]); k++) dense[r * this.cols + indices[k]] = values[k];
    }
    return tensor(dense, [this.rows, this.cols], { dtype: this.dtype, device: this.device }) as unknown as Tensor<V>;
  }

  /** Matrix Market text (`coordinate real general`, 1-based, full precision). */
  async toMatrixMarket(): Promise<string> {
    const { indptr, indices, values } = await this.arrays();
    return formatMatrixMarket(this.rows, this.cols, indptr, indices, values);
  }

  /** The three arrays, once every op queued before has run. */
  async arrays(): Promise<{ indptr: Int32Array | BigInt64Array; indices: Int32Array; values: Float32Array | Float64Array }> {
    const [indptr, indices, values] = await Promise.all([this.indptr.data(), this.indices.data(), this.values.data()]);
    return { indptr, indices, values: values as Float32Array | Float64Array };
  }

  dispose(): void {
    this.indptr.dispose();
    this.indices.dispose();
    this.values.dispose();
  }

  toString(): string {
    return `Csr(${this.rows} x ${this.cols}, nnz ${this.nnz}, ${this.dtype}, ${this.device})`;
  }
}

/** The object the addon reads a CSR argument from. */
function nativeCsr(m: Csr, values: boolean): { rows: number; cols: number; indptr: unknown; indices: unknown; values?: unknown } {
  return { rows: m.rows, cols: m.cols, indptr: handleOf(m.indptr), indices: handleOf(m.indices), values: values ? handleOf(m.values) : undefined };
}

export interface CsrInit {
  rows: number;
  cols: number;
  /** int32 or int64 [rows + 1]: a Tensor, an Int32Array / BigInt64Array, or numbers (int32). */
  indptr: Tensor | Int32Array | BigInt64Array | readonly number[];
  /** int32 [nnz]: column indices, strictly increasing within each row. */
  indices: Tensor | Int32Array | readonly number[];
  /** float32 or float64 [nnz]: a Tensor, a Float32Array / Float64Array, or numbers (float64). */
  values: Tensor | Float32Array | Float64Array | readonly number[];
  /** Where typed-array or number inputs go (default 'cpu'); Tensors stay where they are. */
  device?: Device;
}

function checkDim(v: unknown, name: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > INT32_MAX) {
    fail('ERR_INVALID_ARG_VALUE', `sparse.csr: ${name} must be an integer in [0, ${INT32_MAX}], got ${describe(v)}`);
  }
  return v;
}

function asTensor(v: unknown, name: string, dtypes: readonly string[], fallback: string, device: Device): Tensor {
  if (v instanceof Tensor) {
    if (!dtypes.includes(v.dtype)) fail('ERR_SPARQ_DTYPE', `sparse.csr: ${name} must be ${dtypes.join(' or ')}, got ${v.dtype}`);
    return v;
  }
  if (Array.isArray(v)) return tensor(v as number[], { dtype: fallback as never, device });
  const typed: Record<string, string> = { Int32Array: 'int32', BigInt64Array: 'int64', Float32Array: 'float32', Float64Array: 'float64' };
  const ctor = (v as object | null)?.constructor?.name ?? '';
  const dt = ArrayBuffer.isView(v) ? typed[ctor] : undefined;
  if (dt === undefined || !dtypes.includes(dt)) {
    fail('ERR_INVALID_ARG_TYPE', `sparse.csr: ${name} must be a Tensor or typed array of ${dtypes.join(' or ')}, got ${describe(v)}`);
  }
  return tensor(v as never, { dtype: dt as never, device });
}

/**
 * A CSR matrix from its arrays. Shapes and dtypes are checked now; the structure (indptr from 0,
 * non-decreasing, ending at nnz; column indices in range and strictly increasing per row) by a
 * queued native check whose fault the next read reports.
 */
function csr<V extends ValueDType = ValueDType>(init: CsrInit): Csr<V> {
  if (typeof init !== 'object' || init === null) fail('ERR_INVALID_ARG_TYPE', `sparse.csr: expected { rows, cols, indptr, indices, values }, got ${describe(init)}`);
  const rows = checkDim(init.rows, 'rows');
  const cols = checkDim(init.cols, 'cols');
  const device = init.device ?? 'cpu';
  const indptr = asTensor(init.indptr, 'indptr', ['int32', 'int64'], 'int32', device) as Tensor<IndexDType>;
  const indices = asTensor(init.indices, 'indices', ['int32'], 'int32', device) as Tensor<'int32'>;
  const values = asTensor(init.values, 'values', ['float32', 'float64'], 'float64', device) as Tensor<V>;
  if (indptr.shape.length !== 1 || indptr.shape[0] !== rows + 1) {
    fail('ERR_SPARQ_SHAPE', `sparse.csr: indptr must have shape [rows + 1] = [${rows + 1}], got [${indptr.shape.join(', ')}]`);
  }
  if (indices.shape.length !== 1 || values.shape.length !== 1 || indices.shape[0] !== values.shape[0]) {
    fail('ERR_SPARQ_SHAPE', `sparse.csr: indices and values must be 1-D of one length, got [${indices.shape.join(', ')}] and [${values.shape.join(', ')}]`);
  }
  const m = new Csr<V>(rows, cols, indptr, indices, values);
  queued(csr, () => native().csrValidate('sparse.csr', nativeCsr(m, false)));
  return m;
}

export interface FromMatrixMarketOptions<V extends ValueDType = 'float64'> {
  /** Default 'float64'. */
  dtype?: V;
  /** Default 'int32'. */
  indexDType?: IndexDType;
  /** Default 'cpu'. */
  device?: Device;
}

/**
 * Parses Matrix Market `coordinate` text (real, integer or pattern; general, symmetric or
 * skew-symmetric). Symmetric storage is expanded, pattern entries are 1, duplicates are summed,
 * stored zeros are kept. Errors (ERR_INVALID_ARG_VALUE) name the line.
 */
function fromMatrixMarket<V extends ValueDType = 'float64'>(text: string | Uint8Array, options: FromMatrixMarketOptions<V> = {}): Csr<V> {
  let s: string;
  if (typeof text === 'string') s = text;
  else if (text instanceof Uint8Array) s = new TextDecoder().decode(text);
  else return fail('ERR_INVALID_ARG_TYPE', `sparse.fromMatrixMarket: text must be a string or a Buffer, got ${describe(text)}`);
  const coo = parseMatrixMarket(s);
  const { indptr, indices, values } = cooToCsr(coo);
  const indexDType = options.indexDType ?? 'int32';
  const dtype = (options.dtype ?? 'float64') as V;
  if (indexDType === 'int32' && indices.length > INT32_MAX) {
    fail('ERR_SPARQ_UNSUPPORTED', `sparse.fromMatrixMarket: ${indices.length} entries need int64 row pointers (indexDType: 'int64')`);
  }
  const device = options.device ?? 'cpu';
  const ptr = indexDType === 'int64' ? BigInt64Array.from(indptr, (x) => BigInt(x)) : Int32Array.from(indptr);
  return csr<V>({ rows: coo.rows, cols: coo.cols, indptr: ptr, indices, values: dtype === 'float32' ? Float32Array.from(values) : values, device });
}

/** The CSR form of a 2-D float32/float64 tensor; entries equal to 0 are not stored. */
async function fromDense<V extends ValueDType>(dense: Tensor<V>, options: { indexDType?: IndexDType } = {}): Promise<Csr<V>> {
  if (!(dense instanceof Tensor)) fail('ERR_INVALID_ARG_TYPE', `sparse.fromDense: dense must be a Tensor, got ${describe(dense)}`);
  if (dense.dtype !== 'float32' && dense.dtype !== 'float64') fail('ERR_SPARQ_DTYPE', `sparse.fromDense: dense must be float32 or float64, got ${dense.dtype}`);
  if (dense.shape.length !== 2) fail('ERR_SPARQ_SHAPE', `sparse.fromDense: dense must be 2-D, got [${dense.shape.join(', ')}]`);
  const [rows, cols] = dense.shape;
  const d = (await dense.data()) as Float32Array | Float64Array;
  let nnz = 0;
  for (let k = 0; k < d.length; k++) nnz += d[k] !== 0 ? 1 : 0;
  const indptr = new Float64Array(rows + 1);
  const indices = new Int32Array(nnz);
  const values = dense.dtype === 'float32' ? new Float32Array(nnz) : new Float64Array(nnz);
  let o = 0;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const x = d[r * cols + c];
      if (x !== 0) {
        indices[o] = c;
        values[o++] = x;
      }
    }
    indptr[r + 1] = o;
  }
  const ptr = options.indexDType === 'int64' ? BigInt64Array.from(indptr, (x) => BigInt(x)) : Int32Array.from(indptr);
  return csr<V>({ rows, cols, indptr: ptr, indices, values, device: dense.device });
}

export interface MatmulOptions {
  /**
   * Keep the structural pattern (default true): an entry of C whose products cancel to 0 stays
   * stored, as do products of stored zeros. false drops every entry whose value is exactly 0.
   */
  keepZeros?: boolean;
  /** Sort the column indices of each row of C (default true). */
  sortColumns?: boolean;
  /**
   * Bit-identical results run to run (default false). The CPU is always deterministic (one thread
   * per row, products in input order); CUDA then accumulates each row in input order.
   */
  deterministic?: boolean;
}

function flag(v: unknown, name: string, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') fail('ERR_INVALID_ARG_TYPE', `sparse.matmul: options.${name} must be a boolean, got ${describe(v)}`);
  return v;
}

/**
 * C = A·B. A and B on one device with one value dtype; C gets that dtype, int32 row pointers when
 * both A and B have them (an error if nnz(C) exceeds int32 then), else int64.
 */
async function matmul<V extends ValueDType>(a: Csr<V>, b: Csr<V>, options: MatmulOptions = {}): Promise<Csr<V>> {
  if (!(a instanceof Csr)) fail('ERR_INVALID_ARG_TYPE', `sparse.matmul: A must be a Csr matrix, got ${describe(a)}`);
  if (!(b instanceof Csr)) fail('ERR_INVALID_ARG_TYPE', `sparse.matmul: B must be a Csr matrix, got ${describe(b)}`);
  if (typeof options !== 'object' || options === null) fail('ERR_INVALID_ARG_TYPE', `sparse.matmul: options must be an object, got ${describe(options)}`);
  const keepZeros = flag(options.keepZeros, 'keepZeros', true);
  const sortColumns = flag(options.sortColumns, 'sortColumns', true);
  const deterministic = flag(options.deterministic, 'deterministic', false);
  const n = native();
  const na = nativeCsr(a, true);
  const nb = nativeCsr(b, true);
  const narrow = a.indexDType === 'int32' && b.indexDType === 'int32';
  let c: Csr<V>;
  if (a.device === 'cpu') {
    // Small products on an idle stream come back at once; the rest is one queued task and one hop
    // back (small products are dominated by fixed costs).
    const valid = (a._valid ? 1 : 0) | (b._valid ? 2 : 0);
    const out = queued(matmul, () => n.spgemmCpu('sparse.matmul', na, nb, sortColumns, narrow ? 'int32' : 'int64', valid));
    const [ptr, idx, val] = Array.isArray(out) ? out : await settle(out);
    a._valid = true;
    b._valid = true;
    c = new Csr<V>(a.rows, b.cols, Tensor._wrap<IndexDType>(ptr), Tensor._wrap<'int32'>(idx), Tensor._wrap<V>(val));
  } else {
    c = await matmulTwoPhase(a, b, na, nb, narrow, sortColumns, deterministic);
  }
  if (keepZeros) return c;
  try {
    return await dropZeros(c);
  } finally {
    c.dispose(); // queued work keeps what it still needs
  }
}

/** CUDA: symbolic phase, read of nnz(C), numeric phase into C's arrays. */
async function matmulTwoPhase<V extends ValueDType>(a: Csr<V>, b: Csr<V>, na: ReturnType<typeof nativeCsr>, nb: ReturnType<typeof nativeCsr>,
  narrow: boolean, sortColumns: boolean, deterministic: boolean): Promise<Csr<V>> {
  const n = native();
  const valid = (a._valid ? 1 : 0) | (b._valid ? 2 : 0);
  const [rp, product] = queued(matmul, () => n.spgemmSymbolic('sparse.matmul', na, nb, sortColumns, valid));
  const rowptr = Tensor._wrap<'int64'>(rp);
  let nnz: number;
  try {
    const last = rowptr.slice(a.rows, a.rows + 1);
    nnz = Number(((await last.data()) as BigInt64Array)[0]);
    last.dispose();
  } catch (e) {
    rowptr.dispose();
    throw e;
  }
  a._valid = true; // the read above reports a malformed operand
  b._valid = true;
  if (narrow && nnz > INT32_MAX) {
    rowptr.dispose();
    fail('ERR_SPARQ_UNSUPPORTED', `sparse.matmul: C has ${nnz} stored entries, more than int32 row pointers can address (${INT32_MAX}); give A int64 row pointers`);
  }
  let out: ReturnType<typeof n.spgemmNumeric>;
  try {
    out = queued(matmul, () => n.spgemmNumeric('sparse.matmul', na, nb, handleOf(rowptr), nnz, sortColumns, deterministic, product,
      narrow ? 'int32' : 'int64'));
  } catch (e) {
    rowptr.dispose(); // e.g. out of memory for C: leave nothing behind
    throw e;
  }
  const [ptr, idx, val] = out;
  const indptr = Tensor._wrap<IndexDType>(ptr);
  rowptr.dispose(); // the int32 copy, or a second handle on the same storage
  return new Csr<V>(a.rows, b.cols, indptr, Tensor._wrap<'int32'>(idx), Tensor._wrap<V>(val));
}

/** The matrix without its stored entries whose value is exactly 0 (a new matrix; `m` is kept). */
async function dropZeros<V extends ValueDType>(m: Csr<V>): Promise<Csr<V>> {
  if (!(m instanceof Csr)) fail('ERR_INVALID_ARG_TYPE', `sparse.dropZeros: m must be a Csr matrix, got ${describe(m)}`);
  const home = m.device;
  const src = home === 'cpu' ? m : m.to('cpu');
  const n = native();
  const wide = src.indexDType === 'int64' ? src.indptr : src.indptr.cast('int64');
  const m64 = { ...nativeCsr(src, true), indptr: handleOf(wide) };
  const rowptr = Tensor._wrap<'int64'>(queued(dropZeros, () => n.csrNonzeroRowptr('sparse.dropZeros', m64)));
  const last = rowptr.slice(m.rows, m.rows + 1);
  const nnz = Number(((await last.data()) as BigInt64Array)[0]);
  last.dispose();
  const [idx, val] = queued(dropZeros, () => n.csrCompact('sparse.dropZeros', m64, handleOf(rowptr), nnz));
  const indptr: Tensor<IndexDType> = src.indexDType === 'int32' ? rowptr.cast('int32') : rowptr;
  if (indptr !== rowptr) rowptr.dispose();
  if (wide !== src.indptr) wide.dispose();
  if (src !== m) src.dispose();
  const out = new Csr<V>(m.rows, m.cols, indptr, Tensor._wrap<'int32'>(idx), Tensor._wrap<V>(val));
  if (home === 'cpu') return out;
  const moved = out.to(home);
  out.dispose();
  return moved;
}

/** Sparse matrices (CSR) and sparse × sparse products. */
export const sparse = { csr, fromMatrixMarket, fromDense, matmul, dropZeros, Csr };
