// @ts-check
// Runs a peer script (bench/peers/*.py) under each Python that exists here and takes, per library,
// the first interpreter that has it. Debian's /usr/bin/python3 is tried first: PyTorch CPU comes
// from Debian's python3-torch and only that interpreter sees it. A library that no interpreter has
// is reported as skipped, with the reason.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

/** @returns {string[]} */
function interpreters() {
  const seen = new Set();
  const out = [];
  for (const p of ['/usr/bin/python3', 'python3']) {
    const r = spawnSync(p, ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' });
    if (r.status !== 0) continue;
    const exe = fs.realpathSync(r.stdout.trim());
    if (!seen.has(exe)) {
      seen.add(exe);
      out.push(p);
    }
  }
  return out;
}
let cached;

/**
 * @param {string} script
 * @param {Record<string, unknown>} args
 * @returns {Promise<Record<string, { label: string, medianMs: number } | { skipped: string }>>}
 */
export async function runPeer(script, args) {
  cached ??= interpreters();
  if (cached.length === 0) return { python: { skipped: 'no python3 found' } };
  /** @type {Record<string, { label: string, medianMs: number } | { skipped: string }>} */
  const merged = {};
  for (const py of cached) {
    const r = spawnSync(py, [path.join(here, 'peers', script), JSON.stringify(args)], { encoding: 'utf8', timeout: 600_000 });
    if (r.status !== 0) {
      const why = `${py} failed: ${(r.stderr || String(r.error)).trim().split('\n').slice(-1)[0]}`;
      for (const k of Object.keys(merged)) if ('skipped' in merged[k]) merged[k] = { skipped: why };
      continue;
    }
    const res = JSON.parse(r.stdout.trim().split('\n').slice(-1)[0]);
    for (const [lib, v] of Object.entries(res)) {
      if (!merged[lib] || ('skipped' in merged[lib] && !('skipped' in /** @type {object} */ (v)))) merged[lib] = /** @type {any} */ (v);
    }
    if (Object.values(merged).every((v) => !('skipped' in v))) break;
  }
  return merged;
}
