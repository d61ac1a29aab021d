// @ts-check
// Runs a peer script (bench/peers/*.py) under each Python that exists here and takes, per library,
// the first interpreter that has it. Debian's /usr/bin/python3 is tried first: PyTorch CPU comes
// from Debian's python3-torch and only that interpreter sees it. A library that no interpreter has
// is reported as skipped, with the reason. Each interpreter runs one long-lived bench/peers/serve.py
// (imports and GPU contexts made once per run), and a case asked for twice with the same arguments
// (RAT and dense rows share PyTorch's SDPA) is measured once.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

/** @typedef {Record<string, { label: string, medianMs: number } | { skipped: string }>} PeerResults */

/** @returns {string[]} */
function interpreters() {
  const seen = new Set();
  const out = [];
  for (const p of ['/usr/bin/python3', 'python3']) {
    // A virtual environment's python is a link to its base interpreter: tell them apart by prefix.
    const r = spawnSync(p, ['-c', 'import sys; print(sys.prefix)'], { encoding: 'utf8' });
    if (r.status !== 0) continue;
    const prefix = fs.realpathSync(r.stdout.trim());
    if (!seen.has(prefix)) {
      seen.add(prefix);
      out.push(p);
    }
  }
  return out;
}

/** One serve.py per interpreter; ask() sends a request and resolves with its one-line answer. */
class Server {
  /** @param {string} py */
  constructor(py) {
    this.py = py;
    this.child = spawn(py, [path.join(here, 'peers', 'serve.py')], { stdio: ['pipe', 'pipe', 'pipe'] });
    /** @type {((line: string) => void)[]} */
    this.waiting = [];
    this.stderr = '';
    this.child.stderr.on('data', (d) => { this.stderr = (this.stderr + d).slice(-2000); });
    readline.createInterface({ input: this.child.stdout }).on('line', (line) => this.waiting.shift()?.(line));
    this.child.on('exit', (code) => {
      const why = JSON.stringify({ error: `${py} peer server exited (${code}): ${this.stderr.trim().split('\n').slice(-1)[0] ?? ''}` });
      for (const w of this.waiting.splice(0)) w(why);
      this.dead = true;
    });
    this.child.unref();
    /** @type {any} */ (this.child.stdout).unref?.();
    /** @type {any} */ (this.child.stderr).unref?.();
    /** @type {any} */ (this.child.stdin).unref?.();
  }

  /** @param {string} script @param {Record<string, unknown>} args @returns {Promise<any>} */
  ask(script, args) {
    if (this.dead) return Promise.resolve({ error: `${this.py} peer server is gone` });
    return new Promise((resolve) => {
      // A late answer would be taken for the next request's: give up on this server instead.
      const timer = setTimeout(() => this.child.kill(), 600_000);
      this.waiting.push((line) => {
        clearTimeout(timer);
        try {
          resolve(JSON.parse(line));
        } catch {
          resolve({ error: `unreadable answer: ${line.slice(0, 200)}` });
        }
      });
      this.child.stdin.write(JSON.stringify({ script, args }) + '\n');
    });
  }
}

/** @type {Server[] | undefined} */
let servers;
/** @type {Map<string, Promise<PeerResults>>} */
const memo = new Map();

/**
 * @param {string} script
 * @param {Record<string, unknown>} args
 * @returns {Promise<PeerResults>}
 */
export function runPeer(script, args) {
  const key = JSON.stringify([script, args]);
  if (!memo.has(key)) memo.set(key, measure(script, args));
  return /** @type {Promise<PeerResults>} */ (memo.get(key));
}

/** @param {string} script @param {Record<string, unknown>} args @returns {Promise<PeerResults>} */
async function measure(script, args) {
  servers ??= interpreters().map((py) => new Server(py));
  if (servers.length === 0) return { python: { skipped: 'no python3 found' } };
  /** @type {PeerResults} */
  const merged = {};
  for (const server of servers) {
    const res = await server.ask(script, args);
    if ('error' in res) {
      const why = `${server.py} failed: ${res.error}`;
      for (const k of Object.keys(merged)) if ('skipped' in merged[k]) merged[k] = { skipped: why };
      continue;
    }
    for (const [lib, v] of Object.entries(res)) {
      if (!merged[lib] || ('skipped' in merged[lib] && !('skipped' in /** @type {object} */ (v)))) merged[lib] = /** @type {any} */ (v);
    }
    if (Object.values(merged).every((v) => !('skipped' in v))) break;
  }
  return merged;
}
