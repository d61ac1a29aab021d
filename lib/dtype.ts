/**
 * Element types. float16 and bfloat16 cross JavaScript as raw bits in a Uint16Array (Node 20 has
 * no Float16Array); the conversions here round to nearest even and match the native ones bit for
 * bit (test/dtype.test.ts checks every float16 and bfloat16 pattern).
 */
export type DType = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int8' | 'uint8' | 'int32' | 'uint32' | 'int64';

export const DTYPES: readonly DType[] = ['float32', 'float64', 'float16', 'bfloat16', 'int8', 'uint8', 'int32', 'uint32', 'int64'];

/** The typed array that holds each dtype's values (or, for 16-bit floats, their bits). */
export interface TypedArrayMap {
  float32: Float32Array;
  float64: Float64Array;
  float16: Uint16Array;
  bfloat16: Uint16Array;
  int8: Int8Array;
  uint8: Uint8Array;
  int32: Int32Array;
  uint32: Uint32Array;
  int64: BigInt64Array;
}
export type TypedArrayFor<D extends DType> = TypedArrayMap[D];

export const BYTES_PER_ELEMENT: Readonly<Record<DType, number>> = {
  float32: 4, float64: 8, float16: 2, bfloat16: 2, int8: 1, uint8: 1, int32: 4, uint32: 4, int64: 8,
};

const VIEWS: Record<DType, new (b: ArrayBuffer) => ArrayBufferView> = {
  float32: Float32Array, float64: Float64Array, float16: Uint16Array, bfloat16: Uint16Array, int8: Int8Array, uint8: Uint8Array,
  int32: Int32Array, uint32: Uint32Array, int64: BigInt64Array,
};

/** Wraps raw bytes from the addon in the dtype's typed array (no copy). */
export function viewBytes<D extends DType>(dtype: D, bytes: ArrayBuffer): TypedArrayFor<D> {
  return new VIEWS[dtype](bytes) as TypedArrayFor<D>;
}

export function isDType(v: unknown): v is DType {
  return typeof v === 'string' && (DTYPES as readonly string[]).includes(v);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Round half to even for y >= 0 (exact for y < 2^52). */
function roundHalfEven(y: number): number {
  const f = Math.floor(y);
  const r = y - f;
  if (r > 0.5) return f + 1;
  if (r < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * Bits of the nearest value in a binary format with `expBits` exponent and `mantBits` mantissa
 * bits, from the value's definition x = 2^e * (1 + k / 2^mantBits). NaN needs its payload, so it is
 * handled by the callers.
 */
function roundToFormat(x: number, expBits: number, mantBits: number): number {
  const signBit = 1 << (expBits + mantBits);
  const sign = x < 0 || Object.is(x, -0) ? signBit : 0;
  const a = Math.abs(x);
  const bias = (1 << (expBits - 1)) - 1;
  const infBits = ((1 << expBits) - 1) << mantBits;
  if (a === Infinity) return sign | infBits;
  const minNormal = 2 ** (1 - bias);
  const ulpSub = 2 ** (1 - bias - mantBits); // spacing of subnormals
  if (a < minNormal) {
    // Subnormal range: multiples of ulpSub; scaling by a power of two is exact.
    return sign | roundHalfEven(a / ulpSub); // may round up to the smallest normal, whose bits follow on
  }
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e -= 1; // log2 may be off by one near powers of two
  if (2 ** (e + 1) <= a) e += 1;
  let k = roundHalfEven((a / 2 ** e - 1) * 2 ** mantBits);
  if (k === 2 ** mantBits) { k = 0; e += 1; }
  if (e > bias) return sign | infBits;
  return sign | ((e + bias) << mantBits) | k;
}

/** float16 bits nearest to x (round to nearest even; NaN keeps sign and top payload bits, quiet). */
export function float16Bits(x: number): number {
  if (Number.isNaN(x)) {
    f32[0] = x;
    const b = u32[0];
    return ((b >>> 16) & 0x8000) | 0x7e00 | ((b >>> 13) & 0x3ff);
  }
  return roundToFormat(x, 5, 10);
}

/** bfloat16 bits nearest to x (round to nearest even; NaN keeps sign and top payload bits, quiet). */
export function bfloat16Bits(x: number): number {
  if (Number.isNaN(x)) {
    f32[0] = x;
    return (u32[0] >>> 16) | 0x0040;
  }
  return roundToFormat(x, 8, 7);
}

/** The value of float16 bits. */
export function float16Value(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const e = (bits >> 10) & 0x1f;
  const m = bits & 0x3ff;
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  if (e === 0) return sign * m * 2 ** -24;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** The value of bfloat16 bits. */
export function bfloat16Value(bits: number): number {
  u32[0] = (bits & 0xffff) << 16;
  return f32[0];
}

let f16Table: Float32Array | undefined;

/** float16 or bfloat16 bits to float32 values. */
export function halfToFloat32(bits: Uint16Array, dtype: 'float16' | 'bfloat16'): Float32Array {
  const out = new Float32Array(bits.length);
  if (dtype === 'bfloat16') {
    const o32 = new Uint32Array(out.buffer);
    for (let i = 0; i < bits.length; i++) o32[i] = bits[i] << 16;
    return out;
  }
  if (!f16Table) {
    const t = new Float32Array(65536);
    for (let b = 0; b < 65536; b++) t[b] = float16Value(b);
    // NaN payloads must survive (made quiet, as the native widening does): write their bits directly.
    const t32 = new Uint32Array(t.buffer);
    for (let b = 0; b < 65536; b++) {
      if ((b & 0x7c00) === 0x7c00 && (b & 0x3ff)) t32[b] = ((b & 0x8000) << 16) | 0x7fc00000 | ((b & 0x3ff) << 13);
    }
    f16Table = t;
  }
  const t32 = new Uint32Array(f16Table.buffer);
  const o32 = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) o32[i] = t32[bits[i]];
  return out;
}
