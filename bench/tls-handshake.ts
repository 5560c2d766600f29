/**
 * Full TLS 1.3 handshakes per second on ONE server core: our server (src/tls) vs a node:tls
 * (OpenSSL) server, with the same ECDSA P-256 and RSA-2048 certificates.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/tls-handshake.js [seconds=5] [concurrency=16] [rounds=3] [warmup=5]
 *
 * The server runs in its own process pinned to core 1 (`taskset -c 1`); the load comes from a
 * separate process pinned to core 0 that opens fresh connections with node:tls (the same client
 * for both servers, no session reuse, x25519), writes 32 bytes and waits for the echo, on
 * `concurrency` lanes. Servers alternate round by round. Reported per configuration: medians
 * over rounds of handshakes/s, server CPU ms per handshake (user+system of the server process
 * divided by completed handshakes; 1000 / that is the capacity of one fully busy core) and the
 * connect-to-echo latency p50/p99.
 *
 * Each round starts a fresh server process and loads it for `warmup` seconds before measuring.
 * A terminator runs for hours, so the steady state is the number that matters; in the first
 * seconds both servers pay for V8 compiling their JavaScript on the pinned core (our stack has
 * far more JavaScript on the hot path than node:tls, whose handshake is C). `warmup=0.5`
 * measures that start-up phase instead.
 *
 * Environment: BENCH_KEY_TYPES (default "ecdsa-p256,rsa-2048"); BENCH_WARM_UP=<n> adds our server
 * warmed up with n in-memory handshakes at start (its start-up cost goes to stderr);
 * BENCH_BASELINE_DIST=<dir> adds our server from another build's dist/ (before/after in one run);
 * BENCH_NGINX=1 adds nginx (stream module, same certificate, one worker process, pinned the same
 * way; it answers 32 bytes instead of echoing); BENCH_MODE=resumed resumes every connection of a
 * lane after its first with the previous session.
 */
import { fileURLToPath } from 'node:url';
import type * as nodeTls from 'node:tls';
import {
  SERVER_IMPL_NAMES,
  canPin,
  runEchoLoad,
  fmt,
  type EchoLoadResult,
  type HandshakeRound,
  loadAverage,
  measureHandshakeRound,
  makeCertificates,
  median,
  serverRole,
  spawnNode,
  handshakeServerImpls,
  type ServerImpl,
} from './tls-support.js';

const SCRIPT = fileURLToPath(import.meta.url);

type LoadResult = EchoLoadResult;

/**
 * Load child: fresh connections back to back on `concurrency` lanes for `seconds`. resumed: each
 * lane offers the session of its previous connection (TLS 1.3 PSK with (EC)DHE, as node:tls does).
 */
async function loadRole(port: number, seconds: number, concurrency: number, warmupSeconds: number, resumed: boolean): Promise<void> {
  const options: nodeTls.ConnectionOptions = { port, host: '127.0.0.1', servername: 'localhost', minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', rejectUnauthorized: false, ecdhCurve: 'X25519' };
  await runEchoLoad(options, { seconds, concurrency, warmupSeconds, resumed });
}

type Round = HandshakeRound & { readonly reuseRate: number };

async function oneRound(impl: ServerImpl, cert: string, key: string, seconds: number, concurrency: number, warmup: number, pin: boolean, resumed: boolean): Promise<Round> {
  const server = spawnNode(SCRIPT, ['--server', impl, cert, key], pin ? 1 : undefined);
  const r = await measureHandshakeRound<LoadResult>(server, (port) =>
    spawnNode(SCRIPT, ['--load', String(port), String(seconds), String(concurrency), String(warmup), resumed ? 'resumed' : 'full'], pin ? 0 : undefined),
  );
  return { ...r, reuseRate: r.load.completed > 0 ? r.load.reused / r.load.completed : 0 };
}

async function main(): Promise<void> {
  const [seconds = 5, concurrency = 16, rounds = 3, warmup = 5] = process.argv.slice(2).map(Number);
  const pin = canPin();
  const impls = handshakeServerImpls();
  const keyTypes = (process.env.BENCH_KEY_TYPES ?? 'ecdsa-p256,rsa-2048').split(',') as ('ecdsa-p256' | 'rsa-2048')[];
  const { certs, cleanup } = await makeCertificates(keyTypes);
  const resumed = process.env.BENCH_MODE === 'resumed';
  console.log(`# TLS 1.3 ${resumed ? 'resumed (PSK-DHE)' : 'full'} handshakes, ${seconds}s x ${rounds} rounds after ${warmup}s of warm-up, ${concurrency} lanes, server ${pin ? 'pinned to core 1, load on core 0' : 'not pinned (no taskset)'}; node ${process.version}; load average ${loadAverage()}`);
  const lines: string[] = [];
  lines.push('| certificate | server | handshakes/s (median) | all rounds | server CPU ms/handshake (median) | capacity of one core, handshakes/s | resumed share | p50 ms | p99 ms | failed |');
  lines.push('| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  const summary: string[] = [];
  try {
    for (const c of certs) {
      const results = new Map<ServerImpl, Round[]>(impls.map((impl) => [impl, []]));
      for (let i = 0; i < rounds; i++) {
        for (const impl of i % 2 === 0 ? impls : [...impls].reverse()) {
          results.get(impl)!.push(await oneRound(impl, c.cert, c.key, seconds, concurrency, warmup, pin, resumed));
        }
      }
      const med = new Map<ServerImpl, { rate: number; cpu: number }>();
      for (const impl of impls) {
        const rs = results.get(impl)!;
        const rate = median(rs.map((r) => r.rate));
        const cpu = median(rs.map((r) => r.cpuMsPerHandshake));
        med.set(impl, { rate, cpu });
        lines.push(
          `| ${c.keyType} | ${SERVER_IMPL_NAMES[impl]} | ${fmt(rate)} | ${rs.map((r) => fmt(r.rate)).join(', ')} | ${fmt(cpu, 3)} | ${fmt(1000 / cpu)} | ${fmt(100 * median(rs.map((r) => r.reuseRate)))}% | ${fmt(median(rs.map((r) => r.p50)), 2)} | ${fmt(median(rs.map((r) => r.p99)), 2)} | ${rs.reduce((a, r) => a + r.failed, 0)} |`,
        );
      }
      const node = med.get('node')!;
      for (const impl of impls.filter((i) => i !== 'node')) {
        const m = med.get(impl)!;
        summary.push(
          `${c.keyType}: ${SERVER_IMPL_NAMES[impl]} / node:tls: handshakes/s ${fmt(m.rate / node.rate, 2)}x; capacity per core (by server CPU) ${fmt(node.cpu / m.cpu, 2)}x; server CPU per handshake ${fmt(m.cpu / node.cpu, 2)}x`,
        );
      }
    }
  } finally {
    await cleanup();
  }
  console.log(lines.join('\n'));
  console.log('');
  for (const s of summary) console.log(s);
}

const role = process.argv[2];
if (role === '--server') {
  await serverRole(process.argv[3] as ServerImpl, process.argv[4]!, process.argv[5]!, 'echo');
} else if (role === '--load') {
  await loadRole(Number(process.argv[3]), Number(process.argv[4]), Number(process.argv[5]), Number(process.argv[6]), process.argv[7] === 'resumed');
} else {
  await main();
}
