// @ts-check
// KIVI KV-cache benchmarks: fused decode attention over a 2-bit and a 4-bit cache (G = 32,
// R = 128, float16 metadata and tail) against our own dense attention.decode in float32 and
// float16 (CPU) / float16 and bfloat16 (GPU), same shapes, same run; prefill (quantize + append)
// throughput as % of the copy bandwidth. Bytes of a decode case = everything it reads: codes,
// scales and mins, the tail, q (and out written); for dense, the K/V cache. Compare the cases of
// one T and batch by their median time (the README quotes the ratios).
import { sparq } from '../harness.mjs';

/** @typedef {import('../run.mjs').BenchCase} BenchCase */

const H = 32, D = 128, G = 32, R = 128;

/**
 * Bytes a KIVI decode step reads for B sequences of T tokens (Hk KV heads, H query heads).
 * @param {number} B @param {number} T @param {number} bits @param {number} [Hk]
 */
function kiviBytes(B, T, bits, Hk = H) {
  const Q = T >= R + G ? Math.floor((T - R) / G) * G : 0;
  const perHead = 2 * (Q * D * bits / 8 + Q / G * D * 2 * 2) + 2 * (T - Q) * D * 2; // K and V: codes + fp16 scale/min; tail fp16
  return B * Hk * perHead + 2 * B * H * D * 2;
}

/**
 * @param {{ device: string, quick: boolean }} ctx
 * @returns {BenchCase[]}
 */
export function cases({ device, quick }) {
  const dev = /** @type {any} */ (device);
  const cpu = device === 'cpu';
  /** @type {BenchCase[]} */
  const out = [];
  /** @type {[number, number][]} */
  const shapes = cpu
    ? (quick ? [[1, 4096]] : [[1, 4096], [1, 16384], [1, 32768], [8, 4096]])
    : (quick ? [[1, 32768]] : [[1, 4096], [1, 32768], [1, 131072], [8, 32768]]);
  /** @type {('float32' | 'float16' | 'bfloat16')[]} */
  const denseTypes = cpu ? ['float32', 'float16'] : ['float16', 'bfloat16'];

  for (const [B, T] of shapes) {
    for (const dtype of denseTypes) {
      const size = sparq.BYTES_PER_ELEMENT[dtype];
      out.push({
        name: `dense decode ${dtype} B=${B} T=${T}`,
        shape: `q [${B}, ${H}, ${D}], cache [${B}, ${H}, ${T}, ${D}]`,
        bytes: 2 * B * H * T * D * size,
        flops: 4 * B * H * T * D,
        setup: () => {
          const t = [
            sparq.random.normal([B, H, D], { seed: 1, dtype, device: dev }),
            sparq.random.normal([B, H, T, D], { seed: 2, dtype, device: dev }),
            sparq.random.normal([B, H, T, D], { seed: 3, dtype, device: dev }),
            sparq.full([B], T, { dtype: 'int32', device: dev }),
          ];
          return { t, dispose: () => t.forEach((x) => x.dispose()) };
        },
        run: ({ t: [q, k, v, lengths] }) => sparq.attention.decode(q, k, v, { lengths }),
      });
    }
    for (const bits of /** @type {const} */ ([2, 4])) {
      out.push({
        name: `kivi-${bits} decode float16 B=${B} T=${T}`,
        shape: `q [${B}, ${H}, ${D}], ${bits}-bit cache of ${T} tokens x ${B}x${H} heads`,
        bytes: kiviBytes(B, T, bits),
        flops: 0, // memory-bound like dense decode (same 4BHTD FLOPs); 0 makes the report show GB/s
        setup: () => {
          const cache = sparq.kv.createCache({ format: 'kivi', keyBits: bits, valueBits: bits, groupSize: G, residual: R, batch: B,
            kvHeads: H, headDim: D, maxTokens: T, dtype: 'float16', device: dev });
          const k = sparq.random.normal([B, H, T, D], { seed: 2, dtype: 'float16', device: dev });
          const v = sparq.random.normal([B, H, T, D], { seed: 3, dtype: 'float16', device: dev });
          cache.prefill(k, v);
          k.dispose();
          v.dispose();
          const q = sparq.random.normal([B, H, D], { seed: 1, dtype: 'float16', device: dev });
          return { cache, q, dispose: () => { cache.dispose(); q.dispose(); } };
        },
        run: ({ cache, q }) => cache.attend(q),
      });
    }
  }

  // GQA (Llama-style: 32 query heads over 8 or 4 KV heads): the query heads of a KV head share each
  // page (the CPU's head-blocked fast path); dense float16 decode with the same KV heads alongside.
  if (!quick) {
    const B = 1, T = cpu ? 32768 : 131072;
    for (const Hk of [8, 4]) {
      out.push({
        name: `dense decode float16 GQA ${H / Hk} B=${B} T=${T}`,
        shape: `q [${B}, ${H}, ${D}], cache [${B}, ${Hk}, ${T}, ${D}]`,
        bytes: 2 * B * Hk * T * D * 2,
        flops: 4 * B * H * T * D,
        setup: () => {
          const t = [
            sparq.random.normal([B, H, D], { seed: 1, dtype: 'float16', device: dev }),
            sparq.random.normal([B, Hk, T, D], { seed: 2, dtype: 'float16', device: dev }),
            sparq.random.normal([B, Hk, T, D], { seed: 3, dtype: 'float16', device: dev }),
            sparq.full([B], T, { dtype: 'int32', device: dev }),
          ];
          return { t, dispose: () => t.forEach((x) => x.dispose()) };
        },
        run: ({ t: [q, k, v, lengths] }) => sparq.attention.decode(q, k, v, { lengths }),
      });
      for (const bits of /** @type {const} */ ([2, 4])) {
        out.push({
          name: `kivi-${bits} decode float16 GQA ${H / Hk} B=${B} T=${T}`,
          shape: `q [${B}, ${H}, ${D}], ${bits}-bit cache of ${T} tokens x ${B}x${Hk} KV heads`,
          bytes: kiviBytes(B, T, bits, Hk),
          flops: 0,
          setup: () => {
            const cache = sparq.kv.createCache({ format: 'kivi', keyBits: bits, valueBits: bits, groupSize: G, residual: R, batch: B,
              kvHeads: Hk, headDim: D, maxTokens: T, dtype: 'float16', device: dev });
            const k = sparq.random.normal([B, Hk, T, D], { seed: 2, dtype: 'float16', device: dev });
            const v = sparq.random.normal([B, Hk, T, D], { seed: 3, dtype: 'float16', device: dev });
            cache.prefill(k, v);
            k.dispose();
            v.dispose();
            const q = sparq.random.normal([B, H, D], { seed: 1, dtype: 'float16', device: dev });
            return { cache, q, dispose: () => { cache.dispose(); q.dispose(); } };
          },
          run: ({ cache, q }) => cache.attend(q),
        });
      }
    }
  }

  // Prefill = quantize every completed page + write the tail: reads the fp16 input, writes the pages.
  const pre = cpu ? { B: 1, T: quick ? 4096 : 16384 } : { B: 8, T: quick ? 8192 : 32768 };
  for (const bits of /** @type {const} */ ([2, 4])) {
    const { B, T } = pre;
    const inBytes = 2 * B * H * T * D * 2;
    out.push({
      name: `kivi-${bits} prefill (quantize) float16 B=${B} T=${T}`,
      shape: `k, v [${B}, ${H}, ${T}, ${D}]`,
      bytes: inBytes + kiviBytes(B, T, bits),
      flops: 0,
      setup: () => {
        const cache = sparq.kv.createCache({ format: 'kivi', keyBits: bits, valueBits: bits, groupSize: G, residual: R, batch: B,
          kvHeads: H, headDim: D, maxTokens: T, dtype: 'float16', device: dev });
        const k = sparq.random.normal([B, H, T, D], { seed: 2, dtype: 'float16', device: dev });
        const v = sparq.random.normal([B, H, T, D], { seed: 3, dtype: 'float16', device: dev });
        return { cache, k, v, dispose: () => { cache.dispose(); k.dispose(); v.dispose(); } };
      },
      run: ({ cache, k, v }) => cache.prefill(k, v),
    });
  }
  return out;
}
