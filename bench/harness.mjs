// @ts-check
// Timing on the device's own clock: each run is queued behind a gate between two stream markers
// (CUDA events on a GPU, worker-thread timestamps on the CPU), then released, so the device never
// waits for JavaScript and enqueue overhead stays out of the numbers.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
/** @type {typeof import('../dist/cjs/index.js')} */
export const sparq = require('../dist/cjs/index.js');

/**
 * @typedef {{ medianMs: number, minMs: number, maxMs: number, runs: number }} Timing
 */

/** @param {number[]} xs */
export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Times `op` on `device`: `warmup` untimed runs, then `runs` timed ones. Each run is queued behind
 * a gate between two markers, released, and awaited; its output is disposed before the next run, so
 * runs see the steady state of a loop (memory reused from sparq's caches, as in a decode loop).
 * `op` queues one run and returns what it allocated.
 * @param {string} device
 * @param {() => unknown} op
 * @param {{ warmup?: number, runs?: number }} [opts]
 * @returns {Promise<Timing>}
 */
export async function time(device, op, opts = {}) {
  const n = sparq.internal.native();
  const warmup = opts.warmup ?? 3;
  const runs = opts.runs ?? 15;
  const dev = /** @type {any} */ (device);
  for (let i = 0; i < warmup; i++) dispose(op());
  await sparq.synchronize(dev);
  const ms = [];
  for (let i = 0; i < runs; i++) {
    const release = n.hold('bench.hold', device);
    let start, end;
    try {
      start = n.marker('bench.marker', device);
      dispose(op());
      end = n.marker('bench.marker', device);
    } finally {
      release();
    }
    await sparq.synchronize(dev);
    ms.push(n.elapsed('bench.elapsed', start, end));
  }
  return { medianMs: median(ms), minMs: Math.min(...ms), maxMs: Math.max(...ms), runs };
}

/**
 * Times `op` by the wall clock, each run awaited to completion on every device. For transfers,
 * whose work spans two streams (and threads), and which are long enough for JavaScript's
 * overhead not to matter. `settled`: the op's promise settles only once its work is done (as a
 * user sees it), so no stream round trip is added after it.
 * @param {() => unknown} op
 * @param {{ warmup?: number, runs?: number, settled?: boolean }} [opts]
 * @returns {Promise<Timing>}
 */
export async function timeWall(op, opts = {}) {
  const warmup = opts.warmup ?? 2;
  const runs = opts.runs ?? 9;
  const ms = [];
  for (let i = 0; i < warmup + runs; i++) {
    await sparq.synchronize();
    const t0 = performance.now();
    const out = await op(); // an async op (e.g. sparse.matmul) is timed until its promise settles
    if (!opts.settled) await sparq.synchronize();
    if (i >= warmup) ms.push(performance.now() - t0);
    dispose(out);
  }
  return { medianMs: median(ms), minMs: Math.min(...ms), maxMs: Math.max(...ms), runs };
}

/** @param {unknown} x */
function dispose(x) {
  if (Array.isArray(x)) x.forEach(dispose);
  else if (x && typeof (/** @type {any} */ (x).dispose) === 'function') /** @type {any} */ (x).dispose();
}

/**
 * The device's copy bandwidth measured now: a same-device clone of `bytes` (read + write).
 * @param {string} device
 * @param {number} bytes
 * @returns {Promise<{ gbps: number, medianMs: number, bytes: number }>}
 */
export async function copyBandwidth(device, bytes) {
  const t = sparq.empty([bytes / 4], { dtype: 'float32', device: /** @type {any} */ (device) });
  const r = await time(device, () => t.clone(), { warmup: 3, runs: 21 });
  t.dispose();
  return { gbps: (2 * bytes) / (r.medianMs * 1e6), medianMs: r.medianMs, bytes: 2 * bytes };
}
