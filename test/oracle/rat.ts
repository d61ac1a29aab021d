/**
 * float64 reference for RAT (arXiv 2507.04416; spec §2.1 and the loop oracle of §2.8), written
 * from the equations, not from the C++: a loop over tokens that updates the per-chunk states with
 * the gated recurrence, keeps the chunk-final RoPE'd keys, and for each token takes the softmax
 * over the earlier chunks' final keys plus its own running state.
 * Tensors are flat row-major arrays in the [B, heads, T, D] layout; shapes are given separately.
 */

export interface RatDims {
  B: number;
  /** value heads */
  H: number;
  /** query groups: head h uses q group h % Gq */
  Gq: number;
  /** key groups: head h uses k group h % Gk */
  Gk: number;
  T: number;
  D: number;
  /** chunk length */
  L: number;
}

export interface RatRefOptions {
  /** [H * D], added to the gate logits. */
  gateBias?: ArrayLike<number>;
  /** InterRoPE base (default 10000); 0 turns RoPE off. */
  ropeBase?: number;
  /** Default 1 / sqrt(D). */
  scale?: number;
  /**
   * Applied to ṽ and k̃ where the implementation stores them in its dtype (the attention reads the
   * stored values); identity for float32.
   */
  round?: (x: number) => number;
}

export interface RatScanRef {
  vTilde: Float64Array;
  kTilde: Float64Array;
  /** [B, H, ceil(T / L), D] */
  vFinal: Float64Array;
  kFinal: Float64Array;
}

const sigmoid = (z: number): number => 1 / (1 + Math.exp(-z));

/** Rotate-half RoPE of one row at position pos: pair (x[i], x[i + D/2]) by pos * base^(-2i / D). */
export function ropeRow(x: ArrayLike<number>, pos: number, base: number): Float64Array {
  const D = x.length;
  const y = Float64Array.from(x);
  if (base === 0) return y;
  const h = D / 2;
  for (let i = 0; i < h; i++) {
    const th = pos * base ** (-2 * i / D);
    const c = Math.cos(th);
    const s = Math.sin(th);
    y[i] = x[i] * c - x[i + h] * s;
    y[i + h] = x[i] * s + x[i + h] * c;
  }
  return y;
}

/** The gated recurrence: v, gate [B, H, T, D], k [B, Gk, T, D]; state reset at each chunk start. */
export function ratScanRef(v: ArrayLike<number>, k: ArrayLike<number>, gate: ArrayLike<number>, dims: RatDims,
  options: RatRefOptions = {}): RatScanRef {
  const { B, H, Gk, T, D, L } = dims;
  const Nc = Math.ceil(T / L);
  const vTilde = new Float64Array(B * H * T * D);
  const kTilde = new Float64Array(B * H * T * D);
  const vFinal = new Float64Array(B * H * Nc * D);
  const kFinal = new Float64Array(B * H * Nc * D);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let d = 0; d < D; d++) {
        let sv = 0;
        let sk = 0;
        for (let t = 0; t < T; t++) {
          if (t % L === 0) {
            sv = 0;
            sk = 0;
          }
          const i = ((b * H + h) * T + t) * D + d;
          const g = sigmoid(gate[i] + (options.gateBias ? options.gateBias[h * D + d] : 0));
          sv = g * sv + (1 - g) * v[i];
          sk = g * sk + (1 - g) * k[((b * Gk + (h % Gk)) * T + t) * D + d];
          vTilde[i] = sv;
          kTilde[i] = sk;
          if (t % L === L - 1 || t === T - 1) {
            const f = ((b * H + h) * Nc + Math.floor(t / L)) * D + d;
            vFinal[f] = sv;
            kFinal[f] = sk;
          }
        }
      }
    }
  }
  return { vTilde, kTilde, vFinal, kFinal };
}

export interface RatAttentionRef {
  out: Float64Array;
  lse: Float64Array;
}

/**
 * Inter-chunk attention: q [B, Gq, T, D], k̃ and ṽ [B, H, T, D]. Token t (chunk c) attends over
 * the final states of chunks j < c (keys rotated by j) and its own state (rotated by c, as q).
 */
export function ratAttentionRef(q: ArrayLike<number>, kTilde: ArrayLike<number>, vTilde: ArrayLike<number>, dims: RatDims,
  options: RatRefOptions = {}): RatAttentionRef {
  const { B, H, Gq, T, D, L } = dims;
  const base = options.ropeBase ?? 10000;
  const scale = options.scale ?? 1 / Math.sqrt(D);
  const round = options.round ?? ((x: number) => x);
  const out = new Float64Array(B * H * T * D);
  const lse = new Float64Array(B * H * T);
  const row = (a: ArrayLike<number>, off: number): number[] => {
    const r: number[] = [];
    for (let d = 0; d < D; d++) r.push(round(a[off + d]));
    return r;
  };
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const head = (b * H + h) * T * D;
      // The chunk-final keys (after InterRoPE) and values, stored as chunks complete.
      const finalsK: Float64Array[] = [];
      const finalsV: number[][] = [];
      for (let t = 0; t < T; t++) {
        const c = Math.floor(t / L);
        const qOff = ((b * Gq + (h % Gq)) * T + t) * D;
        const qr = ropeRow(Array.from({ length: D }, (_, d) => q[qOff + d]), c, base);
        const kSelf = ropeRow(row(kTilde, head + t * D), c, base);
        const vSelf = row(vTilde, head + t * D);
        const keys = [...finalsK.slice(0, c), kSelf];
        const vals = [...finalsV.slice(0, c), vSelf];
        const logits = keys.map((kk) => {
          let s = 0;
          for (let d = 0; d < D; d++) s += qr[d] * kk[d];
          return s * scale;
        });
        const m = Math.max(...logits);
        const w = logits.map((a) => Math.exp(a - m));
        const z = w.reduce((a, x) => a + x, 0);
        for (let d = 0; d < D; d++) {
          let acc = 0;
          for (let j = 0; j < w.length; j++) acc += w[j] * vals[j][d];
          out[head + t * D + d] = acc / z;
        }
        lse[(b * H + h) * T + t] = m + Math.log(z);
        if (t % L === L - 1) {
          finalsK.push(kSelf);
          finalsV.push(vSelf);
        }
      }
    }
  }
  return { out, lse };
}

/** scan + attention: the full layer core for q [B, Gq, T, D], k [B, Gk, T, D], v and gate [B, H, T, D]. */
export function ratRef(q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, gate: ArrayLike<number>, dims: RatDims,
  options: RatRefOptions = {}): RatAttentionRef & RatScanRef {
  const s = ratScanRef(v, k, gate, dims, options);
  return { ...s, ...ratAttentionRef(q, s.kTilde, s.vTilde, dims, options) };
}
