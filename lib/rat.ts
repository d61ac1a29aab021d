/**
 * RAT (Wei, Yadav, Pascanu, Gulcehre, arXiv 2507.04416): a sequence is cut into chunks of L tokens;
 * a gated linear recurrence runs inside each chunk, and every token attends with softmax over the
 * final states of all earlier chunks plus its own running state. Attention costs T·T/L instead of
 * T², and the decode cache holds T/L keys per sequence. Any T (the last chunk may be partial),
 * batch >= 1, float32/float16/bfloat16 inputs with float32 state and accumulation.
 *
 * Shapes ([B, heads, T, D], as attention.sdpa): H heads; queries and keys may come in fewer groups
 * Gq, Gk (H a multiple of each): head h reads group h % G (tiled, as the paper's `repeat`).
 * Gate (per token and channel, float32): g = sigmoid(gate + gateBias). Within a chunk, state reset
 * at its first token:  ṽ_t = g_t ṽ_{t-1} + (1 - g_t) v_t  and  k̃_t = g_t k̃_{t-1} + (1 - g_t) k_t.
 * InterRoPE: rotate-half RoPE at position c = ⌊t / L⌋ (the chunk index) on q and k̃.
 * Token t (chunk c) attends over the final k̃/ṽ of chunks 0..c-1 and its own k̃_t/ṽ_t (the self
 * term), scale 1/sqrt(D) by default. Special cases: L >= T gives y = ṽ; L = 1 gives causal
 * softmax attention over the gated keys and values with token RoPE.
 * Head dims: even and <= 256 on the CPU; 64, 128 or 256 for the CUDA attention and cache.
 */
import { type AttentionState } from './attention.js';
import { type Device } from './device.js';
import { describe, fail } from './errors.js';
import { zeros, tensor } from './creation.js';
import { native } from './native.js';
import { queued } from './stream.js';
import { Tensor, handleOf } from './tensor.js';
import type { NativeTensor } from '../types/native.js';

export interface RatScanOptions {
  /** Chunk length L >= 1. */
  chunkSize: number;
  /** float32 [H, D]: added to the gate logits before the sigmoid (the paper's b_g). */
  gateBias?: Tensor<'float32'>;
}

export interface RatScanResult<T extends Tensor = Tensor> {
  /** ṽ [B, H, T, D] */
  vTilde: T;
  /** k̃ [B, H, T, D], before RoPE */
  kTilde: T;
  /** [B, H, Nc, D], Nc = ⌈T / L⌉: ṽ at the last token of each chunk (of a partial last chunk: its last token). */
  vFinal: T;
  /** [B, H, Nc, D]: k̃ at the last token of each chunk, before RoPE. */
  kFinal: T;
}

export interface RatAttentionOptions {
  /** Chunk length L >= 1. */
  chunkSize: number;
  /** InterRoPE base; default 10000. `rope: false` turns RoPE off (NoPE). */
  ropeBase?: number;
  /** Default true. */
  rope?: boolean;
  /** Default 1 / sqrt(D). */
  scale?: number;
  /** Also return the float32 LSE [B, H, T] (natural log). */
  returnLse?: boolean;
}

export type RatForwardOptions = RatScanOptions & RatAttentionOptions;

function options<O>(op: string, o: O): O {
  if (o === null || typeof o !== 'object') fail('ERR_INVALID_ARG_TYPE', `${op}: options must be an object with chunkSize, got ${describe(o)}`);
  return o;
}

function ropeBaseOf(op: string, o: { ropeBase?: number; rope?: boolean }): number {
  if (o.rope !== undefined && typeof o.rope !== 'boolean') fail('ERR_INVALID_ARG_TYPE', `${op}: rope must be a boolean, got ${describe(o.rope)}`);
  if (o.rope === false) return 0;
  const base = o.ropeBase ?? 10000;
  if (typeof base !== 'number' || !(base > 0) || !Number.isFinite(base)) {
    fail('ERR_INVALID_ARG_VALUE', `${op}: ropeBase must be a finite number > 0, got ${describe(base)}`);
  }
  return base;
}

function release(handles: (NativeTensor | null)[]): void {
  for (const h of handles) h?.release();
}

/**
 * The intra-chunk recurrence: v [B, H, T, D], k [B, Gk, T, D] (head h uses group h % Gk), gate
 * logits [B, H, T, D] -> ṽ, k̃ [B, H, T, D] and the chunk-final states [B, H, ⌈T/L⌉, D], all in the
 * input dtype (float32 state, rounded once on store).
 */
function scan<T extends Tensor>(v: T, k: Tensor, gate: Tensor, opts: RatScanOptions): RatScanResult<T> {
  const o = options('rat.scan', opts);
  const [vt, kt, vf, kf] = queued(scan, () => native().ratScan('rat.scan', handleOf(v), handleOf(k), handleOf(gate),
    o.gateBias === undefined ? null : handleOf(o.gateBias), o.chunkSize));
  return { vTilde: Tensor._wrap(vt) as T, kTilde: Tensor._wrap(kt) as T, vFinal: Tensor._wrap(vf) as T, kFinal: Tensor._wrap(kf) as T };
}

function attention<T extends Tensor>(q: T, kTilde: Tensor, vTilde: Tensor, opts: RatAttentionOptions & { returnLse: true }): AttentionState<T>;
function attention<T extends Tensor>(q: T, kTilde: Tensor, vTilde: Tensor, opts: RatAttentionOptions): T;
/**
 * Inter-chunk attention: q [B, Gq, T, D] (head h uses group h % Gq), k̃ and ṽ [B, H, T, D] (from
 * scan) -> out [B, H, T, D] in q's dtype. Token t of chunk c attends over the final k̃/ṽ of chunks
 * j < c (rotated by j) and its own k̃_t/ṽ_t (rotated by c, like q); in chunk 0, out = ṽ_t.
 */
function attention(q: Tensor, kTilde: Tensor, vTilde: Tensor, opts: RatAttentionOptions): Tensor | AttentionState {
  const o = options('rat.attention', opts);
  const base = ropeBaseOf('rat.attention', o);
  const [out, lse] = queued(attention, () => native().ratAttention('rat.attention', handleOf(q), handleOf(kTilde), handleOf(vTilde),
    o.chunkSize, base, o.scale, o.returnLse ?? false));
  const t = Tensor._wrap(out);
  return lse ? { out: t, lse: Tensor._wrap<'float32'>(lse) } : t;
}

function forward<T extends Tensor>(q: T, k: Tensor, v: Tensor, gate: Tensor, opts: RatForwardOptions & { returnLse: true }): AttentionState<T>;
function forward<T extends Tensor>(q: T, k: Tensor, v: Tensor, gate: Tensor, opts: RatForwardOptions): T;
/**
 * Prefill: scan + attention in one call. q [B, Gq, T, D], k [B, Gk, T, D], v and gate [B, H, T, D]
 * -> out [B, H, T, D]. The intermediate ṽ, k̃ are released as soon as the attention has run.
 */
function forward(q: Tensor, k: Tensor, v: Tensor, gate: Tensor, opts: RatForwardOptions): Tensor | AttentionState {
  const o = options('rat.forward', opts);
  const base = ropeBaseOf('rat.forward', o);
  const n = native();
  return queued(forward, () => {
    const hs = n.ratScan('rat.forward', handleOf(v), handleOf(k), handleOf(gate), o.gateBias === undefined ? null : handleOf(o.gateBias), o.chunkSize);
    try {
      const [out, lse] = n.ratAttention('rat.forward', handleOf(q), hs[1], hs[0], o.chunkSize, base, o.scale, o.returnLse ?? false);
      const t = Tensor._wrap(out);
      return lse ? { out: t, lse: Tensor._wrap<'float32'>(lse) } : t;
    } finally {
      release(hs);
    }
  });
}

export interface RatCacheOptions {
  batch: number;
  /** H: value heads (the cache holds H keys per chunk). */
  heads: number;
  /** D: even, <= 256 (64, 128 or 256 on CUDA). */
  headDim: number;
  chunkSize: number;
  /** Tokens per sequence the cache can hold; chunk slots = ⌈maxTokens / chunkSize⌉. */
  maxTokens: number;
  device?: Device;
  ropeBase?: number;
  rope?: boolean;
  scale?: number;
  gateBias?: Tensor<'float32'>;
}

export interface RatPrefillOptions {
  /** Tokens of each sequence (the rest of its T rows is padding, never read); default T for all. */
  lengths?: readonly number[];
  returnLse?: boolean;
}

/**
 * The decode cache of one RAT layer. Per sequence: the float32 running state (k̃, ṽ) of its
 * unfinished chunk and, for each finished chunk j, its final key after InterRoPE (R_j k̃) and value,
 * float32 [B, H, ⌈maxTokens / L⌉, D]: O(T / L) memory. Each sequence has its own length (ragged);
 * the lengths live host-side too, so a step that would overflow fails before anything is enqueued,
 * and a failed call leaves the cache unchanged.
 */
export class RatCache {
  readonly batch: number;
  readonly heads: number;
  readonly headDim: number;
  readonly chunkSize: number;
  readonly maxTokens: number;
  readonly device: Device;
  readonly #base: number;
  readonly #scale: number | undefined;
  readonly #bias: Tensor<'float32'> | undefined;
  readonly #tensors: Tensor[];
  readonly #lengths: number[];

  /** @internal use rat.createCache */
  constructor(o: RatCacheOptions) {
    const op = 'rat.createCache';
    options(op, o);
    for (const key of ['batch', 'heads', 'headDim', 'chunkSize', 'maxTokens'] as const) {
      const x = o[key];
      const lo = key === 'batch' || key === 'heads' ? 0 : 1;
      if (typeof x !== 'number' || !Number.isInteger(x) || x < lo || x > 2 ** 31 - 1) {
        fail('ERR_INVALID_ARG_VALUE', `${op}: ${key} must be an integer in [${lo}, 2^31 - 1], got ${describe(x)}`);
      }
    }
    this.#base = ropeBaseOf(op, o);
    if (o.gateBias !== undefined && !(o.gateBias instanceof Tensor)) fail('ERR_INVALID_ARG_TYPE', `${op}: gateBias must be a sparq Tensor, got ${describe(o.gateBias)}`);
    this.batch = o.batch;
    this.heads = o.heads;
    this.headDim = o.headDim;
    this.chunkSize = o.chunkSize;
    this.maxTokens = o.maxTokens;
    this.device = o.device ?? 'cpu';
    this.#scale = o.scale;
    this.#bias = o.gateBias;
    const { batch: B, heads: H, headDim: D } = o;
    if (D % 2 !== 0 || D > 256) fail('ERR_SPARQ_UNSUPPORTED', `${op}: head dim D = ${D} is not supported (even and at most 256)`);
    if (this.device.startsWith('cuda') && ![64, 128, 256].includes(D)) {
      fail('ERR_SPARQ_UNSUPPORTED', `${op}: head dim D = ${D} is not supported on CUDA (64, 128 or 256)`);
    }
    if (o.scale !== undefined && (typeof o.scale !== 'number' || !Number.isFinite(o.scale))) {
      fail('ERR_INVALID_ARG_VALUE', `${op}: scale must be a finite number, got ${describe(o.scale)}`);
    }
    const N = Math.ceil(o.maxTokens / o.chunkSize);
    const dev = this.device;
    this.#tensors = [zeros([B, H, D], { device: dev }), zeros([B, H, D], { device: dev }), zeros([B, H, N, D], { device: dev }),
      zeros([B, H, N, D], { device: dev }), zeros([B], { dtype: 'int32', device: dev })];
    this.#lengths = new Array<number>(B).fill(0);
  }

  /** Tokens held by each sequence (a copy). */
  get lengths(): number[] {
    return [...this.#lengths];
  }

  get #handles(): unknown[] {
    return this.#tensors.map((t) => handleOf(t));
  }

  prefill<T extends Tensor>(q: T, k: Tensor, v: Tensor, gate: Tensor, opts: RatPrefillOptions & { returnLse: true }): AttentionState<T>;
  prefill<T extends Tensor>(q: T, k: Tensor, v: Tensor, gate: Tensor, opts?: RatPrefillOptions): T;
  /**
   * Runs rat.forward on a prompt (q [B, Gq, T, D], k [B, Gk, T, D], v, gate [B, H, T, D]) and
   * replaces the cache contents with its state: sequence b keeps its first lengths[b] tokens.
   * Returns the forward output [B, H, T, D] (rows past lengths[b] belong to padding).
   */
  prefill(q: Tensor, k: Tensor, v: Tensor, gate: Tensor, opts: RatPrefillOptions = {}): Tensor | AttentionState {
    const op = 'rat.cache.prefill';
    options(op, opts);
    const T = v instanceof Tensor && v.rank === 4 ? v.shape[2] : 0;
    if (opts.lengths !== undefined && (!Array.isArray(opts.lengths) || opts.lengths.length !== this.batch)) {
      fail('ERR_INVALID_ARG_VALUE', `${op}: lengths must be an array of ${this.batch} integers, got ${describe(opts.lengths)}`);
    }
    const lens = opts.lengths === undefined ? new Array<number>(this.batch).fill(T) : [...opts.lengths];
    for (const [b, n] of lens.entries()) {
      if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > T || n > this.maxTokens) {
        fail('ERR_INVALID_ARG_VALUE', `${op}: lengths[${b}] must be an integer in [0, min(T = ${T}, maxTokens = ${this.maxTokens})], got ${describe(n)}`);
      }
    }
    const nat = native();
    const cache = this.#handles;
    const bias = this.#bias === undefined ? null : handleOf(this.#bias);
    const result = queued(this.prefill, () => {
      const hs = nat.ratScan(op, handleOf(v), handleOf(k), handleOf(gate), bias, this.chunkSize);
      const len = tensor(Int32Array.from(lens), [this.batch], { device: this.device });
      try {
        const [out, lse] = nat.ratAttention(op, handleOf(q), hs[1], hs[0], this.chunkSize, this.#base, this.#scale, opts.returnLse ?? false);
        try {
          nat.ratFill(op, cache, handleOf(v), handleOf(k), handleOf(gate), bias, hs[3], hs[2], handleOf(len), this.chunkSize, this.#base);
        } catch (e) {
          release([out, lse]);
          throw e;
        }
        const t = Tensor._wrap(out);
        return lse ? { out: t, lse: Tensor._wrap<'float32'>(lse) } : t;
      } finally {
        release(hs);
        len.dispose();
      }
    });
    lens.forEach((n, b) => { this.#lengths[b] = n; });
    return result;
  }

  step<T extends Tensor>(q: T, k: Tensor, v: Tensor, gate: Tensor, opts: { returnLse: true }): AttentionState<T>;
  step<T extends Tensor>(q: T, k: Tensor, v: Tensor, gate: Tensor, opts?: { returnLse?: boolean }): T;
  /**
   * One token for every sequence, each at its own position lengths[b]: q [B, Gq, D], k [B, Gk, D],
   * v and gate [B, H, D] -> out [B, H, D] in v's dtype; then lengths[b] += 1. Equals the row of
   * rat.forward at that position.
   */
  step(q: Tensor, k: Tensor, v: Tensor, gate: Tensor, opts: { returnLse?: boolean } = {}): Tensor | AttentionState {
    const op = 'rat.cache.step';
    options(op, opts);
    const full = this.#lengths.findIndex((n) => n >= this.maxTokens);
    if (full >= 0) fail('ERR_INVALID_ARG_VALUE', `${op}: sequence ${full} is full (maxTokens = ${this.maxTokens})`);
    const [out, lse] = queued(this.step, () => native().ratStep(op, this.#handles, handleOf(q), handleOf(k), handleOf(v), handleOf(gate),
      this.#bias === undefined ? null : handleOf(this.#bias), this.chunkSize, this.#base, this.#scale, opts.returnLse ?? false));
    for (let b = 0; b < this.batch; b++) this.#lengths[b] += 1;
    const t = Tensor._wrap(out);
    return lse ? { out: t, lse: Tensor._wrap<'float32'>(lse) } : t;
  }

  /** Empties every sequence (the next step starts at position 0). */
  reset(): void {
    const h = this.#tensors[4];
    const fresh = zeros([this.batch], { dtype: 'int32', device: this.device });
    this.#tensors[4] = fresh;
    h.dispose();
    this.#lengths.fill(0);
  }

  /** Releases the cache's memory; the cache cannot be used afterwards. */
  dispose(): void {
    for (const t of this.#tensors) t.dispose();
  }
}

/** A decode cache for one RAT layer (see RatCache). */
function createCache(o: RatCacheOptions): RatCache {
  return new RatCache(o);
}

export const rat = { scan, attention, forward, createCache };
