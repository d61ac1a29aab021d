// @ts-check
// Parity of the foundation ops: round trips, casts, random streams, fills, views, stream order,
// lifetimes, errors and memory accounting.

/** @typedef {import('../parity.mjs').Ctx} Ctx */

/**
 * Inputs with random values plus the special ones every conversion must get right.
 * @param {Ctx['sparq']} sparq @param {number} n @param {number} seed
 */
function mixedFloat32(sparq, n, seed) {
  const x = /** @type {Float32Array} */ (sparq.random.normal([n], { seed, std: 1000 }).dataSync());
  const special = [0, -0, NaN, Infinity, -Infinity, 65504, 65520, 2 ** -24, 2 ** -25, 3e38, -3e38, 1e-40, 127.5, -128.5, 2 ** 31, 4294967296];
  for (let i = 0; i < special.length && i < n; i++) x[(i * 7919) % n] = special[i];
  return x;
}

/** @param {Ctx} ctx */
export async function run({ sparq, device, check, sameBits, errorCode }) {
  const SIZES = [0, 1, 3, 8, 1000, 65537, (1 << 22) + 5];

  for (const dtype of sparq.DTYPES) {
    await check(`round trip ${dtype} cpu -> ${device} -> cpu, sizes ${SIZES.join('/')}`, async () => {
      for (const n of SIZES) {
        const src = sparq.random.uniform([n], { seed: n, low: -300, high: 300 }).cast(dtype);
        const there = src.to(device);
        sameBits(/** @type {any} */ (await src.data()), /** @type {any} */ (await there.to('cpu').data()), `n=${n}`);
        sameBits(/** @type {any} */ (await src.data()), /** @type {any} */ (await there.data()), `data() n=${n}`);
        sameBits(/** @type {any} */ (await src.data()), /** @type {any} */ (there.dataSync()), `dataSync() n=${n}`);
        sameBits(/** @type {any} */ (await src.data()), /** @type {any} */ (await there.clone().data()), `clone n=${n}`);
      }
    });
  }

  for (const from of sparq.DTYPES) {
    await check(`cast ${from} -> every dtype`, async () => {
      const base = mixedFloat32(sparq, (1 << 20) + 3, 17);
      const cpu = sparq.tensor(base).cast(from);
      const dev = cpu.to(device);
      for (const to of sparq.DTYPES) {
        sameBits(/** @type {any} */ (await cpu.cast(to).data()), /** @type {any} */ (await dev.cast(to).data()), `${from} -> ${to}`);
      }
    });
  }

  await check('cast of views at odd offsets (the unvectorised kernel) -> every dtype', async () => {
    const cpu = sparq.tensor(mixedFloat32(sparq, 4099, 5));
    const dev = cpu.to(device);
    for (const [lo, hi] of [[1, 4098], [3, 4096], [5, 6]]) {
      for (const to of sparq.DTYPES) {
        sameBits(/** @type {any} */ (await cpu.slice(lo, hi).cast(to).data()), /** @type {any} */ (await dev.slice(lo, hi).cast(to).data()),
          `[${lo}, ${hi}) -> ${to}`);
      }
    }
  });

  await check('cast float64 (values float32 cannot hold) -> every dtype', async () => {
    const n = (1 << 20) + 3;
    const vals = new Float64Array(n);
    for (let i = 0; i < n; i++) vals[i] = (i % 2 ? -1 : 1) * (1 + i * 2 ** -40) * 2 ** ((i % 200) - 100) * (i % 97 === 0 ? 1e200 : 1);
    const cpu = sparq.tensor(vals, { dtype: 'float64' });
    const dev = cpu.to(device);
    for (const to of sparq.DTYPES) {
      sameBits(/** @type {any} */ (await cpu.cast(to).data()), /** @type {any} */ (await dev.cast(to).data()), `float64 -> ${to}`);
    }
  });

  for (const dtype of /** @type {const} */ (['float32', 'float16', 'bfloat16'])) {
    await check(`random.normal/uniform ${dtype} identical bits`, async () => {
      for (const n of [1, 5, 4099, (1 << 22) + 1]) {
        for (const seed of [0, 1, 2 ** 53 - 1]) {
          const a = await sparq.random.normal([n], { seed, dtype, mean: 0.5, std: 3 }).data();
          const b = await sparq.random.normal([n], { seed, dtype, mean: 0.5, std: 3, device }).data();
          sameBits(/** @type {any} */ (a), /** @type {any} */ (b), `normal n=${n} seed=${seed}`);
          const c = await sparq.random.uniform([n], { seed, dtype, low: -2, high: 7 }).data();
          const d = await sparq.random.uniform([n], { seed, dtype, low: -2, high: 7, device }).data();
          sameBits(/** @type {any} */ (c), /** @type {any} */ (d), `uniform n=${n} seed=${seed}`);
        }
      }
    });
  }

  await check('full/zeros/ones for every dtype', async () => {
    for (const dtype of sparq.DTYPES) {
      const v = dtype === 'int64' ? -(2n ** 40n) : -3.25;
      sameBits(/** @type {any} */ (await sparq.full([1001], v, { dtype }).data()), /** @type {any} */ (await sparq.full([1001], v, { dtype, device }).data()), `full ${dtype}`);
      sameBits(/** @type {any} */ (await sparq.ones([7], { dtype }).data()), /** @type {any} */ (await sparq.ones([7], { dtype, device }).data()), `ones ${dtype}`);
    }
  });

  await check('views: reshape and slice before and after moving', async () => {
    const x = sparq.random.normal([6, 5, 4], { seed: 9 });
    const want = /** @type {Float32Array} */ (await x.slice(2, 5).reshape([3, 20]).data());
    const d = x.to(device);
    sameBits(want, /** @type {any} */ (await d.slice(2, 5).reshape([3, 20]).to('cpu').data()), 'slice then move');
    sameBits(want, /** @type {any} */ (await d.slice(2, 5).reshape([3, 20]).cast('float32').data()), 'slice on device');
  });

  await check('stream order across devices (cpu op -> device op -> cpu op)', async () => {
    const a = sparq.random.uniform([1 << 20], { seed: 5, low: -1000, high: 1000 });
    const viaDevice = a.cast('bfloat16').to(device).cast('float16').cast('int32').to('cpu').cast('float32');
    const onCpu = a.cast('bfloat16').cast('float16').cast('int32').cast('float32');
    sameBits(/** @type {any} */ (await onCpu.data()), /** @type {any} */ (await viaDevice.data()), 'chain');
  });

  await check('disposing inputs while their ops are queued', async () => {
    const outs = [];
    for (let i = 0; i < 50; i++) {
      const t = sparq.random.normal([1 << 16], { seed: i, device });
      outs.push(t.cast('float16'));
      t.dispose();
    }
    for (let i = 0; i < 50; i++) {
      sameBits(/** @type {any} */ (await sparq.random.normal([1 << 16], { seed: i, dtype: 'float16' }).data()), /** @type {any} */ (await outs[i].data()), `i=${i}`);
    }
  });

  await check('errors: device memory exhaustion is a catchable ERR_SPARQ_OOM; bad index is ERR_SPARQ_DEVICE', async () => {
    if (device === 'cpu') return;
    const oom = errorCode(() => sparq.empty([2 ** 40], { device }));
    if (oom !== 'ERR_SPARQ_OOM') throw new Error(`empty([2^40]) gave ${oom}`);
    const bad = errorCode(() => sparq.zeros([1], { device: 'cuda:99' }));
    if (bad !== 'ERR_SPARQ_DEVICE') throw new Error(`cuda:99 gave ${bad}`);
    // The device still works after the failed allocation.
    sameBits(/** @type {any} */ (await sparq.ones([3]).data()), /** @type {any} */ (await sparq.ones([3], { device }).data()), 'after OOM');
  });

  await check('memory() and emptyCache()', async () => {
    const before = sparq.memory(device).bytes;
    const t = sparq.zeros([1 << 20], { device });
    await sparq.synchronize(device);
    const during = sparq.memory(device).bytes;
    if (during - before < 4 << 20) throw new Error(`memory grew by ${during - before} bytes, expected >= 4 MiB`);
    t.dispose();
    await sparq.synchronize(device);
    sparq.emptyCache(device);
  });
}
