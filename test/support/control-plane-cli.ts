// `make control-plane-up` / `make control-plane-down` (through scripts/control-plane/{up,down}.sh):
//   node dist/test/support/control-plane-cli.js up     start etcd + kube-apiserver in the background
//   node dist/test/support/control-plane-cli.js down   stop them and remove their state
//   node dist/test/support/control-plane-cli.js status print the state, exit 1 when not running
// State lives in .dev/control-plane/, logs in .dev/logs/, the kubeconfig in .dev/kubeconfig.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  ensureBinaries, isRunning, kubectlPath, readState, repoRoot, startControlPlane, stopControlPlane,
} from './control-plane.js';

const devDir = join(repoRoot, '.dev');
const stateDir = join(devDir, 'control-plane');
const logDir = join(devDir, 'logs');
const kubeconfigPath = join(devDir, 'kubeconfig');
const say = (msg: string): void => { process.stderr.write(`[control-plane] ${msg}\n`); };

async function up(): Promise<void> {
  const existing = readState(stateDir);
  if (existing && isRunning(existing)) {
    say(`already running at ${existing.server} (kubeconfig ${existing.kubeconfigPath})`);
    return;
  }
  if (existing) await stopControlPlane(existing); // leftovers of a crashed run
  const binDir = ensureBinaries();
  const state = await startControlPlane({ binDir, stateDir, logDir, kubeconfigPath, log: say });
  say(`etcd pid ${state.etcd.pid}, kube-apiserver pid ${state.apiserver.pid}, logs in ${logDir}`);
  say(`try: ${kubectlPath(binDir)} --kubeconfig ${kubeconfigPath} get ns`);
}

async function down(): Promise<void> {
  const state = readState(stateDir);
  if (!state) {
    say('not running');
  } else {
    await stopControlPlane(state);
    say(`stopped etcd (pid ${state.etcd.pid}) and kube-apiserver (pid ${state.apiserver.pid})`);
  }
  rmSync(stateDir, { recursive: true, force: true });
  rmSync(kubeconfigPath, { force: true });
}

function status(): void {
  const state = readState(stateDir);
  if (state && isRunning(state)) {
    process.stdout.write(JSON.stringify(state, null, 2) + '\n');
    return;
  }
  say('not running');
  process.exitCode = 1;
}

const cmd = process.argv[2];
try {
  if (cmd === 'up') await up();
  else if (cmd === 'down') await down();
  else if (cmd === 'status') status();
  else {
    process.stderr.write('usage: control-plane-cli.js up|down|status\n');
    process.exitCode = 2;
  }
} catch (err) {
  say(err instanceof Error ? err.message : String(err));
  process.exitCode = 1;
}
