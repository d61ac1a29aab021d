/**
 * Every error sparq throws or rejects with is a `SparqError` with a stable `code`. Messages name
 * the op, the argument, what was expected and what came.
 */
export type SparqErrorCode =
  | 'ERR_INVALID_ARG_TYPE'
  | 'ERR_INVALID_ARG_VALUE'
  | 'ERR_SPARQ_SHAPE'
  | 'ERR_SPARQ_DTYPE'
  | 'ERR_SPARQ_DEVICE'
  | 'ERR_SPARQ_UNSUPPORTED'
  | 'ERR_SPARQ_OOM'
  | 'ERR_SPARQ_CUDA'
  | 'ERR_SPARQ_DISPOSED'
  | 'ERR_SPARQ_LOAD'
  | 'ERR_SPARQ_INTERNAL';

export class SparqError extends Error {
  readonly code: SparqErrorCode;
  /** For failures inside queued work: the op that failed (e.g. 'cast'). */
  op?: string;
  /** For failures inside queued work: the stream position of the op that failed. */
  seq?: number;

  constructor(code: SparqErrorCode, message: string) {
    super(message);
    this.name = 'SparqError';
    this.code = code;
  }
}

/** Throws a SparqError; for the few checks that only exist in JavaScript (data conversion). */
export function fail(code: SparqErrorCode, message: string): never {
  throw new SparqError(code, message);
}

/** Short description of a value for error messages. */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  if (typeof v === 'string') return `the string '${v.length > 40 ? v.slice(0, 40) + '...' : v}'`;
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return `the ${typeof v} ${String(v)}`;
  if (typeof v === 'object') {
    const name = (v as object).constructor?.name;
    return name && name !== 'Object' ? `an instance of ${name}` : 'an object';
  }
  return String(v);
}
