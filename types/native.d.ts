// The exact surface of the native addon (cuda/addon/*.cc): the contract between lib/ and C++.
// Every function validates its arguments in C++ and throws a SparqError naming `op`.
// Each kernel family declares its functions in its own file (native-<family>.d.ts).
import type { NativeKv } from './native-kv.js';
import type { NativeRat } from './native-rat.js';
import type { NativeSparse } from './native-sparse.js';

export type NativeDType = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int8' | 'uint8' | 'int32' | 'uint32' | 'int64';

export interface NativeTensor {
  readonly dtype: NativeDType;
  readonly shape: number[];
  /** 'cpu' or 'cuda:N'; null for a handle that never held storage. */
  readonly device: string | null;
  readonly disposed: boolean;
  /** Drops this handle's reference; queued work keeps its own. Idempotent. */
  release(): void;
  reshape(op: string, shape: readonly number[]): NativeTensor;
  slice(op: string, start: number | undefined, end: number | undefined): NativeTensor;
}

export interface NativeCudaDevice {
  index: number;
  name: string;
  totalMemory: number;
  computeCapability: [number, number];
  multiprocessors: number;
}

export interface NativeBuildInfo {
  version: string;
  cuda: boolean;
  cudaArchs: string;
  compiler: string;
  buildType: 'release' | 'debug';
  cpu: { threads: number; castF16Path: 'f16c' | 'scalar'; features: Record<string, boolean> };
}

export interface NativeCudaInfo {
  compiled: boolean;
  runtimeVersion: number;
  driverVersion: number;
  unavailable: string | null;
  devices: NativeCudaDevice[];
}

export interface NativeMemory {
  device: string;
  bytes: number;
  storages?: number;
  cached?: number;
  poolReserved?: number;
  free?: number;
  total?: number;
}

/** Opaque timestamp recorded in stream order. */
export interface NativeMarker {
  readonly __brand: 'NativeMarker';
}

export interface NativeAddon extends NativeKv, NativeRat, NativeSparse {
  NativeTensor: new () => NativeTensor;
  empty(op: string, shape: readonly number[], dtype: string, device: string): NativeTensor;
  full(op: string, shape: readonly number[], dtype: string, device: string, value: number | bigint): NativeTensor;
  fromArray(op: string, data: ArrayBufferView, shape: readonly number[], dtype: string, device: string): NativeTensor;
  to(op: string, t: unknown, device: string): NativeTensor;
  clone(op: string, t: unknown): NativeTensor;
  cast(op: string, t: unknown, dtype: string): NativeTensor;
  random(op: string, shape: readonly number[], dtype: string, device: string, dist: 'normal' | 'uniform',
    seed: number | bigint, a: number, b: number): NativeTensor;

  read(op: string, t: unknown): Promise<ArrayBuffer>;
  readSync(op: string, t: unknown): ArrayBuffer;
  synchronize(op: string, device: string): Promise<void>;
  /** [last enqueued seq, last completed seq, seq of an unreported failure or 0] */
  cpuStreamState(): [number, number, number];
  cpuLastSeq(): number;

  buildInfo(): NativeBuildInfo;
  cudaInfo(): NativeCudaInfo;
  memory(op: string, device: string): NativeMemory;
  emptyCache(op: string, device: string): void;
  setErrorClass(ctor: new (code: string, message: string) => Error): void;

  sdpa(op: string, q: unknown, k: unknown, v: unknown, kvLengths: unknown, causal: boolean, windowLeft: number,
    windowRight: number, scale: number | undefined, returnLse: boolean): [NativeTensor, NativeTensor | null];
  decode(op: string, q: unknown, kCache: unknown, vCache: unknown, lengths: unknown, scale: number | undefined,
    returnLse: boolean, splits: number): [NativeTensor, NativeTensor | null];
  mergeStates(op: string, outs: unknown[], lses: unknown[]): [NativeTensor, NativeTensor];
  rope(op: string, x: unknown, positions: unknown, offset: number, base: number, interleaved: boolean,
    rotaryDim: number | undefined): NativeTensor;

  marker(op: string, device: string): NativeMarker;
  elapsed(op: string, start: NativeMarker, end: NativeMarker): number;
  hold(op: string, device: string): () => void;
  debugSleep(op: string, ms: number): void;
  debugFail(op: string, message: string): void;
}
