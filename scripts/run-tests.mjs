#!/usr/bin/env node
// Runs node:test over the compiled test files of one suite (unit | integration | interop).
// Node 20's `node --test` takes no glob patterns, so the files are listed here.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const suite = process.argv[2];
if (!suite) {
  console.error('usage: run-tests.mjs <unit|integration|interop> [extra node --test flags]');
  process.exit(2);
}
const root = join('dist', 'test', suite);
function collect(dir) {
  let out = [];
  let entries;
  try { entries = readdirSync(dir); } catch { return out; }
  for (const name of entries.sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out = out.concat(collect(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}
const files = collect(root);
if (files.length === 0) {
  console.error(`no test files under ${root}: did the build run?`);
  process.exit(1);
}
const extra = process.argv.slice(3);
const r = spawnSync(process.execPath, ['--enable-source-maps', '--test', '--test-reporter=spec', ...extra, ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);
