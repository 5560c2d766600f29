/**
 * What the in-cluster key server's per-request authorization costs, next to what it guards.
 *
 * In one process, per request: IdentityAuthorizer admit() + answered() (grant lookup, token
 * bucket, metrics counter, bounded log line written as JSON to a sink), for a granted request and
 * for a refused one; and, as the baseline, one ECDSA P-256 / SHA-256 signature as the key server
 * makes it (SigningKey.sign on a digest). Each measured R times, medians reported, with the
 * overhead as a fraction of the signature.
 *
 *   node dist/bench/keyserver-authorization.js [--runs 5] [--requests 200000] [--signatures 20000]
 */
import { createHash, generateKeyPairSync, type X509Certificate } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Registry } from 'prom-client';
import { SigningKey } from '../src/keyless/keystore.js';
import { Opcode } from '../src/keyless/protocol.js';
import { encodeSignMessage } from '../src/keyless/sign-message.js';
import { signRequestOf } from '../src/keyless/sign-request.js';
import { IdentityAuthorizer } from '../src/keyserver/authorization.js';
import { KeyGrants } from '../src/keyserver/grants.js';
import { RateLimiter } from '../src/keyserver/rate-limit.js';
import { fmt, median } from './keyless-support.js';

const { values: args } = parseArgs({
  options: { runs: { type: 'string', default: '5' }, requests: { type: 'string', default: '200000' }, signatures: { type: 'string', default: '20000' } },
});
const RUNS = Number(args.runs);
const REQUESTS = Number(args.requests);
const SIGNATURES = Number(args.signatures);

const key = new SigningKey(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, 'bench');
const other = new SigningKey(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, 'bench');
const grants = new KeyGrants();
// A cluster's worth of identities, so lookups are not in a one-entry map.
for (let i = 0; i < 2000; i++) grants.set(`spiffe://cluster.local/ns/team-${i}/dc/www`, { key: i % 2 ? key : other, source: 'bench' });
const me = 'spiffe://cluster.local/ns/team-1/dc/www';
let sink = 0;
const line = (message: string, meta?: Record<string, unknown>): void => void (sink += JSON.stringify({ message, ...meta }).length);
const authorizer = new IdentityAuthorizer({
  trustDomain: 'cluster.local',
  grants,
  registry: new Registry(),
  rateLimit: new RateLimiter({ ratePerSecond: 1e9 }), // on, never refusing: its cost is measured, not its effect
  log: { info: line, warn: line, error: line },
});
const peer = authorizer.forPeer({ subjectAltName: `URI:${me}` } as unknown as X509Certificate);

function perRequestNs(ski: string): number {
  const start = process.hrtime.bigint();
  for (let i = 0; i < REQUESTS; i++) {
    const refused = peer.admit(Opcode.ecdsaSignSha256, ski);
    peer.answered(Opcode.ecdsaSignSha256, ski, refused, 0.0001);
  }
  return Number(process.hrtime.bigint() - start) / REQUESTS;
}

function perSignatureNs(): number {
  // What our sidecars send: the whole CertificateVerify content, signed by node:crypto.
  const content = Buffer.concat([Buffer.alloc(64, 0x20), Buffer.from('TLS 1.3, server CertificateVerify\0'), createHash('sha256').update('bench').digest()]);
  const request = signRequestOf(Opcode.signMessage, encodeSignMessage({ scheme: 0x0403, message: content }))!;
  const start = process.hrtime.bigint();
  for (let i = 0; i < SIGNATURES; i++) key.sign(request);
  return Number(process.hrtime.bigint() - start) / SIGNATURES;
}

const granted: number[] = [];
const refused: number[] = [];
const signing: number[] = [];
for (let r = 0; r < RUNS; r++) {
  granted.push(perRequestNs(key.skiHex));
  refused.push(perRequestNs(other.skiHex));
  signing.push(perSignatureNs());
}
const g = median(granted);
const d = median(refused);
const s = median(signing);
console.log(`runs ${RUNS}, ${REQUESTS} requests and ${SIGNATURES} signatures per run, Node ${process.version}`);
console.log(`authorize + account, granted request: median ${fmt(g / 1000, 2)} µs (runs: ${granted.map((x) => fmt(x / 1000, 2)).join(', ')})`);
console.log(`authorize + account, refused request: median ${fmt(d / 1000, 2)} µs (runs: ${refused.map((x) => fmt(x / 1000, 2)).join(', ')})`);
console.log(`ECDSA P-256 signature (baseline):      median ${fmt(s / 1000, 2)} µs (runs: ${signing.map((x) => fmt(x / 1000, 2)).join(', ')})`);
// Each run measures both back to back, so the ratio per run is what survives a noisy machine best.
const ratios = granted.map((x, i) => (100 * x) / signing[i]!);
console.log(`overhead of authorization per signed request: median of per-run ratios ${fmt(median(ratios), 1)} % of the signature (runs: ${ratios.map((x) => fmt(x, 1)).join(', ')}); ratio of medians ${fmt((100 * g) / s, 1)} %`);
if (sink < 0) console.log(sink);
