/**
 * Devices: 'cpu', 'cuda' (= 'cuda:0') and 'cuda:N'. Ops require every tensor argument on one
 * device and never copy silently.
 */
import type { NativeCudaDevice } from '../types/native.js';
import { native } from './native.js';
import { settle } from './stream.js';

export type Device = 'cpu' | 'cuda' | `cuda:${number}`;
/** The normalised name a tensor reports: 'cpu' or 'cuda:N'. */
export type DeviceName = 'cpu' | `cuda:${number}`;

export interface CudaDevice {
  index: number;
  /** e.g. 'NVIDIA H100 80GB HBM3' */
  name: string;
  /** bytes */
  totalMemory: number;
  /** [major, minor], e.g. [9, 0] for Hopper */
  computeCapability: [number, number];
  multiprocessors: number;
}

export interface MemoryStats {
  device: DeviceName;
  /** Bytes held by sparq tensors (CPU: host allocations; CUDA: in use from sparq's memory pool). */
  bytes: number;
  /** Live JavaScript Tensor objects (all devices). */
  tensors: number;
  /** CPU: live storages (views share one). */
  storages?: number;
  /** CPU: freed blocks kept for reuse (see emptyCache). */
  cached?: number;
  /** CUDA: bytes the memory pool has reserved from the driver. */
  poolReserved?: number;
  /** CUDA: free and total device memory (cudaMemGetInfo). */
  free?: number;
  total?: number;
}

let liveTensors = 0;
/** @internal */
export function countTensor(delta: number): void {
  liveTensors += delta;
}

export const cuda = {
  /** True when this binary has the CUDA backend and a usable device exists. */
  available(): boolean {
    return native().cudaInfo().unavailable === null;
  },
  /** Why CUDA is unavailable (no driver, no device, CPU-only build), or null when it is available. */
  unavailableReason(): string | null {
    return native().cudaInfo().unavailable;
  },
  deviceCount(): number {
    return native().cudaInfo().devices.length;
  },
  devices(): CudaDevice[] {
    return native().cudaInfo().devices.map((d: NativeCudaDevice) => ({ ...d, computeCapability: [...d.computeCapability] as [number, number] }));
  },
};

/** Memory held on a device (default 'cpu'). */
export function memory(device: Device = 'cpu'): MemoryStats {
  const m = native().memory('sparq.memory', device);
  return { ...m, device: m.device as DeviceName, tensors: liveTensors };
}

/**
 * Returns memory that sparq keeps for reuse to the system: freed host blocks (CPU) or the
 * unused part of the stream-ordered memory pool (CUDA). Live tensors are not affected.
 */
export function emptyCache(device: Device = 'cpu'): void {
  native().emptyCache('sparq.emptyCache', device);
}

/**
 * Resolves when all work queued so far on `device` (default: the CPU and every CUDA device) has
 * finished; rejects with the first failure inside queued work not yet reported.
 */
export async function synchronize(device?: Device): Promise<void> {
  const n = native();
  const devices: string[] = device !== undefined ? [device] : ['cpu', ...(n.cudaInfo().unavailable === null ? n.cudaInfo().devices.map((d) => `cuda:${d.index}`) : [])];
  await Promise.all(devices.map((d) => settle(n.synchronize('sparq.synchronize', d))));
}
