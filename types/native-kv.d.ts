// Native functions of KV-cache quantization (cuda/addon/kv_bindings.cc). `state` is the cache's
// 8 tensors [kCodes, kScale, kMin, vCodes, vScale, vMin, kTail, vTail] (layouts in cuda/kv/kv.h).
import type { NativeTensor } from './native.js';

export interface NativeKv {
  /** -> [codes, scale, min] */
  kvQuantize(op: string, x: unknown, bits: number, perChannel: boolean, groupSize: number): [NativeTensor, NativeTensor, NativeTensor];
  kvDequantize(op: string, codes: unknown, scale: unknown, min: unknown, bits: number, perChannel: boolean, groupSize: number): NativeTensor;
  /** Appends counts[b] (or n) tokens of k/v [B, Hk, n, D] to each sequence; updates lengths in stream order. */
  kvAppend(op: string, state: unknown[], keyBits: number, valueBits: number, groupSize: number, residual: number,
    lengths: unknown, k: unknown, v: unknown, counts: unknown): void;
  /** -> [out, lse | null] */
  kvAttend(op: string, state: unknown[], keyBits: number, valueBits: number, groupSize: number, residual: number,
    lengths: unknown, q: unknown, scale: number | undefined, returnLse: boolean, splits: number): [NativeTensor, NativeTensor | null];
}
