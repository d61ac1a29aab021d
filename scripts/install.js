#!/usr/bin/env node
// npm install hook: keep a binary that loads (a local build or a prebuild); otherwise build from
// source with CMake (CUDA when nvcc is found, else CPU-only), or with node-gyp (CPU-only) when
// CMake is missing. Needs nothing from the network. SPARQ_BUILD_FROM_SOURCE=1 (or npm's
// --build-from-source) skips the load test.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const log = (/** @type {string} */ m) => console.error(`sparq: ${m}`);

/** @param {string} file */
function loads(file) {
  if (!fs.existsSync(file)) return false;
  // A child process: a broken binary must not take the installer down with it.
  const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(file)}).buildInfo()`], { stdio: 'pipe' });
  if (r.status !== 0) log(`${path.relative(root, file)} does not load: ${String(r.stderr).trim().split('\n').slice(-1)[0]}`);
  return r.status === 0;
}

/** @param {string} cmd @param {string[]} args @param {Record<string, string>} [env] */
function run(cmd, args, env) {
  log(`${path.basename(cmd)} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
  return r.status === 0;
}

/** @param {string} name */
function hasCommand(name) {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

const forced = process.env.SPARQ_BUILD_FROM_SOURCE === '1' || process.env.npm_config_build_from_source === 'true';
const prebuildDir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
const existing = [path.join(root, 'build', 'Release', 'sparq.node'),
  path.join(prebuildDir, 'sparq.cuda13.node'), path.join(prebuildDir, 'sparq.cpu.node')];
if (!forced) {
  const ok = existing.find(loads);
  if (ok) {
    log(`using ${path.relative(root, ok)}`);
    process.exit(0);
  }
}

const built = path.join(root, 'build', 'Release', 'sparq.node');
let cmakeJs;
try {
  cmakeJs = require.resolve('cmake-js/bin/cmake-js', { paths: [root] });
} catch {
  cmakeJs = undefined;
}
if (cmakeJs && hasCommand('cmake')) {
  if (run(process.execPath, [cmakeJs, 'rebuild']) && loads(built)) process.exit(0);
  log('the CMake build failed; trying a CPU-only CMake build');
  if (run(process.execPath, [cmakeJs, 'rebuild', '--CDSPARQ_WITH_CUDA=OFF']) && loads(built)) process.exit(0);
} else {
  log('CMake not found: building the CPU-only addon with node-gyp');
}
const nodeGyp = process.env.npm_config_node_gyp;
if (nodeGyp && fs.existsSync(nodeGyp) && run(process.execPath, [nodeGyp, 'rebuild']) && loads(built)) process.exit(0);
log('could not build the native addon. Install CMake >= 3.18 and a C++17 compiler (g++ or clang), then: npm rebuild sparq');
process.exit(1);
