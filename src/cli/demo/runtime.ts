// The plumbing of `make demo`: progress lines, a cleanup stack that also runs on Ctrl-C, child
// processes with their logs in files, waiting for HTTP endpoints, and a Secret written to disk the
// way kubelet writes a Secret volume.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { get as httpsGet } from 'node:https';
import { createServer } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export class Progress {
  private readonly t0 = Date.now();
  constructor(private readonly out: NodeJS.WriteStream = process.stdout) {}

  /** Runs one step: a live line with elapsed seconds on a terminal, then ✔/✘ with its duration. */
  async step<T>(title: string, fn: () => Promise<T>, done?: (value: T) => string): Promise<T> {
    const start = Date.now();
    const tty = this.out.isTTY === true;
    const frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
    let i = 0;
    const draw = (): void => {
      this.out.write(`\r\x1b[2K  ${frames[i++ % frames.length] ?? ''} ${title} ${secs(Date.now() - start)}`);
    };
    const timer = tty ? setInterval(draw, 100) : undefined;
    if (tty) draw();
    try {
      const value = await fn();
      this.finish('✔', done ? done(value) : title, Date.now() - start, tty);
      return value;
    } catch (err) {
      this.finish('✘', title, Date.now() - start, tty);
      throw err;
    } finally {
      if (timer) clearInterval(timer);
    }
  }

  line(text: string): void {
    this.out.write(`${text}\n`);
  }

  elapsed(): number {
    return Date.now() - this.t0;
  }

  private finish(mark: string, text: string, ms: number, tty: boolean): void {
    this.out.write(`${tty ? '\r\x1b[2K' : ''}  ${mark} ${text} ${dim(`(${secs(ms)})`, tty)}\n`);
  }
}

const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
const dim = (s: string, tty: boolean): string => (tty ? `\x1b[2m${s}\x1b[0m` : s);

/** Cleanup actions, run once in reverse order: at the end, on an error, or on SIGINT/SIGTERM/SIGHUP. */
export class Cleanup {
  private readonly actions: Array<{ what: string; fn: () => Promise<void> | void }> = [];
  private running: Promise<void> | undefined;

  add(what: string, fn: () => Promise<void> | void): void {
    this.actions.push({ what, fn });
  }

  run(log: (msg: string) => void): Promise<void> {
    this.running ??= (async () => {
      for (const a of this.actions.reverse()) {
        try {
          await a.fn();
        } catch (err) {
          log(`cleanup: ${a.what}: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
    })();
    return this.running;
  }

  /** On a signal: clean up, then exit 128+n. A second signal exits at once. */
  onSignals(log: (msg: string) => void): void {
    const codes = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;
    for (const sig of Object.keys(codes) as Array<keyof typeof codes>) {
      process.once(sig, () => {
        log(`\n${sig}: cleaning up (again to quit at once)`);
        process.once(sig, () => process.exit(codes[sig]));
        void this.run(log).finally(() => process.exit(codes[sig]));
      });
    }
  }
}

export interface Child {
  name: string;
  proc: ChildProcess;
  logFile: string;
  /** SIGTERM, then SIGKILL after graceMs. */
  stop(graceMs?: number): Promise<void>;
  exited(): string | undefined;
}

/** Starts a process with stdout+stderr appended to logFile. */
export function startChild(name: string, cmd: string, args: string[], logFile: string, env: NodeJS.ProcessEnv = process.env): Child {
  const fd = openSync(logFile, 'a');
  // With a parent-death signal (util-linux setpriv), even a demo killed with SIGKILL leaves no process behind.
  const [file, argv] = hasPdeathsig() ? ['setpriv', ['--pdeathsig', 'TERM', '--', cmd, ...args]] : [cmd, args];
  const proc = spawn(file, argv, { stdio: ['ignore', fd, fd], env });
  closeSync(fd);
  let exit: string | undefined;
  const exitedP = new Promise<void>((resolve) => {
    proc.once('exit', (code, signal) => {
      exit = signal ? `signal ${signal}` : `exit code ${code}`;
      resolve();
    });
    proc.once('error', (err) => {
      exit = `could not start: ${err.message}`;
      resolve();
    });
  });
  return {
    name, proc, logFile,
    exited: () => exit,
    async stop(graceMs = 8000) {
      if (exit !== undefined || proc.pid === undefined) return;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
      await exitedP;
      clearTimeout(timer);
    },
  };
}

let pdeathsig: boolean | undefined;
function hasPdeathsig(): boolean {
  if (pdeathsig === undefined) {
    try {
      pdeathsig = execFileSync('setpriv', ['--help'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).includes('--pdeathsig');
    } catch {
      pdeathsig = false;
    }
  }
  return pdeathsig;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion, collecting its output (stdin from `input`). */
export function runCommand(cmd: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const proc = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    proc.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const timer = setTimeout(() => proc.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    proc.once('error', (err) => {
      clearTimeout(timer);
      resolve({ code: null, stdout, stderr: stderr + err.message });
    });
    proc.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    proc.stdin.on('error', () => { /* the tool may not read stdin */ });
    proc.stdin.end(opts.input ?? '');
  });
}

/** A port that was free on 127.0.0.1 a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Polls an HTTP URL until it answers 200; fails early when `child` has exited. */
export async function waitForHttp200(url: string, timeoutMs: number, child?: Child): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child?.exited()) throw new Error(`${child.name} ended (${child.exited()}):\n${tail(child.logFile)}`);
    const status = await new Promise<number>((resolve) => {
      const req = get(url, { timeout: 1000 }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(0));
    });
    if (status === 200) return;
    if (Date.now() > deadline) throw new Error(`${url} did not answer 200 within ${timeoutMs / 1000} s${child ? `\n${tail(child.logFile)}` : ''}`);
    await sleep(100);
  }
}

/** Polls fn until it returns a value; fails after timeoutMs with the last reason. */
export async function waitFor<T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined>, child?: Child): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    if (child?.exited()) throw new Error(`${child.name} ended (${child.exited()}) while waiting for ${what}:\n${tail(child.logFile)}`);
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ''}${child ? `\n${tail(child.logFile)}` : ''}`);
    await sleep(150);
  }
}

export function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).map((l) => `    | ${l}`).join('\n');
  } catch {
    return '    | (no log)';
  }
}

/**
 * Writes files the way kubelet's atomic writer lays out a Secret volume: the data in a
 * timestamped directory `..<ts>`, a `..data` symlink to it, and one symlink per key through
 * `..data`. Writing again swaps `..data` in one rename, as kubelet does on a Secret update.
 */
export function writeKubeletVolume(dir: string, files: Record<string, Buffer>): string {
  mkdirSync(dir, { recursive: true });
  const ts = `..${new Date().toISOString().replace(/[-:]/g, '_').replace('T', '_').replace('Z', '')}.${process.pid}`;
  mkdirSync(join(dir, ts), { mode: 0o755 });
  for (const [name, data] of Object.entries(files)) writeFileSync(join(dir, ts, name), data, { mode: 0o644 });
  symlinkSync(ts, join(dir, '..data_tmp'));
  renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
  for (const name of Object.keys(files)) {
    try {
      symlinkSync(join('..data', name), join(dir, name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  return ts;
}

/** GET over HTTPS without verifying the certificate (the webhook's own, just bootstrapped): the status code, 0 on error. */
export function httpsStatus(url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = httpsGet(url, { rejectUnauthorized: false, timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
  });
}

/** kubectl on PATH, else the one scripts/control-plane/ensure.sh put next to kube-apiserver. */
export function kubectlBinary(): string {
  const dir = process.env['DC_K8S_BIN_DIR'];
  if (dir && existsSync(join(dir, 'kubectl'))) return join(dir, 'kubectl');
  for (const p of (process.env['PATH'] ?? '').split(':')) if (p && existsSync(join(p, 'kubectl'))) return join(p, 'kubectl');
  const cache = join(process.env['XDG_CACHE_HOME'] ?? join(homedir(), '.cache'), 'dc-operator', 'k8s');
  if (existsSync(cache)) {
    for (const v of readdirSync(cache)) if (existsSync(join(cache, v, 'kubectl'))) return join(cache, v, 'kubectl');
  }
  return 'kubectl';
}

export function which(cmd: string): string | undefined {
  for (const p of (process.env['PATH'] ?? '').split(':')) if (p && existsSync(join(p, cmd))) return join(p, cmd);
  return undefined;
}
