/**
 * Where our server's handshake CPU goes: `node --cpu-prof` of our server (src/tls) under a
 * handshake load, summarised as the top self-time frames of the busy (non-idle) samples.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/handshake-profile.js [version=1.3|1.2] [seconds=10] [concurrency=16] [top=30]
 *
 * The server runs in its own process pinned to core 1 with an ECDSA P-256 certificate; the load
 * (node:tls clients with their default groups, so x25519 (and P-256 listed, which an ECDSA
 * certificate needs in TLS 1.2), no session reuse, 32 bytes echoed per connection, `concurrency`
 * lanes) runs pinned to core 0 for `seconds`, then the server exits and its profile is read.
 * The first second of load is in the profile too; for the steady state use 10 s or more.
 * BENCH_ECDH_CURVE=<OpenSSL group list> restricts the load's groups (e.g. X25519MLKEM768).
 * BENCH_MODE=resumed: each lane offers the session its previous connection got (TLS 1.3 PSK-DHE
 * after the lane's first connection), for where a resumed handshake's CPU goes on sockets.
 */
import { readdir, readFile, rm, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as nodeTls from 'node:tls';
import { createServer as createOurServer } from '../src/tls/socket.js';
import { canPin, countingEcho, echoOnce, listenAndReport, makeCertificates, nextMessage, send, spawnNode } from './tls-support.js';

const SCRIPT = fileURLToPath(import.meta.url);

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly children?: readonly number[];
}
interface Profile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** Self time per frame (function, file, line), in ms, busiest first; idle and program excluded. */
export function selfTimes(profile: Profile): { busyMs: number; frames: { name: string; ms: number }[] } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const ms = new Map<string, number>();
  let busy = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i]!)!;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === '(idle)' || functionName === '(program)') continue;
    const dt = (profile.timeDeltas[i] ?? 0) / 1000;
    busy += dt;
    const file = url.replace(/^.*\/(dist|node_modules)\//, '').replace(/^node:/, '');
    const name = `${functionName || '(anonymous)'} ${file}${file ? `:${lineNumber + 1}` : ''}`;
    ms.set(name, (ms.get(name) ?? 0) + dt);
  }
  const frames = [...ms].map(([name, t]) => ({ name, ms: t })).sort((a, b) => b.ms - a.ms);
  return { busyMs: busy, frames };
}

/**
 * Busy self time split by whose code ran: our socket adapter (src/tls/socket.ts), the rest of
 * src/tls, node's net / streams / events / timers and other internals, the garbage collector.
 * A frame without a script (a native function: node's bindings such as writeBuffer, our addons,
 * V8 builtins) counts for the nearest caller that has one, so the kernel's send counts for
 * node:net and the native key exchange for src/tls.
 */
export function selfTimeSplit(profile: Profile): Map<string, number> {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const category = (id: number): string => {
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const { functionName, url } = byId.get(at)!.callFrame;
      if (functionName === '(garbage collector)') return 'garbage collector';
      if (!url) continue;
      if (url.includes('/src/tls/socket.js')) return 'ours: socket adapter (src/tls/socket.ts)';
      if (url.includes('/src/tls/')) return 'ours: TLS (src/tls, its addons)';
      const m = /^node:(?:internal\/)?(?:streams\/)?([a-z_]+)/.exec(url);
      if (m) return `node: ${m[1]}`;
      return `other: ${url.replace(/^.*\/(dist|node_modules)\//, '')}`;
    }
    return 'no script (top level)';
  };
  const ms = new Map<string, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const { functionName } = byId.get(profile.samples[i]!)!.callFrame;
    if (functionName === '(idle)' || functionName === '(program)') continue;
    const c = category(profile.samples[i]!);
    ms.set(c, (ms.get(c) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
  }
  return ms;
}

async function serverRole(certFile: string, keyFile: string): Promise<void> {
  const cert = await readFile(certFile, 'utf8');
  const key = await readFile(keyFile, 'utf8');
  const { handler, take } = countingEcho();
  const server = createOurServer({ cert, key }, (s) => handler(s as never));
  await listenAndReport(server, take);
}

async function loadRole(port: number, version: string, seconds: number, concurrency: number): Promise<void> {
  const v = version === '1.2' ? 'TLSv1.2' : 'TLSv1.3';
  const ecdhCurve = process.env.BENCH_ECDH_CURVE;
  const options: nodeTls.ConnectionOptions = { port, host: '127.0.0.1', servername: 'localhost', minVersion: v, maxVersion: v, rejectUnauthorized: false, ...(ecdhCurve ? { ecdhCurve } : {}) };
  const payload = Buffer.alloc(32, 0x61);
  const resumed = process.env.BENCH_MODE === 'resumed';
  let completed = 0;
  const deadline = Date.now() + seconds * 1000;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    let session: Buffer | undefined;
    const keep = (s: nodeTls.TLSSocket): void => {
      if (resumed) session = s.getSession() ?? session;
    };
    while (Date.now() < deadline) if ((await echoOnce(session ? { ...options, session } : options, payload, keep)) !== undefined) completed++;
  }));
  process.send!({ completed });
  process.exit(0);
}

async function main(): Promise<void> {
  const [version = '1.3', secondsArg = '10', concurrencyArg = '16', topArg = '30'] = process.argv.slice(2);
  const pin = canPin();
  const { certs, cleanup } = await makeCertificates(['ecdsa-p256']);
  const dir = await mkdtemp(join(tmpdir(), 'hs-profile-'));
  try {
    const c = certs[0]!;
    const server = spawnNode('--cpu-prof', ['--cpu-prof-dir', dir, SCRIPT, '--server', c.cert, c.key], pin ? 1 : undefined);
    const { port } = await nextMessage<{ port: number }>(server);
    const load = spawnNode(SCRIPT, ['--load', String(port), version, secondsArg, concurrencyArg], pin ? 0 : undefined);
    const { completed } = await nextMessage<{ completed: number }>(load);
    send(server, 'stats');
    const stats = await nextMessage<{ handshakes: number; cpuMs: number }>(server);
    const exited = new Promise((res) => server.once('exit', res));
    send(server, 'stop');
    await exited;
    const file = (await readdir(dir)).find((f) => f.endsWith('.cpuprofile'));
    if (!file) throw new Error('the server wrote no profile');
    const profile = JSON.parse(await readFile(join(dir, file), 'utf8')) as Profile;
    const { busyMs, frames } = selfTimes(profile);
    const n = stats.handshakes;
    console.log(`# our server, TLS ${version}${process.env.BENCH_MODE === 'resumed' ? ' resumed' : ''}, ECDSA P-256, ${process.env.BENCH_ECDH_CURVE ?? 'x25519'}: ${n} handshakes (${completed} echoed) in ${secondsArg} s; server CPU ${(stats.cpuMs / n * 1000).toFixed(0)} us/handshake; busy profile samples ${(busyMs / n * 1000).toFixed(0)} us/handshake; node ${process.version}`);
    console.log('| self us/handshake | share of busy | whose code (natives counted for their caller) |');
    console.log('| ---: | ---: | --- |');
    for (const [c, ms] of [...selfTimeSplit(profile)].sort((a, b) => b[1] - a[1])) console.log(`| ${(ms / n * 1000).toFixed(1)} | ${(100 * ms / busyMs).toFixed(1)}% | ${c} |`);
    console.log('');
    console.log('| self us/handshake | share of busy | frame |');
    console.log('| ---: | ---: | --- |');
    for (const f of frames.slice(0, Number(topArg))) {
      console.log(`| ${(f.ms / n * 1000).toFixed(1)} | ${(100 * f.ms / busyMs).toFixed(1)}% | ${f.name.replace(/\|/g, '\\|')} |`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
    await cleanup();
  }
}

const role = process.argv[2];
if (role === '--server') await serverRole(process.argv[3]!, process.argv[4]!);
else if (role === '--load') await loadRole(Number(process.argv[3]), process.argv[4]!, Number(process.argv[5]), Number(process.argv[6]));
else await main();
