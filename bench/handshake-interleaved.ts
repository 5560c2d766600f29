/**
 * Server CPU per full TLS 1.3 handshake (P-256 certificate), our server against node:tls (and
 * main's build, nginx), measured in short interleaved slices so that the shared machine's drift
 * hits every server alike.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/handshake-interleaved.js [slice=1.5] [pairs=12] [concurrency=16] [warmup=4]
 *
 * Why: bench/tls-handshake.ts and bench/pq-handshake.ts measure each server in its own round of
 * several seconds with a fresh process, rounds one after another; on two cores shared with other
 * builds the machine's state moves between rounds, and their per-round ratios spread 0.5-1.85
 * (bench/results/pq.md), so a median of 3-7 rounds moves by +-0.1 from run to run. Here every
 * server process runs for the whole bench (all pinned to core 1; an idle server costs nothing),
 * one load process (pinned to core 0, node:tls clients, fresh connections, 32 bytes echoed, the
 * same as the other benches) drives one server at a time for `slice` seconds, going round all
 * servers `pairs` times (order reversed every other pass). Each server's CPU (user+system of its
 * process) is read just before and after its own slice. A pass's servers are seconds apart, so
 * its ratios (ours / node:tls of the same group) see the same machine; reported are the medians
 * over passes of those ratios with their quartiles, and the median CPU per handshake of each.
 * Each server is first loaded for `warmup` seconds (not counted).
 *
 * Environment: BENCH_GROUPS (default "x25519"; e.g. "x25519,X25519MLKEM768"): the groups, both
 * sides restricted to each; BENCH_BASELINE_DIST=<another build's dist/> adds that build's server
 * (e.g. main's); BENCH_NGINX=1 adds nginx (x25519 only: the system OpenSSL has no ML-KEM; one
 * worker, stream module; it answers 32 bytes instead of echoing; its CPU is read in 10 ms clock
 * ticks from /proc, so its slices carry a few % of rounding each); BENCH_CIPHERS=<suite> offers
 * only that TLS 1.3 suite: node:tls servers (and nginx) follow the client's order, so with the
 * clients' default list they negotiate TLS_AES_256_GCM_SHA384 where ours picks
 * TLS_AES_128_GCM_SHA256 (SHA-384 transcript and key schedule against SHA-256);
 * BENCH_CIPHERS=TLS_AES_128_GCM_SHA256 makes every server do the same suite.
 * BENCH_MODES (default "full"; "full,resumed" for issue 19's resumption target): "resumed" loads
 * each server a second time per pass, right after (or before) its full slice, with every lane
 * offering the session its previous connection to that server got (TLS 1.3 PSK with (EC)DHE, as
 * node:tls clients do; sessions are kept across slices, so after the warm-up every connection
 * offers one); the tables then have a row per server and mode, the share of connections that
 * resumed, and per server the median of per-pass ratios resumed / full.
 * A server's work left running after its slice (a collection finishing) is not counted for it:
 * a few ms of ~1 s per slice.
 */
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import type * as nodeTls from 'node:tls';
import { canPin, echoOnce, fmt, loadAverage, makeCertificates, median, nextMessage, percentile, send, spawnNode, type ServerStats } from './tls-support.js';

const SCRIPT = fileURLToPath(import.meta.url);
const PQ_SCRIPT = fileURLToPath(new URL('./pq-handshake.js', import.meta.url));
const TLS_SCRIPT = fileURLToPath(new URL('./tls-handshake.js', import.meta.url));

type Group = 'x25519' | 'X25519MLKEM768' | 'SecP256r1MLKEM768';
/** node:tls (OpenSSL) names, for the load's ecdhCurve. */
const OPENSSL_NAMES: Record<Group, string> = { x25519: 'X25519', X25519MLKEM768: 'X25519MLKEM768', SecP256r1MLKEM768: 'SecP256r1MLKEM768' };

interface ServerSpec {
  readonly name: string;
  readonly kind: 'ours' | 'node' | 'base' | 'nginx';
  readonly group: Group;
}

interface Running extends ServerSpec {
  readonly child: ChildProcess;
  readonly port: number;
}

type Mode = 'full' | 'resumed';

/** One row of the tables: a server loaded in one mode. */
interface Measured {
  readonly name: string;
  readonly server: Running;
  readonly mode: Mode;
}

interface Slice {
  readonly cpuUs: number;
  readonly rate: number;
  readonly failed: number;
  /** Share of the slice's connections that resumed a session. */
  readonly reusedShare: number;
}

interface LoadSlice {
  readonly completed: number;
  readonly failed: number;
  readonly reused: number;
  readonly seconds: number;
}

interface LoadOrder {
  readonly port: number;
  readonly ecdhCurve: string;
  readonly seconds: number;
  readonly resumed: boolean;
}

// --- load role: one process for the whole bench, told which server to load for how long -------------

async function loadRole(concurrency: number): Promise<void> {
  const payload = Buffer.alloc(32, 0x61);
  // Per server port, each lane's latest session (resumed mode).
  const sessions = new Map<number, (Buffer | undefined)[]>();
  process.on('message', (m: LoadOrder) => {
    void (async () => {
      const ciphers = process.env.BENCH_CIPHERS;
      const options: nodeTls.ConnectionOptions = {
        port: m.port,
        host: '127.0.0.1',
        servername: 'localhost',
        minVersion: 'TLSv1.3',
        maxVersion: 'TLSv1.3',
        rejectUnauthorized: false,
        ecdhCurve: m.ecdhCurve,
        ...(ciphers ? { ciphers } : {}),
      };
      let completed = 0;
      let failed = 0;
      let reused = 0;
      const start = Date.now();
      const until = start + m.seconds * 1000;
      let laneSessions = sessions.get(m.port);
      if (!laneSessions) sessions.set(m.port, (laneSessions = new Array<Buffer | undefined>(concurrency).fill(undefined)));
      const atEcho = (lane: number) => (s: nodeTls.TLSSocket): void => {
        if (s.isSessionReused()) reused++;
        if (m.resumed) laneSessions[lane] = s.getSession() ?? laneSessions[lane];
      };
      await Promise.all(
        Array.from({ length: concurrency }, async (_, lane) => {
          while (Date.now() < until) {
            const session = m.resumed ? laneSessions[lane] : undefined;
            if ((await echoOnce(session ? { ...options, session } : options, payload, atEcho(lane))) === undefined) failed++;
            else completed++;
          }
        }),
      );
      const slice: LoadSlice = { completed, failed, reused, seconds: (Date.now() - start) / 1000 };
      process.send!(slice);
    })();
  });
  process.send!('ready');
  await new Promise<never>(() => undefined);
}

// --- driver ---------------------------------------------------------------------------------------------

function startServer(spec: ServerSpec, cert: string, key: string, pin: boolean): ChildProcess {
  if (spec.kind === 'nginx') return spawnNode(TLS_SCRIPT, ['--server', 'nginx', cert, key], pin ? 1 : undefined);
  const pqCase = { name: spec.name, server: spec.kind, client: 'node', group: spec.group };
  return spawnNode(PQ_SCRIPT, ['--server', JSON.stringify(pqCase), cert, key, '-'], pin ? 1 : undefined);
}

/** One slice of load on `m`'s server in its mode: its CPU per handshake (us) and handshake rate. */
async function slice(m: Measured, load: ChildProcess, seconds: number): Promise<Slice> {
  const s = m.server;
  send(s.child, 'stats'); // reset
  await nextMessage<ServerStats>(s.child);
  const order: LoadOrder = { port: s.port, ecdhCurve: OPENSSL_NAMES[s.group], seconds, resumed: m.mode === 'resumed' };
  send(load, order);
  const l = await nextMessage<LoadSlice>(load);
  send(s.child, 'stats');
  const stats = await nextMessage<ServerStats>(s.child);
  // nginx counts no handshakes (-1): the load's completed connections stand in.
  const n = stats.handshakes >= 0 ? stats.handshakes : l.completed;
  return { cpuUs: (stats.cpuMs * 1000) / n, rate: l.completed / l.seconds, failed: l.failed, reusedShare: l.reused / Math.max(1, l.completed) };
}

function specs(): ServerSpec[] {
  const groups = (process.env.BENCH_GROUPS ?? 'x25519').split(',') as Group[];
  const out: ServerSpec[] = [];
  for (const group of groups) {
    out.push({ name: `ours, ${group}`, kind: 'ours', group }, { name: `node:tls, ${group}`, kind: 'node', group });
    if (process.env.BENCH_BASELINE_DIST) out.push({ name: `baseline build, ${group}`, kind: 'base', group });
    if (process.env.BENCH_NGINX === '1' && group === 'x25519') out.push({ name: `nginx, ${group}`, kind: 'nginx', group });
  }
  return out;
}

function quartiles(values: readonly number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  return `${fmt(percentile(sorted, 25), 3)}-${fmt(percentile(sorted, 75), 3)}`;
}

function modes(): Mode[] {
  const list = (process.env.BENCH_MODES ?? 'full').split(',');
  for (const m of list) if (m !== 'full' && m !== 'resumed') throw new Error(`BENCH_MODES: "${m}" is not full or resumed`);
  return list as Mode[];
}

async function main(): Promise<void> {
  const [sliceSeconds = 1.5, pairs = 12, concurrency = 16, warmup = 4] = process.argv.slice(2).map(Number);
  const pin = canPin();
  const { certs, cleanup } = await makeCertificates(['ecdsa-p256']);
  const { cert, key } = certs[0]!;
  const all = specs();
  const loadModes = modes();
  console.log(
    `# TLS 1.3 ${loadModes.join(' and ')} handshakes, P-256 certificate, interleaved: ${pairs} passes of ${sliceSeconds}s per server and mode after ${warmup}s warm-up each, ${concurrency} lanes, servers ${pin ? 'pinned to core 1, load on core 0' : 'not pinned'}; client suites ${process.env.BENCH_CIPHERS ?? 'node:tls default'}; node ${process.version}; load average before ${loadAverage()}`,
  );
  const running: Running[] = [];
  let load: ChildProcess | undefined;
  try {
    for (const spec of all) {
      const child = startServer(spec, cert, key, pin);
      // Pushed before its port arrives so that `finally` stops it even if it fails to start.
      const entry = { ...spec, child, port: 0 };
      running.push(entry);
      entry.port = (await nextMessage<{ port: number }>(child)).port;
    }
    // A server's modes are adjacent in every pass (the order is reversed every other pass), so its
    // resumed / full ratio compares slices as close in time as its ratio to node:tls does.
    const measured: Measured[] = running.flatMap((server) =>
      loadModes.map((mode) => ({ name: mode === 'full' && loadModes.length === 1 ? server.name : `${server.name}, ${mode}`, server, mode })),
    );
    load = spawnNode(SCRIPT, ['--load', String(concurrency)], pin ? 0 : undefined);
    await nextMessage<string>(load);
    for (const m of measured) await slice(m, load, warmup);
    const slices = new Map<string, Slice[]>(measured.map((m) => [m.name, []]));
    for (let p = 0; p < pairs; p++) {
      for (const m of p % 2 === 0 ? measured : [...measured].reverse()) slices.get(m.name)!.push(await slice(m, load, sliceSeconds));
    }
    const resumedColumn = loadModes.includes('resumed');
    const lines = [
      `| server | CPU us/handshake (median) | quartiles | handshakes/s (median) | failed |${resumedColumn ? ' resumed share (median) |' : ''}`,
      `| --- | ---: | --- | ---: | ---: |${resumedColumn ? ' ---: |' : ''}`,
    ];
    for (const m of measured) {
      const sl = slices.get(m.name)!;
      const cpu = sl.map((x) => x.cpuUs);
      const share = resumedColumn ? ` ${fmt(median(sl.map((x) => x.reusedShare)), 3)} |` : '';
      lines.push(`| ${m.name} | ${fmt(median(cpu))} | ${fmt(percentile([...cpu].sort((a, b) => a - b), 25))}-${fmt(percentile([...cpu].sort((a, b) => a - b), 75))} | ${fmt(median(sl.map((x) => x.rate)))} | ${sl.reduce((a, x) => a + x.failed, 0)} |${share}`);
    }
    lines.push('', '| ratio of server CPU per handshake | median of per-pass ratios | quartiles | ratio of medians | per-pass ratios |', '| --- | ---: | --- | ---: | --- |');
    const ratio = (a: Measured, b: Measured): void => {
      const sa = slices.get(a.name)!;
      const sb = slices.get(b.name)!;
      const r = sa.map((x, i) => x.cpuUs / sb[i]!.cpuUs);
      lines.push(`| ${a.name} / ${b.name} | **${fmt(median(r), 3)}x** | ${quartiles(r)} | ${fmt(median(sa.map((x) => x.cpuUs)) / median(sb.map((x) => x.cpuUs)), 3)}x | ${r.map((x) => fmt(x, 2)).join(', ')} |`);
    };
    const find = (kind: ServerSpec['kind'], group: Group, mode: Mode): Measured | undefined =>
      measured.find((m) => m.server.kind === kind && m.server.group === group && m.mode === mode);
    const groups = [...new Set(running.map((s) => s.group))];
    for (const mode of loadModes) {
      for (const g of groups) {
        const node = find('node', g, mode)!;
        for (const kind of ['ours', 'base', 'nginx'] as const) {
          const s = find(kind, g, mode);
          if (s) ratio(s, node);
        }
        const base = find('base', g, mode);
        if (base) ratio(find('ours', g, mode)!, base);
      }
    }
    if (loadModes.length > 1) {
      for (const s of running) ratio(find(s.kind, s.group, 'resumed')!, find(s.kind, s.group, 'full')!);
    }
    const increments: string[] = [];
    if (groups.length > 1) {
      increments.push(`| what a group adds to a server's handshake, over ${groups[0]} | median of per-pass differences, us | quartiles |`, '| --- | ---: | --- |');
      for (const mode of loadModes) {
        for (const g of groups.slice(1)) {
          for (const kind of ['ours', 'node', 'base'] as const) {
            const a = find(kind, g, mode);
            const b = find(kind, groups[0]!, mode);
            if (!a || !b) continue;
            ratio(a, b);
            const sb = slices.get(b.name)!;
            const d = slices.get(a.name)!.map((x, i) => x.cpuUs - sb[i]!.cpuUs);
            const sorted = [...d].sort((x, y) => x - y);
            increments.push(`| ${a.name} - ${b.name} | **${fmt(median(d))}** | ${fmt(percentile(sorted, 25))} to ${fmt(percentile(sorted, 75))} |`);
          }
        }
      }
    }
    console.log(lines.join('\n'));
    if (increments.length > 0) console.log(`\n${increments.join('\n')}`);
  } finally {
    load?.kill('SIGTERM');
    for (const s of running) s.child.kill('SIGTERM');
    await cleanup();
  }
  console.log(`\nload average after ${loadAverage()}`);
}

if (process.argv[2] === '--load') await loadRole(Number(process.argv[3]));
else await main();
