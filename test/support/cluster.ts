// The test harness: one real control plane per test run, a fresh namespace per test.
//
// `node scripts/run-tests.mjs integration` starts the control plane once, before the test runner,
// and hands its kubeconfig to every test file through DC_TEST_KUBECONFIG (node --test runs each
// file in its own process). A test file run on its own (`node --test dist/test/integration/x.test.js`)
// starts a private control plane lazily instead, and kills it when the process exits.
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import type { ApiClient } from '../../src/operator/apiserver/client.js';
import { connectApiServer } from '../../src/operator/apiserver/connect.js';
import type { ControlPlaneState } from './control-plane.js';
import { ensureBinaries, killControlPlaneSync, repoRoot, startControlPlane } from './control-plane.js';

export const KUBECONFIG_ENV = 'DC_TEST_KUBECONFIG';

let kubeconfigFile: Promise<string> | undefined;
let privateState: ControlPlaneState | undefined;

/** Starts a control plane owned by this process; it dies with the process, however it ends. */
async function startPrivateControlPlane(): Promise<string> {
  const stateDir = join(repoRoot, '.dev', `test-control-plane-${process.pid}`);
  const logDir = join(repoRoot, '.dev', 'logs', `test-${process.pid}`);
  mkdirSync(logDir, { recursive: true });
  const cleanup = (): void => {
    if (privateState) killControlPlaneSync(privateState);
    privateState = undefined;
  };
  process.once('exit', cleanup);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      cleanup();
      process.kill(process.pid, sig);
    });
  }
  privateState = await startControlPlane({
    binDir: ensureBinaries(), stateDir, logDir, dieWithParent: true,
    log: (m) => process.stderr.write(`[control-plane] ${m}\n`),
  });
  return privateState.kubeconfigPath;
}

/** Path of the admin kubeconfig for this test run (starting a control plane when needed). */
export function testKubeconfigPath(): Promise<string> {
  kubeconfigFile ??= process.env[KUBECONFIG_ENV]
    ? Promise.resolve(process.env[KUBECONFIG_ENV] as string)
    : startPrivateControlPlane();
  return kubeconfigFile;
}

/** A fresh @kubernetes/client-node KubeConfig with cluster-admin rights on the test control plane. */
export async function testKubeConfig(): Promise<KubeConfig> {
  return kubeConfigFromFile(await testKubeconfigPath());
}

/** A @kubernetes/client-node KubeConfig of a kubeconfig file. */
export function kubeConfigFromFile(path: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  return kc;
}

/** The controller's own apiserver client (src/operator/apiserver) for a kubeconfig file; default: the admin's. */
export async function testApiClient(kubeconfig?: string): Promise<ApiClient> {
  return (await connectApiServer({ kubeconfig: kubeconfig ?? (await testKubeconfigPath()) })).client;
}

export interface TestNamespace {
  name: string;
  kc: KubeConfig;
  core: CoreV1Api;
  /** Deletes the namespace (no kube-controller-manager runs, so it stays Terminating; names never repeat). */
  delete(): Promise<void>;
}

/** A DNS-1123 label: prefix plus random suffix. */
export function uniqueName(prefix: string): string {
  const clean = prefix.toLowerCase().replace(/[^a-z0-9-]/g, '-').replace(/^-+|-+$/g, '').slice(0, 50) || 't';
  return `${clean}-${randomBytes(4).toString('hex')}`;
}

/**
 * Creates a namespace with a unique name and its `default` ServiceAccount (the controller that
 * normally creates it is not running; the ServiceAccount admission plugin needs it for Pods).
 */
export async function createTestNamespace(prefix = 'test'): Promise<TestNamespace> {
  const kc = await testKubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const name = uniqueName(prefix);
  await core.createNamespace({ body: { metadata: { name, labels: { 'dc-operator.test/run': String(process.pid) } } } });
  await core.createNamespacedServiceAccount({ namespace: name, body: { metadata: { name: 'default' } } });
  return {
    name, kc, core,
    delete: async () => {
      try {
        await core.deleteNamespace({ name });
      } catch (err) {
        if ((err as { code?: number }).code !== 404) throw err;
      }
    },
  };
}

/** Runs fn with a fresh namespace and deletes the namespace afterwards, pass or fail. */
export async function withNamespace<T>(fn: (ns: TestNamespace) => Promise<T>, prefix = 'test'): Promise<T> {
  const ns = await createTestNamespace(prefix);
  try {
    return await fn(ns);
  } finally {
    await ns.delete();
  }
}
