/**
 * Internal hooks for sparq's own benchmarks and tests: not part of the stable API.
 */
import type { NativeAddon } from '../types/native.js';
import { native } from './native.js';
import { queued } from './stream.js';

export const internal = {
  /** The loaded addon. */
  native(): NativeAddon {
    return native();
  },
  /** Queues a CPU op that sleeps `ms` milliseconds. */
  sleep(ms: number): void {
    queued(internal.sleep, () => native().debugSleep('internal.sleep', ms));
  },
  /** Queues a CPU op that fails with `message` when it runs. */
  fail(message: string): void {
    queued(internal.fail, () => native().debugFail('internal.fail', message));
  },
};
