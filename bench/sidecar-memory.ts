/**
 * The sidecar's memory under the pod's limit: `dc-operator sidecar` as a process inside a cgroup v1
 * memory cgroup limited like the injected container (charts/dc-operator/values.yaml
 * sidecar.resources.limits.memory, 128Mi), driven on loopback with bounded hostile-but-legal load:
 * full handshakes of every kind, resumption, aborted handshakes, many connections held open.
 * Results: bench/results/sidecar-memory.md.
 *
 *   node dist/bench/sidecar-memory.js [variant...]
 *
 * A variant is how the process is started (VARIANTS below: `base` is what the webhook injects
 * today). Every variant runs the same load, one after the other, each in a fresh cgroup; BENCH_ROUNDS
 * (default 1) repeats the list, BENCH_ENGINE (node|ours, default node) is --certificate-engine,
 * BENCH_SCALE (default 1) multiplies the handshake counts, BENCH_LIMIT the cgroup limit in bytes.
 * Needs root (it creates /sys/fs/cgroup/memory/dc-memlimit-bench-*; removed at the end).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, rmdirSync, existsSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer as httpCreateServer } from 'node:http';
import { connect as netConnect, createServer as netCreateServer, type AddressInfo } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as nodeTls from 'node:tls';
import { BUNDLE_KEYS } from '../src/operator/api/serving-bundle.js';
import { ClientConfig } from '../src/tls/client.js';
import { delegatedCredentialPeerHooks, DELEGATED_CREDENTIAL_LABEL } from '../src/tls/delegated/index.js';
import { connect as oursConnect } from '../src/tls/socket.js';
import { credentialFiles, makePki } from '../test/unit/sidecar/fixtures.js';
import { KubeletVolume } from '../test/unit/sidecar/kubelet-volume.js';
import { REQUEST } from './handshake-support.js';
import { loadAverage } from './tls-support.js';
import { startSidecarProcess } from './sidecar-process.js';

const DIST = join(fileURLToPath(import.meta.url), '..', '..');
const CGROUP_ROOT = '/sys/fs/cgroup/memory';
const LIMIT = Number(process.env.BENCH_LIMIT ?? 128 * 1024 * 1024);
const ENGINE = (process.env.BENCH_ENGINE ?? 'node') as 'node' | 'ours';
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 1);
const SCALE = Number(process.env.BENCH_SCALE ?? 1);
/** Every phase stops after this long even if its count is not reached. */
const PHASE_DEADLINE_MS = 90_000;
const CONNECTION_TIMEOUT_MS = 10_000;
const LANES = 8;
/** Connections held open at most in the hold phase (the sidecar's per-source limit is 2500), and the step. */
const HOLD = Number(process.env.BENCH_HOLD ?? 2000);
const HOLD_STEP = Number(process.env.BENCH_HOLD_STEP ?? 250);
/** Phases to run (comma-separated names), default all. */
const ONLY = process.env.BENCH_PHASES?.split(',');
/** The hold phase connects from 127.0.0.1 .. 127.0.0.N (all loopback on Linux): N clients for the per-source cap. */
const SOURCES = Number(process.env.BENCH_SOURCES ?? 1);
const MiB = 1024 * 1024;

/** How the sidecar process is started: node flags and environment. */
/** BENCH_BEFORE_DIST: a build (dist/) the variants named `before-*` start the sidecar from: the same load, a build before a change. */
const BEFORE_DIST = process.env.BENCH_BEFORE_DIST;
const VARIANTS: Record<string, { env: Record<string, string>; flags: string[] }> = {
  base: { env: {}, flags: [] },
  arena2: { env: { MALLOC_ARENA_MAX: '2' }, flags: [] },
  semi: { env: {}, flags: ['--max-semi-space-size=2'] },
  'arena2-semi': { env: { MALLOC_ARENA_MAX: '2' }, flags: ['--max-semi-space-size=2'] },
  'arena2-semi-old': { env: { MALLOC_ARENA_MAX: '2' }, flags: ['--max-semi-space-size=2', '--max-old-space-size=64'] },
  // what the webhook injects under a 128Mi limit (src/webhook/sidecar-memory.ts), through the sidecar's environment
  capped: { env: { DC_SIDECAR_MAX_CONNECTIONS: '1024' }, flags: [] },
  'capped-arena2': { env: { DC_SIDECAR_MAX_CONNECTIONS: '1024', MALLOC_ARENA_MAX: '2' }, flags: [] },
  // malloc_trim every 5 s from the probe (bench/sidecar-memory-probe.ts)
  'capped-trim': { env: { DC_SIDECAR_MAX_CONNECTIONS: '1024', MEMORY_PROBE_TRIM_MS: '5000' }, flags: [] },
  'capped-arena2-trim': { env: { DC_SIDECAR_MAX_CONNECTIONS: '1024', MALLOC_ARENA_MAX: '2', MEMORY_PROBE_TRIM_MS: '5000' }, flags: [] },
};

interface Sample {
  rss: number;
  cgroup: number;
}

class Cgroup {
  readonly dir: string;
  constructor(name: string, limit: number) {
    this.dir = join(CGROUP_ROOT, name);
    if (existsSync(this.dir)) rmdirSync(this.dir);
    mkdirSync(this.dir);
    writeFileSync(join(this.dir, 'memory.limit_in_bytes'), String(limit));
  }
  read(file: string): string {
    return readFileSync(join(this.dir, file), 'utf8');
  }
  num(file: string): number {
    return Number(this.read(file).trim());
  }
  stat(): Record<string, number> {
    return Object.fromEntries(this.read('memory.stat').trim().split('\n').map((l) => { const [k, v] = l.split(' '); return [k!, Number(v)]; }));
  }
  oomKills(): number {
    return Number(/oom_kill (\d+)/.exec(this.read('memory.oom_control'))?.[1] ?? 0);
  }
  remove(): void {
    for (let i = 0; i < 50; i++) {
      try {
        rmdirSync(this.dir);
        return;
      } catch {
        // processes still leaving the group
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
      }
    }
  }
}

function rssOf(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
  } catch {
    return 0;
  }
}

function smapsRollup(pid: number): Record<string, number> {
  try {
    const out: Record<string, number> = {};
    for (const m of readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8').matchAll(/^(\w+):\s+(\d+) kB/gm)) out[m[1]!] = Number(m[2]) * 1024;
    return out;
  } catch {
    return {};
  }
}

const PROBE = join(DIST, 'bench', 'sidecar-memory-probe.js');

interface Probe {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  spaces: Record<string, number>;
  /** malloc_trim calls made by the probe (MEMORY_PROBE_TRIM_MS) so far: how many, the longest, all. */
  trims: { count: number; maxMs: number; totalMs: number };
}

/** Asks the sidecar's preloaded probe (bench/sidecar-memory-probe.ts) for process.memoryUsage(). */
function probe(child: ChildProcess): Promise<Probe | undefined> {
  return new Promise((resolve) => {
    let out = '';
    const timer = setTimeout(() => done(undefined), 5000);
    const onData = (c: Buffer): void => {
      out += c.toString('utf8');
      const m = /memory-probe (\{[^\n]*\})\n/.exec(out);
      if (m) done(JSON.parse(m[1]!) as Probe);
    };
    const done = (p: Probe | undefined): void => {
      clearTimeout(timer);
      child.stderr!.off('data', onData);
      resolve(p);
    };
    child.stderr!.on('data', onData);
    child.kill('SIGUSR2');
  });
}

/** Runs `one` on LANES lanes until `count` finished or PHASE_DEADLINE_MS passed; counts failures. */
async function lanes(count: number, one: (i: number) => Promise<boolean>): Promise<{ ok: number; failed: number }> {
  let next = 0;
  let ok = 0;
  let failed = 0;
  const deadline = Date.now() + PHASE_DEADLINE_MS;
  await Promise.all(
    Array.from({ length: LANES }, async () => {
      while (next < count && Date.now() < deadline) {
        const i = next++;
        if (await one(i)) ok++;
        else failed++;
      }
    }),
  );
  return { ok, failed };
}

/** Settles true once `n` bytes or more came back after REQUEST, false on error/timeout. */
function exchange(socket: NodeJS.ReadWriteStream & { destroy(): void; setTimeout(ms: number, f: () => void): unknown; write(b: Buffer): boolean }, onOpen: (s: () => void) => void): Promise<boolean> {
  return new Promise((resolve) => {
    let done = false;
    let got = 0;
    const finish = (ok: boolean): void => {
      if (done) return;
      done = true;
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(CONNECTION_TIMEOUT_MS, () => finish(false));
    socket.on('error', () => finish(false));
    socket.on('close', () => finish(false));
    socket.on('data', (c: Buffer) => {
      got += c.length;
      if (got >= 12) finish(true);
    });
    onOpen(() => socket.write(REQUEST));
  });
}

function nodeHandshake(port: number, options: nodeTls.ConnectionOptions): Promise<boolean> {
  const s = nodeTls.connect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false, ...options });
  return exchange(s, (write) => s.once('secureConnect', write));
}

const dcConfig = new ClientConfig({ servername: 'localhost', rejectUnauthorized: false, serverCredentialHooks: delegatedCredentialPeerHooks({ peer: 'server' }) });

function dcHandshake(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = oursConnect({ host: '127.0.0.1', port, servername: 'localhost', config: dcConfig, handshakeTimeout: CONNECTION_TIMEOUT_MS }, () => {
      if (s.handshakeInfo?.serverMode.authentication !== DELEGATED_CREDENTIAL_LABEL) {
        s.destroy();
        resolve(false);
        return;
      }
      s.write(REQUEST);
    });
    let done = false;
    const finish = (ok: boolean): void => {
      if (done) return;
      done = true;
      s.destroy();
      resolve(ok);
    };
    s.on('data', () => finish(true));
    s.on('error', () => finish(false));
    s.on('close', () => finish(false));
  });
}

/** The first flight of a node:tls client offering at most `version`, recorded from a loopback listener. */
async function recordClientHello(version: nodeTls.SecureVersion): Promise<Buffer> {
  const server = netCreateServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    return await new Promise<Buffer>((resolve, reject) => {
      server.once('connection', (c) => c.once('data', (b: Buffer) => {
        resolve(b);
        c.destroy();
      }));
      const t = nodeTls.connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, servername: 'localhost', rejectUnauthorized: false, maxVersion: version });
      t.on('error', () => undefined);
      setTimeout(() => reject(new Error('no ClientHello recorded')), 5000).unref();
    });
  } finally {
    server.close();
  }
}

/** A ClientHello, then closed as soon as the server's first flight arrives: the handshake never completes. */
function abortedHandshake(port: number, hello: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    const raw = netConnect({ host: '127.0.0.1', port }, () => raw.write(hello));
    const timer = setTimeout(() => raw.destroy(), CONNECTION_TIMEOUT_MS);
    raw.once('data', () => {
      clearTimeout(timer);
      raw.destroy();
      resolve(true);
    });
    raw.on('error', () => undefined);
    raw.on('close', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

/**
 * TLS 1.3 connections (no DC: node:tls) opened and held, in steps of `step` up to `count`; after each
 * step `atStep` reads the memory; then all are closed. What each held connection costs.
 */
async function holdOpen(port: number, count: number, step: number, atStep: (open: number) => Promise<void>): Promise<{ ok: number; failed: number }> {
  const open: nodeTls.TLSSocket[] = [];
  let ok = 0;
  let failed = 0;
  let attempts = 0;
  for (let target = step; target <= count; target += step) {
    const r = await lanes(target - ok, () =>
      new Promise<boolean>((resolve) => {
        const localAddress = `127.0.0.${1 + (attempts++ % SOURCES)}`;
        // tls.connect hands localAddress to its net.Socket's connect (not in its types)
        const s = nodeTls.connect({ host: '127.0.0.1', port, localAddress, servername: 'localhost', rejectUnauthorized: false } as nodeTls.ConnectionOptions);
        s.setTimeout(CONNECTION_TIMEOUT_MS, () => s.destroy());
        s.once('secureConnect', () => {
          s.setTimeout(0);
          open.push(s);
          resolve(true);
        });
        s.on('error', () => resolve(false));
        s.on('close', () => resolve(false));
      }),
    );
    ok += r.ok;
    failed += r.failed;
    if (r.ok === 0) break;
    await new Promise((r2) => setTimeout(r2, 500));
    await atStep(open.length);
  }
  for (const s of open) s.destroy();
  return { ok, failed };
}

const SSLYZE = process.env.BENCH_SSLYZE_PYTHON ?? join(homedir(), '.venv', 'sslyze', 'bin', 'python');
const SSLYZE_SCANS = Number(process.env.BENCH_SSLYZE ?? 0);

/** One sslyze scan of 127.0.0.1:port (all its default checks), bounded to 5 minutes. */
function sslyzeScan(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn(SSLYZE, ['-m', 'sslyze', `127.0.0.1:${port}`], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000 });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (out += c.toString('utf8')));
    // sslyze exits 0 on a refused connection too: a scan counts when it completed without a scan error
    child.once('exit', (code) => {
      const ok = /SCANS COMPLETED/.test(out) && !/=> ERROR/.test(out);
      if (!ok) console.log(`    sslyze exited ${code}: ${out.slice(-600)}`);
      resolve(ok);
    });
    child.once('error', () => resolve(false));
  });
}

/** `count` runs of `one`, one at a time. */
async function lanes1(count: number, one: () => Promise<boolean>): Promise<{ ok: number; failed: number }> {
  let ok = 0;
  for (let i = 0; i < count; i++) if (await one()) ok++;
  return { ok, failed: count - ok };
}

interface Phase {
  name: string;
  run(port: number, atStep: (open: number) => Promise<void>): Promise<{ ok: number; failed: number }>;
}

function phases(): Phase[] {
  const n = (k: number): number => Math.round(k * SCALE);
  let session12: Buffer | undefined;
  let session13: Buffer | undefined;
  return [
    { name: 'tls13 no DC', run: (p) => lanes(n(1500), () => nodeHandshake(p, { minVersion: 'TLSv1.3' })) },
    { name: 'tls13 DC', run: (p) => lanes(n(1500), () => dcHandshake(p)) },
    { name: 'tls12 full', run: (p) => lanes(n(1500), () => nodeHandshake(p, { maxVersion: 'TLSv1.2' })) },
    // every other connection a full one whose session is then offered by the next: new session IDs
    // fill the server's cache, resumed ones read it
    {
      name: 'tls12 resume',
      run: (p) =>
        lanes(n(1500), (i) => {
          const s = nodeTls.connect({ host: '127.0.0.1', port: p, servername: 'localhost', rejectUnauthorized: false, maxVersion: 'TLSv1.2', ...(i % 2 === 1 && session12 ? { session: session12 } : {}) });
          s.once('session', (b: Buffer) => (session12 = b));
          return exchange(s, (write) => s.once('secureConnect', write));
        }),
    },
    {
      name: 'tls13 resume',
      run: (p) =>
        lanes(n(1000), (i) => {
          const s = nodeTls.connect({ host: '127.0.0.1', port: p, servername: 'localhost', rejectUnauthorized: false, minVersion: 'TLSv1.3', ...(i % 2 === 1 && session13 ? { session: session13 } : {}) });
          s.once('session', (b: Buffer) => (session13 = b));
          return exchange(s, (write) => s.once('secureConnect', write));
        }),
    },
    { name: 'aborted tls13', run: async (p) => { const h = await recordClientHello('TLSv1.3'); return lanes(n(1500), () => abortedHandshake(p, h)); } },
    { name: 'aborted tls12', run: async (p) => { const h = await recordClientHello('TLSv1.2'); return lanes(n(1000), () => abortedHandshake(p, h)); } },
    // sslyze (BENCH_SSLYZE scans, default 0: not part of the default list), one after the other
    { name: 'sslyze', run: async (p) => lanes1(SSLYZE_SCANS, () => sslyzeScan(p)) },
    { name: 'hold open', run: (p, atStep) => holdOpen(p, HOLD, HOLD_STEP, atStep) },
    { name: 'tls13 no DC again', run: (p) => lanes(n(1500), () => nodeHandshake(p, { minVersion: 'TLSv1.3' })) },
  ];
}

interface VariantResult {
  variant: string;
  peakRss: number;
  peakCgroup: number;
  maxUsage: number;
  failcnt: number;
  oomKills: number;
  killed: string | undefined;
  afterIdle: Sample & Record<string, number>;
  phases: { name: string; ok: number; failed: number; peakRss: number; peakCgroup: number; heapUsed: number; external: number }[];
  smaps: Record<string, number>;
  stat: Record<string, number>;
}

async function runVariant(name: string, round: number, appPort: number, bundleDir: string): Promise<VariantResult> {
  const v = VARIANTS[name.replace(/^before-/, '')];
  const dist = name.startsWith('before-') ? BEFORE_DIST : DIST;
  if (!dist) throw new Error(`${name}: set BENCH_BEFORE_DIST to the build to compare`);
  if (!v) throw new Error(`unknown variant ${name}: one of ${Object.keys(VARIANTS).join(', ')}`);
  const cg = new Cgroup(`dc-memlimit-bench-${name}-${round}`, LIMIT);
  const prefix = ['sh', '-c', `echo $$ > ${join(cg.dir, 'cgroup.procs')} && exec "$@"`, 'sh', 'env', ...Object.entries(v.env).map(([k, val]) => `${k}=${val}`), process.execPath, '--import', PROBE, ...v.flags];
  let child: ChildProcess | undefined;
  let killed: string | undefined;
  const result: VariantResult = { variant: name, peakRss: 0, peakCgroup: 0, maxUsage: 0, failcnt: 0, oomKills: 0, killed: undefined, afterIdle: { rss: 0, cgroup: 0 }, phases: [], smaps: {}, stat: {} };
  try {
    const s = await startSidecarProcess(prefix, join(dist, 'src', 'cli'), bundleDir, appPort, ENGINE, undefined);
    child = s.child;
    child.stdout!.resume();
    child.once('exit', (code, signal) => (killed = signal ?? `exit ${code}`));
    const pid = child.pid!;
    let phasePeak = { rss: 0, cgroup: 0 };
    const sampler = setInterval(() => {
      const rss = rssOf(pid);
      const cgroup = cg.num('memory.usage_in_bytes');
      phasePeak = { rss: Math.max(phasePeak.rss, rss), cgroup: Math.max(phasePeak.cgroup, cgroup) };
      result.peakRss = Math.max(result.peakRss, rss);
      result.peakCgroup = Math.max(result.peakCgroup, cgroup);
    }, 100);
    try {
      const start = await probe(child);
      console.log(`  ${name} round ${round}: started, rss ${mib(rssOf(pid))}, cgroup ${mib(cg.num('memory.usage_in_bytes'))}, heap used ${mib(start?.heapUsed ?? NaN)}`);
      for (const ph of phases().filter((x) => (!ONLY || ONLY.includes(x.name)) && (x.name !== 'sslyze' || SSLYZE_SCANS > 0))) {
        if (killed) break;
        phasePeak = { rss: 0, cgroup: 0 };
        const r = await ph.run(s.port, async (open) => {
          const g = killed ? undefined : await probe(child!);
          console.log(`      ${String(open).padStart(5)} open: rss ${mib(rssOf(pid))} cgroup ${mib(cg.num('memory.usage_in_bytes'))} heap used ${mib(g?.heapUsed ?? NaN)} external ${mib(g?.external ?? NaN)}`);
        });
        const g = killed ? undefined : await probe(child);
        const row = { name: ph.name, ...r, peakRss: phasePeak.rss, peakCgroup: phasePeak.cgroup, heapUsed: g?.heapUsed ?? NaN, external: g?.external ?? NaN };
        result.phases.push(row);
        console.log(
          `    ${ph.name.padEnd(18)} ok ${String(r.ok).padStart(5)} failed ${String(r.failed).padStart(5)}  peak rss ${mib(row.peakRss)} cgroup ${mib(row.peakCgroup)}  heap used ${mib(row.heapUsed)} external ${mib(row.external)}${killed ? `  KILLED (${killed})` : ''}`,
        );
      }
      if (!killed) {
        await new Promise((r) => setTimeout(r, 10_000));
        const g = await probe(child);
        result.afterIdle = { rss: rssOf(pid), cgroup: cg.num('memory.usage_in_bytes'), heapUsed: g?.heapUsed ?? NaN, heapTotal: g?.heapTotal ?? NaN, external: g?.external ?? NaN, ...(g?.spaces ?? {}) };
        console.log(`    idle 10 s: rss ${mib(result.afterIdle.rss)} cgroup ${mib(result.afterIdle.cgroup)} heap used ${mib(g?.heapUsed ?? NaN)} of ${mib(g?.heapTotal ?? NaN)}, external ${mib(g?.external ?? NaN)} (array buffers ${mib(g?.arrayBuffers ?? NaN)}), malloc_trim ${g?.trims.count ?? 0} calls, longest ${(g?.trims.maxMs ?? 0).toFixed(2)} ms, total ${(g?.trims.totalMs ?? 0).toFixed(1)} ms; spaces ${Object.entries(g?.spaces ?? {}).filter(([, val]) => val > 0).map(([k, val]) => `${k} ${mib(val)}`).join(', ')}`);
        result.smaps = smapsRollup(pid);
      }
    } finally {
      clearInterval(sampler);
    }
    result.maxUsage = cg.num('memory.max_usage_in_bytes');
    result.failcnt = cg.num('memory.failcnt');
    result.oomKills = cg.oomKills();
    result.stat = cg.stat();
    result.killed = killed;
    return result;
  } finally {
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child!.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    }
    cg.remove();
  }
}

function mib(b: number): string {
  return `${(b / MiB).toFixed(1)} MiB`;
}

async function main(): Promise<void> {
  const chosen = process.argv.slice(2);
  const variants = chosen.length > 0 ? chosen : ['base', 'arena2'];
  const work = await mkdtemp(join(tmpdir(), 'sidecar-memory-'));
  const app = httpCreateServer((_req, res) => res.end('hello from the app\n'));
  app.keepAliveTimeout = 1000;
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  try {
    const appPort = (app.address() as AddressInfo).port;
    const pki = await makePki();
    const bundle = new KubeletVolume(join(work, 'bundle'));
    await bundle.write({ ...(await credentialFiles(pki, { algorithms: ['ecdsa_secp256r1_sha256'], certificateKey: true })), [BUNDLE_KEYS.fallback]: 'CertificateKey' });
    console.log(
      `sidecar memory under a ${mib(LIMIT)} cgroup v1 limit: engine ${ENGINE}, variants ${variants.join(', ')}, ${ROUNDS} round(s), scale ${SCALE}, ${LANES} lanes, node ${process.version}, load average ${loadAverage()}`,
    );
    const all: VariantResult[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      for (const name of round % 2 === 0 ? variants : [...variants].reverse()) all.push(await runVariant(name, round, appPort, bundle.dir));
    }
    console.log('\nvariant            peak RSS    peak cgroup  max_usage  failcnt  oom_kill  killed   idle RSS   idle cgroup  idle heap  anon(smaps)  stat rss   stat cache');
    for (const r of all) {
      console.log(
        `${r.variant.padEnd(18)} ${mib(r.peakRss).padStart(10)} ${mib(r.peakCgroup).padStart(11)} ${mib(r.maxUsage).padStart(10)} ${String(r.failcnt).padStart(7)} ${String(r.oomKills).padStart(8)}  ${(r.killed ?? 'no').padEnd(7)} ${mib(r.afterIdle.rss).padStart(10)} ${mib(r.afterIdle.cgroup).padStart(11)} ${mib(r.afterIdle.heapUsed ?? NaN).padStart(10)} ${mib(r.smaps.Anonymous ?? NaN).padStart(11)} ${mib(r.stat.rss ?? NaN).padStart(10)} ${mib(r.stat.cache ?? NaN).padStart(11)}`,
      );
    }
    console.log(`load average at the end ${loadAverage()}`);
  } finally {
    app.closeAllConnections();
    app.close();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
