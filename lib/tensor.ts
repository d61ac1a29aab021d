/**
 * Tensor: a typed, shaped view of memory on one device. Contiguous row-major storage;
 * `reshape` and leading-dimension `slice` are views that share it.
 *
 * Lifetime: `dispose()` (or `using`) releases this tensor's reference at once; queued work keeps
 * its own, so disposing while an op is still queued is safe. Forgotten tensors are released by a
 * FinalizationRegistry when garbage-collected, and host memory is reported to V8 so that GC sees it.
 */
import type { NativeTensor } from '../types/native.js';
import { countTensor, type Device, type DeviceName } from './device.js';
import { type DType, type TypedArrayFor, BYTES_PER_ELEMENT, halfToFloat32, viewBytes } from './dtype.js';
import { SparqError } from './errors.js';
import { native } from './native.js';
import { queued, settle, settleSync } from './stream.js';

const INTERNAL = Symbol('sparq.internal');

const registry = new FinalizationRegistry<NativeTensor>((h) => {
  h.release();
  countTensor(-1);
});

export class Tensor<D extends DType = DType> {
  #h: NativeTensor | null;
  /** Dimensions, outermost first. */
  readonly shape: readonly number[];
  readonly dtype: D;
  /** 'cpu' or 'cuda:N'. */
  readonly device: DeviceName;

  /** @internal Tensors come from sparq's functions (tensor, zeros, ops), never from `new`. */
  constructor(token: typeof INTERNAL, handle: NativeTensor) {
    if (token !== INTERNAL) throw new SparqError('ERR_INVALID_ARG_VALUE', 'Tensor: create tensors with sparq.tensor(), sparq.zeros() and the like, not with new');
    this.#h = handle;
    this.shape = Object.freeze(handle.shape);
    this.dtype = handle.dtype as D;
    this.device = handle.device as DeviceName;
    registry.register(this, handle, this);
    countTensor(1);
  }

  /** @internal Wraps a native handle. */
  static _wrap<T extends DType>(handle: NativeTensor): Tensor<T> {
    return new Tensor<T>(INTERNAL, handle);
  }

  /** @internal The native handle for an op argument; a disposed tensor passes its dead handle (the op reports it). */
  get _handle(): NativeTensor | null {
    return this.#h;
  }

  /** Number of elements. */
  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }
  get rank(): number {
    return this.shape.length;
  }
  get byteLength(): number {
    return this.size * BYTES_PER_ELEMENT[this.dtype];
  }
  get isDisposed(): boolean {
    return this.#h === null;
  }

  #alive(op: string): NativeTensor {
    if (this.#h === null) throw new SparqError('ERR_SPARQ_DISPOSED', `${op}: the tensor has been disposed`);
    return this.#h;
  }

  /**
   * The values, once every op queued before this call has run. float16/bfloat16 come as raw bits
   * in a Uint16Array (see toFloat32), int64 as a BigInt64Array. Never blocks the event loop.
   */
  async data(): Promise<TypedArrayFor<D>> {
    const bytes = await settle(native().read('Tensor.data', this.#alive('Tensor.data')));
    return viewBytes(this.dtype, bytes);
  }

  /** Like data(), but blocks the calling thread until the values are ready. */
  dataSync(): TypedArrayFor<D> {
    const h = this.#alive('Tensor.dataSync');
    return viewBytes(this.dtype, settleSync(() => native().readSync('Tensor.dataSync', h)));
  }

  /** The values as float32 (16-bit floats widened exactly, integers rounded to nearest). */
  async toFloat32(): Promise<Float32Array> {
    const d = (await this.data()) as ArrayBufferView;
    if (this.dtype === 'float32') return d as Float32Array;
    if (this.dtype === 'float16' || this.dtype === 'bfloat16') return halfToFloat32(d as Uint16Array, this.dtype);
    if (this.dtype === 'int64') return Float32Array.from(d as BigInt64Array, (v) => Number(v));
    if (this.dtype === 'float64') return Float32Array.from(d as Float64Array); // rounds to nearest even
    return Float32Array.from(d as Int32Array);
  }

  /** This tensor on `device`: the same storage if it is already there, else a copy. */
  to(device: Device): Tensor<D> {
    const h = this.#alive('Tensor.to');
    return Tensor._wrap<D>(queued(this.to, () => native().to('Tensor.to', h, device)));
  }

  /** This tensor converted to `dtype`: the same storage if it already has it. */
  cast<T extends DType>(dtype: T): Tensor<T> {
    const h = this.#alive('Tensor.cast');
    return Tensor._wrap<T>(queued(this.cast, () => native().cast('Tensor.cast', h, dtype)));
  }

  /** A copy on the same device. */
  clone(): Tensor<D> {
    const h = this.#alive('Tensor.clone');
    return Tensor._wrap<D>(queued(this.clone, () => native().clone('Tensor.clone', h)));
  }

  /** A view with another shape and the same elements; one dimension may be -1. */
  reshape(shape: readonly number[]): Tensor<D> {
    return Tensor._wrap<D>(this.#alive('Tensor.reshape').reshape('Tensor.reshape', shape));
  }

  /**
   * Rows [start, end) of the leading dimension, as a view. Like Array.prototype.slice: negative
   * indices count from the end and out-of-range ones are clamped.
   */
  slice(start?: number, end?: number): Tensor<D> {
    return Tensor._wrap<D>(this.#alive('Tensor.slice').slice('Tensor.slice', start, end));
  }

  /** Releases this tensor's reference now. Idempotent. */
  dispose(): void {
    const h = this.#h;
    if (h === null) return;
    this.#h = null;
    registry.unregister(this);
    h.release();
    countTensor(-1);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  toString(): string {
    return `Tensor(${this.dtype}, [${this.shape.join(', ')}], ${this.device}${this.isDisposed ? ', disposed' : ''})`;
  }
}

/** The native handle of an op argument, or the value itself so the addon can say what it got. */
export function handleOf(v: unknown): unknown {
  return v instanceof Tensor ? (v._handle ?? deadHandle()) : v;
}

let dead: NativeTensor | undefined;
function deadHandle(): NativeTensor {
  dead ??= new (native().NativeTensor)();
  return dead;
}
