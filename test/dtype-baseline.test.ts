// The portable (non-F16C) CPU conversion path, forced with SPARQ_CPU_ISA=baseline. Vitest runs
// each file in its own process, so this setting does not leak into other files.
import { expect, it } from 'vitest';

process.env.SPARQ_CPU_ISA = 'baseline';

it('baseline path: float32 <-> float16 agrees with TypeScript on every float16 value and midpoint', async () => {
  const { float16Bits, float16Value, info, tensor } = await import('../lib/index.js');
  expect(info().build.cpu.castF16Path).toBe('scalar');
  const xs: number[] = [];
  for (let h = 0; h < 0x7c00; h++) xs.push(float16Value(h), (float16Value(h) + float16Value(h + 1)) / 2, -float16Value(h));
  const src = new Float32Array(xs);
  const bits = (await tensor(src).cast('float16').data()) as Uint16Array;
  let bad = 0;
  for (let i = 0; i < src.length; i++) if (bits[i] !== float16Bits(src[i])) bad++;
  expect(bad).toBe(0);
  const all = new Uint16Array(65536).map((_, i) => i);
  const back = (await tensor(all, { dtype: 'float16' }).cast('float32').data()) as Float32Array;
  const back32 = new Uint32Array(back.buffer);
  for (let h = 0; h < 65536; h++) {
    const isNaN16 = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
    const ok = isNaN16 ? back32[h] === ((((h & 0x8000) << 16) | 0x7fc00000 | ((h & 0x3ff) << 13)) >>> 0) : Object.is(back[h], float16Value(h));
    if (!ok) bad++;
  }
  expect(bad).toBe(0);
});
