/**
 * Reference for element conversions (the cast rules in the README): floats round to nearest even;
 * float -> integer truncates toward zero and saturates, NaN -> 0; integer -> integer saturates.
 * Values are carried as JavaScript numbers (or bigints for int64).
 */
import { type DType, bfloat16Bits, bfloat16Value, float16Bits, float16Value } from '../../lib/dtype.js';

const RANGE: Partial<Record<DType, [number, number]>> = {
  int8: [-128, 127], uint8: [0, 255], int32: [-2147483648, 2147483647], uint32: [0, 4294967295],
};

/** The stored representation (bits for 16-bit floats) of the value `x` converted to `to`. */
export function convertValue(x: number | bigint, to: DType): number | bigint {
  if (to === 'int64') {
    if (typeof x === 'bigint') return x;
    if (Number.isNaN(x)) return 0n;
    if (x >= 2 ** 63) return (1n << 63n) - 1n;
    if (x <= -(2 ** 63)) return -(1n << 63n);
    return BigInt(Math.trunc(x));
  }
  const v = typeof x === 'bigint' ? Number(x) : x; // exact for |x| <= 2^53, else rounded to nearest even
  if (to === 'float64') return v;
  if (to === 'float32') return Math.fround(v);
  if (to === 'float16') return float16Bits(v);
  if (to === 'bfloat16') return bfloat16Bits(v);
  const [lo, hi] = RANGE[to]!;
  if (typeof x === 'bigint') return Number(x < BigInt(lo) ? BigInt(lo) : x > BigInt(hi) ? BigInt(hi) : x);
  if (Number.isNaN(v)) return 0;
  return Math.min(hi, Math.max(lo, Math.trunc(v))) || 0; // integers have no -0
}

/** The value of a stored element of dtype `from` (bits for 16-bit floats). */
export function storedValue(s: number | bigint, from: DType): number | bigint {
  if (from === 'float16') return float16Value(Number(s));
  if (from === 'bfloat16') return bfloat16Value(Number(s));
  return s;
}
