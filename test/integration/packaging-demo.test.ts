/**
 * `make demo` end to end against the test control plane (as `--cluster current`): it must exit 0,
 * print the handshake lines that prove a delegated credential was served, and leave nothing behind;
 * and Ctrl-C half-way must clean up as well.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { AdmissionregistrationV1Api, CoreV1Api } from '@kubernetes/client-node';
import { repoRoot } from '../support/control-plane.js';
import { testKubeConfig, testKubeconfigPath } from '../support/cluster.js';

const DEMO = join(repoRoot, 'dist', 'src', 'cli', 'demo.js');

interface DemoRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the demo; when `interruptAfter` matches its output, sends SIGINT once. */
async function runDemo(interruptAfter?: RegExp): Promise<DemoRun> {
  const kubeconfig = await testKubeconfigPath();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [DEMO, '--cluster', 'current'], { cwd: repoRoot, env: { ...process.env, KUBECONFIG: kubeconfig } });
    let stdout = '';
    let stderr = '';
    let interrupted = false;
    const timer = setTimeout(() => child.kill('SIGKILL'), 170_000);
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      if (interruptAfter && !interrupted && interruptAfter.test(stdout)) {
        interrupted = true;
        child.kill('SIGINT');
      }
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** The demo's own objects still present: MutatingWebhookConfigurations and live (non-Terminating) namespaces. */
async function demoLeftovers(): Promise<string[]> {
  const kc = await testKubeConfig();
  const mwcs = await kc.makeApiClient(AdmissionregistrationV1Api).listMutatingWebhookConfiguration();
  const namespaces = await kc.makeApiClient(CoreV1Api).listNamespace({ labelSelector: 'dc-operator.io/demo' });
  return [
    ...mwcs.items.map((m) => m.metadata?.name ?? '').filter((n) => n.startsWith('dc-demo-')).map((n) => `mutatingwebhookconfiguration/${n}`),
    ...namespaces.items.filter((n) => n.status?.phase !== 'Terminating' && !n.metadata?.deletionTimestamp).map((n) => `namespace/${n.metadata?.name ?? ''}`),
  ];
}

/** PIDs of processes still running the demo's children (their command lines name the demo's work directory or ports). */
function childPidsOf(stdout: string): number[] {
  return [...stdout.matchAll(/pid (\d+)/g)].map((m) => Number(m[1])).filter((pid) => existsSync(`/proc/${pid}`));
}

void describe('make demo', () => {
  before(async () => {
    await testKubeconfigPath();
  });

  void it('runs end to end on the current cluster: exit 0, a delegated credential verified by our client (and NSS when installed), curl served through the key server, nothing left behind', { timeout: 180_000 }, async () => {
    const t0 = Date.now();
    const r = await runDemo();
    const seconds = (Date.now() - t0) / 1000;
    assert.equal(r.code, 0, `demo failed:\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /DelegatedCredential \S+\/web-dc Ready: ecdsa_secp256r1_sha256, ed25519/);
    assert.match(r.stdout, /webhook injected dc-operator-sidecar/);
    assert.match(r.stdout, /dcctl probe: delegated credential: yes, verified/);
    if (existsSync('/usr/bin/tstclnt')) assert.match(r.stdout, /NSS tstclnt: "Received a Delegated Credential"; the app answered "hello from the app behind dc-operator/);
    assert.match(r.stdout, /key server \(pid \d+, 127\.0\.0\.1:\d+\): serving with the certificate the operator issued/);
    // A client without DC support is served through the key server: the sidecar holds no certificate key.
    assert.match(r.stdout, /✔ curl \(no DC support\): 200 from the app, certificate key via keyless pull/);
    if (existsSync('/usr/bin/tstclnt')) assert.match(r.stdout, /NSS tstclnt: [^\n]*\n\s*✔ curl \(no DC support\)/, 'the curl line right after the NSS line');
    assert.match(r.stdout, /Done in [0-9.]+ s/);
    assert.deepEqual(await demoLeftovers(), []);
    assert.deepEqual(childPidsOf(r.stdout), [], 'operator, webhook and key server processes stopped');
    assert.ok(seconds < 120, `took ${seconds} s`);
  });

  void it('cleans up after Ctrl-C half-way: exit 130, processes stopped, webhook configuration and namespaces deleted', { timeout: 180_000 }, async () => {
    const r = await runDemo(/webhook \(pid \d+, https :\d+\) running/);
    assert.equal(r.code, 130, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, /SIGINT: cleaning up/);
    assert.doesNotMatch(r.stdout, /Done in/);
    assert.deepEqual(await demoLeftovers(), []);
    assert.deepEqual(childPidsOf(r.stdout), []);
  });
});
