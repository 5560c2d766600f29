// The key server's watches of in-cluster signer key Secrets against the real apiserver, side by
// side: 300 key Secrets (one per signer) in three namespaces, watched the way the key server did
// before (one name-selected watch per Secret, src/operator/key-secrets.ts) and the way it does now
// (one metadata-only watch per namespace, src/keyserver/key-secret-watches.ts). Counted on both
// sides: the requests our client sends (LIST, WATCH) and the apiserver's own gauge of open Secret
// watches. Both must still report a changed key Secret to exactly its signers.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, it } from 'node:test';
import { CoreV1Api, type KubeConfig, type V1Secret } from '@kubernetes/client-node';
import { KeySecretNamespaceWatches } from '../../src/keyserver/key-secret-watches.js';
import { metadataOnlyClient } from '../../src/keyserver/secret-metadata.js';
import { systemClock } from '../../src/operator/clock.js';
import type { ListWatchSource } from '../../src/operator/informer.js';
import { KeySecretWatches } from '../../src/operator/key-secrets.js';
import { KubeClient } from '../../src/operator/kube.js';
import { createTestNamespace, testApiClient, testKubeConfig, testKubeconfigPath, type TestNamespace } from '../support/cluster.js';
import { ensureBinaries, kubectlPath } from '../support/control-plane.js';
import { waitFor } from './operator-fixtures.js';

const PER_NAMESPACE = 100;
const UNRELATED_PER_NAMESPACE = 20;

let kc: KubeConfig;
let core: CoreV1Api;
let namespaces: TestNamespace[] = [];

before(async () => {
  kc = await testKubeConfig();
  core = kc.makeApiClient(CoreV1Api);
  namespaces = await Promise.all(['ks-keys-a', 'ks-keys-b', 'ks-keys-c'].map((p) => createTestNamespace(p)));
  // Bounded: 360 creates, a few at a time.
  const work: (() => Promise<unknown>)[] = [];
  for (const ns of namespaces) {
    for (let i = 0; i < PER_NAMESPACE; i++) {
      work.push(() => core.createNamespacedSecret({ namespace: ns.name, body: { metadata: { name: `key-${i}` }, type: 'Opaque', data: { 'tls.key': Buffer.from(`not a key ${i}`).toString('base64') } } }));
    }
    for (let i = 0; i < UNRELATED_PER_NAMESPACE; i++) {
      work.push(() => core.createNamespacedSecret({ namespace: ns.name, body: { metadata: { name: `unrelated-${i}` }, type: 'Opaque', data: { x: 'eA==' } } }));
    }
  }
  for (let i = 0; i < work.length; i += 8) await Promise.all(work.slice(i, i + 8).map((w) => w()));
});

after(async () => {
  await Promise.all(namespaces.map((ns) => ns.delete()));
});

interface Counts {
  lists: number;
  watches: number;
  open: number;
  itemsListed: number;
}

/** Wraps a source: counts LISTs (and the items they return), WATCH requests and watches open now. */
function counted(source: ListWatchSource<V1Secret>, c: Counts): ListWatchSource<V1Secret> {
  return {
    list: async () => {
      c.lists++;
      const r = await source.list();
      c.itemsListed += r.items.length;
      return r;
    },
    watch: async (rv, onEvent, done) => {
      c.watches++;
      c.open++;
      let closed = false;
      return source.watch(rv, onEvent, (err) => {
        if (!closed) c.open--;
        closed = true;
        done(err);
      });
    },
  };
}

/**
 * The apiserver's gauge of open Secret watches (all clients), summed over its scopes: a watch
 * selecting metadata.name counts as scope "resource", one of a whole namespace as "namespace".
 */
function apiserverSecretWatches(kubeconfig: string): number {
  const metrics = execFileSync(kubectlPath(ensureBinaries()), ['--kubeconfig', kubeconfig, 'get', '--raw', '/metrics'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  let open = 0;
  for (const m of metrics.matchAll(/^apiserver_longrunning_requests\{([^}]*)\} (\d+)$/gm)) {
    if (m[1]!.includes('resource="secrets"') && m[1]!.includes('verb="WATCH"') && !m[1]!.includes('scope="cluster"')) open += Number(m[2]);
  }
  return open;
}

interface Watches {
  set(signerId: string, keySecret: string | undefined): void;
  start(): void;
  stop(): Promise<void>;
}

async function measure(name: string, make: (meta: KubeClient, c: Counts, onChange: (ids: string[]) => void) => Watches): Promise<Counts & { apiserverOpen: number; ms: number }> {
  const kubeconfig = await testKubeconfigPath();
  const baseline = apiserverSecretWatches(kubeconfig);
  const c: Counts = { lists: 0, watches: 0, open: 0, itemsListed: 0 };
  const heard: string[][] = [];
  const watches = make(new KubeClient(metadataOnlyClient(await testApiClient())), c, (ids) => heard.push(ids));
  const signers = namespaces.flatMap((ns) => Array.from({ length: PER_NAMESPACE }, (_, i) => ({ id: `${ns.name}/signer-${i}`, secret: `${ns.name}/key-${i}` })));
  for (const s of signers) watches.set(s.id, s.secret);
  const started = Date.now();
  watches.start();
  try {
    const expectedOpen = name === 'per-secret' ? signers.length : namespaces.length;
    await waitFor(`${name}: every watch open`, 120_000, () => Promise.resolve(c.open >= expectedOpen && c.lists >= expectedOpen ? true : undefined));
    const ms = Date.now() - started;
    // The apiserver counts a watch once it serves it, a moment after our request went out.
    let open = 0;
    await waitFor(`${name}: the apiserver serves every watch`, 30_000, () => Promise.resolve((open = apiserverSecretWatches(kubeconfig) - baseline) >= expectedOpen ? true : undefined), 500);
    // Then one key Secret changes: only its signer hears of it.
    heard.length = 0;
    const target = namespaces[1]!;
    const touch = (name: string) =>
      core.replaceNamespacedSecret({ namespace: target.name, name, body: { metadata: { name }, type: 'Opaque', data: { 'tls.key': Buffer.from(`rotated ${Date.now()}`).toString('base64') } } });
    await touch('key-7');
    await touch('unrelated-3');
    await waitFor(`${name}: the change reaches its signer`, 20_000, () => Promise.resolve(heard.some((ids) => ids.includes(`${target.name}/signer-7`)) ? true : undefined));
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(heard, [[`${target.name}/signer-7`]], `${name}: exactly the signer of the changed key Secret, nothing for the unrelated one`);
    return { ...c, apiserverOpen: open, ms };
  } finally {
    await watches.stop();
  }
}

void it('300 signer key Secrets in 3 namespaces: one watch per Secret before, one per namespace now; a change still reaches exactly its signer', { timeout: 300_000 }, async (t) => {
  const log = { warn: () => undefined, debug: () => undefined };
  const before = await measure('per-secret', (meta, c, onChange) =>
    new KeySecretWatches((ns, name) => counted(meta.secretSource(ns, { fieldSelector: `metadata.name=${name}` }), c), systemClock, log, onChange));
  const now = await measure('per-namespace', (meta, c, onChange) =>
    new KeySecretNamespaceWatches({ source: (ns) => counted(meta.secretSource(ns, {}), c), clock: systemClock, log, onChange }));
  t.diagnostic(`per-secret:    ${JSON.stringify(before)}`);
  t.diagnostic(`per-namespace: ${JSON.stringify(now)}`);
  const signers = namespaces.length * PER_NAMESPACE;
  assert.equal(before.lists, signers, 'before: one LIST per key Secret');
  assert.equal(before.watches, signers, 'before: one WATCH per key Secret');
  assert.ok(before.apiserverOpen >= signers, `before: the apiserver holds at least ${signers} more Secret watches (${before.apiserverOpen})`);
  assert.equal(now.lists, namespaces.length, 'now: one LIST per namespace');
  assert.equal(now.watches, namespaces.length, 'now: one WATCH per namespace');
  assert.ok(now.apiserverOpen < signers / 10, `now: the apiserver holds a handful of Secret watches, not one per signer (${now.apiserverOpen})`);
  // The price: the namespace lists carry every Secret's metadata (never data), unrelated ones too.
  assert.equal(now.itemsListed, namespaces.length * (PER_NAMESPACE + UNRELATED_PER_NAMESPACE));
});
