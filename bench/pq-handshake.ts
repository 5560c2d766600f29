/**
 * Post-quantum TLS 1.3 handshakes, side by side in one run: CPU per full handshake of the server
 * (and of the client) for x25519 vs X25519MLKEM768 vs SecP256r1MLKEM768, our stack vs node:tls
 * on the same Node; a P-256 vs an ML-DSA-65 delegated credential; the HelloRetryRequest our
 * server sends to a client that lists the hybrid but sent only x25519; and the bytes on the wire.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/pq-handshake.js [seconds=4] [concurrency=16] [rounds=3] [warmup=2]
 *
 * BENCH_BASELINE_DIST=<another build's dist/> (e.g. main's) adds our server from that build for
 * x25519 and X25519MLKEM768, for before/after in the same run. BENCH_CASES=<regex> keeps the
 * cases whose name matches (e.g. 'x25519|X25519MLKEM768$' for the key exchange rows only), so
 * more rounds fit in one run. Besides ratios of medians, the per-round ratios of servers measured
 * in the same round are printed with their median: that is the number to compare, as a slow
 * spell of the shared machine hits both sides of a round.
 *
 * Like bench/tls-handshake.ts: each round starts a fresh server process pinned to core 1 and a
 * load process pinned to core 0 that opens fresh connections (no session reuse) on `concurrency`
 * lanes, writes 32 bytes and waits for the echo; `warmup` seconds of load before measuring;
 * cases alternate order round by round; medians over rounds. Server CPU ms/handshake = user+system
 * of the server process / handshakes completed; client CPU ms/handshake = the same for the load
 * process (its whole cost per connection: TCP, TLS, the echo). Both sides are restricted to the
 * case's group, so the group is what was measured (the load checks it on every handshake our
 * client makes; node:tls clients cannot report it and are restricted to the one group).
 *
 * Wire bytes: one more connection after each round, counted on the client's TCP socket
 * (bytesWritten / bytesRead up to the echo: the handshake, session tickets sent so far, and 32
 * bytes of data each way in one record). First flight: our server's answer to one ClientHello,
 * measured in memory (sans-IO), in bytes, records and 1460-byte TCP segments; the initial
 * congestion window is 10 segments (RFC 6928), so a flight over 14600 bytes waits a round trip.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { connect as netConnect } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as nodeTls from 'node:tls';
import { ClientConfig, ClientConnection } from '../src/tls/client.js';
import { ServerConfig, ServerConnection } from '../src/tls/server.js';
import { NamedGroup, SignatureScheme } from '../src/tls/constants.js';
import { generateKeyShare, respondToKeyShare } from '../src/tls/key-exchange.js';
import { createKeySigner } from '../src/tls/signer.js';
import { verifySignature } from '../src/tls/signature-schemes.js';
import { createServer, connect, type TLSSocket } from '../src/tls/socket.js';
import {
  delegatedCredentialPeerHooks,
  delegatedCredentialSelector,
  loadDelegatedCredentialSet,
  parseCertificateChain,
  readCredentialDirectory,
} from '../src/tls/delegated/index.js';
import { canPin, countingEcho, fmt, issueDc, listenAndReport, loadAverage, measureHandshakeRound, makeCertificates, median, runLoadWindows, spawnNode } from './tls-support.js';

const SCRIPT = fileURLToPath(import.meta.url);
const MSS = 1460;

type GroupName = 'x25519' | 'X25519MLKEM768' | 'SecP256r1MLKEM768';
const GROUP_IDS: Record<GroupName, number> = { x25519: NamedGroup.x25519, X25519MLKEM768: NamedGroup.X25519MLKEM768, SecP256r1MLKEM768: NamedGroup.SecP256r1MLKEM768 };
/** node:tls (OpenSSL 3.5) names for ecdhCurve. */
const OPENSSL_NAMES: Record<GroupName, string> = { x25519: 'X25519', X25519MLKEM768: 'X25519MLKEM768', SecP256r1MLKEM768: 'SecP256r1MLKEM768' };

interface Case {
  readonly name: string;
  /** 'base': our server from BENCH_BASELINE_DIST. */
  readonly server: 'ours' | 'node' | 'base';
  readonly client: 'ours' | 'node';
  /** The group both sides are restricted to; `hrr` instead lets our server pick from its defaults. */
  readonly group: GroupName;
  /** The client lists X25519MLKEM768 after x25519 but sends only an x25519 share (node:tls). */
  readonly hrr?: boolean;
  readonly dc?: 'ecdsa_secp256r1_sha256' | 'mldsa65';
}

const ALL_CASES: readonly Case[] = [
  // Key exchange, P-256 certificate, node:tls clients as load.
  { name: 'ours server, x25519', server: 'ours', client: 'node', group: 'x25519' },
  { name: 'ours server, X25519MLKEM768', server: 'ours', client: 'node', group: 'X25519MLKEM768' },
  { name: 'ours server, SecP256r1MLKEM768', server: 'ours', client: 'node', group: 'SecP256r1MLKEM768' },
  { name: 'node:tls server, x25519', server: 'node', client: 'node', group: 'x25519' },
  { name: 'node:tls server, X25519MLKEM768', server: 'node', client: 'node', group: 'X25519MLKEM768' },
  { name: 'node:tls server, SecP256r1MLKEM768', server: 'node', client: 'node', group: 'SecP256r1MLKEM768' },
  // The same node:tls server with our client as load: the client's CPU per group.
  { name: 'node:tls server, our client, x25519', server: 'node', client: 'ours', group: 'x25519' },
  { name: 'node:tls server, our client, X25519MLKEM768', server: 'node', client: 'ours', group: 'X25519MLKEM768' },
  { name: 'node:tls server, our client, SecP256r1MLKEM768', server: 'node', client: 'ours', group: 'SecP256r1MLKEM768' },
  // HelloRetryRequest for the hybrid (ours server, default groups).
  { name: 'ours server, client sent x25519 only -> HRR to X25519MLKEM768', server: 'ours', client: 'node', group: 'X25519MLKEM768', hrr: true },
  // Delegated credentials (our client; node:tls cannot offer extension 34), X25519MLKEM768.
  { name: 'ours server, our client, certificate key (P-256)', server: 'ours', client: 'ours', group: 'X25519MLKEM768' },
  { name: 'ours server, our client, P-256 DC', server: 'ours', client: 'ours', group: 'X25519MLKEM768', dc: 'ecdsa_secp256r1_sha256' },
  { name: 'ours server, our client, ML-DSA-65 DC', server: 'ours', client: 'ours', group: 'X25519MLKEM768', dc: 'mldsa65' },
  // Our server from another build, when BENCH_BASELINE_DIST names one.
  { name: 'baseline build server, x25519', server: 'base', client: 'node', group: 'x25519' },
  { name: 'baseline build server, X25519MLKEM768', server: 'base', client: 'node', group: 'X25519MLKEM768' },
];

const BASELINE_DIST = process.env.BENCH_BASELINE_DIST;
const CASE_FILTER = process.env.BENCH_CASES ? new RegExp(process.env.BENCH_CASES) : undefined;
const CASES = ALL_CASES.filter((c) => (c.server !== 'base' || BASELINE_DIST) && (!CASE_FILTER || CASE_FILTER.test(c.name)));

// --- server role ------------------------------------------------------------------------------------

/** The credential selector over the one DC in dcDir, or undefined for '-' (certificate key). */
async function selectorFor(cert: string, certFile: string, dcDir: string): Promise<ReturnType<typeof delegatedCredentialSelector> | undefined> {
  if (dcDir === '-') return undefined;
  const set = loadDelegatedCredentialSet([await readCredentialDirectory(dcDir)], { certificateChain: parseCertificateChain(new Uint8Array(Buffer.from(cert)), certFile) });
  return delegatedCredentialSelector(set);
}

async function serverRole(c: Case, certFile: string, keyFile: string, dcDir: string): Promise<void> {
  const cert = await readFile(certFile, 'utf8');
  const key = await readFile(keyFile, 'utf8');
  const { handler: echo, take } = countingEcho();
  let server;
  if (c.server === 'node') {
    server = nodeTls.createServer({ cert, key, minVersion: 'TLSv1.3', ecdhCurve: OPENSSL_NAMES[c.group] }, echo);
  } else if (c.server === 'base') {
    const base = (await import(pathToFileURL(resolve(BASELINE_DIST!, 'src/tls/socket.js')).href)) as { createServer: typeof createServer };
    server = base.createServer({ cert, key, groups: [GROUP_IDS[c.group]] }, (s: TLSSocket) => echo(s));
  } else {
    const selectCredential = await selectorFor(cert, certFile, dcDir);
    server = createServer({ cert, key, ...(c.hrr ? {} : { groups: [GROUP_IDS[c.group]] }), ...(selectCredential ? { selectCredential } : {}) }, (s: TLSSocket) => echo(s));
  }
  await listenAndReport(server, take);
}

// --- load role --------------------------------------------------------------------------------------

interface LoadResult {
  readonly completed: number;
  readonly failed: number;
  readonly seconds: number;
  readonly latencies: number[];
  readonly clientCpuMs: number;
  readonly bytesToServer: number;
  readonly bytesToClient: number;
}

async function loadRole(c: Case, port: number, seconds: number, concurrency: number, warmupSeconds: number): Promise<void> {
  const group = GROUP_IDS[c.group];
  const expectedScheme = c.dc === 'mldsa65' ? SignatureScheme.mldsa65 : SignatureScheme.ecdsa_secp256r1_sha256;
  const config =
    c.client === 'ours'
      ? new ClientConfig({
          servername: 'localhost',
          rejectUnauthorized: false,
          groups: [group],
          keyShareGroups: [group],
          ...(c.dc ? { serverCredentialHooks: delegatedCredentialPeerHooks({ peer: 'server' }) } : {}),
        })
      : undefined;
  const latencies: number[] = [];
  let failed = 0;
  const payload = Buffer.alloc(32, 0x61);
  /** One connection; resolves with the TCP byte counts up to the echo. */
  const one = (): Promise<{ out: number; in: number } | undefined> =>
    new Promise((resolve) => {
      const started = process.hrtime.bigint();
      const tcp = netConnect({ port, host: '127.0.0.1' });
      let done = false;
      const fail = (): void => {
        if (done) return;
        done = true;
        failed++;
        tcp.destroy();
        resolve(undefined);
      };
      const timer = setTimeout(fail, 10_000);
      let got = 0;
      const onData = (d: Buffer): void => {
        got += d.length;
        if (got >= payload.length && !done) {
          done = true;
          clearTimeout(timer);
          latencies.push(Number(process.hrtime.bigint() - started) / 1e6);
          const counts = { out: tcp.bytesWritten, in: tcp.bytesRead };
          tcp.destroy();
          resolve(counts);
        }
      };
      if (c.client === 'ours') {
        const s = connect({ socket: tcp, servername: 'localhost', config, handshakeTimeout: 10_000 }, () => {
          const info = s.handshakeInfo!;
          // A handshake that did not do what the case measures counts as failed.
          const dcOk = c.dc ? info.serverMode.authentication === 'delegated-credential' && info.serverMode.signatureScheme === expectedScheme : info.serverMode.authentication === 'certificate';
          if (info.group !== group || !dcOk) return fail();
          s.write(payload);
        });
        s.on('data', onData);
        s.on('error', fail);
      } else {
        const ecdhCurve = c.hrr ? 'X25519:X25519MLKEM768' : OPENSSL_NAMES[c.group];
        const s = nodeTls.connect({ socket: tcp, servername: 'localhost', minVersion: 'TLSv1.3', rejectUnauthorized: false, ecdhCurve }, () => s.write(payload));
        s.on('data', onData);
        s.on('error', fail);
      }
    });
  const window = await runLoadWindows(one, concurrency, warmupSeconds, seconds, () => {
    latencies.length = 0;
    failed = 0;
  });
  const completed = latencies.length;
  const bytes = (await one()) ?? { out: NaN, in: NaN };
  const result: LoadResult = { completed, failed, seconds: window.seconds, latencies: latencies.slice(0, completed), clientCpuMs: window.cpuMs, bytesToServer: bytes.out, bytesToClient: bytes.in };
  process.send!(result);
  process.exit(0);
}

// --- first flight, in memory --------------------------------------------------------------------------

interface Flight {
  readonly clientHello: number;
  readonly serverBytes: number;
  readonly serverRecords: number;
}

/** Our client's ClientHello and our server's first flight for `c`, in bytes. */
async function firstFlight(c: Case, certFile: string, keyFile: string, dcDir: string): Promise<Flight> {
  const cert = await readFile(certFile, 'utf8');
  const key = await readFile(keyFile, 'utf8');
  const selectCredential = await selectorFor(cert, certFile, dcDir);
  const group = GROUP_IDS[c.group];
  const server = new ServerConnection(new ServerConfig({ certificates: [{ cert, key }], ...(selectCredential ? { selectCredential } : {}) }));
  const client = new ClientConnection(
    new ClientConfig({ servername: 'localhost', rejectUnauthorized: false, groups: [group], keyShareGroups: [group], ...(c.dc ? { serverCredentialHooks: delegatedCredentialPeerHooks({ peer: 'server' }) } : {}) }),
  );
  const hello = client.poll().output;
  let p = server.feed(Buffer.concat(hello));
  if (p.waitFor) {
    await p.waitFor;
    p = server.poll();
  }
  const flight = Buffer.concat(p.output);
  return { clientHello: hello.reduce((a, r) => a + r.length, 0), serverBytes: flight.length, serverRecords: countRecords(flight) };
}

/** TLS records in `bytes`, by walking their 5-byte headers. */
function countRecords(bytes: Buffer): number {
  let n = 0;
  for (let off = 0; off + 5 <= bytes.length; off += 5 + bytes.readUInt16BE(off + 3)) n++;
  return n;
}

// --- the operations alone, in this process ---------------------------------------------------------------

/**
 * CPU microseconds per operation (median of 7 batches of `n`, by process.cpuUsage, so less
 * sensitive to other processes than the handshake rounds): what each group adds to a server's
 * and a client's handshake, and ML-DSA-65 against P-256 for the credential key's signature.
 */
function operationCosts(n = 200): string[] {
  const perOp = (f: () => unknown): number => {
    const batches: number[] = [];
    for (let b = 0; b < 7; b++) {
      const cpu = process.cpuUsage();
      for (let i = 0; i < n; i++) f();
      const d = process.cpuUsage(cpu);
      batches.push((d.user + d.system) / n);
    }
    return median(batches);
  };
  const lines = ['| operation | x25519 | X25519MLKEM768 | SecP256r1MLKEM768 |', '| --- | ---: | ---: | ---: |'];
  const server: string[] = [];
  const client: string[] = [];
  for (const g of ['x25519', 'X25519MLKEM768', 'SecP256r1MLKEM768'] as const) {
    const id = GROUP_IDS[g];
    const clientShare = generateKeyShare(id)!;
    const answer = respondToKeyShare(id, clientShare.publicKey)!;
    server.push(fmt(perOp(() => respondToKeyShare(id, clientShare.publicKey)), 1));
    client.push(fmt(perOp(() => generateKeyShare(id)!.computeSecret(answer.publicKey)), 1));
  }
  lines.push(`| server: answer a client share (us) | ${server.join(' | ')} |`, `| client: make a share, then the secret (us) | ${client.join(' | ')} |`);
  const content = Buffer.alloc(130, 0x20);
  const sig: string[] = ['| signature (us) | P-256 | ML-DSA-65 |', '| --- | ---: | ---: |'];
  const keys = { p256: generateKeyPairSync('ec', { namedCurve: 'P-256' }), mldsa: generateKeyPairSync('ml-dsa-65') };
  const p256Sig = createKeySigner(keys.p256.privateKey);
  const mldsaSig = createKeySigner(keys.mldsa.privateKey);
  const sP = p256Sig.sign(SignatureScheme.ecdsa_secp256r1_sha256, content) as Uint8Array;
  const sM = mldsaSig.sign(SignatureScheme.mldsa65, content) as Uint8Array;
  sig.push(`| sign a CertificateVerify (server) | ${fmt(perOp(() => p256Sig.sign(SignatureScheme.ecdsa_secp256r1_sha256, content)), 1)} | ${fmt(perOp(() => mldsaSig.sign(SignatureScheme.mldsa65, content)), 1)} |`);
  sig.push(
    `| verify it (client) | ${fmt(perOp(() => verifySignature(SignatureScheme.ecdsa_secp256r1_sha256, keys.p256.publicKey, content, sP)), 1)} | ${fmt(perOp(() => verifySignature(SignatureScheme.mldsa65, keys.mldsa.publicKey, content, sM)), 1)} |`,
  );
  return [...lines, '', ...sig];
}

// --- driver -----------------------------------------------------------------------------------------

interface Round {
  readonly rate: number;
  readonly serverCpu: number;
  readonly clientCpu: number;
  readonly p50: number;
  readonly failed: number;
  readonly bytesToServer: number;
  readonly bytesToClient: number;
}

async function main(): Promise<void> {
  const [seconds = 4, concurrency = 16, rounds = 3, warmup = 2] = process.argv.slice(2).map(Number);
  const pin = canPin();
  const { dir, certs, cleanup } = await makeCertificates(['ecdsa-p256']);
  const p256 = certs[0]!;
  const dcDirs = new Map<string, string>();
  for (const alg of ['ecdsa_secp256r1_sha256', 'mldsa65']) {
    const out = join(dir, `dc-${alg}`);
    await mkdir(out);
    issueDc(p256.cert, p256.key, alg, out);
    dcDirs.set(alg, out);
  }
  const dcDirOf = (c: Case): string => (c.dc ? dcDirs.get(c.dc)! : '-');
  console.log(
    `# Post-quantum TLS 1.3 full handshakes, P-256 certificate, ${seconds}s x ${rounds} rounds after ${warmup}s warm-up, ${concurrency} lanes, server ${pin ? 'pinned to core 1, load on core 0' : 'not pinned (no taskset)'}; node ${process.version}; load average before ${loadAverage()}`,
  );
  const operations = operationCosts();
  const results = new Map<string, Round[]>(CASES.map((c) => [c.name, []]));
  const flights = new Map<string, Flight>();
  try {
    for (const c of CASES) if (c.server === 'ours' && !c.hrr) flights.set(c.name, await firstFlight(c, p256.cert, p256.key, dcDirOf(c)));
    for (let i = 0; i < rounds; i++) {
      for (const c of i % 2 === 0 ? CASES : [...CASES].reverse()) {
        const server = spawnNode(SCRIPT, ['--server', JSON.stringify(c), p256.cert, p256.key, dcDirOf(c)], pin ? 1 : undefined);
        const r = await measureHandshakeRound<LoadResult>(server, (port) =>
          spawnNode(SCRIPT, ['--load', JSON.stringify(c), String(port), String(seconds), String(concurrency), String(warmup)], pin ? 0 : undefined),
        );
        results.get(c.name)!.push({
          rate: r.rate,
          serverCpu: r.cpuMsPerHandshake,
          clientCpu: r.load.completed > 0 ? r.load.clientCpuMs / r.load.completed : NaN,
          p50: r.p50,
          failed: r.failed,
          bytesToServer: r.load.bytesToServer,
          bytesToClient: r.load.bytesToClient,
        });
      }
    }
  } finally {
    await cleanup();
  }
  const lines = [
    '| case | handshakes/s (median) | server CPU ms/handshake (median) | all rounds | client CPU ms/handshake (median) | p50 ms | bytes client→server | bytes server→client | failed |',
    '| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |',
  ];
  const med = new Map<string, Round>();
  for (const c of CASES) {
    const rs = results.get(c.name)!;
    const m: Round = {
      rate: median(rs.map((r) => r.rate)),
      serverCpu: median(rs.map((r) => r.serverCpu)),
      clientCpu: median(rs.map((r) => r.clientCpu)),
      p50: median(rs.map((r) => r.p50)),
      failed: rs.reduce((a, r) => a + r.failed, 0),
      bytesToServer: median(rs.map((r) => r.bytesToServer)),
      bytesToClient: median(rs.map((r) => r.bytesToClient)),
    };
    med.set(c.name, m);
    lines.push(
      `| ${c.name} | ${fmt(m.rate)} | ${fmt(m.serverCpu, 3)} | ${rs.map((r) => fmt(r.serverCpu, 3)).join(', ')} | ${fmt(m.clientCpu, 3)} | ${fmt(m.p50, 2)} | ${fmt(m.bytesToServer)} | ${fmt(m.bytesToClient)} | ${m.failed} |`,
    );
  }
  console.log(lines.join('\n'));
  console.log('');
  // Ratios of two cases' medians ('-' when a case was filtered out).
  const ratio = (a: string, b: string, field: 'serverCpu' | 'clientCpu'): string => fmt((med.get(a)?.[field] ?? NaN) / (med.get(b)?.[field] ?? NaN), 2);
  for (const g of ['X25519MLKEM768', 'SecP256r1MLKEM768'] as const) {
    console.log(`server CPU ${g} / x25519: ours ${ratio(`ours server, ${g}`, 'ours server, x25519', 'serverCpu')}x, node:tls ${ratio(`node:tls server, ${g}`, 'node:tls server, x25519', 'serverCpu')}x`);
    console.log(`client CPU ${g} / x25519: node:tls client ${ratio(`node:tls server, ${g}`, 'node:tls server, x25519', 'clientCpu')}x, our client ${ratio(`node:tls server, our client, ${g}`, 'node:tls server, our client, x25519', 'clientCpu')}x`);
  }
  for (const g of ['x25519', 'X25519MLKEM768', 'SecP256r1MLKEM768'] as const) {
    console.log(`${g}: server CPU ours / node:tls ${ratio(`ours server, ${g}`, `node:tls server, ${g}`, 'serverCpu')}x; client CPU ours / node:tls ${ratio(`node:tls server, our client, ${g}`, `node:tls server, ${g}`, 'clientCpu')}x`);
  }
  const hrr = 'ours server, client sent x25519 only -> HRR to X25519MLKEM768';
  console.log(`HRR to X25519MLKEM768 / direct X25519MLKEM768: server CPU ${ratio(hrr, 'ours server, X25519MLKEM768', 'serverCpu')}x, client CPU ${ratio(hrr, 'ours server, X25519MLKEM768', 'clientCpu')}x`);
  console.log(`ML-DSA-65 DC / P-256 DC: server CPU ${ratio('ours server, our client, ML-DSA-65 DC', 'ours server, our client, P-256 DC', 'serverCpu')}x, client CPU ${ratio('ours server, our client, ML-DSA-65 DC', 'ours server, our client, P-256 DC', 'clientCpu')}x`);
  console.log('');
  // Server CPU per round, a over b, for the pairs whose cases both ran.
  const pairs: [string, string][] = [];
  for (const g of ['x25519', 'X25519MLKEM768', 'SecP256r1MLKEM768'] as const) pairs.push([`ours server, ${g}`, `node:tls server, ${g}`]);
  for (const g of ['x25519', 'X25519MLKEM768'] as const) pairs.push([`baseline build server, ${g}`, `node:tls server, ${g}`], [`ours server, ${g}`, `baseline build server, ${g}`]);
  const perRound = pairs.filter(([a, b]) => results.has(a) && results.has(b));
  if (perRound.length > 0) {
    console.log('| server CPU per round | per-round ratios | median of per-round ratios |');
    console.log('| --- | --- | ---: |');
    for (const [a, b] of perRound) {
      const rs = results.get(a)!.map((r, i) => r.serverCpu / results.get(b)![i]!.serverCpu);
      console.log(`| ${a} / ${b} | ${rs.map((r) => fmt(r, 3)).join(', ')} | ${fmt(median(rs), 3)}x |`);
    }
    console.log('');
  }
  console.log('| our server, case | ClientHello bytes | first flight bytes | records | 1460-byte segments | within 10-segment initial window |');
  console.log('| --- | ---: | ---: | ---: | ---: | --- |');
  for (const [name, f] of flights) {
    const segments = Math.ceil(f.serverBytes / MSS);
    console.log(`| ${name} | ${f.clientHello} | ${f.serverBytes} | ${f.serverRecords} | ${segments} | ${segments <= 10 ? 'yes' : 'no'} |`);
  }
  console.log('');
  console.log(operations.join('\n'));
  console.log('');
  console.log(`load average after ${loadAverage()}`);
}

const role = process.argv[2];
if (role === '--server') {
  await serverRole(JSON.parse(process.argv[3]!) as Case, process.argv[4]!, process.argv[5]!, process.argv[6]!);
} else if (role === '--load') {
  await loadRole(JSON.parse(process.argv[3]!) as Case, Number(process.argv[4]), Number(process.argv[5]), Number(process.argv[6]), Number(process.argv[7]));
} else {
  await main();
}
