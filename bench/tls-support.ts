/**
 * Shared parts of bench/tls-handshake.ts and bench/tls-bulk.ts: certificates, servers (ours and
 * node:tls) run as separate processes pinned to one core, and statistics. Importing this file
 * does nothing; run the two benchmarks instead.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo, Server, Socket } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as nodeTls from 'node:tls';
import { asIssuer, issueCertificate, type KeyType } from '../src/cli/pki/dev-pki.js';
import { createServer as createOurServer } from '../src/tls/socket.js';
import { warmUpServer } from '../src/tls/warm-up.js';

export type Impl = 'ours' | 'node';
export const IMPLS: readonly Impl[] = ['ours', 'node'];
export const IMPL_NAMES: Readonly<Record<Impl, string>> = { ours: 'ours (src/tls)', node: 'node:tls' };

/**
 * Extra servers a handshake bench can add to the same run: 'ours-warm' is our server after
 * `BENCH_WARM_UP` in-memory handshakes at start (src/tls/warm-up.ts); 'ours-base' is our server
 * from another build's dist/ (`BENCH_BASELINE_DIST`, e.g. main's), for before/after in one run.
 */
export type ServerImpl = Impl | 'ours-warm' | 'ours-base' | 'nginx';
export const SERVER_IMPL_NAMES: Readonly<Record<ServerImpl, string>> = {
  ...IMPL_NAMES,
  'ours-warm': 'ours, warmed up at start',
  'ours-base': 'ours, baseline build',
  nginx: 'nginx (system OpenSSL)',
};

/** The servers of a handshake run: ours and node:tls, plus those the environment asks for. */
export function handshakeServerImpls(): ServerImpl[] {
  const impls: ServerImpl[] = [...IMPLS];
  if (process.env.BENCH_WARM_UP) impls.push('ours-warm');
  if (process.env.BENCH_BASELINE_DIST) impls.push('ours-base');
  if (process.env.BENCH_NGINX) impls.push('nginx');
  return impls;
}

export interface CertFiles {
  readonly keyType: KeyType;
  readonly cert: string;
  readonly key: string;
}

/** A CA and one leaf per key type (localhost, 127.0.0.1), written to a temporary directory. */
export async function makeCertificates(keyTypes: readonly KeyType[]): Promise<{ dir: string; certs: CertFiles[]; cleanup(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'tls-bench-'));
  const ca = await issueCertificate({ commonName: 'tls bench CA', isCA: true }, 'ecdsa-p256');
  const certs: CertFiles[] = [];
  for (const keyType of keyTypes) {
    const leaf = await issueCertificate(
      { commonName: 'localhost', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], extendedKeyUsage: ['serverAuth'], delegationUsage: 'non-critical' },
      keyType,
      asIssuer(ca),
    );
    const cert = join(dir, `${keyType}.crt`);
    const key = join(dir, `${keyType}.key`);
    await writeFile(cert, leaf.pem);
    await writeFile(key, leaf.key.privateKeyPem, { mode: 0o600 });
    certs.push({ keyType, cert, key });
  }
  return { dir, certs, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

const DCCTL = fileURLToPath(new URL('../src/cli/dcctl.js', import.meta.url));

/** A delegated credential for `algorithm` from the certificate, written to `out` by `dcctl dc issue`. */
export function issueDc(cert: string, key: string, algorithm: string, out: string): void {
  const r = spawnSync(process.execPath, [DCCTL, 'dc', 'issue', '--cert', cert, '--key', key, '--algorithm', algorithm, '--validity', '1h', '--out', out], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`dcctl dc issue --algorithm ${algorithm} failed (${r.status}): ${r.stderr}`);
}

/** True when `taskset` can pin processes (and there are at least 2 cores to split). */
export function canPin(): boolean {
  const r = spawnSync('taskset', ['-c', '0', 'true']);
  return r.status === 0;
}

/** Starts `node [nodeFlags] <script> <args>` as a child with IPC, pinned to `cpu` when possible; `stdout: 'pipe'` to read what it prints. */
export function spawnNode(script: string, args: readonly string[], cpu: number | undefined, nodeFlags: readonly string[] = [], stdout: 'inherit' | 'pipe' = 'inherit'): ChildProcess {
  const argv = [process.execPath, ...nodeFlags, script, ...args];
  const cmd = cpu !== undefined ? ['taskset', '-c', String(cpu), ...argv] : argv;
  return spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', stdout, 'inherit', 'ipc'] });
}

export function nextMessage<T>(child: ChildProcess): Promise<T> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null): void => reject(new Error(`child exited with ${code} before answering`));
    child.once('exit', onExit);
    child.once('message', (m) => {
      child.off('exit', onExit);
      resolve(m as T);
    });
  });
}

export function send(child: ChildProcess, message: unknown): void {
  child.send(message as object);
}

// --- server role ------------------------------------------------------------------------------------

export type ServerMode = 'echo' | 'bulk';

export interface ServerStats {
  readonly handshakes: number;
  /** user + system CPU of the server process since the last reset, in ms. */
  readonly cpuMs: number;
  /** The same split (process user, process system), and the main thread's own CPU (the rest is helper threads: GC, libuv pool). */
  readonly userMs?: number;
  readonly systemMs?: number;
  readonly mainThreadMs?: number;
  /** Main-thread GC pauses (perf_hooks 'gc' entries) since the last reset: only with `BENCH_GC_ENTRIES=1`. */
  readonly gcCount?: number;
  readonly gcMs?: number;
}

/**
 * Runs in the server child: listens with `impl`, answers IPC messages 'stats' (and resets), and
 * exits on 'stop'. echo: writes back what it reads. bulk: 'U<n>' reads n bytes and answers 'K';
 * 'D<n>' sends n bytes.
 */
export async function serverRole(impl: ServerImpl, certFile: string, keyFile: string, mode: ServerMode): Promise<void> {
  if (impl === 'nginx') return nginxRole(certFile, keyFile);
  const { readFile } = await import('node:fs/promises');
  const cert = await readFile(certFile, 'utf8');
  const key = await readFile(keyFile, 'utf8');
  let handshakes = 0;
  type Sock = NodeJS.ReadWriteStream & { on(e: 'error', f: () => void): unknown; destroy(): void; end(d?: Buffer | string): unknown; write(d: Buffer | string): boolean };
  const handler = (s: Sock): void => {
    handshakes++;
    s.on('error', () => undefined);
    if (mode === 'echo') {
      s.on('data', (d: Buffer) => s.write(d));
      s.on('end', () => s.end());
      return;
    }
    bulkHandler(s);
  };
  let server: Server;
  if (impl === 'ours' || impl === 'ours-warm') {
    server = createOurServer({ cert, key }, (s) => handler(s as unknown as Sock));
    if (impl === 'ours-warm') reportWarmUp(() => warmUpServer((server as ReturnType<typeof createOurServer>).config, Number(process.env.BENCH_WARM_UP)).done);
  } else if (impl === 'ours-base') {
    const base = (await import(join(process.env.BENCH_BASELINE_DIST!, 'src/tls/socket.js'))) as { createServer: typeof createOurServer };
    server = base.createServer({ cert, key }, (s) => handler(s as unknown as Sock));
  } else {
    server = nodeTls.createServer({ cert, key, minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' }, (s) => handler(s as unknown as Sock));
  }
  await listenAndReport(server, () => {
    const n = handshakes;
    handshakes = 0;
    return n;
  });
}

/**
 * nginx as a handshake server (stream module: TLS, then 32 bytes and close), one process with no
 * master, inheriting this child's CPU pinning. Speaks the server child's IPC protocol; its CPU
 * comes from /proc (clock ticks) and, as nginx counts nothing, `handshakes` is -1: the round then
 * divides by the connections the load completed.
 */
async function nginxRole(certFile: string, keyFile: string): Promise<void> {
  const { mkdtemp, writeFile, readFile } = await import('node:fs/promises');
  const net = await import('node:net');
  const probe = net.createServer();
  await new Promise<void>((res) => probe.listen(0, '127.0.0.1', res));
  const port = (probe.address() as AddressInfo).port;
  await new Promise<void>((res) => probe.close(() => res()));
  const dir = await mkdtemp(join(tmpdir(), 'nginx-bench-'));
  await writeFile(join(dir, 'nginx.conf'), [
    'load_module /usr/lib/nginx/modules/ngx_stream_module.so;',
    'daemon off; master_process off; worker_processes 1;',
    `error_log ${dir}/error.log; pid ${dir}/nginx.pid;`,
    'events { worker_connections 4096; }',
    `stream { server { listen 127.0.0.1:${port} ssl backlog=1024; ssl_certificate ${certFile}; ssl_certificate_key ${keyFile};`,
    `  ssl_protocols TLSv1.3; return "${'a'.repeat(32)}"; } }`,
  ].join('\n'));
  const nginx = spawn('nginx', ['-p', dir, '-c', join(dir, 'nginx.conf')], { stdio: 'ignore' });
  process.on('exit', () => nginx.kill('SIGKILL'));
  process.on('SIGTERM', () => process.exit(0));
  for (let i = 0; i < 100; i++) {
    const up = await new Promise<boolean>((res) => net.connect(port, '127.0.0.1').on('connect', function (this: Socket) { this.destroy(); res(true); }).on('error', () => res(false)));
    if (up) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const ticks = async (): Promise<number> => {
    const fields = (await readFile(`/proc/${nginx.pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
    return Number(fields[11]) + Number(fields[12]); // utime + stime
  };
  let last = await ticks();
  process.on('message', (m: string) => {
    if (m === 'stats') {
      void ticks().then((t) => {
        const stats: ServerStats = { handshakes: -1, cpuMs: (t - last) * 10 };
        last = t;
        process.send!(stats);
      });
    } else if (m === 'stop') {
      process.exit(0);
    }
  });
  process.send!({ port });
}

/** Runs a warm-up and prints what it cost the server's start (stderr, so tables stay clean). */
export function reportWarmUp(warmUp: () => number): void {
  const cpu = process.cpuUsage();
  const start = performance.now();
  const n = warmUp();
  const d = process.cpuUsage(cpu);
  process.stderr.write(`# warm-up at start: ${n} in-memory handshakes, ${((d.user + d.system) / 1000).toFixed(0)} ms CPU, ${(performance.now() - start).toFixed(0)} ms wall\n`);
}

/**
 * The server child's half of the IPC protocol: listens on a free loopback port, sends it to the
 * parent, answers 'stats' with the handshakes (`takeHandshakes` returns and resets the count) and
 * CPU time since the last 'stats', and exits on 'stop'.
 */
export async function listenAndReport(server: Server, takeHandshakes: () => number): Promise<void> {
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', 1024, res));
  const gc = process.env.BENCH_GC_ENTRIES === '1' ? await gcPauses() : undefined;
  let cpu = process.cpuUsage();
  let thread = process.threadCpuUsage();
  process.on('message', (m: string) => {
    if (m === 'stats') {
      const d = process.cpuUsage(cpu);
      const t = process.threadCpuUsage(thread);
      const stats: ServerStats = {
        handshakes: takeHandshakes(),
        cpuMs: (d.user + d.system) / 1000,
        userMs: d.user / 1000,
        systemMs: d.system / 1000,
        mainThreadMs: (t.user + t.system) / 1000,
        ...gc?.take(),
      };
      cpu = process.cpuUsage();
      thread = process.threadCpuUsage();
      process.send!(stats);
    } else if (m === 'stop') {
      process.exit(0);
    }
  });
  process.send!({ port: (server.address() as AddressInfo).port });
}

/** Counts main-thread GC pauses as perf_hooks reports them; `take` returns and resets the totals. */
async function gcPauses(): Promise<{ take(): { gcCount: number; gcMs: number } }> {
  const { PerformanceObserver } = await import('node:perf_hooks');
  let count = 0;
  let ms = 0;
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      count++;
      ms += e.duration;
    }
  }).observe({ entryTypes: ['gc'] });
  return {
    take: () => {
      const r = { gcCount: count, gcMs: ms };
      count = 0;
      ms = 0;
      return r;
    },
  };
}

function bulkHandler(s: NodeJS.ReadWriteStream & { write(d: Buffer | string): boolean; end(d?: Buffer | string): unknown }): void {
  let header = '';
  let remaining = -1;
  // BENCH_WRITE_SIZE: the download's write size (bench/tls-bulk.ts sets it for small writes).
  const chunk = Buffer.alloc(Number(process.env.BENCH_WRITE_SIZE) || 64 * 1024, 0x5a);
  const onData = (d: Buffer): void => {
    if (remaining < 0) {
      header += d.toString('latin1');
      const nl = header.indexOf('\n');
      if (nl < 0) return;
      const [kind, size] = [header[0], Number(header.slice(1, nl))];
      const rest = Buffer.from(header.slice(nl + 1), 'latin1');
      header = '';
      if (kind === 'D') {
        let left = size;
        const pump = (): void => {
          while (left > 0) {
            const n = Math.min(left, chunk.length);
            left -= n;
            if (!s.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
              s.once('drain', pump);
              return;
            }
          }
        };
        pump();
        return;
      }
      remaining = size;
      d = rest;
    }
    remaining -= d.length;
    if (remaining <= 0) {
      remaining = -1;
      s.write('K');
    }
  };
  s.on('data', onData);
  s.on('end', () => s.end());
}

// --- load -----------------------------------------------------------------------------------------

/**
 * One connection of a handshake load: connects with `options`, writes `payload`, waits for its
 * echo. Resolves with the connect-to-echo time in ms (after `atEcho` saw the socket), or
 * undefined after an error or 10 s: a stuck server shows up as failures instead of a benchmark
 * that never ends.
 */
export function echoOnce(options: nodeTls.ConnectionOptions, payload: Buffer, atEcho?: (socket: nodeTls.TLSSocket) => void): Promise<number | undefined> {
  return new Promise((resolve) => {
    const started = process.hrtime.bigint();
    const s = nodeTls.connect(options, () => s.write(payload));
    let got = 0;
    let done = false;
    const fail = (): void => {
      if (done) return;
      done = true;
      s.destroy();
      resolve(undefined);
    };
    s.setTimeout(10_000, fail);
    s.on('data', (d: Buffer) => {
      got += d.length;
      if (got >= payload.length && !done) {
        done = true;
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        atEcho?.(s);
        s.destroy();
        resolve(ms);
      }
    });
    s.on('error', fail);
  });
}

// --- statistics -------------------------------------------------------------------------------------

/**
 * The load child's timing protocol: `warmupSeconds` of `one()` on `concurrency` lanes (not
 * counted; `onWarm` resets the caller's counters), then 'warm' to the parent, then, on its go,
 * `seconds` of measured load. Returns the measured window's length and the load's own CPU.
 */
export async function runLoadWindows(
  one: () => Promise<unknown>,
  concurrency: number,
  warmupSeconds: number,
  seconds: number,
  onWarm: () => void,
): Promise<{ seconds: number; cpuMs: number }> {
  const lanes = async (until: number): Promise<void> => {
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (Date.now() < until) await one();
    }));
  };
  await lanes(Date.now() + warmupSeconds * 1000);
  onWarm();
  process.send!('warm');
  await new Promise<void>((res) => process.once('message', () => res()));
  const cpu = process.cpuUsage();
  const start = Date.now();
  await lanes(start + seconds * 1000);
  const used = process.cpuUsage(cpu);
  return { seconds: (Date.now() - start) / 1000, cpuMs: (used.user + used.system) / 1000 };
}

/** An echo handler that counts connections, and the counter `listenAndReport` takes (and resets). */
export function countingEcho(): { handler: (s: NodeJS.ReadWriteStream & { on(e: 'error', f: () => void): unknown }) => void; take: () => number } {
  let handshakes = 0;
  return {
    handler: (s) => {
      handshakes++;
      s.on('error', () => undefined);
      s.on('data', (d: Buffer) => s.write(d));
      s.on('end', () => s.end());
    },
    take: () => {
      const n = handshakes;
      handshakes = 0;
      return n;
    },
  };
}

/** What a handshake load child reports after its run. */
export interface HandshakeLoadResult {
  readonly completed: number;
  readonly failed: number;
  readonly seconds: number;
  readonly latencies: number[];
}

/** One round's numbers, from the load child's result and the server child's CPU time. */
export interface HandshakeRound {
  readonly rate: number;
  readonly cpuMsPerHandshake: number;
  readonly p50: number;
  readonly p99: number;
  readonly failed: number;
}

/**
 * One measured handshake round: waits for the server child's port, starts the load child, resets
 * the server's counters once the load has warmed up, runs the load, and reads the server's stats.
 * Kills the server child at the end. Returns the load's own result too, for extra fields.
 */
/** A node:tls load child's result, with how many connections resumed their lane's session. */
export interface EchoLoadResult extends HandshakeLoadResult {
  readonly reused: number;
}

/**
 * Load child body shared by the handshake benches: fresh node:tls connections back to back on
 * `concurrency` lanes, each echoing 32 bytes. A warm-up (not counted) runs first; then the child
 * says 'warm', waits for the parent's go, measures for `seconds` and sends an EchoLoadResult.
 * `resumed`: each lane offers the session of its previous connection.
 */
export async function runEchoLoad(
  options: nodeTls.ConnectionOptions,
  run: { readonly seconds: number; readonly concurrency: number; readonly warmupSeconds: number; readonly resumed: boolean },
): Promise<void> {
  let reused = 0;
  const payload = Buffer.alloc(32, 0x61);
  await runConnectionLanes<{ session: Buffer | undefined }>(
    (lane) =>
      echoOnce({ ...options, ...(run.resumed && lane.session ? { session: lane.session } : {}) }, payload, (s) => {
        if (s.isSessionReused()) reused++;
        if (run.resumed) lane.session = s.getSession() ?? lane.session;
      }),
    () => ({ session: undefined }),
    run,
    () => {
      const n = reused;
      reused = 0;
      return { reused: n };
    },
  );
}

/**
 * The load child's protocol around `one` (one connection; its connect-to-done ms, or undefined
 * when it failed): `warmupSeconds` of lanes not counted, 'warm' to the parent, its go, `seconds`
 * measured, then the HandshakeLoadResult (plus `extra()`, which resets its counters when called)
 * to the parent, and exit.
 */
export async function runConnectionLanes<Lane>(
  one: (lane: Lane) => Promise<number | undefined>,
  newLane: () => Lane,
  run: { readonly seconds: number; readonly concurrency: number; readonly warmupSeconds: number },
  extra: () => object = () => ({}),
): Promise<never> {
  const latencies: number[] = [];
  let failed = 0;
  const lanes = Array.from({ length: run.concurrency }, newLane);
  const until = (deadline: number): Promise<unknown> =>
    Promise.all(lanes.map(async (lane) => {
      while (Date.now() < deadline) {
        const ms = await one(lane);
        if (ms === undefined) failed++;
        else latencies.push(ms);
      }
    }));
  await until(Date.now() + run.warmupSeconds * 1000);
  latencies.length = 0;
  failed = 0;
  extra();
  process.send!('warm');
  await new Promise<void>((res) => process.once('message', () => res()));
  const start = Date.now();
  await until(start + run.seconds * 1000);
  const result: HandshakeLoadResult = { completed: latencies.length, failed, seconds: (Date.now() - start) / 1000, latencies, ...extra() };
  // Exit once the result is out: a large latency list may not be flushed by a plain exit.
  process.send!(result, () => process.exit(0));
  return new Promise<never>(() => undefined);
}

export async function measureHandshakeRound<L extends HandshakeLoadResult>(
  server: ChildProcess,
  startLoad: (port: number) => ChildProcess,
): Promise<HandshakeRound & { load: L; stats: ServerStats }> {
  try {
    const { port } = await nextMessage<{ port: number }>(server);
    const load = startLoad(port);
    await nextMessage<string>(load); // warmed up
    send(server, 'stats'); // reset the server's counters
    await nextMessage<ServerStats>(server);
    send(load, 'go');
    const r = await nextMessage<L>(load);
    send(server, 'stats');
    const stats = await nextMessage<ServerStats>(server);
    const sorted = r.latencies.sort((a, b) => a - b);
    return {
      load: r,
      rate: r.completed / r.seconds,
      cpuMsPerHandshake: stats.handshakes > 0 ? stats.cpuMs / stats.handshakes : stats.handshakes < 0 && r.completed > 0 ? stats.cpuMs / r.completed : NaN,
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      failed: r.failed,
      stats,
    };
  } finally {
    server.kill('SIGTERM');
  }
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function fmt(n: number, digits = 0): string {
  return Number.isFinite(n) ? n.toFixed(digits) : '-';
}

export function loadAverage(): string {
  return loadavg().map((l) => l.toFixed(1)).join(' ');
}

// --- A/B of two builds in one process (handshake-server-ab, key-schedule-ab, signer-ab) ------------

/** This thread's CPU time in us: other processes' load and other threads do not count. */
export function threadCpuUs(): number {
  const u = process.threadCpuUsage();
  return u.user + u.system;
}

/** `module` (e.g. 'src/tls/signer.js') from the build in `dist`, for a before/after in one process. */
export async function importFromBuild<T>(dist: string, module: string): Promise<T> {
  return (await import(pathToFileURL(join(resolve(dist), module)).href)) as T;
}

/** The A/B benches' arguments `<before-dist> [after-dist=dist] [count] [rounds] ...`; prints `usage` and exits 2 without them. */
export function abArguments(usage: string, count: number, rounds: number): { before: string; after: string; count: number; rounds: number; rest: string[] } {
  const [before, after = 'dist', countText = String(count), roundsText = String(rounds), ...rest] = process.argv.slice(2);
  if (!before) {
    console.error(`usage: ${usage}`);
    process.exit(2);
  }
  return { before, after, count: Number(countText), rounds: Number(roundsText), rest };
}
