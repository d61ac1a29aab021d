/**
 * float64 references for dense attention and RoPE, written from the math (plain loops), not from
 * the C++: scores, mask, softmax, weighted sum and log-sum-exp; decode; merge of states; RoPE.
 * Tensors are flat row-major arrays; shapes are given separately.
 */

export interface AttentionDims {
  B: number;
  Hq: number;
  Hk: number;
  Tq: number;
  Tk: number;
  D: number;
}

export interface SdpaRefOptions {
  causal?: boolean;
  /** [left, right]; -1 leaves a side unbounded. */
  window?: [number, number];
  /** Default 1 / sqrt(D). */
  scale?: number;
  /** Keys [0, kvLengths[b]) exist for sequence b (default Tk). */
  kvLengths?: ArrayLike<number>;
}

export interface StateRef {
  out: Float64Array;
  lse: Float64Array;
}

/**
 * Softmax attention of one query over the keys `visible`: returns the output row (length D) and
 * the LSE; no visible key gives zeros and -Infinity.
 */
function attendRow(
  q: ArrayLike<number>, qOff: number, k: ArrayLike<number>, v: ArrayLike<number>, kvOff: number, D: number,
  scale: number, visible: number[],
): { row: Float64Array; lse: number } {
  const row = new Float64Array(D);
  if (visible.length === 0) return { row, lse: -Infinity };
  const scores = visible.map((j) => {
    let s = 0;
    for (let d = 0; d < D; d++) s += q[qOff + d] * k[kvOff + j * D + d];
    return s * scale;
  });
  const m = scores.reduce((a, b) => Math.max(a, b), -Infinity); // NaN if any score is NaN
  let z = 0;
  const w = scores.map((s) => Math.exp(s - m));
  for (const x of w) z += x;
  for (let n = 0; n < visible.length; n++) {
    for (let d = 0; d < D; d++) row[d] += w[n] * v[kvOff + visible[n] * D + d];
  }
  for (let d = 0; d < D; d++) row[d] /= z;
  return { row, lse: m + Math.log(z) };
}

/** Keys seen by query i (of Tq) of a sequence of L keys; queries sit at the last Tq positions. */
export function visibleKeys(i: number, Tq: number, L: number, causal: boolean, window: [number, number]): number[] {
  const p = L - Tq + i;
  const [left, right] = window;
  const keys: number[] = [];
  for (let j = 0; j < L; j++) {
    if (causal && j > p) continue;
    if (left >= 0 && j < p - left) continue;
    if (right >= 0 && j > p + right) continue;
    keys.push(j);
  }
  return keys;
}

/** q [B, Hq, Tq, D], k and v [B, Hk, Tk, D] -> out [B, Hq, Tq, D], lse [B, Hq, Tq]. */
export function sdpaRef(
  q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, dims: AttentionDims, options: SdpaRefOptions = {},
): StateRef {
  const { B, Hq, Hk, Tq, Tk, D } = dims;
  const scale = options.scale ?? 1 / Math.sqrt(D);
  const window = options.window ?? [-1, -1];
  const G = Hq / Hk;
  const out = new Float64Array(B * Hq * Tq * D);
  const lse = new Float64Array(B * Hq * Tq);
  for (let b = 0; b < B; b++) {
    const L = options.kvLengths ? options.kvLengths[b] : Tk;
    for (let h = 0; h < Hq; h++) {
      const kvOff = (b * Hk + Math.floor(h / G)) * Tk * D;
      for (let i = 0; i < Tq; i++) {
        const rowIndex = (b * Hq + h) * Tq + i;
        const r = attendRow(q, rowIndex * D, k, v, kvOff, D, scale, visibleKeys(i, Tq, L, options.causal ?? false, window));
        out.set(r.row, rowIndex * D);
        lse[rowIndex] = r.lse;
      }
    }
  }
  return { out, lse };
}

/** q [B, Hq, D], caches [B, Hk, Tmax, D], lengths [B] -> out [B, Hq, D], lse [B, Hq]. */
export function decodeRef(
  q: ArrayLike<number>, kCache: ArrayLike<number>, vCache: ArrayLike<number>, lengths: ArrayLike<number>,
  dims: { B: number; Hq: number; Hk: number; Tmax: number; D: number }, scale?: number,
): StateRef {
  const { B, Hq, Hk, Tmax, D } = dims;
  const G = Hq / Hk;
  const out = new Float64Array(B * Hq * D);
  const lse = new Float64Array(B * Hq);
  for (let b = 0; b < B; b++) {
    const keys = Array.from({ length: lengths[b] }, (_, j) => j);
    for (let h = 0; h < Hq; h++) {
      const kvOff = (b * Hk + Math.floor(h / G)) * Tmax * D;
      const r = attendRow(q, (b * Hq + h) * D, kCache, vCache, kvOff, D, scale ?? 1 / Math.sqrt(D), keys);
      out.set(r.row, (b * Hq + h) * D);
      lse[b * Hq + h] = r.lse;
    }
  }
  return { out, lse };
}

/** Merges states over disjoint key sets: weights exp(lse_i - max lse); a -Infinity part weighs nothing. */
export function mergeRef(parts: { out: ArrayLike<number>; lse: ArrayLike<number> }[], rows: number, D: number): StateRef {
  const out = new Float64Array(rows * D);
  const lse = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    const m = Math.max(...parts.map((p) => p.lse[r]));
    if (m === -Infinity) {
      lse[r] = -Infinity;
      continue;
    }
    let z = 0;
    for (const p of parts) {
      const w = Math.exp(p.lse[r] - m);
      if (w === 0) continue;
      z += w;
      for (let d = 0; d < D; d++) out[r * D + d] += w * p.out[r * D + d];
    }
    for (let d = 0; d < D; d++) out[r * D + d] /= z;
    lse[r] = m + Math.log(z);
  }
  return { out, lse };
}

export interface RopeRefOptions {
  interleaved?: boolean;
  base?: number;
  /** [T] (shared by the batch) or [B * T] (perBatch). */
  positions?: ArrayLike<number>;
  perBatch?: boolean;
  offset?: number;
  rotaryDim?: number;
}

/**
 * x [B, H, T, D]: each pair (a, b) of the first rotaryDim dims turns by theta = pos * base^(-2i / r):
 * (a cos - b sin, a sin + b cos); pairs are (i, i + r/2) (rotate-half) or (2i, 2i + 1) (interleaved).
 */
export function ropeRef(x: ArrayLike<number>, dims: { B: number; H: number; T: number; D: number }, options: RopeRefOptions = {}): Float64Array {
  const { B, H, T, D } = dims;
  const r = options.rotaryDim ?? D;
  const base = options.base ?? 10000;
  const out = Float64Array.from(x as ArrayLike<number>);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const pos = options.positions ? options.positions[options.perBatch ? b * T + t : t] : (options.offset ?? 0) + t;
      for (let h = 0; h < H; h++) {
        const off = ((b * H + h) * T + t) * D;
        for (let i = 0; i < r / 2; i++) {
          const theta = pos * Math.pow(base, (-2 * i) / r);
          const [ia, ib] = options.interleaved ? [2 * i, 2 * i + 1] : [i, i + r / 2];
          const a = x[off + ia];
          const c = x[off + ib];
          out[off + ia] = a * Math.cos(theta) - c * Math.sin(theta);
          out[off + ib] = a * Math.sin(theta) + c * Math.cos(theta);
        }
      }
    }
  }
  return out;
}
