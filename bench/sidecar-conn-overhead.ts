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
 * BENCH_PROCESSES=1: the same comparison with every server in a process of its own, the way
 * they run in production, measured by the interleaved method of bench/handshake-interleaved.ts:
 *
 *   node dist/bench/sidecar-conn-overhead.js [slice=1] [concurrency=8] [passes=20] [warmup=3]    # with BENCH_PROCESSES=1
 *
 *   - the real sidecar (`dc-operator sidecar` of this build, our engine, tls.key mounted as
 *     kubelet lays it out), and with BENCH_COMPARE_BUILD=DIR that build's sidecar as well;
 *   - the real `dcctl serve` of this build (the bare stack; it answers `GET /` itself);
 *   - the floor: a plain net proxy and a plain net HTTP server (no TLS), each its own process;
 * all pinned to core 1 and alive for the whole run. The application behind the sidecar and the
 * net proxy is an HTTP server in its own process (core 0, with the load) that answers `GET /`
 * with the bytes `dcctl serve` answers and then closes, as `dcctl serve` does: each client sees
 * the same exchange from every server. The load (core 0; our TLS client, or plain TCP for the
 * floor) opens fresh connections on `concurrency` lanes, sends the request, reads to the end.
 * After `warmup` seconds of load on each server (not counted), every pass loads each server for
 * `slice` seconds, in an order rotated pass by pass. A server's CPU in its slice is read from
 * /proc: the total of all its threads from each thread's schedstat (ns), and the user/system
 * split from /proc/PID/stat (clock ticks, a sample: medians over many slices make it usable).
 * Reported: per server the medians per connection; per pair the median of the per-pass
 * differences (sidecar − dcctl serve, and the floor net proxy − net server), for the total, user
 * and system time. The system part of the floor is the kernel's work any L4 proxy pays for the
 * second connection (connect, write, read, shutdown, close on the application's socket).
 * BENCH_CPU_PROF_DIR=DIR: the sidecars and `dcctl serve` run under `node --cpu-prof` and write
 * DIR/<case>.cpuprofile when they stop (bench/scripts/cpuprofile-top.mjs summarises one);
 * BENCH_CASES=sidecar,dcctl-serve loads only those.
 *
 * Loopback only; every loop is bounded by the slice's deadline and a per-connection timeout.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { Session } from 'node:inspector/promises';
import { connect as netConnect, createServer as netCreateServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUNDLE_KEYS } from '../src/operator/api/serving-bundle.js';
import { ClientConfig } from '../src/tls/client.js';
import { connect as tlsConnect, createServer as tlsCreateServer } from '../src/tls/socket.js';
import { credentialFiles, makePki } from '../test/unit/sidecar/fixtures.js';
import { KubeletVolume } from '../test/unit/sidecar/kubelet-volume.js';
import { REQUEST } from './handshake-support.js';
import type * as Terminator from '../src/sidecar/terminator.js';
import type * as Material from '../src/sidecar/material.js';
import type * as Metrics from '../src/sidecar/metrics.js';
import type * as Status from '../src/sidecar/status.js';
import type * as OursEngine from '../src/sidecar/ours-engine.js';
import type * as Tracker from '../src/net/connection-tracker.js';
import { canPin, fmt, importFromBuild, loadAverage, median, nextMessage, send, spawnNode } from './tls-support.js';
import { processCpu, startServeProcess, startSidecarProcess, type ProcessCpu } from './sidecar-process.js';

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

/** What `dcctl serve` answers a certificate handshake's `GET /` with (src/cli/commands/serve.ts), byte for byte. */
const HTTP_RESPONSE = Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 12\r\nConnection: close\r\n\r\ncertificate\n', 'latin1');
const HTTP_OK = HTTP_RESPONSE.subarray(0, 'HTTP/1.1 200'.length);

/** An HTTP/1.x server of one request per connection: after the request head, the answer, then its end (as `dcctl serve`). */
function httpServer(): Server {
  return netCreateServer({ allowHalfOpen: true }, (s) => {
    s.setNoDelay(true);
    s.on('error', () => {});
    let head: string | undefined = '';
    s.on('data', (d: Buffer) => {
      if (head === undefined) return; // answered: one request per connection
      head += d.toString('latin1');
      if (head.includes('\r\n\r\n')) {
        head = undefined;
        s.end(HTTP_RESPONSE);
      }
    });
    s.on('end', () => s.end());
  });
}

/** BENCH_PROCESSES: a server of this file in a process of its own (the application, the floor's proxy or server); its port to the parent. */
async function serverProcessRole(server: Server): Promise<void> {
  process.on('message', (m) => {
    if (m === 'exit') process.exit(0);
  });
  process.send!(await listenOn(server));
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

/**
 * One fresh connection: sends REQUEST; without `toEnd` done when as many bytes came back (the
 * echo cases), with `toEnd` when the server closed its side after an HTTP 200 (the cases of
 * BENCH_PROCESSES, where every server answers like `dcctl serve`).
 */
function oneConnection(port: number, tls: boolean, config: ClientConfig, toEnd: boolean): Promise<boolean> {
  return new Promise((resolve) => {
    let got = 0;
    let first: Buffer | undefined;
    let done = false;
    const finish = (ok: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve(ok);
    };
    const answered = (): boolean => (toEnd ? first !== undefined && first.subarray(0, HTTP_OK.length).equals(HTTP_OK) : got >= REQUEST.length);
    const timer = setTimeout(() => finish(false), CONNECTION_TIMEOUT_MS);
    const s: Socket | ReturnType<typeof tlsConnect> = tls
      ? tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', config, handshakeTimeout: CONNECTION_TIMEOUT_MS }, () => s.write(REQUEST))
      : netConnect({ host: '127.0.0.1', port }, () => s.write(REQUEST));
    s.on('data', (d: Buffer) => {
      first ??= d;
      got += d.length;
      if (!toEnd && answered()) finish(true);
    });
    s.on('end', () => finish(answered()));
    s.on('error', () => finish(false));
    s.on('close', () => finish(answered()));
  });
}

async function loadRole(): Promise<void> {
  const config = new ClientConfig({ servername: 'localhost', rejectUnauthorized: false });
  process.on('message', (m: { port: number; tls: boolean; seconds: number; concurrency: number; toEnd?: boolean } | 'exit') => {
    if (m === 'exit') process.exit(0);
    void (async () => {
      let completed = 0;
      let failed = 0;
      const until = Date.now() + m.seconds * 1000;
      await Promise.all(
        Array.from({ length: m.concurrency }, async () => {
          while (Date.now() < until) {
            if (await oneConnection(m.port, m.tls, config, m.toEnd === true)) completed++;
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

// --- BENCH_PROCESSES: every server a process of its own --------------------------------------------

type ProcessCase = 'sidecar' | 'sidecar-compared' | 'dcctl-serve' | 'net-proxy' | 'net-server';
const PROCESS_LABELS: Record<ProcessCase, string> = {
  ...CASE_LABELS, // the compared sidecar's
  sidecar: 'sidecar (dc-operator sidecar, our engine, tls.key) -> HTTP app',
  'dcctl-serve': 'dcctl serve (bare stack), answers itself',
  'net-proxy': 'plain net proxy (no TLS) -> HTTP app',
  'net-server': 'plain net HTTP server (no TLS)',
};

interface ProcessSlice {
  readonly completed: number;
  readonly totalUs: number;
  /** The main thread's CPU less its GC pauses (BENCH_TRACE_GC only, else NaN): the slices' GC-free part, far less noisy. */
  readonly mainNoGcUs: number;
  readonly userUs: number;
  readonly systemUs: number;
  readonly rate: number;
  readonly failed: number;
}

/** One slice of load on the server process `pid`: its CPU per completed connection, from /proc. */
async function processSlice(pid: number, gc: GcCount, load: ChildProcess, port: number, tls: boolean, seconds: number, concurrency: number): Promise<ProcessSlice> {
  const before: ProcessCpu = processCpu(pid);
  const pausedBefore = gc.pauseMs;
  send(load, { port, tls, seconds, concurrency, toEnd: true });
  const r = await nextMessage<SliceResult>(load);
  const after = processCpu(pid);
  // The server's --trace-gc lines of the slice's end are read from its pipe first.
  await new Promise((resolve) => setTimeout(resolve, 20));
  const n = Math.max(1, r.completed);
  return {
    completed: r.completed,
    totalUs: (after.totalNs - before.totalNs) / 1000 / n,
    mainNoGcUs: TRACE_GC && gc.counting ? ((after.mainNs - before.mainNs) / 1000 - (gc.pauseMs - pausedBefore) * 1000) / n : NaN,
    userUs: (after.userUs - before.userUs) / n,
    systemUs: (after.systemUs - before.systemUs) / n,
    rate: r.completed / seconds,
    failed: r.failed,
  };
}

/** BENCH_TRACE_GC=1 (BENCH_PROCESSES): the sidecars and `dcctl serve` run under `node --trace-gc`; their collections are counted over the measured passes. */
const TRACE_GC = process.env['BENCH_TRACE_GC'] === '1';

interface GcCount {
  counting: boolean;
  scavenges: number;
  markCompacts: number;
  pauseMs: number;
  /** The heap each Mark-Compact left (MB, "-> N"): what stays alive, connections held after their end included. */
  readonly liveAfterMarkCompact: number[];
  /** Mark-Compacts by the reason V8 gives (the end of the line: "external memory pressure", "allocation failure", ...). */
  readonly reasons: Map<string, number>;
}

/** Counts the `--trace-gc` lines a server prints while `counting` (nothing without BENCH_TRACE_GC). */
function countGcLines(child: ChildProcess): GcCount {
  const count: GcCount = { counting: false, scavenges: 0, markCompacts: 0, pauseMs: 0, liveAfterMarkCompact: [], reasons: new Map() };
  let rest = '';
  child.stdout?.on('data', (d: Buffer) => {
    const lines = (rest + d.toString('latin1')).split('\n');
    rest = lines.pop()!;
    if (!count.counting) return;
    for (const l of lines) {
      const pause = /, ([\d.]+) \/ [\d.]+ ms/.exec(l);
      if (!pause) continue;
      if (l.includes('Scavenge')) count.scavenges++;
      else if (l.includes('Mark-Compact')) {
        count.markCompacts++;
        const live = /-> ([\d.]+) \(/.exec(l);
        if (live) count.liveAfterMarkCompact.push(Number(live[1]));
        const reason = /\) ([^;)]*?);? *(?:GC in old space requested|$)/.exec(l.slice(pause.index))?.[1]?.trim() ?? l.slice(pause.index + pause[0].length).trim();
        count.reasons.set(reason, (count.reasons.get(reason) ?? 0) + 1);
      }
      count.pauseMs += Number(pause[1]);
    }
  });
  return count;
}

function quartileRange(values: readonly number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  return `${fmt(sorted[Math.floor(sorted.length / 4)]!)} to ${fmt(sorted[Math.floor((3 * sorted.length) / 4)]!)}`;
}

async function processesMain(): Promise<void> {
  const [seconds = 1, concurrency = 8, passes = 20, warmup = 3] = process.argv.slice(2).map(Number);
  const pin = canPin();
  const serverCpu = pin ? SERVER_CPU : undefined;
  const work = await mkdtemp(join(tmpdir(), 'sidecar-conn-overhead-'));
  const children: ChildProcess[] = [];
  const started = <T extends { child: ChildProcess }>(s: T): T => {
    children.push(s.child);
    return s;
  };
  try {
    const app = started({ child: spawnNode(SCRIPT, ['--http-app'], pin ? LOAD_CPU : undefined) }).child;
    const appPort = await nextMessage<number>(app);
    const pki = await makePki();
    const bundle = new KubeletVolume(join(work, 'bundle'));
    await bundle.write({ ...(await credentialFiles(pki, { algorithms: ['ecdsa_secp256r1_sha256'], certificateKey: true })), [BUNDLE_KEYS.fallback]: 'CertificateKey' });
    const certFile = join(work, 'tls.crt');
    const keyFile = join(work, 'tls.key');
    await writeFile(certFile, pki.leaf.pem);
    await writeFile(keyFile, pki.leaf.key.privateKeyPem, { mode: 0o600 });
    const node = (name: ProcessCase): string[] => [
      process.execPath,
      ...(PROFILE_DIR ? ['--cpu-prof', '--cpu-prof-dir', PROFILE_DIR, '--cpu-prof-name', `${name}.cpuprofile`] : []),
      ...(TRACE_GC ? ['--trace-gc'] : []),
    ];
    const cli = (dist: string): string => join(dist, 'src', 'cli');
    const servers: { name: ProcessCase; pid: number; port: number; tls: boolean; gc: GcCount }[] = [];
    const add = (name: ProcessCase, tls: boolean, s: { child: ChildProcess; port: number }): void => {
      servers.push({ name, pid: s.child.pid!, port: s.port, tls, gc: countGcLines(s.child) });
    };
    add('sidecar', true, started(await startSidecarProcess(node('sidecar'), cli(THIS_BUILD), bundle.dir, appPort, 'ours', serverCpu)));
    if (COMPARED_BUILD) add('sidecar-compared', true, started(await startSidecarProcess(node('sidecar-compared'), cli(COMPARED_BUILD), bundle.dir, appPort, 'ours', serverCpu)));
    add('dcctl-serve', true, started(await startServeProcess(node('dcctl-serve'), cli(THIS_BUILD), ['--cert', certFile, '--key', keyFile], serverCpu)));
    for (const [name, args] of [['net-proxy', ['--net-proxy', String(appPort)]], ['net-server', ['--net-http']]] as const) {
      const child = started({ child: spawnNode(SCRIPT, args, serverCpu) }).child;
      add(name, false, { child, port: await nextMessage<number>(child) });
    }
    const load = started({ child: spawnNode(SCRIPT, ['--load'], pin ? LOAD_CPU : undefined) }).child;
    await nextMessage<string>(load);
    const cases = servers.filter((c) => !ONLY_CASES || ONLY_CASES.includes(c.name));
    console.log(
      `sidecar per-connection overhead, a process per server (BENCH_PROCESSES): ${passes} passes x ${cases.length} slices of ${seconds} s after ${warmup} s of warm-up each, ${concurrency} lanes, ` +
        `servers ${pin ? `pinned to core ${SERVER_CPU}, load and HTTP app on core ${LOAD_CPU}` : 'not pinned'}, node ${process.version}, load average ${loadAverage()}`,
    );
    for (const c of cases) await processSlice(c.pid, c.gc, load, c.port, c.tls, warmup, concurrency);
    const slices = new Map<ProcessCase, ProcessSlice[]>(cases.map((c) => [c.name, []]));
    for (const c of cases) c.gc.counting = true;
    for (let p = 0; p < passes; p++) {
      for (let k = 0; k < cases.length; k++) {
        const c = cases[(k + p) % cases.length]!;
        slices.get(c.name)!.push(await processSlice(c.pid, c.gc, load, c.port, c.tls, seconds, concurrency));
      }
    }
    for (const c of cases) c.gc.counting = false;
    console.log(`load average after: ${loadAverage()}; failed connections: ${[...slices.values()].flat().reduce((a, x) => a + x.failed, 0)}`);
    console.log('\n| server | connections/s (median) | CPU µs per connection (median) | interquartile range | user µs (median) | system µs (median) |');
    console.log('| --- | ---: | ---: | --- | ---: | ---: |');
    for (const c of cases) {
      const sl = slices.get(c.name)!;
      const total = sl.map((x) => x.totalUs);
      console.log(`| ${PROCESS_LABELS[c.name]} | ${fmt(median(sl.map((x) => x.rate)))} | ${fmt(median(total))} | ${quartileRange(total)} | ${fmt(median(sl.map((x) => x.userUs)))} | ${fmt(median(sl.map((x) => x.systemUs)))} |`);
    }
    if (TRACE_GC) {
      console.log('\n| server (node --trace-gc; all passes, warm-up excluded) | scavenges per 1000 connections | mark-compacts per 1000 | GC pause ms per 1000 (main thread) | heap after a mark-compact, MB (median) | mark-compacts by reason |');
      console.log('| --- | ---: | ---: | ---: | ---: | --- |');
      for (const c of cases) {
        const n = slices.get(c.name)!.reduce((a, x) => a + x.completed, 0) / 1000;
        const reasons = [...c.gc.reasons].sort((x, y) => y[1] - x[1]).map(([r, k]) => `${k}x ${r}`).join('; ');
        console.log(`| ${PROCESS_LABELS[c.name]} | ${fmt(c.gc.scavenges / n, 1)} | ${fmt(c.gc.markCompacts / n, 2)} | ${fmt(c.gc.pauseMs / n, 1)} | ${c.gc.liveAfterMarkCompact.length > 0 ? fmt(median(c.gc.liveAfterMarkCompact), 1) : '-'} | ${reasons} |`);
      }
    }
    const per = (name: ProcessCase, f: (x: ProcessSlice) => number): number[] | undefined => slices.get(name)?.map(f);
    const diff = (a: ProcessCase, b: ProcessCase, f: (x: ProcessSlice) => number): number[] | undefined => {
      const sa = per(a, f);
      const sb = per(b, f);
      return sa && sb ? sa.map((x, i) => x - sb[i]!) : undefined;
    };
    const rows: [string, ProcessCase, ProcessCase][] = [
      ['sidecar − dcctl serve (the overhead)', 'sidecar', 'dcctl-serve'],
      ['compared sidecar − dcctl serve', 'sidecar-compared', 'dcctl-serve'],
      ['sidecar − compared sidecar (this build\'s change)', 'sidecar', 'sidecar-compared'],
      ['net proxy − net server (the floor: any L4 proxy)', 'net-proxy', 'net-server'],
    ];
    console.log('\n| per-pass difference, µs per connection | total (median) | interquartile range | total (mean ± standard error) | user (median) | system (median) | all passes (total) |');
    console.log('| --- | ---: | --- | ---: | ---: | ---: | --- |');
    const show = (label: string, total: number[] | undefined, user: number[] | undefined, system: number[] | undefined): void => {
      if (!total || !user || !system) return;
      const mean = total.reduce((a, x) => a + x, 0) / total.length;
      const se = Math.sqrt(total.reduce((a, x) => a + (x - mean) ** 2, 0) / (total.length - 1) / total.length);
      console.log(`| ${label} | **${fmt(median(total))}** | ${quartileRange(total)} | ${fmt(mean)} ± ${fmt(se)} | ${fmt(median(user))} | ${fmt(median(system))} | ${total.map((x) => fmt(x)).join(', ')} |`);
    };
    for (const [label, a, b] of rows) show(label, diff(a, b, (x) => x.totalUs), diff(a, b, (x) => x.userUs), diff(a, b, (x) => x.systemUs));
    const aboveFloor = (f: (x: ProcessSlice) => number): number[] | undefined => {
      const overhead = diff('sidecar', 'dcctl-serve', f);
      const floor = diff('net-proxy', 'net-server', f);
      return overhead && floor ? overhead.map((x, i) => x - floor[i]!) : undefined;
    };
    show('(sidecar − dcctl serve) − floor: the sidecar above any L4 proxy', aboveFloor((x) => x.totalUs), aboveFloor((x) => x.userUs), aboveFloor((x) => x.systemUs));
    if (TRACE_GC) {
      console.log('\n| per-pass difference of the main thread\'s CPU less its GC pauses, µs per connection | median | interquartile range | mean ± standard error | per server (medians) |');
      console.log('| --- | ---: | --- | ---: | --- |');
      for (const [label, a, b] of rows.filter(([, a]) => a !== 'net-proxy')) {
        const d = diff(a, b, (x) => x.mainNoGcUs);
        if (!d) continue;
        const mean = d.reduce((acc, x) => acc + x, 0) / d.length;
        const se = Math.sqrt(d.reduce((acc, x) => acc + (x - mean) ** 2, 0) / (d.length - 1) / d.length);
        console.log(`| ${label} | **${fmt(median(d))}** | ${quartileRange(d)} | ${fmt(mean)} ± ${fmt(se)} | ${fmt(median(per(a, (x) => x.mainNoGcUs)!))} − ${fmt(median(per(b, (x) => x.mainNoGcUs)!))} |`);
      }
    }
  } finally {
    // SIGTERM lets each stop on its own (and write its profile), within 30 s.
    await Promise.all(children.map((child) => new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      child.kill('SIGTERM');
    })));
    await rm(work, { recursive: true, force: true });
  }
}

const role = process.argv[2];
if (role === '--echo') await echoRole();
else if (role === '--server') await serverRole(Number(process.argv[3]));
else if (role === '--load') await loadRole();
else if (role === '--http-app' || role === '--net-http') await serverProcessRole(httpServer());
else if (role === '--net-proxy') await serverProcessRole(netProxy(Number(process.argv[3])));
else if (process.env['BENCH_PROCESSES'] === '1') await processesMain();
else await main();
