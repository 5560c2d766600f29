#!/usr/bin/env node
// Runs node:test over the compiled test files of one suite (unit | integration | interop).
// `node --test` expands the glob itself.
//
// For the integration suite it first starts ONE real control plane (etcd + kube-apiserver, see
// test/support/control-plane.ts) and passes its kubeconfig to every test file through
// DC_TEST_KUBECONFIG; it stops it afterwards, also when the run fails or is interrupted
// (SIGINT/SIGTERM/SIGHUP). The processes also carry a parent-death signal, so even a SIGKILLed
// runner leaves no orphans. With DC_TEST_KUBECONFIG already set, that cluster is used instead.
//
// Every run is bounded, so a hang fails with a message instead of stalling CI:
// - each test and hook: --test-timeout (TIME_BOUNDS below; a test's own `timeout` option wins,
//   a later --test-timeout among the extra flags too);
// - each test file's process: DC_TEST_FILE_TIMEOUT_MS, enforced by test/support/file-watchdog.ts
//   loaded with --import. A process that something keeps alive after its tests (a watch, a server,
//   a child process) is not ended by --test-timeout; node --test would wait for it forever.
// The bounds are several times the longest test and file of a normal run (DC_TEST_FILE_TIMES=1
// prints each file's time); see TIME_BOUNDS. DC_TEST_FILE_TIMEOUT_MS set by the caller wins
// (0: no file limit).
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { setTimeout } from 'node:timers';

const suite = process.argv[2];
if (!suite) {
  console.error('usage: run-tests.mjs <unit|integration|interop> [extra node --test flags]');
  process.exit(2);
}
const root = join('dist', 'test', suite);
if (!existsSync(root)) {
  console.error(`no test files under ${root}: did the build run?`);
  process.exit(1);
}
const files = [`${root}/**/*.test.js`];
const extra = process.argv.slice(3);

/**
 * Per suite: the default timeout of each test and hook (--test-timeout; a describe() as a whole is
 * not bounded by it, its tests and hooks are), and the limit of one file's process (ms).
 * Measured 2026-12-05 on the shared 2-core machine (load 4-8), DC_TEST_FILE_TIMES=1:
 *   unit         longest test   9 s, longest file  32 s (1264 tests, 228 s)
 *   interop      longest test   2 s, longest file   5 s (warm Go cache)
 *   integration  longest test  19 s, longest file  24 s (141 tests, 223 s)
 * 120 s per test is 6x the longest; interop allows 660 s because its `before` hooks build the Go
 * peers on a cold cache (goProgram's own limit is 600 s, so that reports itself first). 600 s per
 * file is 19x the longest and above every test's own `timeout` option (at most 300 s), so a test
 * that times out says so itself before the watchdog ends its file.
 */
const TIME_BOUNDS = {
  unit: { test: 120_000, file: 600_000 },
  interop: { test: 660_000, file: 900_000 },
  integration: { test: 120_000, file: 600_000 },
};
const bounds = TIME_BOUNDS[suite] ?? TIME_BOUNDS.integration;
process.env.DC_TEST_FILE_TIMEOUT_MS ??= String(bounds.file);

const SIGNALS = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1 };
let controlPlane; // { state, stop }
let child;
let interrupted;
let starting = false;

async function startControlPlane() {
  const cp = await import(pathToFileURL(resolve('dist/test/support/control-plane.js')).href);
  const devDir = resolve('.dev');
  for (const dir of await cp.reapStaleControlPlanes(devDir)) console.error(`[control-plane] removed leftovers of a dead run: ${dir}`);
  const say = (m) => process.stderr.write(`[control-plane] ${m}\n`);
  const binDir = cp.ensureBinaries();
  process.env.DC_K8S_BIN_DIR = binDir; // tests find helm/kubectl without asking ensure.sh again
  const state = await cp.startControlPlane({
    binDir,
    stateDir: join(devDir, `test-control-plane-${process.pid}`),
    logDir: join(devDir, 'logs', 'test-run'),
    dieWithParent: true,
    log: say,
  });
  controlPlane = {
    state,
    stop: async () => {
      await cp.stopControlPlane(state);
      say('stopped');
    },
  };
  // An 'exit' handler cannot wait: kill hard if we get there without a graceful stop.
  process.once('exit', () => { if (controlPlane) cp.killControlPlaneSync(controlPlane.state); });
}

async function stopControlPlane() {
  const cp = controlPlane;
  controlPlane = undefined;
  if (cp) await cp.stop();
}

for (const sig of Object.keys(SIGNALS)) {
  process.on(sig, () => {
    if (interrupted) {
      // Second signal: leave now; the control plane's parent-death signal takes it down with us.
      process.exit(128 + SIGNALS[sig]);
    }
    interrupted = sig;
    console.error(`\n[run-tests] ${sig}: stopping tests and control plane`);
    if (child && child.exitCode === null) {
      child.kill(sig);
      // A test runner that ignores the signal gets SIGKILL after 10 s.
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      t.unref();
    } else if (!starting) {
      void stopControlPlane().finally(() => process.exit(128 + SIGNALS[sig]));
    }
    // While the control plane is starting, the main flow sees `interrupted` and stops it.
  });
}

let status = 1;
try {
  if (suite === 'integration' && !process.env.DC_TEST_KUBECONFIG) {
    starting = true;
    try {
      await startControlPlane();
    } finally {
      starting = false;
    }
    process.env.DC_TEST_KUBECONFIG = controlPlane.state.kubeconfigPath;
  }
  const env = { ...process.env };
  if (!interrupted) {
    const watchdog = resolve('dist/test/support/file-watchdog.js');
    const argv = [process.execPath, '--enable-source-maps', '--import', pathToFileURL(watchdog).href, '--test', '--test-reporter=spec', `--test-timeout=${bounds.test}`, ...extra, ...files];
    // The runner gets SIGTERM if we die without cleaning up (even by SIGKILL): no orphaned tests.
    const setpriv = spawnSync('setpriv', ['--help'], { encoding: 'utf8' });
    if (setpriv.status === 0 && setpriv.stdout.includes('--pdeathsig')) argv.unshift('setpriv', '--pdeathsig', 'TERM', '--');
    child = spawn(argv[0], argv.slice(1), { stdio: 'inherit', env });
    status = await new Promise((res) => {
      child.on('exit', (code, signal) => res(code ?? 128 + (SIGNALS[signal] ?? 9)));
      child.on('error', (err) => { console.error(err); res(1); });
    });
  }
} catch (err) {
  console.error(err instanceof Error ? err.message : err);
  status = 1;
} finally {
  await stopControlPlane();
}
process.exit(interrupted ? 128 + SIGNALS[interrupted] : status);
