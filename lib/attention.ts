/**
 * Dense attention, the baseline every sparq attention family is measured against, and RoPE.
 * Shapes: B batch, Hq query heads, Hk KV heads (Hq a multiple of Hk: MHA, GQA, MQA), T tokens,
 * D head dim. Inputs float32, float16 or bfloat16 (all of one dtype); float32 accumulation;
 * outputs in the input dtype; LSE float32 in natural-log units. Head dims: any D <= 256 on the CPU,
 * 64, 128 or 256 on CUDA (ERR_SPARQ_UNSUPPORTED otherwise).
 */
import { describe, fail } from './errors.js';
import { native } from './native.js';
import { queued } from './stream.js';
import { Tensor, handleOf } from './tensor.js';

export interface AttentionState<T extends Tensor = Tensor> {
  /** [..., D] */
  out: T;
  /** float32 [...]: log-sum-exp of the scaled scores of each row (natural log; -Infinity for a row that saw no key). */
  lse: Tensor<'float32'>;
}

export interface SdpaOptions {
  /**
   * Causal mask, aligned bottom-right: the Tq queries are the last Tq positions of their sequence,
   * so query i (of Tq) at position p = L - Tq + i sees keys j <= p (L = kvLengths[b] or Tk).
   */
  causal?: boolean;
  /**
   * Sliding window around each query's position p: keys j with p - left <= j <= p + right. A number
   * w means [w, w]; -1 leaves a side unbounded. With causal, [w, 0] and w are the same.
   */
  window?: number | [left: number, right: number];
  /** Default 1 / sqrt(D). */
  scale?: number;
  /** int32 [B]: keys [0, kvLengths[b]) of sequence b exist, the rest are padding. Values outside [0, Tk] fail the op when it runs. */
  kvLengths?: Tensor<'int32'>;
  /** Also return the float32 LSE [B, Hq, Tq]. */
  returnLse?: boolean;
}

export interface DecodeOptions {
  /** int32 [B]: the number of valid cache entries of each sequence (<= Tmax). */
  lengths: Tensor<'int32'>;
  /** Default 1 / sqrt(D). */
  scale?: number;
  /** Also return the float32 LSE [B, Hq]. */
  returnLse?: boolean;
  /** Number of KV splits (flash-decoding); 0 or absent: chosen from the problem size. */
  splits?: number;
}

function windowOf(w: SdpaOptions['window']): [number, number] {
  if (w === undefined) return [-1, -1];
  if (typeof w === 'number') return [w, w];
  if (Array.isArray(w) && w.length === 2) return [w[0], w[1]];
  return fail('ERR_INVALID_ARG_TYPE', `attention.sdpa: window must be a number or [left, right], got ${describe(w)}`);
}

function sdpa<T extends Tensor>(q: T, k: Tensor, v: Tensor, options: SdpaOptions & { returnLse: true }): AttentionState<T>;
function sdpa<T extends Tensor>(q: T, k: Tensor, v: Tensor, options?: SdpaOptions): T;
/**
 * Scaled dot-product attention: q [B, Hq, Tq, D], k and v [B, Hk, Tk, D] -> out [B, Hq, Tq, D].
 * A query row that sees no key (all masked, or kvLengths[b] = 0) gives 0 and LSE -Infinity.
 * NaN in an input propagates to the rows that see it.
 */
function sdpa(q: Tensor, k: Tensor, v: Tensor, options: SdpaOptions = {}): Tensor | AttentionState {
  const [left, right] = windowOf(options.window);
  const [out, lse] = queued(sdpa, () => native().sdpa('attention.sdpa', handleOf(q), handleOf(k), handleOf(v),
    options.kvLengths === undefined ? null : handleOf(options.kvLengths), options.causal ?? false, left, right, options.scale,
    options.returnLse ?? false));
  const o = Tensor._wrap(out);
  return lse ? { out: o, lse: Tensor._wrap<'float32'>(lse) } : o;
}

function decode<T extends Tensor>(q: T, kCache: Tensor, vCache: Tensor, options: DecodeOptions & { returnLse: true }): AttentionState<T>;
function decode<T extends Tensor>(q: T, kCache: Tensor, vCache: Tensor, options: DecodeOptions): T;
/**
 * One decode step over a KV cache: q [B, Hq, D], kCache and vCache [B, Hk, Tmax, D], lengths
 * int32 [B] -> out [B, Hq, D]; sequence b attends to its first lengths[b] cache entries. Equals
 * the last row of sdpa(..., { causal: true, kvLengths: lengths }).
 */
function decode(q: Tensor, kCache: Tensor, vCache: Tensor, options: DecodeOptions): Tensor | AttentionState {
  if (options === null || typeof options !== 'object') {
    fail('ERR_INVALID_ARG_TYPE', `attention.decode: options must be an object with lengths, got ${describe(options)}`);
  }
  const [out, lse] = queued(decode, () => native().decode('attention.decode', handleOf(q), handleOf(kCache), handleOf(vCache),
    handleOf(options.lengths), options.scale, options.returnLse ?? false, options.splits ?? 0));
  const o = Tensor._wrap(out);
  return lse ? { out: o, lse: Tensor._wrap<'float32'>(lse) } : o;
}

/**
 * Merges attention states computed over disjoint key sets (e.g. the splits of a long cache, or a
 * sparse and a dense part): out = sum_i w_i out_i / sum_i w_i with w_i = exp(lse_i - max lse), and
 * lse = log sum_i exp(lse_i). Associative; a part with LSE -Infinity weighs nothing.
 */
function mergeStates<T extends Tensor>(parts: readonly AttentionState<T>[]): AttentionState<T> {
  if (!Array.isArray(parts)) fail('ERR_INVALID_ARG_TYPE', `attention.mergeStates: parts must be an array of { out, lse }, got ${describe(parts)}`);
  const outs = parts.map((p) => handleOf(p?.out));
  const lses = parts.map((p) => handleOf(p?.lse));
  const [out, lse] = queued(mergeStates, () => native().mergeStates('attention.mergeStates', outs, lses));
  return { out: Tensor._wrap(out) as T, lse: Tensor._wrap<'float32'>(lse!) };
}

export const attention = { sdpa, decode, mergeStates };

export interface RopeOptions {
  /** 'half' (rotate-half, Llama/HF; default) pairs x[i] with x[i + r/2]; 'interleaved' (GPT-J) pairs x[2i] with x[2i+1]. */
  style?: 'half' | 'interleaved';
  /** Default 10000. */
  base?: number;
  /** int32 [T] or [B, T]: the position of each token. Default: offset + t. */
  positions?: Tensor<'int32'>;
  /** Position of the first token when positions is absent (a decode step's cache length). Default 0. */
  offset?: number;
  /** Rotate only the first rotaryDim dims (even); the rest are copied. Default D. */
  rotaryDim?: number;
}

/**
 * Rotary position embedding of x [B, H, T, D]: each pair (a, b) of the first rotaryDim dims
 * becomes (a cos θ - b sin θ, a sin θ + b cos θ) with θ = pos * base^(-2i / rotaryDim).
 */
export function rope<T extends Tensor>(x: T, options: RopeOptions = {}): T {
  const style = options.style ?? 'half';
  if (style !== 'half' && style !== 'interleaved') fail('ERR_INVALID_ARG_VALUE', `rope: style must be 'half' or 'interleaved', got ${describe(style)}`);
  return Tensor._wrap(queued(rope, () => native().rope('rope', handleOf(x), options.positions === undefined ? null : handleOf(options.positions),
    options.offset ?? 0, options.base ?? 10000, style === 'interleaved', options.rotaryDim))) as T;
}
