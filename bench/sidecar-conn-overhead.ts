/**
 * Issue 19 "the sidecar's per-connection overhead ≤ 100 µs over the bare stack": that overhead,
 * and the floor any TCP proxy pays on this kernel, resolved by measuring inside one server process.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/sidecar-conn-overhead.js [seconds=1] [concurrency=8] [rounds=20]
 *
 * Profiles of one server's path (BENCH_CASES=sidecar, the other servers idle): BENCH_CPU_PROF_DIR
 * (CPU), BENCH_HEAP_PROF (allocations), BENCH_SERVER_WRAP="strace -c -f -o FILE" (syscalls); the
 * run's last line gives the connections each server completed, to divide by.
 *
 * One server process (pinned to core 1) holds every server of the comparison at once:
 *   - the sidecar's terminator (src/sidecar/terminator.ts `listen`, our engine, a local key),
 *     proxying to an echo application in another process;
 *   - with BENCH_COMPARE_BUILD=DIR, the same from another build's dist/ (its own modules, loaded
 *     into the same process), so a change to the connection path is measured before/after;
 *   - the bare stack (src/tls/socket.ts `createServer`, what `dcctl serve` runs), echoing in process;
 *   - the floor, no TLS: a plain net proxy (accept, connect to the echo application, pipe both
 *     ways) and a plain net server echoing in process.
 * The load (one process on core 0, with the echo application on core 0 too) opens fresh
 * connections on `concurrency` lanes for `seconds` per slice: TLS 1.3 with our client for the TLS
 * servers, plain TCP for the floor; each connection writes 32 bytes, waits for them back, closes.
 * Every round measures each server for one slice, in an order rotated round by round; the server's
 * CPU is `process.cpuUsage()` (all its threads, GC helpers included) over the slice, divided by the
 * connections the load completed in it. Being one process with one heap and one JIT, the servers
 * share the machine's load of the moment far better than separate processes measured one after
 * another (bench/results/sidecar-perf.md §5–6: per-round noise of −47..+784 µs). The overhead is
 * the per-round difference sidecar − bare stack, and proxy − net server for the floor; medians of
 * the rounds. One heap means a GC started by one server's garbage can land in another's slice:
 * the slices are long enough (hundreds of connections) for that to even out.
 *
 * Loopback only; every loop is bounded by the slice's deadline and a per-connection timeout.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { connect as netConnect, createServer as netCreateServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUNDLE_KEYS } from '../src/operator/api/serving-bundle.js';
import { ClientConfig } from '../src/tls/client.js';
import { connect as tlsConnect, createServer as tlsCreateServer } from '../src/tls/socket.js';
import { credentialFiles, makePki } from '../test/unit/sidecar/fixtures.js';
import { REQUEST } from './handshake-support.js';
import type * as Terminator from '../src/sidecar/terminator.js';
import type * as Material from '../src/sidecar/material.js';
import type * as Metrics from '../src/sidecar/metrics.js';
import type * as Status from '../src/sidecar/status.js';
import type * as OursEngine from '../src/sidecar/ours-engine.js';
import type * as Tracker from '../src/net/connection-tracker.js';
import { canPin, fmt, importFromBuild, loadAverage, median, nextMessage, send, spawnNode } from './tls-support.js';

const SCRIPT = fileURLToPath(import.meta.url);
const THIS_BUILD = join(dirname(SCRIPT), '..');
const COMPARED_BUILD = process.env['BENCH_COMPARE_BUILD'];
/** BENCH_CASES=sidecar,bare-tls,...: only these servers (e.g. one, under BENCH_CPU_PROF_DIR, for a profile of its path). */
const ONLY_CASES = process.env['BENCH_CASES']?.split(',');
/** BENCH_CPU_PROF_DIR=DIR: the server process runs under `node --cpu-prof`, its profile written to DIR on exit. */
const PROFILE_DIR = process.env['BENCH_CPU_PROF_DIR'];
/**
 * BENCH_HEAP_PROF=FILE: the server process samples every allocation (the inspector's sampling
 * heap profiler, objects collected by GC included, every 256 bytes on average) from its start to
 * its exit and writes the profile (JSON) to FILE; with BENCH_CASES, per connection of one server.
 */
const HEAP_PROFILE = process.env['BENCH_HEAP_PROF'];
/** BENCH_SERVER_WRAP="strace -c -f -o FILE": a command the server process runs under (syscalls per connection). */
const SERVER_WRAP = process.env['BENCH_SERVER_WRAP']?.split(' ').filter(Boolean);
const SERVER_CPU = 1;
const LOAD_CPU = 0;
/** A connection that does not finish in this long counts as failed (a stuck server ends the slice, not the bench). */
const CONNECTION_TIMEOUT_MS = 5000;

type CaseName = 'sidecar' | 'sidecar-compared' | 'bare-tls' | 'net-proxy' | 'net-server';
const CASE_LABELS: Record<CaseName, string> = {
  sidecar: 'sidecar (terminator, our engine, local key) -> echo app',
  'sidecar-compared': `sidecar, build ${COMPARED_BUILD ?? ''}`,
  'bare-tls': 'bare stack (src/tls createServer, as dcctl serve), echo in process',
  'net-proxy': 'plain net proxy (no TLS) -> echo app',
  'net-server': 'plain net server (no TLS), echo in process',
};
const TLS_CASES = new Set<CaseName>(['sidecar', 'sidecar-compared', 'bare-tls']);

interface SliceResult {
  readonly completed: number;
  readonly failed: number;
}

// --- the echo application (core 0) -----------------------------------------------------------------

async function echoRole(): Promise<void> {
  const server = netCreateServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    s.on('data', (d) => s.write(d));
    s.on('end', () => s.end());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  process.on('message', (m) => {
    if (m === 'exit') process.exit(0);
  });
  process.send!((server.address() as AddressInfo).port);
}

// --- the servers (core 1) ---------------------------------------------------------------------------

/** The modules of one build that the sidecar's listener needs (this build's, or BENCH_COMPARE_BUILD's). */
async function sidecarListener(dist: string, files: Record<string, string | Uint8Array>, upstreamPort: number): Promise<Server> {
  const terminator = await importFromBuild<typeof Terminator>(dist, 'src/sidecar/terminator.js');
  const material = await importFromBuild<typeof Material>(dist, 'src/sidecar/material.js');
  const metrics = await importFromBuild<typeof Metrics>(dist, 'src/sidecar/metrics.js');
  const status = await importFromBuild<typeof Status>(dist, 'src/sidecar/status.js');
  const engine = await importFromBuild<typeof OursEngine>(dist, 'src/sidecar/ours-engine.js');
  const tracker = await importFromBuild<typeof Tracker>(dist, 'src/net/connection-tracker.js');
  const store = new material.MaterialStore();
  store.replace(material.validateServingMaterial('/mem', Object.fromEntries(Object.entries(files).map(([k, v]) => [k, typeof v === 'string' ? Buffer.from(v) : v]))));
  const quiet = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} };
  const listener = await terminator.listen('127.0.0.1', 0, {
    store,
    metrics: new metrics.SidecarMetrics(store, new status.SidecarStatus()),
    tracker: new tracker.ConnectionTracker(10_000, 0),
    policy: { certificateEngine: 'ours', keylessFor: undefined },
    upstream: { host: '127.0.0.1', port: upstreamPort },
    handshakeTimeoutMs: 10_000,
    ours: engine.createOursEngine({ store, keylessFor: undefined }),
    log: quiet,
  });
  return listener.server;
}

/** The floor: accept, connect to the application, pipe both ways; no TLS, no stream of ours. */
function netProxy(upstreamPort: number): Server {
  return netCreateServer({ allowHalfOpen: true }, (client) => {
    client.setNoDelay(true);
    const upstream = netConnect({ host: '127.0.0.1', port: upstreamPort, allowHalfOpen: true });
    upstream.setNoDelay(true);
    const both = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', both);
    upstream.on('error', both);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  });
}

function netEcho(): Server {
  return netCreateServer({ allowHalfOpen: true }, (s) => {
    s.setNoDelay(true);
    s.on('error', () => {});
    s.on('data', (d) => s.write(d));
    s.on('end', () => s.end());
  });
}

async function listenOn(server: Server): Promise<number> {
  if (!server.listening) await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

async function serverRole(upstreamPort: number): Promise<void> {
  const pki = await makePki();
  const files = { ...(await credentialFiles(pki, { algorithms: ['ecdsa_secp256r1_sha256'], certificateKey: true })), [BUNDLE_KEYS.fallback]: 'CertificateKey' };
  const bare = tlsCreateServer({ cert: pki.leaf.pem, key: pki.leaf.key.privateKeyPem }, (s) => {
    s.on('error', () => {});
    s.on('data', (d: Buffer) => s.write(d));
    s.on('end', () => s.end());
  });
  const servers: Partial<Record<CaseName, Server>> = {
    sidecar: await sidecarListener(THIS_BUILD, files, upstreamPort),
    ...(COMPARED_BUILD ? { 'sidecar-compared': await sidecarListener(COMPARED_BUILD, files, upstreamPort) } : {}),
    'bare-tls': bare,
    'net-proxy': netProxy(upstreamPort),
    'net-server': netEcho(),
  };
  const ports: Partial<Record<CaseName, number>> = {};
  for (const [name, server] of Object.entries(servers) as [CaseName, Server][]) ports[name] = await listenOn(server);
  const heapSession = HEAP_PROFILE ? await startHeapSampling() : undefined;
  let mark = process.cpuUsage();
  process.on('message', (m: string) => {
    if (m === 'start') {
      mark = process.cpuUsage();
      send(process as unknown as ChildProcess, 'started');
    } else if (m === 'stop') {
      const d = process.cpuUsage(mark);
      send(process as unknown as ChildProcess, d.user + d.system);
    } else if (m === 'exit') {
      if (heapSession) void writeHeapProfile(heapSession, HEAP_PROFILE!).finally(() => process.exit(0));
      else process.exit(0);
    }
  });
  process.send!(ports);
}

async function startHeapSampling(): Promise<Session> {
  const session = new Session();
  session.connect();
  await session.post('HeapProfiler.startSampling', { samplingInterval: 256, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  return session;
}

async function writeHeapProfile(session: Session, file: string): Promise<void> {
  const { profile } = await session.post('HeapProfiler.stopSampling');
  await writeFile(file, JSON.stringify(profile));
}

// --- the load (core 0) ------------------------------------------------------------------------------

function oneConnection(port: number, tls: boolean, config: ClientConfig): Promise<boolean> {
  return new Promise((resolve) => {
    let got = 0;
    let done = false;
    const finish = (ok: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), CONNECTION_TIMEOUT_MS);
    const s: Socket | ReturnType<typeof tlsConnect> = tls
      ? tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', config, handshakeTimeout: CONNECTION_TIMEOUT_MS }, () => s.write(REQUEST))
      : netConnect({ host: '127.0.0.1', port }, () => s.write(REQUEST));
    s.on('data', (d: Buffer) => {
      got += d.length;
      if (got >= REQUEST.length) finish(true);
    });
    s.on('error', () => finish(false));
    s.on('close', () => finish(got >= REQUEST.length));
  });
}

async function loadRole(): Promise<void> {
  const config = new ClientConfig({ servername: 'localhost', rejectUnauthorized: false });
  process.on('message', (m: { port: number; tls: boolean; seconds: number; concurrency: number } | 'exit') => {
    if (m === 'exit') process.exit(0);
    void (async () => {
      let completed = 0;
      let failed = 0;
      const until = Date.now() + m.seconds * 1000;
      await Promise.all(
        Array.from({ length: m.concurrency }, async () => {
          while (Date.now() < until) {
            if (await oneConnection(m.port, m.tls, config)) completed++;
            else failed++;
          }
        }),
      );
      process.send!({ completed, failed } satisfies SliceResult);
    })();
  });
  process.send!('ready');
}

// --- the run ----------------------------------------------------------------------------------------

async function slice(server: ChildProcess, load: ChildProcess, port: number, tls: boolean, seconds: number, concurrency: number): Promise<{ us: number; rate: number; failed: number; completed: number }> {
  send(server, 'start');
  await nextMessage<string>(server);
  send(load, { port, tls, seconds, concurrency });
  const r = await nextMessage<SliceResult>(load);
  send(server, 'stop');
  const cpuUs = await nextMessage<number>(server);
  return { us: cpuUs / Math.max(1, r.completed), rate: r.completed / seconds, failed: r.failed, completed: r.completed };
}

async function main(): Promise<void> {
  const [seconds = 1, concurrency = 8, rounds = 20] = process.argv.slice(2).map(Number);
  const pin = canPin();
  const echo = spawnNode(SCRIPT, ['--echo'], pin ? LOAD_CPU : undefined);
  const echoPort = await nextMessage<number>(echo);
  const serverFlags = PROFILE_DIR ? ['--cpu-prof', '--cpu-prof-dir', PROFILE_DIR] : [];
  const server = SERVER_WRAP
    ? spawn(SERVER_WRAP[0]!, [...SERVER_WRAP.slice(1), ...(pin ? ['taskset', '-c', String(SERVER_CPU)] : []), process.execPath, ...serverFlags, SCRIPT, '--server', String(echoPort)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    : spawnNode(SCRIPT, ['--server', String(echoPort)], pin ? SERVER_CPU : undefined, serverFlags);
  const ports = await nextMessage<Partial<Record<CaseName, number>>>(server);
  const load = spawnNode(SCRIPT, ['--load'], pin ? LOAD_CPU : undefined);
  await nextMessage<string>(load);
  const cases = (Object.keys(ports) as CaseName[]).filter((c) => !ONLY_CASES || ONLY_CASES.includes(c));
  console.log(`sidecar per-connection overhead, one server process: ${rounds} rounds x ${cases.length} slices of ${seconds} s, ${concurrency} lanes, node ${process.version}, load average ${loadAverage()}`);
  /** Every connection each server completed, warm-up included (for profiles of the whole run: per connection). */
  const total: Record<string, number> = {};
  // Warm-up: every server, one slice, not counted.
  for (const c of cases) total[c] = (await slice(server, load, ports[c]!, TLS_CASES.has(c), seconds, concurrency)).completed;
  const us: Record<string, number[]> = {};
  const rates: Record<string, number[]> = {};
  let failed = 0;
  for (let r = 0; r < rounds; r++) {
    const order = cases.map((_, k) => cases[(k + r) % cases.length]!);
    for (const c of order) {
      const s = await slice(server, load, ports[c]!, TLS_CASES.has(c), seconds, concurrency);
      (us[c] ??= []).push(s.us);
      total[c]! += s.completed;
      (rates[c] ??= []).push(s.rate);
      failed += s.failed;
    }
  }
  for (const child of [load, server, echo]) send(child, 'exit');
  console.log(`load average after: ${loadAverage()}; failed connections: ${failed}; completed, warm-up included: ${cases.map((c) => `${c} ${total[c]}`).join(', ')}`);
  console.log('\n| server | connections/s (median) | server CPU µs per connection (median) | interquartile range |');
  console.log('| --- | ---: | ---: | --- |');
  for (const c of cases) {
    const sorted = [...us[c]!].sort((a, b) => a - b);
    console.log(`| ${CASE_LABELS[c]} | ${fmt(median(rates[c]!))} | ${fmt(median(us[c]!))} | ${fmt(sorted[Math.floor(sorted.length / 4)]!)}–${fmt(sorted[Math.floor((3 * sorted.length) / 4)]!)} |`);
  }
  if (!['sidecar', 'bare-tls', 'net-proxy', 'net-server'].every((c) => us[c])) return;
  const diff = (a: CaseName, b: CaseName): number[] => us[a]!.map((x, i) => x - us[b]![i]!);
  const rows: [string, number[]][] = [
    ['sidecar − bare stack (the overhead)', diff('sidecar', 'bare-tls')],
    ...(COMPARED_BUILD && us['sidecar-compared']
      ? ([
          ['sidecar of the compared build − bare stack', diff('sidecar-compared', 'bare-tls')],
          ['sidecar − sidecar of the compared build (this build\'s change)', diff('sidecar', 'sidecar-compared')],
        ] as [string, number[]][])
      : []),
    ['net proxy − net server (the floor: a second TCP connection, proxied)', diff('net-proxy', 'net-server')],
    ['(sidecar − bare stack) − (net proxy − net server): ours above the floor', us['sidecar']!.map((x, i) => x - us['bare-tls']![i]! - (us['net-proxy']![i]! - us['net-server']![i]!))],
  ];
  console.log('\n| per-round difference | median µs | interquartile range | all rounds |');
  console.log('| --- | ---: | --- | --- |');
  for (const [label, d] of rows) {
    const sorted = [...d].sort((a, b) => a - b);
    console.log(`| ${label} | ${fmt(median(d))} | ${fmt(sorted[Math.floor(sorted.length / 4)]!)}–${fmt(sorted[Math.floor((3 * sorted.length) / 4)]!)} | ${d.map((x) => fmt(x)).join(', ')} |`);
  }
}

const role = process.argv[2];
if (role === '--echo') await echoRole();
else if (role === '--server') await serverRole(Number(process.argv[3]));
else if (role === '--load') await loadRole();
else await main();
