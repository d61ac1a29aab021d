// Native functions of sparse matrices and SpGEMM (cuda/addon/sparse_bindings.cc).
// A CSR argument is { rows, cols, indptr, indices, values? } with native tensors as fields.
import type { NativeTensor } from './native.js';

export interface NativeCsrArg {
  rows: number;
  cols: number;
  indptr: unknown;
  indices: unknown;
  values?: unknown;
}

/** Opaque: a CPU product held between the symbolic and numeric calls. */
export interface NativeSpgemmProduct {
  readonly __brand: 'NativeSpgemmProduct';
}

export interface NativeSparse {
  /** Queues the structural checks of m; a fault fails the stream (reported by the next read). */
  csrValidate(op: string, m: NativeCsrArg): void;
  /**
   * Queues validation + symbolic phase: the int64 [A.rows + 1] row pointers of C, and on the CPU a
   * handle to C already computed (pass it to spgemmNumeric, which then only copies).
   */
  spgemmSymbolic(op: string, a: NativeCsrArg, b: NativeCsrArg, sortColumns: boolean, valid?: number): [NativeTensor, NativeSpgemmProduct | null];
  /**
   * Queues the numeric phase into new [nnz] tensors: [indptr, indices int32, values]; indptr is
   * rowptr itself ('int64') or its int32 copy made in the same task ('int32').
   */
  spgemmNumeric(op: string, a: NativeCsrArg, b: NativeCsrArg, rowptr: unknown, nnz: number, sortColumns: boolean,
    deterministic: boolean, product: NativeSpgemmProduct | null, indptrDType: 'int32' | 'int64'): [NativeTensor, NativeTensor, NativeTensor];
  /**
   * CPU: C = A·B in one queued task (validation, product, C's arrays at their final size), resolved
   * with [indptr (indptrDType), indices int32, values] of C; a small product on an idle CPU stream
   * returns them at once (and throws its faults). `valid` (bit 0: A, bit 1: B) skips the
   * structural checks of an operand an earlier product passed.
   */
  spgemmCpu(op: string, a: NativeCsrArg, b: NativeCsrArg, sortColumns: boolean, indptrDType: 'int32' | 'int64',
    valid?: number): [NativeTensor, NativeTensor, NativeTensor] | Promise<[NativeTensor, NativeTensor, NativeTensor]>;
  /** CPU: int64 [rows + 1] row pointers of m without its zero values. */
  csrNonzeroRowptr(op: string, m: NativeCsrArg): NativeTensor;
  /** CPU: [indices, values] of m's nonzero entries, laid out by rowptr (from csrNonzeroRowptr). */
  csrCompact(op: string, m: NativeCsrArg, rowptr: unknown, nnz: number): [NativeTensor, NativeTensor];
  /** CPU: [indptr, indices, values] of mᵀ. */
  csrTranspose(op: string, m: NativeCsrArg): [NativeTensor, NativeTensor, NativeTensor];
}
