// @ts-check
// Parity of dense attention and RoPE: every CUDA op against its CPU twin on the same inputs
// (relative L2 error: float32 1e-5, float16 2e-3, bfloat16 1e-2 for outputs; 1e-5 for LSE), over
// dtypes, head dims 64/128/256, MHA/GQA/MQA, causal and window masks, ragged lengths (0 and 1
// included), key counts that are no multiple of any tile, split-KV decode up to 33K keys, merges
// of 2..33 parts, both RoPE styles, unaligned views (the kernels' non-vector fallbacks), NaN in
// padding that must never be read, data errors and unsupported head dims.

/** @typedef {import('../parity.mjs').Ctx} Ctx */
/** @typedef {'float32' | 'float16' | 'bfloat16'} FloatDType */
/** @typedef {import('../../../dist/cjs/index.js').Tensor} Tensor */
/** @typedef {import('../../../dist/cjs/index.js').Tensor<'int32'>} IntTensor */
/** @typedef {import('../../../dist/cjs/index.js').AttentionState} AttentionState */

/** @type {readonly FloatDType[]} */
const DTYPES = ['float32', 'float16', 'bfloat16'];
const DIMS = [64, 128, 256];
/** @type {Record<FloatDType, number>} */
const TOL = { float32: 1e-5, float16: 2e-3, bfloat16: 1e-2 };
const LSE_TOL = 1e-5;

/**
 * @typedef {{ B: number, Hq: number, Hk: number, Tq: number, Tk: number, D: number, dtype: FloatDType,
 *   causal?: boolean, window?: [number, number], kvLengths?: number[], scale?: number, std?: number,
 *   seed?: number, nanPadding?: boolean, unaligned?: boolean }} SdpaCase
 * @typedef {{ B: number, Hq: number, Hk: number, Tmax: number, D: number, dtype: FloatDType,
 *   lengths: number[], splits?: number, std?: number, seed?: number, nanPadding?: boolean,
 *   unaligned?: boolean, noLse?: boolean }} DecodeCase
 */

/** @param {Ctx} ctx */
export async function run(ctx) {
  const { sparq, device, check, close, errorCode } = ctx;
  const onCpu = device === 'cpu';

  /** @param {number[]} shape @param {number} seed @param {FloatDType} dtype @param {number} [std] */
  const randn = (shape, seed, dtype, std = 1) => sparq.random.normal(shape, { seed, dtype, std });
  /** @param {number[]} shape */
  const prod = (shape) => shape.reduce((a, b) => a * b, 1);

  /**
   * The same values on `device`, starting one element past a 16-byte boundary (a view into a
   * larger buffer), so that the kernels take their unaligned paths.
   * @param {Tensor} t
   */
  async function unalignedOnDevice(t) {
    const vals = await t.toFloat32();
    const flat = new Float32Array(vals.length + 1);
    flat.set(vals, 1);
    return sparq.tensor(flat).cast(t.dtype).to(device).slice(1).reshape([...t.shape]);
  }

  /** @param {Tensor} t @param {boolean | undefined} unaligned */
  async function onDevice(t, unaligned) {
    return unaligned ? unalignedOnDevice(t) : t.to(device);
  }

  /**
   * K or V [B, H, T, D] with NaN in the padding rows t >= lengths[b] when asked.
   * @param {number[]} shape @param {number} seed @param {FloatDType} dtype @param {number} std
   * @param {number[] | undefined} lengths
   */
  function keys(shape, seed, dtype, std, lengths) {
    const t = randn(shape, seed, dtype, std);
    if (!lengths) return t;
    const [B, H, T, D] = shape;
    const vals = /** @type {Float32Array} */ (t.cast('float32').dataSync());
    for (let b = 0; b < B; b++)
      for (let h = 0; h < H; h++)
        for (let j = lengths[b]; j < T; j++) vals.fill(NaN, ((b * H + h) * T + j) * D, ((b * H + h) * T + j + 1) * D);
    return sparq.tensor(vals, shape).cast(dtype);
  }

  /** @param {Record<string, unknown>} c */
  const label = (c) => JSON.stringify(c);

  /** @param {SdpaCase} c */
  async function sdpaCase(c) {
    const { B, Hq, Hk, Tq, Tk, D, dtype } = c;
    const seed = c.seed ?? B * 7 + Tq * 3 + Tk + D;
    const std = c.std ?? 1;
    const pad = c.nanPadding ? c.kvLengths : undefined;
    const q = randn([B, Hq, Tq, D], seed, dtype, std);
    const k = keys([B, Hk, Tk, D], seed + 1, dtype, std, pad);
    const v = keys([B, Hk, Tk, D], seed + 2, dtype, 1, pad);
    const lens = c.kvLengths ? sparq.tensor(Int32Array.from(c.kvLengths), [B], { dtype: 'int32' }) : undefined;
    const opts = { causal: c.causal ?? false, window: c.window, scale: c.scale, returnLse: /** @type {const} */ (true) };
    const want = sparq.attention.sdpa(q, k, v, { ...opts, kvLengths: lens });
    const got = sparq.attention.sdpa(await onDevice(q, c.unaligned), await onDevice(k, c.unaligned), await onDevice(v, c.unaligned),
      { ...opts, kvLengths: lens?.to(device) });
    const what = label(c);
    close(await want.out.toFloat32(), await got.out.toFloat32(), TOL[dtype], `${what} out`);
    close(await want.lse.toFloat32(), await got.lse.toFloat32(), LSE_TOL, `${what} lse`);
  }

  /** @param {DecodeCase} c */
  async function decodeCase(c) {
    const { B, Hq, Hk, Tmax, D, dtype } = c;
    const seed = c.seed ?? B * 5 + Tmax + D + Hq;
    const std = c.std ?? 1;
    const pad = c.nanPadding ? c.lengths : undefined;
    const q = randn([B, Hq, D], seed, dtype, std);
    const k = keys([B, Hk, Tmax, D], seed + 1, dtype, std, pad);
    const v = keys([B, Hk, Tmax, D], seed + 2, dtype, 1, pad);
    const lens = sparq.tensor(Int32Array.from(c.lengths), [B], { dtype: 'int32' });
    const returnLse = !c.noLse;
    const want = sparq.attention.decode(q, k, v, { lengths: lens, returnLse: true });
    const got = sparq.attention.decode(await onDevice(q, c.unaligned), await onDevice(k, c.unaligned), await onDevice(v, c.unaligned),
      { lengths: lens.to(device), returnLse, splits: c.splits });
    const what = label(c);
    if (returnLse) {
      const g = /** @type {{ out: Tensor, lse: Tensor }} */ (/** @type {unknown} */ (got));
      close(await want.out.toFloat32(), await g.out.toFloat32(), TOL[dtype], `${what} out`);
      close(await want.lse.toFloat32(), await g.lse.toFloat32(), LSE_TOL, `${what} lse`);
    } else {
      close(await want.out.toFloat32(), await /** @type {Tensor} */ (/** @type {unknown} */ (got)).toFloat32(), TOL[dtype], `${what} out`);
    }
  }

  /**
   * Expects the op's next read to reject with ERR_INVALID_ARG_VALUE and a message matching `re`,
   * then the stream to work again.
   * @param {() => Tensor} op @param {RegExp} re @param {string} what
   */
  async function expectDataError(op, re, what) {
    const out = op();
    let err = /** @type {any} */ (null);
    try {
      await out.data();
    } catch (e) {
      err = e;
    }
    if (!err) throw new Error(`${what}: the read resolved, expected ERR_INVALID_ARG_VALUE`);
    if (err.code !== 'ERR_INVALID_ARG_VALUE' || !re.test(String(err.message)))
      throw new Error(`${what}: got ${err.code}: ${err.message}`);
    await sparq.synchronize(device);  // reported once, then the stream is clean
    const a = sparq.random.uniform([1000], { seed: 3, low: -5, high: 5 });
    close(await a.cast('float16').toFloat32(), await a.to(device).cast('float16').toFloat32(), 0, `${what}: stream after the error`);
  }

  // ---- sdpa -----------------------------------------------------------------------------------

  for (const dtype of DTYPES) {
    for (const D of DIMS) {
      await check(`attention.sdpa ${dtype} D=${D}: MHA/GQA/MQA, causal, window, ragged lengths`, async () => {
        await sdpaCase({ B: 2, Hq: 4, Hk: 4, Tq: 129, Tk: 129, D, dtype });
        await sdpaCase({ B: 1, Hq: 8, Hk: 2, Tq: 65, Tk: 1000, D, dtype, causal: true });
        await sdpaCase({ B: 2, Hq: 8, Hk: 1, Tq: 1, Tk: onCpu ? 1000 : 4097, D, dtype });
        await sdpaCase({ B: 4, Hq: 4, Hk: 1, Tq: 63, Tk: 127, D, dtype, causal: true, window: [16, 0], kvLengths: [0, 1, 127, 100] });
        await sdpaCase({ B: 3, Hq: 8, Hk: 1, Tq: 20, Tk: 65, D, dtype, causal: true, kvLengths: [65, 7, 30] });
      });
    }
  }

  for (const dtype of DTYPES) {
    await check(`attention.sdpa ${dtype}: key counts 1..4097 around every tile size, causal and not`, async () => {
      for (const Tk of [1, 63, 65, 127, 129, 1000, 4097]) {
        if (onCpu && Tk === 4097) continue;
        const Tq = Tk > 1000 ? 70 : Tk;
        await sdpaCase({ B: 1, Hq: 4, Hk: 2, Tq, Tk, D: 128, dtype });
        await sdpaCase({ B: 1, Hq: 4, Hk: 2, Tq, Tk, D: 64, dtype, causal: true });
      }
    });
    await check(`attention.sdpa ${dtype}: Tq > Tk, GQA heads sharing a tile under masks, windows`, async () => {
      await sdpaCase({ B: 2, Hq: 2, Hk: 1, Tq: 100, Tk: 37, D: 64, dtype, causal: true });
      await sdpaCase({ B: 1, Hq: 8, Hk: 2, Tq: 100, Tk: 300, D: 128, dtype, causal: true });
      await sdpaCase({ B: 1, Hq: 8, Hk: 2, Tq: 20, Tk: 300, D: 64, dtype, causal: true, window: [50, 0] });
      await sdpaCase({ B: 1, Hq: 12, Hk: 4, Tq: 300, Tk: 300, D: 64, dtype });
      await sdpaCase({ B: 1, Hq: 4, Hk: 4, Tq: 200, Tk: 257, D: 128, dtype, window: [-1, 5] });
      await sdpaCase({ B: 1, Hq: 4, Hk: 4, Tq: 200, Tk: 257, D: 128, dtype, window: [7, 7] });
      await sdpaCase({ B: 1, Hq: 2, Hk: 2, Tq: 150, Tk: 150, D: 256, dtype, window: [0, 0] });
      await sdpaCase({ B: 2, Hq: 4, Hk: 1, Tq: 130, Tk: 700, D: 128, dtype, causal: true, window: [64, 0], kvLengths: [700, 129] });
      await sdpaCase({ B: 2, Hq: 4, Hk: 1, Tq: 300, Tk: 600, D: 64, dtype, causal: true, kvLengths: [1, 0] });
    });
    await check(`attention.sdpa ${dtype}: scale, large logits, NaN padding past kvLengths, unaligned views`, async () => {
      await sdpaCase({ B: 1, Hq: 4, Hk: 2, Tq: 50, Tk: 200, D: 128, dtype, scale: 0.3 });
      await sdpaCase({ B: 1, Hq: 4, Hk: 2, Tq: 50, Tk: 200, D: 64, dtype, std: 4, causal: true });
      await sdpaCase({ B: 3, Hq: 4, Hk: 2, Tq: 40, Tk: 300, D: 128, dtype, kvLengths: [300, 77, 0], nanPadding: true });
      await sdpaCase({ B: 3, Hq: 4, Hk: 2, Tq: 40, Tk: 300, D: 64, dtype, causal: true, kvLengths: [250, 77, 1], nanPadding: true });
      await sdpaCase({ B: 2, Hq: 4, Hk: 2, Tq: 33, Tk: 190, D: 128, dtype, causal: true, unaligned: true });
    });
  }

  // ---- decode ---------------------------------------------------------------------------------

  for (const dtype of DTYPES) {
    for (const D of DIMS) {
      await check(`attention.decode ${dtype} D=${D}: GQA, ragged lengths 0/1/full, splits auto/1/3/64`, async () => {
        for (const splits of [undefined, 1, 3, 64]) {
          await decodeCase({ B: 3, Hq: 8, Hk: 2, Tmax: 1000, D, dtype, lengths: [1000, 0, 1], splits });
        }
        await decodeCase({ B: 2, Hq: 4, Hk: 4, Tmax: 129, D, dtype, lengths: [129, 64] });
        await decodeCase({ B: 1, Hq: 16, Hk: 1, Tmax: 333, D, dtype, lengths: [333], noLse: true });
      });
    }
  }

  for (const dtype of DTYPES) {
    await check(`attention.decode ${dtype}: group sizes 1..32 and MQA`, async () => {
      for (const [Hq, Hk] of [[4, 4], [6, 2], [10, 2], [16, 2], [24, 3], [32, 1], [40, 1]]) {
        await decodeCase({ B: 2, Hq, Hk, Tmax: 517, D: 128, dtype, lengths: [517, 260] });
      }
    });
    await check(`attention.decode ${dtype}: 33K keys, splits auto/1/8/1024`, async () => {
      const Tmax = onCpu ? 3000 : 33000;
      for (const splits of [undefined, 1, 8, 1024]) {
        await decodeCase({ B: 2, Hq: 8, Hk: 2, Tmax, D: 128, dtype, lengths: [Tmax, Math.floor(Tmax * 0.6) + 1], splits });
      }
      await decodeCase({ B: 1, Hq: 32, Hk: 8, Tmax, D: 64, dtype, lengths: [Tmax - 5] });
    });
    await check(`attention.decode ${dtype}: large logits, NaN padding past lengths, unaligned views`, async () => {
      await decodeCase({ B: 2, Hq: 8, Hk: 2, Tmax: 700, D: 128, dtype, lengths: [700, 333], std: 4 });
      await decodeCase({ B: 3, Hq: 8, Hk: 2, Tmax: 700, D: 128, dtype, lengths: [600, 17, 0], nanPadding: true, splits: 5 });
      await decodeCase({ B: 3, Hq: 8, Hk: 2, Tmax: 700, D: 64, dtype, lengths: [600, 17, 0], nanPadding: true });
      await decodeCase({ B: 2, Hq: 8, Hk: 2, Tmax: 300, D: 128, dtype, lengths: [300, 100], unaligned: true, splits: 3 });
      await decodeCase({ B: 2, Hq: 4, Hk: 4, Tmax: 300, D: 256, dtype, lengths: [299, 1], unaligned: true });
    });
  }

  // ---- mergeStates ----------------------------------------------------------------------------

  for (const dtype of DTYPES) {
    await check(`attention.mergeStates ${dtype}: 2, 3, 9, 17 and 33 parts, empty parts and rows`, async () => {
      for (const n of [2, 3, 9, 17, 33]) {
        for (const D of [64, 128, 7]) {
          const rowsShape = [3, 5];
          const rows = prod(rowsShape);
          /** @type {AttentionState[]} */
          const parts = [];
          for (let i = 0; i < n; i++) {
            const lse = /** @type {Float32Array} */ (sparq.random.normal([rows], { seed: 100 * n + i, std: 3 }).dataSync());
            if (i === 1) lse.fill(-Infinity);  // a part that saw nothing
            lse[4] = -Infinity;                // a row no part saw
            if (i === n - 1) lse[7] = -Infinity;
            parts.push({ out: randn([...rowsShape, D], 1000 * n + i + D, dtype), lse: sparq.tensor(lse, rowsShape) });
          }
          const want = sparq.attention.mergeStates(parts);
          const got = sparq.attention.mergeStates(parts.map((p) => ({ out: p.out.to(device), lse: p.lse.to(device) })));
          const what = `n=${n} D=${D}`;
          close(await want.out.toFloat32(), await got.out.toFloat32(), TOL[dtype], `${what} out`);
          close(await want.lse.toFloat32(), await got.lse.toFloat32(), LSE_TOL, `${what} lse`);
        }
      }
    });
  }

  await check('attention.mergeStates: merging decode splits equals one decode', async () => {
    // Two halves of a cache merged against the whole, all on the device.
    const dtype = 'float32';
    const [B, Hq, Hk, T, D] = [2, 8, 2, 400, 128];
    const q = randn([B, Hq, D], 1, dtype).to(device);
    const k = randn([B, Hk, T, D], 2, dtype);
    const v = randn([B, Hk, T, D], 3, dtype);
    const kd = k.to(device);
    const vd = v.to(device);
    const whole = sparq.attention.decode(q, kd, vd, { lengths: sparq.tensor(Int32Array.from([T, T]), [B]).to(device), returnLse: true });
    const half = T / 2;
    const lens = sparq.tensor(Int32Array.from([half, half]), [B]).to(device);
    /** @param {Tensor} x */
    const secondHalf = async (x) => {
      const vals = await x.toFloat32();
      const outv = new Float32Array(B * Hk * half * D);
      for (let bh = 0; bh < B * Hk; bh++) outv.set(vals.subarray((bh * T + half) * D, (bh + 1) * T * D), bh * half * D);
      return sparq.tensor(outv, [B, Hk, half, D]).to(device);
    };
    const first = sparq.attention.decode(q, kd, vd, { lengths: lens, returnLse: true });
    const second = sparq.attention.decode(q, await secondHalf(k), await secondHalf(v), { lengths: lens, returnLse: true });
    const merged = sparq.attention.mergeStates([first, second]);
    close(await whole.out.toFloat32(), await merged.out.toFloat32(), 1e-5, 'out');
    close(await whole.lse.toFloat32(), await merged.lse.toFloat32(), 1e-5, 'lse');
  });

  // ---- rope -----------------------------------------------------------------------------------

  for (const dtype of DTYPES) {
    await check(`rope ${dtype}: both styles, positions [T]/[B,T]/offset, rotaryDim < D, odd and wide D`, async () => {
      /** @type {[number, number, number, number, number | undefined][]} B, H, T, D, rotaryDim */
      const shapes = [[2, 3, 17, 64, undefined], [1, 4, 33, 128, 64], [2, 2, 9, 256, 32], [1, 2, 5, 5, 4], [1, 1, 3, 512, undefined]];
      for (const [B, H, T, D, rotaryDim] of shapes) {
        const x = randn([B, H, T, D], B * 31 + T + D, dtype);
        const xd = x.to(device);
        const perT = sparq.tensor(Int32Array.from({ length: T }, (_, t) => (t * 7919) % 100003), [T], { dtype: 'int32' });
        const perBT = sparq.tensor(Int32Array.from({ length: B * T }, (_, i) => i * 131 + (i % 3) * 1000000), [B, T], { dtype: 'int32' });
        for (const style of /** @type {const} */ (['half', 'interleaved'])) {
          /** @type {{ positions?: IntTensor, offset?: number, base?: number }[]} */
          const variants = [{}, { offset: 4096 }, { positions: perT }, { positions: perBT, base: 500000 }];
          for (const o of variants) {
            const want = sparq.rope(x, { ...o, style, rotaryDim });
            const got = sparq.rope(xd, { ...o, positions: o.positions?.to(device), style, rotaryDim });
            const what = `[${B},${H},${T},${D}] r=${rotaryDim ?? D} ${style} ${o.positions ? `positions [${o.positions.shape}]` : `offset ${o.offset ?? 0}`}`;
            close(await want.toFloat32(), await got.toFloat32(), TOL[dtype], what);
          }
        }
      }
      const x = randn([2, 2, 7, 64], 5, dtype);
      close(await sparq.rope(x).toFloat32(), await sparq.rope(await unalignedOnDevice(x)).toFloat32(), TOL[dtype], 'unaligned');
    });
  }

  // ---- errors ---------------------------------------------------------------------------------

  await check('attention data errors: bad kvLengths/lengths/positions reject the next read, then the stream works', async () => {
    const q = randn([2, 2, 4, 64], 1, 'float16').to(device);
    const k = randn([2, 1, 10, 64], 2, 'float16').to(device);
    const lens = (/** @type {number[]} */ l) => sparq.tensor(Int32Array.from(l), [l.length], { dtype: 'int32' }).to(device);
    await expectDataError(() => sparq.attention.sdpa(q, k, k, { kvLengths: lens([3, 11]) }), /length/, 'sdpa kvLengths > Tk');
    await expectDataError(() => sparq.attention.sdpa(q, k, k, { kvLengths: lens([-1, 3]), causal: true }), /length/, 'sdpa kvLengths < 0');
    const qd = randn([2, 2, 64], 3, 'bfloat16').to(device);
    const kc = randn([2, 1, 10, 64], 4, 'bfloat16').to(device);
    await expectDataError(() => sparq.attention.decode(qd, kc, kc, { lengths: lens([10, 11]), splits: 2 }), /length/, 'decode lengths > Tmax');
    await expectDataError(() => sparq.attention.decode(qd.cast('float32'), kc.cast('float32'), kc.cast('float32'), { lengths: lens([-3, 2]) }),
      /length/, 'decode lengths < 0');
    const x = randn([1, 2, 3, 64], 5, 'float32').to(device);
    await expectDataError(() => sparq.rope(x, { positions: lens([0, -1, 2]) }), /position/, 'rope negative position');
  });

  await check('attention: head dims the CUDA kernels lack throw ERR_SPARQ_UNSUPPORTED at once', async () => {
    const wide = randn([1, 1, 2, 300], 1, 'float16').to(device);
    const got = errorCode(() => sparq.attention.sdpa(wide, wide, wide));
    if (got !== 'ERR_SPARQ_UNSUPPORTED') throw new Error(`sdpa D=300 gave ${got}`);
    if (onCpu) return;  // the CPU handles any D <= 256
    for (const D of [96, 32, 80]) {
      const q = randn([1, 2, 3, D], 1, 'float16').to(device);
      const qd = randn([1, 2, D], 1, 'float16').to(device);
      const lens = sparq.tensor(Int32Array.from([3]), [1], { dtype: 'int32' }).to(device);
      const a = errorCode(() => sparq.attention.sdpa(q, q, q));
      const b = errorCode(() => sparq.attention.decode(qd, q, q, { lengths: lens }));
      if (a !== 'ERR_SPARQ_UNSUPPORTED' || b !== 'ERR_SPARQ_UNSUPPORTED') throw new Error(`D=${D}: sdpa ${a}, decode ${b}`);
    }
  });
}
