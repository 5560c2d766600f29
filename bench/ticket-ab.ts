/**
 * Session ticket sealing and opening (src/tls/session.ts TicketKey) of two builds, side by side
 * in one process: `count` operations per build per round, builds alternating round by round;
 * medians of us per operation and of the per-round ratios. Tickets as a resumed handshake sees
 * them: a 32-byte PSK, an SNI name, no client certificate.
 *
 *   npx tsc -p tsconfig.json && taskset -c 1 node dist/bench/ticket-ab.js <before-dist> [after-dist=dist] [count=20000] [rounds=9]
 *
 * BENCH_LIVE=<seconds per slice> measures them live instead, where a tight loop keeps them
 * cache-hot: each build's own server (src/tls/socket.ts createServer, in this process, on
 * loopback) resumes node:tls clients (8 lanes, also in this process, each offering the session
 * its previous connection got), one build at a time for that many seconds, builds alternating
 * `rounds` times; every seal and open of the server is bracketed by the thread CPU clock
 * (bench/thread-clock.ts). `count` is then ignored. Clients and server share the thread, as
 * they do not in production; the seal and open between them see caches as cold as a busy
 * server's (the point of this mode), not the same cycles.
 */
import type * as nodeTls from 'node:tls';
import type { AddressInfo } from 'node:net';
import type { TicketKey as TicketKeyClass, TicketState } from '../src/tls/session.js';
import type { createServer as createOurServer } from '../src/tls/socket.js';
import { asIssuer, issueCertificate } from '../src/cli/pki/dev-pki.js';
import { abArguments, echoOnce, importFromBuild, loadAverage, median } from './tls-support.js';
import { threadClockName, threadCpuUs } from './thread-clock.js';

const { before, after, count, rounds } = abArguments('node dist/bench/ticket-ab.js <before-dist> [after-dist=dist] [count=20000] [rounds=9]', 20_000, 9);
type SessionModule = { readonly TicketKey: typeof TicketKeyClass };
const builds = await Promise.all([before, after].map((d) => importFromBuild<SessionModule>(d, 'src/tls/session.js')));
if (process.env.BENCH_LIVE) {
  await live(Number(process.env.BENCH_LIVE));
  process.exit(0);
}

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

/** Per build and operation: thread CPU us spent in it and its calls, counted by wrapping TicketKey.prototype. */
type Counted = Record<'seal' | 'open', { us: number; calls: number }>;

function countCalls(TicketKey: typeof TicketKeyClass): Counted {
  const c: Counted = { seal: { us: 0, calls: 0 }, open: { us: 0, calls: 0 } };
  const proto = TicketKey.prototype as unknown as Record<'seal' | 'open', (this: TicketKeyClass, arg: never) => unknown>;
  for (const op of ['seal', 'open'] as const) {
    const original = proto[op];
    proto[op] = function (this: TicketKeyClass, arg: never) {
      const t = threadCpuUs();
      const out = original.call(this, arg);
      c[op].us += threadCpuUs() - t;
      c[op].calls++;
      return out;
    };
  }
  return c;
}

async function live(seconds: number): Promise<void> {
  const ca = await issueCertificate({ commonName: 'ticket bench CA', isCA: true }, 'ecdsa-p256');
  const leaf = await issueCertificate({ commonName: 'localhost', dnsNames: ['localhost'], extendedKeyUsage: ['serverAuth'] }, 'ecdsa-p256', asIssuer(ca));
  const counted = builds.map((b) => countCalls(b.TicketKey));
  const servers = await Promise.all(
    [before, after].map(async (dist) => {
      const { createServer } = await importFromBuild<{ createServer: typeof createOurServer }>(dist, 'src/tls/socket.js');
      const server = createServer({ cert: leaf.pem, key: leaf.key.privateKeyPem }, (s) => {
        s.on('data', (d: Buffer) => s.write(d));
        s.on('end', () => s.end());
        s.on('error', () => undefined);
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      return server;
    }),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  const payload = Buffer.alloc(32, 0x61);
  const LANES = 8;
  const sessions = ports.map(() => new Array<Buffer | undefined>(LANES).fill(undefined));
  let reused = 0;
  let completed = 0;
  const load = async (i: number, ms: number): Promise<void> => {
    const until = Date.now() + ms;
    const options: nodeTls.ConnectionOptions = { port: ports[i]!, host: '127.0.0.1', servername: 'localhost', minVersion: 'TLSv1.3', rejectUnauthorized: false, ecdhCurve: 'X25519' };
    await Promise.all(
      Array.from({ length: LANES }, async (_, lane) => {
        while (Date.now() < until) {
          const session = sessions[i]![lane];
          await echoOnce(session ? { ...options, session } : options, payload, (s) => {
            completed++;
            if (s.isSessionReused()) reused++;
            sessions[i]![lane] = s.getSession() ?? session;
          });
        }
      }),
    );
  };
  console.log(`# TicketKey us/call in a live server resuming node:tls clients (x25519, 8 lanes, one process), ${seconds} s x ${rounds} slices per build, alternating; ${threadClockName}; node ${process.version}; load average ${loadAverage()}`);
  console.log(`# before: ${before}  after: ${after}`);
  for (let i = 0; i < builds.length; i++) await load(i, 1500); // warm-up, sessions
  const per: { seal: number[]; open: number[] }[] = builds.map(() => ({ seal: [], open: [] }));
  const ratios: { seal: number[]; open: number[] } = { seal: [], open: [] };
  reused = completed = 0;
  for (let r = 0; r < rounds; r++) {
    const got: { seal: number; open: number }[] = [];
    for (let j = 0; j < builds.length; j++) {
      const i = (j + r) % builds.length;
      const c = counted[i]!;
      c.seal = { us: 0, calls: 0 };
      c.open = { us: 0, calls: 0 };
      await load(i, seconds * 1000);
      got[i] = { seal: c.seal.us / c.seal.calls, open: c.open.us / c.open.calls };
      per[i]!.seal.push(got[i]!.seal);
      per[i]!.open.push(got[i]!.open);
    }
    ratios.seal.push(got[1]!.seal / got[0]!.seal);
    ratios.open.push(got[1]!.open / got[0]!.open);
  }
  console.log(`# connections ${completed}, resumed ${(reused / completed).toFixed(3)}; load average at the end ${loadAverage()}`);
  console.log('| operation | before (median) | after (median) | after/before (median of per-slice ratios) | before slices | after slices |');
  console.log('| --- | ---: | ---: | ---: | --- | --- |');
  const f = (v: number[]): string => v.map((x) => x.toFixed(1)).join(', ');
  for (const op of ['open', 'seal'] as const) {
    console.log(`| ${op} | ${median(per[0]![op]).toFixed(2)} | ${median(per[1]![op]).toFixed(2)} | ${median(ratios[op]).toFixed(3)}x | ${f(per[0]![op])} | ${f(per[1]![op])} |`);
  }
  for (const s of servers) s.close();
}
