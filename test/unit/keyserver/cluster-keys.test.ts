/**
 * ClusterKeys: which identity gets which key, from DelegatedCredentials, signers, namespaces and
 * Secrets, on an in-memory API (the real apiserver: test/integration/keyserver-cluster.test.ts).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import type { V1Secret } from '@kubernetes/client-node';
import { computeSki, skiHex } from '../../../src/keyless/ski.js';
import { ClusterKeys } from '../../../src/keyserver/cluster-keys.js';
import { KeyGrants } from '../../../src/keyserver/grants.js';
import { systemClock } from '../../../src/operator/clock.js';
import type { ListWatchSource, WatchEventType } from '../../../src/operator/informer.js';
import type { KubeClient, Selector } from '../../../src/operator/kube.js';
import { silentLog } from '../operator/fakes.js';
import { makeIdentityPki, type IdentityPki, type Pair } from './pki.js';

type Obj = { metadata?: { name?: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string> } } & Record<string, unknown>;

/** The field selectors the apiserver supports on Secrets that the key server uses: type and metadata.name. */
function matchesFields(o: Obj, fieldSelector: string | undefined): boolean {
  if (fieldSelector === undefined) return true;
  return fieldSelector.split(',').every((term) => {
    const [field, value] = term.split('=');
    if (field === 'type') return (o.type ?? 'Opaque') === value;
    if (field === 'metadata.name') return o.metadata?.name === value;
    throw new Error(`unsupported field selector ${term}`);
  });
}

/** Just enough of the API for the informers: list, watch (events pushed by put/remove), get. */
class FakeApi {
  private rv = 1;
  private readonly stores = new Map<string, Map<string, Obj>>();
  private readonly watchers = new Set<{ resource: string; match: (o: Obj) => boolean; onEvent: (t: WatchEventType, o: Obj) => void }>();
  readonly gets: string[] = [];
  /** Every Secret list/watch source asked for: `namespace fieldSelector`. */
  readonly secretSelectors: string[] = [];

  private store(resource: string): Map<string, Obj> {
    let s = this.stores.get(resource);
    if (!s) this.stores.set(resource, (s = new Map()));
    return s;
  }

  put(resource: string, object: Obj): void {
    const copy = structuredClone(object);
    copy.metadata = { ...copy.metadata, resourceVersion: String(++this.rv) };
    const key = `${copy.metadata.namespace ?? ''}/${copy.metadata.name ?? ''}`;
    const existed = this.store(resource).has(key);
    this.store(resource).set(key, copy);
    for (const w of this.watchers) if (w.resource === resource && w.match(copy)) w.onEvent(existed ? 'MODIFIED' : 'ADDED', structuredClone(copy));
  }

  remove(resource: string, namespace: string, name: string): void {
    const key = `${namespace}/${name}`;
    const old = this.store(resource).get(key);
    if (!old) return;
    this.store(resource).delete(key);
    const gone = { ...old, metadata: { ...old.metadata, resourceVersion: String(++this.rv) } };
    for (const w of this.watchers) if (w.resource === resource && w.match(gone)) w.onEvent('DELETED', gone);
  }

  source<R>(resource: string, match: (o: Obj) => boolean): ListWatchSource<R> {
    return {
      list: () => Promise.resolve({ items: [...this.store(resource).values()].filter(match).map((o) => structuredClone(o) as R), resourceVersion: String(this.rv) }),
      watch: (_rv, onEvent, done) => {
        const w = { resource, match, onEvent: onEvent as unknown as (t: WatchEventType, o: Obj) => void };
        this.watchers.add(w);
        return Promise.resolve({ abort: () => { this.watchers.delete(w); done(undefined); } });
      },
    };
  }

  get kube(): KubeClient {
    const inNs = (ns: string | undefined) => (o: Obj) => ns === undefined || o.metadata?.namespace === ns;
    return {
      customSource: (plural: string, ns: string | undefined) => this.source(plural, inNs(ns)),
      secretSource: (ns: string | undefined, selector: Selector) => {
        this.secretSelectors.push(`${ns ?? '*'} ${selector.fieldSelector ?? '(everything)'}${selector.labelSelector ? ` ${selector.labelSelector}` : ''}`);
        return this.source('secrets', (o) => inNs(ns)(o) && matchesFields(o, selector.fieldSelector));
      },
      namespaceSource: () => this.source('namespaces', () => true),
      getSecret: (ns: string, name: string) => {
        this.gets.push(`${ns}/${name}`);
        const s = this.store('secrets').get(`${ns}/${name}`);
        return Promise.resolve(s ? (structuredClone(s) as V1Secret) : undefined);
      },
    } as unknown as KubeClient;
  }
}

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const tlsSecret = (ns: string, name: string, pair: Pair, key = pair.key): Obj => ({
  metadata: { namespace: ns, name },
  type: 'kubernetes.io/tls',
  data: { 'tls.crt': b64(pair.cert), 'tls.key': b64(key) },
});
const keySecret = (ns: string, name: string, pem: string, entry = 'tls.key'): Obj => ({ metadata: { namespace: ns, name }, data: { [entry]: b64(pem) } });
const dc = (ns: string, name: string, certificateSecret: string, signerRef?: { kind: string; name: string }): Obj => ({
  apiVersion: 'dc-operator.io/v1alpha1',
  kind: 'DelegatedCredential',
  metadata: { namespace: ns, name },
  spec: { certificateSecretRef: { name: certificateSecret }, secretName: `${name}-out`, algorithms: ['ecdsa_secp256r1_sha256'], validity: '24h', ...(signerRef ? { signerRef } : {}) },
});
const namespace = (name: string, labels: Record<string, string> = {}): Obj => ({ metadata: { name, labels: { 'kubernetes.io/metadata.name': name, ...labels } } });
const skiOf = (pair: Pair): string => skiHex(computeSki(createPrivateKey(pair.key)));
const id = (ns: string, name: string): string => `spiffe://cluster.local/ns/${ns}/dc/${name}`;

async function until(what: string, check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

let pki: IdentityPki;
before(() => (pki = makeIdentityPki()));
after(() => pki.cleanup());

async function running(setup: (api: FakeApi) => void, test: (api: FakeApi, grants: KeyGrants, keys: ClusterKeys) => Promise<void>, namespaces?: string[]): Promise<void> {
  const api = new FakeApi();
  for (const ns of ['team-a', 'team-b', 'dc-operator']) api.put('namespaces', namespace(ns));
  setup(api);
  const grants = new KeyGrants();
  const kube = api.kube;
  // The fake serves Secrets with their data; the real key server passes metadata-only sources.
  const keys = new ClusterKeys({ kube, secretSource: (ns, selector) => kube.secretSource(ns, selector), clock: systemClock, log: silentLog, grants, trustDomain: 'cluster.local', clusterResourceNamespace: 'dc-operator', ...(namespaces ? { namespaces } : {}) });
  keys.start();
  try {
    await until('first pass', () => keys.hasSynced());
    await test(api, grants, keys);
  } finally {
    await keys.stop();
  }
}

void describe('ClusterKeys: identity → exactly its certificate key', () => {
  void it('each DelegatedCredential signed with its certificate Secret key grants its identity that key, and only that', async () => {
    const a = pki.certificate('a');
    const b = pki.certificate('b');
    await running(
      (api) => {
        api.put('secrets', tlsSecret('team-a', 'www-tls', a));
        api.put('secrets', tlsSecret('team-b', 'www-tls', b));
        api.put('delegatedcredentials', dc('team-a', 'www', 'www-tls'));
        api.put('delegatedcredentials', dc('team-b', 'www', 'www-tls'));
      },
      async (_api, grants) => {
        assert.deepEqual(grants.identities().sort(), [id('team-a', 'www'), id('team-b', 'www')]);
        assert.equal(grants.allows(id('team-a', 'www'), skiOf(a)), true);
        assert.equal(grants.allows(id('team-a', 'www'), skiOf(b)), false, 'cross-namespace');
        assert.equal(grants.allows(id('team-b', 'www'), skiOf(a)), false, 'cross-namespace');
        assert.equal(grants.size, 2);
      },
    );
  });

  void it('a DelegationSigner in the namespace grants its key Secret; a keyless signer grants nothing here', async () => {
    const cert = pki.certificate('signed');
    await running(
      (api) => {
        api.put('secrets', { ...tlsSecret('team-a', 'public-tls', cert), data: { 'tls.crt': b64(cert.cert) } }); // no tls.key
        api.put('secrets', keySecret('team-a', 'signer-key', cert.key, 'key.pem'));
        api.put('delegationsigners', { kind: 'DelegationSigner', metadata: { namespace: 'team-a', name: 'mine' }, spec: { inCluster: { keySecretRef: { name: 'signer-key', key: 'key.pem' } } } });
        api.put('delegationsigners', { kind: 'DelegationSigner', metadata: { namespace: 'team-a', name: 'remote' }, spec: { keyless: { address: 'ks.example:2407', caBundleSecretRef: { name: 'c' }, clientCertificateSecretRef: { name: 'd' }, timeout: '5s' } } });
        api.put('delegatedcredentials', dc('team-a', 'in-cluster', 'public-tls', { kind: 'DelegationSigner', name: 'mine' }));
        api.put('delegatedcredentials', dc('team-a', 'pulled', 'public-tls', { kind: 'DelegationSigner', name: 'remote' }));
        // A DelegationSigner of another namespace is not found from here.
        api.put('delegatedcredentials', dc('team-b', 'borrower', 'public-tls', { kind: 'DelegationSigner', name: 'mine' }));
      },
      async (_api, grants) => {
        assert.equal(grants.allows(id('team-a', 'in-cluster'), skiOf(cert)), true);
        assert.equal(grants.grantOf(id('team-a', 'pulled')), undefined);
        assert.equal(grants.grantOf(id('team-b', 'borrower')), undefined);
      },
    );
  });

  void it('a ClusterDelegationSigner serves only the namespaces its namespaceSelector selects (none without one), following label changes', async () => {
    const cert = pki.certificate('shared');
    const signer = (selector?: Record<string, unknown>): Obj => ({
      kind: 'ClusterDelegationSigner',
      metadata: { name: 'corp' },
      spec: { inCluster: { keySecretRef: { name: 'corp-key', key: 'tls.key' } }, ...(selector ? { namespaceSelector: selector } : {}) },
    });
    await running(
      (api) => {
        api.put('secrets', keySecret('dc-operator', 'corp-key', cert.key));
        for (const ns of ['team-a', 'team-b']) {
          api.put('secrets', { ...tlsSecret(ns, 'corp-tls', cert), data: { 'tls.crt': b64(cert.cert) } });
          api.put('delegatedcredentials', dc(ns, 'www', 'corp-tls', { kind: 'ClusterDelegationSigner', name: 'corp' }));
        }
        api.put('clusterdelegationsigners', signer());
      },
      async (api, grants) => {
        assert.equal(grants.identities().length, 0, 'no namespaceSelector: deny by default');
        api.put('clusterdelegationsigners', signer({ matchLabels: { 'corp/tls': 'yes' } }));
        api.put('namespaces', namespace('team-a', { 'corp/tls': 'yes' }));
        await until('team-a granted', () => grants.allows(id('team-a', 'www'), skiOf(cert)));
        assert.equal(grants.grantOf(id('team-b', 'www')), undefined, 'team-b is not selected');
        api.put('namespaces', namespace('team-a'));
        await until('team-a revoked after its label went', () => grants.grantOf(id('team-a', 'www')) === undefined);
      },
    );
  });

  void it('follows a rotation; a key that does not match its certificate never replaces the working one; deletions revoke', async () => {
    const first = pki.certificate('first');
    const second = pki.certificate('second');
    const stranger = pki.certificate('stranger');
    await running(
      (api) => {
        api.put('secrets', tlsSecret('team-a', 'www-tls', first));
        api.put('delegatedcredentials', dc('team-a', 'www', 'www-tls'));
      },
      async (api, grants) => {
        const who = id('team-a', 'www');
        assert.equal(grants.allows(who, skiOf(first)), true);
        api.put('secrets', tlsSecret('team-a', 'www-tls', second, stranger.key)); // mismatched pair
        api.put('secrets', tlsSecret('team-a', 'www-tls', second, 'not a key')); // unreadable
        await new Promise((r) => setTimeout(r, 100));
        assert.equal(grants.allows(who, skiOf(first)), true, 'the working key stays');
        api.put('secrets', tlsSecret('team-a', 'www-tls', second));
        await until('rotated', () => grants.allows(who, skiOf(second)));
        assert.equal(grants.get(skiOf(first)), undefined, 'the old key left memory');
        api.remove('secrets', 'team-a', 'www-tls');
        await until('revoked with its Secret', () => grants.grantOf(who) === undefined);
        api.put('secrets', tlsSecret('team-a', 'www-tls', second));
        await until('granted again', () => grants.allows(who, skiOf(second)));
        api.remove('delegatedcredentials', 'team-a', 'www');
        await until('revoked with its DelegatedCredential', () => grants.grantOf(who) === undefined);
        assert.equal(grants.size, 0);
      },
    );
  });

  void it('a certificate Secret that is not kubernetes.io/tls grants nothing (it is not watched, so its deletion would never revoke)', async () => {
    const cert = pki.certificate('opaque');
    await running(
      (api) => {
        api.put('secrets', { ...tlsSecret('team-a', 'www-tls', cert), type: 'Opaque' });
        api.put('secrets', tlsSecret('team-a', 'good-tls', cert));
        api.put('delegatedcredentials', dc('team-a', 'www', 'www-tls'));
        api.put('delegatedcredentials', dc('team-a', 'good', 'good-tls'));
      },
      async (_api, grants, keys) => {
        await until('the good one granted', () => grants.allows(id('team-a', 'good'), skiOf(cert)));
        assert.equal(grants.grantOf(id('team-a', 'www')), undefined, 'an Opaque certificate Secret is refused');
        const problems = (keys as unknown as { problems: Map<string, string> }).problems;
        assert.match(problems.get('team-a/www') ?? '(none)', /Secret team-a\/www-tls has type Opaque; the certificate Secret must be of type kubernetes\.io\/tls/);
      },
    );
  });

  void it('with --namespace, DelegatedCredentials of other namespaces get nothing', async () => {
    const a = pki.certificate('only-a');
    await running(
      (api) => {
        for (const ns of ['team-a', 'team-b']) {
          api.put('secrets', tlsSecret(ns, 'www-tls', a));
          api.put('delegatedcredentials', dc(ns, 'www', 'www-tls'));
        }
      },
      async (_api, grants) => assert.deepEqual(grants.identities(), [id('team-a', 'www')]),
      ['team-a'],
    );
  });

  void it('watches certificate Secrets (type kubernetes.io/tls) and, for in-cluster signer key Secrets, one watch per namespace holding them; an Opaque key Secret that appears later grants', async () => {
    const cert = pki.certificate('narrow');
    await running(
      (api) => {
        api.put('secrets', { ...tlsSecret('team-a', 'public-tls', cert), data: { 'tls.crt': b64(cert.cert) } });
        api.put('secrets', { metadata: { namespace: 'team-a', name: 'unrelated' }, type: 'Opaque', data: { password: b64('hunter2') } });
        api.put('delegationsigners', { kind: 'DelegationSigner', metadata: { namespace: 'team-a', name: 'mine' }, spec: { inCluster: { keySecretRef: { name: 'signer-key', key: 'key.pem' } } } });
        api.put('clusterdelegationsigners', { kind: 'ClusterDelegationSigner', metadata: { name: 'corp' }, spec: { inCluster: { keySecretRef: { name: 'corp-key', key: 'tls.key' } } } });
        api.put('delegatedcredentials', dc('team-a', 'in-cluster', 'public-tls', { kind: 'DelegationSigner', name: 'mine' }));
      },
      async (api, grants, keys) => {
        const who = id('team-a', 'in-cluster');
        assert.equal(grants.grantOf(who), undefined, 'no key Secret yet');
        assert.deepEqual([...new Set(api.secretSelectors)].sort(), [
          '* type=kubernetes.io/tls',
          'dc-operator (everything)',
          'team-a (everything)',
        ]);
        assert.equal(keys.keySecrets.size, 2, 'one watch per namespace of key Secrets');
        assert.deepEqual(keys.secrets.list().map((s) => `${s.namespace}/${s.name}`), ['team-a/public-tls'], 'the unrelated Opaque Secret is not even listed');
        // An Opaque key Secret, seen only through its namespace's key Secret watch.
        api.put('secrets', keySecret('team-a', 'signer-key', cert.key, 'key.pem'));
        await until('granted once the key Secret appeared', () => grants.allows(who, skiOf(cert)));
        assert.equal(api.gets.includes('team-a/unrelated'), false);
      },
    );
  });
});
