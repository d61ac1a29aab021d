/**
 * Float64 reference for sparq's random streams, written from the definitions:
 * Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2, 3", SC'11)
 * with counter (block, 0) and key = seed; uniform = top 24 bits / 2^24; normal = Box-Muller on
 * the word pairs (0,1) and (2,3), u1 = (a + 1/2) / 2^32, angle = 2*pi*b / 2^32, cosine for even
 * elements and sine for odd ones. Uses Math.log/cos/sin, so it agrees with the native streams to
 * rounding error, not bit for bit.
 */
const M0 = 0xd2511f53n;
const M1 = 0xcd9e8d57n;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;
const MASK32 = 0xffffffffn;

function mulhilo(a: bigint, b: number): [number, number] {
  const p = a * BigInt(b);
  return [Number(p >> 32n), Number(p & MASK32)];
}

export function philox4x32_10(ctr: readonly number[], key: readonly number[]): number[] {
  let [c0, c1, c2, c3] = ctr;
  let [k0, k1] = key;
  for (let round = 0; round < 10; round++) {
    if (round > 0) {
      k0 = (k0 + W0) >>> 0;
      k1 = (k1 + W1) >>> 0;
    }
    const [hi0, lo0] = mulhilo(M0, c0);
    const [hi1, lo1] = mulhilo(M1, c2);
    [c0, c1, c2, c3] = [(hi1 ^ c1 ^ k0) >>> 0, lo1, (hi0 ^ c3 ^ k1) >>> 0, lo0];
  }
  return [c0, c1, c2, c3];
}

function block(seed: bigint, b: number): number[] {
  const key = [Number(seed & MASK32), Number((seed >> 32n) & MASK32)];
  return philox4x32_10([b >>> 0, Math.floor(b / 2 ** 32) >>> 0, 0, 0], key);
}

export function uniformRef(seed: bigint, n: number, low: number, high: number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const w = block(seed, Math.floor(i / 4))[i % 4];
    out[i] = low + (high - low) * ((w >>> 8) / 2 ** 24);
  }
  return out;
}

export function normalRef(seed: bigint, n: number, mean: number, std: number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const r = block(seed, Math.floor(i / 4));
    const p = (i >> 1) & 1;
    const a = r[2 * p];
    const b = r[2 * p + 1];
    const radius = Math.sqrt(-2 * Math.log((a + 0.5) / 2 ** 32));
    const theta = (2 * Math.PI * b) / 2 ** 32;
    out[i] = mean + std * radius * (i % 2 === 0 ? Math.cos(theta) : Math.sin(theta));
  }
  return out;
}
