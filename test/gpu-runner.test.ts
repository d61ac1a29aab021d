// The GPU parity runner must itself be sound before it meets a GPU: run it CPU against CPU.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { expect, it } from 'vitest';

it('test/gpu/parity.mjs --device cpu: every comparison passes', () => {
  const root = path.resolve(__dirname, '..');
  const r = spawnSync(process.execPath, [path.join(root, 'test', 'gpu', 'parity.mjs'), '--device', 'cpu'], { encoding: 'utf8' });
  expect(r.stdout).toMatch(/^\d+ passed, 0 failed/m);
  expect(Number(/^(\d+) passed/m.exec(r.stdout)?.[1])).toBeGreaterThanOrEqual(20);
  expect(r.status).toBe(0);
}, 120_000);
