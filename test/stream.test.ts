// The execution model: ops return at once, run in order on their device's stream, failures inside
// queued work reject the next read with the stack of the call that queued them, and the event loop
// keeps running while a long CPU op executes.
import { describe, expect, it } from 'vitest';

import { SparqError, type Tensor, internal, random, synchronize, tensor, zeros } from '../lib/index.js';

describe('stream order', () => {
  it('a chain of queued ops reads back its final value', async () => {
    let t: Tensor = tensor(Float32Array.from({ length: 1000 }, (_, i) => i - 500.25));
    const chain = [t];
    for (let i = 0; i < 20; i++) {
      t = t.cast(i % 2 ? 'float32' : 'bfloat16').cast(i % 3 ? 'float16' : 'float32');
      chain.push(t);
    }
    for (const c of chain.slice(0, -1)) c.dispose(); // disposing inputs of queued ops is safe
    const got = await t.toFloat32();
    // The result must equal running the same conversions one at a time, each read back in between.
    let ref: Tensor = tensor(Float32Array.from({ length: 1000 }, (_, i) => i - 500.25));
    for (let i = 0; i < 20; i++) {
      ref = tensor(await ref.cast(i % 2 ? 'float32' : 'bfloat16').toFloat32());
      ref = tensor(await ref.cast(i % 3 ? 'float16' : 'float32').toFloat32());
    }
    expect(got).toEqual(await ref.toFloat32());
  });

  it('reads issued out of order each see the ops queued before them', async () => {
    const a = zeros([4]);
    const b = a.cast('int32');
    const pa = a.data();
    const pb = b.data();
    expect(Array.from(await pb)).toEqual([0, 0, 0, 0]);
    expect(Array.from(await pa)).toEqual([0, 0, 0, 0]);
  });

  it('synchronize resolves once everything queued has run', async () => {
    internal.sleep(50);
    const t = random.normal([1000], { seed: 1 });
    const start = Date.now();
    await synchronize('cpu');
    expect(Date.now() - start).toBeGreaterThanOrEqual(40);
    expect(t.dataSync().length).toBe(1000);
  });

  it('dataSync blocks until the value is ready', () => {
    internal.sleep(30);
    const t = zeros([3]).cast('uint8');
    const start = Date.now();
    expect(Array.from(t.dataSync())).toEqual([0, 0, 0]);
    expect(Date.now() - start).toBeGreaterThanOrEqual(20);
  });
});

describe('failures inside queued work', () => {
  function queueBadOp(): void {
    internal.fail('row 7 holds an index out of range'); // this line is the one the stack must show
  }

  it('reject the next read with the code, the op and the caller stack captured at enqueue time', async () => {
    queueBadOp();
    const t = zeros([2]);
    const err = await t.data().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SparqError);
    const e = err as SparqError;
    expect(e.code).toBe('ERR_INVALID_ARG_VALUE');
    expect(e.message).toMatch(/row 7 holds an index out of range/);
    expect(e.message).toMatch(/queued op 'debugFail' failed after it was enqueued/);
    expect(e.op).toBe('debugFail');
    expect(e.stack).toMatch(/queueBadOp/);
    expect(e.stack).toMatch(/stream\.test\.ts/);
    // Reported once: the stream is usable again.
    expect(Array.from(await t.toFloat32())).toEqual([0, 0]);
  });

  it('reject synchronize() and dataSync() too, and count later failures', async () => {
    internal.fail('first');
    internal.fail('second');
    internal.fail('third');
    await expect(synchronize('cpu')).rejects.toThrow(/first .*2 later op\(s\) failed too/);
    await synchronize('cpu');
    internal.fail('sync path');
    expect(() => zeros([1]).dataSync()).toThrow(/sync path/);
  });
});

describe('liveness', () => {
  it('the event loop keeps running while a long CPU op executes', async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    const t0 = Date.now();
    internal.sleep(400); // returns at once: the op runs on the CPU stream's worker
    const enqueueMs = Date.now() - t0;
    const x = zeros([1 << 20]).cast('float16');
    const pending = x.data();
    await pending;
    clearInterval(timer);
    expect(enqueueMs).toBeLessThan(50);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(390);
    expect(ticks).toBeGreaterThanOrEqual(20); // ~40 expected; a blocked loop would give 0 or 1
  });

  it('exiting right after a read resolves never aborts (worker threads outliving the environment)', async () => {
    // Regression: the worker thread used to drop the last reference to the result queue after
    // Node had torn the environment down, releasing a destroyed thread-safe function (SIGABRT in
    // about 1 run of 4 on a loaded machine). A busy sibling process recreates that load.
    const { spawn, spawnSync } = await import('node:child_process');
    const hog = spawn(process.execPath, ['-e', 'const end = Date.now() + 20000; while (Date.now() < end);']);
    const code = `const s = require(${JSON.stringify(require.resolve('../dist/cjs/index.js'))});
      (async () => { const x = s.random.normal([1 << 16], { seed: 1 });
        for (let i = 0; i < 50; i++) { x.cast('float16'); await s.synchronize('cpu'); } })();`;
    const failures: string[] = [];
    try {
      for (let i = 0; i < 16; i++) {
        const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8' });
        if (r.status !== 0) failures.push(`run ${i}: status ${r.status}, signal ${r.signal}`);
      }
    } finally {
      hog.kill();
    }
    expect(failures).toEqual([]);
  }, 60_000);

  it('a pending read keeps the process alive until it resolves', async () => {
    const { spawnSync } = await import('node:child_process');
    const code = `const s = require(${JSON.stringify(require.resolve('../dist/cjs/index.js'))});
      s.internal.sleep(200); s.zeros([3]).data().then((d) => console.log('resolved', d.length));`;
    const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', env: { ...process.env } });
    expect(r.stdout.trim()).toBe('resolved 3');
    expect(r.status).toBe(0);
  });
});
