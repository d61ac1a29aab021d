// @ts-check
// Writes a benchmark run as JSON (everything), Markdown (tables) and SVG (GB/s per case against the
// measured copy bandwidth). Files: <outDir>/<tag or host>-<date>.{json,md,svg}.
import * as fs from 'node:fs';
import * as path from 'node:path';

/** @typedef {import('./run.mjs').CaseResult} CaseResult */
/** @typedef {{ meta: Record<string, unknown> & { date: string, host: string }, limits: Record<string, { gbps: number }>, results: CaseResult[] }} Report */

const fmt = (/** @type {number} */ x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '-');
const esc = (/** @type {string} */ s) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** @param {Report} r */
export function markdown(r) {
  const lines = [`# sparq benchmarks: ${r.meta.host}, ${r.meta.date.slice(0, 10)}`, ''];
  for (const [k, v] of Object.entries(r.meta)) lines.push(`- **${k}**: ${String(v)}`);
  lines.push('', '| device | copy bandwidth (GB/s, clone read + write) |', '|---|---|');
  for (const [d, l] of Object.entries(r.limits)) lines.push(`| ${d} | ${fmt(l.gbps)} |`);
  lines.push('', '| family | case | device | shape | clock | median ms | GB/s | GFLOP/s | % of copy | peers (GB/s; sparq speed-up) |', '|---|---|---|---|---|---|---|---|---|---|');
  for (const c of r.results) {
    const peers = Object.entries(c.peers).map(([k, v]) => ('skipped' in v ? `${k}: skipped (${v.skipped})` : `${v.label}: ${fmt(v.gbps)} (${fmt(v.medianMs / c.medianMs, 2)}x)`)).join('<br>');
    lines.push(`| ${c.family} | ${c.name} | ${c.device} | ${c.shape} | ${c.clock} | ${fmt(c.medianMs, 3)} | ${fmt(c.gbps)} | ${c.flops ? fmt(c.gflops) : '-'} | ${fmt(c.pctOfCopy, 0)}% | ${peers || '-'} |`);
  }
  lines.push('', 'Times are medians of warmed runs on the device clock (stream markers; CUDA events on a GPU) unless the clock column says wall. Bytes count what the op must read and write once; % of copy compares with the clone bandwidth measured in the same run.', '');
  return lines.join('\n');
}

/** @param {Report} r */
export function svg(r) {
  const rowH = 16;
  const left = 330;
  const width = 980;
  const plotW = width - left - 40;
  /** @type {{ label: string, bars: { name: string, gbps: number }[], limit: number }[]} */
  const groups = r.results.map((c) => ({
    label: `${c.device} ${c.name}`,
    limit: r.limits[c.device]?.gbps ?? 0,
    bars: [{ name: 'sparq', gbps: c.gbps }, ...Object.entries(c.peers).filter(([, v]) => !('skipped' in v)).map(([k, v]) => ({ name: k, gbps: /** @type {{ gbps: number }} */ (v).gbps }))],
  }));
  const max = Math.max(1, ...groups.flatMap((g) => [g.limit, ...g.bars.map((b) => b.gbps)])) * 1.05;
  const colors = { sparq: '#1f77b4', torch: '#ff7f0e', 'torch out=': '#ffbb78', numpy: '#2ca02c' };
  let y = 40;
  const parts = [];
  for (const g of groups) {
    const top = y;
    parts.push(`<text x="${left - 8}" y="${y + 12}" text-anchor="end" font-size="12">${esc(g.label)}</text>`);
    for (const b of g.bars) {
      const w = (plotW * b.gbps) / max;
      const color = /** @type {Record<string, string>} */ (colors)[b.name] ?? '#888';
      parts.push(`<rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="${rowH - 3}" fill="${color}"><title>${esc(b.name)}: ${fmt(b.gbps)} GB/s</title></rect>`);
      parts.push(`<text x="${left + w + 4}" y="${y + 11}" font-size="10">${esc(b.name)} ${fmt(b.gbps)}</text>`);
      y += rowH;
    }
    const lx = left + (plotW * g.limit) / max;
    parts.push(`<line x1="${lx.toFixed(1)}" y1="${top - 2}" x2="${lx.toFixed(1)}" y2="${y}" stroke="#d62728" stroke-dasharray="3,2"><title>copy bandwidth ${fmt(g.limit)} GB/s</title></line>`);
    y += 8;
  }
  const height = y + 30;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="20" font-size="14" font-weight="bold">sparq: GB/s per case (${esc(r.meta.host)}, ${esc(r.meta.date.slice(0, 10))}); dashed red = copy bandwidth measured in the same run</text>`,
    ...parts,
    `<text x="${left}" y="${height - 10}" font-size="11">0</text><text x="${left + plotW}" y="${height - 10}" font-size="11" text-anchor="end">${fmt(max)} GB/s</text>`,
    '</svg>',
  ].join('\n');
}

/**
 * @param {string} outDir
 * @param {Report} r
 * @param {string} [tag] the file name's first part (default: the host name)
 * @returns {string[]} the files written
 */
export function writeReport(outDir, r, tag) {
  fs.mkdirSync(outDir, { recursive: true });
  const base = path.join(outDir, `${(tag ?? r.meta.host).replace(/[^A-Za-z0-9_.-]/g, '_')}-${r.meta.date.slice(0, 10)}`);
  fs.writeFileSync(`${base}.json`, JSON.stringify(r, null, 2) + '\n');
  fs.writeFileSync(`${base}.md`, markdown(r));
  fs.writeFileSync(`${base}.svg`, svg(r));
  return [`${base}.json`, `${base}.md`, `${base}.svg`];
}
