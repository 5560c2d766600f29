/**
 * Server CPU per handshake of two builds of src/tls, side by side in ONE process: in-memory
 * handshakes (our client, our server, 32 bytes echoed), with only the server's calls timed by
 * the thread's own CPU clock (process.threadCpuUsage: another process's load does not count,
 * and neither does our client). Builds alternate round by round; medians and ratios per mode.
 *
 *   npx tsc -p tsconfig.json && taskset -c 1 node dist/bench/handshake-server-ab.js <before-dist> [after-dist=dist] [handshakes=400] [rounds=7] [modes]
 *
 * modes (comma list, default all): x25519 (TLS 1.3 full, P-256 certificate), mlkem
 * (X25519MLKEM768), resumed (TLS 1.3 PSK-DHE with x25519), tls12 (ECDHE x25519, a ticket asked
 * for, as node:tls clients do). This complements bench/tls-handshake.ts (real sockets, node:tls
 * clients, whole-process CPU): it has no socket costs and less noise from other processes; the
 * socket bench says what a change is worth end to end. Within a round the builds alternate in
 * chunks of 20 handshakes, so a slow spell of the machine hits both; they share one heap, so
 * garbage one build leaves may be collected in the other's time (a change that only allocates
 * less shows here only in part). Run it with the same dist twice first: that spread is the noise.
 */
import type * as Tls from '../src/tls/index.js';
import { asIssuer, issueCertificate } from '../src/cli/pki/dev-pki.js';
import { abArguments, importFromBuild, median, threadCpuUs as threadUs } from './tls-support.js';

type TlsModule = typeof Tls;
type Mode = 'x25519' | 'mlkem' | 'resumed' | 'tls12';
const ALL_MODES: readonly Mode[] = ['x25519', 'mlkem', 'resumed', 'tls12'];

const args = abArguments('node dist/bench/handshake-server-ab.js <before-dist> [after-dist=dist] [handshakes=400] [rounds=7] [modes]', 400, 7);
const { before: beforeDist, after: afterDist, count: handshakes, rounds } = args;
const modes = (args.rest[0]?.split(',') ?? ALL_MODES) as Mode[];

const PAYLOAD = new Uint8Array(32);
const NO_KEYLOG = Object.assign(() => undefined, { enabled: () => false });

interface Build {
  readonly name: string;
  readonly tls: TlsModule;
  readonly server: Tls.ServerConfig;
  readonly clients: Record<Mode, Tls.ClientConfig>;
  session: Tls.TlsSession | undefined;
}

async function loadBuild(name: string, dist: string, cert: string, key: string): Promise<Build> {
  const tls = await importFromBuild<TlsModule>(dist, 'src/tls/index.js');
  const { NamedGroup } = tls;
  const server = new tls.ServerConfig({ certificates: [{ cert, key }] });
  const base = { rejectUnauthorized: false, servername: 'localhost' };
  return {
    name,
    tls,
    server,
    session: undefined,
    clients: {
      x25519: new tls.ClientConfig({ ...base, groups: [NamedGroup.x25519, NamedGroup.secp256r1], keyShareGroups: [NamedGroup.x25519] }),
      mlkem: new tls.ClientConfig({ ...base, groups: [NamedGroup.X25519MLKEM768, NamedGroup.x25519], keyShareGroups: [NamedGroup.X25519MLKEM768] }),
      resumed: new tls.ClientConfig({ ...base, groups: [NamedGroup.x25519, NamedGroup.secp256r1], keyShareGroups: [NamedGroup.x25519] }),
      tls12: new tls.ClientConfig({ ...base, minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', groups: [NamedGroup.x25519, NamedGroup.secp256r1] }),
    },
  };
}

/** One connection; returns the server's CPU in us, or throws. */
function oneHandshake(b: Build, mode: Mode): number {
  const resume = mode === 'resumed' && b.session !== undefined;
  const client = new b.tls.ClientConnection(b.clients[mode], { keylog: NO_KEYLOG, ...(resume ? { session: b.session } : {}) });
  let serverUs = 0;
  let t = threadUs();
  const server = new b.tls.ServerConnection(b.server, { keylog: NO_KEYLOG });
  serverUs += threadUs() - t;
  let toServer = client.poll().output;
  let echoed = false;
  let clientReady = false;
  let session: Tls.TlsSession | undefined;
  let resumedSeen = false;
  for (let round = 0; round < 8 && !echoed; round++) {
    const toClient: Uint8Array[] = [];
    for (const bytes of toServer) {
      t = threadUs();
      const p = server.feed(bytes);
      let echo: Uint8Array[] = [];
      if (p.events.some((e) => e.type === 'data')) {
        server.write(PAYLOAD);
        echo = server.poll().output;
      }
      serverUs += threadUs() - t;
      for (const e of p.events) if (e.type === 'error') throw e.error;
      if (p.waitFor) throw new Error('server waited');
      toClient.push(...p.output, ...echo);
    }
    toServer = [];
    for (const bytes of toClient) {
      const p = client.feed(bytes);
      for (const e of p.events) {
        if (e.type === 'error') throw e.error;
        if (e.type === 'session') session = e.session;
        if (e.type === 'handshake') {
          clientReady = true;
          resumedSeen = e.info.resumed;
        }
        if (e.type === 'data') echoed = true;
      }
      toServer.push(...p.output);
      if (clientReady) {
        client.write(PAYLOAD);
        toServer.push(...client.poll().output);
        clientReady = false;
      }
    }
  }
  if (!echoed) throw new Error(`${b.name} ${mode}: no echo`);
  if (mode === 'resumed') {
    if (b.session && !resumedSeen) throw new Error(`${b.name}: resumption refused`);
    if (session) b.session = session;
  }
  return serverUs;
}

const CHUNK = 20;

/** One round: `n` handshakes per build, alternating in chunks; server us per handshake of each. */
function round(builds: readonly Build[], mode: Mode, n: number, first: number): number[] {
  const totals = builds.map(() => 0);
  for (const b of builds) if (mode === 'resumed' && !b.session) oneHandshake(b, mode);
  for (let done = 0; done < n; done += CHUNK) {
    for (let j = 0; j < builds.length; j++) {
      const i = (j + first) % builds.length;
      for (let k = 0; k < Math.min(CHUNK, n - done); k++) totals[i]! += oneHandshake(builds[i]!, mode);
    }
  }
  return totals.map((t) => t / n);
}


async function main(): Promise<void> {
  const ca = await issueCertificate({ commonName: 'ab bench CA', isCA: true }, 'ecdsa-p256');
  const leaf = await issueCertificate({ commonName: 'localhost', dnsNames: ['localhost'], extendedKeyUsage: ['serverAuth'] }, 'ecdsa-p256', asIssuer(ca));
  const builds = [await loadBuild('before', beforeDist, leaf.pem, leaf.key.privateKeyPem), await loadBuild('after', afterDist, leaf.pem, leaf.key.privateKeyPem)];
  console.log(`# server CPU us/handshake (thread CPU, in memory, P-256 certificate), ${handshakes} handshakes x ${rounds} rounds per build, alternating; node ${process.version}`);
  console.log(`# before: ${beforeDist}  after: ${afterDist}`);
  console.log('| mode | before (median) | after (median) | after/before (median of per-round ratios) | before rounds | after rounds |');
  console.log('| --- | ---: | ---: | ---: | --- | --- |');
  for (const mode of modes) {
    // Warm-up: both builds compiled and optimised before counting.
    round(builds, mode, Math.max(100, handshakes / 2), 0);
    const us: number[][] = builds.map(() => []);
    const ratios: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const perBuild = round(builds, mode, handshakes, r % 2);
      perBuild.forEach((v, i) => us[i]!.push(v));
      ratios.push(perBuild[1]! / perBuild[0]!);
    }
    const f = (v: number[]): string => v.map((x) => x.toFixed(0)).join(', ');
    console.log(`| ${mode} | ${median(us[0]!).toFixed(1)} | ${median(us[1]!).toFixed(1)} | ${median(ratios).toFixed(3)}x | ${f(us[0]!)} | ${f(us[1]!)} |`);
  }
}

await main();
