/**
 * Without any cluster credentials the controller, the webhook and the demo say which places they
 * looked at and what to set, instead of client-node's fallback to http://localhost:8080.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { findKubeconfig, KubeconfigNotFound, SERVICE_ACCOUNT_TOKEN, type KubeconfigPlaces } from '../../../src/operator/kubeconfig.js';

function places(files: readonly string[], env: Record<string, string> = {}, home: string | undefined = '/home/ada'): KubeconfigPlaces {
  return { env, home, exists: (p) => files.includes(p) };
}

function notFound(explicit: string | undefined, p: KubeconfigPlaces, flag: string | null = '--kubeconfig'): string {
  try {
    findKubeconfig(explicit, p, flag);
  } catch (err) {
    assert.ok(err instanceof KubeconfigNotFound);
    return err.message;
  }
  assert.fail('expected KubeconfigNotFound');
}

void describe('findKubeconfig', () => {
  void it('takes --kubeconfig, then KUBECONFIG, then ~/.kube/config, then the service account, as kubectl does', () => {
    const all = ['/k/flag', '/k/env', '/home/ada/.kube/config', SERVICE_ACCOUNT_TOKEN];
    const env = { KUBECONFIG: '/k/env', KUBERNETES_SERVICE_HOST: '10.0.0.1' };
    assert.deepEqual(findKubeconfig('/k/flag', places(all, env)), { kind: 'file', path: '/k/flag', from: '--kubeconfig' });
    assert.deepEqual(findKubeconfig(undefined, places(all, env)), { kind: 'file', path: '/k/env', from: 'KUBECONFIG' });
    assert.deepEqual(findKubeconfig(undefined, places(all, { KUBERNETES_SERVICE_HOST: '10.0.0.1' })), { kind: 'file', path: '/home/ada/.kube/config', from: '~/.kube/config' });
    assert.deepEqual(findKubeconfig(undefined, places([SERVICE_ACCOUNT_TOKEN], { KUBERNETES_SERVICE_HOST: '10.0.0.1' })), { kind: 'in-cluster' });
  });

  void it('skips files of a KUBECONFIG list that do not exist, and merges the rest', () => {
    assert.deepEqual(findKubeconfig(undefined, places(['/b', '/c'], { KUBECONFIG: '/a:/b:/c' })), { kind: 'KUBECONFIG', paths: ['/b', '/c'] });
  });

  void it('with nothing found, names every place looked at and what to set', () => {
    assert.equal(
      notFound(undefined, places([])),
      'no cluster to connect to: looked at --kubeconfig (not given), KUBECONFIG (not set), /home/ada/.kube/config (no such file), ' +
        'and in-cluster credentials (not in a pod (KUBERNETES_SERVICE_HOST is not set)). ' +
        'Pass --kubeconfig FILE or set KUBECONFIG=FILE, or run in a pod with a service account',
    );
  });

  void it('in a pod without a mounted token, says so', () => {
    assert.match(
      notFound(undefined, places([], { KUBERNETES_SERVICE_HOST: '10.0.0.1' })),
      /KUBERNETES_SERVICE_HOST is set but there is no service account token at \/var\/run\/secrets\/kubernetes\.io\/serviceaccount\/token \(automountServiceAccountToken: false\?\)/,
    );
  });

  void it('for a command without a --kubeconfig flag (the webhook), does not offer one', () => {
    const message = notFound(undefined, places([]), null);
    assert.ok(!message.includes('--kubeconfig'), message);
    assert.match(message, /Set KUBECONFIG=FILE, or run in a pod with a service account$/);
  });

  void it('names a --kubeconfig or KUBECONFIG that points at nothing', () => {
    assert.equal(notFound('/nope', places([])), '--kubeconfig /nope: no such file; give the path of a kubeconfig file');
    assert.equal(
      notFound(undefined, places([], { KUBECONFIG: '/x:/y' })),
      'KUBECONFIG is set to /x:/y, and no file it names exists; set KUBECONFIG to a kubeconfig file, or unset it to use ~/.kube/config',
    );
  });
});

void describe('the commands without a cluster', () => {
  const DC_OPERATOR = join(dirname(fileURLToPath(import.meta.url)), '../../../src/cli/dc-operator.js');
  const home = mkdtempSync(join(tmpdir(), 'dc-nokube-'));
  after(() => rmSync(home, { recursive: true, force: true }));
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'KUBECONFIG' && k !== 'KUBERNETES_SERVICE_HOST'));

  for (const args of [['controller', '--metrics-port', '0'], ['webhook', '--operator-namespace', 'dc-operator', '--port', '0']]) {
    void it(`dc-operator ${args[0]} fails at once, saying where it looked`, () => {
      const r = spawnSync(process.execPath, [DC_OPERATOR, ...args], { encoding: 'utf8', env: { ...env, HOME: home }, timeout: 30_000 });
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`no cluster to connect to: looked at .*KUBECONFIG \\(not set\\), ${home}/\\.kube/config \\(no such file\\), and in-cluster credentials`));
      assert.equal(r.stderr.includes('--kubeconfig'), args[0] === 'controller', 'only the controller has a --kubeconfig flag to offer');
    });
  }
});
