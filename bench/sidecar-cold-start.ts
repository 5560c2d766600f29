/**
 * Issue 19 "Cold start": what the first seconds of a fresh sidecar process cost per handshake,
 * against its own later seconds, for several builds or flag sets side by side (alternating, one
 * fresh process per start):
 *
 *   npx tsc -p tsconfig.json
 *   node dist/bench/sidecar-cold-start.js [-r ROUNDS] [-s SECONDS] [-c LANES] [-m dc|keyless] [-k one|mix] LABEL=DIST[,FLAG=VALUE...] ...
 *   e.g. node dist/bench/sidecar-cold-start.js -r 5 off=dist,warm-up-handshakes=0 on=dist,warm-up-handshakes=200
 *
 * A FLAG written `env:NAME=VALUE` sets an environment variable of the sidecar instead (e.g.
 * `env:NODE_COMPILE_CACHE=/tmp/cache`), and `node:--FLAG` passes a Node or V8 flag to node before
 * the script (e.g. `node:--max-lazy`; NODE_OPTIONS refuses most V8 flags).
 *
 * Each start: `dc-operator sidecar` of DIST pinned to core 1 (this process, the load and the echo
 * app on core 0), a P-256 certificate with a P-256 DC; mode dc: our client offering DCs; mode
 * keyless: our client without DC support, the CertificateVerify signed by a `dc-operator
 * keyserver` process of this build on core 0. Clients `-k one` (the default): every handshake our
 * client's defaults (X25519MLKEM768 and x25519 shares, every suite, SNI localhost); `-k mix`: the
 * handshakes take turns between four kinds of ClientHello real traffic has (the same SNI): a
 * browser's (both shares, ALPN h2 and http/1.1), an older OpenSSL's (one x25519 share, no ALPN), a
 * Java/FIPS-like one (one P-256 share, AES-256-GCM only) and one offering ChaCha20-Poly1305 only.
 * Per start: spawn to the first 200 from /readyz
 * (polled every 10 ms), the sidecar's CPU until then, then SECONDS one-second windows of full
 * handshakes on LANES lanes begun the moment it is ready: handshakes completed and the sidecar's
 * CPU (/proc, user+system) per window; each round's line also gives the warm-ups' own CPU from
 * their log lines (in-memory, and loopback connections). The first start of all is a priming run
 * (this process's client code gets compiled) and is not counted. Medians over the rounds per
 * window; "steady" is the median of a build's last two windows. The warm-up's own CPU (its log
 * line) is inside the windows it ran in: that is what the sidecar spends. The last column splits
 * off the CPU of the sidecar's threads other than the main one (V8's optimising compilers and GC
 * helpers), per handshake, in the first second and steady.
 *
 * Diagnostics: BENCH_THREADS=1 prints each start's CPU by thread name from ready to the end and
 * its minor page faults and system CPU by second; BENCH_LOG_DIR=DIR keeps each start's output
 * (e.g. with `node:--trace-gc,node:--trace-opt`), with a line where the bench saw it ready and
 * one where its load stopped.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BUNDLE_KEYS } from '../src/operator/api/serving-bundle.js';
import { delegatedCredentialPeerHooks, DELEGATED_CREDENTIAL_LABEL } from '../src/tls/delegated/index.js';
import { ClientConfig } from '../src/tls/client.js';
import { CipherSuite, NamedGroup } from '../src/tls/constants.js';
import { connect } from '../src/tls/socket.js';
import { makeKeylessPki } from '../test/unit/keyless/pki.js';
import { credentialFiles, makePki } from '../test/unit/sidecar/fixtures.js';
import { KubeletVolume } from '../test/unit/sidecar/kubelet-volume.js';
import { REQUEST } from './handshake-support.js';
import { cpuSeconds, startKeyServerProcess } from './keyless-support.js';
import { canPin, fmt, loadAverage, median } from './tls-support.js';

const { values: opts, positionals } = parseArgs({
  options: { rounds: { type: 'string', short: 'r', default: '5' }, seconds: { type: 'string', short: 's', default: '6' }, lanes: { type: 'string', short: 'c', default: '8' }, mode: { type: 'string', short: 'm', default: 'dc' }, kinds: { type: 'string', short: 'k', default: 'one' } },
  allowPositionals: true,
});
const ROUNDS = Number(opts.rounds);
const SECONDS = Number(opts.seconds);
const LANES = Number(opts.lanes);
const MODE = opts.mode === 'keyless' ? 'keyless' : 'dc';
const KINDS = opts.kinds === 'mix' ? 'mix' : 'one';
const PORT = 18_743;
const METRICS_PORT = 18_700;

interface Variant {
  readonly label: string;
  readonly dist: string;
  readonly flags: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly nodeFlags: readonly string[];
}

function variantOf(spec: string): Variant {
  const [head, ...all] = spec.split(',');
  const eq = head!.indexOf('=');
  if (eq < 1) throw new Error(`"${spec}" is not LABEL=DIST[,FLAG=VALUE...]`);
  const pair = (f: string): [string, string] => [f.slice(0, f.indexOf('=')), f.slice(f.indexOf('=') + 1)];
  const flags = all.filter((f) => !f.startsWith('env:') && !f.startsWith('node:'));
  const env = Object.fromEntries(all.filter((f) => f.startsWith('env:')).map((f) => pair(f.slice(4))));
  const nodeFlags = all.filter((f) => f.startsWith('node:')).map((f) => f.slice(5));
  return { label: head!.slice(0, eq), dist: head!.slice(eq + 1), flags: flags.flatMap((f) => { const [k, v] = pair(f); return [`--${k}`, v]; }), env, nodeFlags };
}

interface Start {
  readonly readyMs: number;
  readonly cpuUntilReadyMs: number;
  /** Per one-second window: handshakes completed, sidecar CPU µs per handshake, of it on threads other than the main one (V8's compilers and GC helpers, libuv's pool). */
  readonly windows: ReadonlyArray<{ readonly handshakes: number; readonly cpuUs: number; readonly helperUs: number }>;
  readonly warmUp: string;
  readonly failed: number;
}

const clientBase = {
  servername: 'localhost',
  rejectUnauthorized: false,
  ...(MODE === 'dc' ? { serverCredentialHooks: delegatedCredentialPeerHooks({ peer: 'server' }) } : {}),
};
const G = NamedGroup;
/** The clients the load takes turns with (-k). */
const clientConfigs =
  KINDS === 'one'
    ? [new ClientConfig(clientBase)]
    : [
        new ClientConfig({ ...clientBase, keyShareGroups: [G.X25519MLKEM768, G.x25519], alpnProtocols: ['h2', 'http/1.1'] }),
        new ClientConfig({ ...clientBase, groups: [G.x25519, G.secp256r1, G.secp384r1], keyShareGroups: [G.x25519] }),
        new ClientConfig({ ...clientBase, groups: [G.secp256r1, G.secp384r1], keyShareGroups: [G.secp256r1], cipherSuites: [CipherSuite.TLS_AES_256_GCM_SHA384] }),
        new ClientConfig({ ...clientBase, groups: [G.x25519, G.secp256r1], keyShareGroups: [G.x25519], cipherSuites: [CipherSuite.TLS_CHACHA20_POLY1305_SHA256] }),
      ];
let turn = 0;

/** One full handshake and 32 bytes echoed; false when it failed or was authenticated otherwise than the mode says. */
function handshake(): Promise<boolean> {
  return new Promise((resolve) => {
    let settled = false;
    const end = (ok: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => end(false), 10_000);
    const s = connect({ host: '127.0.0.1', port: PORT, servername: 'localhost', config: clientConfigs[turn++ % clientConfigs.length]!, handshakeTimeout: 10_000 }, () => {
      if ((s.handshakeInfo?.serverMode.authentication === DELEGATED_CREDENTIAL_LABEL) !== (MODE === 'dc')) end(false);
      else s.write(REQUEST);
    });
    let got = 0;
    s.on('data', (d: Buffer) => {
      got += d.length;
      if (got >= REQUEST.length) end(true);
    });
    s.on('error', () => end(false));
  });
}

/** user + system CPU seconds of another process's main thread (its thread id is its pid). */
function mainThreadCpuSeconds(pid: number): number {
  return cpuSeconds(pid, `/proc/${pid}/task/${pid}/stat`);
}

/** CPU ms per thread name of a process (BENCH_THREADS=1: where the sidecar's CPU goes), and since `before` when given. */
function threadCpu(pid: number, before?: string): string {
  const byName = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let name: string;
    let ms: number;
    try {
      name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      ms = cpuSeconds(pid, `/proc/${pid}/task/${tid}/stat`) * 1000;
    } catch {
      continue;
    }
    byName.set(name, (byName.get(name) ?? 0) + ms);
  }
  const was = new Map(before ? before.split(', ').map((e) => [e.slice(0, e.lastIndexOf(' ')), Number(e.slice(e.lastIndexOf(' ') + 1))] as const) : []);
  return [...byName].map(([n, ms]) => `${n} ${before ? ms - (was.get(n) ?? 0) : ms}`).join(', ');
}

function faultsAndSystem(pid: number): [number, number] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return [Number(fields[7]), Number(fields[12])]; // minflt, stime ticks
}

async function waitReady(child: ChildProcess, deadline: number): Promise<void> {
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`the sidecar exited with ${child.exitCode}`);
    const ok = await fetch(`http://127.0.0.1:${METRICS_PORT}/readyz`).then((r) => r.ok, () => false);
    if (ok) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('the sidecar was not ready within 30 s');
}

async function oneStart(v: Variant, dcDir: string, upstreamPort: number, pin: boolean, keylessFlags: readonly string[]): Promise<Start> {
  const argv = [process.execPath, ...v.nodeFlags, join(v.dist, 'src', 'cli', 'dc-operator.js'), 'sidecar', '--dc-dir', dcDir, '--address', '127.0.0.1', '--port', String(PORT),
    '--upstream', String(upstreamPort), '--metrics-address', '127.0.0.1', '--metrics-port', String(METRICS_PORT), '--report-interval', '0', ...keylessFlags, ...v.flags];
  const cmd = pin ? ['taskset', '-c', '1', ...argv] : argv;
  const t0 = performance.now();
  const child = spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...v.env } });
  let log = '';
  child.stdout!.on('data', (c: Buffer) => (log += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (log += c.toString()));
  try {
    await waitReady(child, Date.now() + 30_000);
    const readyMs = performance.now() - t0;
    log += `\n#### ready (bench) at ${readyMs.toFixed(0)} ms after spawn\n`;
    const cpuReady = cpuSeconds(child.pid!);
    const mainReady = mainThreadCpuSeconds(child.pid!);
    const threadsAtReady = threadCpu(child.pid!);
    let completed = 0;
    let failed = 0;
    let stop = false;
    const lanes = Array.from({ length: LANES }, async () => {
      while (!stop) {
        if (await handshake()) completed++;
        else failed++;
      }
    });
    const windows: Array<{ handshakes: number; cpuUs: number; helperUs: number }> = [];
    let lastCount = 0;
    let lastCpu = cpuReady;
    let lastMain = mainReady;
    const faults: string[] = [];
    let lastFaults = faultsAndSystem(child.pid!);
    for (let w = 0; w < SECONDS; w++) {
      await new Promise((r) => setTimeout(r, 1000));
      const cpu = cpuSeconds(child.pid!);
      const main = mainThreadCpuSeconds(child.pid!);
      const f = faultsAndSystem(child.pid!);
      faults.push(`${f[0] - lastFaults[0]} ${(f[1] - lastFaults[1]) * 10}`);
      lastFaults = f;
      const n = completed - lastCount;
      windows.push({ handshakes: n, cpuUs: ((cpu - lastCpu) * 1e6) / Math.max(1, n), helperUs: ((cpu - lastCpu - (main - lastMain)) * 1e6) / Math.max(1, n) });
      lastCount = completed;
      lastCpu = cpu;
      lastMain = main;
    }
    log += `\n#### load stopped\n`;
    stop = true;
    if (process.env.BENCH_THREADS) console.log(`# ${v.label} CPU ms by thread, at ready -> end: ${threadCpu(child.pid!, threadsAtReady)}; by second: minor faults, system CPU ms: ${faults.join(', ')}`);
    await Promise.all(lanes);
    if (process.env.BENCH_LOG_DIR) writeFileSync(join(process.env.BENCH_LOG_DIR, `${v.label}-${child.pid}.log`), log);
    const warm = /"warm-up done"[^\n]*"cpuMs":(\d+),"wallMs":(\d+)/.exec(log);
    const connections = /"connection warm-up done"[^\n]*"connections":(\d+)[^\n]*"cpuMs":(\d+),"wallMs":(\d+)/.exec(log);
    const warmUp = [warm ? `${warm[1]} ms CPU, ${warm[2]} ms wall` : 'none logged', ...(connections ? [`connections ${connections[1]}: ${connections[2]} ms CPU, ${connections[3]} ms wall`] : [])].join('; ');
    return { readyMs, cpuUntilReadyMs: cpuReady * 1000, windows, warmUp, failed };
  } catch (err) {
    throw new Error(`${v.label}: ${err instanceof Error ? err.message : String(err)}\n${log.slice(-2000)}`);
  } finally {
    child.kill('SIGINT');
    if (child.exitCode === null) await new Promise((r) => child.once('exit', r));
  }
}

async function main(): Promise<void> {
  const variants = positionals.map(variantOf);
  if (variants.length === 0) throw new Error('usage: sidecar-cold-start.js [-r N] [-s N] [-c N] [-m dc|keyless] LABEL=DIST[,FLAG=VALUE...] ...');
  const pin = canPin();
  if (pin) spawnSync('taskset', ['-a', '-p', '-c', '0', String(process.pid)]);
  const work = await mkdtemp(join(tmpdir(), 'sidecar-cold-start-'));
  const echo = createServer({ allowHalfOpen: true }, (s) => s.on('error', () => undefined).pipe(s));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', 1024, r));
  const upstreamPort = (echo.address() as AddressInfo).port;
  const pki = await makePki('ecdsa-p256');
  const volume = new KubeletVolume(join(work, 'bundle'));
  let keyServer: Awaited<ReturnType<typeof startKeyServerProcess>> | undefined;
  let keylessFlags: string[] = [];
  const mtls = MODE === 'keyless' ? makeKeylessPki(['p256']) : undefined;
  try {
    const files = await credentialFiles(pki);
    if (mtls) {
      await writeFile(join(mtls.keysDir, 'leaf.pem'), pki.leaf.key.privateKeyPem);
      keyServer = await startKeyServerProcess(mtls);
      if (pin) spawnSync('taskset', ['-a', '-p', '-c', '0', String(keyServer.child.pid)]);
      files[BUNDLE_KEYS.fallback] = 'Keyless';
      keylessFlags = ['--keyless-address', `127.0.0.1:${keyServer.port}`, '--keyless-ca', join(mtls.dir, 'ca.crt'), '--keyless-client-cert', join(mtls.dir, 'client.crt'), '--keyless-client-key', join(mtls.dir, 'client.pem')];
    }
    await volume.write(files);
    console.log(`# sidecar cold start, mode ${MODE}, clients ${KINDS}: ${ROUNDS} rounds x ${variants.length} builds, ${SECONDS} one-second windows from ready, ${LANES} lanes, sidecar ${pin ? 'pinned to core 1, load on core 0' : 'not pinned'}; node ${process.version}; load average ${loadAverage()}`);
    await oneStart(variants[0]!, volume.dir, upstreamPort, pin, keylessFlags); // priming, not counted
    const results = new Map<string, Start[]>(variants.map((v) => [v.label, []]));
    for (let r = 0; r < ROUNDS; r++) {
      for (const v of variants) {
        const s = await oneStart(v, volume.dir, upstreamPort, pin, keylessFlags);
        results.get(v.label)!.push(s);
        console.log(`# round ${r + 1} ${v.label}: ready ${fmt(s.readyMs)} ms, CPU until ready ${fmt(s.cpuUntilReadyMs)} ms, µs/handshake by second (other threads; handshakes) ${s.windows.map((w) => `${fmt(w.cpuUs)} (${fmt(w.helperUs)}; ${w.handshakes})`).join(', ')}, warm-up ${s.warmUp}, failed ${s.failed}`);
      }
    }
    const head = Array.from({ length: SECONDS }, (_, i) => `s${i + 1}`);
    console.log(`| build | spawn to ready, ms | CPU until ready, ms | ${head.map((h) => `${h} µs/hs`).join(' | ')} | steady (last 2 s) | s1 / steady | s1 handshakes | s1 / steady, other threads µs/hs |`);
    console.log(`| --- | ---: | ---: | ${head.map(() => '---:').join(' | ')} | ---: | ---: | ---: | ---: |`);
    for (const v of variants) {
      const starts = results.get(v.label)!;
      const perWindow = head.map((_, i) => median(starts.map((s) => s.windows[i]!.cpuUs)));
      const steady = median(starts.flatMap((s) => s.windows.slice(-2).map((w) => w.cpuUs)));
      const helpers = `${fmt(median(starts.map((s) => s.windows[0]!.helperUs)))} / ${fmt(median(starts.flatMap((s) => s.windows.slice(-2).map((w) => w.helperUs))))}`;
      console.log(`| ${v.label} | ${fmt(median(starts.map((s) => s.readyMs)))} | ${fmt(median(starts.map((s) => s.cpuUntilReadyMs)))} | ${perWindow.map((x) => fmt(x)).join(' | ')} | ${fmt(steady)} | ${(perWindow[0]! / steady).toFixed(2)}x | ${fmt(median(starts.map((s) => s.windows[0]!.handshakes)))} | ${helpers} |`);
    }
    console.log(`# load average after ${loadAverage()}`);
  } finally {
    echo.close();
    await keyServer?.stop();
    mtls?.cleanup();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
