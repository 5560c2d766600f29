/**
 * The key schedule of one TLS 1.3 server handshake (src/tls/key-schedule.ts, HMAC native or on
 * node:crypto; DC_TLS_NATIVE=off times the fallback) from two builds side by side in one
 * process, alternating in chunks of 100 handshakes' worth: Handshake Secret from an x25519
 * secret, both handshake traffic secrets and their keys, both Finished values, Master Secret,
 * both application traffic secrets and their keys, the resumption master secret and one ticket
 * PSK. With `transcript` as the fifth argument, the transcript hash of one server handshake
 * instead: ClientHello, ServerHello, digest, EncryptedExtensions, Certificate, digest,
 * CertificateVerify, digest, Finished, digest, client Finished, digest (typical sizes, a P-256
 * chain). Thread CPU us per handshake (garbage collection of what a build allocates falls
 * mostly in its own chunks), medians.
 *
 *   npx tsc -p tsconfig.json && taskset -c 1 node dist/bench/key-schedule-ab.js <before-dist> [after-dist=dist] [handshakes=5000] [rounds=9] [key-schedule|transcript]
 */
import { randomBytes } from 'node:crypto';
import type * as KeySchedule from '../src/tls/key-schedule.js';
import type * as Suites from '../src/tls/suites.js';
import { CipherSuite } from '../src/tls/constants.js';
import { abArguments, importFromBuild, loadAverage, median, threadCpuUs as threadUs } from './tls-support.js';

const args = abArguments('node dist/bench/key-schedule-ab.js <before-dist> [after-dist=dist] [handshakes=5000] [rounds=9] [key-schedule|transcript]', 5000, 9);
const { before: beforeDist, after: afterDist, count: handshakes, rounds } = args;
const part = args.rest[0] === 'transcript' ? 'transcript' : 'key-schedule';
const CHUNK = 100;
const [clientHello, serverHello, extensions, certificate, certificateVerify, finished, clientFinished] = [260, 90, 20, 560, 80, 36, 36].map((n) => randomBytes(n));

async function serverTranscript(dist: string): Promise<() => number> {
  const { Transcript } = await importFromBuild<typeof KeySchedule>(dist, 'src/tls/key-schedule.js');
  return () => {
    const t = new Transcript();
    t.start('sha256');
    t.add(clientHello!);
    t.add(serverHello!);
    let x = t.current()[0]!;
    t.add(extensions!);
    t.add(certificate!);
    x ^= t.current()[0]!;
    t.add(certificateVerify!);
    x ^= t.current()[0]!;
    t.add(finished!);
    x ^= t.current()[0]!;
    t.add(clientFinished!);
    return x ^ t.current()[0]!;
  };
}

async function serverKeySchedule(dist: string): Promise<() => number> {
  const ks = await importFromBuild<typeof KeySchedule>(dist, 'src/tls/key-schedule.js');
  const { suiteParams } = await importFromBuild<typeof Suites>(dist, 'src/tls/suites.js');
  const suite = suiteParams(CipherSuite.TLS_AES_128_GCM_SHA256)!;
  // Fresh inputs per handshake, as on the wire: a new shared secret and new transcript hashes.
  const inputs = Array.from({ length: 64 }, () => ({ shared: randomBytes(32), th: [randomBytes(32), randomBytes(32), randomBytes(32), randomBytes(32)] }));
  let n = 0;
  return () => {
    const { shared, th } = inputs[n++ & 63]!;
    const hs = new ks.EarlySecret(suite).handshake(shared);
    // As HandshakeKeys derives them: both secrets in one derivation where the build has it.
    const [chs, shs] = hs.handshakeTrafficSecrets?.(th[0]!) ?? [hs.clientHandshakeTrafficSecret(th[0]!), hs.serverHandshakeTrafficSecret(th[0]!)];
    const k1 = ks.trafficKeys(suite, shs);
    const k2 = ks.trafficKeys(suite, chs);
    const sf = ks.finishedVerifyData(suite, shs, th[1]!);
    const master = hs.master();
    const [cap, sap] = master.applicationTrafficSecrets?.(th[2]!) ?? [master.clientApplicationTrafficSecret(th[2]!), master.serverApplicationTrafficSecret(th[2]!)];
    const k3 = ks.trafficKeys(suite, sap);
    const cf = ks.finishedVerifyData(suite, chs, th[2]!);
    const psk = ks.resumptionPsk(suite, master.resumptionMasterSecret(th[3]!), Uint8Array.of(0));
    const k4 = ks.trafficKeys(suite, cap);
    return k1.key[0]! ^ k2.iv[0]! ^ sf[0]! ^ k3.key[0]! ^ cf[0]! ^ psk[0]! ^ k4.iv[0]!;
  };
}

const measured = part === 'transcript' ? serverTranscript : serverKeySchedule;
const builds: [string, () => number][] = [
  [`before (${beforeDist})`, await measured(beforeDist)],
  [`after (${afterDist})`, await measured(afterDist)],
];
const us: number[][] = builds.map(() => []);
let sink = 0;
for (let r = -1; r < rounds; r++) {
  const total = builds.map(() => 0);
  for (let done = 0; done < handshakes; done += CHUNK) {
    for (let j = 0; j < builds.length; j++) {
      const i = (j + r + 1) % builds.length;
      const f = builds[i]![1];
      const t = threadUs();
      for (let k = 0; k < CHUNK; k++) sink ^= f();
      total[i]! += threadUs() - t;
    }
  }
  // Round -1 warms up.
  if (r >= 0) total.forEach((t, i) => us[i]!.push(t / handshakes));
}
const what = part === 'transcript' ? 'transcript hash of one TLS 1.3 server handshake (SHA-256, 7 messages, 5 digests)' : 'server key schedule of one TLS 1.3 handshake (AES-128-GCM-SHA256)';
console.log(`# ${what}, ${handshakes} x ${rounds} rounds, thread CPU us per handshake; node ${process.version}; load average ${loadAverage()} (${sink & 0})`);
console.log('| build | us (median) | rounds |');
console.log('| --- | ---: | --- |');
builds.forEach(([name], i) => console.log(`| ${name} | ${median(us[i]!).toFixed(2)} | ${us[i]!.map((x) => x.toFixed(1)).join(', ')} |`));
console.log(`\nafter/before: ${median(us[1]!.map((a, i) => a / us[0]![i]!)).toFixed(3)}x (median of per-round ratios)`);
