/**
 * Operator at scale (issue 5): N DelegatedCredentials against a local kube-apiserver + etcd.
 *
 * 1. Control plane: --kubeconfig FILE, else $DC_TEST_KUBECONFIG, else a private one started with
 *    test/support/control-plane.ts (stopped at the end).
 * 2. One certificate Secret (dcctl, ECDSA P-256, tls.key inside: the in-cluster signer) and N
 *    DelegatedCredentials (P-256, 24h), created before the operator starts.
 * 3. A baseline window with no operator: the apiserver's own background requests
 *    (apiserver_request_total also counts the apiserver's loopback clients, e.g. its identity Lease).
 * 4. `dc-operator controller` as its own process (leader election on, as in production). Timed: until /readyz (caches synced) and until every object is
 *    Ready=True (seen through one watch from this process). Operator RSS and CPU from /proc.
 * 5. API requests per object, from the operator's own counter of every request it sends
 *    (dc_operator_api_requests_total, incremented in kube.ts/leader.ts before each request).
 * 6. An idle window (--idle-seconds, default 600) in which this process sends nothing but the two
 *    metrics scrapes: the operator's counter, and the apiserver's apiserver_request_total, which
 *    counts requests independently of the operator (minus the baseline rate measured in step 3).
 *
 *   node dist/bench/operator-scale.js [--count 5000] [--idle-seconds 600] [--baseline-seconds 60]
 *       [--workers 4] [--create-concurrency 32] [--kubeconfig FILE]
 *       [--operator-node-args='--cpu-prof --cpu-prof-dir=/tmp/prof'] [--heap-snapshot-dir DIR]
 *
 * --operator-node-args: node flags of the operator process (split on spaces); default: the chart's
 *   controller.nodeOptions (charts/dc-operator/values.yaml), as the Deployment sets NODE_OPTIONS.
 * --heap-snapshot-dir: the operator writes a heap snapshot there (SIGUSR2) once all are Ready and settled.
 * --operator-env K=V (repeatable): added to the operator's environment (allocator experiments).
 * --operator-credentials admin|token: the operator authenticates with the harness's admin client
 *   certificate (default, as all earlier runs), or as an installed operator does: a ServiceAccount
 *   token (TokenRequest) with the controller's RBAC (controllerRbac, rbac.ts). A client certificate
 *   costs the apiserver a chain verification per request; a token is cached after its first check,
 *   and RBAC is evaluated for each request instead of the system:masters short-cut.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { Agent as HttpsAgent, request as httpsRequest, type RequestOptions } from 'node:https';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api, CustomObjectsApi, KubeConfig, Watch, type RequestContext } from '@kubernetes/client-node';
import type { DelegatedCredential } from '../src/operator/api/v1alpha1.js';
import { ensureBinaries, freePort, repoRoot, startControlPlane, stopControlPlane, type ControlPlaneState } from '../test/support/control-plane.js';
import { DC, applyControllerRbac, applyCrds, dcctlCertificate, putSecret, serviceAccountKubeconfig, tlsSecret } from '../test/integration/operator-fixtures.js';

const { values: args } = parseArgs({
  options: {
    count: { type: 'string', default: '5000' },
    'idle-seconds': { type: 'string', default: '600' },
    'baseline-seconds': { type: 'string', default: '60' },
    workers: { type: 'string', default: '4' },
    'create-concurrency': { type: 'string', default: '32' },
    kubeconfig: { type: 'string' },
    'operator-node-args': { type: 'string' },
    'heap-snapshot-dir': { type: 'string' },
    'operator-env': { type: 'string', multiple: true },
    'operator-credentials': { type: 'string', default: 'admin' },
  },
});
const COUNT = Number(args.count);
const IDLE_S = Number(args['idle-seconds']);
const BASELINE_S = Number(args['baseline-seconds']);
const WORKERS = Number(args.workers);
const CREATE_CONCURRENCY = Number(args['create-concurrency']);
const USER_AGENT = 'dc-operator-bench/operator-scale';
if (!['admin', 'token'].includes(args['operator-credentials'] ?? '')) throw new Error(`--operator-credentials: admin or token, not ${args['operator-credentials']}`);

/**
 * The benchmark's own client-node requests (creating the N objects) share keep-alive connections:
 * client-node makes an agent per request, and N TLS handshakes would load the apiserver before
 * the measured phase differently from the runs before (which used the operator's pooled KubeConfig).
 */
class BenchKubeConfig extends KubeConfig {
  private shared: HttpsAgent | undefined;
  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    const agent = context.getAgent();
    if (agent instanceof HttpsAgent) context.setAgent((this.shared ??= new HttpsAgent({ ...agent.options, keepAlive: true, maxSockets: 32 })));
  }
  destroyAgents(): void {
    this.shared?.destroy();
  }
}

const say = (m: string): void => void process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${m}\n`);

type Counts = Map<string, number>;

function diff(a: Counts, b: Counts): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of [...b].sort(([x], [y]) => x.localeCompare(y))) if (v !== (a.get(k) ?? 0)) out[k] = v - (a.get(k) ?? 0);
  return out;
}
const total = (r: Record<string, number>, filter: (k: string) => boolean = () => true): number =>
  Object.entries(r).filter(([k]) => filter(k)).reduce((n, [, v]) => n + v, 0);

/** The operator's own count of the requests it sent, by verb and resource. */
async function operatorCounts(port: number): Promise<Counts> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const out: Counts = new Map();
  for (const m of text.matchAll(/^dc_operator_api_requests_total\{verb="([^"]+)",resource="([^"]+)"\} (\d+)$/gm)) out.set(`${m[1]} ${m[2]}`, Number(m[3]));
  return out;
}

/** apiserver_request_total summed by verb and resource (all codes, scopes, clients). */
async function apiserverCounts(kc: BenchKubeConfig): Promise<Counts> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('no cluster in the kubeconfig');
  const reqOpts: RequestOptions = { headers: { 'user-agent': USER_AGENT } };
  await kc.applyToHTTPSOptions(reqOpts);
  const text = await new Promise<string>((resolve, reject) => {
    const req = httpsRequest(`${cluster.server}/metrics`, reqOpts, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.end();
  });
  const out: Counts = new Map();
  for (const line of text.split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    const labels = Object.fromEntries([...line.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    const key = `${(labels['verb'] ?? '').toLowerCase()} ${labels['resource'] || labels['component'] || '-'}${labels['subresource'] ? `/${labels['subresource']}` : ''}`;
    out.set(key, (out.get(key) ?? 0) + value);
  }
  return out;
}

/** controller.nodeOptions of the chart: the node flags the installed operator runs with. */
function chartNodeOptions(): string {
  const values = readFileSync(join(repoRoot, 'charts', 'dc-operator', 'values.yaml'), 'utf8');
  const m = /^controller:\n(?:(?: {2}.*)?\n)*? {2}nodeOptions: "([^"]*)"$/m.exec(values);
  if (!m) throw new Error('charts/dc-operator/values.yaml: no controller.nodeOptions');
  return m[1] ?? '';
}

/** The operator's V8 heap and external memory (prom-client's default metrics), in MiB. */
async function operatorMemory(port: number): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const out: Record<string, number> = {};
  const mib = (v: string): number => +(Number(v) / 2 ** 20).toFixed(1);
  for (const m of text.matchAll(/^dc_operator_nodejs_(heap_size_total|heap_size_used|external_memory)_bytes (\S+)$/gm)) out[m[1] ?? ''] = mib(m[2] ?? '0');
  for (const m of text.matchAll(/^dc_operator_nodejs_heap_space_size_total_bytes\{space="(\w+)"\} (\S+)$/gm)) out[`space ${m[1] ?? ''}`] = mib(m[2] ?? '0');
  return out;
}

function procStatus(pid: number): { rssMiB: number; cpuSeconds: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // utime + stime (fields 14, 15)
  return { rssMiB: rssKb / 1024, cpuSeconds: ticks / 100 };
}

async function createAll(custom: CustomObjectsApi, namespace: string): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      if (i >= COUNT) return;
      const name = `dc-${String(i).padStart(5, '0')}`;
      await custom.createNamespacedCustomObject({
        ...DC,
        namespace,
        body: { apiVersion: 'dc-operator.io/v1alpha1', kind: 'DelegatedCredential', metadata: { name, namespace }, spec: { certificateSecretRef: { name: 'web-tls' }, secretName: `${name}-out` } },
      });
    }
  };
  await Promise.all(Array.from({ length: CREATE_CONCURRENCY }, worker));
}

/** Resolves when every DelegatedCredential in the namespace is Ready=True (one list, then one watch). */
async function watchUntilAllReady(kc: BenchKubeConfig, custom: CustomObjectsApi, namespace: string, onProgress: (ready: number) => void): Promise<void> {
  const ready = new Set<string>();
  const isReady = (dc: DelegatedCredential): boolean => dc.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
  let resourceVersion = '';
  let cont: string | undefined;
  do {
    const page = (await custom.listNamespacedCustomObject({ ...DC, namespace, limit: 500, _continue: cont })) as { items: DelegatedCredential[]; metadata: { resourceVersion: string; continue?: string } };
    for (const dc of page.items) if (isReady(dc)) ready.add(dc.metadata.name ?? '');
    resourceVersion = page.metadata.resourceVersion;
    cont = page.metadata.continue || undefined;
  } while (cont);
  if (ready.size >= COUNT) return;
  const path = `/apis/${DC.group}/${DC.version}/namespaces/${namespace}/${DC.plural}`;
  await new Promise<void>((resolve, reject) => {
    let lastReport = 0;
    let controller: AbortController | undefined;
    const start = (): void => {
      new Watch(kc)
        .watch(
          path,
          { resourceVersion, allowWatchBookmarks: true, timeoutSeconds: 3600 },
          (_type: string, dc: DelegatedCredential) => {
            if (dc.metadata?.resourceVersion) resourceVersion = dc.metadata.resourceVersion;
            if (!dc.metadata?.name) return;
            if (isReady(dc)) ready.add(dc.metadata.name);
            else ready.delete(dc.metadata.name);
            if (Date.now() - lastReport > 10_000) {
              lastReport = Date.now();
              onProgress(ready.size);
            }
            if (ready.size >= COUNT) {
              controller?.abort();
              resolve();
            }
          },
          (err: unknown) => {
            if (ready.size >= COUNT) return;
            if (err) say(`watch ended (${String(err)}); resuming`);
            start();
          },
        )
        .then((c) => (controller = c), reject);
    };
    start();
  });
}

async function main(): Promise<void> {
  let plane: ControlPlaneState | undefined;
  let kubeconfigPath = args.kubeconfig ?? process.env['DC_TEST_KUBECONFIG'];
  if (kubeconfigPath === undefined) {
    const stateDir = join(repoRoot, '.dev', `bench-control-plane-${process.pid}`);
    const logDir = join(repoRoot, '.dev', 'logs', `bench-${process.pid}`);
    mkdirSync(logDir, { recursive: true });
    plane = await startControlPlane({ binDir: ensureBinaries(), stateDir, logDir, dieWithParent: true, log: (m) => say(`control plane: ${m}`) });
    kubeconfigPath = plane.kubeconfigPath;
  }
  const kc = new BenchKubeConfig();
  kc.loadFromFile(kubeconfigPath);
  const core = kc.makeApiClient(CoreV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  await applyCrds(kc);
  const namespace = `bench-scale-${Date.now().toString(36)}`;
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  const cert = dcctlCertificate();
  await putSecret(core, tlsSecret(namespace, 'web-tls', cert.crt, cert.key));

  say(`creating ${COUNT} DelegatedCredentials in ${namespace} (${CREATE_CONCURRENCY} at a time)`);
  const createStart = performance.now();
  await createAll(custom, namespace);
  const createSeconds = (performance.now() - createStart) / 1000;
  say(`created in ${createSeconds.toFixed(1)} s`);

  say(`baseline: ${BASELINE_S} s without the operator`);
  const baseA = await apiserverCounts(kc);
  await sleep(BASELINE_S * 1000);
  const baseline = diff(baseA, await apiserverCounts(kc));

  // As installed: a ServiceAccount token with exactly the controller's RBAC.
  const rbacCleanup = args['operator-credentials'] === 'token' ? await applyControllerRbac(kc, namespace, 'dc-operator') : undefined;
  const operatorKubeconfig = rbacCleanup !== undefined ? await serviceAccountKubeconfig(kc, namespace, 'dc-operator') : kubeconfigPath;
  const metricsPort = await freePort();
  const entry = join(repoRoot, 'dist', 'src', 'cli', 'dc-operator.js');
  const operatorArgs = ['controller', '--kubeconfig', operatorKubeconfig, '--namespace', namespace, '--operator-namespace', namespace,
    '--metrics-port', String(metricsPort), '--metrics-address', '127.0.0.1', '--workers', String(WORKERS), '--log-level', 'warn'];
  // CPU of the private control plane while the operator issues: where the wall time goes.
  const planeCpu = (): { apiserver: number; etcd: number } | undefined =>
    plane ? { apiserver: procStatus(plane.apiserver.pid).cpuSeconds, etcd: procStatus(plane.etcd.pid).cpuSeconds } : undefined;
  const benchCpu = (): number => process.cpuUsage().user / 1e6 + process.cpuUsage().system / 1e6;
  const planeAtStart = planeCpu();
  const benchAtStart = benchCpu();
  const t0 = performance.now();
  const nodeArgs = (args['operator-node-args'] ?? chartNodeOptions()).split(' ').filter((a) => a !== '');
  const snapshotDir = args['heap-snapshot-dir'];
  if (snapshotDir !== undefined) {
    mkdirSync(snapshotDir, { recursive: true });
    nodeArgs.push('--heapsnapshot-signal=SIGUSR2');
  }
  say(`starting: node ${[...nodeArgs, entry, ...operatorArgs].join(' ')}`);
  const child: ChildProcess = spawn(process.execPath, [...nodeArgs, entry, ...operatorArgs], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, NODE_OPTIONS: '', ...Object.fromEntries((args['operator-env'] ?? []).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])) },
    ...(snapshotDir !== undefined ? { cwd: snapshotDir } : {}),
  });
  let stderrTail = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (c: string) => (stderrTail = (stderrTail + c).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.once('exit', (code) => {
    if (code !== null && code !== 0) say(`operator exited ${code}: ${stderrTail}`);
  });
  const pid = child.pid ?? 0;
  let peakRss = 0;
  const sampler = setInterval(() => {
    try {
      peakRss = Math.max(peakRss, procStatus(pid).rssMiB);
    } catch {
      /* exited */
    }
  }, 500);

  let readyzSeconds = NaN;
  for (;;) {
    try {
      if ((await fetch(`http://127.0.0.1:${metricsPort}/readyz`)).status === 200) {
        const body = await (await fetch(`http://127.0.0.1:${metricsPort}/readyz`)).text();
        if (body.includes('leader')) break;
      }
    } catch {
      /* not listening yet */
    }
    await sleep(100);
  }
  readyzSeconds = (performance.now() - t0) / 1000;
  say(`operator leads with synced caches after ${readyzSeconds.toFixed(1)} s`);
  const countsAtStart = new Map<string, number>();
  await watchUntilAllReady(kc, custom, namespace, (n) => say(`${n}/${COUNT} Ready after ${((performance.now() - t0) / 1000).toFixed(0)} s`));
  const allReadySeconds = (performance.now() - t0) / 1000;
  const atReady = procStatus(pid);
  const planeAtReady = planeCpu();
  const benchAtReady = benchCpu();
  const memoryAtReady = await operatorMemory(metricsPort);
  say(`all ${COUNT} Ready after ${allReadySeconds.toFixed(1)} s`);
  await sleep(5000); // the watch events of the last writes arrive; follow-up reconciles settle
  const issued = await operatorCounts(metricsPort);
  const issuing = diff(countsAtStart, issued);
  const settled = procStatus(pid);
  const memoryAfterSettle = await operatorMemory(metricsPort);
  if (snapshotDir !== undefined) {
    // The snapshot is written synchronously by the operator; wait until its size stops changing.
    child.kill('SIGUSR2');
    let last = -1;
    for (let i = 0; i < 120; i++) {
      await sleep(1000);
      const files = readdirSync(snapshotDir).filter((f) => f.endsWith('.heapsnapshot'));
      const size = files.reduce((n, f) => n + statSync(join(snapshotDir, f)).size, 0);
      if (size > 0 && size === last) break;
      last = size;
    }
    say(`heap snapshot written to ${snapshotDir}`);
  }

  say(`idle window: ${IDLE_S} s`);
  const idleOpA = await operatorCounts(metricsPort);
  const idleApiA = await apiserverCounts(kc);
  const cpuIdleA = procStatus(pid).cpuSeconds;
  await sleep(IDLE_S * 1000);
  const idleOp = diff(idleOpA, await operatorCounts(metricsPort));
  const idleApi = diff(idleApiA, await apiserverCounts(kc));
  const idleEnd = procStatus(pid);
  clearInterval(sampler);

  child.kill('SIGTERM');
  await exited;

  const perObject = total(issuing, (k) => !k.startsWith('watch') && !k.startsWith('list')) / COUNT;
  const perObjectAll = total(issuing) / COUNT;
  const report = {
    command: `node dist/bench/operator-scale.js ${process.argv.slice(2).join(' ')}`.trim(),
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memGiB: +(totalmem() / 2 ** 30).toFixed(1), loadavg1: +(loadavg()[0] ?? 0).toFixed(2), node: process.version },
    controlPlane: plane ? 'private (test/support/control-plane.ts)' : kubeconfigPath,
    operatorNodeArgs: nodeArgs.join(' '),
    operatorCredentials: args['operator-credentials'],
    count: COUNT,
    createSeconds: +createSeconds.toFixed(1),
    readyzSeconds: +readyzSeconds.toFixed(1),
    allReadySeconds: +allReadySeconds.toFixed(1),
    readyPerSecond: +(COUNT / allReadySeconds).toFixed(1),
    operatorCpuSecondsUntilReady: +atReady.cpuSeconds.toFixed(1),
    // Same window (operator start → all Ready): the private apiserver and etcd, and this process (its watch).
    otherCpuSecondsUntilReady:
      planeAtStart && planeAtReady
        ? { apiserver: +(planeAtReady.apiserver - planeAtStart.apiserver).toFixed(1), etcd: +(planeAtReady.etcd - planeAtStart.etcd).toFixed(1), bench: +(benchAtReady - benchAtStart).toFixed(1) }
        : undefined,
    rssMiB: { atAllReady: +atReady.rssMiB.toFixed(0), afterSettle: +settled.rssMiB.toFixed(0), peak: +peakRss.toFixed(0), afterIdle: +idleEnd.rssMiB.toFixed(0) },
    v8MemoryMiB: { atAllReady: memoryAtReady, afterSettle: memoryAfterSettle },
    requestsWhileIssuing: issuing,
    requestsPerObject: +perObject.toFixed(2),
    requestsPerObjectInclListWatch: +perObjectAll.toFixed(2),
    idleSeconds: IDLE_S,
    idleOperatorRequests: idleOp,
    idleOperatorCpuSeconds: +(idleEnd.cpuSeconds - cpuIdleA).toFixed(2),
    baselineSeconds: BASELINE_S,
    apiserverBaselineWithoutOperator: baseline,
    apiserverDuringIdle: idleApi,
  };
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);

  try {
    await rbacCleanup?.();
    await core.deleteNamespace({ name: namespace });
  } catch {
    /* best effort */
  }
  kc.destroyAgents();
  if (plane) {
    await stopControlPlane(plane);
    if (existsSync(plane.stateDir)) rmSync(plane.stateDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
