// @ts-check
// GPU parity runner: compares every CUDA op with its CPU twin on fresh random inputs, bit for bit
// where the contract says so. Needs only node, the built addon and dist/ (no node_modules):
//   node test/gpu/parity.mjs [--device cuda:N] [--out FILE.json] [--only NAME]
// The comparisons live in test/gpu/cases/<family>.mjs; each exports run(ctx) (see Ctx below).
// `--device cpu` runs the same comparisons CPU against CPU (a self-test of this runner, used by
// test/gpu-runner.test.ts). Prints "N passed, N failed"; exits 1 on a failure, 2 without CUDA.
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const require = createRequire(import.meta.url);
/** @type {typeof import('../../dist/cjs/index.js')} */
const sparq = require('../../dist/cjs/index.js');

const argv = process.argv.slice(2);
const opt = (/** @type {string} */ o) => (argv.includes(o) ? argv[argv.indexOf(o) + 1] : undefined);
const device = /** @type {import('../../dist/cjs/index.js').Device} */ (opt('--device') ?? 'cuda:0');
if (device !== 'cpu' && !sparq.cuda.available()) {
  console.log(`CUDA unavailable: ${sparq.cuda.unavailableReason()}`);
  console.log('0 passed, 0 failed');
  process.exit(2);
}

/** @type {{ name: string, ok: boolean, ms: number, error?: string }[]} */
const results = [];
/** @param {string} name @param {() => Promise<void> | void} fn */
async function check(name, fn) {
  const t0 = performance.now();
  try {
    await fn();
    results.push({ name, ok: true, ms: performance.now() - t0 });
  } catch (e) {
    const err = /** @type {Error} */ (e);
    results.push({ name, ok: false, ms: performance.now() - t0, error: err.stack ?? String(e) });
    console.log(`FAIL ${name}\n  ${String(err.message).split('\n').join('\n  ')}`);
  }
}

/**
 * Throws unless a and b hold the same bits.
 * @param {ArrayLike<number | bigint>} a @param {ArrayLike<number | bigint>} b @param {string} what
 */
function sameBits(a, b, what) {
  if (a.length !== b.length) throw new Error(`${what}: length ${a.length} vs ${b.length}`);
  /** @param {ArrayLike<number | bigint>} x */
  const bitsOf = (x) => x instanceof Float32Array ? new Uint32Array(x.buffer, x.byteOffset, x.length)
    : x instanceof Float64Array ? new BigUint64Array(x.buffer, x.byteOffset, x.length) : x;
  const fa = bitsOf(a);
  const fb = bitsOf(b);
  let bad = 0;
  let first = -1;
  for (let i = 0; i < fa.length; i++) {
    if (fa[i] !== fb[i]) {
      bad++;
      if (first < 0) first = i;
    }
  }
  if (bad) throw new Error(`${what}: ${bad} of ${a.length} elements differ; first at ${first}: cpu ${String(fa[first])}, ${device} ${String(fb[first])}`);
}

/**
 * Throws unless the relative L2 error of `got` against `want` is at most `tol`.
 * @param {ArrayLike<number>} want @param {ArrayLike<number>} got @param {number} tol @param {string} what
 */
function close(want, got, tol, what) {
  if (want.length !== got.length) throw new Error(`${what}: length ${want.length} vs ${got.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < want.length; i++) {
    if (Number.isNaN(want[i]) !== Number.isNaN(got[i])) throw new Error(`${what}: NaN mismatch at ${i}`);
    if (Number.isNaN(want[i])) continue;
    if (!Number.isFinite(want[i]) || !Number.isFinite(got[i])) {
      if (want[i] !== got[i]) throw new Error(`${what}: ${want[i]} vs ${got[i]} at ${i}`);
      continue;
    }
    num += (want[i] - got[i]) ** 2;
    den += want[i] ** 2;
  }
  const rel = Math.sqrt(num / Math.max(den, 1e-300));
  if (!(rel <= tol)) throw new Error(`${what}: relative L2 error ${rel.toExponential(2)} > ${tol}`);
}

/**
 * The code of the error f() throws, or 'no error'.
 * @param {() => unknown} f
 */
function errorCode(f) {
  try {
    f();
  } catch (e) {
    return /** @type {{ code?: string }} */ (e).code;
  }
  return 'no error';
}

/**
 * @typedef {{ sparq: typeof sparq, device: import('../../dist/cjs/index.js').Device, check: typeof check,
 *   sameBits: typeof sameBits, close: typeof close, errorCode: typeof errorCode }} Ctx
 */
const started = performance.now();
const info = sparq.info();
console.log(`sparq ${info.version} (${info.variant}: ${info.binary})`);
console.log(`device ${device}: ${device === 'cpu' ? 'self-test' : info.cuda.devices.map((d) => `${d.name} sm_${d.computeCapability.join('')}`).join(', ')}; CUDA runtime ${info.cuda.runtimeVersion}, driver ${info.cuda.driverVersion}`);
const casesDir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'cases');
const only = opt('--only');
for (const file of fs.readdirSync(casesDir).filter((f) => f.endsWith('.mjs')).sort()) {
  if (only && file !== `${only}.mjs`) continue;
  const mod = await import(pathToFileURL(path.join(casesDir, file)).href);
  await mod.run(/** @type {Ctx} */ ({ sparq, device, check, sameBits, close, errorCode }));
}

const passed = results.filter((r) => r.ok).length;
const failed = results.length - passed;
console.log(`${passed} passed, ${failed} failed (${((performance.now() - started) / 1000).toFixed(1)} s)`);
const out = opt('--out');
if (out) fs.writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), device, info, results }, null, 2) + '\n');
process.exit(failed ? 1 : 0);
