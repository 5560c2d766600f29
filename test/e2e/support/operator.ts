// The operator on the real node, installed the two ways users install it, and the pieces a test
// of the used-by paths needs: a TLS certificate that may delegate, an opted-in namespace, an
// annotated Deployment whose app is the project's own image, and NSS tstclnt handshakes.
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { e2e, helm, kubectl, repoRoot, run, scratchDir, waitFor } from './node.js';

export const RELEASE = 'dc-operator';
export const OPERATOR_NS = 'dc-operator';
export const CONTROLLER = `${RELEASE}-controller`;
export const WEBHOOK = `${RELEASE}-webhook`;
/** The key server Deployment (chart value keyserver.enabled, on by default). */
export const KEYSERVER = `${RELEASE}-keyserver`;
export const APP_GREETING = 'hello from the e2e app';
/** The label that opts a namespace in to sidecar injection (src/webhook/webhook-configuration.ts). */
export const INJECTION_LABEL = 'dc-operator.io/injection';

/** helm upgrade --install of charts/dc-operator with the image built by scripts/e2e/image.sh. */
export function helmInstallArgs(): string[] {
  return ['upgrade', '--install', RELEASE, join(repoRoot, 'charts', 'dc-operator'), '-n', OPERATOR_NS, '--create-namespace',
    '--set', 'image.pullPolicy=Never', '--set', 'sidecar.image.pullPolicy=Never', '--wait', '--timeout', '180s'];
}

/** Installs the chart unless a release is deployed already; waits for the operator to be ready. */
export async function ensureOperator(): Promise<void> {
  const status = await run(join(e2e.bin, 'helm'), ['status', RELEASE, '-n', OPERATOR_NS, '-o', 'json'],
    { env: { HELM_CACHE_HOME: join(e2e.root, 'helm', 'cache'), HELM_CONFIG_HOME: join(e2e.root, 'helm', 'config'), HELM_DATA_HOME: join(e2e.root, 'helm', 'data') } });
  if (status.code !== 0 || !status.stdout.includes('"status":"deployed"')) await helm(helmInstallArgs(), { timeoutMs: 240_000 });
  await waitForOperatorReady();
}

export interface OperatorReadiness {
  controllerPods: string[];
  leader: string;
  webhookReady: number;
  /** Ready replicas of the key server's Deployment; 0 when the chart has none. */
  keyserverReady: number;
}

/**
 * The controller's Deployment has 2 ready replicas and one of its pods holds the Lease; the
 * webhook's Deployment is ready and its caBundle is in the MutatingWebhookConfiguration; the key
 * server's Deployment, when the chart has one, is ready.
 */
export async function waitForOperatorReady(timeoutMs = 180_000): Promise<OperatorReadiness> {
  return waitFor('the controller (2 replicas, a leader), the webhook and the key server to be ready', timeoutMs, async () => {
    const deploy = JSON.parse(await kubectl(['get', 'deploy', '-n', OPERATOR_NS, '-o', 'json'])) as {
      items: { metadata: { name: string }; spec: { replicas: number }; status: { readyReplicas?: number; updatedReplicas?: number } }[];
    };
    const ready = (n: string): number => deploy.items.find((d) => d.metadata.name === n)?.status.readyReplicas ?? 0;
    if (ready(CONTROLLER) !== 2) return undefined;
    const webhookWant = deploy.items.find((d) => d.metadata.name === WEBHOOK)?.spec.replicas ?? 1;
    if (ready(WEBHOOK) < webhookWant) return undefined;
    const keyserver = deploy.items.find((d) => d.metadata.name === KEYSERVER);
    if (keyserver && ready(KEYSERVER) < keyserver.spec.replicas) return undefined;
    const pods = (await kubectl(['get', 'pods', '-n', OPERATOR_NS, '-l', 'app.kubernetes.io/component=controller',
      '--field-selector', 'status.phase=Running', '-o', 'jsonpath={.items[*].metadata.name}'])).split(/\s+/).filter(Boolean);
    const holder = await kubectl(['get', 'lease', CONTROLLER, '-n', OPERATOR_NS, '-o', 'jsonpath={.spec.holderIdentity}']);
    const leader = pods.find((p) => holder.startsWith(p));
    if (!leader) return undefined;
    const caBundles = await kubectl(['get', 'mutatingwebhookconfiguration', '-o', 'jsonpath={.items[*].webhooks[*].clientConfig.caBundle}']);
    if (!caBundles.trim()) return undefined;
    return { controllerPods: pods, leader, webhookReady: ready(WEBHOOK), keyserverReady: ready(KEYSERVER) };
  }, 1000);
}

export interface Pki { caCert: string; certDir: string; nssDb: string; serverName: string }

/** A CA and a certificate with the DelegationUsage extension (dcctl), and an NSS db trusting the CA. */
export function makePki(serverName = 'web.e2e.test'): Pki {
  const dir = scratchDir('pki');
  const dcctl = join(repoRoot, 'dist', 'src', 'cli', 'dcctl.js');
  execFileSync(process.execPath, [dcctl, 'ca', 'create', '--out', join(dir, 'ca'), '--cn', `e2e CA ${randomBytes(3).toString('hex')}`], { stdio: 'ignore' });
  execFileSync(process.execPath, [dcctl, 'cert', 'create', '--ca-dir', join(dir, 'ca'), '--dns', serverName, '--out', join(dir, 'cert')], { stdio: 'ignore' });
  const nssDb = join(dir, 'nssdb');
  mkdirSync(nssDb);
  execFileSync('certutil', ['-N', '--empty-password', '-d', nssDb], { stdio: 'ignore' });
  execFileSync('certutil', ['-A', '-n', 'e2e-ca', '-t', 'C,,', '-i', join(dir, 'ca', 'ca.crt'), '-d', nssDb], { stdio: 'ignore' });
  return { caCert: join(dir, 'ca', 'ca.crt'), certDir: join(dir, 'cert'), nssDb, serverName };
}

export async function createNamespace(prefix: string, optIn: boolean): Promise<string> {
  const name = `${prefix}-${randomBytes(3).toString('hex')}`;
  const labels = optIn ? `\n  labels: {${INJECTION_LABEL}: enabled}` : '';
  await kubectl(['apply', '-f', '-'], { input: `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${name}${labels}\n` });
  // The ServiceAccount controller (kube-controller-manager) makes `default`; pods need it.
  await waitFor(`ServiceAccount default in ${name}`, 30_000, async () => ((await run(join(e2e.bin, 'kubectl'), ['get', 'sa', 'default', '-n', name])).code === 0 ? true : undefined));
  return name;
}

export async function createCertificateSecret(ns: string, pki: Pki, name = 'web-cert'): Promise<void> {
  await kubectl(['create', 'secret', 'tls', name, '-n', ns, '--cert', join(pki.certDir, 'tls.crt'), '--key', join(pki.certDir, 'tls.key')]);
}

export function delegatedCredentialYaml(ns: string, name: string, spec: Record<string, unknown>): string {
  return JSON.stringify({ apiVersion: 'dc-operator.io/v1alpha1', kind: 'DelegatedCredential', metadata: { name, namespace: ns },
    spec: { certificateSecretRef: { name: 'web-cert' }, algorithms: ['ecdsa_secp256r1_sha256'], secretName: name, ...spec } });
}

/** The app: a plain HTTP server on 127.0.0.1:8080 of the pod, from the project's image (node). */
export function appContainer(): Record<string, unknown> {
  return {
    name: 'app', image: e2e.image, imagePullPolicy: 'Never',
    command: ['node', '-e', `require("http").createServer((q, s) => s.end(${JSON.stringify(APP_GREETING + '\n')})).listen(8080, "127.0.0.1")`],
  };
}

/** A Deployment of one pod annotated for the sidecar in front of the app. */
export function annotatedDeploymentYaml(ns: string, name: string, dcName: string): string {
  return JSON.stringify({
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name, namespace: ns },
    spec: {
      replicas: 1, selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name }, annotations: { 'dc-operator.io/inject': dcName, 'dc-operator.io/upstream-port': '8080' } },
        spec: { containers: [appContainer()], terminationGracePeriodSeconds: 5 },
      },
    },
  });
}

export interface PodInfo { name: string; ip: string; ready: boolean; raw: Pod }
export interface ContainerStatus { name: string; ready: boolean; started?: boolean; state?: { running?: { startedAt: string } } }
export interface Pod {
  metadata: { name: string; annotations?: Record<string, string> };
  spec: { initContainers?: { name: string; restartPolicy?: string }[]; containers: { name: string }[] };
  status: { podIP?: string; phase?: string; conditions?: { type: string; status: string; lastTransitionTime: string }[];
    initContainerStatuses?: ContainerStatus[]; containerStatuses?: ContainerStatus[] };
}

export async function podsOf(ns: string, app: string): Promise<PodInfo[]> {
  const list = JSON.parse(await kubectl(['get', 'pods', '-n', ns, '-l', `app=${app}`, '-o', 'json'])) as { items: Pod[] };
  return list.items.map((p) => ({
    name: p.metadata.name, ip: p.status.podIP ?? '', raw: p,
    ready: p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
  }));
}

export async function waitForReadyPod(ns: string, app: string, timeoutMs = 120_000): Promise<PodInfo> {
  return waitFor(`a Ready pod of ${ns}/${app}`, timeoutMs, async () => (await podsOf(ns, app)).find((p) => p.ready && p.ip));
}

export interface Handshake { ok: boolean; delegated: boolean; answered: boolean; ms: number; output: string; code: number; at: string }

/** One NSS tstclnt -B (delegated credentials on) handshake + HTTP request to the pod's sidecar. */
export async function tstclnt(ip: string, pki: Pki, port = 8443): Promise<Handshake> {
  const t0 = performance.now();
  const at = new Date().toISOString();
  const r = await run('tstclnt', ['-B', '-h', ip, '-p', String(port), '-d', pki.nssDb, '-V', 'tls1.3:tls1.3', '-a', pki.serverName],
    { input: `GET / HTTP/1.0\r\nHost: ${pki.serverName}\r\n\r\n`, timeoutMs: 15_000 });
  const out = r.stdout + r.stderr;
  const delegated = out.includes('Received a Delegated Credential');
  const answered = out.includes(APP_GREETING);
  return { ok: r.code === 0 && answered, delegated, answered, ms: performance.now() - t0, output: out, code: r.code, at };
}

/** The delegated credential the sidecar serves now, by its expiry (dcctl probe, our TLS client). */
export async function servedCredentialExpiry(ip: string, pki: Pki, port = 8443): Promise<string | undefined> {
  const dcctl = join(repoRoot, 'dist', 'src', 'cli', 'dcctl.js');
  const r = await run(process.execPath, [dcctl, 'probe', `${ip}:${port}`, '--ca', pki.caCert, '--servername', pki.serverName], { timeoutMs: 15_000 });
  if (r.code !== 0 || !/delegated credential: yes, verified/.test(r.stdout)) return undefined;
  return /expires: (\S+)/.exec(r.stdout)?.[1];
}

export interface DcStatus { lastIssuedTime?: string; notAfter?: string; renewalTime?: string; conditions?: { type: string; status: string; reason?: string; message?: string }[] }

export async function dcStatus(ns: string, name: string): Promise<DcStatus> {
  const dc = JSON.parse(await kubectl(['get', 'delegatedcredential', name, '-n', ns, '-o', 'json'])) as { status?: DcStatus };
  return dc.status ?? {};
}

/** Records a measurement for bench/results/e2e.md (DC_E2E_MEASUREMENTS names a JSON-lines file). */
export function measure(name: string, value: number, unit: string): void {
  const file = process.env['DC_E2E_MEASUREMENTS'];
  const line = JSON.stringify({ name, value: Math.round(value), unit, at: new Date().toISOString() });
  process.stderr.write(`[e2e measurement] ${line}\n`);
  if (file) execFileSync('sh', ['-c', 'cat >> "$0"', file], { input: line + '\n' });
}
