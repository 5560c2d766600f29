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
 *
 * "ours, keyless": our server with the certificate key only in a key server process
 * (`dc-operator keyserver`, unpinned, on loopback), ServerKeyExchange signed over keyless; its
 * CPU per handshake is the TLS server's alone (the key server signs in its own process). Full
 * handshakes only: a resumed one signs nothing.
 *
 * Environment: BENCH_KEY_TYPES (default "ecdsa-p256,rsa-2048"); BENCH_MODES (default
 * "full,resumed"); BENCH_BASELINE_DIST=<dir> adds "ours, baseline build": our server from another
 * build's dist/ (before/after in one run); BENCH_KEYLESS=off leaves out "ours, keyless" (shorter
 * runs when only the local-key rows are compared).
 */
import { fileURLToPath } from 'node:url';
import * as nodeTls from 'node:tls';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Server } from 'node:net';
import { KeylessSigner } from '../src/signer/keyless.js';
import { createServer as createOurServer } from '../src/tls/socket.js';
import { makeKeylessPki } from '../test/unit/keyless/pki.js';
import { startKeyServerProcess } from './keyless-support.js';
import {
  canPin,
  countingEcho,
  runEchoLoad,
  fmt,
  listenAndReport,
  loadAverage,
  makeCertificates,
  measureHandshakeRound,
  median,
  spawnNode,
  type EchoLoadResult,
  type HandshakeRound,
  type ServerStats,
} from './tls-support.js';

type Impl = 'ours' | 'ours-keyless' | 'ours-base' | 'node';
const IMPL_NAMES: Readonly<Record<Impl, string>> = { ours: 'ours (src/tls)', 'ours-keyless': 'ours, keyless', 'ours-base': 'ours, baseline build', node: 'node:tls' };
/** Where the server child finds the key server: address and the mutual-TLS files. */
interface KeylessAccess {
  readonly address: string;
  readonly dir: string;
}

const SCRIPT = fileURLToPath(import.meta.url);

type Mode = 'full' | 'resumed';
const MODES = (process.env.BENCH_MODES ?? 'full,resumed').split(',') as Mode[];

type LoadResult = EchoLoadResult;

async function serverRole(impl: Impl, certFile: string, keyFile: string, keyless: KeylessAccess | undefined): Promise<void> {
  const cert = await readFile(certFile, 'utf8');
  const key = await readFile(keyFile, 'utf8');
  const { handler: echo, take } = countingEcho();
  let server: Server;
  if (impl === 'node') server = nodeTls.createServer({ cert, key, minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' }, (s) => echo(s as never));
  else if (impl === 'ours') server = createOurServer({ cert, key }, (s) => echo(s as never));
  else if (impl === 'ours-base') {
    const base = (await import(join(process.env.BENCH_BASELINE_DIST!, 'src/tls/socket.js'))) as { createServer: typeof createOurServer };
    server = base.createServer({ cert, key }, (s) => echo(s as never));
  } else {
    const file = (name: string): Promise<string> => readFile(join(keyless!.dir, name), 'utf8');
    const signer = new KeylessSigner({ address: keyless!.address, ca: await file('ca.crt'), clientCert: await file('client.crt'), clientKey: await file('client.pem'), certificate: cert });
    server = createOurServer({ cert, key: signer }, (s) => echo(s as never));
  }
  await listenAndReport(server, take);
}

async function loadRole(port: number, mode: Mode, seconds: number, concurrency: number, warmupSeconds: number): Promise<void> {
  const options: nodeTls.ConnectionOptions = { port, host: '127.0.0.1', servername: 'localhost', minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', rejectUnauthorized: false };
  await runEchoLoad(options, { seconds, concurrency, warmupSeconds, resumed: mode === 'resumed' });
}

type Round = HandshakeRound & { readonly reuseRate: number; readonly stats: ServerStats };

async function oneRound(impl: Impl, mode: Mode, cert: string, key: string, keyless: KeylessAccess, seconds: number, concurrency: number, warmup: number, pin: boolean): Promise<Round> {
  const server = spawnNode(SCRIPT, ['--server', impl, cert, key, keyless.address, keyless.dir], pin ? 1 : undefined);
  const r = await measureHandshakeRound<LoadResult>(server, (port) =>
    spawnNode(SCRIPT, ['--load', String(port), mode, String(seconds), String(concurrency), String(warmup)], pin ? 0 : undefined),
  );
  return { ...r, reuseRate: r.load.completed > 0 ? r.load.reused / r.load.completed : 0 };
}

async function main(): Promise<void> {
  const [seconds = 5, concurrency = 16, rounds = 3, warmup = 3] = process.argv.slice(2).map(Number);
  const pin = canPin();
  const keyTypes = (process.env.BENCH_KEY_TYPES ?? 'ecdsa-p256,rsa-2048').split(',') as ('ecdsa-p256' | 'rsa-2048')[];
  const baseline: Impl[] = process.env.BENCH_BASELINE_DIST ? ['ours-base'] : [];
  const withKeyless = process.env.BENCH_KEYLESS !== 'off';
  const { certs, cleanup } = await makeCertificates(keyTypes);
  const mtls = makeKeylessPki(['p256']);
  for (const c of certs) await writeFile(join(mtls.keysDir, `${c.keyType}.pem`), await readFile(c.key));
  const keyServer = await startKeyServerProcess(mtls);
  const keyless: KeylessAccess = { address: `127.0.0.1:${keyServer.port}`, dir: mtls.dir };
  console.log(`# TLS 1.2 handshakes (${MODES.join(', ')}), ${seconds}s x ${rounds} rounds after ${warmup}s of warm-up, ${concurrency} lanes, server ${pin ? 'pinned to core 1, load on core 0' : 'not pinned (no taskset)'}; node ${process.version}; load average ${loadAverage()}`);
  const lines: string[] = [];
  lines.push('| certificate | handshake | server | handshakes/s (median) | all rounds | server CPU ms/handshake (median) | all rounds | capacity of one core, handshakes/s | resumed share | p50 ms | failed |');
  lines.push('| --- | --- | --- | ---: | --- | ---: | --- | ---: | ---: | ---: | ---: |');
  const split: string[] = [];
  split.push('| certificate | handshake | server | user ms/handshake | system (kernel) ms/handshake | main thread ms/handshake | other threads (GC helpers, ...) ms/handshake |');
  split.push('| --- | --- | --- | ---: | ---: | ---: | ---: |');
  const summary: string[] = [];
  try {
    for (const c of certs) {
      const none = (): Record<Impl, number> => ({ ours: 0, 'ours-keyless': 0, 'ours-base': 0, node: 0 });
      const cpu: Record<Mode, Record<Impl, number>> = { full: none(), resumed: none() };
      /** Per mode, each impl's CPU per handshake round by round (rounds alternate, so round i of two impls ran close in time). */
      const perRound: Record<Mode, Record<Impl, number[]>> = { full: { ours: [], 'ours-keyless': [], 'ours-base': [], node: [] }, resumed: { ours: [], 'ours-keyless': [], 'ours-base': [], node: [] } };
      for (const mode of MODES) {
        const impls: Impl[] = mode === 'full' && withKeyless ? ['ours', 'ours-keyless', ...baseline, 'node'] : ['ours', ...baseline, 'node'];
        const results: Record<Impl, Round[]> = { ours: [], 'ours-keyless': [], 'ours-base': [], node: [] };
        for (let i = 0; i < rounds; i++) {
          for (const impl of i % 2 === 0 ? impls : [...impls].reverse()) {
            results[impl].push(await oneRound(impl, mode, c.cert, c.key, keyless, seconds, concurrency, warmup, pin));
          }
        }
        for (const impl of impls) {
          const rs = results[impl];
          const rate = median(rs.map((r) => r.rate));
          cpu[mode][impl] = median(rs.map((r) => r.cpuMsPerHandshake));
          perRound[mode][impl] = rs.map((r) => r.cpuMsPerHandshake);
          const per = (f: (r: Round) => number): string => fmt(median(rs.map((r) => f(r) / Math.max(1, r.stats.handshakes))), 3);
          split.push(`| ${c.keyType} | ${mode} | ${IMPL_NAMES[impl]} | ${per((r) => r.stats.userMs ?? NaN)} | ${per((r) => r.stats.systemMs ?? NaN)} | ${per((r) => r.stats.mainThreadMs ?? NaN)} | ${per((r) => r.stats.cpuMs - (r.stats.mainThreadMs ?? NaN))} |`);
          lines.push(
            `| ${c.keyType} | ${mode} | ${IMPL_NAMES[impl]} | ${fmt(rate)} | ${rs.map((r) => fmt(r.rate)).join(', ')} | ${fmt(cpu[mode][impl], 3)} | ${rs.map((r) => fmt(r.cpuMsPerHandshake, 3)).join(', ')} | ${fmt(1000 / cpu[mode][impl])} | ${fmt(100 * median(rs.map((r) => r.reuseRate)))}% | ${fmt(median(rs.map((r) => r.p50)), 2)} | ${rs.reduce((a, r) => a + r.failed, 0)} |`,
          );
        }
      }
      for (const mode of MODES) {
        const pairedRatio = (a: Impl, b: Impl): string => fmt(median(perRound[mode][a].map((x, i) => x / perRound[mode][b][i]!)), 3);
        summary.push(`${c.keyType} ${mode}: capacity per core (by server CPU) ours/node:tls ${fmt(cpu[mode].node / cpu[mode].ours, 2)}x; server CPU ours/node:tls ${fmt(cpu[mode].ours / cpu[mode].node, 3)}x (median of per-round ratios ${pairedRatio('ours', 'node')}x)`);
        if (baseline.length > 0) {
          summary.push(`${c.keyType} ${mode}: server CPU per handshake, this build / baseline build ${fmt(cpu[mode].ours / cpu[mode]['ours-base'], 3)}x (median of per-round ratios ${pairedRatio('ours', 'ours-base')}x); baseline / node:tls ${fmt(cpu[mode]['ours-base'] / cpu[mode].node, 3)}x (per-round ${pairedRatio('ours-base', 'node')}x)`);
        }
      }
      if (MODES.includes('full') && withKeyless) {
        summary.push(`${c.keyType} full, keyless: our TLS server's CPU per handshake ${fmt(cpu.full['ours-keyless'] / cpu.full.ours, 2)}x that with the local key (the signature is the key server's)`);
      }
      if (MODES.includes('full') && MODES.includes('resumed')) {
        summary.push(`${c.keyType}: a resumed handshake costs our server ${fmt(cpu.resumed.ours / cpu.full.ours, 2)}x the CPU of a full one (node:tls ${fmt(cpu.resumed.node / cpu.full.node, 2)}x)`);
      }
    }
  } finally {
    await keyServer.stop();
    mtls.cleanup();
    await cleanup();
  }
  console.log(lines.join('\n'));
  console.log('');
  console.log('Where the server CPU goes (medians over rounds; user + system = main thread + other threads):');
  console.log(split.join('\n'));
  console.log('');
  for (const s of summary) console.log(s);
}

const role = process.argv[2];
if (role === '--server') {
  await serverRole(process.argv[3] as Impl, process.argv[4]!, process.argv[5]!, { address: process.argv[6]!, dir: process.argv[7]! });
} else if (role === '--load') {
  await loadRole(Number(process.argv[3]), process.argv[4] as Mode, Number(process.argv[5]), Number(process.argv[6]), Number(process.argv[7]));
} else {
  await main();
}
