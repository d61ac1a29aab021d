// The RAT hybrid example (examples/rat-hybrid.mjs) runs against dist/ with a few tokens, and its
// --check (one prefill of the whole sequence against the step-by-step logits) passes.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';

import { describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '..');
const built = existsSync(path.join(root, 'dist/cjs/index.js'));

describe('examples/rat-hybrid.mjs', () => {
  it.skipIf(!built)('generates tokens step by step and matches its own prefill (skipped without dist/: run npm run build:ts)', () => {
    const out = execFileSync(process.execPath, ['examples/rat-hybrid.mjs', '--tokens', '6', '--prompt', '11', '--check'],
      { cwd: root, encoding: 'utf8', env: process.env, timeout: 60_000 });
    expect(out).toMatch(/6 tokens generated at [\d.]+ ms\/token/);
    const ids = /tokens: ([\d ]+)/.exec(out)?.[1].trim().split(' ').map(Number) ?? [];
    expect(ids).toHaveLength(6);
    expect(ids.every((id) => Number.isInteger(id) && id >= 0 && id < 256)).toBe(true);
    expect(out).toMatch(/check: .*: ok/);
  });
});
