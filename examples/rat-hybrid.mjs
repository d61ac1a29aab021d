// @ts-check
// A small hybrid language-model stack in the layout of the RAT paper's RAT-SWA model (spec §2.4):
// even layers are RAT (chunked gated recurrence + inter-chunk attention, sparq.rat), odd layers
// are sliding-window attention (sparq.attention.sdpa with a causal window and token RoPE). Random
// weights, so the tokens are noise; the point is the call pattern: one prefill over the prompt,
// then one token at a time through each layer's cache.
//
//   npm run build:ts && node examples/rat-hybrid.mjs [--tokens 32] [--prompt 24] [--device cpu|cuda] [--temperature 1] [--check]
//
// --check re-runs the whole generated sequence through the prefill path and compares its logits
// with the step-by-step ones (they must agree to float32 rounding).
// Projections, norms and the embedding run in plain JavaScript (sparq has no GEMM yet): they are
// tiny here. The RAT gate, recurrence and attention, and the SWA attention, run in sparq.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
/** @type {typeof import('../dist/cjs/index.js')} */
const sparq = require('../dist/cjs/index.js');

/** @param {string} name @param {string} fallback */
function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}
const tokens = Number(arg('tokens', '32'));
const promptLength = Number(arg('prompt', '24'));
const device = /** @type {import('../dist/cjs/index.js').Device} */ (arg('device', 'cpu'));
const check = process.argv.includes('--check');

const cfg = { vocab: 256, dModel: 128, heads: 2, headDim: 64, groups: 2, chunk: 8, window: 16, layers: 4 };
const { vocab, dModel, heads: H, headDim: Dh, groups: G } = cfg;

// ---- weights (deterministic) -----------------------------------------------------------------

let seed = 12345;
function rand() {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed / 2 ** 32;
}
/** @param {number} n @param {number} std */
function normal(n, std) {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = std * Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  return out;
}
/** W [inDim, outDim] with std 1/sqrt(inDim) */
const weight = (inDim, outDim) => ({ inDim, outDim, w: normal(inDim * outDim, 1 / Math.sqrt(inDim)) });

const embedding = normal(vocab * dModel, 1);
const unembedding = normal(vocab * dModel, 1 / Math.sqrt(dModel)); // untied: tied weights would echo the input token
const layers = Array.from({ length: cfg.layers }, (_, i) => (i % 2 === 0
  ? { kind: 'rat', win: weight(dModel, 3 * dModel + 2 * G * Dh), wout: weight(dModel, dModel),
    gateBias: sparq.tensor(Float32Array.from({ length: H * Dh }, () => Math.log(1 + rand() * (cfg.chunk - 2))), [H, Dh], { device }) }
  : { kind: 'swa', win: weight(dModel, 3 * dModel), wout: weight(dModel, dModel) }));

// ---- host helpers ------------------------------------------------------------------------------

/** x [n, inDim] @ W -> [n, outDim] */
function matmul(x, n, { inDim, outDim, w }) {
  const y = new Float32Array(n * outDim);
  for (let r = 0; r < n; r++)
    for (let i = 0; i < inDim; i++) {
      const a = x[r * inDim + i];
      for (let o = 0; o < outDim; o++) y[r * outDim + o] += a * w[i * outDim + o];
    }
  return y;
}
function rmsnorm(x, n) {
  const y = new Float32Array(x.length);
  for (let r = 0; r < n; r++) {
    let s = 0;
    for (let i = 0; i < dModel; i++) s += x[r * dModel + i] ** 2;
    const inv = 1 / Math.sqrt(s / dModel + 1e-6);
    for (let i = 0; i < dModel; i++) y[r * dModel + i] = x[r * dModel + i] * inv;
  }
  return y;
}
/** Columns [off, off + heads * Dh) of p [n, width] as a tensor [1, heads, n, Dh] (or [1, heads, Dh] when step). */
function toHeads(p, n, width, off, heads, step) {
  const out = new Float32Array(heads * n * Dh);
  for (let t = 0; t < n; t++)
    for (let h = 0; h < heads; h++)
      for (let d = 0; d < Dh; d++) out[(h * n + t) * Dh + d] = p[t * width + off + h * Dh + d];
  return sparq.tensor(out, step ? [1, heads, Dh] : [1, heads, n, Dh], { device });
}
/** y [1, H, n, Dh] (host values) -> [n, H * Dh] */
function fromHeads(y, n) {
  const out = new Float32Array(n * dModel);
  for (let h = 0; h < H; h++)
    for (let t = 0; t < n; t++)
      for (let d = 0; d < Dh; d++) out[t * dModel + h * Dh + d] = y[(h * n + t) * Dh + d];
  return out;
}

// ---- the stack ---------------------------------------------------------------------------------

/** Per-layer decode state: a RAT cache, or the SWA layer's rotated keys/values so far (host rows). */
function newState(maxTokens) {
  return layers.map((l) => (l.kind === 'rat'
    ? sparq.rat.createCache({ batch: 1, heads: H, headDim: Dh, chunkSize: cfg.chunk, maxTokens, device, gateBias: l.gateBias })
    : { k: /** @type {Float32Array[]} */ ([]), v: /** @type {Float32Array[]} */ ([]) }));
}

/**
 * Runs n tokens (starting at position pos) through every layer; n > 1 only for a prefill at pos 0.
 * Returns the logits [n, vocab].
 */
async function run(ids, pos, state) {
  const n = ids.length;
  const step = pos > 0;
  let x = new Float32Array(n * dModel);
  ids.forEach((id, t) => x.set(embedding.subarray(id * dModel, (id + 1) * dModel), t * dModel));
  for (const [i, layer] of layers.entries()) {
    const width = layer.win.outDim;
    const p = matmul(rmsnorm(x, n), n, layer.win);
    let y;
    if (layer.kind === 'rat') {
      // [z | x | g | q | k]: output gate, values, gate logits, grouped queries and keys.
      const cache = /** @type {import('../dist/cjs/index.js').RatCache} */ (state[i]);
      const v = toHeads(p, n, width, dModel, H, step);
      const gate = toHeads(p, n, width, 2 * dModel, H, step);
      const q = toHeads(p, n, width, 3 * dModel, G, step);
      const k = toHeads(p, n, width, 3 * dModel + G * Dh, G, step);
      const out = step ? cache.step(q, k, v, gate) : cache.prefill(q, k, v, gate);
      y = fromHeads(await out.toFloat32(), n);
      for (let t = 0; t < n; t++)
        for (let c = 0; c < dModel; c++) y[t * dModel + c] *= 1 / (1 + Math.exp(-p[t * width + c]));
      for (const t of [v, gate, q, k, out]) t.dispose();
    } else {
      const kv = /** @type {{ k: Float32Array[], v: Float32Array[] }} */ (state[i]);
      const q = sparq.rope(toHeads(p, n, width, 0, H, false), { offset: pos });
      const kNew = sparq.rope(toHeads(p, n, width, dModel, H, false), { offset: pos });
      const kNewHost = await kNew.toFloat32();
      const vNewHost = await toHeads(p, n, width, 2 * dModel, H, false).toFloat32();
      for (let t = 0; t < n; t++) {
        const row = (src) => Float32Array.from({ length: H * Dh }, (_, j) => src[(Math.floor(j / Dh) * n + t) * Dh + (j % Dh)]);
        kv.k.push(row(kNewHost));
        kv.v.push(row(vNewHost));
      }
      // Keys in the window of the first query (window + 1 keys for a single step).
      const first = Math.max(0, pos - cfg.window);
      const m = pos + n - first;
      const gather = (rows) => {
        const out = new Float32Array(H * m * Dh);
        for (let j = 0; j < m; j++)
          for (let h = 0; h < H; h++) out.set(rows[first + j].subarray(h * Dh, (h + 1) * Dh), (h * m + j) * Dh);
        return sparq.tensor(out, [1, H, m, Dh], { device });
      };
      const out = sparq.attention.sdpa(q, gather(kv.k), gather(kv.v), { causal: true, window: [cfg.window, 0] });
      y = fromHeads(await out.toFloat32(), n);
    }
    const o = matmul(y, n, layer.wout);
    x = x.map((a, j) => a + o[j]);
  }
  const h = rmsnorm(x, n);
  const logits = new Float32Array(n * vocab);
  for (let t = 0; t < n; t++)
    for (let w = 0; w < vocab; w++) {
      let s = 0;
      for (let c = 0; c < dModel; c++) s += h[t * dModel + c] * unembedding[w * dModel + c];
      logits[t * vocab + w] = s;
    }
  return logits;
}

// Sampling at a temperature (seeded, so runs repeat): greedy decoding of a random-weight model
// tends to repeat one token.
const temperature = Number(arg('temperature', '1'));
function sample(a) {
  const m = Math.max(...a);
  const w = Array.from(a, (x) => Math.exp((x - m) / temperature));
  let u = rand() * w.reduce((s, x) => s + x, 0);
  for (let i = 0; i < w.length; i++) if ((u -= w[i]) <= 0) return i;
  return w.length - 1;
}

const prompt = Array.from({ length: promptLength }, () => Math.floor(rand() * vocab));
const state = newState(promptLength + tokens);
const t0 = performance.now();
let logits = await run(prompt, 0, state);
const tPrefill = performance.now() - t0;
const generated = [];
const stepLogits = [];
let next = sample(logits.subarray((promptLength - 1) * vocab));
const t1 = performance.now();
for (let s = 0; s < tokens; s++) {
  generated.push(next);
  logits = await run([next], promptLength + s, state);
  stepLogits.push(logits);
  next = sample(logits);
}
const tDecode = performance.now() - t1;
console.log(`hybrid RAT(L=${cfg.chunk})/SWA(window=${cfg.window}) stack: ${cfg.layers} layers, d_model ${dModel}, ${H} heads x ${Dh}, device ${device}`);
console.log(`prompt ${promptLength} tokens: prefill ${tPrefill.toFixed(1)} ms; ${tokens} tokens generated at ${(tDecode / Math.max(tokens, 1)).toFixed(2)} ms/token`);
console.log(`tokens: ${generated.join(' ')}`);

if (check) {
  // The whole sequence in one prefill: its logits at the generated positions must equal the steps'.
  const all = [...prompt, ...generated];
  const full = await run(all, 0, newState(all.length));
  let worst = 0;
  let scale = 0;
  for (let s = 0; s < tokens; s++) {
    const row = full.subarray((promptLength + s) * vocab, (promptLength + s + 1) * vocab);
    for (let w = 0; w < vocab; w++) {
      worst = Math.max(worst, Math.abs(row[w] - stepLogits[s][w]));
      scale = Math.max(scale, Math.abs(row[w]));
    }
  }
  const ok = worst <= 1e-3 * Math.max(1, scale);
  console.log(`check: prefill vs step-by-step logits, max |difference| ${worst.toExponential(2)} (max |logit| ${scale.toFixed(2)}): ${ok ? 'ok' : 'MISMATCH'}`);
  if (!ok) process.exitCode = 1;
}
