/**
 * Where a server's CPU per connection goes behind real sockets: a floor with no TLS at all, our
 * server (src/tls) and node:tls, in one run, alternating round by round.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/socket-path.js [seconds=4] [concurrency=16] [rounds=5] [warmup=3]
 *
 * - plain: a net server doing what a TLS server does per connection, minus TLS: accept, two
 *   reads and two writes (the client sends 256 bytes, gets them back, sends 32, gets them back,
 *   as a ClientHello/flight and Finished+data/echo exchange), the client's close, our end.
 * - ours / node:tls: full TLS 1.3 handshakes (P-256 certificate, x25519), node:tls clients, 32
 *   bytes echoed, as bench/tls-handshake.ts.
 * - with BENCH_BASELINE_DIST=<dist/> also our server from that build (before/after in one run);
 * - with BENCH_OURS_NODE_FLAGS="<flags>" also our server started as `node <flags>` (V8's GC
 *   settings, e.g. --single-threaded-gc or --max-semi-space-size=N, as a deployment could set).
 *
 * Each server is a fresh process pinned to core 1 (load on core 0), loaded `warmup` s before
 * `seconds` are measured. Per connection: process CPU (user + system, /proc via cpuUsage), the
 * split into user and system (kernel: accept, read, write, close), the main thread's own CPU
 * (`threadCpuUsage`; the rest of the process is helper threads: V8's parallel GC, libuv's pool),
 * and main-thread GC pauses from perf_hooks 'gc' entries (their count and summed duration).
 * Medians over rounds; the differences to `plain` are per round, then the median.
 */
import { createServer as createNetServer, connect as netConnect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { canPin, countingEcho, echoOnce, fmt, listenAndReport, loadAverage, makeCertificates, measureHandshakeRound, median, runConnectionLanes, serverRole, spawnNode, type HandshakeLoadResult, type ServerStats } from './tls-support.js';

const SCRIPT = fileURLToPath(import.meta.url);

type Impl = 'plain' | 'ours' | 'node' | 'ours-base' | 'ours-flags';
const NODE_FLAGS = (process.env.BENCH_OURS_NODE_FLAGS ?? '').split(' ').filter((f) => f !== '');
const NAMES: Readonly<Record<Impl, string>> = {
  plain: 'plain net, no TLS (floor)',
  ours: 'ours (src/tls)',
  node: 'node:tls',
  'ours-base': 'ours, baseline build',
  'ours-flags': `ours, node ${NODE_FLAGS.join(' ')}`,
};

/** One plain connection: 256 bytes there and back, then 32, then close. Undefined on error or after 10 s. */
function plainOnce(port: number, first: Buffer, second: Buffer): Promise<number | undefined> {
  return new Promise((resolve) => {
    const started = process.hrtime.bigint();
    const s = netConnect({ port, host: '127.0.0.1', noDelay: true }, () => s.write(first));
    let got = 0;
    let done = false;
    const finish = (ms: number | undefined): void => {
      if (done) return;
      done = true;
      s.destroy();
      resolve(ms);
    };
    s.setTimeout(10_000, () => finish(undefined));
    s.on('data', (d: Buffer) => {
      got += d.length;
      if (got === first.length) s.write(second);
      else if (got >= first.length + second.length) finish(Number(process.hrtime.bigint() - started) / 1e6);
    });
    s.on('error', () => finish(undefined));
  });
}

async function loadRole(kind: 'plain' | 'tls', port: number, seconds: number, concurrency: number, warmupSeconds: number): Promise<void> {
  const run = { seconds, concurrency, warmupSeconds };
  if (kind === 'plain') {
    const first = Buffer.alloc(256, 0x16);
    const second = Buffer.alloc(32, 0x61);
    await runConnectionLanes(() => plainOnce(port, first, second), () => undefined, run);
  }
  const payload = Buffer.alloc(32, 0x61);
  const options = { port, host: '127.0.0.1', servername: 'localhost', minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', rejectUnauthorized: false, ecdhCurve: 'X25519' } as const;
  await runConnectionLanes(() => echoOnce(options, payload), () => undefined, run);
}

async function plainServerRole(): Promise<void> {
  const { handler, take } = countingEcho();
  await listenAndReport(createNetServer({ allowHalfOpen: true, noDelay: true }, handler), take);
}

interface Round {
  readonly rate: number;
  readonly cpuUs: number;
  readonly userUs: number;
  readonly systemUs: number;
  readonly mainUs: number;
  readonly helperUs: number;
  readonly gcUs: number;
  readonly gcPer1k: number;
  readonly failed: number;
}

function perConnection(stats: ServerStats, rate: number, failed: number): Round {
  const n = stats.handshakes;
  const us = (ms: number | undefined): number => (n > 0 && ms !== undefined ? (1000 * ms) / n : NaN);
  return {
    rate,
    cpuUs: us(stats.cpuMs),
    userUs: us(stats.userMs),
    systemUs: us(stats.systemMs),
    mainUs: us(stats.mainThreadMs),
    helperUs: us(stats.mainThreadMs === undefined ? undefined : stats.cpuMs - stats.mainThreadMs),
    gcUs: us(stats.gcMs),
    gcPer1k: n > 0 && stats.gcCount !== undefined ? (1000 * stats.gcCount) / n : NaN,
    failed,
  };
}

async function oneRound(impl: Impl, cert: string, key: string, seconds: number, concurrency: number, warmup: number, pin: boolean): Promise<Round> {
  const server = spawnNode(SCRIPT, ['--server', impl === 'ours-flags' ? 'ours' : impl, cert, key], pin ? 1 : undefined, impl === 'ours-flags' ? NODE_FLAGS : []);
  const r = await measureHandshakeRound<HandshakeLoadResult>(server, (port) =>
    spawnNode(SCRIPT, ['--load', impl === 'plain' ? 'plain' : 'tls', String(port), String(seconds), String(concurrency), String(warmup)], pin ? 0 : undefined),
  );
  return perConnection(r.stats, r.rate, r.failed);
}

async function main(): Promise<void> {
  const [seconds = 4, concurrency = 16, rounds = 5, warmup = 3] = process.argv.slice(2).map(Number);
  process.env.BENCH_GC_ENTRIES = '1'; // the server children count GC pauses
  const pin = canPin();
  const impls: Impl[] = ['plain', 'ours', 'node', ...(process.env.BENCH_BASELINE_DIST ? (['ours-base'] as const) : []), ...(NODE_FLAGS.length > 0 ? (['ours-flags'] as const) : [])];
  const { certs, cleanup } = await makeCertificates(['ecdsa-p256']);
  const c = certs[0]!;
  console.log(`# socket path: per-connection server CPU, ${seconds}s x ${rounds} rounds after ${warmup}s of warm-up, ${concurrency} lanes, server ${pin ? 'pinned to core 1, load on core 0' : 'not pinned'}; node ${process.version}; load average ${loadAverage()}`);
  const results = new Map<Impl, Round[]>(impls.map((i) => [i, []]));
  try {
    for (let i = 0; i < rounds; i++) {
      for (const impl of i % 2 === 0 ? impls : [...impls].reverse()) {
        results.get(impl)!.push(await oneRound(impl, c.cert, c.key, seconds, concurrency, warmup, pin));
      }
    }
  } finally {
    await cleanup();
  }
  const m = (impl: Impl, f: (r: Round) => number): number => median(results.get(impl)!.map(f));
  console.log('| server | connections/s | CPU µs/conn | all rounds | user µs | system µs | main thread µs | other threads µs | GC pauses µs/conn | GCs per 1000 conns | failed |');
  console.log('| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const impl of impls) {
    const rs = results.get(impl)!;
    console.log(
      `| ${NAMES[impl]} | ${fmt(m(impl, (r) => r.rate))} | ${fmt(m(impl, (r) => r.cpuUs))} | ${rs.map((r) => fmt(r.cpuUs)).join(', ')} | ${fmt(m(impl, (r) => r.userUs))} | ${fmt(m(impl, (r) => r.systemUs))} | ${fmt(m(impl, (r) => r.mainUs))} | ${fmt(m(impl, (r) => r.helperUs))} | ${fmt(m(impl, (r) => r.gcUs), 1)} | ${fmt(m(impl, (r) => r.gcPer1k), 1)} | ${rs.reduce((a, r) => a + r.failed, 0)} |`,
    );
  }
  console.log('');
  // Differences per round (the same round's servers ran back to back), then medians.
  const diff = (a: Impl, b: Impl, f: (r: Round) => number): number => median(results.get(a)!.map((r, i) => f(r) - f(results.get(b)![i]!)));
  const ratio = (a: Impl, b: Impl): number => median(results.get(a)!.map((r, i) => r.cpuUs / results.get(b)![i]!.cpuUs));
  for (const impl of impls.filter((i) => i !== 'plain')) {
    console.log(
      `${NAMES[impl]} over the floor: CPU +${fmt(diff(impl, 'plain', (r) => r.cpuUs))} µs (user +${fmt(diff(impl, 'plain', (r) => r.userUs))}, system +${fmt(diff(impl, 'plain', (r) => r.systemUs))}, other threads +${fmt(diff(impl, 'plain', (r) => r.helperUs))})`,
    );
  }
  for (const impl of impls.filter((i) => i !== 'plain' && i !== 'node')) {
    console.log(`${NAMES[impl]} / node:tls, CPU per connection: ${fmt(ratio(impl, 'node'), 2)}x (median of per-round ratios); difference ${fmt(diff(impl, 'node', (r) => r.cpuUs))} µs`);
  }
  if (impls.includes('ours-base')) console.log(`ours / ours, baseline build: ${fmt(ratio('ours', 'ours-base'), 3)}x; difference ${fmt(diff('ours', 'ours-base', (r) => r.cpuUs))} µs`);
  if (impls.includes('ours-flags')) console.log(`${NAMES['ours-flags']} / ours: ${fmt(ratio('ours-flags', 'ours'), 3)}x; difference ${fmt(diff('ours-flags', 'ours', (r) => r.cpuUs))} µs`);
  console.log(`load average after ${loadAverage()}`);
}

const role = process.argv[2];
if (role === '--server') {
  const impl = process.argv[3] as 'plain' | 'ours' | 'node' | 'ours-base';
  if (impl === 'plain') await plainServerRole();
  else await serverRole(impl, process.argv[4]!, process.argv[5]!, 'echo');
} else if (role === '--load') {
  await loadRole(process.argv[3] as 'plain' | 'tls', Number(process.argv[4]), Number(process.argv[5]), Number(process.argv[6]), Number(process.argv[7]));
} else {
  await main();
}
