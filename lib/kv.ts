/**
 * Low-bit KV-cache quantization. Format 'kivi' (KIVI, ICML'24): asymmetric min-max quantization
 * with round-to-nearest-even, keys per channel over groups of G tokens, values per token over
 * groups of G channels, 2, 4 or 8 bits, codes packed LSB-first (32 / bits codes per uint32 word).
 * Each group's scale and min are stored in the cache dtype and the codes are computed against the
 * stored values, so the CPU and CUDA backends produce the same code bits. Layouts: docs/kv.md.
 */
import type { Device, DeviceName } from './device.js';
import { describe, fail } from './errors.js';
import { tensor, zeros } from './creation.js';
import { native } from './native.js';
import { queued } from './stream.js';
import { Tensor, handleOf } from './tensor.js';
import type { AttentionState } from './attention.js';

export type KvFloatDType = 'float32' | 'float16' | 'bfloat16';
export type KvBits = 2 | 4 | 8;

export interface QuantizeOptions {
  bits: KvBits;
  /** 'channel': groups of G consecutive tokens of one channel (keys); 'token': G consecutive channels of one token (values). */
  axis: 'channel' | 'token';
  /** G: a multiple of 32 / bits, at most 256, dividing T ('channel') or D ('token'). */
  groupSize: number;
}

/**
 * A quantized tensor x [..., T, D]. 'channel': codes uint32 [..., T/G, D, G*bits/32] (the G
 * tokens of a channel packed along tokens), scale/min [..., T/G, D]. 'token': codes uint32
 * [..., T, D*bits/32] (channels packed along the row), scale/min [..., T, D/G].
 */
export interface QuantizedTensor<D extends KvFloatDType = KvFloatDType> {
  codes: Tensor<'uint32'>;
  scale: Tensor<D>;
  min: Tensor<D>;
  bits: KvBits;
  axis: 'channel' | 'token';
  groupSize: number;
  /** The shape of the original tensor. */
  shape: readonly number[];
  dtype: D;
}

function optionsObject(op: string, o: unknown, what: string): Record<string, unknown> {
  if (o === null || typeof o !== 'object') fail('ERR_INVALID_ARG_TYPE', `${op}: options must be an object with ${what}, got ${describe(o)}`);
  return o as Record<string, unknown>;
}

function axisFlag(op: string, axis: unknown): boolean {
  if (axis !== 'channel' && axis !== 'token') fail('ERR_INVALID_ARG_VALUE', `${op}: axis must be 'channel' or 'token', got ${describe(axis)}`);
  return axis === 'channel';
}

/** Quantizes x [..., T, D] (float32, float16 or bfloat16); scale and min keep x's dtype. */
function quantize<D extends KvFloatDType>(x: Tensor<D>, options: QuantizeOptions): QuantizedTensor<D> {
  const op = 'kv.quantize';
  const o = optionsObject(op, options, 'bits, axis and groupSize');
  const perChannel = axisFlag(op, o.axis);
  const [codes, scale, min] = queued(quantize, () => native().kvQuantize(op, handleOf(x), o.bits as number, perChannel, o.groupSize as number));
  return {
    codes: Tensor._wrap<'uint32'>(codes), scale: Tensor._wrap<D>(scale), min: Tensor._wrap<D>(min),
    bits: o.bits as KvBits, axis: o.axis as 'channel' | 'token', groupSize: o.groupSize as number, shape: x.shape, dtype: x.dtype,
  };
}

/** code * scale + min, in the dtype of scale, shape [..., T, D]. */
function dequantize<D extends KvFloatDType>(qt: QuantizedTensor<D>): Tensor<D> {
  const op = 'kv.dequantize';
  const o = optionsObject(op, qt, 'codes, scale, min, bits, axis and groupSize');
  const perChannel = axisFlag(op, o.axis);
  return Tensor._wrap<D>(queued(dequantize, () => native().kvDequantize(op, handleOf(o.codes), handleOf(o.scale), handleOf(o.min),
    o.bits as number, perChannel, o.groupSize as number)));
}

export interface KiviCacheOptions {
  format: 'kivi';
  keyBits: KvBits;
  valueBits: KvBits;
  /** G: tokens per key group (= one page) and channels per value group. A multiple of 32 / bits, <= 256, dividing headDim. */
  groupSize: number;
  /** R: tokens kept in full precision. The tail holds R ... R + G - 1 tokens once a sequence has R + G. */
  residual: number;
  batch: number;
  kvHeads: number;
  /** D <= 256. */
  headDim: number;
  /** Capacity per sequence, in tokens. */
  maxTokens: number;
  /** dtype of k, v, q, the output, the tail and the scales/mins. Default 'float16'. */
  dtype?: KvFloatDType;
  /** Default 'cpu'. */
  device?: Device;
}

export interface KvAttendOptions {
  /** Default 1 / sqrt(headDim). */
  scale?: number;
  /** Also return the float32 LSE [B, Hq] (natural log; -Infinity for an empty sequence). */
  returnLse?: boolean;
  /** KV splits over the pages; 0 or absent: chosen from the problem size. */
  splits?: number;
}

/** The cache's storage (layouts in docs/kv.md); views for inspection, owned by the cache. */
export interface KiviCacheState<D extends KvFloatDType = KvFloatDType> {
  kCodes: Tensor<'uint32'>;
  kScale: Tensor<D>;
  kMin: Tensor<D>;
  vCodes: Tensor<'uint32'>;
  vScale: Tensor<D>;
  vMin: Tensor<D>;
  kTail: Tensor<D>;
  vTail: Tensor<D>;
  /** int32 [B], in stream order. */
  lengths: Tensor<'int32'>;
}

const BITS_OF: Record<KvFloatDType, number> = { float32: 32, float16: 16, bfloat16: 16 };

function integerOption(op: string, o: Record<string, unknown>, name: string, lo: number, hi: number): number {
  const v = o[name];
  if (typeof v !== 'number' || !Number.isInteger(v)) fail('ERR_INVALID_ARG_TYPE', `${op}: ${name} must be an integer, got ${describe(v)}`);
  if (v < lo || v > hi) fail('ERR_INVALID_ARG_VALUE', `${op}: ${name} must be in [${lo}, ${hi}], got ${v}`);
  return v;
}

function bitsOption(op: string, o: Record<string, unknown>, name: string): KvBits {
  const v = o[name];
  if (v !== 2 && v !== 4 && v !== 8) fail('ERR_INVALID_ARG_VALUE', `${op}: ${name} must be 2, 4 or 8, got ${describe(v)}`);
  return v;
}

/**
 * A KIVI KV cache for B sequences of one layer: per sequence, full pages of G quantized tokens
 * (keys per channel, values per token) and a full-precision tail of the newest tokens. Every token
 * is quantized exactly once, when its page fills; groups never span sequences; streaming appends
 * and a one-shot prefill give the same codes. Each failed call leaves the cache unchanged.
 */
export class KiviCache<D extends KvFloatDType = KvFloatDType> {
  readonly format = 'kivi' as const;
  readonly keyBits: KvBits;
  readonly valueBits: KvBits;
  readonly groupSize: number;
  readonly residual: number;
  readonly batch: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly maxTokens: number;
  readonly dtype: D;
  readonly device: DeviceName;
  /** Pages per sequence. */
  readonly pages: number;
  #state: Tensor[] | null;
  #lens: Tensor<'int32'>;
  #hostLens: number[];

  /** @internal Use kv.createCache. */
  constructor(o: Required<KiviCacheOptions> & { dtype: D }) {
    this.keyBits = o.keyBits;
    this.valueBits = o.valueBits;
    this.groupSize = o.groupSize;
    this.residual = o.residual;
    this.batch = o.batch;
    this.kvHeads = o.kvHeads;
    this.headDim = o.headDim;
    this.maxTokens = o.maxTokens;
    this.dtype = o.dtype;
    const G = o.groupSize, Dh = o.headDim, B = o.batch, H = o.kvHeads;
    this.pages = o.maxTokens >= o.residual + G ? Math.floor((o.maxTokens - o.residual) / G) : 0;
    const P = this.pages, opts = { dtype: o.dtype, device: o.device };
    const u32 = { dtype: 'uint32' as const, device: o.device };
    const made: Tensor[] = [];
    try {
      made.push(zeros([B, H, P, Dh, (G * o.keyBits) / 32], u32), zeros([B, H, P, Dh], opts), zeros([B, H, P, Dh], opts));
      made.push(zeros([B, H, P, G, (Dh * o.valueBits) / 32], u32), zeros([B, H, P, G, Dh / G], opts), zeros([B, H, P, G, Dh / G], opts));
      made.push(zeros([B, H, o.residual + G, Dh], opts), zeros([B, H, o.residual + G, Dh], opts));
      this.#lens = zeros([B], { dtype: 'int32', device: o.device });
    } catch (e) {
      for (const t of made) t.dispose();
      throw e;
    }
    this.#state = made;
    this.device = made[0].device;
    this.#hostLens = new Array<number>(B).fill(0);
  }

  #alive(op: string): Tensor[] {
    if (this.#state === null) fail('ERR_SPARQ_DISPOSED', `${op}: the cache has been disposed`);
    return this.#state;
  }

  /** Tokens held by each sequence (the host's copy; no device read). */
  get lengths(): readonly number[] {
    return this.#hostLens.slice();
  }

  /** Quantized tokens of a sequence of L tokens (the rest are in the tail). */
  quantizedTokens(L: number): number {
    return L >= this.residual + this.groupSize ? Math.floor((L - this.residual) / this.groupSize) * this.groupSize : 0;
  }

  /** Bytes of device memory the cache holds (sized for maxTokens). */
  get bytes(): number {
    if (this.#state === null) return 0;
    return this.#state.reduce((a, t) => a + t.byteLength, 0) + this.#lens.byteLength;
  }

  /** Bytes per token of one sequence at full capacity: bytes / (batch * maxTokens). */
  get bytesPerToken(): number {
    return this.bytes / (this.batch * this.maxTokens);
  }

  /**
   * Average stored bits per K/V element of the tokens held now: codes, plus scale and min, plus
   * the full-precision tail (KIVI's "average bits", e.g. 3.05 for 2-bit, G = 32, R = 128, float16,
   * T = 32,768). 0 when the cache is empty.
   */
  get bitsPerElement(): number {
    const G = this.groupSize, meta = 2 * BITS_OF[this.dtype], full = BITS_OF[this.dtype];
    let bits = 0, elems = 0;
    for (const L of this.#hostLens) {
      const Q = this.quantizedTokens(L);
      bits += Q * (this.keyBits + meta / G) + Q * (this.valueBits + meta / G) + 2 * (L - Q) * full;
      elems += 2 * L;
    }
    return elems === 0 ? 0 : bits / elems;
  }

  /** The storage tensors (views owned by the cache: do not dispose or write them). */
  state(): KiviCacheState<D> {
    const s = this.#alive('KiviCache.state');
    return {
      kCodes: s[0] as Tensor<'uint32'>, kScale: s[1] as Tensor<D>, kMin: s[2] as Tensor<D>, vCodes: s[3] as Tensor<'uint32'>,
      vScale: s[4] as Tensor<D>, vMin: s[5] as Tensor<D>, kTail: s[6] as Tensor<D>, vTail: s[7] as Tensor<D>, lengths: this.#lens,
    };
  }

  #checkTokens(op: string, k: unknown, v: unknown): number {
    for (const [name, t] of [['k', k], ['v', v]] as const) {
      if (!(t instanceof Tensor)) fail('ERR_INVALID_ARG_TYPE', `${op}: ${name} must be a Tensor, got ${describe(t)}`);
    }
    const ks = (k as Tensor).shape;
    return ks.length === 4 ? ks[2] : 0; // the native call reports a wrong shape
  }

  #run(op: string, caller: Function, k: Tensor, v: Tensor, lens: Tensor<'int32'>, counts: Tensor<'int32'> | null): void {
    const s = this.#alive(op);
    queued(caller, () => native().kvAppend(op, s.map(handleOf), this.keyBits, this.valueBits, this.groupSize, this.residual,
      handleOf(lens), handleOf(k), handleOf(v), counts === null ? null : handleOf(counts)));
  }

  /**
   * Appends n new tokens to every sequence: k, v [B, Hk, n, D] in the cache dtype (checked). Completed pages
   * are quantized in the same op. Fails (and changes nothing) if a sequence would exceed maxTokens.
   */
  append(k: Tensor, v: Tensor): void {
    const op = 'KiviCache.append';
    this.#alive(op);
    const n = this.#checkTokens(op, k, v);
    this.#hostLens.forEach((L, b) => {
      if (L + n > this.maxTokens)
        fail('ERR_INVALID_ARG_VALUE', `${op}: sequence ${b} would hold ${L + n} tokens, more than maxTokens = ${this.maxTokens}`);
    });
    this.#run(op, this.append, k, v, this.#lens, null);
    this.#hostLens = this.#hostLens.map((L) => L + n);
  }

  /**
   * Replaces the contents with the first lengths[b] tokens of k, v [B, Hk, L, D] for sequence b
   * (default: all L). A number[] or Int32Array; an int32 Tensor is read back (a sync).
   */
  prefill(k: Tensor, v: Tensor, lengths?: readonly number[] | Int32Array | Tensor<'int32'>): void {
    const op = 'KiviCache.prefill';
    this.#alive(op);
    const n = this.#checkTokens(op, k, v);
    let counts: number[];
    if (lengths === undefined) counts = new Array<number>(this.batch).fill(n);
    else if (lengths instanceof Tensor) counts = Array.from(lengths.dataSync() as ArrayLike<number>);
    else if (Array.isArray(lengths) || lengths instanceof Int32Array) counts = Array.from(lengths as ArrayLike<number>);
    else return fail('ERR_INVALID_ARG_TYPE', `${op}: lengths must be a number[], an Int32Array or an int32 Tensor, got ${describe(lengths)}`);
    if (counts.length !== this.batch)
      fail('ERR_SPARQ_SHAPE', `${op}: lengths must have ${this.batch} entries (batch), got ${counts.length}`);
    counts.forEach((c, b) => {
      if (!Number.isInteger(c) || c < 0 || c > n)
        fail('ERR_INVALID_ARG_VALUE', `${op}: lengths[${b}] must be an integer in [0, ${n}] (the tokens given), got ${describe(c)}`);
      if (c > this.maxTokens)
        fail('ERR_INVALID_ARG_VALUE', `${op}: sequence ${b} would hold ${c} tokens, more than maxTokens = ${this.maxTokens}`);
    });
    const fresh = zeros([this.batch], { dtype: 'int32', device: this.device });
    const cnt = tensor(Int32Array.from(counts), [this.batch], { device: this.device });
    try {
      this.#run(op, this.prefill, k, v, fresh, cnt);
    } catch (e) {
      fresh.dispose();
      throw e;
    } finally {
      cnt.dispose();
    }
    this.#lens.dispose();
    this.#lens = fresh;
    this.#hostLens = counts;
  }

  /**
   * Fused decode attention of q [B, Hq, D] (Hq a multiple of kvHeads) over each sequence's tokens:
   * -> out [B, Hq, D] in the cache dtype (and the LSE). An empty sequence gives 0 (LSE -Infinity).
   */
  attend(q: Tensor, options: KvAttendOptions & { returnLse: true }): AttentionState<Tensor<D>>;
  attend(q: Tensor, options?: KvAttendOptions): Tensor<D>;
  attend(q: Tensor, options: KvAttendOptions = {}): Tensor<D> | AttentionState<Tensor<D>> {
    const op = 'KiviCache.attend';
    const s = this.#alive(op);
    const o = optionsObject(op, options, 'scale, returnLse or splits');
    const [out, lse] = queued(this.attend, () => native().kvAttend(op, s.map(handleOf), this.keyBits, this.valueBits, this.groupSize,
      this.residual, handleOf(this.#lens), handleOf(q), o.scale as number | undefined, o.returnLse === true, (o.splits as number | undefined) ?? 0));
    const t = Tensor._wrap<D>(out);
    return lse ? { out: t, lse: Tensor._wrap<'float32'>(lse) } : t;
  }

  /** Releases the storage. Idempotent. */
  dispose(): void {
    if (this.#state === null) return;
    for (const t of this.#state) t.dispose();
    this.#lens.dispose();
    this.#state = null;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

export type KvCacheOptions = KiviCacheOptions;

/** A quantized KV cache; format 'kivi' (see KiviCache). */
function createCache<D extends KvFloatDType = 'float16'>(options: KiviCacheOptions & { dtype?: D }): KiviCache<D> {
  const op = 'kv.createCache';
  const o = optionsObject(op, options, 'format, keyBits, valueBits, groupSize, residual, batch, kvHeads, headDim and maxTokens');
  if (o.format !== 'kivi') fail('ERR_INVALID_ARG_VALUE', `${op}: format must be 'kivi', got ${describe(o.format)}`);
  const keyBits = bitsOption(op, o, 'keyBits');
  const valueBits = bitsOption(op, o, 'valueBits');
  const groupSize = integerOption(op, o, 'groupSize', 1, 256);
  const need = 32 / Math.min(keyBits, valueBits);
  if (groupSize % need !== 0) fail('ERR_INVALID_ARG_VALUE', `${op}: groupSize must be a multiple of ${need} (32 / bits), got ${groupSize}`);
  const residual = integerOption(op, o, 'residual', 0, 2 ** 30);
  const batch = integerOption(op, o, 'batch', 1, 2 ** 30);
  const kvHeads = integerOption(op, o, 'kvHeads', 1, 2 ** 30);
  const headDim = integerOption(op, o, 'headDim', 1, 256);
  if (headDim % groupSize !== 0) fail('ERR_SPARQ_SHAPE', `${op}: groupSize ${groupSize} must divide headDim ${headDim}`);
  const maxTokens = integerOption(op, o, 'maxTokens', 1, 2 ** 31 - 1 - residual - groupSize);
  const dtype = (o.dtype ?? 'float16') as D;
  if (dtype !== 'float32' && dtype !== 'float16' && dtype !== 'bfloat16')
    fail('ERR_SPARQ_DTYPE', `${op}: dtype must be float32, float16 or bfloat16, got ${describe(dtype)}`);
  const device = (o.device ?? 'cpu') as Device;
  return new KiviCache<D>({ format: 'kivi', keyBits, valueBits, groupSize, residual, batch, kvHeads, headDim, maxTokens, dtype, device });
}

export const kv = { quantize, dequantize, createCache };
