/**
 * Full TLS 1.3 handshakes per second on ONE server core with delegated credentials (RFC 9345):
 * our server (src/tls) serving an Ed25519 DC, then a P-256 DC, against the same server signing
 * with its RSA-2048 certificate key, and against node:tls with that RSA-2048 certificate.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/dc-handshake.js [seconds=4] [concurrency=16] [rounds=3]
 *
 * One RSA-2048 certificate with DelegationUsage (bench/tls-support.ts makeCertificates); the
 * Ed25519 and P-256 credentials are issued from it with `dcctl dc issue`. The server runs in its
 * own process pinned to core 1, serving one DC set at a time (or none); the load process, pinned
 * to core 0, opens fresh connections with OUR client (node:tls cannot offer extension 34) for all
 * four cases: same ClientConfig, x25519, extension 34 offered, every credential verified with the
 * RFC 9345 receiver rules, no session reuse; it writes 32 bytes and waits for the echo (bench/handshake-support.ts), on
 * `concurrency` lanes. A handshake authenticated differently than the case expects (a DC where
 * none should be, or the certificate key where a DC should be) counts as failed. Servers
 * alternate round by round. Reported: medians over rounds of handshakes/s, server CPU ms per
 * handshake (user+system of the server process / completed handshakes; 1000 / that is the
 * capacity of one fully busy core), and connect-to-echo latency p50/p99.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer, type TLSSocket } from '../src/tls/socket.js';
import {
  delegatedCredentialSelector,
  loadDelegatedCredentialSet,
  parseCertificateChain,
  readCredentialDirectory,
} from '../src/tls/delegated/index.js';
import { handshakeLoadRole, type AuthenticatedLoadResult } from './handshake-support.js';
import {
  canPin,
  fmt,
  issueDc,
  listenAndReport,
  loadAverage,
  measureHandshakeRound,
  makeCertificates,
  median,
  serverRole,
  spawnNode,
} from './tls-support.js';

const SCRIPT = fileURLToPath(import.meta.url);

interface Case {
  readonly name: string;
  /** 'ours' with a DC directory ('-' for none) or node:tls. */
  readonly server: 'ours' | 'node';
  readonly dcAlgorithm?: 'ed25519' | 'ecdsa_secp256r1_sha256';
}

const CASES: readonly Case[] = [
  { name: 'ours, Ed25519 DC', server: 'ours', dcAlgorithm: 'ed25519' },
  { name: 'ours, P-256 DC', server: 'ours', dcAlgorithm: 'ecdsa_secp256r1_sha256' },
  { name: 'ours, RSA-2048 certificate key', server: 'ours' },
  { name: 'node:tls, RSA-2048 certificate key', server: 'node' },
];

// --- server role ------------------------------------------------------------------------------------

/** Our server with the certificate and (unless dcDir is '-') the credentials of dcDir; echoes. */
async function oursServerRole(certFile: string, keyFile: string, dcDir: string): Promise<void> {
  const certPem = await readFile(certFile);
  const key = await readFile(keyFile, 'utf8');
  let selectCredential;
  if (dcDir !== '-') {
    const set = loadDelegatedCredentialSet([await readCredentialDirectory(dcDir)], { certificateChain: parseCertificateChain(new Uint8Array(certPem), certFile) });
    if (set.entries.length !== 1) throw new Error(`${dcDir}: expected one credential, found ${set.entries.length}`);
    selectCredential = delegatedCredentialSelector(set);
  }
  let handshakes = 0;
  const server = createServer({ cert: certPem.toString('utf8'), key, ...(selectCredential ? { selectCredential } : {}) }, (s: TLSSocket) => {
    handshakes++;
    s.on('error', () => undefined);
    s.on('data', (d: Buffer) => s.write(d));
    s.on('end', () => s.end());
  });
  await listenAndReport(server, () => {
    const n = handshakes;
    handshakes = 0;
    return n;
  });
}

// --- driver -----------------------------------------------------------------------------------------

interface Round {
  readonly rate: number;
  readonly cpuMsPerHandshake: number;
  readonly p50: number;
  readonly p99: number;
  readonly failed: number;
  readonly wrongAuthentication: number;
}

async function oneRound(c: Case, cert: string, key: string, dcDir: string, seconds: number, concurrency: number, pin: boolean): Promise<Round> {
  const serverArgs = c.server === 'ours' ? ['--server-ours', cert, key, dcDir] : ['--server-node', cert, key];
  const server = spawnNode(SCRIPT, serverArgs, pin ? 1 : undefined);
  const round = await measureHandshakeRound<AuthenticatedLoadResult>(server, (port) =>
    spawnNode(SCRIPT, ['--load', String(port), String(seconds), String(concurrency), c.dcAlgorithm ? 'dc' : 'cert'], pin ? 0 : undefined),
  );
  return { ...round, wrongAuthentication: round.load.wrongAuthentication };
}

async function main(): Promise<void> {
  const [seconds = 4, concurrency = 16, rounds = 3] = process.argv.slice(2).map(Number);
  const pin = canPin();
  const { dir, certs, cleanup } = await makeCertificates(['rsa-2048']);
  const rsa = certs[0]!;
  const dcDirs = new Map<string, string>();
  for (const c of CASES) {
    if (!c.dcAlgorithm) continue;
    const out = join(dir, `dc-${c.dcAlgorithm}`);
    await mkdir(out);
    issueDc(rsa.cert, rsa.key, c.dcAlgorithm, out);
    dcDirs.set(c.name, out);
  }
  console.log(
    `# TLS 1.3 full handshakes with delegated credentials, RSA-2048 certificate, ${seconds}s x ${rounds} rounds, ${concurrency} lanes, our client as load, server ${pin ? 'pinned to core 1, load on core 0' : 'not pinned (no taskset)'}; node ${process.version}; load average before ${loadAverage()}`,
  );
  const results = new Map<string, Round[]>(CASES.map((c) => [c.name, []]));
  try {
    for (let i = 0; i < rounds; i++) {
      for (const c of i % 2 === 0 ? CASES : [...CASES].reverse()) {
        results.get(c.name)!.push(await oneRound(c, rsa.cert, rsa.key, dcDirs.get(c.name) ?? '-', seconds, concurrency, pin));
      }
    }
  } finally {
    await cleanup();
  }
  const med = new Map<string, { rate: number; cpu: number }>();
  for (const c of CASES) {
    const rs = results.get(c.name)!;
    med.set(c.name, { rate: median(rs.map((r) => r.rate)), cpu: median(rs.map((r) => r.cpuMsPerHandshake)) });
  }
  const oursRsa = med.get(CASES[2]!.name)!;
  const nodeRsa = med.get(CASES[3]!.name)!;
  const lines: string[] = [
    '| server | handshakes/s (median) | all rounds | server CPU ms/handshake (median) | capacity of one core, handshakes/s | p50 ms | p99 ms | handshakes/s vs ours RSA cert key | capacity vs ours RSA cert key | handshakes/s vs node:tls | capacity vs node:tls | failed (wrong auth) |',
    '| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const c of CASES) {
    const rs = results.get(c.name)!;
    const m = med.get(c.name)!;
    lines.push(
      `| ${c.name} | ${fmt(m.rate)} | ${rs.map((r) => fmt(r.rate)).join(', ')} | ${fmt(m.cpu, 3)} | ${fmt(1000 / m.cpu)} | ${fmt(median(rs.map((r) => r.p50)), 2)} | ${fmt(median(rs.map((r) => r.p99)), 2)} | ${fmt(m.rate / oursRsa.rate, 2)}x | ${fmt(oursRsa.cpu / m.cpu, 2)}x | ${fmt(m.rate / nodeRsa.rate, 2)}x | ${fmt(nodeRsa.cpu / m.cpu, 2)}x | ${rs.reduce((a, r) => a + r.failed, 0)} (${rs.reduce((a, r) => a + r.wrongAuthentication, 0)}) |`,
    );
  }
  console.log(lines.join('\n'));
  console.log('');
  console.log(`load average after ${loadAverage()}`);
}

const role = process.argv[2];
if (role === '--server-ours') {
  await oursServerRole(process.argv[3]!, process.argv[4]!, process.argv[5]!);
} else if (role === '--server-node') {
  await serverRole('node', process.argv[3]!, process.argv[4]!, 'echo');
} else if (role === '--load') {
  // Every case offers extension 34 (the servers without credentials ignore it).
  const [port, seconds, concurrency] = process.argv.slice(3, 6).map(Number) as [number, number, number];
  await handshakeLoadRole({ port, seconds, concurrency, offerDc: true, expectDc: process.argv[6] === 'dc' });
} else {
  await main();
}
