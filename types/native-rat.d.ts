// Native functions of RAT (cuda/addon/rat_bindings.cc). Tensors are NativeTensor handles; every
// function validates its arguments in C++ and throws a SparqError naming `op`.
import type { NativeTensor } from './native.js';

export interface NativeRat {
  /** [vTilde, kTilde, vFinal, kFinal] */
  ratScan(op: string, v: unknown, k: unknown, gate: unknown, gateBias: unknown, chunkSize: number):
    [NativeTensor, NativeTensor, NativeTensor, NativeTensor];
  /** ropeBase 0: no RoPE. [out, lse | null] */
  ratAttention(op: string, q: unknown, kTilde: unknown, vTilde: unknown, chunkSize: number, ropeBase: number,
    scale: number | undefined, returnLse: boolean): [NativeTensor, NativeTensor | null];
  /** cache = [kState, vState, kChunks, vChunks, lengths] */
  ratFill(op: string, cache: unknown[], v: unknown, k: unknown, gate: unknown, gateBias: unknown, kFinal: unknown,
    vFinal: unknown, promptLengths: unknown, chunkSize: number, ropeBase: number): void;
  ratStep(op: string, cache: unknown[], q: unknown, k: unknown, v: unknown, gate: unknown, gateBias: unknown,
    chunkSize: number, ropeBase: number, scale: number | undefined, returnLse: boolean): [NativeTensor, NativeTensor | null];
}
