// @ts-check
// Parity of RAT: every CUDA op against its CPU twin on the same inputs (relative L2 error: float32
// 1e-5, float16 2e-3, bfloat16 1e-2; LSE 1e-5 in float32, 2e-4 in float16/bfloat16, whose
// tensor-core route rounds the rotated chunk keys to the input dtype) over dtypes, head dims
// 64/128/256, query and key groups, chunk sizes 1..64 with T no multiple of L, gate bias, NoPE, long sequences (the
// chunk-attention kernel's key tiles and 64-row query tiles), and the decode cache: prefill then
// ragged steps across chunk boundaries, compared step by step with the CPU cache; B * H past a
// grid's y limit (65535); NaN reaching exactly the rows the CPU makes NaN. Bad cache use must fail
// before anything runs.

/** @typedef {import('../parity.mjs').Ctx} Ctx */
/** @typedef {'float32' | 'float16' | 'bfloat16'} FloatDType */
/** @typedef {import('../../../dist/cjs/index.js').Tensor} Tensor */

/** @type {readonly FloatDType[]} */
const DTYPES = ['float32', 'float16', 'bfloat16'];
const DIMS = [64, 128, 256];
/** @type {Record<FloatDType, number>} */
const TOL = { float32: 1e-5, float16: 2e-3, bfloat16: 1e-2 };
/** @type {Record<FloatDType, number>} */
const LSE_TOL = { float32: 1e-5, float16: 2e-4, bfloat16: 2e-4 };

/**
 * @typedef {{ B: number, H: number, Gq: number, Gk: number, T: number, D: number, L: number, dtype: FloatDType,
 *   bias?: boolean, nope?: boolean, scale?: number, seed?: number }} RatCase
 */

/** @param {Ctx} ctx */
export async function run(ctx) {
  const { sparq, device, check, close, errorCode } = ctx;
  const onCpu = device === 'cpu';

  /** @param {number[]} shape @param {number} seed @param {FloatDType} dtype @param {number} [std] */
  const randn = (shape, seed, dtype, std = 1) => sparq.random.normal(shape, { seed, dtype, std });
  /** @param {Record<string, unknown>} c */
  const label = (c) => JSON.stringify(c);

  /** @param {RatCase} c */
  function inputs(c) {
    const { B, H, Gq, Gk, T, D, dtype } = c;
    const seed = c.seed ?? B * 7 + T + D + c.L;
    return {
      q: randn([B, Gq, T, D], seed, dtype),
      k: randn([B, Gk, T, D], seed + 1, dtype),
      v: randn([B, H, T, D], seed + 2, dtype),
      gate: randn([B, H, T, D], seed + 3, dtype, 2),
      bias: c.bias ? sparq.random.normal([H, D], { seed: seed + 4 }) : undefined,
    };
  }

  /** @param {RatCase} c */
  async function forwardCase(c) {
    const x = inputs(c);
    const opts = { chunkSize: c.L, scale: c.scale, rope: !c.nope, returnLse: /** @type {const} */ (true) };
    const want = sparq.rat.forward(x.q, x.k, x.v, x.gate, { ...opts, gateBias: x.bias });
    const got = sparq.rat.forward(x.q.to(device), x.k.to(device), x.v.to(device), x.gate.to(device), { ...opts, gateBias: x.bias?.to(device) });
    const what = label(c);
    close(await want.out.toFloat32(), await got.out.toFloat32(), TOL[c.dtype], `${what} out`);
    close(await want.lse.toFloat32(), await got.lse.toFloat32(), LSE_TOL[c.dtype], `${what} lse`);
    // The scan alone: every output, bit-for-bit up to float32 rounding of the state.
    const ws = sparq.rat.scan(x.v, x.k, x.gate, { chunkSize: c.L, gateBias: x.bias });
    const gs = sparq.rat.scan(x.v.to(device), x.k.to(device), x.gate.to(device), { chunkSize: c.L, gateBias: x.bias?.to(device) });
    for (const key of /** @type {const} */ (['vTilde', 'kTilde', 'vFinal', 'kFinal'])) {
      close(await ws[key].toFloat32(), await gs[key].toFloat32(), c.dtype === 'float32' ? 1e-6 : TOL[c.dtype], `${what} scan ${key}`);
    }
  }

  /**
   * Prefill with ragged prompts, then `steps` decode steps; the device cache against the CPU cache.
   * @param {RatCase} c @param {number[]} prompt @param {number} steps
   */
  async function decodeCase(c, prompt, steps) {
    const { B, H, Gq, Gk, D, L, dtype } = c;
    const x = inputs(c);
    const make = (/** @type {import('../../../dist/cjs/index.js').Device} */ dev) => sparq.rat.createCache({
      batch: B, heads: H, headDim: D, chunkSize: L, maxTokens: c.T + steps, device: dev, gateBias: x.bias?.to(dev),
    });
    const cpu = make('cpu');
    const dev = make(device);
    const what = label(c);
    close(await cpu.prefill(x.q, x.k, x.v, x.gate, { lengths: prompt }).toFloat32(),
      await dev.prefill(x.q.to(device), x.k.to(device), x.v.to(device), x.gate.to(device), { lengths: prompt }).toFloat32(),
      TOL[dtype], `${what} prefill`);
    for (let s = 0; s < steps; s++) {
      const seed = 1000 + s;
      const q = randn([B, Gq, D], seed, dtype);
      const k = randn([B, Gk, D], seed + 1, dtype);
      const v = randn([B, H, D], seed + 2, dtype);
      const g = randn([B, H, D], seed + 3, dtype, 2);
      const want = cpu.step(q, k, v, g, { returnLse: true });
      const got = dev.step(q.to(device), k.to(device), v.to(device), g.to(device), { returnLse: true });
      close(await want.out.toFloat32(), await got.out.toFloat32(), TOL[dtype], `${what} step ${s} out`);
      close(await want.lse.toFloat32(), await got.lse.toFloat32(), LSE_TOL[dtype], `${what} step ${s} lse`);
    }
    if (dev.lengths.join() !== cpu.lengths.join()) throw new Error(`${what}: lengths ${dev.lengths} vs ${cpu.lengths}`);
    cpu.dispose();
    dev.dispose();
  }

  for (const dtype of DTYPES) {
    for (const D of DIMS) {
      await check(`rat.forward ${dtype} D=${D}: groups, partial last chunk, L = 1 / 16 / 64, gate bias`, async () => {
        await forwardCase({ B: 2, H: 4, Gq: 2, Gk: 2, T: 150, D, L: 16, dtype, bias: true });
        await forwardCase({ B: 1, H: 2, Gq: 1, Gk: 2, T: 77, D, L: 1, dtype });
        await forwardCase({ B: 1, H: 3, Gq: 3, Gk: 1, T: 200, D, L: 64, dtype, scale: 0.2 });
      });
    }
  }

  for (const dtype of DTYPES) {
    await check(`rat.forward ${dtype}: long sequences (many key tiles, 64-row query tiles), NoPE, L > T, T = L, T = L + 1`, async () => {
      await forwardCase({ B: 1, H: 2, Gq: 1, Gk: 1, T: onCpu ? 1100 : 5000, D: 128, L: 3, dtype });
      await forwardCase({ B: 1, H: 2, Gq: 2, Gk: 2, T: 300, D: 64, L: 5, dtype, nope: true });
      await forwardCase({ B: 2, H: 2, Gq: 1, Gk: 1, T: 30, D: 64, L: 100, dtype });
      // The edges of the tensor-core route (T > L): T = L stays on the FMA kernel; T = L + 1 gives
      // Nc = 2 chunk rows per head against a single chunk key (Tk = 1).
      await forwardCase({ B: 1, H: 2, Gq: 1, Gk: 1, T: 16, D: 128, L: 16, dtype });
      await forwardCase({ B: 1, H: 2, Gq: 1, Gk: 1, T: 17, D: 128, L: 16, dtype });
    });
  }

  for (const dtype of DTYPES) {
    for (const D of DIMS) {
      await check(`rat cache ${dtype} D=${D}: ragged prefill then steps across chunk boundaries`, async () => {
        await decodeCase({ B: 3, H: 4, Gq: 2, Gk: 1, T: 40, D, L: 8, dtype, bias: true }, [0, 13, 40], 20);
        await decodeCase({ B: 1, H: 2, Gq: 2, Gk: 2, T: 5, D, L: 1, dtype }, [5], 4);
      });
    }
  }

  await check('rat cache: long decode (split over warps), prompts of 1000+ tokens', async () => {
    await decodeCase({ B: 2, H: 2, Gq: 1, Gk: 1, T: onCpu ? 300 : 2000, D: 128, L: 4, dtype: 'bfloat16' }, [onCpu ? 300 : 2000, 17], 6);
  });

  // More (batch, head) pairs than a grid's y dimension holds (65535): the FMA kernel (float32) and the
  // tensor-core route (16-bit, T > L, sm_80+) with B * H * L query heads.
  for (const dtype of /** @type {const} */ (['float32', 'bfloat16'])) {
    await check(`rat.forward ${dtype}: B * H = ${onCpu ? 192 : 70400} (past 65535 on the device)`, async () => {
      await forwardCase({ B: onCpu ? 3 : 1100, H: 64, Gq: 1, Gk: 1, T: 3, D: 64, L: 2, dtype });
    });
  }

  /**
   * A copy of `t` with NaN at the given flat [start, end) ranges.
   * @param {Tensor} t @param {[number, number][]} ranges @param {FloatDType} dtype
   */
  async function poisoned(t, ranges, dtype) {
    const h = Float32Array.from(await t.toFloat32());
    for (const [s, e] of ranges) h.fill(NaN, s, e);
    return sparq.tensor(h, t.shape).cast(dtype);
  }
  /** @param {Float32Array} a @param {number} row @param {number} D */
  const rowIsNaN = (a, row, D) => a.subarray(row * D, (row + 1) * D).every(Number.isNaN);

  // NaN reaches exactly the rows that see it, as on the CPU (elementwise NaN parity in `close`):
  // a NaN query in chunk 0 (the self term alone), a NaN chunk-final key that is the only key of
  // the rows of chunk 1 (a key tile whose visible scores are all NaN), and in decode a NaN chunk
  // that is the only chunk one warp of the step kernel reads.
  for (const dtype of DTYPES) {
    await check(`rat ${dtype}: NaN propagation (self term, all-NaN key tile, decode warp)`, async () => {
      const B = 1, H = 2, T = 40, D = 64, L = 4;
      const q = await poisoned(randn([B, 1, T, D], 51, dtype), [[1 * D, 2 * D], [22 * D + 5, 22 * D + 6]], dtype);
      const kt = await poisoned(randn([B, H, T, D], 52, dtype), [[(T + 3) * D, (T + 4) * D]], dtype);  // head 1, t = 3
      const vt = randn([B, H, T, D], 53, dtype);
      const opts = { chunkSize: L, returnLse: /** @type {const} */ (true) };
      const want = sparq.rat.attention(q, kt, vt, opts);
      const got = sparq.rat.attention(q.to(device), kt.to(device), vt.to(device), opts);
      const w = await want.out.toFloat32();
      // The CPU's rows: t = 1 and 22 of both heads, and head 1 from t = 3 on.
      /** @type {[number, boolean][]} */
      const rows = [[1, true], [22, true], [2, false], [T + 2, false], [T + 3, true], [T + 4, true], [T + 39, true]];
      for (const [row, nan] of rows) {
        if (rowIsNaN(w, row, D) !== nan) throw new Error(`cpu row ${row}: NaN expected ${nan}`);
      }
      close(w, await got.out.toFloat32(), TOL[dtype], `${dtype} NaN attention out`);
      close(await want.lse.toFloat32(), await got.lse.toFloat32(), LSE_TOL[dtype], `${dtype} NaN attention lse`);

      // Decode: chunk 1 of the prompt has a NaN key (t = 5), so chunk 1's final key is NaN; at
      // t = 12 the step sees chunks 0..2, one per warp.
      const x = inputs({ B: 1, H: 1, Gq: 1, Gk: 1, T: 12, D, L, dtype });
      const k = await poisoned(x.k, [[5 * D, 6 * D]], dtype);
      const make = (/** @type {import('../../../dist/cjs/index.js').Device} */ dev) =>
        sparq.rat.createCache({ batch: 1, heads: 1, headDim: D, chunkSize: L, maxTokens: 16, device: dev });
      const cpu = make('cpu');
      const dev = make(device);
      close(await cpu.prefill(x.q, k, x.v, x.gate).toFloat32(),
        await dev.prefill(x.q.to(device), k.to(device), x.v.to(device), x.gate.to(device)).toFloat32(), TOL[dtype], `${dtype} NaN prefill`);
      const s = [randn([1, 1, D], 61, dtype), randn([1, 1, D], 62, dtype), randn([1, 1, D], 63, dtype), randn([1, 1, D], 64, dtype)];
      const ws = cpu.step(s[0], s[1], s[2], s[3], { returnLse: true });
      const gs = dev.step(s[0].to(device), s[1].to(device), s[2].to(device), s[3].to(device), { returnLse: true });
      const wo = await ws.out.toFloat32();
      if (!rowIsNaN(wo, 0, D)) throw new Error('cpu step: NaN expected');
      close(wo, await gs.out.toFloat32(), TOL[dtype], `${dtype} NaN step out`);
      close(await ws.lse.toFloat32(), await gs.lse.toFloat32(), LSE_TOL[dtype], `${dtype} NaN step lse`);
      cpu.dispose();
      dev.dispose();
    });
  }

  await check('rat: bad inputs fail before anything runs (unsupported head dim on the device, full cache)', async () => {
    if (!onCpu) {
      const z = sparq.zeros([1, 1, 4, 32], { device });
      const code = errorCode(() => sparq.rat.attention(z, z, z, { chunkSize: 2 }));
      if (code !== 'ERR_SPARQ_UNSUPPORTED') throw new Error(`D = 32 on ${device}: got ${code}`);
      const d = errorCode(() => sparq.rat.forward(z, z, z, sparq.zeros([1, 1, 4, 32]), { chunkSize: 2 }));
      if (d !== 'ERR_SPARQ_DEVICE' && d !== 'ERR_SPARQ_UNSUPPORTED') throw new Error(`mixed devices: got ${d}`);
    }
    const cache = sparq.rat.createCache({ batch: 1, heads: 1, headDim: 64, chunkSize: 4, maxTokens: 1, device });
    const t = sparq.zeros([1, 1, 64], { device });
    await cache.step(t, t, t, t).toFloat32();
    const code = errorCode(() => cache.step(t, t, t, t));
    if (code !== 'ERR_INVALID_ARG_VALUE') throw new Error(`full cache: got ${code}`);
    if (cache.lengths[0] !== 1) throw new Error(`full cache: length ${cache.lengths[0]}`);
  });
}
