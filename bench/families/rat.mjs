// @ts-check
// RAT benchmarks (issue: "Benchmarks"): prefill (rat.forward = scan + chunk attention) and one
// decode step, each next to our own dense causal attention on the same q/k/v shapes (sdpa causal,
// attention.decode over a full-length cache), plus the scan alone as GB/s and % of the copy
// bandwidth. On a GPU the RAT and dense cases also run PyTorch SDPA (flash, causal; decode over a
// dense cache) as a peer (bench/peers/attention.py), so the RAT rows print the ratios.
// Shapes follow the paper's single-layer setup: H = 16 heads, D = 128, L = 16.
// FLOPs of the RAT attention: 4·D per (query, key) pair, with c(t) + 1 keys for token t.
import { sparq } from '../harness.mjs';

/** @typedef {import('../run.mjs').BenchCase} BenchCase */

/**
 * @param {{ device: string, quick: boolean }} ctx
 * @returns {BenchCase[]}
 */
export function cases({ device, quick }) {
  const dev = /** @type {any} */ (device);
  const cpu = device === 'cpu';
  const dtype = cpu ? 'float32' : 'bfloat16';
  const size = sparq.BYTES_PER_ELEMENT[dtype];
  const H = 16, D = 128, L = 16;
  /** @type {BenchCase[]} */
  const out = [];
  /** @param {number[]} shape @param {number} seed */
  const randn = (shape, seed) => sparq.random.normal(shape, { seed, dtype, device: dev });
  /** (query, key) pairs of the RAT attention over T tokens: sum over t of (c(t) + 1). */
  const ratPairs = (/** @type {number} */ T) => {
    let n = 0;
    for (let c = 0; c * L < T; c++) n += Math.min(L, T - c * L) * (c + 1);
    return n;
  };

  const prefill = cpu ? { B: 1, Ts: quick ? [1024] : [4096, 16384] } : { B: 1, Ts: quick ? [16384] : [16384, 32768, 65536, 131072] };
  for (const T of prefill.Ts) {
    const { B } = prefill;
    const shape = `q,k,v,gate [${B}, ${H}, ${T}, ${D}], L = ${L}`;
    const inputs = () => [randn([B, H, T, D], 1), randn([B, H, T, D], 2), randn([B, H, T, D], 3), randn([B, H, T, D], 4)];
    out.push({
      name: `rat.forward prefill ${dtype} T=${T}`,
      shape,
      bytes: 5 * B * H * T * D * size,
      flops: 4 * B * H * D * ratPairs(T),
      setup: inputs,
      run: ([q, k, v, g]) => sparq.rat.forward(q, k, v, g, { chunkSize: L }),
      // GPU: the printed "sparq Nx" against PyTorch's causal SDPA is the prefill goal (>= 7x at 128K).
      ...(cpu ? {} : { peer: { script: 'attention.py', args: { op: 'prefill', B, H, Hk: H, T, D, causal: true, dtype } } }),
    });
    out.push({
      name: `dense sdpa causal ${dtype} T=${T} (same q, k, v)`,
      shape: `q,k,v [${B}, ${H}, ${T}, ${D}]`,
      bytes: 4 * B * H * T * D * size,
      flops: 4 * B * H * D * ((T * (T + 1)) / 2),
      setup: () => inputs().slice(0, 3),
      run: ([q, k, v]) => sparq.attention.sdpa(q, k, v, { causal: true }),
      ...(cpu ? {} : { peer: { script: 'attention.py', args: { op: 'prefill', B, H, Hk: H, T, D, causal: true, dtype } } }),
    });
  }

  const scanT = cpu ? (quick ? 1024 : 16384) : (quick ? 16384 : 131072);
  out.push({
    name: `rat.scan ${dtype} T=${scanT}`,
    shape: `v,k,gate [1, ${H}, ${scanT}, ${D}], L = ${L}`,
    bytes: (5 * scanT + 2 * Math.ceil(scanT / L)) * H * D * size,
    flops: 0,
    setup: () => [randn([1, H, scanT, D], 1), randn([1, H, scanT, D], 2), randn([1, H, scanT, D], 3)],
    run: ([v, k, g]) => {
      const s = sparq.rat.scan(v, k, g, { chunkSize: L });
      s.vFinal.dispose();
      s.kFinal.dispose();
      s.kTilde.dispose();
      return s.vTilde;
    },
  });

  // (B, T) pairs; the cache is filled by a prefill of B x T tokens, so B = 64 stays at 4K on a GPU.
  const decode = cpu ? (quick ? [[1, 1024]] : [[1, 4096]]) : (quick ? [[1, 4096]] : [[1, 4096], [1, 32768], [64, 4096]]);
  for (const [B, T] of decode) {
    const Nc = Math.ceil(T / L);
    out.push({
      name: `rat decode step ${dtype} T=${T} B=${B}`,
      shape: `cache [${B}, ${H}, ${Nc}, ${D}] float32 + state, one token`,
      bytes: 2 * B * H * (Nc + 2) * D * 4,
      flops: 4 * B * H * (Nc + 1) * D,
      setup: () => {
        const cache = sparq.rat.createCache({ batch: B, heads: H, headDim: D, chunkSize: L, maxTokens: T + 64, device: dev });
        const p = [randn([B, H, T, D], 1), randn([B, H, T, D], 2), randn([B, H, T, D], 3), randn([B, H, T, D], 4)];
        cache.prefill(p[0], p[1], p[2], p[3]).dispose();
        for (const t of p) t.dispose();
        const step = [randn([B, H, D], 5), randn([B, H, D], 6), randn([B, H, D], 7), randn([B, H, D], 8)];
        return Object.assign(step, { cache, dispose: () => cache.dispose() });
      },
      run: (s) => s.cache.step(s[0], s[1], s[2], s[3]),
      // GPU: "sparq Nx" against PyTorch SDPA decode over a dense T-token cache (goal >= 9x at 4K).
      ...(cpu ? {} : { peer: { script: 'attention.py', args: { op: 'decode', B, H, Hk: H, T, D, dtype } } }),
    });
    out.push({
      name: `dense decode ${dtype} T=${T} B=${B}`,
      shape: `q [${B}, ${H}, ${D}], cache [${B}, ${H}, ${T}, ${D}]`,
      bytes: 2 * B * H * T * D * size,
      flops: 4 * B * H * T * D,
      setup: () => [randn([B, H, D], 1), randn([B, H, T, D], 2), randn([B, H, T, D], 3), sparq.full([B], T, { dtype: 'int32', device: dev })],
      run: ([q, k, v, lengths]) => sparq.attention.decode(q, k, v, { lengths }),
      ...(cpu ? {} : { peer: { script: 'attention.py', args: { op: 'decode', B, H, Hk: H, T, D, dtype } } }),
    });
  }
  return out;
}
