/**
 * The server's PSK path from ClientHello to the handshake keys, two ways side by side in one
 * process (this build's key schedule): the old way (the binder from its own EarlySecret with
 * fresh buffers, the truncated ClientHello hashed for it and the whole ClientHello hashed again,
 * then HandshakeKeys extracting the PSK a second time) and the current one (PskEarlyKeys: one
 * extract, the binder's secrets in the handshake's block, the ClientHello hashed once around its
 * binders). The (EC)DHE is left out (a fixed shared secret): it is the same either way.
 *
 *   npx tsc -p tsconfig.json && taskset -c 1 node dist/bench/psk-binder-ab.js [count=20000] [rounds=9]
 */
import { randomBytes } from 'node:crypto';
import { HandshakeKeys, PskEarlyKeys } from '../src/tls/handshake-keys.js';
import { EarlySecret, Transcript, finishedVerifyData } from '../src/tls/key-schedule.js';
import { suiteParams } from '../src/tls/suites.js';
import { loadAverage, median } from './tls-support.js';

const [count = 20_000, rounds = 9] = process.argv.slice(2).map(Number);
const suite = suiteParams(0x1301)!;
const psk = randomBytes(32);
// A ClientHello with a ticket as node:tls sends it: ~600 bytes, the binders list (35 bytes) last.
const hello = randomBytes(600);
const truncatedLength = hello.length - 35;
const shared = randomBytes(32);

function oldWay(): HandshakeKeys {
  const t = new Transcript();
  t.start(suite.hash);
  const binderKey = new EarlySecret(suite, psk).binderKey('resumption');
  finishedVerifyData(suite, binderKey, t.currentWith(hello.subarray(0, truncatedLength)));
  t.add(hello);
  return new HandshakeKeys(suite, psk, Uint8Array.from(shared), t.current());
}

function newWay(): HandshakeKeys {
  const t = new Transcript();
  t.start(suite.hash);
  t.add(hello.subarray(0, truncatedLength));
  const keys = new PskEarlyKeys(suite, psk);
  keys.binder(t.current());
  t.add(hello.subarray(truncatedLength));
  return new HandshakeKeys(suite, keys, Uint8Array.from(shared), t.current());
}

// The two ways agree on the secrets.
if (Buffer.compare(oldWay().serverTrafficSecret, newWay().serverTrafficSecret) !== 0) throw new Error('the two ways disagree');

function timeUs(f: () => unknown): number {
  const t = process.hrtime.bigint();
  for (let i = 0; i < count; i++) f();
  return Number(process.hrtime.bigint() - t) / count / 1000;
}

const us: number[][] = [[], []];
const ratios: number[] = [];
for (let r = -1; r < rounds; r++) {
  const order = r % 2 === 0 ? [0, 1] : [1, 0];
  const perWay = [0, 0];
  for (const i of order) perWay[i] = timeUs(i === 0 ? oldWay : newWay);
  if (r < 0) continue; // warm-up
  us[0]!.push(perWay[0]!);
  us[1]!.push(perWay[1]!);
  ratios.push(perWay[1]! / perWay[0]!);
}
console.log(`# PSK binder + handshake keys, us per ClientHello, ${count} x ${rounds} rounds, alternating; node ${process.version}; load average ${loadAverage()}`);
console.log(`| old way (median) | PskEarlyKeys (median) | ratio (median of per-round ratios) |`);
console.log(`| ---: | ---: | ---: |`);
console.log(`| ${median(us[0]!).toFixed(2)} | ${median(us[1]!).toFixed(2)} | ${median(ratios).toFixed(3)}x |`);
