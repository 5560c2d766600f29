/** Shared pieces of the keyless benchmarks: the real key server in its own process, a delay proxy. */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KeylessPki } from '../test/unit/keyless/pki.js';

/** Starts `dc-operator keyserver` on a free loopback port, in its own process (its own core). */
export async function startKeyServerProcess(
  pki: KeylessPki,
  workers = 0,
  /** The CLI entry point: this build's by default, another build's to compare with. */
  entry = fileURLToPath(new URL('../src/cli/dc-operator.js', import.meta.url)),
): Promise<{ child: ChildProcess; port: number; stop(): Promise<void> }> {
  const child = spawn(
    process.execPath,
    [entry, 'keyserver', '--keys', pki.keysDir, '--ca', join(pki.dir, 'ca.crt'), '--cert', join(pki.dir, 'server.crt'),
      '--key', join(pki.dir, 'server.pem'), '--port', '0', '--address', '127.0.0.1', '--workers', String(workers)],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  const port = await new Promise<number>((resolve, reject) => {
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (c: string) => {
      log += c;
      const line = log.split('\n').find((l) => l.includes('key server listening'));
      if (line) resolve((JSON.parse(line) as { port: number }).port);
    });
    child.once('exit', (code) => reject(new Error(`keyserver exited ${code}: ${log}`)));
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    child,
    port,
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/**
 * A TCP proxy on loopback that holds every chunk for `oneWayMs` in each direction, so a round
 * trip through it takes 2 × oneWayMs longer: an in-process stand-in for `tc netem delay`.
 */
export async function startDelayProxy(targetPort: number, oneWayMs: number): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const relay = (from: Socket, to: Socket): void => {
    from.on('data', (chunk: Buffer) => {
      setTimeout(() => {
        if (!to.destroyed) to.write(chunk);
      }, oneWayMs);
    });
    from.on('end', () => setTimeout(() => to.end(), oneWayMs));
    from.on('error', () => to.destroy());
    from.on('close', () => setTimeout(() => to.destroy(), oneWayMs));
  };
  const server: Server = createServer((downstream) => {
    downstream.setNoDelay(true);
    const upstream = createConnection({ host: '127.0.0.1', port: targetPort });
    upstream.setNoDelay(true);
    sockets.add(downstream).add(upstream);
    relay(downstream, upstream);
    relay(upstream, downstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

export const quantile = (sorted: readonly number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;

export const fmt = (n: number, digits = 0): string =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

const CLK_TCK = 100; // Linux USER_HZ

/** user + system CPU seconds of another process so far, from /proc (10 ms resolution); `statFile` for one of its threads. */
export function cpuSeconds(pid: number, statFile = `/proc/${pid}/stat`): number {
  const stat = readFileSync(statFile, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // utime, stime
}
