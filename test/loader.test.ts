// Loading the addon: the search order, one ERR_SPARQ_LOAD listing every attempt, info(), doctor,
// and the package's ESM and CommonJS entry points. Each case runs in a fresh node process against
// the built dist/ (npm test builds it first).
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { info } from '../lib/index.js';

const root = path.resolve(__dirname, '..');
const cjs = path.join(root, 'dist', 'cjs', 'index.js');

function node(args: string[], env: Record<string, string | undefined> = {}): { out: string; err: string; status: number | null } {
  const e: NodeJS.ProcessEnv = { ...process.env, ...env };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete e[k];
  const r = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8', env: e });
  return { out: r.stdout, err: r.stderr, status: r.status };
}

const tryOp = `const s = require(${JSON.stringify(cjs)});
try { s.zeros([1]); console.log('loaded'); } catch (e) { console.log(e.code); console.log(e.message); }`;

describe('loader', () => {
  it('loads the local build by default and reports it in info()', () => {
    const i = info();
    expect(['local', 'custom', 'cpu', 'cuda13']).toContain(i.variant);
    expect(i.binary).toMatch(/\.node$/);
    expect(i.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(i.build.version).toBe(i.version);
    expect(i.build.cpu.threads).toBeGreaterThan(0);
    expect(typeof i.cuda.available).toBe('boolean');
    if (!i.cuda.available) expect(i.cuda.unavailableReason).toBeTruthy();
  });

  it('importing does not load the addon; the first use does, and a failure lists every attempt', () => {
    const r = node(['-e', tryOp], { SPARQ_BINARY: '/nonexistent/sparq.node' });
    const [code, ...msg] = r.out.trim().split('\n');
    expect(code).toBe('ERR_SPARQ_LOAD');
    const text = msg.join('\n');
    expect(text).toMatch(/Could not load the sparq native addon for linux-x64/);
    expect(text).toMatch(/\/nonexistent\/sparq\.node \(custom\): not found/);
    expect(text).toMatch(/Possible solutions:/);
    expect(text).toMatch(/npm rebuild sparq/);
  });

  it('a file that is not an addon gives its loader error in the list', () => {
    const r = node(['-e', tryOp], { SPARQ_BINARY: path.join(root, 'package.json') });
    expect(r.out).toMatch(/ERR_SPARQ_LOAD/);
    expect(r.out).toMatch(/package\.json \(custom\): /);
    expect(r.out).not.toMatch(/not found/);
  });

  it('SPARQ_VARIANT picks a prebuild variant, and only that one', () => {
    const bad = node(['-e', tryOp], { SPARQ_BINARY: undefined, SPARQ_VARIANT: 'cuda11' });
    expect(bad.out).toMatch(/SPARQ_VARIANT must be 'cpu' or 'cuda13', got 'cuda11'/);
    const forced = node(['-e', tryOp], { SPARQ_BINARY: undefined, SPARQ_VARIANT: 'cpu' });
    // Either the cpu prebuild exists and loads, or the error names exactly that file.
    expect(forced.out).toMatch(/loaded|prebuilds\/linux-x64\/sparq\.cpu\.node \(cpu\)/);
    expect(forced.out).not.toMatch(/build\/Release/);
  });
});

describe('entry points and CLI', () => {
  it('require() and import both work and share one implementation', () => {
    const r = node(['--input-type=module', '-e', `
      import * as esm from ${JSON.stringify(path.join(root, 'dist', 'esm', 'index.mjs'))};
      import def from ${JSON.stringify(path.join(root, 'dist', 'esm', 'index.mjs'))};
      import { createRequire } from 'node:module';
      const cjs = createRequire(import.meta.url)(${JSON.stringify(cjs)});
      const t = esm.tensor([1, 2, 3], { dtype: 'int32' });
      console.log(t instanceof cjs.Tensor, def.tensor === cjs.tensor, Array.from(await t.data()).join(','));`]);
    expect(r.err).toBe('');
    expect(r.out.trim()).toBe('true true 1,2,3');
  });

  it('npx sparq doctor prints a report and says what CUDA is doing', () => {
    const r = node([path.join(root, 'bin', 'sparq.js'), 'doctor']);
    expect(r.status).toBe(0);
    expect(r.out).toMatch(/^sparq doctor/);
    expect(r.out).toMatch(/binary\s+\S+\.node/);
    expect(r.out).toMatch(/cpu\s+\d+ threads/);
    expect(r.out).toMatch(/cuda(:0|\s+unavailable: .+)/);
    expect(r.out).toMatch(/advice: /);
  });

  it('doctor exits 1 with the load report when the addon cannot load', () => {
    const r = node([path.join(root, 'bin', 'sparq.js'), 'doctor'], { SPARQ_BINARY: '/nonexistent.node' });
    expect(r.status).toBe(1);
    expect(r.out).toMatch(/Could not load the sparq native addon/);
  });

  it('sparq info prints JSON; unknown commands exit 2', () => {
    const r = node([path.join(root, 'bin', 'sparq.js'), 'info']);
    expect(JSON.parse(r.out).build.cpu.threads).toBeGreaterThan(0);
    expect(node([path.join(root, 'bin', 'sparq.js'), 'bogus']).status).toBe(2);
  });
});
