// @ts-check
// Merges the reports of several `bench/run.mjs` runs (e.g. one process per family, as bench/gpu.sh
// runs them) into one JSON + Markdown + SVG report:
//   node bench/merge.mjs --out DIR --tag NAME report.json ...
// Meta comes from the first report; each device's copy bandwidth is the median of the runs' own,
// and each result keeps the % of copy bandwidth measured in its own run.
import * as fs from 'node:fs';

import { median } from './harness.mjs';
import { writeReport } from './report.mjs';

const argv = process.argv.slice(2);
const option = (/** @type {string} */ o) => (argv.includes(o) ? argv[argv.indexOf(o) + 1] : undefined);
const out = option('--out');
const tag = option('--tag');
const files = argv.filter((a, i) => !a.startsWith('--') && !['--out', '--tag'].includes(argv[i - 1]));
if (!out || files.length === 0) {
  console.error('usage: node bench/merge.mjs --out DIR [--tag NAME] report.json ...');
  process.exit(2);
}
const reports = files.map((f) => JSON.parse(fs.readFileSync(f, 'utf8')));
/** @type {Record<string, { gbps: number, medianMs: number, bytes: number }[]>} */
const seen = {};
for (const r of reports) for (const [dev, l] of Object.entries(r.limits)) (seen[dev] ??= []).push(l);
const limits = Object.fromEntries(Object.entries(seen).map(([dev, ls]) => {
  const gbps = median(ls.map((l) => l.gbps));
  return [dev, ls.find((l) => l.gbps === gbps) ?? { ...ls[0], gbps }];
}));
const merged = { meta: reports[0].meta, limits, results: reports.flatMap((r) => r.results) };
console.log(`wrote ${writeReport(out, merged, tag).join(', ')}`);
