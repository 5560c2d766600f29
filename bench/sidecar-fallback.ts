/**
 * Issue 13 "Measure" and issue 19 "Through the sidecar" / "Keyless pull": what a full TLS 1.3
 * handshake costs the real sidecar for each kind of client, side by side in one run:
 *
 *   - a client without DC support, served through keyless pull (`fallback: Keyless`): the
 *     CertificateVerify is signed by a real `dc-operator keyserver` process over mTLS on loopback;
 *   - a client that offers delegated_credential, served the DC (from the same bundle, by a second
 *     sidecar process, so each process's CPU is one path's);
 *   - a client without DC support, served with a locally mounted key (`fallback: CertificateKey`,
 *     tls.key in the bundle), with each --certificate-engine (node, the default, and ours);
 *   - with BENCH_COMPARE_BUILD=DIR (another build's dist/, e.g. a branch's), also case (a) through
 *     that build's sidecar and key server, in the same rounds;
 * and the baselines without the sidecar, serving the same certificate (and DC) directly:
 *   - `dcctl serve` (our bare TLS stack: the sidecar's per-connection overhead is the difference),
 *   - node:tls (OpenSSL).
 *
 *   npx tsc -p tsconfig.json && node dist/bench/sidecar-fallback.js [seconds=4] [concurrency=16] [rounds=3]
 *
 * With BENCH_CPU_PROF_DIR=DIR, the sidecars and `dcctl serve` run under `node --cpu-prof` and
 * write DIR/<server>.cpuprofile when they stop (bench/scripts/cpuprofile-top.mjs summarises one).
 *
 * Every server is its own process, started once and kept for all rounds: the sidecars
 * (`dc-operator sidecar`, each given only its bundle laid out as kubelet mounts it, with ..data),
 * `dcctl serve` and node:tls pinned to core 1; the key server and the load pinned to core 0 (the
 * key server's CPU is still its own). The load (bench/handshake-support.ts) is OUR client, the same for
 * every case, offering extension 34 only for the DC cases; a handshake authenticated otherwise
 * than the case says counts as failed. The sidecars proxy to an echo app in this process.
 * Server and key server CPU per handshake: user+system from /proc/PID/stat over the measured
 * window, divided by the handshakes completed in it. Cases alternate round by round; medians of
 * the rounds are reported. P-256 certificate, P-256 DC, x25519.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUNDLE_KEYS } from '../src/operator/api/serving-bundle.js';
import { makeKeylessPki } from '../test/unit/keyless/pki.js';
import { credentialFiles, makePki } from '../test/unit/sidecar/fixtures.js';
import { KubeletVolume } from '../test/unit/sidecar/kubelet-volume.js';
import { handshakeLoadRole, type AuthenticatedLoadResult } from './handshake-support.js';
import { cpuSeconds, startKeyServerProcess } from './keyless-support.js';
import { startServeProcess, startSidecarProcess } from './sidecar-process.js';
import { canPin, fmt, loadAverage, median, nextMessage, percentile, send, serverRole, spawnNode } from './tls-support.js';

const SCRIPT = fileURLToPath(import.meta.url);
const CLI = join(dirname(SCRIPT), '..', 'src', 'cli');
const SERVER_CPU = 1;
const PROFILE_DIR = process.env['BENCH_CPU_PROF_DIR'];
const LOAD_CPU = 0;

type ServerName =
  | 'sidecar-keyless'
  | 'sidecar-keyless-compared'
  | 'sidecar-dc'
  | 'sidecar-local-node'
  | 'sidecar-local-ours'
  | 'sidecar-local-ours-compared'
  | 'dcctl-serve'
  | 'node-tls';

interface Case {
  readonly name: string;
  readonly server: ServerName;
  readonly offerDc: boolean;
  /** The sidecar's dc_sidecar_handshakes_total mode label these handshakes must be counted under. */
  readonly sidecarMode?: 'keyless' | 'dc' | 'certificate';
}

/**
 * BENCH_SIDECAR_NODE_FLAGS="<flags>": node flags for this build's sidecar (c') only, e.g. V8's GC
 * settings; with BENCH_COMPARE_BUILD set to this same build, (c'*) is the sidecar without them.
 */
const SIDECAR_NODE_FLAGS = (process.env['BENCH_SIDECAR_NODE_FLAGS'] ?? '').split(' ').filter((f) => f !== '');

/** Another build (its dist/ directory) whose sidecar and key server also serve case (a), e.g. a branch's. */
const COMPARED_BUILD = process.env['BENCH_COMPARE_BUILD'];

const KEYLESS_COMPARED: Case = { name: `(a*) sidecar, keyless pull, build ${COMPARED_BUILD ?? ''}`, server: 'sidecar-keyless-compared', offerDc: false, sidecarMode: 'keyless' };
/**
 * BENCH_OVERHEAD_ONLY=1: only the sidecar's per-connection overhead (local key, engine ours,
 * against bare `dcctl serve`), with BENCH_COMPARE_BUILD's sidecar in the same rounds: the quick
 * before/after of a change to the sidecar's connection path. The servers of this mode are
 * started afresh every round, in an order rotated round by round: with processes kept for the
 * whole run, the one started first measured cheaper whichever build it was (100–340 µs), so the
 * report gives each server's overhead by its start position too. Each fresh server is loaded
 * for BENCH_WARM_SECONDS (default 3) before its measured round.
 */
const OVERHEAD_ONLY = process.env['BENCH_OVERHEAD_ONLY'] === '1';
/** OVERHEAD_ONLY: seconds of load, not counted, on each freshly started server before its measured round (BENCH_WARM_SECONDS, default 3). */
const WARM_SECONDS = Number(process.env['BENCH_WARM_SECONDS'] ?? 3);
const LOCAL_OURS_COMPARED: Case = { name: `(c'*) sidecar, local tls.key, engine ours, build ${COMPARED_BUILD ?? ''}`, server: 'sidecar-local-ours-compared', offerDc: false, sidecarMode: 'certificate' };
const ALL_CASES: readonly Case[] = [
  { name: '(a) sidecar, keyless pull (client without DC)', server: 'sidecar-keyless', offerDc: false, sidecarMode: 'keyless' },
  ...(COMPARED_BUILD ? [KEYLESS_COMPARED] : []),
  { name: '(b) sidecar, DC (client offers DC)', server: 'sidecar-dc', offerDc: true, sidecarMode: 'dc' },
  { name: '(c) sidecar, local tls.key, engine node (default)', server: 'sidecar-local-node', offerDc: false, sidecarMode: 'certificate' },
  { name: `(c') sidecar, local tls.key, engine ours${SIDECAR_NODE_FLAGS.length > 0 ? `, node ${SIDECAR_NODE_FLAGS.join(' ')}` : ''}`, server: 'sidecar-local-ours', offerDc: false, sidecarMode: 'certificate' },
  { name: '(e) dcctl serve (bare src/tls), certificate key', server: 'dcctl-serve', offerDc: false },
  { name: "(e') dcctl serve (bare src/tls), DC", server: 'dcctl-serve', offerDc: true },
  { name: '(d) node:tls direct, certificate key', server: 'node-tls', offerDc: false },
];
const CASES: readonly Case[] = OVERHEAD_ONLY
  ? [
      ALL_CASES.find((c) => c.server === 'sidecar-local-ours')!,
      ...(COMPARED_BUILD ? [LOCAL_OURS_COMPARED] : []),
      ALL_CASES.find((c) => c.server === 'dcctl-serve' && !c.offerDc)!,
    ]
  : ALL_CASES;

interface Running {
  readonly child: ChildProcess;
  readonly port: number;
  readonly metricsPort?: number;
  /** The key server this server pulls signatures from. */
  readonly keyServerPid?: number;
}

/** `node` with --cpu-prof when asked for, the profile named after the server. */
function nodeArgv(name: ServerName): string[] {
  const flags = name === 'sidecar-local-ours' ? SIDECAR_NODE_FLAGS : [];
  return PROFILE_DIR ? [process.execPath, ...flags, '--cpu-prof', '--cpu-prof-dir', PROFILE_DIR, '--cpu-prof-name', `${name}.cpuprofile`] : [process.execPath, ...flags];
}

async function startSidecar(name: ServerName, bundleDir: string, upstreamPort: number, engine: 'node' | 'ours', pin: boolean, cli = CLI): Promise<Running> {
  return startSidecarProcess(nodeArgv(name), cli, bundleDir, upstreamPort, engine, pin ? SERVER_CPU : undefined);
}

/** The sidecar's successful handshakes of one mode, from its /metrics. */
async function sidecarHandshakes(metricsPort: number, mode: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  let sum = 0;
  for (const l of text.split('\n')) {
    if (l.startsWith('dc_sidecar_handshakes_total{') && l.includes(`mode="${mode}"`) && l.includes('result="success"')) sum += Number(l.split(' ').pop());
  }
  return sum;
}

interface Round {
  readonly rate: number;
  readonly serverUs: number;
  readonly keyServerUs: number;
  readonly p50: number;
  readonly p99: number;
  readonly failed: number;
  readonly wrongAuthentication: number;
}

async function oneRound(c: Case, s: Running, seconds: number, concurrency: number, pin: boolean): Promise<Round> {
  const keyServerPid = s.keyServerPid;
  const load = spawnNode(SCRIPT, ['--load', String(s.port), String(seconds), String(concurrency), c.offerDc ? 'dc' : 'certificate'], pin ? LOAD_CPU : undefined);
  await nextMessage<string>(load); // warmed up
  const counted0 = c.sidecarMode && s.metricsPort ? await sidecarHandshakes(s.metricsPort, c.sidecarMode) : 0;
  const server0 = cpuSeconds(s.child.pid!);
  const keyServer0 = keyServerPid ? cpuSeconds(keyServerPid) : 0;
  send(load, 'go');
  const r = await nextMessage<AuthenticatedLoadResult>(load);
  const serverCpu = cpuSeconds(s.child.pid!) - server0;
  const keyServerCpu = keyServerPid ? cpuSeconds(keyServerPid) - keyServer0 : 0;
  if (c.sidecarMode && s.metricsPort) {
    const counted = (await sidecarHandshakes(s.metricsPort, c.sidecarMode)) - counted0;
    // The sidecar's own count says the handshakes went the way the case names (keyless, dc, certificate).
    if (counted < r.completed) throw new Error(`${c.name}: the sidecar counted ${counted} ${c.sidecarMode} handshakes, the client completed ${r.completed}`);
  }
  const sorted = r.latencies.sort((a, b) => a - b);
  return {
    rate: r.completed / r.seconds,
    serverUs: (serverCpu * 1e6) / Math.max(1, r.completed),
    keyServerUs: (keyServerCpu * 1e6) / Math.max(1, r.completed),
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    failed: r.failed,
    wrongAuthentication: r.wrongAuthentication,
  };
}

/** SIGTERM lets a server stop on its own (and write its profile); at most 30 s. */
function stopServer(r: Running): Promise<void> {
  return new Promise<void>((resolve) => {
    if (r.child.exitCode !== null || r.child.signalCode !== null) {
      resolve();
      return;
    }
    const timer = setTimeout(() => {
      r.child.kill('SIGKILL');
      resolve();
    }, 30_000);
    r.child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    r.child.kill('SIGTERM');
  });
}

function pinAllThreads(pid: number, cpu: number): void {
  const r = spawnSync('taskset', ['-a', '-p', '-c', String(cpu), String(pid)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`taskset -a -p -c ${cpu} ${pid} failed: ${r.stderr}`);
}

async function main(): Promise<void> {
  const [seconds = 4, concurrency = 16, rounds = 3] = process.argv.slice(2).map(Number);
  const pin = canPin();
  const work = await mkdtemp(join(tmpdir(), 'sidecar-fallback-bench-'));
  const pki = await makePki('ecdsa-p256');
  const mtls = makeKeylessPki(['p256']);
  // The certificate's key: at the key server (for the Keyless bundle), in tls.key (CertificateKey
  // bundle), and in plain files for the two baselines that serve it themselves.
  await writeFile(join(mtls.keysDir, 'leaf.pem'), pki.leaf.key.privateKeyPem);
  const keyServer = await startKeyServerProcess(mtls);
  if (pin) pinAllThreads(keyServer.child.pid!, LOAD_CPU);
  const comparedKeyServer = COMPARED_BUILD && !OVERHEAD_ONLY ? await startKeyServerProcess(mtls, 0, join(COMPARED_BUILD, 'src', 'cli', 'dc-operator.js')) : undefined;
  if (pin && comparedKeyServer) pinAllThreads(comparedKeyServer.child.pid!, LOAD_CPU);
  const echo = createServer({ allowHalfOpen: true }, (sock) => sock.on('error', () => undefined).pipe(sock));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', 1024, r));
  const echoPort = (echo.address() as AddressInfo).port;
  const running = new Map<ServerName, Running>();
  try {
    const dcFiles = await credentialFiles(pki, { algorithms: ['ecdsa_secp256r1_sha256'] });
    const keylessBundle = async (name: string, keyServerPort: number): Promise<string> => {
      const volume = new KubeletVolume(join(work, name));
      await volume.write({
        ...dcFiles,
        [BUNDLE_KEYS.fallback]: 'Keyless',
        [BUNDLE_KEYS.keylessAddress]: `127.0.0.1:${keyServerPort}`,
        [BUNDLE_KEYS.keylessCA]: mtls.ca,
        [BUNDLE_KEYS.keylessClientCertificate]: mtls.client.cert,
        [BUNDLE_KEYS.keylessClientKey]: mtls.client.key,
      });
      return volume.dir;
    };
    const localFiles: Record<string, string | Uint8Array> = { ...(await credentialFiles(pki, { algorithms: ['ecdsa_secp256r1_sha256'], certificateKey: true })), [BUNDLE_KEYS.fallback]: 'CertificateKey' };
    const localBundle = new KubeletVolume(join(work, 'bundle-local'));
    await localBundle.write(localFiles);
    // Keyless and DC clients of the same bundle go to two sidecar processes, so that each
    // process's CPU (and profile) is one path's.
    const keylessDir = await keylessBundle('bundle-keyless', keyServer.port);
    if (!OVERHEAD_ONLY) running.set('sidecar-keyless', { ...(await startSidecar('sidecar-keyless', keylessDir, echoPort, 'node', pin)), keyServerPid: keyServer.child.pid! });
    if (!OVERHEAD_ONLY) running.set('sidecar-dc', { ...(await startSidecar('sidecar-dc', keylessDir, echoPort, 'node', pin)), keyServerPid: keyServer.child.pid! });
    if (COMPARED_BUILD && comparedKeyServer) {
      const dir = await keylessBundle('bundle-keyless-compared', comparedKeyServer.port);
      const s = await startSidecar('sidecar-keyless-compared', dir, echoPort, 'node', pin, join(COMPARED_BUILD, 'src', 'cli'));
      running.set('sidecar-keyless-compared', { ...s, keyServerPid: comparedKeyServer.child.pid! });
    }
    if (!OVERHEAD_ONLY) running.set('sidecar-local-node', await startSidecar('sidecar-local-node', localBundle.dir, echoPort, 'node', pin));

    const certFile = join(work, 'tls.crt');
    const keyFile = join(work, 'tls.key');
    await writeFile(certFile, pki.leaf.pem);
    await writeFile(keyFile, pki.leaf.key.privateKeyPem, { mode: 0o600 });
    const dcDir = join(work, 'dc');
    await mkdir(dcDir);
    for (const suffix of ['cred', 'key']) await writeFile(join(dcDir, `ecdsa_secp256r1_sha256.${suffix}`), localFiles[`ecdsa_secp256r1_sha256.${suffix}`]!);
    const start = async (name: ServerName): Promise<Running> => {
      if (name === 'sidecar-local-ours') return startSidecar(name, localBundle.dir, echoPort, 'ours', pin);
      if (name === 'sidecar-local-ours-compared') return startSidecar(name, localBundle.dir, echoPort, 'ours', pin, join(COMPARED_BUILD!, 'src', 'cli'));
      return startServeProcess(nodeArgv('dcctl-serve'), CLI, ['--cert', certFile, '--key', keyFile, '--dc-dir', dcDir], pin ? SERVER_CPU : undefined);
    };
    /** OVERHEAD_ONLY: the servers of the round, started in `order`; records each one's start position. */
    const positions = new Map<ServerName, number[]>();
    const restartInOrder = async (order: readonly ServerName[]): Promise<void> => {
      await Promise.all(order.map((name) => running.get(name)).filter((r) => r !== undefined).map(stopServer));
      for (const [i, name] of order.entries()) {
        running.set(name, await start(name));
        positions.set(name, [...(positions.get(name) ?? []), i]);
      }
    };
    const overheadServers: ServerName[] = ['sidecar-local-ours', ...(COMPARED_BUILD ? (['sidecar-local-ours-compared'] as const) : []), 'dcctl-serve'];
    if (!OVERHEAD_ONLY) {
      running.set('sidecar-local-ours', await start('sidecar-local-ours'));
      running.set('dcctl-serve', await start('dcctl-serve'));
      const nodeTls = spawnNode(SCRIPT, ['--server-node', certFile, keyFile], pin ? SERVER_CPU : undefined);
      running.set('node-tls', { child: nodeTls, port: (await nextMessage<{ port: number }>(nodeTls)).port });
    }

    console.log(
      `# Full TLS 1.3 handshakes through the sidecar, per kind of client, and the baselines — ${new Date().toISOString()}\n` +
        `P-256 certificate and DC; ${seconds}s x ${rounds} rounds, ${concurrency} lanes, our client as load; servers ${pin ? `pinned to core ${SERVER_CPU}, key server and load to core ${LOAD_CPU}` : 'not pinned (no taskset)'}; ` +
        `node ${process.version}, ${cpus().length}x ${cpus()[0]?.model ?? 'cpu'}; load average before ${loadAverage()}\n`,
    );
    const results = new Map<string, Round[]>(CASES.map((c) => [c.name, []]));
    for (let i = 0; i < rounds; i++) {
      if (OVERHEAD_ONLY) {
        await restartInOrder(overheadServers.map((_, k) => overheadServers[(k + i) % overheadServers.length]!));
        // Fresh processes: load each for a while, not counted, before the measured rounds.
        for (const c of CASES) await oneRound(c, running.get(c.server)!, WARM_SECONDS, concurrency, pin);
      }
      // OVERHEAD_ONLY: the measuring order rotates too, one step ahead of the start order (a
      // case always measured in the middle still came out cheaper): over 3k rounds each server
      // has every start position and every measuring position k times.
      const order = OVERHEAD_ONLY ? CASES.map((_, k) => CASES[(k + i + 1) % CASES.length]!) : i % 2 === 0 ? CASES : [...CASES].reverse();
      for (const c of order) {
        results.get(c.name)!.push(await oneRound(c, running.get(c.server)!, seconds, concurrency, pin));
      }
    }
    report(results, positions);
    console.log(`\nload average after ${loadAverage()}`);
  } finally {
    await Promise.all([...running.values()].map(stopServer));
    echo.close();
    await keyServer.stop();
    await comparedKeyServer?.stop();
    mtls.cleanup();
    await rm(work, { recursive: true, force: true });
  }
}

function report(results: Map<string, Round[]>, positions: ReadonlyMap<ServerName, readonly number[]>): void {
  const med = (name: string, f: (r: Round) => number): number => median(results.get(name)!.map(f));
  const lines = [
    '| case | handshakes/s | server CPU µs/handshake (median) | all rounds | key server CPU µs/handshake | server + key server µs | p50 ms | p99 ms | failed (wrong auth) |',
    '| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const c of CASES) {
    const rs = results.get(c.name)!;
    const server = med(c.name, (r) => r.serverUs);
    const ks = med(c.name, (r) => r.keyServerUs);
    lines.push(
      `| ${c.name} | ${fmt(med(c.name, (r) => r.rate))} | ${fmt(server)} | ${rs.map((r) => fmt(r.serverUs)).join(', ')} | ${fmt(ks)} | ${fmt(med(c.name, (r) => r.serverUs + r.keyServerUs))} | ` +
        `${fmt(med(c.name, (r) => r.p50), 2)} | ${fmt(med(c.name, (r) => r.p99), 2)} | ${rs.reduce((a, r) => a + r.failed, 0)} (${rs.reduce((a, r) => a + r.wrongAuthentication, 0)}) |`,
    );
  }
  console.log(lines.join('\n'));
  if (OVERHEAD_ONLY) {
    reportOverhead(results, positions);
    return;
  }
  // Ratios of the per-round medians of server CPU (and of p50 latency).
  const named = (server: ServerName, offerDc = false): string => CASES.find((c) => c.server === server && c.offerDc === offerDc)!.name;
  const [keyless, dc, localNode, localOurs, bare, bareDc, nodeTls] = [
    named('sidecar-keyless'), named('sidecar-dc', true), named('sidecar-local-node'), named('sidecar-local-ours'), named('dcctl-serve'), named('dcctl-serve', true), named('node-tls'),
  ];
  const cpu = (n: string): number => med(n, (r) => r.serverUs);
  const p50 = (n: string): number => med(n, (r) => r.p50);
  const ratio = (a: number, b: number): string => `${fmt(a / b, 2)}x`;
  console.log('\n| comparison (server CPU per handshake, medians) | ratio | difference µs | p50 latency ratio |');
  console.log('| --- | ---: | ---: | ---: |');
  const row = (label: string, a: string, b: string): void =>
    console.log(`| ${label} | ${ratio(cpu(a), cpu(b))} | ${fmt(cpu(a) - cpu(b))} | ${ratio(p50(a), p50(b))} |`);
  row('keyless (a) / local key, engine node (c)', keyless, localNode);
  row("keyless (a) / local key, engine ours (c')", keyless, localOurs);
  row('DC (b) / local key, engine node (c)', dc, localNode);
  row("DC (b) / local key, engine ours (c')", dc, localOurs);
  row("sidecar local key, engine ours (c') / bare dcctl serve (e): per-connection overhead", localOurs, bare);
  row("sidecar DC (b) / bare dcctl serve DC (e')", dc, bareDc);
  row('sidecar local key, engine node (c) / node:tls direct (d)', localNode, nodeTls);
  row('keyless (a) / node:tls direct (d)', keyless, nodeTls);
  row('bare dcctl serve (e) / node:tls direct (d)', bare, nodeTls);
  const both = med(keyless, (r) => r.serverUs + r.keyServerUs);
  console.log(`| keyless (a), sidecar + key server / local key, engine ours (c') | ${ratio(both, cpu(localOurs))} | ${fmt(both - cpu(localOurs))} | |`);
  if (COMPARED_BUILD) {
    row('keyless, compared build (a*) / this build (a), sidecar', KEYLESS_COMPARED.name, keyless);
    const ks = (n: string): number => med(n, (r) => r.keyServerUs);
    console.log(`| keyless, compared build (a*) / this build (a), key server | ${ratio(ks(KEYLESS_COMPARED.name), ks(keyless))} | ${fmt(ks(KEYLESS_COMPARED.name) - ks(keyless))} | |`);
    row("keyless, compared build (a*) / local key, engine ours (c')", KEYLESS_COMPARED.name, localOurs);
  }
}

/**
 * BENCH_OVERHEAD_ONLY: each sidecar build over bare `dcctl serve`, per round and in the median,
 * and by the sidecar's start position in the round (0 = started first).
 */
function reportOverhead(results: Map<string, Round[]>, positions: ReadonlyMap<ServerName, readonly number[]>): void {
  const bare = results.get(CASES.find((c) => c.server === 'dcctl-serve')!.name)!;
  const startedAt = positions.get('dcctl-serve') ?? [];
  console.log(`\n(start positions per round, 0 = first: dcctl serve ${startedAt.join(', ')})`);
  console.log('\n| sidecar build | overhead over dcctl serve, µs per handshake (median of rounds) | per round (start position) | median by start position | ratio to dcctl serve |');
  console.log('| --- | ---: | --- | --- | ---: |');
  for (const c of CASES.filter((k) => k.server !== 'dcctl-serve')) {
    const rs = results.get(c.name)!;
    const at = positions.get(c.server) ?? [];
    const diffs = rs.map((r, i) => r.serverUs - bare[i]!.serverUs);
    const byPosition = [...new Set(at)].sort().map((p) => `${p}: ${fmt(median(diffs.filter((_, i) => at[i] === p)))}`);
    const b = median(bare.map((r) => r.serverUs));
    console.log(`| ${c.name} | ${fmt(median(diffs))} | ${diffs.map((d, i) => `${fmt(d)} (${at[i] ?? '-'})`).join(', ')} | ${byPosition.join('; ')} | ${fmt(median(rs.map((r) => r.serverUs)) / b, 2)}x |`);
  }
}

const role = process.argv[2];
if (role === '--server-node') {
  await serverRole('node', process.argv[3]!, process.argv[4]!, 'echo');
} else if (role === '--load') {
  const [port, seconds, concurrency] = process.argv.slice(3, 6).map(Number) as [number, number, number];
  const dc = process.argv[6] === 'dc';
  await handshakeLoadRole({ port, seconds, concurrency, offerDc: dc, expectDc: dc });
} else {
  await main();
}
