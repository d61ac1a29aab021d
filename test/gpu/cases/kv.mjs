// @ts-check
// Parity of KIVI KV-cache quantization: CUDA against its CPU twin on the same inputs. Codes,
// scales, mins and dequantized values must be bit-identical (kivi_math.h is shared and unfused);
// the cache's pages and live tail slots after a ragged prefill plus streaming appends must be
// bit-identical; fused attend within the relative L2 error of the dtype (1e-4 float32, 2e-3
// float16, 1e-2 bfloat16; LSE 1e-4) over head dims 64/128/256, GQA 1/4/8/16, bits 2/4/8, group
// sizes 16/32/64, residuals 0/32/128, ragged lengths with 0, forced and automatic splits; lengths
// that do not fit the cache are a data error that leaves the cache unchanged. Also: group sizes
// that are not a multiple of the attend tile (48), G = 4 (8-bit) and G = D = 256, head dims 96/192
// (a partial second output dim per thread), GQA 3/12 (a partial last head chunk), zero-range and
// round-half-even ties, NaN/Inf inputs (codes exact, NaN payloads free: the GPU makes its own NaNs),
// zero-size tensors, and data errors from calls that launch no work block (n = 0, Hq = 0).

/** @typedef {import('../parity.mjs').Ctx} Ctx */
/** @typedef {'float32' | 'float16' | 'bfloat16'} FloatDType */
/** @typedef {import('../../../dist/cjs/index.js').Tensor} Tensor */
/** @typedef {import('../../../dist/cjs/index.js').KiviCache} KiviCache */

/** @type {readonly FloatDType[]} */
const DTYPES = ['float32', 'float16', 'bfloat16'];
/** @type {Record<FloatDType, number>} */
const TOL = { float32: 1e-4, float16: 2e-3, bfloat16: 1e-2 };
const LSE_TOL = 1e-4;

/** @param {Ctx} ctx */
export async function run(ctx) {
  const { sparq, device, check, sameBits, close, errorCode } = ctx;
  const { kv } = sparq;

  /** @param {number[]} shape @param {number} seed @param {FloatDType} dtype @param {number} [std] */
  const randn = (shape, seed, dtype, std = 1) => sparq.random.normal(shape, { seed, dtype, std });

  /** @param {Tensor} t */
  const f32 = (t) => t.toFloat32();

  /** Same bits, except that any NaN matches any NaN. @param {Float32Array} a @param {Float32Array} b @param {string} what */
  const sameBitsOrNaN = (a, b, what) => {
    const nan = (/** @type {Float32Array} */ x) => Float32Array.from(x, (v) => (Number.isNaN(v) ? NaN : v));
    sameBits(nan(a), nan(b), what);
  };

  for (const dtype of DTYPES)
    for (const bits of /** @type {const} */ ([2, 4, 8]))
      for (const axis of /** @type {const} */ (['channel', 'token'])) {
        await check(`kv.quantize ${dtype} ${bits}-bit ${axis}: codes, scale, min, dequantized bit-identical`, async () => {
          const qmax = 2 ** bits - 1;
          // An exact scale of 1 (min 0, max qmax) with half-integer values: round-half-even ties.
          const tie = (/** @type {number} */ i) => (i === 0 ? 0 : i === 1 ? qmax : ((i * 7) % (2 * qmax)) * 0.5);
          for (const [T, D, G] of [[64, 128, 32], [128, 64, 64], [32, 256, 16], [48, 192, 48], [16, 512, 128], [0, 64, 32]]) {
            if ((G * bits) % 32 !== 0 || (axis === 'channel' && (D > 256 || T % G !== 0))) continue;
            const vals = await f32(randn([3, T, D], T + D + bits, dtype, 2));
            vals.fill(0.5, 0, Math.min(D, vals.length)); // zero-range groups (axis 'token')
            for (let t = 0; t < Math.min(G, T); t++) {
              vals[(T + t) * D + 1] = -1.25; // a zero-range group (axis 'channel')
              vals[(2 * T + t) * D + D - 1] = tie(t); // ties (axis 'channel')
            }
            for (let i = 0; i < G && T > 0; i++) vals[(2 * T + T - 1) * D + i] = tie(i); // ties (axis 'token')
            const x = sparq.tensor(vals, [3, T, D]).cast(dtype);
            const want = kv.quantize(x, { bits, axis, groupSize: G });
            const got = kv.quantize(x.to(device), { bits, axis, groupSize: G });
            const what = `T=${T} D=${D} G=${G}`;
            sameBits(await want.codes.data(), await got.codes.data(), `${what} codes`);
            sameBits(await f32(want.scale), await f32(got.scale), `${what} scale`);
            sameBits(await f32(want.min), await f32(got.min), `${what} min`);
            sameBits(await f32(kv.dequantize(want)), await f32(kv.dequantize(got)), `${what} dequantized`);
          }
        });
      }

  for (const dtype of DTYPES)
    await check(`kv.quantize ${dtype}: NaN and +-Inf inputs give the same codes (scale, min, dequantized up to NaN payloads)`, async () => {
      const [T, D] = [32, 64];
      const vals = await f32(randn([2, T, D], 77, dtype));
      vals[3 * D + 5] = NaN; // inside a group
      vals[16 * D + 32] = NaN; // the first element of a group (both axes with G = 16)
      vals[T * D + 17 * D + 40] = NaN;
      vals[7 * D + 9] = Infinity;
      vals[T * D] = -Infinity;
      vals[T * D + 20 * D + 3] = Infinity;
      vals[T * D + 21 * D + 3] = -Infinity;
      const x = sparq.tensor(vals, [2, T, D]).cast(dtype);
      for (const bits of /** @type {const} */ ([2, 4, 8]))
        for (const axis of /** @type {const} */ (['channel', 'token'])) {
          const opts = { bits, axis, groupSize: 16 };
          const want = kv.quantize(x, opts);
          const got = kv.quantize(x.to(device), opts);
          const what = `${bits}-bit ${axis}`;
          sameBits(await want.codes.data(), await got.codes.data(), `${what} codes`);
          const host = (/** @type {Tensor} */ t) => f32(t.to('cpu')); // widen on the CPU for both
          sameBitsOrNaN(await host(want.scale), await host(got.scale), `${what} scale`);
          sameBitsOrNaN(await host(want.min), await host(got.min), `${what} min`);
          sameBitsOrNaN(await host(kv.dequantize(want)), await host(kv.dequantize(got)), `${what} dequantized`);
        }
    });

  /**
   * @param {{ B: number, Hk: number, gqa: number, D: number, G: number, R: number, keyBits: 2 | 4 | 8, valueBits: 2 | 4 | 8,
   *   dtype: FloatDType, lengths: number[], appends: number, splits?: number, chunk?: number }} c
   * chunk: tokens per append (default 1, 1, 6, 1, 1, 6, ...).
   */
  async function cacheCase(c) {
    const T = Math.max(...c.lengths, 1);
    const maxTokens = T + c.appends * (c.chunk ?? 6);
    /** @param {import('../../../dist/cjs/index.js').Device} dev */
    const make = (dev) => kv.createCache({ format: 'kivi', keyBits: c.keyBits, valueBits: c.valueBits, groupSize: c.G, residual: c.R,
      batch: c.B, kvHeads: c.Hk, headDim: c.D, maxTokens, dtype: c.dtype, device: dev });
    const cpu = make('cpu'), dev = make(device);
    const k = randn([c.B, c.Hk, T, c.D], T + 1, c.dtype, 1.5), v = randn([c.B, c.Hk, T, c.D], T + 2, c.dtype);
    cpu.prefill(k, v, c.lengths);
    dev.prefill(k.to(device), v.to(device), c.lengths);
    for (let i = 0; i < c.appends; i++) {
      const n = c.chunk ?? 1 + (i % 3 === 2 ? 5 : 0);
      if (cpu.lengths.some((L) => L + n > maxTokens)) break;
      const k1 = randn([c.B, c.Hk, n, c.D], 100 + i, c.dtype), v1 = randn([c.B, c.Hk, n, c.D], 200 + i, c.dtype);
      cpu.append(k1, v1);
      dev.append(k1.to(device), v1.to(device));
    }
    const a = cpu.state(), b = dev.state();
    sameBits(await a.lengths.data(), await b.lengths.data(), 'lengths');
    for (const key of /** @type {const} */ (['kCodes', 'vCodes'])) sameBits(await a[key].data(), await b[key].data(), key);
    for (const key of /** @type {const} */ (['kScale', 'kMin', 'vScale', 'vMin'])) sameBits(await f32(a[key]), await f32(b[key]), key);
    const C = c.R + c.G;
    for (const key of /** @type {const} */ (['kTail', 'vTail'])) {
      const x = await f32(a[key]), y = await f32(b[key]);
      const live = (/** @type {Float32Array} */ t) => {
        /** @type {number[]} */
        const out = [];
        cpu.lengths.forEach((L, bi) => {
          for (let h = 0; h < c.Hk; h++)
            for (let tok = cpu.quantizedTokens(L); tok < L; tok++) {
              const o = ((bi * c.Hk + h) * C + (tok % C)) * c.D;
              out.push(...t.subarray(o, o + c.D));
            }
        });
        return Float32Array.from(out);
      };
      sameBits(live(x), live(y), `${key} live slots`);
    }
    const q = randn([c.B, c.Hk * c.gqa, c.D], 7, c.dtype, 1.5);
    const want = cpu.attend(q, { returnLse: true, splits: c.splits });
    const got = dev.attend(q.to(device), { returnLse: true, splits: c.splits });
    close(await f32(want.out), await f32(got.out), TOL[c.dtype], 'attend out');
    close(await f32(want.lse), await f32(got.lse), LSE_TOL, 'attend lse');
    cpu.dispose();
    dev.dispose();
  }

  for (const dtype of DTYPES)
    for (const D of [64, 128, 256])
      await check(`KiviCache ${dtype} D=${D}: prefill + appends bit-identical, attend GQA 1/4/8/16, ragged lengths`, async () => {
        for (const gqa of [1, 4, 8, 16])
          await cacheCase({ B: 3, Hk: 2, gqa, D, G: 32, R: 128, keyBits: 2, valueBits: 2, dtype, lengths: [700, 0, 161], appends: 7 });
      });

  await check('KiviCache: bits 4/8, G = 16/64, R = 0/32, forced splits 1/3/64, every tail length', async () => {
    await cacheCase({ B: 2, Hk: 1, gqa: 4, D: 128, G: 64, R: 32, keyBits: 4, valueBits: 8, dtype: 'float16', lengths: [1000, 95], appends: 4, splits: 3 });
    await cacheCase({ B: 2, Hk: 2, gqa: 2, D: 64, G: 16, R: 0, keyBits: 2, valueBits: 4, dtype: 'bfloat16', lengths: [513, 17], appends: 3, splits: 64 });
    await cacheCase({ B: 1, Hk: 4, gqa: 8, D: 128, G: 32, R: 128, keyBits: 4, valueBits: 4, dtype: 'float16', lengths: [4096], appends: 2, splits: 1 });
    const lengths = Array.from({ length: 48 }, (_, tail) => (tail >= 32 ? 3 * 16 + tail : tail));
    await cacheCase({ B: 48, Hk: 1, gqa: 2, D: 64, G: 16, R: 32, keyBits: 2, valueBits: 2, dtype: 'float32', lengths, appends: 0 });
  });

  await check('KiviCache: G = 48 (not a multiple of the attend tile), G = 4, G = D = 256, D = 96/192, GQA 3/12', async () => {
    // D = 192: attend tile 16, G = 48 = 3 tiles, the second output dim of half the threads; GQA 12 = chunks of 8 + 4 heads.
    await cacheCase({ B: 4, Hk: 2, gqa: 12, D: 192, G: 48, R: 48, keyBits: 2, valueBits: 4, dtype: 'float16', lengths: [300, 47, 96, 1], appends: 5 });
    // D = 96: attend tile 32, G = 48 = 32 + 16 tokens; 8-bit keys; GQA 3; R = 0.
    await cacheCase({ B: 3, Hk: 2, gqa: 3, D: 96, G: 48, R: 0, keyBits: 8, valueBits: 2, dtype: 'bfloat16', lengths: [200, 48, 0], appends: 4, splits: 2 });
    // One value group per token and 16 attend tiles per page.
    await cacheCase({ B: 2, Hk: 1, gqa: 2, D: 256, G: 256, R: 0, keyBits: 4, valueBits: 4, dtype: 'float32', lengths: [600, 255], appends: 2 });
    // Appends longer than the tail (R + G - 1 = 31) onto non-empty tails: several pages per append, each mixing
    // tail and input tokens, and only the last R + G - 1 new tokens kept.
    await cacheCase({ B: 3, Hk: 2, gqa: 2, D: 64, G: 16, R: 16, keyBits: 2, valueBits: 2, dtype: 'float16', lengths: [40, 7, 0], appends: 3, chunk: 45 });
    // The smallest groups: one code word per key channel and per 4 value channels.
    await cacheCase({ B: 2, Hk: 3, gqa: 1, D: 64, G: 4, R: 8, keyBits: 8, valueBits: 8, dtype: 'float16', lengths: [37, 3], appends: 6, splits: 5 });
  });

  await check('KiviCache: a long cache (32K tokens, split-KV merge) matches', async () => {
    await cacheCase({ B: 1, Hk: 2, gqa: 4, D: 128, G: 32, R: 128, keyBits: 2, valueBits: 2, dtype: 'float16', lengths: [32768], appends: 0 });
  });

  await check('kvAppend / kvAttend with lengths that do not fit the cache: a data error, the cache unchanged', async () => {
    const cache = kv.createCache({ format: 'kivi', keyBits: 2, valueBits: 2, groupSize: 32, residual: 32, batch: 2, kvHeads: 1, headDim: 64,
      maxTokens: 100, dtype: 'float16', device });
    const k = randn([2, 1, 70, 64], 4, 'float16').to(device);
    cache.prefill(k, k);
    const q = randn([2, 2, 64], 5, 'float16').to(device);
    const before = await f32(cache.attend(q));
    const s = cache.state();
    const state = [s.kCodes, s.kScale, s.kMin, s.vCodes, s.vScale, s.vMin, s.kTail, s.vTail].map((t) => t._handle);
    const bad = sparq.tensor(Int32Array.from([70, 5000]), [2]).to(device);
    const n = sparq.internal.native();
    n.kvAppend('kv.append', state, 2, 2, 32, 32, bad._handle, k._handle, k._handle, null);
    const code = await sparq.synchronize(device).then(() => 'no error', (e) => e.code);
    if (code !== 'ERR_INVALID_ARG_VALUE') throw new Error(`bad lengths: ${code}`);
    n.kvAttend('kv.attend', state, 2, 2, 32, 32, bad._handle, q._handle, undefined, false, 0);
    const code2 = await sparq.synchronize(device).then(() => 'no error', (e) => e.code);
    if (code2 !== 'ERR_INVALID_ARG_VALUE') throw new Error(`attend with bad lengths: ${code2}`);
    sameBits(before, await f32(cache.attend(q)), 'attend after the failed ops');
    cache.dispose();
  });

  await check('kvAppend with n = 0 and kvAttend with Hq = 0 still report lengths that do not fit the cache', async () => {
    const cache = kv.createCache({ format: 'kivi', keyBits: 2, valueBits: 2, groupSize: 32, residual: 32, batch: 2, kvHeads: 1, headDim: 64,
      maxTokens: 100, dtype: 'float16', device });
    const k = randn([2, 1, 70, 64], 4, 'float16').to(device);
    cache.prefill(k, k, [70, 40]);
    const q = randn([2, 2, 64], 5, 'float16').to(device);
    const before = await f32(cache.attend(q));
    const s = cache.state();
    const state = [s.kCodes, s.kScale, s.kMin, s.vCodes, s.vScale, s.vMin, s.kTail, s.vTail].map((t) => t._handle);
    const n = sparq.internal.native();
    const empty = sparq.zeros([2, 1, 0, 64], { dtype: 'float16', device });
    const lengths = (/** @type {number[]} */ l) => sparq.tensor(Int32Array.from(l), [2]).to(device);
    /** @param {string} what @param {() => void} f */
    const expectDataError = async (what, f) => {
      f();
      const code = await sparq.synchronize(device).then(() => 'no error', (e) => e.code);
      if (code !== 'ERR_INVALID_ARG_VALUE') throw new Error(`${what}: ${code}`);
    };
    const bad = lengths([70, 5000]);
    await expectDataError('append n = 0, bad length', () =>
      n.kvAppend('kv.append', state, 2, 2, 32, 32, bad._handle, empty._handle, empty._handle, null));
    await expectDataError('append n = 0, count 1 > n', () =>
      n.kvAppend('kv.append', state, 2, 2, 32, 32, lengths([70, 40])._handle, empty._handle, empty._handle, lengths([0, 1])._handle));
    await expectDataError('attend Hq = 0, bad length', () =>
      n.kvAttend('kv.attend', state, 2, 2, 32, 32, bad._handle, sparq.zeros([2, 0, 64], { dtype: 'float16', device })._handle, undefined, false, 0));
    sameBits(before, await f32(cache.attend(q)), 'attend after the failed ops');
    cache.dispose();
  });

  await check('KiviCache: append past maxTokens fails and the device cache is unchanged', async () => {
    const cache = kv.createCache({ format: 'kivi', keyBits: 2, valueBits: 2, groupSize: 32, residual: 32, batch: 1, kvHeads: 1, headDim: 64,
      maxTokens: 70, dtype: 'float16', device });
    const k = randn([1, 1, 70, 64], 1, 'float16').to(device);
    cache.prefill(k, k, [65]);
    const q = randn([1, 2, 64], 2, 'float16').to(device);
    const before = await f32(cache.attend(q));
    const extra = randn([1, 1, 6, 64], 3, 'float16').to(device);
    const code = errorCode(() => cache.append(extra, extra));
    if (code !== 'ERR_INVALID_ARG_VALUE') throw new Error(`append past maxTokens: ${code}`);
    sameBits(before, await f32(cache.attend(q)), 'attend after the failed append');
    cache.dispose();
  });
}
