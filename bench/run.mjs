// @ts-check
// npm run bench [family ...] [--quick] [--device cpu|cuda|all] [--out DIR] [--tag NAME] [--no-peers]
//   [--jsonl FILE]: also append each case's result to FILE as it finishes (kept if the run is cut short)
// Runs each family's cases on each device, with the device's copy bandwidth measured in the same
// run, PyTorch/NumPy peers where installed, and writes JSON + Markdown + SVG under bench/results/.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import { copyBandwidth, sparq, time, timeWall } from './harness.mjs';
import { runPeer } from './peers.mjs';
import { writeReport } from './report.mjs';

/**
 * @typedef {{
 *   name: string, shape: string, bytes: number, flops: number,
 *   setup: () => any, run: (input: any) => unknown,
 *   clock?: 'device' | 'wall' | 'settled', runs?: number,
 *   peer?: { script: string, args: Record<string, unknown> },
 * }} BenchCase
 * @typedef {{ label: string, medianMs: number, gbps: number, gflops: number } | { skipped: string }} PeerResult
 * @typedef {{
 *   family: string, name: string, device: string, shape: string, clock: string,
 *   bytes: number, flops: number, medianMs: number, minMs: number, maxMs: number, runs: number,
 *   gbps: number, gflops: number, pctOfCopy: number, peers: Record<string, PeerResult>,
 * }} CaseResult
 */

const here = path.dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const flag = (/** @type {string} */ f) => argv.includes(f);
const option = (/** @type {string} */ o) => {
  const i = argv.indexOf(o);
  return i >= 0 ? argv[i + 1] : undefined;
};
const quick = flag('--quick');
const outDir = option('--out') ?? path.join(here, 'results');
const deviceOpt = option('--device') ?? 'all';
const optionValues = new Set([option('--out'), option('--device'), option('--tag'), option('--jsonl')]);
const jsonl = option('--jsonl');
const families = argv.filter((a) => !a.startsWith('--') && !optionValues.has(a));
const available = fs.readdirSync(path.join(here, 'families')).filter((f) => f.endsWith('.mjs')).map((f) => f.slice(0, -4));
const chosen = families.length ? families : available;
for (const f of chosen) {
  if (!available.includes(f)) {
    console.error(`unknown family '${f}'; available: ${available.join(', ')}`);
    process.exit(2);
  }
}

const info = sparq.info();
const devices = deviceOpt === 'all' ? ['cpu', ...(info.cuda.available ? ['cuda:0'] : [])]
  : deviceOpt === 'cuda' ? ['cuda:0'] : [deviceOpt];
if (devices.some((d) => d !== 'cpu') && !info.cuda.available) {
  console.error(`CUDA is unavailable: ${info.cuda.unavailableReason}`);
  process.exit(2);
}

/** @type {CaseResult[]} */
const results = [];
/** @type {Record<string, { gbps: number, medianMs: number, bytes: number }>} */
const limits = {};
for (const device of devices) {
  limits[device] = await copyBandwidth(device, quick ? 64 << 20 : 256 << 20);
  console.log(`${device}: copy bandwidth ${limits[device].gbps.toFixed(1)} GB/s (clone of ${limits[device].bytes / 2 / 2 ** 20} MiB, read + write)`);
  for (const family of chosen) {
    const mod = await import(path.join(here, 'families', `${family}.mjs`));
    for (const c of /** @type {BenchCase[]} */ (mod.cases({ device, quick }))) {
      const input = c.setup();
      const clock = c.clock ?? 'device';
      const t = clock === 'device' ? await time(device, () => c.run(input), { runs: c.runs })
        : await timeWall(() => c.run(input), { settled: clock === 'settled', runs: c.runs });
      if (input && typeof input.dispose === 'function') input.dispose();
      const gbps = c.bytes / (t.medianMs * 1e6);
      /** @type {Record<string, PeerResult>} */
      const peers = {};
      if (c.peer && !flag('--no-peers')) {
        for (const [peerName, r] of Object.entries(await runPeer(c.peer.script, { ...c.peer.args, device }))) {
          peers[peerName] = 'skipped' in r ? r : { label: r.label, medianMs: r.medianMs, gbps: c.bytes / (r.medianMs * 1e6), gflops: c.flops / (r.medianMs * 1e6) };
        }
      }
      const res = {
        family, name: c.name, device, shape: c.shape, clock, bytes: c.bytes, flops: c.flops, ...t,
        gbps, gflops: c.flops / (t.medianMs * 1e6), pctOfCopy: (100 * gbps) / limits[device].gbps, peers,
      };
      results.push(res);
      if (jsonl) fs.appendFileSync(jsonl, JSON.stringify(res) + '\n');
      // Cases with more FLOPs than bytes are compute-bound: report GFLOP/s for them.
      const rate = (/** @type {number} */ ms) => (c.flops > c.bytes ? `${(c.flops / (ms * 1e6)).toFixed(1)} GFLOP/s` : `${(c.bytes / (ms * 1e6)).toFixed(1)} GB/s`);
      const peerText = Object.entries(peers).map(([k, v]) => ('skipped' in v ? `${k}: skipped` : `${v.label} ${rate(v.medianMs)} (sparq ${(v.medianMs / t.medianMs).toFixed(2)}x)`)).join(', ');
      console.log(`  ${family} | ${c.name} | ${t.medianMs.toFixed(3)} ms | ${rate(t.medianMs)} | ${res.pctOfCopy.toFixed(0)}% of copy${peerText ? ` | ${peerText}` : ''}`);
    }
  }
}

const cpuModel = os.cpus()[0]?.model ?? 'unknown CPU';
const meta = {
  date: new Date().toISOString(),
  host: os.hostname(),
  cpu: `${cpuModel} (${os.cpus().length} logical cores visible)`,
  node: process.version,
  sparq: info.version,
  binary: `${info.variant} (${path.basename(info.binary)})`,
  threads: info.build.cpu.threads,
  cpuPaths: `f32<->f16 cast: ${info.build.cpu.castF16Path}; features: ${Object.entries(info.build.cpu.features).filter(([, v]) => v).map(([k]) => k).join(' ')}`,
  gpu: info.cuda.available ? info.cuda.devices.map((d) => `${d.name} (sm_${d.computeCapability.join('')})`).join(', ') : `none (${info.cuda.unavailableReason})`,
  cudaRuntime: info.cuda.runtimeVersion,
  cudaDriver: info.cuda.driverVersion,
  quick,
};
const files = writeReport(outDir, { meta, limits, results }, option('--tag'));
console.log(`wrote ${files.join(', ')}`);
