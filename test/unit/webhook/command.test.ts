import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadYaml, type V1MutatingWebhookConfiguration } from '@kubernetes/client-node';
import { main } from '../../../src/cli/dc-operator.js';
import { resourceListFlag, sidecarResources } from '../../../src/cli/commands/webhook.js';

async function run(argv: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, { stdout: (t) => void (out += t), stderr: (t) => void (err += t), cwd: '/', env, now: () => new Date(0) });
  return { code, out, err };
}

void test('dc-operator webhook --print-configuration renders the configuration for the Service in the operator namespace', async () => {
  const { code, out } = await run(['webhook', '--print-configuration', '--require-label', '--exclude-namespace', 'infra'], { POD_NAMESPACE: 'dc-system' });
  assert.equal(code, 0);
  const mwc = loadYaml<V1MutatingWebhookConfiguration>(out);
  const w = mwc.webhooks?.[0];
  assert.deepEqual(w?.clientConfig.service, { namespace: 'dc-system', name: 'dc-operator-webhook', port: 443, path: '/mutate' });
  assert.deepEqual(w?.namespaceSelector?.matchExpressions?.[0]?.values, ['kube-system', 'dc-system', 'infra']);
  assert.deepEqual(w?.objectSelector, { matchLabels: { 'dc-operator.io/inject': 'enabled' } });
});

void test('bad webhook flags are refused before anything starts, naming the flag', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['--port', 'x'], /--port: must be a whole number/],
    [['--cert-mode', 'vault'], /--cert-mode: unknown certificate mode "vault"; allowed: self, cert-manager/],
    [['--ip-san', 'localhost'], /--ip-san: "localhost" is not an IPv4 or IPv6 address/],
    [['--sidecar-image-pull-policy', 'Sometimes'], /--sidecar-image-pull-policy: unknown pull policy/],
    [['--sidecar-limits', 'memory=lots'], /--sidecar-limits: "memory=lots" is not NAME=QUANTITY/],
    [['--log-level', 'verbose'], /--log-level: unknown log level "verbose"; allowed: error, warn, info, debug/],
  ];
  for (const [argv, message] of cases) {
    const { code, err } = await run(['webhook', '--operator-namespace', 'ops', ...argv]);
    assert.equal(code, 2, argv.join(' '));
    assert.match(err, message);
  }
});

void test('the webhook takes its log level from --log-level, else LOG_LEVEL, as the controller and the key server', async () => {
  const bad = await run(['webhook', '--operator-namespace', 'ops', '--print-configuration'], { LOG_LEVEL: 'loud' });
  assert.equal(bad.code, 2);
  assert.match(bad.err, /LOG_LEVEL: unknown log level "loud"; allowed: error, warn, info, debug/);
  for (const [argv, env] of [[['--log-level', 'debug'], {}], [[], { LOG_LEVEL: 'warn' }], [['--log-level', 'error'], { LOG_LEVEL: 'loud' }]] as const) {
    const { code } = await run(['webhook', '--operator-namespace', 'ops', '--print-configuration', ...argv], env);
    assert.equal(code, 0, `${argv.join(' ')} ${JSON.stringify(env)}`);
  }
});

void test('the webhook needs a namespace from --operator-namespace or POD_NAMESPACE', async () => {
  const { code, err } = await run(['webhook', '--print-configuration']);
  assert.equal(code, 2);
  assert.match(err, /--operator-namespace is required \(or set POD_NAMESPACE\)/);
});

void test('resource lists parse NAME=QUANTITY pairs', () => {
  assert.deepEqual(resourceListFlag('--x', 'cpu=10m,memory=32Mi'), { cpu: '10m', memory: '32Mi' });
  // What the chart renders for `memory: 134217728` in a values file (Helm reads it as a float).
  assert.deepEqual(resourceListFlag('--x', 'memory=1.34217728e+08,cpu=.5'), { memory: '1.34217728e+08', cpu: '.5' });
  assert.throws(() => resourceListFlag('--x', 'memory=-1Gi'), /is not NAME=QUANTITY/);
  assert.equal(resourceListFlag('--x', undefined), undefined);
});

void test('"none" (the chart\'s rendering of null or {}) removes the sidecar\'s limits or requests instead of keeping the defaults', () => {
  assert.deepEqual(resourceListFlag('--sidecar-limits', 'none'), {});
  assert.deepEqual(resourceListFlag('--sidecar-limits', ''), {});
  const requests = resourceListFlag('--sidecar-requests', 'cpu=5m');
  assert.deepEqual(sidecarResources({ requests, limits: resourceListFlag('--sidecar-limits', 'none') }), { requests: { cpu: '5m' } });
  assert.deepEqual(sidecarResources({ requests: resourceListFlag('--sidecar-requests', 'none'), limits: resourceListFlag('--sidecar-limits', 'none') }), {});
});
