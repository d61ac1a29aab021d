// @ts-check
// Foundation benchmarks: copies (same device, host<->device) and dtype casts, as GB/s and as % of
// the device's copy bandwidth measured in the same run.
import { sparq } from '../harness.mjs';

/** @typedef {import('../run.mjs').BenchCase} BenchCase */

const CASTS = /** @type {const} */ ([
  ['float32', 'float16'], ['float16', 'float32'], ['float32', 'bfloat16'], ['bfloat16', 'float32'],
  ['float32', 'int8'], ['int32', 'float32'], ['float16', 'bfloat16'],
]);

/**
 * @param {{ device: string, quick: boolean }} ctx
 * @returns {BenchCase[]}
 */
export function cases({ device, quick }) {
  const n = quick ? 1 << 22 : device === 'cpu' ? 1 << 24 : 1 << 26;
  /** @type {BenchCase[]} */
  const out = [];
  for (const [from, to] of CASTS) {
    const bytes = n * (sparq.BYTES_PER_ELEMENT[from] + sparq.BYTES_PER_ELEMENT[to]);
    out.push({
      name: `cast ${from}->${to}`,
      shape: `[${n}]`,
      bytes,
      flops: 0,
      setup: () => sparq.random.uniform([n], { seed: 1, low: -100, high: 100, device: /** @type {any} */ (device) }).cast(from),
      run: (x) => x.cast(to),
      peer: { script: 'core.py', args: { op: 'cast', from, to, n } },
    });
  }
  out.push({
    name: 'random.normal float32',
    shape: `[${n}]`,
    bytes: n * 4,
    flops: 0,
    setup: () => null,
    run: () => sparq.random.normal([n], { seed: 3, device: /** @type {any} */ (device) }),
    peer: { script: 'core.py', args: { op: 'normal', n } },
  });
  out.push({
    name: 'zeros float32',
    shape: `[${n}]`,
    bytes: n * 4,
    flops: 0,
    setup: () => null,
    run: () => sparq.zeros([n], { device: /** @type {any} */ (device) }),
    peer: { script: 'core.py', args: { op: 'zeros', n } },
  });
  // Round trips: what a decode loop pays per step to learn that the device is done, or to read one
  // number back (e.g. a sampled token); promises settle when the work is done.
  const dev = /** @type {any} */ (device);
  out.push({
    name: 'round trip: synchronize',
    shape: 'empty queue',
    bytes: 0,
    flops: 0,
    setup: () => null,
    run: () => sparq.synchronize(dev),
    clock: 'settled',
    runs: 201,
    peer: { script: 'roundtrip.py', args: { op: 'sync' } },
  });
  out.push({
    name: 'round trip: read one float32',
    shape: '[1] float32, data()',
    bytes: 4,
    flops: 0,
    setup: () => sparq.zeros([1], { device: dev }),
    run: (x) => x.data(),
    clock: 'settled',
    runs: 201,
    peer: { script: 'roundtrip.py', args: { op: 'item' } },
  });
  if (device !== 'cpu') {
    out.push({
      name: 'copy host->device',
      shape: `[${n}] float32`,
      bytes: n * 4,
      flops: 0,
      setup: () => sparq.zeros([n]),
      run: (x) => x.to(/** @type {any} */ (device)),
      clock: 'wall',
    });
    out.push({
      name: 'copy device->host',
      shape: `[${n}] float32`,
      bytes: n * 4,
      flops: 0,
      setup: () => sparq.zeros([n], { device: /** @type {any} */ (device) }),
      run: (x) => x.to('cpu'),
      clock: 'wall',
    });
  }
  return out;
}
