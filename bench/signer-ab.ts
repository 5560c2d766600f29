/**
 * `createKeySigner(key).sign` of two builds of src/tls side by side in one process, alternating
 * in chunks of 200 signatures, with node:crypto's bare `sign` alongside: what a signer adds to
 * (on node:crypto) or saves from (on the handshake addon) each CertificateVerify /
 * ServerKeyExchange signature. Thread CPU us per signature, medians.
 *
 *   npx tsc -p tsconfig.json && taskset -c 1 node dist/bench/signer-ab.js <before-dist> [after-dist=dist] [signatures=2000] [rounds=9]
 *
 * BENCH_SIGNER_KEY picks the key: p256 (default), p384, rsa2048 (rsa_pss_rsae_sha256), ed25519.
 */
import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import type * as Signer from '../src/tls/signer.js';
import { SignatureScheme } from '../src/tls/constants.js';
import { cryptoOptions } from '../src/tls/signature-schemes.js';
import { abArguments, importFromBuild, median, threadCpuUs as threadUs } from './tls-support.js';

const { before: beforeDist, after: afterDist, count: signatures, rounds } = abArguments('node dist/bench/signer-ab.js <before-dist> [after-dist=dist] [signatures=2000] [rounds=9]', 2000, 9);
const CHUNK = 200;

const load = (dist: string): Promise<typeof Signer> => importFromBuild<typeof Signer>(dist, 'src/tls/signer.js');

const KEYS = {
  p256: ['ECDSA P-256', () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, SignatureScheme.ecdsa_secp256r1_sha256],
  p384: ['ECDSA P-384', () => generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey, SignatureScheme.ecdsa_secp384r1_sha384],
  rsa2048: ['RSA-2048 PSS-SHA256', () => generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey, SignatureScheme.rsa_pss_rsae_sha256],
  ed25519: ['Ed25519', () => generateKeyPairSync('ed25519').privateKey, SignatureScheme.ed25519],
} as const;
const keyName = (process.env['BENCH_SIGNER_KEY'] ?? 'p256') as keyof typeof KEYS;
if (!(keyName in KEYS)) throw new Error(`BENCH_SIGNER_KEY: one of ${Object.keys(KEYS).join(', ')}`);
const [keyLabel, makeKey, scheme] = KEYS[keyName];
const privateKey = makeKey();
const message = randomBytes(130);
// The bare node:crypto call of the scheme (what a node:crypto signer makes of it).
const { algorithm, ...floorOptions } = cryptoOptions(scheme, privateKey);
const before = (await load(beforeDist)).createKeySigner(privateKey);
const after = (await load(afterDist)).createKeySigner(privateKey);
const calls: [string, () => unknown][] = [
  ['node:crypto sign, bare', () => sign(algorithm, message, floorOptions)],
  [`before (${beforeDist})`, () => before.sign(scheme, message)],
  [`after (${afterDist})`, () => after.sign(scheme, message)],
];
const us: number[][] = calls.map(() => []);
for (let r = -1; r < rounds; r++) {
  const total = calls.map(() => 0);
  for (let done = 0; done < signatures; done += CHUNK) {
    for (let i = 0; i < calls.length; i++) {
      const f = calls[(i + r + 3) % calls.length]!;
      const t = threadUs();
      for (let k = 0; k < CHUNK; k++) f[1]();
      total[(i + r + 3) % calls.length]! += threadUs() - t;
    }
  }
  // Round -1 warms up.
  if (r >= 0) total.forEach((t, i) => us[i]!.push(t / signatures));
}
console.log(`# ${keyLabel} signature of 130 bytes, ${signatures} x ${rounds} rounds, thread CPU us per signature; node ${process.version}`);
console.log('| signer | us (median) | rounds |');
console.log('| --- | ---: | --- |');
calls.forEach(([name], i) => console.log(`| ${name} | ${median(us[i]!).toFixed(2)} | ${us[i]!.map((x) => x.toFixed(1)).join(', ')} |`));
const ratios = us[2]!.map((a, i) => a / us[1]![i]!);
console.log(`\nafter/before: ${median(ratios).toFixed(3)}x (median of per-round ratios); added to the bare sign: before ${(median(us[1]!) - median(us[0]!)).toFixed(2)} us, after ${(median(us[2]!) - median(us[0]!)).toFixed(2)} us`);
