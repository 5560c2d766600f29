#!/usr/bin/env node
// Where the operator's CPU goes while it issues: a V8 .cpuprofile of the operator
// (bench/operator-scale.ts --operator-node-args='... --cpu-prof --cpu-prof-dir=DIR') split into
// parts that add up to the busy time. Every sample goes to exactly one part: the first rule below
// whose frame is on the sample's stack (rules run from the most specific to the most general), so
// JSON.parse of a watch event (a builtin, its time is the calling frame's self time) counts as the
// watch's decoding, not as "HTTP". Start-up (module loading and compiling) is its own part.
//   node bench/scripts/operator-cpuprofile-partition.mjs FILE.cpuprofile [issuances] [--other N]
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const argv = process.argv.slice(2);
const otherIndex = argv.indexOf('--other');
const showOther = otherIndex >= 0 ? Number(argv.splice(otherIndex, 2)[1]) : 0;
// --detail TEXT: the innermost frames of the samples in the parts whose name contains TEXT.
const detailIndex = argv.indexOf('--detail');
const detail = detailIndex >= 0 ? argv.splice(detailIndex, 2)[1] : undefined;
const detailed = new Map();
const [file, issuancesText] = argv;
if (!file) {
  console.error('usage: node bench/scripts/operator-cpuprofile-partition.mjs FILE.cpuprofile [issuances] [--other N]');
  process.exit(2);
}
const issuances = issuancesText === undefined ? undefined : Number(issuancesText);
const profile = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const ours = (path) => (f) => f.url.endsWith(`/dist/src/${path}`);
const fn = (name, path) => (f) => f.functionName === name && (path === undefined || f.url.endsWith(path));
const url = (re) => (f) => re.test(f.url);
/**
 * The frame of the function that starts on the line of the build's `path` holding `text` (the
 * arrow callbacks of client.js have no names; their lines move from build to build).
 */
const linesOf = new Map();
const line = (path, text) => (f) => {
  if (!f.url.endsWith(`/dist/src/${path}`)) return false;
  if (!linesOf.has(f.url)) linesOf.set(f.url, readFileSync(fileURLToPath(f.url), 'utf8').split('\n'));
  return linesOf.get(f.url)[f.lineNumber]?.includes(text) === true;
};
const any = (...tests) => (f) => tests.some((t) => t(f));

/**
 * [part, test on one frame, where the test applies]: 'leaf' = the sample's own frame only,
 * 'stack' = anywhere on its stack. First match wins.
 */
const RULES = [
  ['GC', fn('(garbage collector)'), 'leaf'],
  ['start-up: loading and compiling modules', any(url(/^node:internal\/modules\//), fn('wrapSafe'), fn('compileFunction')), 'stack'],
  ['DC: key pair generation (ECDH P-256, DER framing)', fn('generateDcKeyPairDer'), 'stack'],
  ['DC: signature check after signing (node:crypto verify)', fn('verifySignature', '/dist/src/tls/signature-schemes.js'), 'stack'],
  ['DC: signing with the certificate key', any(fn('sign', '/dist/src/tls/signer.js'), fn('sign', '/dist/src/signer/in-memory.js')), 'stack'],
  ['DC: choosing the scheme, encoding, PEM, expiry', fn('issueDelegatedCredential'), 'stack'],
  ['reading the output Secret: credential decode + signature check', fn('inspectCredential'), 'stack'],
  ['certificate key GET once per burst (parse, signer)', fn('readSigningKey'), 'stack'],
  // The bodies: JSON.stringify runs in request()'s own frame, JSON.parse in the response and watch callbacks.
  ['JSON.stringify of request bodies', fn('request', '/dist/src/operator/apiserver/client.js'), 'leaf'],
  ['JSON.parse of responses', line('operator/apiserver/client.js', '({ body, truncated }) =>'), 'leaf'],
  ['watch: JSON.parse of events', line('operator/apiserver/client.js', 'new JsonLineSplitter((line) =>'), 'leaf'],
  ['watch: informer (store, transform, handlers, queue)', fn('onEvent', '/dist/src/operator/informer.js'), 'stack'],
  ['watch: line splitting, socket reads', any(ours('operator/apiserver/json-lines.js'), line('operator/apiserver/client.js', "res.on('data', (chunk) =>")), 'stack'],
  ['HTTP: request write (TLS encryption, loopback send syscall)', any(fn('writev'), fn('writeBuffer'), fn('writeUtf8String'), fn('writeLatin1String')), 'leaf'],
  ['HTTP: request set-up (URL, headers, agent, socket pool)', any(fn('send', '/dist/src/operator/apiserver/client.js'), fn('onSocketNT'), fn('ClientRequest'), fn('end', 'node:_http_outgoing'), fn('onFree'), fn('emitFreeNT'), fn('keepSocketAlive'), fn('addRequest'), fn('removeSocket'), fn('responseOnEnd'), fn('responseKeepAlive')), 'stack'],
  ['HTTP: response read (HTTP parser, streams, body chunks)', any(fn('socketOnData'), fn('onStreamRead'), fn('parserOnBody'), fn('parserOnHeadersComplete'), fn('parserOnMessageComplete'), fn('endReadableNT'), fn('readBounded', '/dist/src/operator/apiserver/client.js')), 'stack'],
  ['reconcile: status (desired, equality, conditions)', any(ours('operator/status.js'), ours('operator/conditions.js')), 'stack'],
  ['reconcile: output Secret body', fn('buildOutputSecret'), 'stack'],
  ['reconcile: inspection (certificate, signer plan, output view, triggers)', fn('inspect', '/dist/src/operator/reconciler.js'), 'stack'],
  ['metrics', any(ours('operator/metrics.js'), url(/node_modules\/prom-client\//)), 'stack'],
  ['logging', any(ours('net/log.js'), ours('operator/logger.js')), 'stack'],
  ['events (Event recorder, burst summaries)', any(ours('operator/event-bursts.js'), fn('record', '/dist/src/operator/kube.js')), 'stack'],
  ['reconcile: the rest (renewal time, report, prime caches)', ours('operator/reconciler.js'), 'stack'],
  ['work queue and workers', any(ours('operator/queue.js'), ours('operator/controller.js')), 'stack'],
  ['leader election', ours('operator/leader.js'), 'stack'],
  ['timers, microtasks, promise plumbing', any(fn('listOnTimeout'), fn('processTimers'), fn('runMicrotasks'), fn('processTicksAndRejections')), 'leaf'],
  ['HTTP: other node:http/net/tls frames', url(/^node:(_http_|net$|tls$|https$|internal\/(stream|tls|net|http))/), 'leaf'],
];

const parts = new Map(RULES.map(([name]) => [name, 0]));
const other = new Map();
let idle = 0;
let busy = 0;
const frames = (id) => {
  const out = [];
  for (let n = id; n !== undefined; n = parent.get(n)) out.push(byId.get(n).callFrame);
  return out;
};
const label = (f) => `${f.functionName || '(anonymous)'} ${f.url.replace(/^file:\/\/.*?\/(dist|node_modules)\//, '$1/')}:${f.lineNumber + 1}`;
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i];
  const us = profile.timeDeltas[i] ?? 0;
  const stack = frames(id);
  if (stack[0].functionName === '(idle)') {
    idle += us;
    continue;
  }
  busy += us;
  const rule = RULES.find(([, test, where]) => (where === 'leaf' ? test(stack[0]) : stack.some(test)));
  if (rule) {
    parts.set(rule[0], parts.get(rule[0]) + us);
    if (detail !== undefined && rule[0].includes(detail)) {
      const k = stack.slice(0, 4).map(label).join(' < ');
      detailed.set(k, (detailed.get(k) ?? 0) + us);
    }
  }
  else {
    const k = stack.slice(0, 3).map(label).join(' < ');
    other.set(k, (other.get(k) ?? 0) + us);
  }
}
const otherUs = [...other.values()].reduce((a, b) => a + b, 0);
parts.set('other', otherUs);
const per = (us) => (issuances ? ` ${(us / issuances).toFixed(1).padStart(7)} µs/issuance` : '');
console.log(`${file}: busy ${(busy / 1e6).toFixed(2)} s, idle ${(idle / 1e6).toFixed(2)} s${issuances ? `, ${issuances} issuances: ${(busy / issuances / 1000).toFixed(2)} ms each` : ''}`);
for (const [name, us] of [...parts].sort((a, b) => b[1] - a[1])) {
  if (us === 0) continue;
  console.log(`${((100 * us) / busy).toFixed(1).padStart(5)} %${per(us)}  ${name}`);
}
if (showOther > 0) {
  console.log('\nother, by the innermost three frames:');
  for (const [k, us] of [...other].sort((a, b) => b[1] - a[1]).slice(0, showOther)) console.log(`${((100 * us) / busy).toFixed(2).padStart(6)} %  ${k}`);
}
if (detail !== undefined) {
  console.log(`\nparts matching "${detail}", by the innermost four frames:`);
  for (const [k, us] of [...detailed].sort((a, b) => b[1] - a[1]).slice(0, 40)) console.log(`${((100 * us) / busy).toFixed(2).padStart(6)} %  ${k}`);
}
