#!/usr/bin/env node
// Lists the CPU-only sources for binding.gyp (the same files CMake compiles without CUDA).
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const dirs = ['cuda/addon', 'cuda/core', 'cuda/attention', 'cuda/kv', 'cuda/rat', 'cuda/voxel', 'cuda/spgemm'];
const files = [];
for (const d of dirs) {
  if (!fs.existsSync(path.join(root, d))) continue;
  for (const f of fs.readdirSync(path.join(root, d)).sort()) if (f.endsWith('.cc')) files.push(`${d}/${f}`);
}
console.log(files.join(' '));
