// Shared by the operator integration tests: apply crds/ to the test apiserver, make certificate
// Secrets, create DelegatedCredentials, poll for a condition.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api, CustomObjectsApi, KubeConfig, loadAllYaml, RbacAuthorizationV1Api, type V1Secret } from '@kubernetes/client-node';
import type { DelegatedCredential, DelegatedCredentialSpecInput } from '../../src/operator/api/v1alpha1.js';
import { createLogger } from '../../src/operator/logger.js';
import { runController, type ControllerHandle } from '../../src/operator/main.js';
import { controllerRbac } from '../../src/operator/rbac.js';
import { createTestNamespace, testKubeConfig, testKubeconfigPath, type TestNamespace } from '../support/cluster.js';
import { repoRoot } from '../support/control-plane.js';
import { beforeAndAfter } from '../support/file-hooks.js';

interface Crd {
  metadata: { name: string; resourceVersion?: string };
  status?: { conditions?: { type: string; status: string }[] };
}

/** `kubectl apply -f crds/`, with client-node: create or replace every CRD, wait until Established. */
export async function applyCrds(kc: KubeConfig): Promise<void> {
  const custom = kc.makeApiClient(CustomObjectsApi);
  const target = { group: 'apiextensions.k8s.io', version: 'v1', plural: 'customresourcedefinitions' };
  const dir = join(repoRoot, 'crds');
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.yaml'))) {
    for (const doc of loadAllYaml(readFileSync(join(dir, file), 'utf8')) as Crd[]) {
      // CustomObjectsApi passes the body through untouched (the typed CRD API would rename the
      // x-kubernetes-* keys through its serializer).
      try {
        const existing = (await custom.getClusterCustomObject({ ...target, name: doc.metadata.name })) as Crd;
        doc.metadata.resourceVersion = existing.metadata.resourceVersion;
        await custom.replaceClusterCustomObject({ ...target, name: doc.metadata.name, body: doc });
      } catch (err) {
        if ((err as { code?: number }).code !== 404) throw err;
        await custom.createClusterCustomObject({ ...target, body: doc });
      }
      await waitFor(`CRD ${doc.metadata.name} established`, 30_000, async () => {
        const crd = (await custom.getClusterCustomObject({ ...target, name: doc.metadata.name })) as Crd;
        return crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') ? true : undefined;
      });
    }
  }
  // Discovery of a new group can lag behind Established for a moment.
  await waitFor('DelegatedCredentials are served', 30_000, async () => {
    try {
      await custom.listClusterCustomObject({ group: 'dc-operator.io', version: 'v1alpha1', plural: 'clusterdelegationsigners' });
      return true;
    } catch {
      return undefined;
    }
  });
}

/** Polls `probe` until it returns a value other than undefined. */
export async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>, intervalMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${String(lastError)})` : ''}`);
    await sleep(intervalMs);
  }
}

/** A CA and a leaf certificate made by the real CLI: `dcctl ca create` and `dcctl cert create`; `ca` is the CA's certificate, for clients to trust. */
export function dcctlCertificate(opts: { noDelegationUsage?: boolean; keyType?: string; dns?: string } = {}): { crt: string; key: string; ca: string } {
  const dir = mkdtempSync(join(tmpdir(), 'dc-operator-it-'));
  const dcctl = join(repoRoot, 'dist', 'src', 'cli', 'dcctl.js');
  execFileSync(process.execPath, [dcctl, 'ca', 'create', '--out', join(dir, 'ca')], { stdio: ['ignore', 'ignore', 'inherit'] });
  const args = [dcctl, 'cert', 'create', '--ca-dir', join(dir, 'ca'), '--dns', opts.dns ?? 'web.example.test', '--out', join(dir, 'leaf'), '--key-type', opts.keyType ?? 'ecdsa-p256'];
  if (opts.noDelegationUsage) args.push('--no-delegation-usage');
  execFileSync(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  return { crt: readFileSync(join(dir, 'leaf', 'tls.crt'), 'utf8'), key: readFileSync(join(dir, 'leaf', 'tls.key'), 'utf8'), ca: readFileSync(join(dir, 'ca', 'ca.crt'), 'utf8') };
}

export function tlsSecret(namespace: string, name: string, crt: string, key?: string): V1Secret {
  const data: Record<string, string> = { 'tls.crt': Buffer.from(crt).toString('base64') };
  data['tls.key'] = Buffer.from(key ?? '').toString('base64');
  return { apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: { name, namespace }, data };
}

export async function putSecret(core: CoreV1Api, secret: V1Secret): Promise<void> {
  const namespace = secret.metadata?.namespace ?? '';
  const name = secret.metadata?.name ?? '';
  try {
    const existing = await core.readNamespacedSecret({ namespace, name });
    await core.replaceNamespacedSecret({ namespace, name, body: { ...secret, metadata: { ...secret.metadata, resourceVersion: existing.metadata?.resourceVersion } } });
  } catch (err) {
    if ((err as { code?: number }).code !== 404) throw err;
    await core.createNamespacedSecret({ namespace, body: secret });
  }
}

export const DC = { group: 'dc-operator.io', version: 'v1alpha1', plural: 'delegatedcredentials' } as const;

export async function createDelegatedCredential(kc: KubeConfig, namespace: string, name: string, spec: DelegatedCredentialSpecInput): Promise<DelegatedCredential> {
  const custom = kc.makeApiClient(CustomObjectsApi);
  return (await custom.createNamespacedCustomObject({
    ...DC,
    namespace,
    body: { apiVersion: 'dc-operator.io/v1alpha1', kind: 'DelegatedCredential', metadata: { name, namespace }, spec },
  })) as DelegatedCredential;
}

export async function getDelegatedCredential(kc: KubeConfig, namespace: string, name: string): Promise<DelegatedCredential> {
  return (await kc.makeApiClient(CustomObjectsApi).getNamespacedCustomObject({ ...DC, namespace, name })) as DelegatedCredential;
}

/** Waits until the DC's condition `type` has `status` (and `reason`, when given); returns the DC. */
export function waitForCondition(
  kc: KubeConfig,
  namespace: string,
  name: string,
  type: string,
  status: string,
  reason?: string,
  timeoutMs = 20_000,
): Promise<DelegatedCredential> {
  return waitFor(`${namespace}/${name} ${type}=${status}${reason ? ` (${reason})` : ''}`, timeoutMs, async () => {
    const dc = await getDelegatedCredential(kc, namespace, name);
    const c = dc.status?.conditions?.find((x) => x.type === type);
    return c?.status === status && (reason === undefined || c.reason === reason) ? dc : undefined;
  });
}

export function secretData(secret: V1Secret | undefined, key: string): Buffer {
  const v = secret?.data?.[key];
  assert.ok(v !== undefined, `Secret has ${key}`);
  return Buffer.from(v, 'base64');
}

/** A kubeconfig file that authenticates as a (new) ServiceAccount with a TokenRequest token. */
export async function serviceAccountKubeconfig(admin: KubeConfig, namespace: string, serviceAccount: string): Promise<string> {
  const core = admin.makeApiClient(CoreV1Api);
  await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: serviceAccount } } });
  const token = await core.createNamespacedServiceAccountToken({ namespace, name: serviceAccount, body: { spec: { audiences: [], expirationSeconds: 3600 } } });
  const cluster = admin.getCurrentCluster();
  assert.ok(cluster);
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'test', server: cluster.server, caData: cluster.caData, caFile: cluster.caFile, skipTLSVerify: cluster.skipTLSVerify }],
    users: [{ name: serviceAccount, token: token.status?.token }],
    contexts: [{ name: 'sa', cluster: 'test', user: serviceAccount }],
    currentContext: 'sa',
  });
  const file = join(mkdtempSync(join(tmpdir(), 'dc-operator-sa-')), 'kubeconfig');
  writeFileSync(file, kc.exportConfig(), { mode: 0o600 });
  return file;
}

/**
 * Binds ServiceAccount `serviceAccount` of `namespace` to exactly controllerRbac() (cluster-wide
 * rules, and the Lease in `namespace`); returns what deletes the cluster-scoped part.
 */
export async function applyControllerRbac(admin: KubeConfig, namespace: string, serviceAccount: string): Promise<() => Promise<void>> {
  const rbacApi = admin.makeApiClient(RbacAuthorizationV1Api);
  const rbac = controllerRbac({ name: `dc-operator-controller-${namespace}`, namespace, serviceAccount });
  await rbacApi.createClusterRole({ body: rbac.clusterRole });
  await rbacApi.createClusterRoleBinding({ body: rbac.clusterRoleBinding });
  await rbacApi.createNamespacedRole({ namespace, body: rbac.leaseRole });
  await rbacApi.createNamespacedRoleBinding({ namespace, body: rbac.leaseRoleBinding });
  return async () => {
    await rbacApi.deleteClusterRoleBinding({ name: rbac.clusterRoleBinding.metadata?.name ?? '' });
    await rbacApi.deleteClusterRole({ name: rbac.clusterRole.metadata?.name ?? '' });
  };
}

/** What a test file needs to drive one controller: clients, its namespace, the controller. */
export interface NamespacedController {
  kc: KubeConfig;
  core: CoreV1Api;
  ns: TestNamespace;
  controller: ControllerHandle;
}

/**
 * CRDs applied, a fresh namespace, and a controller (no leader election, metrics on a free
 * loopback port) watching only that namespace. The caller stops the controller, then deletes
 * the namespace.
 */
export async function startNamespacedController(prefix: string): Promise<NamespacedController> {
  const kc = await testKubeConfig();
  await applyCrds(kc);
  const ns = await createTestNamespace(prefix);
  const controller = await runController({
    kubeconfig: await testKubeconfigPath(),
    namespace: ns.name,
    metricsPort: 0,
    metricsHost: '127.0.0.1',
    leaderElection: false,
    log: createLogger(process.env['DC_TEST_LOG_LEVEL'] ?? 'error'),
  });
  return { kc, core: kc.makeApiClient(CoreV1Api), ns, controller };
}

/**
 * startNamespacedController in the file's `before` hook, handing the result to `started`; the
 * controller stopped and the namespace deleted in its `after` hook, once the start has settled
 * (beforeAndAfter: also when every test of the file is filtered out).
 */
export function namespacedControllerHooks(prefix: string, started: (c: NamespacedController) => void): void {
  let current: NamespacedController | undefined;
  beforeAndAfter(
    async () => {
      current = await startNamespacedController(prefix);
      started(current);
    },
    async () => {
      await current?.controller.stop();
      await current?.ns.delete();
    },
  );
}
