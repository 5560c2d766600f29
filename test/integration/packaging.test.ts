/**
 * The install paths against the real kube-apiserver: helm lint, manifests/install.yaml equal to a
 * fresh render of the chart, the chart's webhook configuration and RBAC equal to what the code
 * builds, `kubectl apply --server-side` of install.yaml and every example, and a helm install /
 * uninstall that keeps the CRDs.
 *
 * Cluster-scoped objects are shared with the other test files on this control plane: the helm
 * release gets a unique name (so its ClusterRoles and MutatingWebhookConfiguration do too), its
 * webhook matches no namespace, and install.yaml's MutatingWebhookConfiguration (failurePolicy Fail,
 * no webhook running) is deleted before the test ends, or it would refuse pod creations elsewhere.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AdmissionregistrationV1Api, CoordinationV1Api, CoreV1Api, CustomObjectsApi, KubeConfig, loadAllYaml, type V1MutatingWebhookConfiguration, type V1PolicyRule } from '@kubernetes/client-node';
import { ensureBinaries, freePort, helmPath, kubectlPath, repoRoot } from '../support/control-plane.js';
import { createTestNamespace, testKubeConfig, testKubeconfigPath, uniqueName, withNamespace } from '../support/cluster.js';
import { CONTROLLER_RULES, LEASE_RULES, controllerRbac } from '../../src/operator/rbac.js';
import { WEBHOOK_RBAC, buildMutatingWebhookConfiguration } from '../../src/webhook/webhook-configuration.js';
import { KEYSERVER_RULES, keyServerRbac } from '../../src/keyserver/rbac.js';
import { LABEL_SIDECAR, LABEL_SIDECAR_VALUE } from '../../src/webhook/config.js';
import { sidecarIdentityUri } from '../../src/operator/api/serving-bundle.js';
import { makeIdentityPki } from '../unit/keyserver/pki.js';

const CHART = join(repoRoot, 'charts', 'dc-operator');
const INSTALL_YAML = join(repoRoot, 'manifests', 'install.yaml');
const EXAMPLES = join(repoRoot, 'manifests', 'examples');
const CRD_NAMES = ['delegatedcredentials.dc-operator.io', 'delegationsigners.dc-operator.io', 'clusterdelegationsigners.dc-operator.io'];

interface Run {
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], opts: { env?: Record<string, string>; input?: string } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { cwd: repoRoot, maxBuffer: 64 << 20, timeout: 120_000, env: { ...process.env, ...opts.env } }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      else resolve({ stdout, stderr });
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [k: string]: unknown;
}

const docs = (yaml: string): K8sObject[] => (loadAllYaml(yaml) as Array<K8sObject | null>).filter((d): d is K8sObject => d !== null && typeof d === 'object');
const find = (objs: K8sObject[], kind: string, name: string): K8sObject => {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(o, `${kind}/${name} rendered (have: ${objs.map((x) => `${x.kind}/${x.metadata.name}`).join(', ')})`);
  return o;
};
/** JSON round trip: drops undefined, normalises key order for deepEqual. */
const plain = <T>(x: T): unknown => JSON.parse(JSON.stringify(x)) as unknown;
/** A rule with its verbs sorted and resourceNames removed, for comparing grants by shape. */
const ruleShape = (r: V1PolicyRule): unknown => plain({ apiGroups: r.apiGroups, resources: r.resources, verbs: [...(r.verbs ?? [])].sort() });

let helm: string;
let kubectl: string;
let kubeconfig: string;

async function render(release: string, namespace: string, ...set: string[]): Promise<K8sObject[]> {
  const { stdout } = await run(helm, ['template', release, CHART, '--namespace', namespace, ...set.flatMap((s) => ['--set', s])]);
  return docs(stdout);
}

async function crdsEstablished(): Promise<void> {
  const custom = (await testKubeConfig()).makeApiClient(CustomObjectsApi);
  const deadline = Date.now() + 30_000;
  for (const name of CRD_NAMES) {
    for (;;) {
      const crd = (await custom.getClusterCustomObject({ group: 'apiextensions.k8s.io', version: 'v1', plural: 'customresourcedefinitions', name })) as {
        status?: { conditions?: Array<{ type: string; status: string }> };
      };
      if (crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) break;
      assert.ok(Date.now() < deadline, `CRD ${name} Established within 30 s`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/** A kubeconfig file that authenticates as a ServiceAccount through a TokenRequest. */
async function serviceAccountKubeconfig(dir: string, namespace: string, serviceAccount: string): Promise<string> {
  const admin = await testKubeConfig();
  const token = await admin.makeApiClient(CoreV1Api).createNamespacedServiceAccountToken({ namespace, name: serviceAccount, body: { spec: { audiences: [], expirationSeconds: 3600 } } });
  const cluster = admin.getCurrentCluster();
  assert.ok(cluster);
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'test', server: cluster.server, caData: cluster.caData, caFile: cluster.caFile, skipTLSVerify: cluster.skipTLSVerify }],
    users: [{ name: serviceAccount, token: token.status?.token }],
    contexts: [{ name: 'sa', cluster: 'test', user: serviceAccount }],
    currentContext: 'sa',
  });
  const file = join(dir, `${serviceAccount}.kubeconfig`);
  writeFileSync(file, kc.exportConfig(), { mode: 0o600 });
  return file;
}

async function until<T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined>, logs: () => string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}\n${logs()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

void describe('packaging', () => {
  before(async () => {
    helm = helmPath();
    kubectl = kubectlPath(ensureBinaries());
    kubeconfig = await testKubeconfigPath();
  });

  void it('passes helm lint --strict, with default values and with every optional part switched on', async () => {
    await run(helm, ['lint', '--strict', CHART]);
    await run(helm, ['lint', '--strict', CHART, '--set', 'webhook.certMode=cert-manager', '--set', 'controller.watchNamespaces={apps,shop}',
      '--set', 'metrics.serviceMonitor.enabled=true', '--set', 'namespace.create=true', '--set', 'crds.keep=false']);
  });

  void it('refuses values the schema does not allow', async () => {
    await assert.rejects(run(helm, ['template', 'x', CHART, '--set', 'webhook.failurePolicy=Sometimes']), /failurePolicy/);
    await assert.rejects(run(helm, ['template', 'x', CHART, '--set', 'webhook.timeoutSeconds=31']), /timeoutSeconds/);
    await assert.rejects(run(helm, ['template', 'x', CHART, '--set', 'controlller.replicas=1']), /controlller/);
    // Without leader election only one replica may run (every replica would reconcile).
    await assert.rejects(run(helm, ['template', 'x', CHART, '--set', 'controller.leaderElection=false']), /controller\.leaderElection=false needs controller\.replicas=1 \(got 2\)/);
    const single = docs((await run(helm, ['template', 'x', CHART, '--set', 'controller.leaderElection=false', '--set', 'controller.replicas=1'])).stdout);
    const controller = find(single, 'Deployment', 'x-dc-operator-controller') as unknown as { spec: { replicas: number; template: { spec: { containers: Array<{ args: string[] }> } } } };
    assert.equal(controller.spec.replicas, 1);
    assert.ok(controller.spec.template.spec.containers[0]?.args.includes('--no-leader-election'));
  });

  void it('has manifests/install.yaml equal to a fresh render of the chart (run `make manifests` when this fails)', async () => {
    const text = readFileSync(INSTALL_YAML, 'utf8');
    const header = text.split('\n').slice(0, 2);
    const command = /^# helm (.+)$/.exec(header[1] ?? '')?.[1];
    assert.ok(command, 'install.yaml records the helm command that rendered it on its second line');
    const { stdout } = await run(helm, command.split(' '));
    const body = text.split('\n').slice(2).join('\n');
    assert.ok(body === stdout, 'manifests/install.yaml differs from the chart: run `make manifests`');
  });

  void it('renders the MutatingWebhookConfiguration the webhook code builds, with values for failurePolicy, timeout and namespaces', async () => {
    const ns = 'dc-operator';
    const objs = await render('dc-operator', ns);
    const chart = find(objs, 'MutatingWebhookConfiguration', 'dc-operator-webhook') as unknown as V1MutatingWebhookConfiguration;
    const code = buildMutatingWebhookConfiguration({ endpoint: { service: { namespace: ns, name: 'dc-operator-webhook', port: 443 } }, operatorNamespace: ns });
    assert.equal(chart.metadata?.name, code.metadata?.name);
    assert.deepEqual(plain(chart.webhooks), plain(code.webhooks));

    const tuned = find(await render('dc-operator', ns, 'webhook.failurePolicy=Ignore', 'webhook.timeoutSeconds=3', 'webhook.requireLabel=true',
      'webhook.injectAllNamespaces=true', 'webhook.excludedNamespaces={istio-system,monitoring}'), 'MutatingWebhookConfiguration', 'dc-operator-webhook') as unknown as V1MutatingWebhookConfiguration;
    const tunedCode = buildMutatingWebhookConfiguration({
      endpoint: { service: { namespace: ns, name: 'dc-operator-webhook', port: 443 } }, operatorNamespace: ns,
      failurePolicy: 'Ignore', timeoutSeconds: 3, requireLabel: true, injectAllNamespaces: true, excludedNamespaces: ['istio-system', 'monitoring'],
    });
    assert.deepEqual(plain(tuned.webhooks), plain(tunedCode.webhooks));
  });

  void it('grants the controller exactly src/operator/rbac.ts and the webhook what WEBHOOK_RBAC lists, narrowed by name', async () => {
    const objs = await render('dc-operator', 'dc-operator');
    const controllerRole = find(objs, 'ClusterRole', 'dc-operator-controller') as unknown as { rules: V1PolicyRule[] };
    assert.deepEqual(controllerRole.rules.map(ruleShape), CONTROLLER_RULES.map(ruleShape));
    const keyserverRole = find(objs, 'ClusterRole', 'dc-operator-keyserver') as unknown as { rules: V1PolicyRule[] };
    assert.deepEqual(keyserverRole.rules.map(ruleShape), KEYSERVER_RULES.map(ruleShape));
    assert.ok(keyserverRole.rules.every((r) => r.verbs?.every((v) => ['get', 'list', 'watch'].includes(v))), 'the key server only reads');
    const lease = find(objs, 'Role', 'dc-operator-controller-leader-election') as unknown as { rules: V1PolicyRule[] };
    const leaseVerbs = lease.rules.flatMap((r) => r.verbs).sort();
    assert.deepEqual(leaseVerbs, [...(LEASE_RULES[0]?.verbs ?? [])].sort());
    assert.ok(lease.rules.every((r) => r.apiGroups?.[0] === 'coordination.k8s.io' && r.resources?.[0] === 'leases'));
    assert.deepEqual(lease.rules.find((r) => r.resourceNames)?.resourceNames, ['dc-operator-controller']);

    const webhookCluster = find(objs, 'ClusterRole', 'dc-operator-webhook') as unknown as { rules: V1PolicyRule[] };
    const webhookNs = find(objs, 'Role', 'dc-operator-webhook') as unknown as { rules: V1PolicyRule[] };
    const verbsFor = (rules: V1PolicyRule[], resource: string): string[] => rules.filter((r) => r.resources?.includes(resource)).flatMap((r) => r.verbs).sort();
    for (const want of WEBHOOK_RBAC.clusterRules) {
      for (const res of want.resources) assert.deepEqual(verbsFor(webhookCluster.rules, res), [...want.verbs].sort(), `webhook ClusterRole verbs on ${res}`);
    }
    for (const want of WEBHOOK_RBAC.namespaceRules) {
      for (const res of want.resources) assert.deepEqual(verbsFor(webhookNs.rules, res), [...want.verbs].sort(), `webhook Role verbs on ${res}`);
    }
    assert.deepEqual(webhookCluster.rules.find((r) => r.resources?.includes('mutatingwebhookconfigurations'))?.resourceNames, ['dc-operator-webhook']);
    assert.deepEqual(webhookNs.rules.find((r) => r.resourceNames)?.resourceNames, ['dc-operator-webhook-ca']);
    // No wildcard anywhere, no Secret patch; only the controller may delete a Secret (its own
    // stale output after spec.secretName changed, guarded by uid preconditions, as cert-manager's
    // controller may), never the webhook.
    for (const o of objs.filter((x) => x.kind === 'ClusterRole' || x.kind === 'Role')) {
      for (const r of (o as unknown as { rules: V1PolicyRule[] }).rules) {
        assert.ok(![...(r.verbs ?? []), ...(r.resources ?? []), ...(r.apiGroups ?? [])].includes('*'), `${o.kind}/${o.metadata.name} has no wildcard`);
        if (!r.resources?.includes('secrets')) continue;
        assert.ok(!r.verbs?.includes('patch'), `${o.kind}/${o.metadata.name} may not patch Secrets`);
        if (/webhook/.test(o.metadata.name ?? '')) assert.ok(!r.verbs?.includes('delete'), `${o.kind}/${o.metadata.name} may not delete Secrets`);
      }
    }
  });

  void it('with controller.watchNamespaces renders the Roles src/operator/rbac.ts builds: one per namespace, one to read signer Secrets, and a ClusterRole without Secrets', async () => {
    type Rbac = K8sObject & { rules?: V1PolicyRule[]; roleRef?: { kind: string; name: string }; subjects?: Array<{ kind: string; name: string; namespace?: string }> };
    const ours = (o: K8sObject): boolean => o.metadata.name.startsWith('dc-operator-controller') && !o.metadata.name.endsWith('-leader-election');
    const cases: Array<{ set: string[]; watch: string[]; clusterResourceNamespace?: string; signerKeysRole: boolean }> = [
      { set: ['controller.watchNamespaces={shop,pay}'], watch: ['shop', 'pay'], signerKeysRole: true },
      // The cluster resource namespace watched anyway: its Role already reads Secrets.
      { set: ['controller.watchNamespaces={shop,dc-operator}'], watch: ['shop', 'dc-operator'], signerKeysRole: false },
      { set: ['controller.watchNamespaces={shop}', 'controller.clusterResourceNamespace=cert-ops'], watch: ['shop'], clusterResourceNamespace: 'cert-ops', signerKeysRole: true },
      // The deprecated single value still works, merged into the list.
      { set: ['controller.watchNamespaces={shop}', 'controller.watchNamespace=pay'], watch: ['shop', 'pay'], signerKeysRole: true },
    ];
    for (const c of cases) {
      const objs = (await render('dc-operator', 'dc-operator', ...c.set)) as Rbac[];
      const code = controllerRbac({ namespace: 'dc-operator', serviceAccount: 'dc-operator-controller', watchNamespaces: c.watch, clusterResourceNamespace: c.clusterResourceNamespace });
      const what = c.set.join(' ');
      const clusterRole = find(objs, 'ClusterRole', 'dc-operator-controller') as Rbac;
      assert.deepEqual(clusterRole.rules?.map(ruleShape), code.clusterRole.rules?.map(ruleShape), `${what}: ClusterRole`);
      assert.ok(!clusterRole.rules?.some((r) => r.resources?.includes('secrets')), `${what}: no Secret rights cluster-wide`);

      const key = (o: { metadata?: { namespace?: string; name?: string } }): string => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
      const chartRoles = objs.filter((o) => o.kind === 'Role' && ours(o)).map((o) => [key(o), o.rules?.map(ruleShape)] as const).sort();
      const codeRoles = code.roles.map((r) => [key(r.role), r.role.rules?.map(ruleShape)] as const).sort();
      assert.deepEqual(chartRoles, codeRoles, `${what}: Roles`);
      assert.equal(chartRoles.some(([k]) => k.endsWith('-signer-keys')), c.signerKeysRole, `${what}: signer-keys Role`);
      const chartBindings = objs.filter((o) => o.kind === 'RoleBinding' && ours(o)).map((o) => plain([key(o), o.roleRef, o.subjects])).sort();
      const codeBindings = code.roles.map((r) => plain([key(r.roleBinding), r.roleBinding.roleRef, r.roleBinding.subjects])).sort();
      assert.deepEqual(chartBindings, codeBindings, `${what}: RoleBindings`);

      const deployment = find(objs, 'Deployment', 'dc-operator-controller') as unknown as { spec: { template: { spec: { containers: Array<{ args: string[] }> } } } };
      const args = deployment.spec.template.spec.containers[0]?.args ?? [];
      assert.deepEqual(args.filter((a) => a.startsWith('--namespace=')), c.watch.map((n) => `--namespace=${n}`), `${what}: the controller watches those namespaces`);

      // The key server watches what the controller watches, with the rights src/keyserver/rbac.ts builds.
      const ks = keyServerRbac({ namespace: 'dc-operator', serviceAccount: 'dc-operator-keyserver', watchNamespaces: c.watch, clusterResourceNamespace: c.clusterResourceNamespace });
      const ksOurs = (o: K8sObject): boolean => o.metadata.name.startsWith('dc-operator-keyserver');
      assert.deepEqual((find(objs, 'ClusterRole', 'dc-operator-keyserver') as Rbac).rules?.map(ruleShape), ks.clusterRole.rules?.map(ruleShape), `${what}: key server ClusterRole`);
      assert.deepEqual(
        objs.filter((o) => o.kind === 'Role' && ksOurs(o)).map((o) => [key(o), o.rules?.map(ruleShape)] as const).sort(),
        ks.roles.map((r) => [key(r.role), r.role.rules?.map(ruleShape)] as const).sort(),
        `${what}: key server Roles`,
      );
      assert.deepEqual(
        objs.filter((o) => o.kind === 'RoleBinding' && ksOurs(o)).map((o) => plain([key(o), o.roleRef, o.subjects])).sort(),
        ks.roles.map((r) => plain([key(r.roleBinding), r.roleBinding.roleRef, r.roleBinding.subjects])).sort(),
        `${what}: key server RoleBindings`,
      );
      const ksDeployment = find(objs, 'Deployment', 'dc-operator-keyserver') as unknown as { spec: { template: { spec: { containers: Array<{ args: string[] }> } } } };
      const ksArgs = ksDeployment.spec.template.spec.containers[0]?.args ?? [];
      assert.deepEqual(ksArgs.filter((a) => a.startsWith('--namespace=')), c.watch.map((n) => `--namespace=${n}`), `${what}: the key server watches those namespaces`);
    }
  });

  void it("the key server's metrics name tenants unless metricsPerIdentity, and networkPolicy.metricsFrom narrows who reaches the metrics port", async () => {
    type Policy = { spec: { ingress: Array<{ ports: Array<{ port: string }>; from?: unknown[] }> } };
    type Deployment = { spec: { template: { spec: { containers: Array<{ args: string[] }> } } } };
    const metricsRule = (objs: K8sObject[]) => (find(objs, 'NetworkPolicy', 'dc-operator-keyserver') as unknown as Policy).spec.ingress.find((r) => r.ports.some((p) => p.port === 'metrics'));
    const args = (objs: K8sObject[]) => (find(objs, 'Deployment', 'dc-operator-keyserver') as unknown as Deployment).spec.template.spec.containers[0]?.args ?? [];
    const defaults = await render('dc-operator', 'dc-operator');
    assert.equal(metricsRule(defaults)?.from, undefined, 'open by default');
    assert.ok(!args(defaults).includes('--metrics-per-identity'));
    const narrowed = await render('dc-operator', 'dc-operator', 'keyserver.networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name=monitoring', 'keyserver.metricsPerIdentity=true');
    assert.deepEqual(metricsRule(narrowed)?.from, [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }]);
    assert.ok(args(narrowed).includes('--metrics-per-identity'));
  });

  void it('runs two replicas of each Deployment as non-root with a read-only root filesystem, probes, resources and a PDB, and passes sidecar settings to the webhook', async () => {
    const objs = await render('dc-operator', 'dc-operator', 'sidecar.image.repository=registry.example/dc', 'sidecar.image.tag=v9',
      'sidecar.resources.requests.cpu=25m', 'sidecar.resources.limits.memory=64Mi', 'webhook.logLevel=debug');
    for (const component of ['controller', 'webhook', 'keyserver']) {
      const d = find(objs, 'Deployment', `dc-operator-${component}`) as unknown as {
        spec: { replicas: number; template: { spec: { serviceAccountName: string; securityContext: Record<string, unknown>; containers: Array<Record<string, unknown> & { args: string[]; securityContext: Record<string, unknown> }> } } };
      };
      assert.equal(d.spec.replicas, 2);
      assert.equal(d.spec.template.spec.serviceAccountName, `dc-operator-${component}`);
      assert.equal(d.spec.template.spec.securityContext['runAsNonRoot'], true);
      const c = d.spec.template.spec.containers[0];
      assert.ok(c);
      assert.equal(c.args[0], component);
      assert.deepEqual(plain(c.securityContext), {
        allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true,
        capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' },
      });
      for (const probe of ['livenessProbe', 'readinessProbe', 'resources']) assert.ok(c[probe], `${component} ${probe}`);
      find(objs, 'PodDisruptionBudget', `dc-operator-${component}`);
    }
    const controller = find(objs, 'Deployment', 'dc-operator-controller') as unknown as { spec: { template: { spec: { containers: Array<{ args: string[]; livenessProbe: { httpGet: { path: string } }; readinessProbe: { httpGet: { path: string } } }> } } } };
    const cc = controller.spec.template.spec.containers[0];
    assert.equal(cc?.livenessProbe.httpGet.path, '/healthz');
    assert.equal(cc?.readinessProbe.httpGet.path, '/readyz');
    assert.ok(!cc?.args.includes('--no-leader-election'), 'leader election on');
    assert.ok(cc?.args.includes('--keyserver-address=dc-operator-keyserver.dc-operator.svc:2407'), 'the controller is told where the key server is');

    // The key server: --from-cluster, its Service on 2407, a NetworkPolicy admitting injected pods and the controller.
    const keyserver = find(objs, 'Deployment', 'dc-operator-keyserver') as unknown as { spec: { template: { spec: { affinity: unknown; containers: Array<{ args: string[] }> } } } };
    const ksArgs = keyserver.spec.template.spec.containers[0]?.args ?? [];
    for (const a of ['--from-cluster', '--port=2407', '--trust-domain=cluster.local']) assert.ok(ksArgs.includes(a), `${a} in ${ksArgs.join(' ')}`);
    assert.ok(JSON.stringify(keyserver.spec.template.spec.affinity).includes('preferredDuringSchedulingIgnoredDuringExecution'), 'replicas spread over nodes');
    const ksService = find(objs, 'Service', 'dc-operator-keyserver') as unknown as { spec: { ports: Array<{ name: string; port: number }> } };
    assert.equal(ksService.spec.ports.find((p) => p.name === 'keyless')?.port, 2407);
    const policy = find(objs, 'NetworkPolicy', 'dc-operator-keyserver') as unknown as { spec: { ingress: Array<{ ports: Array<{ port: string }>; from?: Array<{ podSelector?: { matchLabels?: Record<string, string> } }> }> } };
    const keylessIngress = policy.spec.ingress.find((i) => i.ports.some((p) => p.port === 'keyless'));
    assert.deepEqual(keylessIngress?.from?.map((f) => plain(f.podSelector?.matchLabels)), [
      { [LABEL_SIDECAR]: LABEL_SIDECAR_VALUE },
      { 'app.kubernetes.io/name': 'dc-operator', 'app.kubernetes.io/instance': 'dc-operator', 'app.kubernetes.io/component': 'controller' },
    ]);
    // Every component that derives SPIFFE identities gets the chart's trustDomain: the controller
    // writes it into the sidecars' client certificates and its own ping identity, the key server
    // refuses every other trust domain (the webhook and the sidecar derive none).
    const td = await render('dc-operator', 'dc-operator', 'trustDomain=example.org');
    for (const component of ['controller', 'keyserver']) {
      const d = find(td, 'Deployment', `dc-operator-${component}`) as unknown as { spec: { template: { spec: { containers: Array<{ args: string[] }> } } } };
      const tdArgs = (d.spec.template.spec.containers[0]?.args ?? []).filter((a) => a.startsWith('--trust-domain'));
      assert.deepEqual(tdArgs, ['--trust-domain=example.org'], `the ${component} is given trustDomain`);
    }
    for (const component of ['webhook']) {
      const d = find(td, 'Deployment', `dc-operator-${component}`) as unknown as { spec: { template: { spec: { containers: Array<{ args: string[] }> } } } };
      assert.ok(!(d.spec.template.spec.containers[0]?.args ?? []).some((a) => a.includes('example.org')), `the ${component} derives no identity`);
    }
    const off = await render('dc-operator', 'dc-operator', 'keyserver.enabled=false');
    assert.ok(!off.some((o) => o.metadata.name.includes('keyserver')), 'keyserver.enabled=false renders no key server');
    const offController = find(off, 'Deployment', 'dc-operator-controller') as unknown as { spec: { template: { spec: { containers: Array<{ args: string[] }> } } } };
    assert.ok(!offController.spec.template.spec.containers[0]?.args.some((a) => a.startsWith('--keyserver-address')));
    const webhook = find(objs, 'Deployment', 'dc-operator-webhook') as unknown as { spec: { template: { spec: { containers: Array<{ args: string[] }> } } } };
    const args = webhook.spec.template.spec.containers[0]?.args ?? [];
    for (const a of ['--log-level=debug', '--sidecar-image=registry.example/dc:v9', '--sidecar-requests=cpu=25m,memory=32Mi', '--sidecar-limits=memory=64Mi', '--service=dc-operator-webhook', '--configuration=dc-operator-webhook']) {
      assert.ok(args.includes(a), `${a} in ${args.join(' ')}`);
    }
    // The webhook's flags parse: `dc-operator webhook <args> --print-configuration` accepts them.
    const { stdout } = await run(process.execPath, [join(repoRoot, 'dist/src/cli/dc-operator.js'), ...args, '--namespace', 'dc-operator', '--print-configuration']);
    assert.match(stdout, /kind: MutatingWebhookConfiguration/);
    // null sidecar limits/requests mean none, not the webhook's own defaults (128Mi).
    const noLimits = find(await render('dc-operator', 'dc-operator', 'sidecar.resources.limits=null'), 'Deployment', 'dc-operator-webhook') as unknown as { spec: { template: { spec: { containers: Array<{ args: string[] }> } } } };
    const noLimitsArgs = noLimits.spec.template.spec.containers[0]?.args ?? [];
    assert.ok(noLimitsArgs.includes('--sidecar-limits=none') && noLimitsArgs.includes('--sidecar-requests=cpu=10m,memory=32Mi'), noLimitsArgs.join(' '));
    await run(process.execPath, [join(repoRoot, 'dist/src/cli/dc-operator.js'), ...noLimitsArgs, '--namespace', 'dc-operator', '--print-configuration']);
  });

  void it('applies manifests/install.yaml and every example with kubectl apply --server-side', async () => {
    const env = { KUBECONFIG: kubeconfig };
    try {
      // --force-conflicts: the CRDs are shared by every test file on this control plane, and a helm
      // release installed earlier (this file's own, on a re-used control plane) owns their labels.
      const applied = await run(kubectl, ['apply', '--server-side', '--force-conflicts', '-f', INSTALL_YAML], { env });
      for (const o of docs(readFileSync(INSTALL_YAML, 'utf8'))) {
        assert.match(applied.stdout, new RegExp(`/${o.metadata.name} serverside-applied`), `${o.kind}/${o.metadata.name} applied`);
      }
      await crdsEstablished();
      await run(kubectl, ['get', '-f', INSTALL_YAML], { env });
      await withNamespace(async (ns) => {
        for (const f of readdirSync(EXAMPLES).filter((x) => x.endsWith('.yaml')).sort()) {
          const out = await run(kubectl, ['apply', '--server-side', '-n', ns.name, '-f', join(EXAMPLES, f)], { env });
          for (const o of docs(readFileSync(join(EXAMPLES, f), 'utf8'))) {
            assert.match(out.stdout, new RegExp(`/${o.metadata.name} serverside-applied`), `${f}: ${o.kind}/${o.metadata.name}`);
          }
        }
        const dc = await run(kubectl, ['get', 'dc', '-n', ns.name, '-o', 'name'], { env });
        assert.deepEqual(dc.stdout.trim().split('\n').sort(), ['delegatedcredential.dc-operator.io/web-dc', 'delegatedcredential.dc-operator.io/web-keyless-dc']);
      }, 'pkg-examples');
    } finally {
      // The MutatingWebhookConfiguration (failurePolicy Fail, no webhook running) would refuse pod
      // creations in other test files: delete it. The rest stays, harmless without a kubelet; the
      // namespace too, since without kube-controller-manager a deleted namespace stays Terminating
      // and a second run on the same control plane could not apply into it.
      await run(kubectl, ['delete', '--ignore-not-found', 'mutatingwebhookconfiguration/dc-operator-webhook'], { env });
    }
  });

  void it('helm install creates every object and Established CRDs; helm uninstall removes them but keeps the CRDs (crds.keep)', async () => {
    const env = { KUBECONFIG: kubeconfig };
    const release = uniqueName('pkg');
    await withNamespace(async (ns) => {
      let installed = false;
      try {
        // --take-ownership: the CRDs may exist already (other test files apply crds/ to this control plane).
        // The webhook is scoped to no namespace at all: nothing answers it here, and failurePolicy is Fail.
        await run(helm, ['install', release, CHART, '--namespace', ns.name, '--take-ownership',
          '--set', 'webhook.namespaceSelector.matchExpressions[0].key=dc-operator.test/never',
          '--set', 'webhook.namespaceSelector.matchExpressions[0].operator=Exists'], { env });
        installed = true;
        const { stdout: manifest } = await run(helm, ['get', 'manifest', release, '--namespace', ns.name], { env });
        const objs = docs(manifest);
        const kinds = new Set(objs.map((o) => o.kind));
        for (const k of ['CustomResourceDefinition', 'Deployment', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding',
          'Service', 'PodDisruptionBudget', 'MutatingWebhookConfiguration']) assert.ok(kinds.has(k), `release has a ${k}`);
        const got = await run(kubectl, ['get', '-n', ns.name, '-f', '-', '-o', 'name'], { env, input: manifest });
        assert.equal(got.stdout.trim().split('\n').length, objs.length, 'every object of the release exists');
        await crdsEstablished();
        for (const crd of objs.filter((o) => o.kind === 'CustomResourceDefinition')) {
          assert.equal(crd.metadata.annotations?.['helm.sh/resource-policy'], 'keep');
        }

        await run(helm, ['uninstall', release, '--namespace', ns.name, '--wait'], { env });
        installed = false;
        await assert.rejects(run(kubectl, ['get', `clusterrole/${release}-dc-operator-controller`], { env }), /NotFound/);
        await assert.rejects(run(kubectl, ['get', `mutatingwebhookconfiguration/${release}-dc-operator-webhook`], { env }), /NotFound/);
        await assert.rejects(run(kubectl, ['get', '-n', ns.name, `deployment/${release}-dc-operator-controller`], { env }), /NotFound/);
        const crds = await run(kubectl, ['get', 'crd', ...CRD_NAMES, '-o', 'name'], { env });
        assert.equal(crds.stdout.trim().split('\n').length, CRD_NAMES.length, 'the CRDs survive helm uninstall');
        await crdsEstablished();
      } finally {
        if (installed) await run(helm, ['uninstall', release, '--namespace', ns.name], { env }).catch(() => undefined);
      }
    }, 'pkg-helm');
  });

  /**
   * helm install, then the controller and the webhook run with tokens of the chart's ServiceAccounts
   * and the chart's arguments; the DelegatedCredential lives in appNs (the release namespace when
   * not given). watchNamespaces: the chart's controller.watchNamespaces (and --namespace) names
   * appNs, and a second DelegatedCredential signs with a ClusterDelegationSigner whose key Secret
   * lives in the cluster resource namespace (read and watched through the -signer-keys Role).
   */
  async function runWithChartRbac(opts: { watchNamespaces?: boolean }): Promise<void> {
    const env = { KUBECONFIG: kubeconfig };
    const release = uniqueName('rbac');
    const full = `${release}-dc-operator`;
    const work = mkdtempSync(join(tmpdir(), 'dc-pkg-rbac-'));
    const procs: ChildProcess[] = [];
    let output = '';
    const start = (args: string[], kc: string): void => {
      const p = spawn(process.execPath, [join(repoRoot, 'dist/src/cli/dc-operator.js'), ...args], { env: { ...process.env, KUBECONFIG: kc } });
      p.stdout.setEncoding('utf8').on('data', (d: string) => { output += d; });
      p.stderr.setEncoding('utf8').on('data', (d: string) => { output += d; });
      p.once('exit', (code, signal) => { output += `[dc-operator ${args[0] ?? ''} exited: ${signal ?? code}]\n`; });
      procs.push(p);
    };
    const logs = (): string => output.split('\n').slice(-20).join('\n');
    const appNsHandle = opts.watchNamespaces ? await createTestNamespace('pkg-rbac-app') : undefined;
    await withNamespace(async (ns) => {
      let installed = false;
      const appNs = appNsHandle?.name ?? ns.name;
      try {
        await run(helm, ['install', release, CHART, '--namespace', ns.name, '--take-ownership',
          ...(appNsHandle ? ['--set', `controller.watchNamespaces={${appNs}}`] : []),
          '--set', 'webhook.namespaceSelector.matchExpressions[0].key=dc-operator.test/never',
          '--set', 'webhook.namespaceSelector.matchExpressions[0].operator=Exists'], { env });
        installed = true;
        const admin = await testKubeConfig();
        const controllerKc = await serviceAccountKubeconfig(work, ns.name, `${full}-controller`);
        const webhookKc = await serviceAccountKubeconfig(work, ns.name, `${full}-webhook`);
        // The same arguments as the chart's Deployments, but on loopback ports.
        start(['controller', '--kubeconfig', controllerKc, '--operator-namespace', ns.name, ...(appNsHandle ? ['--namespace', appNs] : []), '--metrics-port', String(await freePort()), '--metrics-address', '127.0.0.1'], controllerKc);
        start(['webhook', '--operator-namespace', ns.name, '--address', '127.0.0.1', '--port', String(await freePort()), '--service', `${full}-webhook`,
          '--configuration', `${full}-webhook`, '--ca-secret', `${full}-webhook-ca`, '--shutdown-delay', '0'], webhookKc);
        const keyserverKc = await serviceAccountKubeconfig(work, ns.name, `${full}-keyserver`);
        const keyserverProbes = await freePort();
        start(['keyserver', '--from-cluster', '--kubeconfig', keyserverKc, '--operator-namespace', ns.name, ...(appNsHandle ? ['--namespace', appNs] : []),
          '--address', '127.0.0.1', '--port', String(await freePort()), '--metrics-port', String(keyserverProbes)], keyserverKc);
        // The serving Secret the controller will issue; made here from a test CA.
        const pki = makeIdentityPki();
        try {
          await admin.makeApiClient(CoreV1Api).createNamespacedSecret({ namespace: ns.name, body: { metadata: { name: 'dc-operator-keyserver-tls' }, type: 'kubernetes.io/tls',
            stringData: { 'tls.crt': pki.server.cert, 'tls.key': pki.server.key, 'ca.crt': pki.ca.cert } } });
        } finally {
          pki.cleanup();
        }

        const core = admin.makeApiClient(CoreV1Api);
        const cert = await run(process.execPath, [join(repoRoot, 'dist/src/cli/dcctl.js'), 'ca', 'create', '--out', join(work, 'ca')])
          .then(() => run(process.execPath, [join(repoRoot, 'dist/src/cli/dcctl.js'), 'cert', 'create', '--ca-dir', join(work, 'ca'), '--dns', 'rbac.example.test', '--out', join(work, 'cert')]))
          .then(() => ({ crt: readFileSync(join(work, 'cert', 'tls.crt'), 'utf8'), key: readFileSync(join(work, 'cert', 'tls.key'), 'utf8') }));
        await core.createNamespacedSecret({ namespace: appNs, body: { metadata: { name: 'cert' }, type: 'kubernetes.io/tls', stringData: { 'tls.crt': cert.crt, 'tls.key': cert.key } } });
        const custom = admin.makeApiClient(CustomObjectsApi);
        const dc = { group: 'dc-operator.io', version: 'v1alpha1', namespace: appNs, plural: 'delegatedcredentials' };
        await custom.createNamespacedCustomObject({ ...dc, body: { apiVersion: 'dc-operator.io/v1alpha1', kind: 'DelegatedCredential', metadata: { name: 'web' },
          spec: { certificateSecretRef: { name: 'cert' }, secretName: 'web-dc' } } });

        await until('the DelegatedCredential Ready', 60_000, async () => {
          const o = (await custom.getNamespacedCustomObject({ ...dc, name: 'web' })) as { status?: { conditions?: Array<{ type: string; status: string }> } };
          return o.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? true : undefined;
        }, logs);
        const secret = await core.readNamespacedSecret({ namespace: appNs, name: 'web-dc' });
        assert.ok(secret.data?.['ecdsa_secp256r1_sha256.cred'], 'the output Secret holds a credential');
        await until('the key server Ready', 60_000, async () => ((await fetch(`http://127.0.0.1:${keyserverProbes}/readyz`)).status === 200 ? true : undefined), logs);
        const granted = (name: string) => (): Promise<true | undefined> =>
          Promise.resolve(output.split('\n').some((l) => l.includes('"msg":"keyserver: grant added"') && l.includes(`"identity":"${sidecarIdentityUri({ trustDomain: 'cluster.local', namespace: appNs, name })}"`)) ? true : undefined);
        await until('the key server grants the certificate key to the DelegatedCredential\'s identity', 30_000, granted('web'), logs);
        if (appNsHandle) {
          await core.createNamespacedSecret({ namespace: ns.name, body: { metadata: { name: 'signer-key' }, stringData: { 'tls.key': cert.key } } });
          await core.createNamespacedSecret({ namespace: appNs, body: { metadata: { name: 'crt-only' }, type: 'kubernetes.io/tls', stringData: { 'tls.crt': cert.crt, 'tls.key': '' } } });
          const signer = { group: 'dc-operator.io', version: 'v1alpha1', plural: 'clusterdelegationsigners' };
          await custom.createClusterCustomObject({ ...signer, body: { apiVersion: 'dc-operator.io/v1alpha1', kind: 'ClusterDelegationSigner', metadata: { name: `${release}-signer` },
            spec: { inCluster: { keySecretRef: { name: 'signer-key' } }, namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': appNs } } } } });
          try {
            await custom.createNamespacedCustomObject({ ...dc, body: { apiVersion: 'dc-operator.io/v1alpha1', kind: 'DelegatedCredential', metadata: { name: 'signed' },
              spec: { certificateSecretRef: { name: 'crt-only' }, secretName: 'signed-dc', signerRef: { kind: 'ClusterDelegationSigner', name: `${release}-signer` } } } });
            await until('the DelegatedCredential signed by the ClusterDelegationSigner Ready', 60_000, async () => {
              const o = (await custom.getNamespacedCustomObject({ ...dc, name: 'signed' })) as { status?: { conditions?: Array<{ type: string; status: string }> } };
              return o.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? true : undefined;
            }, logs);
            await until('the key server grants the ClusterDelegationSigner key, read through its Role in the release namespace', 30_000, granted('signed'), logs);
          } finally {
            await custom.deleteClusterCustomObject({ ...signer, name: `${release}-signer` });
          }
        }
        const lease = await admin.makeApiClient(CoordinationV1Api).readNamespacedLease({ namespace: ns.name, name: 'dc-operator-controller' });
        assert.ok(lease.spec?.holderIdentity, 'the controller holds the Lease its Role names');

        const admission = admin.makeApiClient(AdmissionregistrationV1Api);
        await until('the caBundle written by the webhook', 60_000, async () => {
          const mwc = await admission.readMutatingWebhookConfiguration({ name: `${full}-webhook` });
          return mwc.webhooks?.every((w) => w.clientConfig.caBundle) ? true : undefined;
        }, logs);
        await core.readNamespacedSecret({ namespace: ns.name, name: `${full}-webhook-ca` });
        // RBAC refusals read `User "system:serviceaccount:…" cannot <verb> resource …`. (Other 403s are
        // expected: the controller watches every namespace, some of them terminating.)
        const refused = output.split('\n').filter((l) => /cannot \w+ resource/.test(l));
        assert.deepEqual(refused, [], 'RBAC refused no request');
      } finally {
        await Promise.all(procs.map((p) => new Promise<void>((resolve) => {
          if (p.exitCode !== null || p.signalCode !== null) return resolve();
          p.once('exit', () => resolve());
          p.kill('SIGTERM');
        })));
        if (installed) await run(helm, ['uninstall', release, '--namespace', ns.name], { env }).catch(() => undefined);
        rmSync(work, { recursive: true, force: true });
        await appNsHandle?.delete();
      }
    }, 'pkg-rbac');
  }

  void it('runs the controller, the webhook and the key server with only the chart\'s ServiceAccounts and RBAC: the leader issues, the webhook keeps its CA and caBundle, the key server grants the certificate key', { timeout: 120_000 }, async () => {
    await runWithChartRbac({});
  });

  void it('issues with controller.watchNamespaces, where Secrets and Events rights come from a Role in that namespace and signer keys through a Role in the release namespace', { timeout: 120_000 }, async () => {
    await runWithChartRbac({ watchNamespaces: true });
  });
});
