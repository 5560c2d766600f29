/**
 * The transcript hash of one TLS 1.3 server handshake (src/tls/key-schedule.ts `Transcript`)
 * from two builds side by side in one process, alternating in chunks of 100 handshakes' worth:
 * ClientHello, ServerHello, digest, EncryptedExtensions, Certificate, digest, CertificateVerify,
 * digest, Finished, digest, client Finished, digest, with messages of typical sizes (a P-256
 * certificate chain). Thread CPU us per handshake, medians.
 *
 *   npx tsc -p tsconfig.json && taskset -c 1 node dist/bench/handshake-transcript-ab.js <before-dist> [after-dist=dist] [handshakes=5000] [rounds=9]
 */
import { randomBytes } from 'node:crypto';
import type * as KeySchedule from '../src/tls/key-schedule.js';
import { abArguments, importFromBuild, loadAverage, median, threadCpuUs as threadUs } from './tls-support.js';

const { before: beforeDist, after: afterDist, count: handshakes, rounds } = abArguments('node dist/bench/handshake-transcript-ab.js <before-dist> [after-dist=dist] [handshakes=5000] [rounds=9]', 5000, 9);
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

const builds: [string, () => number][] = [
  [`before (${beforeDist})`, await serverTranscript(beforeDist)],
  [`after (${afterDist})`, await serverTranscript(afterDist)],
];
const us: number[][] = builds.map(() => []);
let sink = 0;
const loadBefore = loadAverage();
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
console.log(`# transcript hash of one TLS 1.3 server handshake (SHA-256, 7 messages, 5 digests), ${handshakes} x ${rounds} rounds, thread CPU us per handshake; node ${process.version}; load average ${loadBefore} -> ${loadAverage()} (${sink & 0})`);
console.log('| build | us (median) | rounds |');
console.log('| --- | ---: | --- |');
builds.forEach(([name], i) => console.log(`| ${name} | ${median(us[i]!).toFixed(2)} | ${us[i]!.map((x) => x.toFixed(1)).join(', ')} |`));
console.log(`\nafter/before: ${median(us[1]!.map((a, i) => a / us[0]![i]!)).toFixed(3)}x (median of per-round ratios)`);
