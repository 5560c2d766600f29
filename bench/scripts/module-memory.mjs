// What importing a module costs a fresh Node process: V8 heap used and total and RSS, after full
// GCs, before and after the import, and 2.5 s later (when V8's idle GCs have run).
//
//   node --expose-gc --max-semi-space-size=8 bench/scripts/module-memory.mjs SPECIFIER
//   e.g. @kubernetes/client-node, ./dist/src/operator/main.js
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const what = process.argv[2];
const mib = (n) => +(n / 2 ** 20).toFixed(1);
const measure = () => {
  globalThis.gc();
  globalThis.gc();
  const m = process.memoryUsage();
  return { heapUsed: mib(m.heapUsed), heapTotal: mib(m.heapTotal), rss: mib(m.rss) };
};
const before = measure();
if (what) await import(what.startsWith('.') ? pathToFileURL(resolve(what)).href : what);
const after = measure();
await sleep(2500);
console.log(JSON.stringify({ module: what ?? '(none)', before, after, later: measure() }));
