/**
 * Ties failures inside queued work back to the JavaScript that queued it. Ops return before their
 * work runs; when queued work fails, the next read or synchronize on that stream rejects, and the
 * error's stack is the one captured when the failing op was called (sharp's pattern).
 */
import { SparqError } from './errors.js';
import { native } from './native.js';

interface Site {
  stack?: string;
}

/**
 * Capturing a stack costs about 5 us per queued CPU op; SPARQ_ASYNC_STACKS=0 skips it (errors from
 * queued work then carry the stack of the read that reported them).
 */
const captureStacks = process.env.SPARQ_ASYNC_STACKS !== '0';

/** CPU stream position -> where the op at that position was called. */
const sites = new Map<number, Site>();
let untilPrune = 64;

/** Drops the sites of ops that finished without failing. */
function prune(): void {
  const [, completed, failed] = native().cpuStreamState();
  for (const seq of sites.keys()) {
    if (seq > completed) break; // Map order is insertion order, i.e. increasing seq
    if (seq !== failed) sites.delete(seq);
  }
}

/**
 * Runs `enqueue` (a native op call) and remembers the call site of every CPU task it queued.
 * `caller` is the public function, so the stack starts at the user's code.
 */
export function queued<T>(caller: Function, enqueue: () => T): T {
  if (!captureStacks) return enqueue();
  const n = native();
  const before = n.cpuLastSeq();
  const out = enqueue();
  const after = n.cpuLastSeq();
  if (after !== before) {
    const site: Site = {};
    Error.captureStackTrace(site, caller);
    for (let seq = before + 1; seq <= after; seq++) sites.set(seq, site);
    if (--untilPrune <= 0) {
      untilPrune = 64;
      prune();
    }
  }
  return out;
}

/** Gives an error from queued work the stack of the call that queued the failing op. */
export function withSite(e: unknown): unknown {
  if (e instanceof SparqError && typeof e.seq === 'number') {
    const site = sites.get(e.seq);
    sites.delete(e.seq);
    if (site?.stack) {
      const frames = site.stack.split('\n').slice(1).join('\n');
      e.stack = `${e.name} [${e.code}]: ${e.message}\n${frames}`;
    }
  }
  return e;
}

/** Awaits a native promise, rethrowing failures with their enqueue-time stack. */
export async function settle<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (e) {
    throw withSite(e);
  }
}

/** Runs a synchronous native read, rethrowing failures with their enqueue-time stack. */
export function settleSync<T>(read: () => T): T {
  try {
    return read();
  } catch (e) {
    throw withSite(e);
  }
}
