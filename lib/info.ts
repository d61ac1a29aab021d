/** What sparq loaded and what it sees: `sparq.info()` and the `npx sparq doctor` report. */
import * as fs from 'node:fs';
import * as path from 'node:path';

import type { NativeBuildInfo } from '../types/native.js';
import type { CudaDevice } from './device.js';
import { type LoadAttempt, type Variant, load, nvidiaDriverMajor, packageRoot } from './native.js';

export interface SparqInfo {
  /** The package's version. */
  version: string;
  /** Which binary was loaded: a prebuild variant, a local build or SPARQ_BINARY. */
  variant: Variant;
  binary: string;
  loadAttempts: LoadAttempt[];
  build: NativeBuildInfo;
  cuda: {
    /** The binary contains the CUDA backend. */
    compiled: boolean;
    /** A CUDA device can be used now. */
    available: boolean;
    /** Why it cannot (no driver, no device, CPU-only build); null when available. */
    unavailableReason: string | null;
    /** e.g. '13.0'; null for a CPU-only binary. */
    runtimeVersion: string | null;
    /** The CUDA version the driver supports, e.g. '13.0'; null without a driver. */
    driverVersion: string | null;
    /** The NVIDIA kernel driver's major version (e.g. 580), from /proc; null without one. */
    kernelDriver: number | null;
    devices: CudaDevice[];
  };
}

function cudaVersion(v: number): string | null {
  return v > 0 ? `${Math.floor(v / 1000)}.${Math.floor((v % 1000) / 10)}` : null;
}

export function info(): SparqInfo {
  const l = load();
  const c = l.addon.cudaInfo();
  const pj = JSON.parse(fs.readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')) as { version: string };
  return {
    version: pj.version,
    variant: l.variant,
    binary: l.path,
    loadAttempts: l.attempts,
    build: l.addon.buildInfo(),
    cuda: {
      compiled: c.compiled,
      available: c.unavailable === null,
      unavailableReason: c.unavailable,
      runtimeVersion: cudaVersion(c.runtimeVersion),
      driverVersion: cudaVersion(c.driverVersion),
      kernelDriver: nvidiaDriverMajor(),
      devices: c.devices,
    },
  };
}

/** A human-readable report with advice; what `npx sparq doctor` prints. */
export function doctorReport(): string {
  const out: string[] = [];
  const add = (k: string, v: string): void => void out.push(`  ${k.padEnd(18)} ${v}`);
  out.push('sparq doctor');
  add('node', `${process.version} (${process.platform}-${process.arch}, N-API ${process.versions.napi})`);
  let i: SparqInfo;
  try {
    i = info();
  } catch (e) {
    out.push('', (e as Error).message);
    return out.join('\n');
  }
  add('sparq', i.version);
  add('binary', `${i.binary} (${i.variant})`);
  for (const a of i.loadAttempts.filter((x) => x.error)) add('  skipped', `${a.path}: ${a.error}`);
  add('build', `${i.build.buildType}, ${i.build.compiler}, CUDA backend ${i.build.cuda ? `yes (archs ${i.build.cudaArchs})` : 'no'}`);
  const feats = Object.entries(i.build.cpu.features).filter(([, on]) => on).map(([k]) => k).join(' ');
  add('cpu', `${i.build.cpu.threads} threads (SPARQ_NUM_THREADS), features: ${feats || 'baseline'}; f32<->f16 cast path: ${i.build.cpu.castF16Path}`);
  add('cuda runtime', i.cuda.runtimeVersion ?? 'none (CPU-only build)');
  add('cuda driver', i.cuda.driverVersion ? `supports CUDA ${i.cuda.driverVersion}${i.cuda.kernelDriver ? ` (kernel driver ${i.cuda.kernelDriver})` : ''}` : 'none');
  if (i.cuda.available) {
    for (const d of i.cuda.devices) {
      add(`cuda:${d.index}`, `${d.name}, ${(d.totalMemory / 2 ** 30).toFixed(1)} GiB, sm_${d.computeCapability.join('')}, ${d.multiprocessors} SMs`);
    }
  } else {
    add('cuda', `unavailable: ${i.cuda.unavailableReason}`);
  }
  const advice: string[] = [];
  if (!i.cuda.available) {
    if (i.cuda.kernelDriver !== null && !i.cuda.compiled) {
      advice.push('An NVIDIA driver is present but this binary is CPU-only: rebuild with nvcc on PATH (npm rebuild sparq) or install a cuda13 prebuild.');
    } else if (i.cuda.kernelDriver !== null && i.cuda.kernelDriver < 580) {
      advice.push(`The NVIDIA driver ${i.cuda.kernelDriver} is older than CUDA 13 needs (580 or newer): update the driver.`);
    } else {
      advice.push("Everything runs on the CPU backend; device: 'cuda' will throw ERR_SPARQ_DEVICE.");
    }
  }
  out.push('', advice.length ? advice.map((a) => `advice: ${a}`).join('\n') : 'advice: none, all good.');
  return out.join('\n');
}
