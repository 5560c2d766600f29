#!/usr/bin/env node
/**
 * `make demo`: dc-operator end to end on one machine.
 *
 * On the real node (--cluster node: `make demo` where the machine allows it, run by
 * scripts/e2e/demo.sh inside scripts/e2e/cluster.sh's network namespace):
 *   kubelet + containerd + control plane → helm install with the image built here → dev CA and a
 *   certificate with DelegationUsage → kubectl apply of a DelegatedCredential and an annotated
 *   Deployment → the pod with the injected native sidecar → DC handshakes through the pod
 *   (dcctl probe, NSS tstclnt -B) → curl through the pod, served through the key server
 *
 * Without it (--cluster local, in well under a minute when warm):
 *   local control plane (or --cluster current) → CRDs → operator + webhook (child processes)
 *   → the key server (`keyserver --from-cluster`, on the operator's --keyserver-address)
 *   → dev CA and a certificate with DelegationUsage (dcctl) → DelegatedCredential → Ready
 *   → the issued Secret written as a kubelet Secret volume → webhook injection (dry run)
 *   → sidecar in front of a small HTTP app → DC handshakes (dcctl probe, NSS tstclnt -B)
 *   → curl (no DC support), served through the key server
 *
 * One module per step in demo/steps/ (010-cluster.ts … 115-curl-keyless.ts); this file parses
 * the flags, builds the context the steps share, runs them, and cleans up.
 *
 * Everything it creates is removed on exit, on an error and on Ctrl-C: processes, namespaces,
 * the MutatingWebhookConfiguration, temp files, and the control plane when it started it. With
 * --cluster current the CRDs it installed stay (they may have been there before).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineCommand } from './framework/command.js';
import { EXIT_USAGE, UsageError } from './framework/errors.js';
import { oneOf } from './framework/flags.js';
import { isEntryPoint, processContext, unsupportedRuntime } from './framework/main.js';
import { Cleanup, Progress, runCommand } from './demo/runtime.js';
import { DEMO_MODES, loadSteps, stepsFor, type DemoContext, type DemoMode } from './demo/step.js';

/** The first line says which mode runs, so nobody mistakes the simulated kubelet for the real one. */
const MODE_LINES: Readonly<Record<DemoMode, string>> = {
  node: 'real node: kubelet, containerd and pods from the image built here, in namespaces of their own',
  local: 'local control plane only (no kubelet: the pod, its Secret volume and the injection are simulated)',
  current: 'current kubeconfig (the operator, webhook, key server and sidecar run as local processes)',
};

/** The demo's one flag, parsed as every other command's (cli/framework): --help, errors, exit 2. */
const demoCommand = defineCommand({
  path: [],
  summary: 'dc-operator end to end on one machine',
  description: `
Runs dc-operator end to end and removes everything it created on exit, on an error and on
Ctrl-C. \`make demo\` picks --cluster node where the machine allows the real node, else local.

  local    start a local etcd + kube-apiserver (scripts/control-plane/up.sh), stop it at the end;
           an already running one (make control-plane-up) is reused and left running
  current  use the current kubeconfig ($KUBECONFIG or ~/.kube/config) instead
  node     the real node (kubelet, containerd) of scripts/e2e/cluster.sh: run inside it, as
           \`make demo\` does through scripts/e2e/demo.sh where the machine allows it`,
  options: {
    cluster: { type: 'string', value: 'MODE', default: 'local', description: 'where it runs: local, current or node (see above)' },
  },
  examples: ['node dist/src/cli/demo.js', 'node dist/src/cli/demo.js --cluster current'],
  // An empty value is `make demo CLUSTER=` through an older Makefile: the default.
  validate: (values): DemoMode => (values.cluster === '' ? 'local' : oneOf('--cluster', values.cluster, DEMO_MODES, 'mode')),
  run: (mode) => demo(mode),
});

/** `node dist/src/cli/demo.js [--cluster local|current|node]`; returns the exit code. */
export async function runDemo(argv: readonly string[]): Promise<number> {
  const ctx = { ...processContext(), commandName: 'demo' };
  try {
    return await demoCommand.execute(argv, ctx);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    ctx.stderr(`demo: ${e.message} (run 'node dist/src/cli/demo.js --help')\n`);
    return EXIT_USAGE;
  }
}

/** The repository root: where scripts/control-plane/up.sh is, above dist/src/cli/. */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'scripts', 'control-plane', 'up.sh'))) return dir;
    dir = dirname(dir);
  }
  throw new Error('cannot find the repository root (scripts/control-plane/up.sh); run the demo from a checkout');
}

/**
 * The steps are the modules in src/cli/demo/steps/, run in the order of their numbers
 * (demo/step.ts says what a step is). To add one, add a file there, e.g.
 * 115-curl-through-keyless.ts exporting `step = defineStep({ title, run, done })`.
 */
async function demo(mode: DemoMode): Promise<number> {
  const root = repoRoot();
  const steps = stepsFor(await loadSteps(root), mode);
  const node = process.execPath;
  const dcctl = join(root, 'dist', 'src', 'cli', 'dcctl.js');
  const logDir = join(root, '.dev', 'logs', 'demo');
  rmSync(logDir, { recursive: true, force: true });
  mkdirSync(logDir, { recursive: true });
  const work = mkdtempSync(join(tmpdir(), 'dc-demo-'));
  const id = randomBytes(3).toString('hex');
  // On the real node the clients reach the pod by its IP and ask for this name (SNI, verification).
  const serverName = mode === 'node' ? 'web.demo.test' : 'localhost';

  // Output piped into `head` that exits early must not crash the demo before it cleans up.
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => { /* reader gone: keep going, quietly */ });
  const p = new Progress();
  const cleanup = new Cleanup();
  const say = (m: string): void => { process.stderr.write(`${m}\n`); };
  cleanup.onSignals(say);
  cleanup.add('remove the work directory', () => rmSync(work, { recursive: true, force: true }));

  // dcctl needs no cluster: run it alongside the control plane's start-up.
  const caDir = join(work, 'ca');
  const certDir = join(work, 'cert');
  const pki = settled((async () => {
    for (const args of [['ca', 'create', '--out', caDir, '--cn', `dc-operator demo CA ${id}`], ['cert', 'create', '--ca-dir', caDir, '--dns', 'localhost', ...(serverName === 'localhost' ? [] : ['--dns', serverName]), '--ip', '127.0.0.1', '--out', certDir]]) {
      const r = await runCommand(node, [dcctl, ...args]);
      if (r.code !== 0) throw new Error(`dcctl ${args.slice(0, 2).join(' ')} failed: ${r.stderr}`);
    }
  })());

  const ctx: DemoContext = {
    mode, serverName, root, node, dcctl, logDir, work, id, caDir, certDir, cleanup,
    dcOperator: join(root, 'dist', 'src', 'cli', 'dc-operator.js'),
    appNs: `dc-demo-${id}`,
    systemNs: `dc-demo-system-${id}`,
    webhookConfigName: `dc-demo-${id}`,
    pki: pki.promise,
    procs: [],
    state: {},
  };

  p.line(`dc-operator demo — ${MODE_LINES[mode]}; Node ${process.version}; logs in ${logDir}`);
  try {
    for (const step of steps) {
      const skipped = step.skip?.(ctx);
      if (skipped !== undefined) p.line(skipped);
      else await p.step(step.title(ctx), () => step.run(ctx), (value) => step.done(value, ctx));
    }
    p.line(`\nDone in ${(p.elapsed() / 1000).toFixed(1)} s: ${mode === 'node'
      ? 'the chart installed with the image built here, a DelegatedCredential issued, the sidecar injected into a real pod and served the credential kubelet mounted, accepted by DC-capable TLS clients; curl served through the key server.'
      : 'a DelegatedCredential issued by the operator, served by the sidecar, accepted by DC-capable TLS clients; clients without DC support served through the key server.'}`);
    p.line('Try it on a cluster: helm install dc-operator charts/dc-operator -n dc-operator --create-namespace, then manifests/examples/.');
    await p.step('cleaning up', () => cleanup.run(say));
    return 0;
  } catch (err) {
    p.line(`\ndemo failed: ${err instanceof Error ? err.message : String(err)}`);
    p.line(`logs: ${logDir}`);
    await p.step('cleaning up', () => cleanup.run(say));
    return 1;
  }
}

/** A promise that is awaited later: its rejection is held (not unhandled) until then. */
function settled<T>(promise: Promise<T>): { promise: Promise<T> } {
  promise.catch(() => { /* observed when awaited */ });
  return { promise };
}

if (isEntryPoint(import.meta.url)) {
  // Exit explicitly: the Kubernetes client's keep-alive sockets would hold the process open.
  process.exit(unsupportedRuntime('demo') ?? (await runDemo(process.argv.slice(2))));
}
