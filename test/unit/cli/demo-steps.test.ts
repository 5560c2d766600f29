/**
 * `make demo` is a list of step modules (src/cli/demo/steps/NNN-name.ts) run in the order of their
 * numbers; adding a step is adding a file. The demo itself runs in
 * test/integration/packaging-demo.test.ts; this checks the loading rules.
 */
import assert from 'node:assert/strict';
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadSteps, need, stepsFor, STEP_FILE, type DemoContext } from '../../../src/cli/demo/step.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');

void describe('demo steps', () => {
  void it('are the step modules, in the order of their numbers, each with a title, run and done', async () => {
    const files = readdirSync(join(repo, 'src', 'cli', 'demo', 'steps')).filter((f) => STEP_FILE.test(f)).sort();
    assert.deepEqual(files.slice(0, 2), ['010-cluster.ts', '020-crds.ts']);
    assert.ok(files.includes('110-nss-tstclnt.ts'), 'the NSS step is found by its name');
    assert.equal(new Set(files.map((f) => f.slice(0, 3))).size, files.length, 'no two steps share a number');
    const steps = await loadSteps(repo);
    assert.equal(steps.length, files.length);
    const ctx = { mode: 'local' } as DemoContext;
    assert.equal(steps[0]!.title(ctx), 'starting etcd + kube-apiserver');
    assert.equal(steps.at(-2)!.title(ctx), "NSS tstclnt -B (Firefox's TLS library)");
    assert.equal(steps.at(-1)!.title(ctx), 'curl (no DC support)', 'a client without DC support comes after the NSS line');
    for (const s of steps) assert.equal(typeof s.run, 'function');
  });

  void it('each mode runs its own steps: the real node installs the chart and connects to a pod; local runs processes and a simulated volume', async () => {
    const all = await loadSteps(repo);
    const titles = (mode: DemoContext['mode']): string[] => stepsFor(all, mode).map((s) => s.title({ mode } as DemoContext));
    assert.deepEqual(titles('node'), [
      'connecting to the real node', 'helm install charts/dc-operator (the image built here)', 'creating a dev CA and a certificate with DelegationUsage',
      'kubectl apply: a DelegatedCredential and an annotated Deployment', 'waiting for the pod with the injected sidecar',
      'dcctl probe (our TLS 1.3 client)', "NSS tstclnt -B (Firefox's TLS library)", 'curl (no DC support)',
    ]);
    const local = titles('local');
    assert.ok(local.includes('writing the issued Secret as a kubelet volume') && local.includes('starting the sidecar in front of the app'), local.join(', '));
    assert.ok(!local.some((t) => t.startsWith('helm install') || t.startsWith('kubectl apply')), local.join(', '));
    assert.deepEqual(titles('current').slice(1), local.slice(1), 'current differs from local only in how it connects');
  });

  void it('does not run a compiled step whose source is gone (a renamed or deleted step left in dist/)', async () => {
    const stale = join(repo, 'dist', 'src', 'cli', 'demo', 'steps', '999-stale.js');
    writeFileSync(stale, "export const step = { title: () => 'stale', run: async () => {}, done: () => 'stale' };\n");
    try {
      const titles = (await loadSteps(repo)).map((s) => s.title({ mode: 'local' } as DemoContext));
      assert.ok(!titles.includes('stale'), titles.join(', '));
    } finally {
      rmSync(stale, { force: true });
    }
  });

  void it('a step that runs before the one that sets what it needs fails saying what is missing', () => {
    assert.throws(() => need({ state: {} } as DemoContext, 'target'), /demo step order: nothing has set target yet/);
  });
});
