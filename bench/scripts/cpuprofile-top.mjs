#!/usr/bin/env node
// Summarises a V8 .cpuprofile (node --cpu-prof): the functions with the most self time, and the
// self time per source file, so a bench result can say what dominates a path.
//   node bench/scripts/cpuprofile-top.mjs FILE.cpuprofile [top=25]
import { readFileSync } from 'node:fs';

const [file, topText = '25'] = process.argv.slice(2);
if (!file) {
  console.error('usage: node bench/scripts/cpuprofile-top.mjs FILE.cpuprofile [top=25]');
  process.exit(2);
}
const top = Number(topText);
const profile = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const stackHas = (id, test) => {
  for (let n = id; n !== undefined; n = parent.get(n)) if (test(byId.get(n).callFrame)) return true;
  return false;
};
const accepting = (id) => stackHas(id, (f) => f.functionName === 'onconnection' && f.url === 'node:net');
// Lazy imports done on a first use are start-up too.
const loading = (id) => stackHas(id, (f) => f.url.startsWith('node:internal/modules/'));
// Start-up (module loading, compiling, reading the bundle) is not what a handshake costs: samples
// count from the first connection accepted (node:net onconnection).
const first = profile.samples.findIndex(accepting);
const selfUs = new Map();
// timeDeltas[i] is the time before samples[i]: charge it to the sampled node.
let loadingUs = 0;
for (let i = Math.max(0, first); i < profile.samples.length; i++) {
  if (loading(profile.samples[i])) {
    loadingUs += profile.timeDeltas[i] ?? 0;
    continue;
  }
  selfUs.set(profile.samples[i], (selfUs.get(profile.samples[i]) ?? 0) + (profile.timeDeltas[i] ?? 0));
}
// Percentages are of the busy time: a server kept for a whole benchmark is mostly idle.
const idle = [...selfUs].filter(([id]) => byId.get(id).callFrame.functionName === '(idle)').reduce((a, [, us]) => a + us, 0);
const total = [...selfUs.values()].reduce((a, b) => a + b, 0) - idle;
const byFunction = new Map();
const byFile = new Map();
for (const [id, us] of selfUs) {
  const { functionName, url, lineNumber } = byId.get(id).callFrame;
  if (functionName === '(idle)') continue;
  const where = url ? url.replace(/^file:\/\/.*?\/(dist|node_modules)\//, '$1/') : '';
  const fn = `${functionName || '(anonymous)'} ${where ? `${where}:${lineNumber + 1}` : ''}`.trim();
  byFunction.set(fn, (byFunction.get(fn) ?? 0) + us);
  const f = where || functionName;
  byFile.set(f, (byFile.get(f) ?? 0) + us);
}
const pct = (us) => ((100 * us) / total).toFixed(1).padStart(5);
console.log(`${file}: ${(total / 1e6).toFixed(2)} s busy from the first accepted connection on (${(idle / 1e6).toFixed(2)} s idle and ${(loadingUs / 1e6).toFixed(2)} s of lazy module loading not counted)`);
console.log('\nself time by function:');
for (const [fn, us] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(us)}%  ${fn}`);
console.log('\nself time by file:');
for (const [f, us] of [...byFile].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(us)}%  ${f}`);
