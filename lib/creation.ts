/** Creating tensors: from JavaScript data, filled, or empty. */
import type { Device } from './device.js';
import type { DType } from './dtype.js';
import { describe, fail } from './errors.js';
import { native } from './native.js';
import { queued } from './stream.js';
import { Tensor } from './tensor.js';

export interface TensorOptions<D extends DType = DType> {
  /** Default: from the typed array (Float64Array and plain numbers give 'float32'). */
  dtype?: D;
  /** Default 'cpu'. */
  device?: Device;
}

export type TensorData =
  | Float32Array | Float64Array | Int8Array | Uint8Array | Uint8ClampedArray | Int32Array | Uint32Array
  | BigInt64Array | Uint16Array
  | NestedArray<number> | NestedArray<bigint>;
export type NestedArray<T> = T | NestedArray<T>[];

type InferDType<T> = T extends Float32Array | Float64Array ? 'float32'
  : T extends Int8Array ? 'int8'
  : T extends Uint8Array | Uint8ClampedArray ? 'uint8'
  : T extends Int32Array ? 'int32'
  : T extends Uint32Array ? 'uint32'
  : T extends BigInt64Array ? 'int64'
  : T extends NestedArray<bigint> ? 'int64'
  : 'float32';

function inferDType(data: unknown): DType | undefined {
  if (data instanceof Float32Array || data instanceof Float64Array) return 'float32';
  if (data instanceof Int8Array) return 'int8';
  if (data instanceof Uint8Array || data instanceof Uint8ClampedArray) return 'uint8';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof Uint32Array) return 'uint32';
  if (data instanceof BigInt64Array) return 'int64';
  return undefined; // Uint16Array needs an explicit float16/bfloat16; arrays are handled by flatten()
}

/** Flattens a (nested, rectangular) array of numbers or bigints into a typed array and its shape. */
function flatten(data: unknown[], op: string): { flat: Float64Array | BigInt64Array; shape: number[] } {
  const shape: number[] = [];
  let level: unknown = data;
  while (Array.isArray(level)) {
    shape.push(level.length);
    level = level[0];
  }
  const isBig = typeof level === 'bigint';
  const size = shape.reduce((a, b) => a * b, 1);
  const flat = isBig ? new BigInt64Array(size) : new Float64Array(size);
  let k = 0;
  const walk = (v: unknown, depth: number, where: string): void => {
    if (depth === shape.length) {
      if (isBig ? typeof v !== 'bigint' : typeof v !== 'number') {
        fail('ERR_INVALID_ARG_TYPE', `${op}: data${where} must be a ${isBig ? 'bigint' : 'number'}, got ${describe(v)}`);
      }
      flat[k++] = v as never;
      return;
    }
    if (!Array.isArray(v) || v.length !== shape[depth]) {
      fail('ERR_SPARQ_SHAPE', `${op}: data is not rectangular: data${where} must be an array of length ${shape[depth]}, got ${describe(v)}`);
    }
    for (let i = 0; i < v.length; i++) walk(v[i], depth + 1, `${where}[${i}]`);
  };
  walk(data, 0, '');
  return { flat, shape };
}

/**
 * A tensor from JavaScript data (copied). `shape` defaults to the nesting of an array, or
 * [length] for a typed array. A Uint16Array holds float16/bfloat16 bits and needs that dtype.
 * Numbers are converted with the cast rules (round to nearest even; saturating integers).
 */
export function tensor<T extends TensorData, D extends DType = InferDType<T>>(
  data: T, shape?: readonly number[] | TensorOptions<D>, options?: TensorOptions<D>,
): Tensor<D> {
  const op = 'sparq.tensor';
  if (shape !== undefined && !Array.isArray(shape)) {
    options = shape as TensorOptions<D>;
    shape = undefined;
  }
  let source: ArrayBufferView;
  let inferred: readonly number[];
  const g = globalThis as { Float16Array?: new (...a: never[]) => ArrayBufferView & { length: number } };
  if (Array.isArray(data) || typeof data === 'number' || typeof data === 'bigint') {
    const f = flatten(Array.isArray(data) ? data : [data], op);
    source = f.flat;
    inferred = Array.isArray(data) ? f.shape : [];
  } else if (g.Float16Array && data instanceof g.Float16Array) {
    const v = data as unknown as ArrayBufferView & { length: number };
    source = new Uint16Array(v.buffer, v.byteOffset, v.length);
    inferred = [v.length];
    options = { ...options, dtype: (options?.dtype ?? 'float16') as D };
  } else if (ArrayBuffer.isView(data) && !(data instanceof DataView)) {
    source = data;
    inferred = [(data as unknown as { length: number }).length];
  } else {
    fail('ERR_INVALID_ARG_TYPE', `${op}: data must be a typed array or a (nested) array of numbers, got ${describe(data)}`);
  }
  const dtype = options?.dtype ?? inferDType(source) ?? (source instanceof Uint16Array
    ? fail('ERR_SPARQ_DTYPE', `${op}: a Uint16Array holds float16 or bfloat16 bits; pass { dtype: 'float16' } or { dtype: 'bfloat16' }`)
    : 'float32');
  const h = native().fromArray(op, source, (shape as readonly number[] | undefined) ?? inferred, dtype, options?.device ?? 'cpu');
  return Tensor._wrap<D>(h);
}

/** An uninitialised tensor (its values are whatever the memory held). */
export function empty<D extends DType = 'float32'>(shape: readonly number[], options?: TensorOptions<D>): Tensor<D> {
  return Tensor._wrap<D>(native().empty('sparq.empty', shape, options?.dtype ?? 'float32', options?.device ?? 'cpu'));
}

/** A tensor filled with `value` (converted to the dtype with the cast rules; a bigint for int64). */
export function full<D extends DType = 'float32'>(shape: readonly number[], value: number | bigint, options?: TensorOptions<D>): Tensor<D> {
  return Tensor._wrap<D>(queued(full, () => native().full('sparq.full', shape, options?.dtype ?? 'float32', options?.device ?? 'cpu', value)));
}

export function zeros<D extends DType = 'float32'>(shape: readonly number[], options?: TensorOptions<D>): Tensor<D> {
  return Tensor._wrap<D>(queued(zeros, () => native().full('sparq.zeros', shape, options?.dtype ?? 'float32', options?.device ?? 'cpu', 0)));
}

export function ones<D extends DType = 'float32'>(shape: readonly number[], options?: TensorOptions<D>): Tensor<D> {
  return Tensor._wrap<D>(queued(ones, () => native().full('sparq.ones', shape, options?.dtype ?? 'float32', options?.device ?? 'cpu', 1)));
}
