/**
 * What the key-pair check costs (src/tls/key-pair.ts): the operator's KeyCheck of an output
 * Secret's private key (src/operator/cache-form.ts, once per distinct key value) before and after
 * it also signs and verifies, on a P-256 and an RSA-2048 key, and the pairwise check alone
 * (what loadCertifiedKey, the sidecar and the webhook add per key they accept).
 *
 *   node dist/bench/key-pair-check.js [--rounds 7] [--p256 400] [--rsa 60]
 *
 * Before and after run alternately in one process, round by round; medians of the rounds.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { parseArgs } from 'node:util';
import { checkPrivateKey } from '../src/operator/cache-form.js';
import { sha256Hex } from '../src/operator/output-secret.js';
import { keyPairFault } from '../src/tls/key-pair.js';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '7' },
    p256: { type: 'string', default: '400' },
    rsa: { type: 'string', default: '60' },
  },
});

/** The KeyCheck before this change: the public key the file carries, fingerprinted. */
function publicKeyOnlyCheck(pem: string): { publicKeyFingerprint: string } | { problem: string } {
  try {
    return { publicKeyFingerprint: sha256Hex(new Uint8Array(createPublicKey(createPrivateKey(pem)).export({ type: 'spki', format: 'der' }))) };
  } catch {
    return { problem: 'does not parse' };
  }
}

function microsPerCall(n: number, f: () => unknown): number {
  const started = process.hrtime.bigint();
  for (let i = 0; i < n; i++) f();
  return Number(process.hrtime.bigint() - started) / 1e3 / n;
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const keys = [
  { name: 'P-256', n: Number(args.p256), pair: generateKeyPairSync('ec', { namedCurve: 'P-256' }) },
  { name: 'RSA-2048', n: Number(args.rsa), pair: generateKeyPairSync('rsa', { modulusLength: 2048 }) },
];

console.log(`node ${process.version}, rounds=${args.rounds}, loadavg ${(await import('node:os')).loadavg().map((l) => l.toFixed(2)).join(' ')}`);
console.log('| key | KeyCheck before (µs) | KeyCheck after (µs) | after/before | added per key (µs) | pairwise check alone, KeyObjects (µs) |');
console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
for (const { name, n, pair } of keys) {
  const pem = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  // Same answer both ways on a good key (the bench measures the same work, not a failure path).
  const before = publicKeyOnlyCheck(pem);
  const after = checkPrivateKey(pem);
  if (JSON.stringify(before) !== JSON.stringify(after)) throw new Error(`${name}: the checks disagree`);
  for (let i = 0; i < 20; i++) {
    publicKeyOnlyCheck(pem);
    checkPrivateKey(pem);
  }
  const b: number[] = [];
  const a: number[] = [];
  const alone: number[] = [];
  for (let r = 0; r < Number(args.rounds); r++) {
    b.push(microsPerCall(n, () => publicKeyOnlyCheck(pem)));
    a.push(microsPerCall(n, () => checkPrivateKey(pem)));
    alone.push(microsPerCall(n, () => keyPairFault(pair.privateKey, pair.publicKey)));
  }
  const mb = median(b);
  const ma = median(a);
  console.log(`| ${name} | ${mb.toFixed(0)} | ${ma.toFixed(0)} | ${(ma / mb).toFixed(2)} | ${(ma - mb).toFixed(0)} | ${median(alone).toFixed(0)} |`);
}
