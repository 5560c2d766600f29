/**
 * Server CPU per handshake of two builds of src/tls, side by side in ONE process: in-memory
 * handshakes (our client, our server, 32 bytes echoed), with only the server's calls timed by
 * the thread's own CPU clock (bench/thread-clock.ts: another process's load does not count,
 * and neither does our client). Builds alternate round by round; medians and ratios per mode.
 *
 *   npx tsc -p tsconfig.json && taskset -c 1 node dist/bench/handshake-server-ab.js <before-dist> [after-dist=dist] [handshakes=400] [rounds=7] [modes]
 *
 * modes (comma list, default all but the ratio modes): x25519 (TLS 1.3 full, P-256 certificate), mlkem
 * (X25519MLKEM768), resumed (TLS 1.3 PSK-DHE with x25519), tls12 (ECDHE x25519, a ticket asked
 * for, as node:tls clients do); ratio-x25519 and ratio-mlkem: issue 19's resumed / full of each build
 * (below). This complements bench/tls-handshake.ts (real sockets, node:tls
 * clients, whole-process CPU): it has no socket costs and less noise from other processes; the
 * socket bench says what a change is worth end to end. Within a round the builds alternate in
 * chunks of 20 handshakes, so a slow spell of the machine hits both; they share one heap, so
 * garbage one build leaves may be collected in the other's time (a change that only allocates
 * less shows here only in part). Run it with the same dist twice first: that spread is the noise.
 *
 * ratio-<group> modes: per build, short slices of `handshakes` full handshakes and `handshakes`
 * resumed ones (PSK-DHE) in the same group alternate (which comes first alternates slice by
 * slice, and so do the builds), `rounds` slice pairs per build; reported are each build's medians
 * of full and resumed us and the median and quartiles of its per-slice ratios resumed / full, then
 * both builds' ratios pooled. Pass the same dist twice for two estimates of one build. The
 * server's clock reads (a few per handshake, in both modes alike) are in the figures; their cost
 * is printed so it can be taken out.
 */
import type * as Tls from '../src/tls/index.js';
import { asIssuer, issueCertificate } from '../src/cli/pki/dev-pki.js';
import { abArguments, importFromBuild, loadAverage, median, percentile } from './tls-support.js';
import { threadClockName, threadCpuUs as threadUs } from './thread-clock.js';

type TlsModule = typeof Tls;
type Mode = 'x25519' | 'mlkem' | 'resumed' | 'resumed-mlkem' | 'tls12';
type BenchMode = Mode | 'ratio-x25519' | 'ratio-mlkem';
const ALL_MODES: readonly BenchMode[] = ['x25519', 'mlkem', 'resumed', 'tls12'];
/** For each ratio mode, its full and its resumed handshake. */
const RATIO_MODES: Partial<Record<BenchMode, readonly [Mode, Mode]>> = { 'ratio-x25519': ['x25519', 'resumed'], 'ratio-mlkem': ['mlkem', 'resumed-mlkem'] };

const args = abArguments('node dist/bench/handshake-server-ab.js <before-dist> [after-dist=dist] [handshakes=400] [rounds=7] [modes]', 400, 7);
const { before: beforeDist, after: afterDist, count: handshakes, rounds } = args;
const modes = (args.rest[0]?.split(',') ?? ALL_MODES) as BenchMode[];

const PAYLOAD = new Uint8Array(32);
const NO_KEYLOG = Object.assign(() => undefined, { enabled: () => false });

interface Build {
  readonly name: string;
  readonly tls: TlsModule;
  readonly server: Tls.ServerConfig;
  readonly clients: Record<Mode, Tls.ClientConfig>;
  readonly sessions: Partial<Record<Mode, Tls.TlsSession>>;
}

function isResumed(mode: Mode): boolean {
  return mode === 'resumed' || mode === 'resumed-mlkem';
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
    sessions: {},
    clients: {
      x25519: new tls.ClientConfig({ ...base, groups: [NamedGroup.x25519, NamedGroup.secp256r1], keyShareGroups: [NamedGroup.x25519] }),
      mlkem: new tls.ClientConfig({ ...base, groups: [NamedGroup.X25519MLKEM768, NamedGroup.x25519], keyShareGroups: [NamedGroup.X25519MLKEM768] }),
      resumed: new tls.ClientConfig({ ...base, groups: [NamedGroup.x25519, NamedGroup.secp256r1], keyShareGroups: [NamedGroup.x25519] }),
      'resumed-mlkem': new tls.ClientConfig({ ...base, groups: [NamedGroup.X25519MLKEM768, NamedGroup.x25519], keyShareGroups: [NamedGroup.X25519MLKEM768] }),
      tls12: new tls.ClientConfig({ ...base, minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', groups: [NamedGroup.x25519, NamedGroup.secp256r1] }),
    },
  };
}

/** One connection; returns the server's CPU in us, or throws. */
function oneHandshake(b: Build, mode: Mode): number {
  const offered = isResumed(mode) ? b.sessions[mode] : undefined;
  const client = new b.tls.ClientConnection(b.clients[mode], { keylog: NO_KEYLOG, ...(offered ? { session: offered } : {}) });
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
  if (isResumed(mode)) {
    if (offered && !resumedSeen) throw new Error(`${b.name}: resumption refused`);
    if (session) b.sessions[mode] = session;
  }
  return serverUs;
}

const CHUNK = 20;

/** One round: `n` handshakes per build, alternating in chunks; server us per handshake of each. */
function round(builds: readonly Build[], mode: Mode, n: number, first: number): number[] {
  const totals = builds.map(() => 0);
  for (const b of builds) if (isResumed(mode) && !b.sessions[mode]) oneHandshake(b, mode);
  for (let done = 0; done < n; done += CHUNK) {
    for (let j = 0; j < builds.length; j++) {
      const i = (j + first) % builds.length;
      for (let k = 0; k < Math.min(CHUNK, n - done); k++) totals[i]! += oneHandshake(builds[i]!, mode);
    }
  }
  return totals.map((t) => t / n);
}

/** Server us per handshake of `n` handshakes of one build in one mode (a session got first if it resumes). */
function slice(b: Build, mode: Mode, n: number): number {
  if (isResumed(mode) && !b.sessions[mode]) oneHandshake(b, mode);
  let total = 0;
  for (let k = 0; k < n; k++) total += oneHandshake(b, mode);
  return total / n;
}

/** What one threadUs() read costs, us (each server call is bracketed by two). */
function clockReadUs(): number {
  const n = 20_000;
  const t = threadUs();
  for (let i = 0; i < n; i++) threadUs();
  return (threadUs() - t) / n;
}

function ratioMode(builds: readonly Build[], mode: BenchMode, [full, resumed]: readonly [Mode, Mode]): void {
  for (const b of builds) {
    slice(b, full, Math.max(100, handshakes * 5));
    slice(b, resumed, Math.max(100, handshakes * 5));
  }
  const fullUs: number[][] = builds.map(() => []);
  const resumedUs: number[][] = builds.map(() => []);
  const ratios: number[][] = builds.map(() => []);
  for (let r = 0; r < rounds; r++) {
    for (let j = 0; j < builds.length; j++) {
      const i = (j + r) % builds.length;
      const b = builds[i]!;
      let f: number, s: number;
      if (((r >> 1) + i) % 2 === 0) {
        f = slice(b, full, handshakes);
        s = slice(b, resumed, handshakes);
      } else {
        s = slice(b, resumed, handshakes);
        f = slice(b, full, handshakes);
      }
      fullUs[i]!.push(f);
      resumedUs[i]!.push(s);
      ratios[i]!.push(s / f);
    }
  }
  const q = (v: readonly number[]): string => {
    const s = [...v].sort((a, b) => a - b);
    return `${median(s).toFixed(3)}x (${percentile(s, 25).toFixed(3)}-${percentile(s, 75).toFixed(3)})`;
  };
  builds.forEach((b, i) => console.log(`| ${mode} | ${b.name} | ${median(fullUs[i]!).toFixed(1)} | ${median(resumedUs[i]!).toFixed(1)} | ${q(ratios[i]!)} |`));
  console.log(`| ${mode} | both builds pooled | | | ${q(ratios.flat())} |`);
}

async function main(): Promise<void> {
  const ca = await issueCertificate({ commonName: 'ab bench CA', isCA: true }, 'ecdsa-p256');
  const leaf = await issueCertificate({ commonName: 'localhost', dnsNames: ['localhost'], extendedKeyUsage: ['serverAuth'] }, 'ecdsa-p256', asIssuer(ca));
  const builds = [await loadBuild('before', beforeDist, leaf.pem, leaf.key.privateKeyPem), await loadBuild('after', afterDist, leaf.pem, leaf.key.privateKeyPem)];
  console.log(`# server CPU us/handshake (thread CPU, in memory, P-256 certificate), ${handshakes} handshakes x ${rounds} rounds per build, alternating; node ${process.version}`);
  console.log(`# before: ${beforeDist}  after: ${afterDist}; load average ${loadAverage()}`);
  const ratioModes = modes.filter((m) => RATIO_MODES[m]);
  if (ratioModes.length > 0) {
    console.log(`# resumed / full: slices of ${handshakes} handshakes, ${rounds} slice pairs per build; one server clock read (${threadClockName}) costs ${clockReadUs().toFixed(2)} us`);
    console.log('| mode | build | full us (median) | resumed us (median) | resumed / full (median of per-slice ratios, quartiles) |');
    console.log('| --- | --- | ---: | ---: | ---: |');
    for (const mode of ratioModes) ratioMode(builds, mode, RATIO_MODES[mode]!);
    console.log(`# load average at the end ${loadAverage()}`);
  }
  const abModes = modes.filter((m): m is Mode => !RATIO_MODES[m]);
  if (abModes.length === 0) return;
  console.log('| mode | before (median) | after (median) | after/before (median of per-round ratios) | before rounds | after rounds |');
  console.log('| --- | ---: | ---: | ---: | --- | --- |');
  for (const mode of abModes) {
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
