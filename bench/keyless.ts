/**
 * Keyless signing benchmark.
 *
 * Starts the real key server (`dc-operator keyserver`, its own process, so it has a core to
 * itself on a 2-core machine) with Ed25519, P-256, P-384 and RSA-2048 keys, then over ONE pooled
 * mutual-TLS connection measures, per algorithm:
 *   - latency with one request in flight (p50/p99 of N sequential signatures),
 *   - throughput with C requests in flight for T seconds, and the server's CPU time during it
 *     (from /proc), giving signatures per second per server core,
 * for the documented digest opcodes (what other clients send) and our whole-message extension
 * (0xC0, what our sidecar sends), and, in this process, the cost of the signing primitives
 * themselves in CPU time, with `openssl speed` on this machine as the reference line.
 * Each measurement is repeated R times and the median reported.
 *
 *   node dist/bench/keyless.js [--runs 3] [--seconds 4] [--inflight 64] [--sequential 400] [--workers 0]
 *                              [--baseline OTHER_CHECKOUT/dist [--baseline-same-opcode]] [--only P-256]
 */
import { execFileSync } from 'node:child_process';
import { createHash, createPrivateKey, sign as cryptoSign } from 'node:crypto';
import { join } from 'node:path';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { p256 } from '@noble/curves/nist.js';
import { KeylessClient } from '../src/keyless/client.js';
import { SigningKey } from '../src/keyless/keystore.js';
import { Opcode, signOperationOf } from '../src/keyless/protocol.js';
import { encodeSignMessage } from '../src/keyless/sign-message.js';
import type { SignRequest } from '../src/keyless/sign-request.js';
import { computeSki } from '../src/keyless/ski.js';
import { SignatureScheme } from '../src/tls/constants.js';
import { makeKeylessPki, type KeylessPki, type SigningKeyName } from '../test/unit/keyless/pki.js';
import { cpuSeconds, fmt, median, quantile, startKeyServerProcess } from './keyless-support.js';

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '4' },
    inflight: { type: 'string', default: '64' },
    sequential: { type: 'string', default: '400' },
    workers: { type: 'string', default: '0' },
    /** Another build's dist/ (e.g. main's): its key server is measured too, interleaved run by run. */
    baseline: { type: 'string' },
    /** Only the rows whose label contains this text (e.g. `P-256`); primitives and openssl still run. */
    only: { type: 'string' },
    /** The baseline sends the same opcode as this build (a baseline that has 0xC0 too). */
    'baseline-same-opcode': { type: 'boolean', default: false },
  },
});
const BASELINE = args.baseline;
const RUNS = Number(args.runs);
const SECONDS = Number(args.seconds);
const IN_FLIGHT = Number(args.inflight);
const SEQUENTIAL = Number(args.sequential);
const WORKERS = Number(args.workers);

interface Algorithm {
  readonly label: string;
  readonly key: SigningKeyName;
  /** A documented opcode (digest; the whole message for Ed25519), or Opcode.signMessage. */
  readonly opcode: number;
  /** The digest the client computes for a documented opcode; null: the message travels. */
  readonly hash: 'sha256' | 'sha384' | null;
  /** For Opcode.signMessage: the TLS signature scheme. */
  readonly scheme?: number;
}
const S = SignatureScheme;
const P256_DIGEST: Algorithm = { label: 'ECDSA P-256 / SHA-256, digest (0x15)', key: 'p256', opcode: Opcode.ecdsaSignSha256, hash: 'sha256' };
const P384_DIGEST: Algorithm = { label: 'ECDSA P-384 / SHA-384, digest (0x16)', key: 'p384', opcode: Opcode.ecdsaSignSha384, hash: 'sha384' };
const PSS_DIGEST: Algorithm = { label: 'RSA-2048 PSS / SHA-256, digest (0x35)', key: 'rsa2048', opcode: Opcode.rsaPssSignSha256, hash: 'sha256' };
const PKCS1_DIGEST: Algorithm = { label: 'RSA-2048 PKCS#1 / SHA-256, digest (0x05)', key: 'rsa2048', opcode: Opcode.rsaSignSha256, hash: 'sha256' };
/**
 * Whole-message rows name the digest request our client sent for that scheme before the
 * extension: the baseline server (which lacks 0xC0) is measured with it, so "this / baseline"
 * compares what our sidecar costs the key server now with what it cost before.
 */
const ALGORITHMS: ReadonlyArray<Algorithm & { readonly baselineAs?: Algorithm }> = [
  { label: 'Ed25519 (0x18, whole message)', key: 'ed25519', opcode: Opcode.ed25519Sign, hash: null },
  P256_DIGEST,
  { label: 'ECDSA P-256 / SHA-256, whole message (0xC0)', key: 'p256', opcode: Opcode.signMessage, hash: null, scheme: S.ecdsa_secp256r1_sha256, baselineAs: P256_DIGEST },
  P384_DIGEST,
  { label: 'ECDSA P-384 / SHA-384, whole message (0xC0)', key: 'p384', opcode: Opcode.signMessage, hash: null, scheme: S.ecdsa_secp384r1_sha384, baselineAs: P384_DIGEST },
  PSS_DIGEST,
  { label: 'RSA-2048 PSS / SHA-256, whole message (0xC0)', key: 'rsa2048', opcode: Opcode.signMessage, hash: null, scheme: S.rsa_pss_rsae_sha256, baselineAs: PSS_DIGEST },
  PKCS1_DIGEST,
  { label: 'RSA-2048 PKCS#1 / SHA-256, whole message (0xC0)', key: 'rsa2048', opcode: Opcode.signMessage, hash: null, scheme: S.rsa_pkcs1_sha256, baselineAs: PKCS1_DIGEST },
];

/** What a TLS 1.3 server would send: CertificateVerify content is ~130 bytes. */
const MESSAGE = Buffer.concat([Buffer.alloc(64, 0x20), Buffer.from('TLS 1.3, server CertificateVerify\0'), Buffer.alloc(32, 0xab)]);

function payloadFor(alg: Algorithm, i: number): Uint8Array {
  const msg = Buffer.concat([MESSAGE, Buffer.from(String(i))]);
  if (alg.scheme !== undefined) return encodeSignMessage({ scheme: alg.scheme, message: msg });
  return alg.hash === null ? msg : createHash(alg.hash).update(msg).digest();
}

async function sequentialLatency(client: KeylessClient, ski: Uint8Array, alg: Algorithm): Promise<{ p50: number; p99: number }> {
  const times: number[] = [];
  for (let i = 0; i < SEQUENTIAL; i++) {
    const t = performance.now();
    await client.sign(ski, alg.opcode, payloadFor(alg, i));
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return { p50: quantile(times, 0.5), p99: quantile(times, 0.99) };
}

async function throughput(
  client: KeylessClient,
  ski: Uint8Array,
  alg: Algorithm,
  serverPid: number,
): Promise<{ perSecond: number; perServerCore: number; clientMicros: number; p50: number; p99: number }> {
  const times: number[] = [];
  let done = 0;
  const end = performance.now() + SECONDS * 1000;
  const cpu0 = cpuSeconds(serverPid);
  const client0 = process.cpuUsage();
  const t0 = performance.now();
  const worker = async (w: number): Promise<void> => {
    for (let i = w; performance.now() < end; i += IN_FLIGHT) {
      const t = performance.now();
      await client.sign(ski, alg.opcode, payloadFor(alg, i));
      times.push(performance.now() - t);
      done++;
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, (_, w) => worker(w)));
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds(serverPid) - cpu0;
  const clientCpu = process.cpuUsage(client0);
  times.sort((a, b) => a - b);
  return {
    perSecond: done / elapsed,
    perServerCore: done / cpu,
    clientMicros: (clientCpu.user + clientCpu.system) / done,
    p50: quantile(times, 0.5),
    p99: quantile(times, 0.99),
  };
}

/**
 * Operations per second of CPU time (not wall time): on a shared, overloaded machine the wall
 * clock mostly measures how often the scheduler let us run.
 */
function opsPerCpuSecond(fn: () => void, ms = 700): number {
  for (let i = 0; i < 20; i++) fn();
  let n = 0;
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  while (performance.now() - t0 < ms) {
    fn();
    n++;
  }
  const cpu = process.cpuUsage(c0);
  return n / ((cpu.user + cpu.system) / 1e6);
}

function primitives(pki: KeylessPki): Array<[string, number]> {
  const rows: Array<[string, number]> = [];
  const keyOf = (n: SigningKeyName): SigningKey => new SigningKey(createPrivateKey(pki.keys[n].key), n);
  const d256 = createHash('sha256').update(MESSAGE).digest();
  const d384 = createHash('sha384').update(MESSAGE).digest();
  const ed = keyOf('ed25519');
  const ec = keyOf('p256');
  const ec384 = keyOf('p384');
  const rsa = keyOf('rsa2048');
  const digestOf = (code: number, payload: Uint8Array): SignRequest => ({ kind: 'digest', operation: signOperationOf(code)!, payload });
  const whole = (scheme: number): SignRequest => ({ kind: 'message', scheme, message: MESSAGE });
  const p256Scalar = Buffer.from(createPrivateKey(pki.keys.p256.key).export({ format: 'jwk' }).d!, 'base64url');
  const cases: Array<[string, () => void]> = [
    ['Ed25519 (node:crypto, whole message; key server 0x18)', () => ed.sign(digestOf(Opcode.ed25519Sign, MESSAGE))],
    ['P-256 whole message: node:crypto sign (key server, 0xC0)', () => ec.sign(whole(S.ecdsa_secp256r1_sha256))],
    ['P-256 digest: @noble/curves, hedged (key server, 0x15)', () => ec.sign(digestOf(Opcode.ecdsaSignSha256, d256))],
    ['P-256 digest: @noble/curves, deterministic RFC 6979 (not used; the cost of hedging)', () => p256.sign(d256, p256Scalar, { prehash: false, format: 'der' })],
    ['P-384 whole message: node:crypto sign (key server, 0xC0)', () => ec384.sign(whole(S.ecdsa_secp384r1_sha384))],
    ['P-384 digest: @noble/curves, hedged (key server, 0x16)', () => ec384.sign(digestOf(Opcode.ecdsaSignSha384, d384))],
    ['RSA-2048 PSS whole message: node:crypto sign (key server, 0xC0)', () => rsa.sign(whole(S.rsa_pss_rsae_sha256))],
    ['RSA-2048 PSS digest: EMSA-PSS + OpenSSL raw RSA (key server, 0x35)', () => rsa.sign(digestOf(Opcode.rsaPssSignSha256, d256))],
    ['RSA-2048 PKCS#1 whole message: node:crypto sign (key server, 0xC0)', () => rsa.sign(whole(S.rsa_pkcs1_sha256))],
    ['RSA-2048 PKCS#1 digest: privateEncrypt(DigestInfo) (key server, 0x05)', () => rsa.sign(digestOf(Opcode.rsaSignSha256, d256))],
    ['P-256 message: node:crypto sign, KeyObject direct (no key server code)', () => cryptoSign('sha256', MESSAGE, createPrivateKeyCached('p256'))],
  ];
  const cache = new Map<string, ReturnType<typeof createPrivateKey>>();
  function createPrivateKeyCached(n: SigningKeyName): ReturnType<typeof createPrivateKey> {
    let k = cache.get(n);
    if (!k) cache.set(n, (k = createPrivateKey(pki.keys[n].key)));
    return k;
  }
  for (const [label, fn] of cases) rows.push([label, median(Array.from({ length: RUNS }, () => opsPerCpuSecond(fn)))]);
  return rows;
}

/**
 * The reference line: `openssl speed` on this machine, signatures per second of CPU user time
 * (openssl speed divides by CPU time unless given -elapsed). The system's OpenSSL is not the one
 * built into node, so this says what a native signer does here, not what node's OpenSSL does.
 */
function opensslSpeed(): string[] {
  const args = ['speed', '-seconds', '2', 'ecdsap256', 'ecdsap384', 'ed25519', 'rsa2048'];
  try {
    const out = execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 120_000 });
    const version = execFileSync('openssl', ['version'], { encoding: 'utf8' }).trim();
    const rows = out.split('\n').filter((l) => /^\s*(rsa\s+2048|\d+ bits (ecdsa|EdDSA))/.test(l)).map((l) => l.trim());
    rows.unshift('                             sign      verify    sign/s  verify/s');
    return [`\`openssl ${args.join(' ')}\` (${version}): sign/s is per CPU-second`, '', '```', ...rows, '```'];
  } catch (err) {
    return [`openssl speed failed: ${err instanceof Error ? err.message : String(err)}`];
  }
}

interface Target {
  readonly client: KeylessClient;
  readonly pid: number;
  stop(): Promise<void>;
}

async function startTarget(pki: KeylessPki, entry?: string): Promise<Target> {
  const { child, port, stop } = await startKeyServerProcess(pki, WORKERS, entry);
  const client = new KeylessClient({ address: `127.0.0.1:${port}`, ca: pki.ca, cert: pki.client.cert, key: pki.client.key, timeoutMs: 30_000, poolSize: 1 });
  return {
    client,
    pid: child.pid!,
    async stop() {
      await client.close();
      await stop();
    },
  };
}

interface Measured {
  readonly lat: Array<{ p50: number; p99: number }>;
  readonly thr: Array<Awaited<ReturnType<typeof throughput>>>;
}

async function main(): Promise<void> {
  const pki = makeKeylessPki();
  const current = await startTarget(pki);
  const baseline = BASELINE === undefined ? undefined : await startTarget(pki, join(BASELINE, 'src/cli/dc-operator.js'));
  try {
    console.log(`# keyless benchmark — ${new Date().toISOString()}`);
    console.log(`node ${process.version}, ${cpus().length}× ${cpus()[0]?.model ?? 'cpu'}, load ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    console.log(`runs=${RUNS} (median), seconds=${SECONDS}, in flight=${IN_FLIGHT}, sequential=${SEQUENTIAL}, key server signing workers=${WORKERS}, one pooled mTLS connection, requests padded to 1024 bytes`);
    if (baseline) {
      console.log(`baseline: the key server of ${BASELINE}, measured in the same runs, alternating with this build's (which goes first alternates too);`);
      console.log(args['baseline-same-opcode'] ? 'the baseline is sent the same opcodes as this build' : 'for whole-message (0xC0) rows the baseline signs the digest opcode of the same scheme (what our client sent before)');
    }
    console.log('');
    const baselineColumns = baseline ? ' baseline signs per server CPU-second | this / baseline |' : '';
    console.log(`| algorithm | signs/s (one connection, wall clock) | signs per server CPU-second |${baselineColumns} client CPU µs per sign | p50 / p99 under load (ms) | p50 / p99 one at a time (ms) |`);
    console.log(`| --- | ---: | ---: |${baseline ? ' ---: | ---: |' : ''} ---: | ---: | ---: |`);
    for (const alg of ALGORITHMS.filter((a) => args.only === undefined || a.label.includes(args.only))) {
      const ski = computeSki(createPrivateKey(pki.keys[alg.key].key));
      // The baseline (main before issue 13) has no sign-message extension: it gets the digest
      // request our client sent before for the same scheme.
      const runs: Array<[Target, Algorithm]> = [[current, alg]];
      const baselineAs = args['baseline-same-opcode'] ? undefined : alg.baselineAs;
      if (baseline) runs.push([baseline, baselineAs ?? alg]);
      const results = new Map<Target, Measured>(runs.map(([t]) => [t, { lat: [], thr: [] }]));
      for (const [t, a] of runs) await t.client.sign(ski, a.opcode, payloadFor(a, -1)); // warm up
      for (let r = 0; r < RUNS; r++) {
        // Alternate which server goes first, so neither gains from its place in the run.
        for (const [t, a] of r % 2 === 0 ? runs : [...runs].reverse()) {
          const m = results.get(t)!;
          m.lat.push(await sequentialLatency(t.client, ski, a));
          m.thr.push(await throughput(t.client, ski, a, t.pid));
        }
      }
      const { lat, thr } = results.get(current)!;
      const perCore = median(thr.map((t) => t.perServerCore));
      let baselineCells = '';
      if (baseline) {
        const basePerCore = median(results.get(baseline)!.thr.map((t) => t.perServerCore));
        baselineCells = ` ${fmt(basePerCore)}${alg.baselineAs && !args['baseline-same-opcode'] ? ' (its digest opcode)' : ''} | ${(perCore / basePerCore).toFixed(2)} |`;
      }
      console.log(
        `| ${alg.label} | ${fmt(median(thr.map((t) => t.perSecond)))} | ${fmt(perCore)} |${baselineCells} ` +
          `${fmt(median(thr.map((t) => t.clientMicros)))} | ` +
          `${fmt(median(thr.map((t) => t.p50)), 1)} / ${fmt(median(thr.map((t) => t.p99)), 1)} | ` +
          `${fmt(median(lat.map((l) => l.p50)), 2)} / ${fmt(median(lat.map((l) => l.p99)), 2)} |`,
      );
    }
    console.log('\nSigning primitives in one process (no network), operations per CPU-second:\n');
    console.log('| primitive | ops per CPU-second |');
    console.log('| --- | ---: |');
    for (const [label, ops] of primitives(pki)) console.log(`| ${label} | ${fmt(ops)} |`);
    console.log('\nReference: OpenSSL on this machine\n');
    for (const line of opensslSpeed()) console.log(line);
    console.log(`\nend load: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  } finally {
    await current.stop();
    await baseline?.stop();
    pki.cleanup();
  }
}

await main();
