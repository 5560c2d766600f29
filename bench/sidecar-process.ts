/**
 * The real sidecar and `dcctl serve` as processes of a benchmark (bench/sidecar-fallback.ts,
 * bench/sidecar-conn-overhead.ts): started from a build's CLI, pinned to a core, their port read
 * from what they print once they listen.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** `argv` as a process pinned to `cpu` (taskset execs it: the PID is the program's own). */
export function spawnPinned(argv: readonly string[], cpu: number | undefined): ChildProcess {
  const cmd = cpu !== undefined ? ['taskset', '-c', String(cpu), ...argv] : [...argv];
  return spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Resolves with the first match of `pattern` in the child's stdout or stderr. */
export function waitForOutput(child: ChildProcess, pattern: RegExp, what: string): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${what} did not start within 30 s:\n${out.slice(-3000)}`)), 30_000);
    const onData = (c: Buffer): void => {
      out += c.toString('utf8');
      const m = pattern.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with ${code}:\n${out.slice(-3000)}`));
    });
  });
}

export interface SidecarProcess {
  readonly child: ChildProcess;
  readonly port: number;
  readonly metricsPort: number;
}

/**
 * `dc-operator sidecar` of the CLI in `cli` (a build's dist/src/cli) serving the bundle in
 * `bundleDir` and proxying to 127.0.0.1:`upstreamPort`; `node` is the node command line before the script.
 */
export async function startSidecarProcess(node: readonly string[], cli: string, bundleDir: string, upstreamPort: number, engine: 'node' | 'ours', cpu: number | undefined): Promise<SidecarProcess> {
  const child = spawnPinned(
    [...node, join(cli, 'dc-operator.js'), 'sidecar', '--dc-dir', bundleDir, '--address', '127.0.0.1', '--port', '0', '--upstream', String(upstreamPort),
      '--metrics-port', '0', '--metrics-address', '127.0.0.1', '--report-interval', '0', '--certificate-engine', engine],
    cpu,
  );
  const m = await waitForOutput(child, /\{[^\n]*"sidecar listening"[^\n]*\}/, `sidecar (${bundleDir})`);
  const line = JSON.parse(m[0]) as { listen: string; metricsPort: number };
  return { child, port: Number(line.listen.split(':').pop()), metricsPort: line.metricsPort };
}

/** `dcctl serve` (our bare TLS stack, answering `GET /`) of the CLI in `cli`. */
export async function startServeProcess(node: readonly string[], cli: string, args: readonly string[], cpu: number | undefined): Promise<{ child: ChildProcess; port: number }> {
  const child = spawnPinned([...node, join(cli, 'dcctl.js'), 'serve', ...args, '--port', '0', '--quiet'], cpu);
  return { child, port: Number((await waitForOutput(child, /listening on https:\/\/[^:]+:(\d+)/, 'dcctl serve'))[1]) };
}

const CLK_TCK = 100;

/** A process's CPU so far, all its threads: total from the scheduler (ns), and user/system (clock ticks, 10 ms). */
export interface ProcessCpu {
  readonly totalNs: number;
  /** The main thread's part of totalNs (the JavaScript thread; the rest is V8's and libuv's helpers). */
  readonly mainNs: number;
  readonly userUs: number;
  readonly systemUs: number;
}

/**
 * Reads `/proc/PID/task/* /schedstat` (each thread's run time in ns: precise) and
 * `/proc/PID/stat` (the process's user and system time: clock ticks, split by where the
 * scheduler's ticks found it, so only a sample; many slices make it a measurement).
 */
export function processCpu(pid: number): ProcessCpu {
  let totalNs = 0;
  let mainNs = 0;
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    try {
      const ns = Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, 'utf8').split(' ')[0]);
      totalNs += ns;
      if (task === String(pid)) mainNs = ns;
    } catch {
      // the thread exited between the listing and the read: its time is in no later reading either
    }
  }
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { totalNs, mainNs, userUs: (Number(fields[11]) * 1e6) / CLK_TCK, systemUs: (Number(fields[12]) * 1e6) / CLK_TCK };
}
