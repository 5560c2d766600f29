/**
 * What a relist of output Secrets costs the operator's event loop (src/operator/cache-form.ts):
 * the informer transforms every listed Secret in one synchronous map, so that map's time is how
 * long the loop is blocked at start-up and on each leader change. N Secrets, each with one
 * credential private key of the curve measured (none vouched for: a relist reads every key).
 *
 *   node dist/bench/output-secret-relist.js --before <old build>/src/operator/cache-form.js [--n 500] [--rounds 5]
 *
 * Compares, alternating round by round in one process:
 * - before: the OutputSecretForm of `--before` (an older build's cache-form.js), its transform;
 * - after: this build's transform (the relist), then `settle` of every Secret (the pairwise
 *   checks, which the reconciler runs one Secret at a time: CPU moved off the relist, not saved),
 *   and the 99th percentile and the longest of single settles (the blocks the checks cause now;
 *   on a loaded machine the longest is mostly the process being descheduled).
 * Medians of the rounds, milliseconds for all N.
 */
import { generateKeyPairSync } from 'node:crypto';
import { loadavg } from 'node:os';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { V1Secret } from '@kubernetes/client-node';
import { OutputSecretForm, StringPool, type CachedOutputSecret } from '../src/operator/cache-form.js';

const { values: args } = parseArgs({
  options: {
    before: { type: 'string' },
    n: { type: 'string', default: '500' },
    rounds: { type: 'string', default: '5' },
  },
});
if (args.before === undefined) throw new Error('--before <path to an older build of src/operator/cache-form.js> is required');
const n = Number(args.n);
const rounds = Number(args.rounds);

type Transform = (secret: V1Secret) => CachedOutputSecret;
const old = (await import(pathToFileURL(resolve(args.before)).href)) as { OutputSecretForm: new (pool: StringPool) => { transform: Transform } };

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const ms = (started: bigint): number => Number(process.hrtime.bigint() - started) / 1e6;

function secrets(curve: 'P-256' | 'P-384', algorithm: string): V1Secret[] {
  return Array.from({ length: n }, (_, i) => {
    const key = generateKeyPairSync('ec', { namedCurve: curve }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    return {
      metadata: { name: `dc-${i}`, namespace: 'bench', resourceVersion: String(i + 1), labels: { 'app.kubernetes.io/managed-by': 'dc-operator' } },
      data: { 'tls.crt': 'Q0hBSU4=', fallback: 'Tm9uZQ==', [`${algorithm}.key`]: Buffer.from(key).toString('base64'), [`${algorithm}.cred`]: Buffer.from(`cred-${i}`).toString('base64') },
    };
  });
}

console.log(`node ${process.version}, n=${n}, rounds=${rounds}, loadavg ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
console.log('| curve | relist before (ms) | relist after (ms) | after/before | settle all after (ms) | one settle, p99 (ms) | longest settle (ms) |');
console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const [curve, algorithm] of [['P-256', 'ecdsa_secp256r1_sha256'], ['P-384', 'ecdsa_secp384r1_sha384']] as const) {
  const listed = secrets(curve, algorithm);
  const key = `${algorithm}.key`;
  const before: number[] = [];
  const after: number[] = [];
  const settled: number[] = [];
  const longest: number[] = [];
  const p99: number[] = [];
  const runBefore = (): void => {
    const form = new old.OutputSecretForm(new StringPool());
    const started = process.hrtime.bigint();
    const cached = listed.map((s) => form.transform(s));
    before.push(ms(started));
    if (!cached.every((c) => 'publicKeyFingerprint' in (c.privateKeys[key] ?? {}))) throw new Error('before: a good key was refused');
  };
  const runAfter = (): void => {
    const form = new OutputSecretForm(new StringPool());
    const started = process.hrtime.bigint();
    const cached = listed.map((s) => form.transform(s));
    after.push(ms(started));
    const each: number[] = [];
    for (const c of cached) {
      const one = process.hrtime.bigint();
      form.settle(c);
      each.push(ms(one));
    }
    each.sort((x, y) => x - y);
    settled.push(each.reduce((x, y) => x + y, 0));
    longest.push(each.at(-1) ?? 0);
    p99.push(each[Math.floor(each.length * 0.99)] ?? 0);
    if (!cached.every((c) => 'publicKeyFingerprint' in (c.privateKeys[key] ?? {}))) throw new Error('after: a good key was refused');
  };
  runBefore(); // warm both (module code, OpenSSL's curve tables)
  runAfter();
  before.length = after.length = settled.length = longest.length = p99.length = 0;
  for (let r = 0; r < rounds; r++) {
    if (r % 2 === 0) {
      runBefore();
      runAfter();
    } else {
      runAfter();
      runBefore();
    }
  }
  const [b, a] = [median(before), median(after)];
  console.log(`| ${curve} | ${b.toFixed(0)} | ${a.toFixed(0)} | ${(a / b).toFixed(3)} | ${median(settled).toFixed(0)} | ${median(p99).toFixed(2)} | ${median(longest).toFixed(2)} |`);
}
