/**
 * Issue 19: what one DelegatedCredential status write costs the apiserver, as a full-object PUT
 * (what the operator sends) against a JSON merge patch of status alone (conditional on the same
 * resourceVersion), on a private kube-apiserver + etcd. Each round writes every one of N objects
 * once with one method, the methods alternating round by round; the apiserver's and etcd's CPU
 * per write come from /proc. One watch on the namespace (as the operator's informer) receives every event.
 *
 *   node dist/bench/operator-status-write.js [--count 1000] [--rounds 6] [--concurrency 4]
 */
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { CoreV1Api, CustomObjectsApi, KubeConfig, PatchStrategy, Watch, setHeaderOptions } from '@kubernetes/client-node';
import type { DelegatedCredential, DelegatedCredentialStatus } from '../src/operator/api/v1alpha1.js';
import { ensureBinaries, repoRoot, startControlPlane, stopControlPlane } from '../test/support/control-plane.js';
import { DC, applyCrds } from '../test/integration/operator-fixtures.js';

const { values: args } = parseArgs({
  options: {
    count: { type: 'string', default: '1000' },
    rounds: { type: 'string', default: '6' },
    concurrency: { type: 'string', default: '4' },
  },
});
const COUNT = Number(args.count);
const ROUNDS = Number(args.rounds);
const CONCURRENCY = Number(args.concurrency);

const cpuOf = (pid: number): number => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
};

/** A status like the operator's (four conditions, one credential), its Ready message changed per round. */
function statusOf(round: number, name: string, now: string): DelegatedCredentialStatus {
  const cond = (type: string, reason: string, message: string) => ({ type, status: type === 'Issuing' ? 'False' : 'True', reason, message, lastTransitionTime: now, observedGeneration: 1 });
  return {
    observedGeneration: 1,
    conditions: [
      cond('SignerReady', 'SignerReady', 'signing with tls.key of Secret web-tls'),
      cond('FallbackReady', 'KeylessFallback', 'fallback Keyless: the sidecar pulls from the in-cluster key server'),
      cond('Ready', 'Issued', `credentials for ecdsa_secp256r1_sha256 valid until 2026-12-06T10:${String(round).padStart(2, '0')}:00Z, renewal at 2026-12-06T02:00:00Z (${name})`),
      cond('Issuing', 'UpToDate', 'the credentials are current'),
    ],
    credentials: [{ algorithm: 'ecdsa_secp256r1_sha256', notAfter: '2026-12-06T10:00:00Z', publicKeyFingerprint: 'a'.repeat(64) }],
    notAfter: '2026-12-06T10:00:00Z',
    renewalTime: '2026-12-06T02:00:00Z',
    lastIssuedTime: now,
    fallback: 'Keyless',
  } as DelegatedCredentialStatus;
}

async function main(): Promise<void> {
  const stateDir = join(repoRoot, '.dev', `bench-status-write-${process.pid}`);
  const logDir = join(repoRoot, '.dev', 'logs', `bench-status-write-${process.pid}`);
  mkdirSync(logDir, { recursive: true });
  const plane = await startControlPlane({ binDir: ensureBinaries(), stateDir, logDir, dieWithParent: true, log: () => undefined });
  const kc = new KubeConfig();
  kc.loadFromFile(plane.kubeconfigPath);
  const core = kc.makeApiClient(CoreV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  await applyCrds(kc);
  const namespace = `bench-status-${Date.now().toString(36)}`;
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  const objects = new Map<string, DelegatedCredential>();
  for (let i = 0; i < COUNT; i++) {
    const name = `dc-${String(i).padStart(5, '0')}`;
    const created = (await custom.createNamespacedCustomObject({
      ...DC,
      namespace,
      body: { apiVersion: 'dc-operator.io/v1alpha1', kind: 'DelegatedCredential', metadata: { name, namespace }, spec: { certificateSecretRef: { name: 'web-tls' }, secretName: `${name}-out` } },
    })) as DelegatedCredential;
    delete created.metadata.managedFields;
    objects.set(name, created);
  }
  let events = 0;
  const watch = await new Watch(kc).watch(`/apis/${DC.group}/${DC.version}/namespaces/${namespace}/${DC.plural}`, { allowWatchBookmarks: true }, () => void events++, () => undefined);
  const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
  const write = {
    put: async (dc: DelegatedCredential, status: DelegatedCredentialStatus) =>
      (await custom.replaceNamespacedCustomObjectStatus({ ...DC, namespace, name: dc.metadata.name ?? '', body: { ...dc, status }, fieldManager: 'dc-operator' })) as DelegatedCredential,
    'merge-patch': async (dc: DelegatedCredential, status: DelegatedCredentialStatus) =>
      (await custom.patchNamespacedCustomObjectStatus(
        { ...DC, namespace, name: dc.metadata.name ?? '', body: { metadata: { resourceVersion: dc.metadata.resourceVersion }, status }, fieldManager: 'dc-operator' },
        mergePatch,
      )) as DelegatedCredential,
  };
  const results: Record<string, { apiserverMs: number[]; etcdMs: number[]; wallMs: number[] }> = {};
  for (let round = 0; round < ROUNDS; round++) {
    const method = (round % 4 === 0 || round % 4 === 3 ? 'put' : 'merge-patch') as keyof typeof write;
    const names = [...objects.keys()];
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const a0 = cpuOf(plane.apiserver.pid);
    const e0 = cpuOf(plane.etcd.pid);
    const t0 = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        for (let i = next++; i < names.length; i = next++) {
          const name = names[i] ?? '';
          const updated = await write[method](objects.get(name)!, statusOf(round, name, now));
          delete updated.metadata.managedFields;
          objects.set(name, updated);
        }
      }),
    );
    const r = (results[method] ??= { apiserverMs: [], etcdMs: [], wallMs: [] });
    r.apiserverMs.push(((cpuOf(plane.apiserver.pid) - a0) * 1000) / COUNT);
    r.etcdMs.push(((cpuOf(plane.etcd.pid) - e0) * 1000) / COUNT);
    r.wallMs.push((performance.now() - t0) / COUNT);
    process.stderr.write(`round ${round} ${method}: apiserver ${r.apiserverMs.at(-1)?.toFixed(2)} ms/write, load ${loadavg()[0]?.toFixed(2)}\n`);
  }
  watch.abort();
  const median = (v: number[]): number => [...v].sort((x, y) => x - y)[v.length >> 1] ?? NaN;
  const summary = Object.fromEntries(
    Object.entries(results).map(([m, r]) => [m, { apiserverMsPerWrite: r.apiserverMs.map((x) => +x.toFixed(2)), median: +median(r.apiserverMs).toFixed(2), etcdMsPerWrite: +median(r.etcdMs).toFixed(2), wallMsPerWrite: +median(r.wallMs).toFixed(2) }]),
  );
  process.stdout.write(`${JSON.stringify({ count: COUNT, rounds: ROUNDS, concurrency: CONCURRENCY, watchEvents: events, loadavg1: +(loadavg()[0] ?? 0).toFixed(2), summary }, null, 2)}\n`);
  await stopControlPlane(plane);
  if (existsSync(stateDir)) rmSync(stateDir, { recursive: true, force: true });
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
