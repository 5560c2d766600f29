/**
 * Session ticket sealing and opening (src/tls/session.ts TicketKey) of two builds, side by side
 * in one process: `count` operations per build per round, builds alternating round by round;
 * medians of us per operation and of the per-round ratios. Tickets as a resumed handshake sees
 * them: a 32-byte PSK, an SNI name, no client certificate.
 *
 *   npx tsc -p tsconfig.json && taskset -c 1 node dist/bench/ticket-ab.js <before-dist> [after-dist=dist] [count=20000] [rounds=9]
 */
import type { TicketKey as TicketKeyClass, TicketState } from '../src/tls/session.js';
import { abArguments, importFromBuild, loadAverage, median } from './tls-support.js';

const { before, after, count, rounds } = abArguments('node dist/bench/ticket-ab.js <before-dist> [after-dist=dist] [count=20000] [rounds=9]', 20_000, 9);
type SessionModule = { readonly TicketKey: typeof TicketKeyClass };
const builds = await Promise.all([before, after].map((d) => importFromBuild<SessionModule>(d, 'src/tls/session.js')));

const state: TicketState = {
  cipherSuite: 0x1301,
  psk: new Uint8Array(32).fill(3),
  issuedAt: Date.now(),
  ageAdd: 1,
  lifetimeSeconds: 7200,
  servername: 'localhost',
  alpnProtocol: '',
  clientAuthConfig: new Uint8Array(32),
  clientCertificate: new Uint8Array(0),
  clientValidUntil: 0,
};
const keyBytes = new Uint8Array(32).fill(1);

function timeUs(f: () => void): number {
  const t = process.hrtime.bigint();
  for (let i = 0; i < count; i++) f();
  return Number(process.hrtime.bigint() - t) / count / 1000;
}

console.log(`# TicketKey us/operation, ${count} x ${rounds} rounds per build, alternating; node ${process.version}; load average ${loadAverage()}`);
console.log(`# before: ${before}  after: ${after}`);
console.log('| operation | before (median) | after (median) | after/before (median of per-round ratios) |');
console.log('| --- | ---: | ---: | ---: |');
for (const op of ['open', 'seal'] as const) {
  const us: number[][] = [[], []];
  const ratios: number[] = [];
  for (let r = -1; r < rounds; r++) {
    const perBuild = builds.map(({ TicketKey }) => {
      const key = new TicketKey(keyBytes);
      const ticket = key.seal(state);
      return op === 'open'
        ? timeUs(() => {
            if (!key.open(ticket)) throw new Error('ticket did not open');
          })
        : timeUs(() => key.seal(state));
    });
    if (r < 0) continue; // warm-up round
    perBuild.forEach((v, i) => us[i]!.push(v));
    ratios.push(perBuild[1]! / perBuild[0]!);
  }
  console.log(`| ${op} | ${median(us[0]!).toFixed(2)} | ${median(us[1]!).toFixed(2)} | ${median(ratios).toFixed(3)}x |`);
}
