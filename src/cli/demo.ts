#!/usr/bin/env node
/**
 * `make demo`: dc-operator end to end on one machine, in well under a minute when warm.
 *
 *   local control plane (or --cluster current) → CRDs → operator + webhook (child processes)
 *   → dev CA and a certificate with DelegationUsage (dcctl) → DelegatedCredential → Ready
 *   → the issued Secret written as a kubelet Secret volume → webhook injection (dry run)
 *   → sidecar in front of a small HTTP app → DC handshakes (dcctl probe, NSS tstclnt -B)
 *
 * Everything it creates is removed on exit, on an error and on Ctrl-C: processes, namespaces,
 * the MutatingWebhookConfiguration, temp files, and the control plane when it started it. With
 * --cluster current the CRDs it installed stay (they may have been there before).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { get as httpsGet } from 'node:https';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  AdmissionregistrationV1Api, CoreV1Api, CustomObjectsApi, KubeConfig, type V1Pod,
} from '@kubernetes/client-node';
import { loadKubeconfig, systemPlaces } from '../operator/kubeconfig.js';
import { buildMutatingWebhookConfiguration } from '../webhook/webhook-configuration.js';
import { DC_GROUP, DC_PLURAL, DC_VERSION, SIDECAR_CONTAINER_NAME } from '../webhook/config.js';
import { isEntryPoint, unsupportedRuntime } from './framework/main.js';
import {
  Cleanup, Progress, freePort, runCommand, startChild, waitFor, waitForHttp200, writeKubeletVolume, type Child,
} from './demo/runtime.js';

const USAGE = `Usage: node dist/src/cli/demo.js [--cluster local|current]

  --cluster local    start a local etcd + kube-apiserver (scripts/control-plane/up.sh), stop it at the end (default);
                     an already running one (make control-plane-up) is reused and left running
  --cluster current  use the current kubeconfig ($KUBECONFIG or ~/.kube/config) instead
`;

/** The repository root: where scripts/control-plane/up.sh is, above dist/src/cli/. */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'scripts', 'control-plane', 'up.sh'))) return dir;
    dir = dirname(dir);
  }
  throw new Error('cannot find the repository root (scripts/control-plane/up.sh); run the demo from a checkout');
}

interface Cluster {
  kubeconfig: string;
  kc: KubeConfig;
  server: string;
  description: string;
}

interface DelegatedCredentialStatus {
  conditions?: Array<{ type: string; status: string; reason: string; message: string }>;
  credentials?: Array<{ algorithm: string; notAfter: string; publicKeyFingerprint: string }>;
  renewalTime?: string;
}

export async function runDemo(argv: readonly string[]): Promise<number> {
  let mode: 'local' | 'current' = 'local';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-h' || a === '--help') {
      process.stdout.write(USAGE);
      return 0;
    }
    const value = a === '--cluster' ? argv[++i] : a?.startsWith('--cluster=') ? a.slice('--cluster='.length) : undefined;
    if (value === 'local' || value === 'current') mode = value;
    else if (value === '') continue; // `make demo` without CLUSTER
    else {
      process.stderr.write(`demo: ${a === '--cluster' || a?.startsWith('--cluster=') ? `--cluster: "${value}" is not local or current` : `unknown argument ${a}`}\n${USAGE}`);
      return 2;
    }
  }

  const root = repoRoot();
  const node = process.execPath;
  const dcOperator = join(root, 'dist', 'src', 'cli', 'dc-operator.js');
  const dcctl = join(root, 'dist', 'src', 'cli', 'dcctl.js');
  const logDir = join(root, '.dev', 'logs', 'demo');
  rmSync(logDir, { recursive: true, force: true });
  mkdirSync(logDir, { recursive: true });
  const work = mkdtempSync(join(tmpdir(), 'dc-demo-'));
  const id = randomBytes(3).toString('hex');
  const appNs = `dc-demo-${id}`;
  const systemNs = `dc-demo-system-${id}`;
  const webhookConfigName = `dc-demo-${id}`;

  // Output piped into `head` that exits early must not crash the demo before it cleans up.
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => { /* reader gone: keep going, quietly */ });
  const p = new Progress();
  const cleanup = new Cleanup();
  const say = (m: string): void => { process.stderr.write(`${m}\n`); };
  cleanup.onSignals(say);
  cleanup.add('remove the work directory', () => rmSync(work, { recursive: true, force: true }));

  // dcctl needs no cluster: run it alongside the control plane's start-up.
  const caDir = join(work, 'ca');
  const certDir = join(work, 'cert');
  const pki = settled((async () => {
    for (const args of [['ca', 'create', '--out', caDir, '--cn', `dc-operator demo CA ${id}`], ['cert', 'create', '--ca', caDir, '--dns', 'localhost', '--ip', '127.0.0.1', '--out', certDir]]) {
      const r = await runCommand(node, [dcctl, ...args]);
      if (r.code !== 0) throw new Error(`dcctl ${args.slice(0, 2).join(' ')} failed: ${r.stderr}`);
    }
  })());

  p.line(`dc-operator demo — ${mode === 'local' ? 'local control plane' : 'current kubeconfig'}; Node ${process.version}; logs in ${logDir}`);
  try {
    // 1. A cluster.
    const cluster = await p.step(mode === 'local' ? 'starting etcd + kube-apiserver' : 'connecting to the current cluster', async () => {
      if (mode === 'local') {
        const up = await runCommand('bash', [join(root, 'scripts', 'control-plane', 'up.sh')], { cwd: root, timeoutMs: 30 * 60_000 });
        if (up.code !== 0) throw new Error(`scripts/control-plane/up.sh failed:\n${up.stderr}`);
        const reused = /already running/.test(up.stderr);
        if (!reused) cleanup.add('stop the control plane', async () => { await runCommand('bash', [join(root, 'scripts', 'control-plane', 'down.sh')], { cwd: root }); });
        const kubeconfig = join(root, '.dev', 'kubeconfig');
        const kc = new KubeConfig();
        kc.loadFromFile(kubeconfig);
        return { kubeconfig, kc, server: kc.getCurrentCluster()?.server ?? '?', description: reused ? 'reused the running local control plane' : 'local etcd + kube-apiserver' } satisfies Cluster;
      }
      const kubeconfig = process.env['KUBECONFIG']?.split(':')[0] || join(homedir(), '.kube', 'config');
      const kc = new KubeConfig();
      loadKubeconfig(kc, undefined, systemPlaces(), null);
      return { kubeconfig, kc, server: kc.getCurrentCluster()?.server ?? '?', description: `context ${kc.getCurrentContext()}` } satisfies Cluster;
    }, (c) => `cluster: ${c.description} at ${c.server}`);
    const env = { ...process.env, KUBECONFIG: cluster.kubeconfig };
    const core = cluster.kc.makeApiClient(CoreV1Api);
    const custom = cluster.kc.makeApiClient(CustomObjectsApi);
    const admission = cluster.kc.makeApiClient(AdmissionregistrationV1Api);
    const kubectl = kubectlBinary();

    // 2. CRDs.
    const crdNames = ['delegatedcredentials', 'delegationsigners', 'clusterdelegationsigners'].map((r) => `crd/${r}.dc-operator.io`);
    await p.step('installing the CRDs', async () => {
      const crdDir = join(root, 'crds');
      // A real cluster may have them from the chart already: leave those (and their owner) alone.
      if (mode === 'current' && (await runCommand(kubectl, ['get', ...crdNames], { env })).code === 0) {
        const wait = await runCommand(kubectl, ['wait', '--for=condition=Established', '--timeout=60s', ...crdNames], { env });
        if (wait.code !== 0) throw new Error(`CRDs not Established:\n${wait.stderr}`);
        return 'already installed';
      }
      const apply = await runCommand(kubectl, ['apply', '--server-side', '--force-conflicts', '-f', crdDir], { env });
      if (apply.code !== 0) throw new Error(`kubectl apply -f crds/ failed:\n${apply.stderr}`);
      const wait = await runCommand(kubectl, ['wait', '--for=condition=Established', '--timeout=60s', '-f', crdDir], { env });
      if (wait.code !== 0) throw new Error(`CRDs not Established:\n${wait.stderr}`);
      return 'installed';
    }, (how) => `CRDs ${how} and Established (${readdirSync(join(root, 'crds')).filter((f) => f.endsWith('.yaml')).length}: DelegatedCredential, DelegationSigner, ClusterDelegationSigner)`);

    // 3. Namespaces: the operator's (never injected) and the app's.
    await p.step('creating namespaces', async () => {
      for (const name of [systemNs, appNs]) {
        await core.createNamespace({ body: { metadata: { name, labels: { 'dc-operator.io/demo': id } } } });
        cleanup.add(`delete namespace ${name}`, async () => { await core.deleteNamespace({ name }); });
      }
      // No kube-controller-manager on the local control plane: Pod admission needs this account.
      await core.createNamespacedServiceAccount({ namespace: appNs, body: { metadata: { name: 'default' } } }).catch((err: unknown) => {
        if ((err as { code?: number }).code !== 409) throw err;
      });
    }, () => `namespaces ${appNs} (app) and ${systemNs} (operator)`);

    // 4. The operator and the webhook.
    const procs: Child[] = [];
    cleanup.add('stop the operator, webhook and sidecar', async () => { await Promise.all(procs.map((c) => c.stop())); });
    const controllerPort = await freePort();
    const webhookPort = await freePort();
    await p.step('starting the operator and the webhook', async () => {
      const controller = startChild('dc-operator controller', node, [dcOperator, 'controller', '--namespace', appNs, '--operator-namespace', systemNs,
        '--metrics-port', String(controllerPort), '--metrics-address', '127.0.0.1', '--no-leader-election'], join(logDir, 'controller.log'), env);
      procs.push(controller);
      // The API server calls the webhook at a loopback URL; only the demo namespace is sent, and
      // failurePolicy Ignore, so the demo can never block pod creations elsewhere in a real cluster.
      const mwc = buildMutatingWebhookConfiguration({
        name: webhookConfigName, endpoint: { url: `https://127.0.0.1:${webhookPort}/mutate` }, operatorNamespace: systemNs, failurePolicy: 'Ignore',
      });
      for (const w of mwc.webhooks ?? []) w.namespaceSelector = { matchLabels: { 'kubernetes.io/metadata.name': appNs } };
      await admission.createMutatingWebhookConfiguration({ body: mwc });
      cleanup.add('delete the MutatingWebhookConfiguration', async () => { await admission.deleteMutatingWebhookConfiguration({ name: webhookConfigName }); });
      const webhook = startChild('dc-operator webhook', node, [dcOperator, 'webhook', '--namespace', systemNs, '--address', '127.0.0.1',
        '--port', String(webhookPort), '--configuration', webhookConfigName, '--shutdown-delay', '0'], join(logDir, 'webhook.log'), env);
      procs.push(webhook);
      await waitForHttp200(`http://127.0.0.1:${controllerPort}/readyz`, 30_000, controller);
      await waitFor('the webhook to write its caBundle', 30_000, async () => {
        const c = await admission.readMutatingWebhookConfiguration({ name: webhookConfigName });
        return c.webhooks?.every((w) => w.clientConfig.caBundle) ? true : undefined;
      }, webhook);
      await waitFor('webhook /readyz', 30_000, () => httpsStatus(`https://127.0.0.1:${webhookPort}/readyz`).then((s) => (s === 200 ? true : undefined)), webhook);
      return { controller, webhook };
    }, (r) => `operator (pid ${r.controller.proc.pid}, :${controllerPort}/metrics) and webhook (pid ${r.webhook.proc.pid}, https :${webhookPort}) running`);

    // 5. A development CA and a certificate that may delegate (made while the cluster starts).
    await p.step('creating a dev CA and a certificate with DelegationUsage', () => pki.promise,
      () => 'dcctl: dev CA + certificate for localhost/127.0.0.1 with DelegationUsage (1.3.6.1.4.1.44363.44)');

    // 6. The certificate Secret and a DelegatedCredential; the operator issues.
    await p.step('issuing delegated credentials', async () => {
      await core.createNamespacedSecret({
        namespace: appNs,
        body: {
          metadata: { name: 'web-cert' }, type: 'kubernetes.io/tls',
          stringData: { 'tls.crt': readFileSync(join(certDir, 'tls.crt'), 'utf8'), 'tls.key': readFileSync(join(certDir, 'tls.key'), 'utf8') },
        },
      });
      await custom.createNamespacedCustomObject({
        group: DC_GROUP, version: DC_VERSION, namespace: appNs, plural: DC_PLURAL,
        body: {
          apiVersion: 'dc-operator.io/v1alpha1', kind: 'DelegatedCredential', metadata: { name: 'web-dc' },
          spec: { certificateSecretRef: { name: 'web-cert' }, algorithms: ['ecdsa_secp256r1_sha256', 'ed25519'], validity: '1h', secretName: 'web-dc' },
        },
      });
      return waitFor('DelegatedCredential web-dc Ready', 60_000, async () => {
        const dc = (await custom.getNamespacedCustomObject({ group: DC_GROUP, version: DC_VERSION, namespace: appNs, plural: DC_PLURAL, name: 'web-dc' })) as { status?: DelegatedCredentialStatus };
        const ready = dc.status?.conditions?.find((c) => c.type === 'Ready');
        if (ready?.status === 'False' && ready.reason !== 'Issuing') throw new Error(`Ready=False ${ready.reason}: ${ready.message}`);
        return ready?.status === 'True' ? dc.status : undefined;
      }, procs[0]);
    }, (s) => `DelegatedCredential ${appNs}/web-dc Ready: ${(s.credentials ?? []).map((c) => c.algorithm).join(', ')}; valid until ${s.credentials?.[0]?.notAfter ?? '?'}, renewal at ${s.renewalTime ?? '?'}`);

    // 7. The issued Secret, laid out as kubelet mounts it.
    const volume = join(work, 'credentials');
    await p.step('writing the issued Secret as a kubelet volume', async () => {
      const secret = await core.readNamespacedSecret({ namespace: appNs, name: 'web-dc' });
      const data = Object.fromEntries(Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')]));
      if (Object.keys(data).includes('tls.key')) throw new Error('the output Secret holds the certificate key; it never should');
      writeKubeletVolume(volume, data);
      return { type: secret.type ?? '?', names: Object.keys(data).sort() };
    }, (f) => `Secret web-dc (${f.type}) → ${volume}: ${f.names.join(', ')} (via ..data → ..<timestamp>/; no certificate key)`);

    // 8. The webhook injects the sidecar into an annotated pod (server-side dry run: nothing is stored).
    await p.step('asking the webhook to inject an annotated pod (dry run)', async () => {
      const pod: V1Pod = {
        metadata: { name: 'web', annotations: { 'dc-operator.io/inject': 'web-dc', 'dc-operator.io/upstream-port': '8080' } },
        spec: { containers: [{ name: 'app', image: 'nginxinc/nginx-unprivileged:1.27-alpine', ports: [{ containerPort: 8080 }] }] },
      };
      const stored = await core.createNamespacedPod({ namespace: appNs, body: pod, dryRun: 'All' });
      const injected = [...(stored.spec?.initContainers ?? []).map((c) => ({ c, where: 'native sidecar (initContainers, restartPolicy Always)' })),
        ...(stored.spec?.containers ?? []).map((c) => ({ c, where: 'containers' }))].find((x) => x.c.name === SIDECAR_CONTAINER_NAME);
      if (!injected) throw new Error(`the webhook did not inject ${SIDECAR_CONTAINER_NAME}; see ${join(logDir, 'webhook.log')}`);
      return `${injected.where}: ${[...(injected.c.command ?? []), ...(injected.c.args ?? [])].slice(0, 2).join(' ')} …, Secret web-dc mounted read-only`;
    }, (s) => `webhook injected ${SIDECAR_CONTAINER_NAME} as a ${s}`);

    // 9. An app and the sidecar in front of it.
    const app = await startApp();
    cleanup.add('stop the app', () => new Promise<void>((r) => { app.server.closeAllConnections(); app.server.close(() => r()); }));
    const sidecarPort = await freePort();
    const sidecarMetrics = await freePort();
    await p.step('starting the sidecar in front of the app', async () => {
      const sidecar = startChild('dc-operator sidecar', node, [dcOperator, 'sidecar', '--dc-dir', volume, '--listen', `127.0.0.1:${sidecarPort}`,
        '--upstream', `127.0.0.1:${app.port}`, '--metrics-port', String(sidecarMetrics), '--metrics-host', '127.0.0.1', '--drain-timeout', '1s'], join(logDir, 'sidecar.log'), env);
      procs.push(sidecar);
      await waitForHttp200(`http://127.0.0.1:${sidecarMetrics}/readyz`, 30_000, sidecar);
    }, () => `sidecar: TLS on 127.0.0.1:${sidecarPort} → app on 127.0.0.1:${app.port} (plain HTTP)`);

    // 10. Handshakes that use a delegated credential.
    await p.step('dcctl probe (our TLS 1.3 client)', async () => {
      const r = await runCommand(node, [dcctl, 'probe', `127.0.0.1:${sidecarPort}`, '--ca', join(caDir, 'ca.crt'), '--servername', 'localhost']);
      if (r.code !== 0) throw new Error(`dcctl probe exited ${r.code}:\n${r.stdout}${r.stderr}`);
      return r.stdout.trim().split('\n');
    }, (lines) => `dcctl probe: ${lines.filter((l) => /delegated credential|algorithm/.test(l)).join('; ')}`);

    const tstclnt = which('tstclnt');
    if (tstclnt) {
      await p.step('NSS tstclnt -B (Firefox\'s TLS library)', async () => {
        const db = join(work, 'nssdb');
        mkdirSync(db);
        for (const args of [['-N', '--empty-password', '-d', db], ['-A', '-n', 'demo-ca', '-t', 'C,,', '-i', join(caDir, 'ca.crt'), '-d', db]]) {
          const r = await runCommand('certutil', args);
          if (r.code !== 0) throw new Error(`certutil ${args[0]} failed: ${r.stderr}`);
        }
        const r = await runCommand(tstclnt, ['-B', '-h', '127.0.0.1', '-p', String(sidecarPort), '-d', db, '-V', 'tls1.3:tls1.3', '-a', 'localhost'],
          { input: 'GET / HTTP/1.0\r\nHost: localhost\r\n\r\n', timeoutMs: 20_000 });
        const out = r.stdout + r.stderr;
        const dcLine = out.split('\n').find((l) => l.includes('Received a Delegated Credential'));
        if (!dcLine) throw new Error(`tstclnt got no delegated credential:\n${out}`);
        const body = out.split('\n').find((l) => l.includes(APP_GREETING));
        if (!body) throw new Error(`the app's response did not come back through the sidecar:\n${out}`);
        return { dcLine: dcLine.trim(), body: body.trim() };
      }, (r) => `NSS tstclnt: "${r.dcLine}"; the app answered "${r.body}" through the sidecar`);
    } else {
      p.line('  - NSS tstclnt not installed (apt-get install libnss3-tools): skipped');
    }

    p.line(`\nDone in ${(p.elapsed() / 1000).toFixed(1)} s: a DelegatedCredential issued by the operator, served by the sidecar, accepted by DC-capable TLS clients.`);
    p.line('Try it on a cluster: helm install dc-operator charts/dc-operator -n dc-operator --create-namespace, then manifests/examples/.');
    await p.step('cleaning up', () => cleanup.run(say));
    return 0;
  } catch (err) {
    p.line(`\ndemo failed: ${err instanceof Error ? err.message : String(err)}`);
    p.line(`logs: ${logDir}`);
    await p.step('cleaning up', () => cleanup.run(say));
    return 1;
  }
}

/** A promise that is awaited later: its rejection is held (not unhandled) until then. */
function settled<T>(promise: Promise<T>): { promise: Promise<T> } {
  promise.catch(() => { /* observed when awaited */ });
  return { promise };
}

const APP_GREETING = 'hello from the app behind dc-operator';

function startApp(): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`${APP_GREETING} (${req.method} ${req.url})\n`);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const a = server.address();
      resolve({ server, port: typeof a === 'object' && a ? a.port : 0 });
    });
  });
}

/** GET over HTTPS without verifying the certificate (the webhook's own, just bootstrapped): the status code, 0 on error. */
function httpsStatus(url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = httpsGet(url, { rejectUnauthorized: false, timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
  });
}

/** kubectl on PATH, else the one scripts/control-plane/ensure.sh put next to kube-apiserver. */
function kubectlBinary(): string {
  const dir = process.env['DC_K8S_BIN_DIR'];
  if (dir && existsSync(join(dir, 'kubectl'))) return join(dir, 'kubectl');
  for (const p of (process.env['PATH'] ?? '').split(':')) if (p && existsSync(join(p, 'kubectl'))) return join(p, 'kubectl');
  const cache = join(process.env['XDG_CACHE_HOME'] ?? join(homedir(), '.cache'), 'dc-operator', 'k8s');
  if (existsSync(cache)) {
    for (const v of readdirSync(cache)) if (existsSync(join(cache, v, 'kubectl'))) return join(cache, v, 'kubectl');
  }
  return 'kubectl';
}

function which(cmd: string): string | undefined {
  for (const p of (process.env['PATH'] ?? '').split(':')) if (p && existsSync(join(p, cmd))) return join(p, cmd);
  return undefined;
}

if (isEntryPoint(import.meta.url)) {
  // Exit explicitly: the Kubernetes client's keep-alive sockets would hold the process open.
  process.exit(unsupportedRuntime('demo') ?? (await runDemo(process.argv.slice(2))));
}
