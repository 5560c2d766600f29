/**
 * The server's (EC)DHE work of one handshake (src/tls/key-exchange.ts) from two builds side by
 * side in one process, alternating in chunks of 50 operations: TLS 1.3 answers a client's x25519
 * and P-256 share (`respondToKeyShare`: our share and the secret), TLS 1.2 makes its P-256 share
 * first and derives the secret from the client's point later (`generateKeyShare` +
 * `computeSecret`), and the X25519MLKEM768 answer (ML-KEM encapsulation + x25519). Thread CPU us
 * per operation, medians of the rounds and of the per-round ratios.
 *
 *   npx tsc -p tsconfig.json && taskset -c 1 node dist/bench/key-exchange-ab.js <before-dist> [after-dist=dist] [operations=1000] [rounds=7]
 */
import type * as KeyExchange from '../src/tls/key-exchange.js';
import { NamedGroup } from '../src/tls/constants.js';
import { abArguments, importFromBuild, loadAverage, median, threadCpuUs as threadUs } from './tls-support.js';

const { before: beforeDist, after: afterDist, count, rounds } = abArguments('node dist/bench/key-exchange-ab.js <before-dist> [after-dist=dist] [operations=1000] [rounds=7]', 1000, 7);
const CHUNK = 50;

type Case = 'x25519 (TLS 1.3 answer)' | 'P-256 (TLS 1.3 answer)' | 'P-256 (TLS 1.2: share, then secret)' | 'X25519MLKEM768 (TLS 1.3 answer)';
const CASES: readonly Case[] = ['x25519 (TLS 1.3 answer)', 'P-256 (TLS 1.3 answer)', 'P-256 (TLS 1.2: share, then secret)', 'X25519MLKEM768 (TLS 1.3 answer)'];

async function operations(dist: string): Promise<Record<Case, () => number>> {
  const kx = await importFromBuild<typeof KeyExchange>(dist, 'src/tls/key-exchange.js');
  // Client shares made once (by this build): the server's work is what is timed.
  const x = kx.generateKeyShare(NamedGroup.x25519)!.publicKey;
  const p = kx.generateKeyShare(NamedGroup.secp256r1)!.publicKey;
  const hybrid = kx.generateKeyShare(NamedGroup.X25519MLKEM768)!.publicKey;
  return {
    'x25519 (TLS 1.3 answer)': () => kx.respondToKeyShare(NamedGroup.x25519, x)!.secret[0]!,
    'P-256 (TLS 1.3 answer)': () => kx.respondToKeyShare(NamedGroup.secp256r1, p)!.secret[0]!,
    'P-256 (TLS 1.2: share, then secret)': () => kx.generateKeyShare(NamedGroup.secp256r1)!.computeSecret(p)[0]!,
    'X25519MLKEM768 (TLS 1.3 answer)': () => kx.respondToKeyShare(NamedGroup.X25519MLKEM768, hybrid)!.secret[0]!,
  };
}

const builds = [await operations(beforeDist), await operations(afterDist)];
const us = CASES.map(() => builds.map((): number[] => []));
let sink = 0;
const loadBefore = loadAverage();
for (let r = -1; r < rounds; r++) {
  CASES.forEach((c, ci) => {
    const total = builds.map(() => 0);
    for (let done = 0; done < count; done += CHUNK) {
      for (let j = 0; j < builds.length; j++) {
        const i = (j + r + 1 + done / CHUNK) % builds.length;
        const f = builds[i]![c];
        const t = threadUs();
        for (let k = 0; k < CHUNK; k++) sink ^= f();
        total[i]! += threadUs() - t;
      }
    }
    // Round -1 warms up.
    if (r >= 0) total.forEach((t, i) => us[ci]![i]!.push(t / count));
  });
}
console.log(`# server (EC)DHE per handshake, ${count} operations x ${rounds} rounds per build, alternating in chunks of ${CHUNK}, thread CPU us; node ${process.version}; load average ${loadBefore} -> ${loadAverage()} (${sink & 0})`);
console.log(`# before: ${beforeDist}  after: ${afterDist}`);
console.log('| operation | before (median) | after (median) | after/before (median of per-round ratios) | before rounds | after rounds |');
console.log('| --- | ---: | ---: | ---: | --- | --- |');
CASES.forEach((c, ci) => {
  const [b, a] = us[ci]!;
  const ratio = median(a!.map((x, i) => x / b![i]!));
  console.log(`| ${c} | ${median(b!).toFixed(1)} | ${median(a!).toFixed(1)} | ${ratio.toFixed(3)}x | ${b!.map((x) => x.toFixed(0)).join(', ')} | ${a!.map((x) => x.toFixed(0)).join(', ')} |`);
});
