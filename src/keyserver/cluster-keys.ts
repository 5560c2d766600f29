// Keeps KeyGrants equal to what the Kubernetes API says: for each DelegatedCredential whose signer
// is in-cluster, its sidecar identity is granted the key of its certificate, loaded from the
// Secret into memory only. Keyless signers get nothing here (the sidecar pulls from the signer's
// own key server).
//
// Watches (list+watch, restartable: src/operator/informer.ts) DelegatedCredentials,
// DelegationSigners, ClusterDelegationSigners, Namespaces (labels, for namespaceSelectors) and the
// Secrets a grant can need, narrowed as the controller narrows its own: certificate Secrets by
// type (kubernetes.io/tls, a field selector) in the watched namespaces, and the in-cluster
// signers' key Secrets with one watch per namespace holding any (key-secret-watches.ts: bounded
// by namespaces, not by signers). The
// Secret watches ask the apiserver for metadata only (secret-metadata.ts), so of these Secrets only
// the two a grant is built from reach this process with their data, read by GET (the certificate
// Secret whole, tls.key included when it has one); the store keeps names. A certificate Secret of
// another type is refused (key-material.ts): its deletion would never reach a watch here.
// A change of any of them queues the DelegatedCredentials that depend on it; one worker then re-plans each with
// the operator's own rules (planSigner, clusterSignerAccess: a ClusterDelegationSigner serves only
// the namespaces its namespaceSelector selects, deny by default), reads the Secrets it needs with a
// targeted GET, and swaps the grant only when the new key is valid and belongs to the certificate.
import type { V1Namespace, V1Secret } from '@kubernetes/client-node';
import { CERTIFICATE_SECRET_SELECTOR } from '../operator/certificate-secrets.js';
import { keySecretOf } from '../operator/key-secrets.js';
import type { DelegatedCredential, DelegationSigner } from '../operator/api/v1alpha1.js';
import { RESOURCES } from '../operator/api/v1alpha1.js';
import { sidecarIdentityUri } from '../operator/api/serving-bundle.js';
import type { Clock } from '../operator/clock.js';
import { ReverseIndex } from '../operator/controller.js';
import { ReconcileFailure } from '../operator/failures.js';
import { Informer, NamespacedInformers, objectKey, type ListWatchSource } from '../operator/informer.js';
import type { KubeClient, Selector } from '../operator/kube.js';
import type { Listers, Logger } from '../operator/ports.js';
import { WorkQueue } from '../operator/queue.js';
import { planSigner, signerIdOf } from '../operator/signers.js';
import type { KeyGrants } from './grants.js';
import { KeySecretNamespaceWatches } from './key-secret-watches.js';
import { GrantProblem, signingKeyFor, type GrantSource } from './key-material.js';

export interface ClusterKeysOptions {
  readonly kube: KubeClient;
  readonly clock: Clock;
  readonly log: Logger;
  readonly grants: KeyGrants;
  readonly trustDomain: string;
  /** Watch only these namespaces; undefined or empty: all of them. */
  readonly namespaces?: readonly string[];
  /** Where ClusterDelegationSigner key Secrets live unless they name a namespace (as the controller's flag). */
  readonly clusterResourceNamespace: string;
  /** Called after a grant was set or revoked (the signing workers drop keys no one holds). */
  readonly onGrantsChanged?: () => void;
  /**
   * List/watch sources of Secrets for the watches: metadata-only ones (secret-metadata.ts), since
   * the key Secret watches take every Secret of their namespaces; required so that no caller
   * watches Secret data by default. The grants' Secrets are read with `kube.getSecret`.
   */
  readonly secretSource: (namespace: string | undefined, selector: Selector) => ListWatchSource<V1Secret>;
}

interface SecretMeta {
  namespace: string;
  name: string;
}

interface NamespaceLabels {
  name: string;
  labels: Record<string, string>;
}

const secretDep = (namespace: string, name: string): string => `secret:${namespace}/${name}`;

export class ClusterKeys {
  readonly credentials: NamespacedInformers<DelegatedCredential>;
  readonly signers: NamespacedInformers<DelegationSigner>;
  readonly clusterSigners: Informer<DelegationSigner>;
  readonly namespaceLabels: Informer<V1Namespace, NamespaceLabels>;
  readonly secrets: NamespacedInformers<V1Secret, SecretMeta>;
  /** The key Secrets of in-cluster signers: one watch per namespace holding any (key-secret-watches.ts). */
  readonly keySecrets: KeySecretNamespaceWatches;
  private readonly queue: WorkQueue;
  private readonly index = new ReverseIndex();
  private readonly listers: Pick<Listers, 'signer' | 'namespace'>;
  /** DelegatedCredentials whose last attempt kept an old grant or found none, with why (readiness detail). */
  private readonly problems = new Map<string, string>();
  private worker: Promise<void> | undefined;
  private initialPass = 0;

  constructor(private readonly o: ClusterKeysOptions) {
    const { kube, clock, log } = o;
    const ilog = { warn: log.warn.bind(log), debug: log.debug.bind(log) };
    const watched = o.namespaces !== undefined && o.namespaces.length > 0 ? [...new Set(o.namespaces)] : undefined;
    const named = (name: string, ns: string | undefined): string => (ns === undefined ? `keyserver/${name}` : `keyserver/${name}/${ns}`);
    this.queue = new WorkQueue(clock, { baseDelayMs: 1000, maxDelayMs: 30_000 });
    this.credentials = new NamespacedInformers(watched, (ns) =>
      new Informer(named('delegatedcredentials', ns), kube.customSource<DelegatedCredential>(RESOURCES.delegatedCredentials.plural, ns), (x) => x, clock, ilog));
    this.signers = new NamespacedInformers(watched, (ns) =>
      new Informer(named('delegationsigners', ns), kube.customSource<DelegationSigner>(RESOURCES.delegationSigners.plural, ns), (x) => x, clock, ilog));
    this.clusterSigners = new Informer(named('clusterdelegationsigners', undefined), kube.customSource<DelegationSigner>(RESOURCES.clusterDelegationSigners.plural, undefined, true), (x) => x, clock, ilog);
    this.namespaceLabels = new Informer(
      named('namespaces', undefined),
      kube.namespaceSource(watched?.length === 1 ? watched[0] : undefined),
      (ns) => ({ name: ns.metadata?.name ?? '', labels: { ...(ns.metadata?.labels ?? {}) } }),
      clock,
      ilog,
    );
    // A change is a reason to GET the Secret, never a copy of its data (and with the key server's
    // metadata-only sources no data arrives at all). Certificate Secrets live with their
    // DelegatedCredentials; signer key Secrets (anywhere, also the cluster resource namespace) are
    // watched per namespace, filtered to the names the signers use.
    const secretSource = o.secretSource;
    this.secrets = new NamespacedInformers(watched, (ns) =>
      new Informer(named('secrets', ns), secretSource(ns, { fieldSelector: CERTIFICATE_SECRET_SELECTOR }), (s) => ({ namespace: s.metadata?.namespace ?? '', name: s.metadata?.name ?? '' }), clock, ilog));
    this.keySecrets = new KeySecretNamespaceWatches({
      source: (ns) => secretSource(ns, {}),
      clock,
      log: ilog,
      onChange: (signerIds) => {
        for (const id of signerIds) this.requeue(`signer:${id}`);
      },
    });
    this.listers = {
      signer: (kind, ns, name) => (kind === 'DelegationSigner' ? this.signers.get(`${ns}/${name}`) : this.clusterSigners.get(name)),
      namespace: (name) => {
        if (!this.namespaceLabels.hasSynced()) return { state: 'syncing' };
        const ns = this.namespaceLabels.get(name);
        return ns === undefined ? { state: 'absent' } : { state: 'found', labels: ns.labels };
      },
    };
    this.credentials.on(({ object }) => this.queue.add(objectKey(object)));
    const bySigner = (type: 'add' | 'update' | 'delete', signer: DelegationSigner): void => {
      const id = signerIdOf(signer.kind, signer.metadata.namespace ?? '', signer.metadata.name ?? '');
      this.keySecrets.set(id, type === 'delete' ? undefined : keySecretOf(signer, o.clusterResourceNamespace));
      this.requeue(`signer:${id}`);
    };
    this.signers.on(({ type, object }) => bySigner(type, object));
    this.clusterSigners.on(({ type, object }) => bySigner(type, object));
    this.namespaceLabels.on(({ object }) => this.requeue(`namespace:${object.name}`));
    this.secrets.on(({ object }) => this.requeue(secretDep(object.namespace, object.name)));
  }

  start(): void {
    for (const i of [this.credentials, this.signers, this.clusterSigners, this.namespaceLabels, this.secrets, this.keySecrets]) i.start();
    this.worker = this.run();
  }

  /** Every cache listed once and every DelegatedCredential of that first list tried once. */
  hasSynced(): boolean {
    return this.initialPass === 2;
  }

  /** Why DelegatedCredentials have no or an old grant (readiness detail, the log says more). */
  problemCount(): number {
    return this.problems.size;
  }

  async stop(): Promise<void> {
    this.queue.shutdown();
    await Promise.all([this.credentials, this.signers, this.clusterSigners, this.namespaceLabels, this.secrets, this.keySecrets].map((i) => i.stop()));
    await this.worker;
  }

  private requeue(dependency: string): void {
    for (const key of this.index.owners(dependency)) this.queue.add(key);
  }

  private async run(): Promise<void> {
    // Planning before the signer and namespace caches are filled would revoke grants it cannot see yet.
    await Promise.all([this.credentials.synced, this.signers.synced, this.clusterSigners.synced, this.namespaceLabels.synced, this.secrets.synced]);
    const first = new Set(this.credentials.list().map((dc) => objectKey(dc)));
    this.initialPass = first.size === 0 ? 2 : 1;
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      try {
        await this.process(key);
      } catch (err) {
        this.o.log.error('keyserver: unexpected failure, retrying', { delegatedCredential: key, error: String(err) });
        this.queue.addRateLimited(key);
      } finally {
        this.queue.done(key);
        if (this.initialPass === 1 && first.delete(key) && first.size === 0) this.initialPass = 2;
      }
    }
  }

  private revoke(key: string, identity: string, why: string): void {
    this.queue.forget(key);
    if (this.o.grants.delete(identity)) {
      this.o.log.info('keyserver: grant revoked', { identity, why });
      this.o.onGrantsChanged?.();
    }
  }

  private async process(key: string): Promise<void> {
    const [namespace = '', name = ''] = key.split('/');
    let identity: string;
    try {
      identity = sidecarIdentityUri({ trustDomain: this.o.trustDomain, namespace, name });
    } catch (err) {
      this.o.log.warn('keyserver: no identity for this DelegatedCredential', { delegatedCredential: key, error: String(err) });
      return;
    }
    const dc = this.credentials.get(key);
    if (dc === undefined) {
      this.index.delete(key);
      this.problems.delete(key);
      this.queue.cancel(key);
      this.revoke(key, identity, `DelegatedCredential ${key} was deleted`);
      return;
    }
    const ref = dc.spec.signerRef;
    const deps = [secretDep(namespace, dc.spec.certificateSecretRef.name)];
    if (ref) deps.push(`signer:${signerIdOf(ref.kind, namespace, ref.name)}`);
    if (ref?.kind === 'ClusterDelegationSigner') deps.push(`namespace:${namespace}`);
    this.index.set(key, deps);

    let plan;
    try {
      plan = planSigner(dc, this.listers, this.o.clusterResourceNamespace);
    } catch (err) {
      if (!(err instanceof ReconcileFailure)) throw err;
      // No signer, a signer that does not allow this namespace, an invalid one: nothing to grant.
      this.problems.set(key, err.message);
      this.revoke(key, identity, `${err.reason}: ${err.message}`);
      return;
    }
    if (plan === 'syncing') {
      this.queue.addAfter(key, 1000);
      return;
    }
    if (plan.kind === 'keyless') {
      this.problems.delete(key);
      this.revoke(key, identity, `its signer is ${plan.description}: the sidecar pulls from that key server`);
      return;
    }
    const source: GrantSource = {
      certificate: { namespace, name: dc.spec.certificateSecretRef.name },
      key: { namespace: plan.namespace, name: plan.secretName, key: plan.key },
    };
    this.index.set(key, [...deps, secretDep(plan.namespace, plan.secretName)]);
    const sameSecret = source.key.namespace === namespace && source.key.name === source.certificate.name;
    let signingKey;
    try {
      const certificateSecret = await this.o.kube.getSecret(namespace, source.certificate.name);
      const keySecret = sameSecret ? certificateSecret : await this.o.kube.getSecret(source.key.namespace, source.key.name);
      signingKey = signingKeyFor(source, certificateSecret, keySecret);
    } catch (err) {
      if (!(err instanceof GrantProblem)) {
        // The API did not answer: keep the grant, try again.
        const retryInMs = this.queue.addRateLimited(key);
        this.o.log.warn('keyserver: cannot read the Secrets of a grant, keeping the current one', { identity, error: String(err), retryInMs });
        return;
      }
      this.problems.set(key, err.message);
      if (err.revoke) {
        this.revoke(key, identity, err.message);
      } else {
        const current = this.o.grants.grantOf(identity);
        this.o.log.warn(current ? 'keyserver: new key refused, keeping the working one' : 'keyserver: key refused, identity gets no key', {
          identity,
          error: err.message,
          ...(current ? { ski: current.key.skiHex } : {}),
        });
      }
      return;
    }
    this.problems.delete(key);
    this.queue.forget(key);
    const current = this.o.grants.grantOf(identity);
    // A DelegatedCredential deleted and re-created under its name has a new UID even when the key
    // is the same: the grant follows it, so client certificates of the old one are refused.
    const uid = dc.metadata.uid;
    const createdAt = creationTimeOf(dc.metadata.creationTimestamp);
    if (current?.key.skiHex === signingKey.skiHex && current.source === signingKey.source && current.uid === uid && current.createdAt === createdAt) return;
    this.o.grants.set(identity, { key: signingKey, source: signingKey.source, ...(uid !== undefined ? { uid } : {}), ...(createdAt !== undefined ? { createdAt } : {}) });
    this.o.log.info(current ? 'keyserver: grant replaced' : 'keyserver: grant added', {
      identity,
      ski: signingKey.skiHex,
      key: signingKey.source,
      ...(uid !== undefined ? { uid } : {}),
      ...(current ? { previousSki: current.key.skiHex, ...(current.uid !== uid && current.uid !== undefined ? { previousUid: current.uid } : {}) } : {}),
    });
    this.o.onGrantsChanged?.();
  }
}

/** `metadata.creationTimestamp` in ms: a string on the wire, a Date where client-node decoded it. */
function creationTimeOf(t: Date | string | undefined): number | undefined {
  const ms = t instanceof Date ? t.getTime() : t === undefined ? NaN : Date.parse(t);
  return Number.isFinite(ms) ? ms : undefined;
}
