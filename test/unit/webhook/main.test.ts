import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { createCa, createServingCert } from '../../../src/pki/certs.js';
import { runWebhook } from '../../../src/webhook/main.js';
import type { Logger } from '../../../src/webhook/serving-certs.js';

const quiet: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined };

function get(port: number, path: string, ca: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, ca, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

void test('on close the webhook reports not ready but keeps answering for the shutdown delay, then stops', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'webhook-main-'));
  try {
    const ca = await createCa('test CA', new Date());
    const serving = await createServingCert(ca, { dnsNames: ['svc'], ipAddresses: ['127.0.0.1'], now: new Date() });
    writeFileSync(join(dir, 'tls.crt'), serving.certPem);
    writeFileSync(join(dir, 'tls.key'), serving.keyPem);
    // cert-manager mode with a fixed sidecar shape talks to no API server until a pod arrives.
    const kc = new KubeConfig();
    kc.loadFromClusterAndUser({ name: 'none', server: 'https://127.0.0.1:1', skipTLSVerify: false }, { name: 'none' });
    const webhook = await runWebhook({
      kubeConfig: kc, namespace: 'ops', host: '127.0.0.1', port: 0, serviceName: 'svc',
      certMode: 'cert-manager', certDir: dir, sidecarMode: 'native', shutdownDelayMs: 300, log: quiet,
    });
    let closing: Promise<void> | undefined;
    try {
      assert.equal(await get(webhook.port, '/readyz', ca.certPem), 200);
      const metrics = await webhook.metrics.registry.metrics();
      // X.509 times have whole seconds.
      const notAfter = Math.floor(serving.notAfter.getTime() / 1000);
      assert.match(metrics, new RegExp(`dc_operator_webhook_serving_certificate_expiration_timestamp_seconds ${notAfter}\n`));
      assert.equal(await get(webhook.port, '/metrics', ca.certPem), 200);
      closing = webhook.close();
    } finally {
      if (!closing) await webhook.close();
    }
    assert.equal(await get(webhook.port, '/readyz', ca.certPem), 503);
    assert.equal(await get(webhook.port, '/healthz', ca.certPem), 200);
    await closing;
    await assert.rejects(get(webhook.port, '/healthz', ca.certPem), /ECONNREFUSED/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

void test('cert-manager mode without a readable certificate directory fails to start with the path in the error', async () => {
  const kc = new KubeConfig();
  kc.loadFromClusterAndUser({ name: 'none', server: 'https://127.0.0.1:1', skipTLSVerify: false }, { name: 'none' });
  await assert.rejects(
    runWebhook({ kubeConfig: kc, namespace: 'ops', host: '127.0.0.1', port: 0, serviceName: 'svc', certMode: 'cert-manager', certDir: '/nonexistent/certs', sidecarMode: 'native', log: quiet }),
    /\/nonexistent\/certs\/tls\.(crt|key)/,
  );
});
