// What every e2e test uses: the real node that scripts/e2e/cluster.sh started, reached from inside
// its network namespace (this test process runs there: cluster.sh starts it with nsenter --net).
// assertInNodeNetwork() runs first in each file: outside that namespace the test fails instead of
// sending anything to the host's network.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { KubeConfig } from '@kubernetes/client-node';
import { assertInNodeNetwork, realNode } from '../../../src/cli/demo/real-node.js';
import { repoRoot } from '../../support/control-plane.js';

export { repoRoot };

/** The node's state directory (kubeconfig, logs, PKI), the binary directory and the image. */
export const e2e = {
  get root(): string { return realNode().root; },
  get bin(): string { return realNode().bin; },
  get image(): string { return realNode().image; },
  get kubeconfig(): string { return realNode().kubeconfig; },
};

export { assertInNodeNetwork };

export interface CommandResult { code: number; stdout: string; stderr: string }

/** Runs a command (in this network namespace), bounded in time; never throws on a non-zero exit. */
export function run(cmd: string, args: readonly string[], opts: { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<CommandResult> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: opts.timeoutMs ?? 60_000, maxBuffer: 16 << 20, env: { ...process.env, ...opts.env } },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) + (err && code === 1 && !stderr ? err.message : '') });
      });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Runs a command and throws with its output when it fails. */
export async function must(cmd: string, args: readonly string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

export const kubectl = (args: readonly string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<string> =>
  must(join(e2e.bin, 'kubectl'), args, opts);
export const helm = (args: readonly string[], opts: { timeoutMs?: number } = {}): Promise<string> => {
  // helm's caches and config in the node's state directory, not in the user's home.
  const home = join(e2e.root, 'helm');
  mkdirSync(home, { recursive: true });
  return run(join(e2e.bin, 'helm'), args, { ...opts, env: { HELM_CACHE_HOME: join(home, 'cache'), HELM_CONFIG_HOME: join(home, 'config'), HELM_DATA_HOME: join(home, 'data') } })
    .then((r) => {
      if (r.code !== 0) throw new Error(`helm ${args.join(' ')} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
      return r.stdout;
    });
};

/** A @kubernetes/client-node KubeConfig for the node's apiserver (cluster admin). */
export function kubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(e2e.kubeconfig);
  return kc;
}

/** Polls fn until it returns a value other than undefined, or throws after timeoutMs with the last error. */
export async function waitFor<T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined>, intervalMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await sleep(intervalMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last instanceof Error ? last.message : String(last)}` : ''}`);
}

/** Restarts kube-apiserver (node-inner.sh does it on request) and waits until it answers again. */
export async function restartApiserver(): Promise<void> {
  const flag = join(e2e.root, 'restart-apiserver');
  writeFileSync(flag, '');
  await waitFor('the apiserver restart to begin', 30_000, async () => (existsSync(flag) ? undefined : true));
  await waitFor('the restarted apiserver to be ready', 60_000, async () => {
    const r = await run(join(e2e.bin, 'kubectl'), ['get', '--raw', '/readyz'], { timeoutMs: 5_000 });
    return r.code === 0 && r.stdout.trim() === 'ok' ? true : undefined;
  });
}

/** A fresh directory under the node's state directory (removed with it at teardown). */
export function scratchDir(prefix: string): string {
  const dir = join(e2e.root, 'tests');
  mkdirSync(dir, { recursive: true });
  return mkdtempSync(join(dir, `${prefix}-`));
}
