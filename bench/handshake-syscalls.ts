/**
 * What a full TLS 1.3 handshake costs the server in system calls, TCP packets and context
 * switches, our server against node:tls, x25519 against X25519MLKEM768 (P-256 certificate): the
 * socket side of a handshake, which the in-memory benches do not see.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/handshake-syscalls.js [seconds=4] [concurrency=16] [warmup=2] [rounds=1]
 *
 * The servers and the load are bench/pq-handshake.ts's (server pinned to core 1, node:tls clients
 * on core 0, fresh connections, 32 bytes echoed). After the warm-up, `perf stat -p <server>`
 * counts the server process's (all threads') system calls by tracepoint and the packets it hands
 * to the loopback device (`net:net_dev_queue`, fired in the sender's context) for the measured
 * window; counts are divided by the handshakes the server completed in it. BENCH_STRACE=1 also
 * runs one more window per case under `strace -f` for the sizes of the server's reads and writes
 * (strace slows the server several times, so its per-wakeup batching differs: its counts per
 * handshake are for the sizes, the perf counts for the numbers).
 * BENCH_TRACE_GC=1 also runs one more window per case with the server under `node --trace-gc`
 * and counts its collections by kind per 1000 handshakes.
 * BENCH_PERF_RECORD=1 also runs one more window per case under `perf record -e cpu-clock` (all
 * threads of the server, 4 kHz) and prints the CPU per handshake by binary (kernel, JIT-compiled
 * JavaScript, the node binary with its OpenSSL, our addons, libc) and, per server, the functions
 * whose samples grow most from the first group to the second: where a group's extra CPU goes,
 * native frames included, which `--cpu-prof` folds into the calling JavaScript.
 * BENCH_BASELINE_DIST=<another build's dist/> adds that build's server (pq-handshake's baseline).
 * Needs `perf` (software events and tracepoints only: this VM exposes no hardware counters).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { canPin, fmt, loadAverage, makeCertificates, median, nextMessage, send, spawnNode, type ServerStats } from './tls-support.js';

const PQ_SCRIPT = fileURLToPath(new URL('./pq-handshake.js', import.meta.url));

/** Tracepoints counted, with the row names printed. */
const EVENTS: readonly (readonly [string, string])[] = [
  ['raw_syscalls:sys_enter', 'system calls, all'],
  ['syscalls:sys_enter_read', 'read'],
  ['syscalls:sys_enter_write', 'write'],
  ['syscalls:sys_enter_writev', 'writev'],
  ['syscalls:sys_enter_epoll_wait', 'epoll_wait'],
  ['syscalls:sys_enter_epoll_pwait', 'epoll_pwait'],
  ['syscalls:sys_enter_epoll_ctl', 'epoll_ctl'],
  ['syscalls:sys_enter_accept4', 'accept4'],
  ['syscalls:sys_enter_close', 'close'],
  ['syscalls:sys_enter_shutdown', 'shutdown'],
  ['syscalls:sys_enter_setsockopt', 'setsockopt'],
  ['syscalls:sys_enter_getsockopt', 'getsockopt'],
  ['syscalls:sys_enter_getpeername', 'getpeername'],
  ['syscalls:sys_enter_getsockname', 'getsockname'],
  ['syscalls:sys_enter_futex', 'futex'],
  ['syscalls:sys_enter_madvise', 'madvise'],
  ['syscalls:sys_enter_mmap', 'mmap'],
  ['syscalls:sys_enter_munmap', 'munmap'],
  ['syscalls:sys_enter_mprotect', 'mprotect'],
  ['net:net_dev_queue', 'packets sent (loopback)'],
  ['context-switches', 'context switches'],
  ['page-faults', 'page faults'],
];

interface Case {
  readonly name: string;
  readonly server: 'ours' | 'node' | 'base';
  readonly client: 'node';
  readonly group: 'x25519' | 'X25519MLKEM768';
}

const CASES: readonly Case[] = (['x25519', 'X25519MLKEM768'] as const).flatMap((group) =>
  (['ours', 'node', ...(process.env.BENCH_BASELINE_DIST ? (['base'] as const) : [])] as const).map((server) => ({
    name: `${server === 'ours' ? 'ours' : server === 'node' ? 'node:tls' : 'baseline build'}, ${group}`,
    server,
    client: 'node' as const,
    group,
  })),
);

interface Window {
  readonly handshakes: number;
  readonly cpuMs: number;
  readonly userMs: number;
  readonly systemMs: number;
  readonly mainThreadMs: number;
  readonly counts: Map<string, number>;
}

/** Stops a tracer started on the server and waits for its summary. */
async function stop(tracer: ChildProcess): Promise<void> {
  const exited = new Promise<void>((res) => tracer.once('exit', () => res()));
  tracer.kill('SIGINT');
  await exited;
}

/** One measured window of `c` with `tracer(pid)` attached to the server from 'go' to the load's result. */
async function window<T>(
  c: Case,
  cert: string,
  key: string,
  seconds: number,
  concurrency: number,
  warmup: number,
  pin: boolean,
  tracer: (pid: number) => { child: ChildProcess; read: () => Promise<T> },
  gc?: string[],
): Promise<{ stats: ServerStats; traced: T }> {
  const server = spawnNode(PQ_SCRIPT, ['--server', JSON.stringify(c), cert, key, '-'], pin ? 1 : undefined, gc ? ['--trace-gc'] : [], gc ? 'pipe' : 'inherit');
  // --trace-gc lines of the measured window only.
  let counting = false;
  if (gc) {
    let rest = '';
    server.stdout!.on('data', (d: Buffer) => {
      const lines = (rest + d.toString('latin1')).split('\n');
      rest = lines.pop()!;
      if (counting) gc.push(...lines);
    });
  }
  try {
    const { port } = await nextMessage<{ port: number }>(server);
    const load = spawnNode(PQ_SCRIPT, ['--load', JSON.stringify(c), String(port), String(seconds), String(concurrency), String(warmup)], pin ? 0 : undefined);
    await nextMessage<string>(load);
    send(server, 'stats');
    await nextMessage<ServerStats>(server);
    const t = tracer(server.pid!);
    // Let the tracer attach before the window opens.
    await new Promise((r) => setTimeout(r, 300));
    send(server, 'stats');
    await nextMessage<ServerStats>(server);
    counting = true;
    send(load, 'go');
    await nextMessage<unknown>(load);
    send(server, 'stats');
    const stats = await nextMessage<ServerStats>(server);
    counting = false;
    await stop(t.child);
    return { stats, traced: await t.read() };
  } finally {
    server.kill('SIGTERM');
  }
}

/** `perf stat` of the server's tracepoints; counts include the ~300 ms before the window, so the server is idle then (load waits for 'go'). */
function perfStat(out: string) {
  return (pid: number) => ({
    child: spawn('perf', ['stat', '-x', ',', '-o', out, '-e', EVENTS.map(([e]) => e).join(','), '-p', String(pid)], { stdio: 'ignore' }),
    read: async (): Promise<Map<string, number>> => {
      const counts = new Map<string, number>();
      for (const line of (await readFile(out, 'utf8')).split('\n')) {
        const f = line.split(',');
        if (f.length > 3 && EVENTS.some(([e]) => e === f[2])) counts.set(f[2]!, Number(f[0]));
      }
      return counts;
    },
  });
}

interface IoSizes {
  readonly reads: number[];
  readonly writes: number[];
  readonly writevs: { pieces: number; bytes: number }[];
}

/** `strace -f` of the server's socket reads and writes: their sizes (return values). */
function straceIo(out: string) {
  return (pid: number) => ({
    child: spawn('strace', ['-f', '-qq', '-xx', '-s', '8', '-e', 'trace=read,write,writev', '-e', 'signal=none', '-o', out, '-p', String(pid)], { stdio: 'ignore' }),
    read: async (): Promise<IoSizes> => {
      const sizes: IoSizes = { reads: [], writes: [], writevs: [] };
      for (const line of (await readFile(out, 'utf8')).split('\n')) {
        // Sockets only: file descriptors of the IPC channel and eventfds are small and fixed; a
        // socket read/write of the load carries TLS records, which start with 0x14-0x17 0x03.
        const m = /^\d+\s+(read|write|writev)\((\d+), (.*)\)\s+= (-?\d+)/.exec(line);
        if (!m || Number(m[4]) <= 0) continue;
        const [, call, , args, ret] = m;
        if (call === 'writev') {
          if (!/\\x1[4-7]\\x03/.test(args!.slice(0, 40))) continue;
          sizes.writevs.push({ pieces: Number(/\], (\d+)$/.exec(args!)?.[1] ?? NaN), bytes: Number(ret) });
        } else if (/^"\\x1[4-7]\\x03/.test(args!)) {
          (call === 'read' ? sizes.reads : sizes.writes).push(Number(ret));
        }
      }
      return sizes;
    },
  });
}

const RECORD_HZ = 4000;

/** Samples per (binary, function) of one window under `perf record`. */
type Samples = Map<string, number>;

/** `perf record -e cpu-clock` of the server: samples per binary and function. */
function perfRecord(out: string) {
  return (pid: number) => ({
    child: spawn('perf', ['record', '-q', '-e', 'cpu-clock', '-F', String(RECORD_HZ), '-o', out, '-p', String(pid)], { stdio: 'ignore' }),
    read: async (): Promise<Samples> => {
      const r = spawnSync('perf', ['report', '-i', out, '--stdio', '-n', '--sort', 'dso,sym'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
      const samples: Samples = new Map();
      for (const line of r.stdout.split('\n')) {
        const m = /^\s+[\d.]+%\s+(\d+)\s+(\S.*?)\s+\[[.k]\]\s+(.*)$/.exec(line);
        if (!m) continue;
        // JIT frames have one address each: one bucket for all of them.
        const dso = m[2]!.startsWith('[JIT]') ? '[JIT]' : m[2]!;
        const key = `${dso}\t${dso === '[JIT]' ? 'JavaScript (JIT-compiled)' : m[3]!.trim()}`;
        samples.set(key, (samples.get(key) ?? 0) + Number(m[1]));
      }
      return samples;
    },
  });
}

/** A binary's name as printed: the kernel, JIT, node (V8, Node, OpenSSL), an addon, libc. */
function binaryOf(key: string): string {
  const dso = key.split('\t')[0]!;
  if (dso === '[kernel.kallsyms]') return 'kernel';
  if (dso === '[JIT]') return 'JIT JavaScript';
  if (dso === 'node') return 'node (V8, Node, OpenSSL)';
  if (dso.endsWith('.node')) return `addon ${dso}`;
  if (dso.startsWith('libc')) return 'libc';
  return 'other';
}

/** "n x size" counts of a size list, most frequent first. */
function histogram(values: readonly number[], top = 6): string {
  const h = new Map<number, number>();
  for (const v of values) h.set(v, (h.get(v) ?? 0) + 1);
  return [...h.entries()].sort((a, b) => b[1] - a[1]).slice(0, top).map(([v, n]) => `${n}x${v}`).join(' ');
}

async function main(): Promise<void> {
  const [seconds = 4, concurrency = 16, warmup = 2, rounds = 1] = process.argv.slice(2).map(Number);
  if (spawnSync('perf', ['--version']).status !== 0) throw new Error('perf is not installed (apt-get install linux-perf)');
  const pin = canPin();
  const { certs, cleanup } = await makeCertificates(['ecdsa-p256']);
  const { cert, key } = certs[0]!;
  const out = join(tmpdir(), `handshake-syscalls-${process.pid}`);
  console.log(`# server system calls per full TLS 1.3 handshake (P-256 certificate, node:tls clients), ${seconds}s windows after ${warmup}s warm-up, ${concurrency} lanes, ${rounds} round(s), server ${pin ? 'pinned to core 1' : 'not pinned'}; node ${process.version}; load average ${loadAverage()}`);
  const results = new Map<Case, Window[]>(CASES.map((c) => [c, []]));
  try {
    for (let r = 0; r < rounds; r++) {
      for (const c of r % 2 === 0 ? CASES : [...CASES].reverse()) {
        const { stats, traced } = await window(c, cert, key, seconds, concurrency, warmup, pin, perfStat(`${out}.perf`));
        results.get(c)!.push({ handshakes: stats.handshakes, cpuMs: stats.cpuMs, userMs: stats.userMs ?? NaN, systemMs: stats.systemMs ?? NaN, mainThreadMs: stats.mainThreadMs ?? NaN, counts: traced });
      }
    }
    const header = ['| per handshake (median of rounds) |', ...CASES.map((c) => ` ${c.name} |`)].join('');
    const lines = [header, `| --- |${CASES.map(() => ' ---: |').join('')}`];
    const per = (c: Case, f: (w: Window) => number): number => median(results.get(c)!.map((w) => f(w) / w.handshakes));
    lines.push(`| handshakes in the window |${CASES.map((c) => ` ${fmt(median(results.get(c)!.map((w) => w.handshakes)))} |`).join('')}`);
    lines.push(`| server CPU us |${CASES.map((c) => ` ${fmt(per(c, (w) => w.cpuMs * 1000))} |`).join('')}`);
    lines.push(`| of it user us |${CASES.map((c) => ` ${fmt(per(c, (w) => w.userMs * 1000))} |`).join('')}`);
    lines.push(`| of it system (kernel) us |${CASES.map((c) => ` ${fmt(per(c, (w) => w.systemMs * 1000))} |`).join('')}`);
    lines.push(`| of it the main thread us |${CASES.map((c) => ` ${fmt(per(c, (w) => w.mainThreadMs * 1000))} |`).join('')}`);
    for (const [event, name] of EVENTS) {
      lines.push(`| ${name} |${CASES.map((c) => ` ${fmt(per(c, (w) => w.counts.get(event) ?? NaN), 2)} |`).join('')}`);
    }
    console.log(lines.join('\n'));
    if (process.env.BENCH_TRACE_GC === '1') {
      console.log('\nV8 garbage collections of the server (node --trace-gc), one window each\n');
      console.log('| case | handshakes | scavenges per 1000 handshakes | mark-compacts per 1000 | other | pause ms per 1000 handshakes (all kinds) | heap MB at the last mark-compact (before -> after) |');
      console.log('| --- | ---: | ---: | ---: | ---: | ---: | --- |');
      for (const c of CASES) {
        const lines: string[] = [];
        const { stats } = await window(c, cert, key, seconds, concurrency, warmup, pin, perfStat(`${out}.perf`), lines);
        const gcs = lines.filter((l) => /\d+ ms: /.test(l));
        const kind = (re: RegExp): string[] => gcs.filter((l) => re.test(l));
        const scavenges = kind(/ms: Scavenge/);
        const marks = kind(/ms: Mark-Compact/);
        const pause = gcs.reduce((a, l) => a + Number(/ MB, ([\d.]+) \//.exec(l)?.[1] ?? 0), 0);
        const lastMark = marks.at(-1);
        const k = 1000 / stats.handshakes;
        console.log(
          `| ${c.name} | ${stats.handshakes} | ${fmt(scavenges.length * k, 2)} | ${fmt(marks.length * k, 2)} | ${fmt((gcs.length - scavenges.length - marks.length) * k, 2)} | ${fmt(pause * k, 1)} | ${lastMark ? (/ms: Mark-Compact[^ ]* ([^,]*),/.exec(lastMark)?.[1] ?? '') : 'none'} |`,
        );
      }
    }
    if (process.env.BENCH_STRACE === '1') {
      console.log('\nsocket reads and writes under strace -f (one window each; sizes in bytes, most frequent first)\n');
      console.log('| case | handshakes | reads / handshake | read sizes | writes / handshake | write sizes | writev / handshake | writev pieces x bytes |');
      console.log('| --- | ---: | ---: | --- | ---: | --- | ---: | --- |');
      for (const c of CASES) {
        const { stats, traced } = await window(c, cert, key, seconds, concurrency, warmup, pin, straceIo(`${out}.strace`));
        const n = stats.handshakes;
        console.log(
          `| ${c.name} | ${n} | ${fmt(traced.reads.length / n, 2)} | ${histogram(traced.reads)} | ${fmt(traced.writes.length / n, 2)} | ${histogram(traced.writes)} | ${fmt(traced.writevs.length / n, 2)} | ${histogram(traced.writevs.map((w) => w.bytes))} |`,
        );
      }
    }
    if (process.env.BENCH_PERF_RECORD === '1') {
      const recorded = new Map<Case, { n: number; samples: Samples }>();
      for (const c of CASES) {
        const { stats, traced } = await window(c, cert, key, seconds, concurrency, warmup, pin, perfRecord(`${out}.data`));
        recorded.set(c, { n: stats.handshakes, samples: traced });
      }
      const usPer = (c: Case, keys: (k: string) => boolean): number => {
        const { n, samples } = recorded.get(c)!;
        let total = 0;
        for (const [k, v] of samples) if (keys(k)) total += v;
        return (total * 1e6) / RECORD_HZ / n;
      };
      const binaries = [...new Set(CASES.flatMap((c) => [...recorded.get(c)!.samples.keys()].map(binaryOf)))].sort();
      console.log(`\nserver CPU per handshake by binary, us (perf record -e cpu-clock -F ${RECORD_HZ}, one window each)\n`);
      console.log(`| binary |${CASES.map((c) => ` ${c.name} |`).join('')}`);
      console.log(`| --- |${CASES.map(() => ' ---: |').join('')}`);
      console.log(`| handshakes |${CASES.map((c) => ` ${recorded.get(c)!.n} |`).join('')}`);
      for (const b of ['all', ...binaries]) {
        console.log(`| ${b} |${CASES.map((c) => ` ${fmt(usPer(c, (k) => b === 'all' || binaryOf(k) === b), 1)} |`).join('')}`);
      }
      const groups = [...new Set(CASES.map((c) => c.group))];
      for (const server of [...new Set(CASES.map((c) => c.server))]) {
        const a = CASES.find((c) => c.server === server && c.group === groups[0])!;
        const b = CASES.find((c) => c.server === server && c.group === groups[1])!;
        const keys = new Set([...recorded.get(a)!.samples.keys(), ...recorded.get(b)!.samples.keys()]);
        const deltas = [...keys].map((k) => ({ k, a: usPer(a, (x) => x === k), b: usPer(b, (x) => x === k) })).sort((x, y) => y.b - y.a - (x.b - x.a));
        console.log(`\n${b.name} against ${a.name}: the functions that grow most, us per handshake\n`);
        console.log(`| binary | function | ${a.group} | ${b.group} | difference |`);
        console.log('| --- | --- | ---: | ---: | ---: |');
        for (const d of deltas.slice(0, 15)) {
          const [dso, sym] = d.k.split('\t');
          console.log(`| ${dso} | ${sym!.replace(/\|/g, '\\|').slice(0, 90)} | ${fmt(d.a, 1)} | ${fmt(d.b, 1)} | ${fmt(d.b - d.a, 1)} |`);
        }
      }
    }
  } finally {
    await cleanup();
    await rm(`${out}.data`, { force: true });
    await rm(`${out}.perf`, { force: true });
    await rm(`${out}.strace`, { force: true });
  }
  console.log(`\nload average after ${loadAverage()}`);
}

await main();
