#!/usr/bin/env node
// npx sparq doctor | info
'use strict';
const cmd = process.argv[2] ?? 'doctor';
const sparq = require('../dist/cjs/index.js');
if (cmd === 'doctor') {
  console.log(sparq.doctorReport());
  try {
    sparq.info();
  } catch {
    process.exitCode = 1; // the report above says why the addon does not load
  }
} else if (cmd === 'info') {
  console.log(JSON.stringify(sparq.info(), null, 2));
} else {
  console.error('usage: sparq [doctor|info]\n  doctor  what sparq loaded, what it sees, and advice\n  info    the same as JSON');
  process.exitCode = 2;
}
