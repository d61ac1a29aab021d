// @ts-check
// Dense attention benchmarks (the baseline every sparq attention family is measured against):
// prefill as GFLOP/s, decode as GB/s of KV cache read and % of the copy bandwidth, side by side
// with PyTorch (CPU: softmax(q·kᵀ)·v as the issue specifies; GPU: SDPA with the flash backend).
import { sparq } from '../harness.mjs';

/** @typedef {import('../run.mjs').BenchCase} BenchCase */

/**
 * @param {{ device: string, quick: boolean }} ctx
 * @returns {BenchCase[]}
 */
export function cases({ device, quick }) {
  const dev = /** @type {any} */ (device);
  const cpu = device === 'cpu';
  const dtype = cpu ? 'float32' : 'float16';
  const size = sparq.BYTES_PER_ELEMENT[dtype];
  /** @type {BenchCase[]} */
  const out = [];

  const D = 128;
  const prefill = cpu ? { B: 1, H: 8, Ts: quick ? [512] : [1024, 4096] } : { B: 4, H: 32, Ts: quick ? [1024] : [1024, 4096, 16384] };
  for (const T of prefill.Ts) {
    for (const causal of [false, true]) {
      const { B, H } = prefill;
      // Causal attention computes about half the scores: count the visible pairs exactly.
      const pairs = causal ? (T * (T + 1)) / 2 : T * T;
      out.push({
        name: `sdpa prefill ${dtype}${causal ? ' causal' : ''} T=${T}`,
        shape: `q,k,v [${B}, ${H}, ${T}, ${D}]`,
        bytes: 4 * B * H * T * D * size,
        flops: 4 * B * H * pairs * D,
        setup: () => ['q', 'k', 'v'].map((_, i) => sparq.random.normal([B, H, T, D], { seed: 10 + i, dtype, device: dev })),
        run: ([q, k, v]) => sparq.attention.sdpa(q, k, v, { causal }),
        peer: { script: 'attention.py', args: { op: 'prefill', B, H, Hk: H, T, D, causal, dtype } },
      });
    }
  }

  const decode = cpu ? { B: 1, Hq: 8, Hk: 8, Ts: quick ? [4096] : [4096, 16384, 32768] }
    : { B: 1, Hq: 32, Hk: 8, Ts: quick ? [32768] : [8192, 32768, 131072] };
  for (const T of decode.Ts) {
    const { B, Hq, Hk } = decode;
    out.push({
      name: `decode ${dtype} T=${T}${Hq !== Hk ? ` GQA ${Hq / Hk}` : ''}`,
      shape: `q [${B}, ${Hq}, ${D}], cache [${B}, ${Hk}, ${T}, ${D}]`,
      bytes: 2 * B * Hk * T * D * size,
      flops: 4 * B * Hq * T * D,
      setup: () => [
        sparq.random.normal([B, Hq, D], { seed: 1, dtype, device: dev }),
        sparq.random.normal([B, Hk, T, D], { seed: 2, dtype, device: dev }),
        sparq.random.normal([B, Hk, T, D], { seed: 3, dtype, device: dev }),
        sparq.full([B], T, { dtype: 'int32', device: dev }),
      ],
      run: ([q, k, v, lengths]) => sparq.attention.decode(q, k, v, { lengths }),
      peer: { script: 'attention.py', args: { op: 'decode', B, H: Hq, Hk, T, D, dtype } },
    });
  }
  return out;
}
