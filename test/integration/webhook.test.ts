// The real kube-apiserver calls our webhook: it is started on 127.0.0.1 with its self-bootstrapped
// certificate, registered with a MutatingWebhookConfiguration (clientConfig.url) whose caBundle the
// webhook writes itself, and pods are created through the API. No kubelet runs, so pods stay
// Pending: what is tested is what admission stored.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AdmissionregistrationV1Api,
  ApiException,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type V1Pod,
} from '@kubernetes/client-node';
import { createTestNamespace, testKubeConfig, uniqueName, type TestNamespace } from '../support/cluster.js';
import { applyCrds } from './operator-fixtures.js';
import { runWebhook, type RunningWebhook } from '../../src/webhook/main.js';
import { admit } from '../../src/webhook/admission.js';
import { createCa, createServingCert, type KeyedCertificate } from '../../src/pki/certs.js';
import { DEFAULT_SIDECAR_CONFIG, LABEL_SIDECAR, LABEL_SIDECAR_VALUE, SIDECAR_CONTAINER_NAME } from '../../src/webhook/config.js';
import type { JsonValue } from '../../src/webhook/json-patch.js';
import { buildMutatingWebhookConfiguration } from '../../src/webhook/webhook-configuration.js';
import type { Logger } from '../../src/webhook/serving-certs.js';

const DAY = 24 * 60 * 60 * 1000;
const quiet: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** Labels a namespace dc-operator.io/injection=enabled: the configuration's default opt-in. */
async function optIn(kc: KubeConfig, namespace: string): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  const ns = await core.readNamespace({ name: namespace });
  await core.replaceNamespace({ name: namespace, body: { ...ns, metadata: { ...ns.metadata, labels: { ...ns.metadata?.labels, 'dc-operator.io/injection': 'enabled' } } } });
}

/**
 * Registers a configuration for `url`, scoped to the given namespaces so a leftover from a crashed
 * run can never touch other tests' pods, and opts them in (unless optIn is false). Returns its name.
 */
async function register(kc: KubeConfig, url: string, namespace: string | string[], opts: { operatorNamespace: string; name?: string; caBundlePem?: string; optIn?: boolean }): Promise<string> {
  const namespaces = typeof namespace === 'string' ? [namespace] : namespace;
  if (opts.optIn !== false) for (const ns of namespaces) await optIn(kc, ns);
  const name = opts.name ?? uniqueName('dc-webhook-test');
  const mwc = buildMutatingWebhookConfiguration({
    name,
    endpoint: { url },
    operatorNamespace: opts.operatorNamespace,
    caBundlePem: opts.caBundlePem,
    operations: ['CREATE', 'UPDATE'],
  });
  for (const w of mwc.webhooks ?? []) {
    w.namespaceSelector?.matchExpressions?.push({ key: 'kubernetes.io/metadata.name', operator: 'In', values: namespaces });
  }
  await kc.makeApiClient(AdmissionregistrationV1Api).createMutatingWebhookConfiguration({ body: mwc });
  return name;
}

async function unregister(kc: KubeConfig, name: string): Promise<void> {
  try {
    await kc.makeApiClient(AdmissionregistrationV1Api).deleteMutatingWebhookConfiguration({ name });
  } catch (err) {
    if (!(err instanceof ApiException && err.code === 404)) throw err;
  }
}

function annotatedPod(name: string, annotations: Record<string, string>): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, annotations },
    spec: { containers: [{ name: 'app', image: 'registry.invalid/app:1', ports: [{ containerPort: 8080, name: 'http' }] }] },
  };
}

function sidecarOf(pod: V1Pod): { where: 'initContainers' | 'containers'; count: number } {
  const init = (pod.spec?.initContainers ?? []).filter((c) => c.name === SIDECAR_CONTAINER_NAME).length;
  const plain = (pod.spec?.containers ?? []).filter((c) => c.name === SIDECAR_CONTAINER_NAME).length;
  return { where: init > 0 ? 'initContainers' : 'containers', count: init + plain };
}

/** Waits until the API server has picked the configuration up: a dry-run creation comes back injected. */
async function untilInjecting(ns: TestNamespace, dcName: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const pod = await ns.core.createNamespacedPod({ namespace: ns.name, body: annotatedPod(uniqueName('probe'), { 'dc-operator.io/inject': dcName }), dryRun: 'All' });
      if (sidecarOf(pod).count === 1) return;
      last = 'not injected yet';
    } catch (err) {
      last = err instanceof ApiException ? String(err.body) : String(err);
    }
    await sleep(100);
  }
  throw new Error(`the API server never called the webhook: ${last}`);
}

function deniedMessage(err: unknown): string {
  assert.ok(err instanceof ApiException, `expected an ApiException, got ${String(err)}`);
  const body: unknown = typeof err.body === 'string' ? JSON.parse(err.body) : err.body;
  return (body as { message?: string }).message ?? '';
}

/** The certificate a TLS client sees on the webhook port. */
function servedCertificate(port: number): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const cert = socket.getPeerX509Certificate();
      socket.end();
      if (cert) resolve(cert);
      else reject(new Error('no peer certificate'));
    });
    socket.on('error', reject);
  });
}

async function createDelegatedCredential(kc: KubeConfig, namespace: string, name: string, secretName: string): Promise<void> {
  await kc.makeApiClient(CustomObjectsApi).createNamespacedCustomObject({
    group: 'dc-operator.io',
    version: 'v1alpha1',
    namespace,
    plural: 'delegatedcredentials',
    body: {
      apiVersion: 'dc-operator.io/v1alpha1',
      kind: 'DelegatedCredential',
      metadata: { name },
      spec: { certificateSecretRef: { name: `${name}-cert` }, secretName },
    },
  });
}

void describe('the sidecar-injection webhook behind a real kube-apiserver', () => {
  let kc: KubeConfig;
  let operatorNs: TestNamespace;
  let appNs: TestNamespace;
  let webhook: RunningWebhook;
  let configurationName: string;
  const namespaces: TestNamespace[] = [];
  const configurations: string[] = [];
  const webhooks: RunningWebhook[] = [];

  before(async () => {
    kc = await testKubeConfig();
    await applyCrds(kc);
    operatorNs = await createTestNamespace('dc-operator-system');
    appNs = await createTestNamespace('webhook-app');
    namespaces.push(operatorNs, appNs);
    configurationName = uniqueName('dc-webhook-test');
    webhook = await runWebhook({
      kubeConfig: kc,
      namespace: operatorNs.name,
      host: '127.0.0.1',
      port: 0,
      serviceName: 'dc-operator-webhook',
      webhookConfigurationName: configurationName,
      refreshIntervalMs: 3_600_000,
      log: quiet,
    });
    webhooks.push(webhook);
    // Registered without a caBundle: the webhook's own certificate refresh writes it.
    await register(kc, webhook.url, appNs.name, { operatorNamespace: operatorNs.name, name: configurationName });
    configurations.push(configurationName);
    await webhook.refreshCertificates();
    await createDelegatedCredential(kc, appNs.name, 'web-dc', 'web-dc-credentials');
    await untilInjecting(appNs, 'web-dc');
  });

  after(async () => {
    for (const name of configurations) await unregister(kc, name);
    for (const w of webhooks) await w.close();
    for (const ns of namespaces) await ns.delete();
  });

  void it('keeps its CA in a Secret in its own namespace and writes the caBundle into the configuration', async () => {
    const secret = await operatorNs.core.readNamespacedSecret({ name: 'dc-operator-webhook-ca', namespace: operatorNs.name });
    const caPem = Buffer.from(secret.data?.['tls.crt'] ?? '', 'base64').toString('utf8');
    assert.ok(new X509Certificate(caPem).ca);
    const mwc = await kc.makeApiClient(AdmissionregistrationV1Api).readMutatingWebhookConfiguration({ name: configurationName });
    const bundle = Buffer.from(mwc.webhooks?.[0]?.clientConfig.caBundle ?? '', 'base64').toString('utf8');
    assert.equal(bundle, webhook.caBundle());
    assert.ok(bundle.includes(caPem.trim()));
    const served = await servedCertificate(webhook.port);
    assert.ok(served.checkIssued(new X509Certificate(caPem)));
    assert.equal(served.checkIP('127.0.0.1'), '127.0.0.1');
    assert.equal(served.checkHost(`dc-operator-webhook.${operatorNs.name}.svc`), `dc-operator-webhook.${operatorNs.name}.svc`);
  });

  void it('stores an annotated pod with the native sidecar, the read-only DC Secret volume and the restricted security context', async () => {
    assert.equal(webhook.sidecarMode, 'native', 'the test control plane is >= 1.29');
    await appNs.core.createNamespacedPod({ namespace: appNs.name, body: annotatedPod('web', { 'dc-operator.io/inject': 'web-dc', 'dc-operator.io/port': '9443' }) });
    const pod = await appNs.core.readNamespacedPod({ name: 'web', namespace: appNs.name });
    assert.equal(pod.metadata?.annotations?.['dc-operator.io/injected'], 'true');
    // What the key server's NetworkPolicy selects on: a label, found by a selector on the real API.
    const labelled = await appNs.core.listNamespacedPod({ namespace: appNs.name, labelSelector: `${LABEL_SIDECAR}=${LABEL_SIDECAR_VALUE}` });
    assert.deepEqual(labelled.items.map((p) => p.metadata?.name), ['web']);
    const sidecar = pod.spec?.initContainers?.find((c) => c.name === SIDECAR_CONTAINER_NAME);
    assert.ok(sidecar, 'sidecar stored as an init container');
    assert.equal(sidecar.restartPolicy, 'Always');
    assert.equal(sidecar.image, DEFAULT_SIDECAR_CONFIG.image);
    assert.deepEqual(sidecar.args, [
      'sidecar', '--dc-dir', '/var/run/dc-operator/credentials', '--port', '9443', '--upstream', '127.0.0.1:8080', '--metrics-port', '15300',
      // the caps that fit the default 128Mi limit (src/webhook/sidecar-memory.ts)
      '--max-connections', '1024', '--max-connections-per-source', '256',
    ]);
    assert.equal(sidecar.startupProbe?.httpGet?.path, '/readyz');
    assert.equal(sidecar.readinessProbe?.httpGet?.path, '/readyz');
    assert.deepEqual({ ...sidecar.volumeMounts?.find((m) => m.name === 'dc-operator-credentials') }, {
      name: 'dc-operator-credentials', mountPath: '/var/run/dc-operator/credentials', readOnly: true,
    });
    const sc = sidecar.securityContext;
    assert.equal(sc?.runAsNonRoot, true);
    assert.equal(sc?.runAsUser, 65532);
    assert.equal(sc?.readOnlyRootFilesystem, true);
    assert.equal(sc?.allowPrivilegeEscalation, false);
    assert.deepEqual(sc?.capabilities?.drop, ['ALL']);
    assert.equal(sc?.seccompProfile?.type, 'RuntimeDefault');
    const volume = pod.spec?.volumes?.find((v) => v.name === 'dc-operator-credentials');
    assert.equal(volume?.secret?.secretName, 'web-dc-credentials');
    assert.deepEqual(pod.spec?.containers.map((c) => c.name), ['app']);
  });

  void it('stores a pod without the annotation unchanged', async () => {
    const before = webhook.stats.skipped;
    const body: V1Pod = { metadata: { name: 'plain', labels: { app: 'plain' } }, spec: { containers: [{ name: 'app', image: 'registry.invalid/app:1' }] } };
    await appNs.core.createNamespacedPod({ namespace: appNs.name, body });
    const pod = await appNs.core.readNamespacedPod({ name: 'plain', namespace: appNs.name });
    assert.equal(webhook.stats.skipped, before + 1, 'the API server asked us and we skipped it');
    assert.equal(pod.spec?.initContainers, undefined);
    assert.deepEqual(pod.spec?.containers.map((c) => c.name), ['app']);
    assert.equal(pod.metadata?.annotations, undefined);
    // The only volume is the service-account token the API server itself adds.
    assert.deepEqual(pod.spec?.volumes?.map((v) => v.name.replace(/-[a-z0-9]+$/, '')), ['kube-api-access']);
  });

  void it('by default leaves pods of a namespace without dc-operator.io/injection=enabled alone (the API server does not even call), and injects once it is labelled', async () => {
    const on = await createTestNamespace('webhook-opted-in');
    const off = await createTestNamespace('webhook-not-opted-in');
    namespaces.push(on, off);
    for (const ns of [on, off]) await createDelegatedCredential(kc, ns.name, 'web-dc', 'web-dc-credentials');
    await optIn(kc, on.name);
    configurations.push(await register(kc, webhook.url, [on.name, off.name], { operatorNamespace: operatorNs.name, caBundlePem: webhook.caBundle(), optIn: false }));
    await untilInjecting(on, 'web-dc'); // the configuration is live
    const requests = webhook.stats.requests;
    await off.core.createNamespacedPod({ namespace: off.name, body: annotatedPod('untouched', { 'dc-operator.io/inject': 'web-dc' }) });
    const pod = await off.core.readNamespacedPod({ name: 'untouched', namespace: off.name });
    assert.equal(sidecarOf(pod).count, 0, 'not mutated');
    assert.equal(pod.metadata?.annotations?.['dc-operator.io/injected'], undefined);
    assert.equal(webhook.stats.requests, requests, 'the API server did not call the webhook');
    await optIn(kc, off.name);
    await untilInjecting(off, 'web-dc');
    await off.core.createNamespacedPod({ namespace: off.name, body: annotatedPod('injected', { 'dc-operator.io/inject': 'web-dc' }) });
    assert.equal(sidecarOf(await off.core.readNamespacedPod({ name: 'injected', namespace: off.name })).count, 1);
  });

  void it('refuses a hostNetwork pod that asks for the sidecar, saying why', async () => {
    const body = annotatedPod('host', { 'dc-operator.io/inject': 'web-dc' });
    if (body.spec) body.spec.hostNetwork = true;
    await assert.rejects(appNs.core.createNamespacedPod({ namespace: appNs.name, body }), (err: unknown) => {
      assert.match(deniedMessage(err), /denied the request: the pod uses hostNetwork, and dc-operator does not inject into hostNetwork pods/);
      return true;
    });
  });

  void it('refuses a pod naming a DelegatedCredential that does not exist, saying which and how to fix it', async () => {
    await assert.rejects(
      appNs.core.createNamespacedPod({ namespace: appNs.name, body: annotatedPod('orphan', { 'dc-operator.io/inject': 'no-such-dc' }) }),
      (err: unknown) => {
        assert.match(
          deniedMessage(err),
          new RegExp(`denied the request: DelegatedCredential ${appNs.name}/no-such-dc not found: create it or fix the dc-operator\\.io/inject annotation`),
        );
        return true;
      },
    );
  });

  void it('refuses a pod with a malformed port annotation with the annotation in the message', async () => {
    await assert.rejects(
      appNs.core.createNamespacedPod({ namespace: appNs.name, body: annotatedPod('badport', { 'dc-operator.io/inject': 'web-dc', 'dc-operator.io/port': 'https' }) }),
      (err: unknown) => {
        assert.match(deniedMessage(err), /annotation dc-operator\.io\/port: "https" is not a port number/);
        return true;
      },
    );
  });

  void it('adds nothing when asked again about an injected pod, directly or through an update', async () => {
    await appNs.core.createNamespacedPod({ namespace: appNs.name, body: annotatedPod('again', { 'dc-operator.io/inject': 'web-dc' }) });
    const stored = await appNs.core.readNamespacedPod({ name: 'again', namespace: appNs.name });
    assert.equal(sidecarOf(stored).count, 1);

    // The handler on the stored (already mutated) pod, as a re-invocation would send it.
    const direct = await admit(
      { uid: 'again', kind: { group: '', version: 'v1', kind: 'Pod' }, resource: { group: '', version: 'v1', resource: 'pods' }, namespace: appNs.name, operation: 'CREATE', object: JSON.parse(JSON.stringify(stored)) as JsonValue },
      { config: { sidecar: DEFAULT_SIDECAR_CONFIG, excludedNamespaces: [] }, sidecarMode: 'native', lookupDelegatedCredential: () => Promise.resolve({ secretName: 'web-dc-credentials' }) },
    );
    assert.equal(direct.result, 'skipped');
    assert.equal(direct.review.response?.patch, undefined);

    // An update goes through the API server to us (the test registration includes UPDATE).
    const requests = webhook.stats.requests;
    stored.metadata = { ...stored.metadata, labels: { touched: 'yes' } };
    await appNs.core.replaceNamespacedPod({ name: 'again', namespace: appNs.name, body: stored });
    assert.equal(webhook.stats.requests, requests + 1);
    const updated = await appNs.core.readNamespacedPod({ name: 'again', namespace: appNs.name });
    assert.equal(updated.metadata?.labels?.['touched'], 'yes');
    assert.equal(sidecarOf(updated).count, 1);
    assert.equal(updated.spec?.volumes?.filter((v) => v.name === 'dc-operator-credentials').length, 1);
  });

  void it('injects once when the API server calls the webhook twice for one pod (two registrations)', async () => {
    const ns = await createTestNamespace('webhook-twice');
    namespaces.push(ns);
    await createDelegatedCredential(kc, ns.name, 'web-dc', 'web-dc-credentials');
    for (let i = 0; i < 2; i++) {
      configurations.push(await register(kc, webhook.url, ns.name, { operatorNamespace: operatorNs.name, caBundlePem: webhook.caBundle() }));
    }
    await untilInjecting(ns, 'web-dc');
    const { injected, skipped } = webhook.stats;
    await ns.core.createNamespacedPod({ namespace: ns.name, body: annotatedPod('twice', { 'dc-operator.io/inject': 'web-dc' }) });
    const pod = await ns.core.readNamespacedPod({ name: 'twice', namespace: ns.name });
    assert.equal(sidecarOf(pod).count, 1);
    assert.equal(pod.spec?.volumes?.filter((v) => v.name === 'dc-operator-credentials').length, 1);
    assert.equal(webhook.stats.injected, injected + 1);
    assert.ok(webhook.stats.skipped >= skipped + 1, 'the second call was a skip');
  });

  void it('rotates its CA before expiry without a failed admission call, and the API server accepts the plain-container shape', async () => {
    const ns = await createTestNamespace('webhook-rotate');
    namespaces.push(ns);
    await createDelegatedCredential(kc, ns.name, 'web-dc', 'web-dc-credentials');
    // Start 250 days in the past: the CA made then is past 2/3 of its year today. The serving
    // certificate may live as long as its CA, so it is still valid for the real API server.
    let offsetMs = -250 * DAY;
    const configuration = uniqueName('dc-webhook-rotate');
    const rotating = await runWebhook({
      kubeConfig: kc,
      namespace: operatorNs.name,
      host: '127.0.0.1',
      port: 0,
      serviceName: 'dc-operator-webhook',
      webhookConfigurationName: configuration,
      caSecretName: 'dc-operator-webhook-ca-rotation-test',
      servingLifetimeMs: 2 * 365 * DAY,
      trustPropagationMs: 2_000,
      sidecarMode: 'container',
      refreshIntervalMs: 3_600_000,
      now: () => new Date(Date.now() + offsetMs),
      log: quiet,
    });
    webhooks.push(rotating);
    const name = await register(kc, rotating.url, ns.name, { operatorNamespace: operatorNs.name, name: configuration, caBundlePem: rotating.caBundle() });
    configurations.push(name);
    await untilInjecting(ns, 'web-dc');
    const firstServed = await servedCertificate(rotating.port);

    offsetMs = 0;
    await rotating.refreshCertificates();
    const secret = await operatorNs.core.readNamespacedSecret({ name: 'dc-operator-webhook-ca-rotation-test', namespace: operatorNs.name });
    const bundle = Buffer.from(secret.data?.['ca-bundle.crt'] ?? '', 'base64').toString('utf8');
    assert.equal(bundle.match(/BEGIN CERTIFICATE/g)?.length, 2, 'new and old CA both trusted');
    const mwc = await kc.makeApiClient(AdmissionregistrationV1Api).readMutatingWebhookConfiguration({ name });
    assert.equal(Buffer.from(mwc.webhooks?.[0]?.clientConfig.caBundle ?? '', 'base64').toString('utf8'), bundle);
    assert.equal((await servedCertificate(rotating.port)).fingerprint256, firstServed.fingerprint256, 'old certificate kept until the bundle propagated');

    await sleep(2_500);
    await rotating.refreshCertificates();
    const newCa = new X509Certificate(Buffer.from(secret.data?.['tls.crt'] ?? '', 'base64').toString('utf8'));
    const secondServed = await servedCertificate(rotating.port);
    assert.notEqual(secondServed.fingerprint256, firstServed.fingerprint256);
    assert.ok(secondServed.checkIssued(newCa), 'now signed by the new CA');

    // First try, no retry: the API server already trusts the new CA.
    await ns.core.createNamespacedPod({ namespace: ns.name, body: annotatedPod('after-rotation', { 'dc-operator.io/inject': 'web-dc' }) });
    const pod = await ns.core.readNamespacedPod({ name: 'after-rotation', namespace: ns.name });
    assert.deepEqual(pod.spec?.containers.map((c) => c.name), ['app', SIDECAR_CONTAINER_NAME]);
    assert.equal(pod.spec?.initContainers, undefined);
  });
  void it('in cert-manager mode serves tls.crt/tls.key from its directory and picks up replaced files without a restart', async () => {
    const ns = await createTestNamespace('webhook-cert-manager');
    namespaces.push(ns);
    await createDelegatedCredential(kc, ns.name, 'web-dc', 'web-dc-credentials');
    const dir = mkdtempSync(join(tmpdir(), 'webhook-cert-manager-'));
    // Written the way a mounted Secret changes: whole files replaced by rename.
    const install = (cert: KeyedCertificate): void => {
      for (const [file, pem] of [['tls.crt', cert.certPem], ['tls.key', cert.keyPem]] as const) {
        writeFileSync(join(dir, `.${file}.tmp`), pem);
        renameSync(join(dir, `.${file}.tmp`), join(dir, file));
      }
    };
    try {
      const ca = await createCa('cert-manager stand-in CA', new Date());
      const issue = (): Promise<KeyedCertificate> => createServingCert(ca, { dnsNames: ['dc-operator-webhook'], ipAddresses: ['127.0.0.1'], now: new Date() });
      const first = await issue();
      install(first);
      const cm = await runWebhook({
        kubeConfig: kc, namespace: operatorNs.name, host: '127.0.0.1', port: 0, serviceName: 'dc-operator-webhook',
        certMode: 'cert-manager', certDir: dir, refreshIntervalMs: 3_600_000, log: quiet,
      });
      webhooks.push(cm);
      assert.equal(cm.caBundle(), '', 'cert-manager (cainjector) owns the caBundle');
      configurations.push(await register(kc, cm.url, ns.name, { operatorNamespace: operatorNs.name, caBundlePem: ca.certPem }));
      await untilInjecting(ns, 'web-dc');
      assert.equal((await servedCertificate(cm.port)).fingerprint256, new X509Certificate(first.certPem).fingerprint256);

      const second = await issue();
      install(second);
      await cm.refreshCertificates();
      assert.equal((await servedCertificate(cm.port)).fingerprint256, new X509Certificate(second.certPem).fingerprint256);
      await ns.core.createNamespacedPod({ namespace: ns.name, body: annotatedPod('after-reload', { 'dc-operator.io/inject': 'web-dc' }) });
      const pod = await ns.core.readNamespacedPod({ name: 'after-reload', namespace: ns.name });
      assert.equal(sidecarOf(pod).count, 1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  void it('injects a sidecar that passes the restricted Pod Security Standard in an enforcing namespace', async () => {
    const ns = await createTestNamespace('webhook-restricted');
    namespaces.push(ns);
    await createDelegatedCredential(kc, ns.name, 'web-dc', 'web-dc-credentials');
    configurations.push(await register(kc, webhook.url, ns.name, { operatorNamespace: operatorNs.name, caBundlePem: webhook.caBundle() }));
    await untilInjecting(ns, 'web-dc');
    const namespace = await ns.core.readNamespace({ name: ns.name });
    namespace.metadata = { ...namespace.metadata, labels: { ...namespace.metadata?.labels, 'pod-security.kubernetes.io/enforce': 'restricted' } };
    await ns.core.replaceNamespace({ name: ns.name, body: namespace });
    const restrictedApp: V1Pod = {
      metadata: { name: 'restricted', annotations: { 'dc-operator.io/inject': 'web-dc' } },
      spec: {
        // Nothing at pod level: every container, the injected one included, must comply on its own.
        containers: [{
          name: 'app', image: 'registry.invalid/app:1', ports: [{ containerPort: 8080 }],
          securityContext: {
            runAsNonRoot: true, runAsUser: 1000, allowPrivilegeEscalation: false,
            capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' },
          },
        }],
      },
    };
    // The API server refuses the same pod when a container breaks the standard: the check is live.
    const broken = structuredClone(restrictedApp);
    broken.metadata = { name: 'broken' };
    const brokenApp = broken.spec?.containers[0];
    if (brokenApp?.securityContext) brokenApp.securityContext.allowPrivilegeEscalation = true;
    await assert.rejects(ns.core.createNamespacedPod({ namespace: ns.name, body: broken }), (err: unknown) => /violates PodSecurity "restricted/.test(deniedMessage(err)));

    await ns.core.createNamespacedPod({ namespace: ns.name, body: restrictedApp });
    const pod = await ns.core.readNamespacedPod({ name: 'restricted', namespace: ns.name });
    assert.equal(sidecarOf(pod).count, 1);
  });
});
