#!/usr/bin/env node
// Splits a kube-apiserver CPU profile (Go pprof, from /debug/pprof/profile) into disjoint parts by
// the frames on each sample's stack: which request kind (the DelegatedCredential status PUT, the
// Secret create, watch serving), and within the two writes which phase (managedFields, validation,
// CEL, etcd, decode, encode); the filter chain before the handler (authentication, P&F); the
// background (the watch cache fed from etcd, GC). A sample counts once, in the first part that
// matches, so the parts add up to the profile's total. Needs `go` (go tool pprof) on PATH.
//   node bench/scripts/apiserver-profile-partition.mjs CPU.pprof
import { execFileSync } from 'node:child_process';

const file = process.argv[2];
if (!file) {
  console.error('usage: node bench/scripts/apiserver-profile-partition.mjs CPU.pprof');
  process.exit(2);
}

const KINDS = [
  ['DelegatedCredential status PUT (crdHandler.serveStatus)', /crdHandler\)\.serveStatus/],
  ['watch serving (handleWatch: encode, write to each watcher)', /handlers\.handleWatch|WatchServer/],
  ['create (Secrets; Events are ~1 % of creates)', /CreateResource\.createHandler|restfulCreateResource/],
  ['update of core objects (Leases)', /handlers\.UpdateResource|restfulUpdateResource/],
  ['get', /getResourceHandler|restfulGetResource/],
  ['list', /ListResource|restfulListResource/],
  ['other custom-resource requests', /crdHandler\)\.serve/],
];
const WRITE_PHASES = [
  ['managedFields (field manager and its admission check)', /managedfields|fieldmanager/],
  ['CEL rules (the spec rules run on every status write)', /schema\/cel\./],
  ['schema and metadata validation', /ValidateUpdate|ValidateCustomResource|validation\.Validate|BeforeCreate|BeforeUpdate/],
  ['admission', /admission/],
  ['etcd write and decode of the stored result', /etcd3\.\(\*store\)\.(GuaranteedUpdate|Create)$|etcd3\.\(\*defaultDecoder\)|OptimisticPut|clientv3|grpc/],
  ['encode the response', /transformResponseObject|WriteObjectNegotiated|SerializeObject/],
  ['decode the request body', /versioning\.\(\*codec\)\.Decode|limitedReadBody/],
];
const FILTERS = [
  ['authentication: x509 client-certificate chain verification', /x509\.\(\*Certificate\)\.Verify/],
  ['authentication: other (token cache, …)', /AuthenticateRequest/],
  ['authorization (RBAC; system:masters short-cuts it)', /\.Authorize$/],
  ['priority and fairness', /fairqueuing|flowcontrol/],
];
const BACKGROUND = [
  ['filter chain before the handler', /timeoutHandler|DefaultBuildHandlerChain|filters\.|director\.ServeHTTP|otelhttp/],
  ['watch cache fed from etcd (every event decoded once)', /etcd3\.\(\*watchChan\)/],
  ['cacher: dispatch to watchers, watch cache', /cacher\./],
  ['GC (background mark, sweep)', /gcBgMarkWorker|bgsweep|bgscavenge|gcStart|markroot/],
  ['HTTP/TLS connection I/O (read, parse, write)', /crypto\/tls|net\/http\.\(\*conn\)|http2|net\.\(\*conn\)|bufio/],
  ['etcd client, gRPC I/O', /go\.etcd\.io|google\.golang\.org\/grpc/],
];

const text = execFileSync('go', ['tool', 'pprof', '-traces', file], { encoding: 'utf8', maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'ignore'] });
const unit = { ns: 1e-9, us: 1e-6, ms: 1e-3, s: 1 };
const parts = new Map();
let total = 0;
const add = (key, v) => parts.set(key, (parts.get(key) ?? 0) + v);
for (const block of text.split(/^-+\+-+$/m).slice(1)) {
  const lines = block.split('\n').filter((l) => l.trim() !== '');
  const head = /^\s*([\d.]+)(ns|us|ms|s)\s+(.*)$/.exec(lines[0] ?? '');
  if (!head) continue;
  const seconds = Number(head[1]) * unit[head[2]];
  const frames = [head[3].trim(), ...lines.slice(1).map((l) => l.trim())];
  const has = (re) => frames.some((f) => re.test(f));
  total += seconds;
  const kind = KINDS.find(([, re]) => has(re));
  if (kind) {
    const isWrite = kind === KINDS[0] || kind === KINDS[2];
    const phase = isWrite ? (WRITE_PHASES.find(([, re]) => has(re))?.[0] ?? 'other (handler, conversions, copies)') : '';
    add(`${kind[0]}\t${phase}`, seconds);
    continue;
  }
  const bg = BACKGROUND.find(([, re]) => has(re));
  if (bg === BACKGROUND[0]) add(`${bg[0]}\t${FILTERS.find(([, re]) => has(re))?.[0] ?? 'other filters (tracing, metrics, timeouts, routing)'}`, seconds);
  else add(`${bg?.[0] ?? 'other (runtime, timers, the apiserver’s own controllers)'}\t`, seconds);
}
const byTop = new Map();
for (const [key, v] of parts) {
  const [top] = key.split('\t');
  byTop.set(top, (byTop.get(top) ?? 0) + v);
}
const pct = (v) => `${((100 * v) / total).toFixed(1).padStart(5)} %`;
console.log(`total ${total.toFixed(2)} s of samples`);
for (const [top, v] of [...byTop].sort((a, b) => b[1] - a[1])) {
  console.log(`${v.toFixed(2).padStart(7)} s ${pct(v)}  ${top}`);
  for (const [key, w] of [...parts].filter(([k]) => k.startsWith(`${top}\t`) && !k.endsWith('\t')).sort((a, b) => b[1] - a[1])) {
    console.log(`${' '.repeat(10)}${w.toFixed(2).padStart(6)} s ${pct(w)}    - ${key.split('\t')[1]}`);
  }
}
