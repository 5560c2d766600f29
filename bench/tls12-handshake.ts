/**
 * TLS 1.2 handshakes on ONE server core: our server (src/tls, TLS 1.2 path) vs a node:tls
 * (OpenSSL) server, with the same ECDSA P-256 and RSA-2048 certificates; full handshakes and
 * handshakes resumed with a session ticket (RFC 5077).
 *
 *   npx tsc -p tsconfig.json && node dist/bench/tls12-handshake.js [seconds=5] [concurrency=16] [rounds=3] [warmup=3]
 *
 * As bench/tls-handshake.ts: the server runs in its own process pinned to core 1, the load in a
 * process pinned to core 0 (node:tls clients with maxVersion TLSv1.2 and default groups, so
 * x25519, 32 bytes echoed per
 * connection, `concurrency` lanes); servers alternate round by round; each round is a fresh
 * server process warmed up for `warmup` seconds. "resumed": every lane offers the ticket of its
 * previous connection, so after the first connection of a lane every handshake is abbreviated
 * (the reuse rate is reported). Reported per configuration: medians over rounds of
 * handshakes/s and server CPU ms per handshake.
 */
import { fileURLToPath } from 'node:url';
import * as nodeTls from 'node:tls';
import type { Server } from 'node:net';
import { createServer as createOurServer } from '../src/tls/socket.js';
import {
  IMPLS,
  IMPL_NAMES,
  canPin,
  echoOnce,
  fmt,
  listenAndReport,
  loadAverage,
  makeCertificates,
  measureHandshakeRound,
  median,
  spawnNode,
  type HandshakeLoadResult,
  type HandshakeRound,
  type Impl,
} from './tls-support.js';

const SCRIPT = fileURLToPath(import.meta.url);

type Mode = 'full' | 'resumed';
const MODES: readonly Mode[] = ['full', 'resumed'];

interface LoadResult extends HandshakeLoadResult {
  readonly reused: number;
}

async function serverRole(impl: Impl, certFile: string, keyFile: string): Promise<void> {
  const { readFile } = await import('node:fs/promises');
  const cert = await readFile(certFile, 'utf8');
  const key = await readFile(keyFile, 'utf8');
  let handshakes = 0;
  const echo = (s: NodeJS.ReadWriteStream & { on(e: 'error', f: () => void): unknown; end(): unknown; write(d: Buffer): boolean }): void => {
    handshakes++;
    s.on('error', () => undefined);
    s.on('data', (d: Buffer) => s.write(d));
    s.on('end', () => s.end());
  };
  const server: Server =
    impl === 'ours'
      ? createOurServer({ cert, key }, (s) => echo(s as never))
      : nodeTls.createServer({ cert, key, minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' }, (s) => echo(s as never));
  await listenAndReport(server, () => {
    const n = handshakes;
    handshakes = 0;
    return n;
  });
}

async function loadRole(port: number, mode: Mode, seconds: number, concurrency: number, warmupSeconds: number): Promise<void> {
  const latencies: number[] = [];
  let failed = 0;
  let reused = 0;
  const payload = Buffer.alloc(32, 0x61);
  const one = async (lane: { session: Buffer | undefined }): Promise<void> => {
    const options: nodeTls.ConnectionOptions = {
      port,
      host: '127.0.0.1',
      servername: 'localhost',
      minVersion: 'TLSv1.2',
      maxVersion: 'TLSv1.2',
      rejectUnauthorized: false,
      ...(mode === 'resumed' && lane.session ? { session: lane.session } : {}),
    };
    const ms = await echoOnce(options, payload, (s) => {
      if (s.isSessionReused()) reused++;
      if (mode === 'resumed') lane.session = s.getSession() ?? lane.session;
    });
    if (ms === undefined) failed++;
    else latencies.push(ms);
  };
  const lanes = Array.from({ length: concurrency }, () => ({ session: undefined as Buffer | undefined }));
  const warm = Date.now() + warmupSeconds * 1000;
  await Promise.all(lanes.map(async (lane) => {
    while (Date.now() < warm) await one(lane);
  }));
  latencies.length = 0;
  failed = 0;
  reused = 0;
  process.send!('warm');
  await new Promise<void>((res) => process.once('message', () => res()));
  const start = Date.now();
  const deadline = start + seconds * 1000;
  await Promise.all(lanes.map(async (lane) => {
    while (Date.now() < deadline) await one(lane);
  }));
  const result: LoadResult = { completed: latencies.length, failed, seconds: (Date.now() - start) / 1000, latencies, reused };
  process.send!(result);
  process.exit(0);
}

type Round = HandshakeRound & { readonly reuseRate: number };

async function oneRound(impl: Impl, mode: Mode, cert: string, key: string, seconds: number, concurrency: number, warmup: number, pin: boolean): Promise<Round> {
  const server = spawnNode(SCRIPT, ['--server', impl, cert, key], pin ? 1 : undefined);
  const r = await measureHandshakeRound<LoadResult>(server, (port) =>
    spawnNode(SCRIPT, ['--load', String(port), mode, String(seconds), String(concurrency), String(warmup)], pin ? 0 : undefined),
  );
  return { ...r, reuseRate: r.load.completed > 0 ? r.load.reused / r.load.completed : 0 };
}

async function main(): Promise<void> {
  const [seconds = 5, concurrency = 16, rounds = 3, warmup = 3] = process.argv.slice(2).map(Number);
  const pin = canPin();
  const { certs, cleanup } = await makeCertificates(['ecdsa-p256', 'rsa-2048']);
  console.log(`# TLS 1.2 handshakes (full and ticket-resumed), ${seconds}s x ${rounds} rounds after ${warmup}s of warm-up, ${concurrency} lanes, server ${pin ? 'pinned to core 1, load on core 0' : 'not pinned (no taskset)'}; node ${process.version}; load average ${loadAverage()}`);
  const lines: string[] = [];
  lines.push('| certificate | handshake | server | handshakes/s (median) | all rounds | server CPU ms/handshake (median) | capacity of one core, handshakes/s | resumed share | p50 ms | failed |');
  lines.push('| --- | --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |');
  const summary: string[] = [];
  try {
    for (const c of certs) {
      const cpu: Record<Mode, Record<Impl, number>> = { full: { ours: 0, node: 0 }, resumed: { ours: 0, node: 0 } };
      for (const mode of MODES) {
        const results: Record<Impl, Round[]> = { ours: [], node: [] };
        for (let i = 0; i < rounds; i++) {
          for (const impl of i % 2 === 0 ? IMPLS : [...IMPLS].reverse()) {
            results[impl].push(await oneRound(impl, mode, c.cert, c.key, seconds, concurrency, warmup, pin));
          }
        }
        for (const impl of IMPLS) {
          const rs = results[impl];
          const rate = median(rs.map((r) => r.rate));
          cpu[mode][impl] = median(rs.map((r) => r.cpuMsPerHandshake));
          lines.push(
            `| ${c.keyType} | ${mode} | ${IMPL_NAMES[impl]} | ${fmt(rate)} | ${rs.map((r) => fmt(r.rate)).join(', ')} | ${fmt(cpu[mode][impl], 3)} | ${fmt(1000 / cpu[mode][impl])} | ${fmt(100 * median(rs.map((r) => r.reuseRate)))}% | ${fmt(median(rs.map((r) => r.p50)), 2)} | ${rs.reduce((a, r) => a + r.failed, 0)} |`,
          );
        }
      }
      for (const mode of MODES) {
        summary.push(`${c.keyType} ${mode}: capacity per core (by server CPU) ours/node:tls ${fmt(cpu[mode].node / cpu[mode].ours, 2)}x`);
      }
      summary.push(`${c.keyType}: a resumed handshake costs our server ${fmt(cpu.resumed.ours / cpu.full.ours, 2)}x the CPU of a full one (node:tls ${fmt(cpu.resumed.node / cpu.full.node, 2)}x)`);
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
  await serverRole(process.argv[3] as Impl, process.argv[4]!, process.argv[5]!);
} else if (role === '--load') {
  await loadRole(Number(process.argv[3]), process.argv[4] as Mode, Number(process.argv[5]), Number(process.argv[6]), Number(process.argv[7]));
} else {
  await main();
}
