/**
 * Finds and loads the native addon, once, on first use:
 *   1. SPARQ_BINARY: the path of one .node file (nothing else is tried);
 *   2. a local build: build/Release/sparq.node;
 *   3. a prebuild: prebuilds/<platform>-<arch>/sparq.<variant>.node, the CUDA variant first when the
 *      NVIDIA driver is new enough for it, else the CPU variant (SPARQ_VARIANT=cpu|cuda13 forces one).
 * A failure throws one ERR_SPARQ_LOAD error listing every attempt and the likely fixes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import type { NativeAddon } from '../types/native.js';
import { SparqError } from './errors.js';

export type Variant = 'cpu' | 'cuda13' | 'local' | 'custom';

/** Minimum NVIDIA driver (major version) for each CUDA variant we ship. */
const DRIVER_FOR_VARIANT: Record<'cuda13', number> = { cuda13: 580 };

export interface LoadAttempt {
  path: string;
  variant: Variant;
  error?: string;
}

export interface Loaded {
  addon: NativeAddon;
  path: string;
  variant: Variant;
  attempts: LoadAttempt[];
}

let loaded: Loaded | undefined;

/** The package root: the nearest folder above this file whose package.json names "sparq". */
export function packageRoot(): string {
  let dir = __dirname;
  for (;;) {
    const pj = path.join(dir, 'package.json');
    if (fs.existsSync(pj)) {
      try {
        if (JSON.parse(fs.readFileSync(pj, 'utf8')).name === 'sparq') return dir;
      } catch {
        // not ours: keep walking
      }
    }
    const up = path.dirname(dir);
    if (up === dir) return path.resolve(__dirname, '..');
    dir = up;
  }
}

/** The NVIDIA kernel driver's major version, or null when no driver is loaded. */
export function nvidiaDriverMajor(): number | null {
  try {
    const text = fs.readFileSync('/proc/driver/nvidia/version', 'utf8');
    const m = /Kernel Module(?:\s+for\s+\S+)?\s+(\d+)\.\d+/.exec(text) ?? /\s(\d{3,})\.\d+\.?\d*\s/.exec(text);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

function candidates(root: string): { list: LoadAttempt[]; exclusive: boolean } {
  const custom = process.env.SPARQ_BINARY;
  if (custom) return { list: [{ path: path.resolve(custom), variant: 'custom' }], exclusive: true };
  const dir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
  const prebuild = (v: 'cpu' | 'cuda13'): LoadAttempt => ({ path: path.join(dir, `sparq.${v}.node`), variant: v });
  const forced = process.env.SPARQ_VARIANT;
  if (forced) {
    if (forced !== 'cpu' && forced !== 'cuda13') {
      throw new SparqError('ERR_SPARQ_LOAD', `SPARQ_VARIANT must be 'cpu' or 'cuda13', got '${forced}'`);
    }
    return { list: [prebuild(forced)], exclusive: true };
  }
  const driver = nvidiaDriverMajor();
  const cudaFirst = driver !== null && driver >= DRIVER_FOR_VARIANT.cuda13;
  const local: LoadAttempt = { path: path.join(root, 'build', 'Release', 'sparq.node'), variant: 'local' };
  return { list: [local, ...(cudaFirst ? [prebuild('cuda13'), prebuild('cpu')] : [prebuild('cpu'), prebuild('cuda13')])], exclusive: false };
}

function advice(attempts: LoadAttempt[]): string[] {
  const errors = attempts.map((a) => a.error ?? '').join('\n');
  const tips: string[] = [];
  if (/GLIBC_|GLIBCXX_|CXXABI_/.test(errors)) {
    tips.push('The prebuilt binary needs a newer glibc/libstdc++ than this system has: build from source (npm rebuild sparq).');
  }
  if (/ERR_DLOPEN_DISABLED/.test(errors)) tips.push('This Node.js cannot load native addons (a Snap or sandboxed build?): use a Node.js from nodejs.org or your distribution.');
  if (/wrong ELF class|invalid ELF header|cannot open shared object/.test(errors)) {
    tips.push(`The binary was built for another platform; this one is ${process.platform}-${process.arch}: npm rebuild sparq.`);
  }
  tips.push('Build from source: npm rebuild sparq (needs CMake >= 3.18 and a C++17 compiler; nvcc on PATH adds the CUDA backend).');
  tips.push('Without CMake, a CPU-only build: cd node_modules/sparq && npx node-gyp rebuild.');
  tips.push('If you set SPARQ_BINARY or SPARQ_VARIANT, check the value or unset it.');
  return tips;
}

/** Loads the addon (first call) and returns it with where it came from. */
export function load(): Loaded {
  if (loaded) return loaded;
  const root = packageRoot();
  const { list, exclusive } = candidates(root);
  const attempts: LoadAttempt[] = [];
  for (const c of list) {
    if (!fs.existsSync(c.path)) {
      attempts.push({ ...c, error: 'not found' });
      if (exclusive) break;
      continue;
    }
    try {
      const addon = require(c.path) as NativeAddon;
      addon.setErrorClass(SparqError as unknown as new (code: string, message: string) => Error);
      attempts.push(c);
      loaded = { addon, path: c.path, variant: c.variant, attempts };
      return loaded;
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      attempts.push({ ...c, error: `${err.code ? err.code + ': ' : ''}${err.message}` });
      if (exclusive) break;
    }
  }
  const lines = [
    `Could not load the sparq native addon for ${process.platform}-${process.arch} (Node.js ${process.version}).`,
    'Tried:',
    ...attempts.map((a) => `  - ${a.path} (${a.variant}): ${a.error}`),
    'Possible solutions:',
    ...advice(attempts).map((t) => `  - ${t}`),
  ];
  const err = new SparqError('ERR_SPARQ_LOAD', lines.join('\n'));
  (err as SparqError & { attempts: LoadAttempt[] }).attempts = attempts;
  throw err;
}

/** The loaded addon (loads it on first use). */
export function native(): NativeAddon {
  return (loaded ?? load()).addon;
}
