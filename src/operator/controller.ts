// Wires informers → work queue → reconciler workers. Handlers only enqueue keys;
// indexes map a certificate Secret, a signer, a namespace or an output Secret back to the
// DelegatedCredentials that depend on it.
import type { V1Namespace, V1Secret } from '@kubernetes/client-node';
import type { DelegatedCredential, DelegationSigner } from './api/v1alpha1.js';
import { RESOURCES } from './api/v1alpha1.js';
import { CertificateSecrets, CERTIFICATE_SECRET_SELECTOR } from './certificate-secrets.js';
import type { Clock } from './clock.js';
import type { CryptoPort } from './crypto.js';
import { OutputSecretForm, StringPool, cachedResource, type CachedOutputSecret } from './cache-form.js';
import { Informer, NamespacedInformers, objectKey } from './informer.js';
import { KeySecretWatches, keySecretOf } from './key-secrets.js';
import { KeylessSigners } from './keyless.js';
import { KeylessIdentity } from './keyless-identity.js';
import { fallbackOf } from './fallback.js';
import { DEFAULT_TRUST_DOMAIN } from './api/serving-bundle.js';
import { updateSignerStatus, type KubeClient } from './kube.js';
import { MANAGED_SELECTOR, OWNER_LABEL } from './output-secret.js';
import type { EventRecorder, IssueMetrics, Listers, Logger } from './ports.js';
import { WorkQueue } from './queue.js';
import { Reconciler } from './reconciler.js';
import { SignerStatusWriter } from './signer-status.js';
import { signerIdOf } from './signers.js';
import { SigningKeyCache } from './signing-keys.js';

export interface ControllerDeps {
  kube: KubeClient;
  crypto: CryptoPort;
  clock: Clock;
  log: Logger;
  events: EventRecorder;
  metrics: IssueMetrics;
  /** Watch only these namespaces (one informer each); undefined or empty: all namespaces. */
  namespaces?: readonly string[];
  /** The operator's namespace. */
  operatorNamespace: string;
  /** Where ClusterDelegationSigner Secrets live by default (cert-manager's "cluster resource namespace"); default operatorNamespace. */
  clusterResourceNamespace?: string;
  /** Ping loop of an unhealthy keyless signer: first and largest interval (default 5 s, 60 s). */
  keylessPingMinMs?: number;
  keylessPingMaxMs?: number;
  workers?: number;
  /** The keyless fallback: the in-cluster key server, the CA and the identities (keyless-identity.ts). */
  keylessFallback?: KeylessFallbackOptions;
}

export interface KeylessFallbackOptions {
  /** host:port of the in-cluster key server; empty: none (fallback Keyless reports NoKeyServer). */
  keyServerAddress?: string;
  trustDomain?: string;
  caSecretName?: string;
  servingSecretName?: string;
  probeIntervalMs?: number;
  maintenanceIntervalMs?: number;
}

/** Index: dependency key → keys of the DelegatedCredentials that use it. */
export class ReverseIndex {
  private readonly byDependency = new Map<string, Set<string>>();
  private readonly byOwner = new Map<string, string[]>();
  set(owner: string, dependencies: string[]): void {
    this.delete(owner);
    this.byOwner.set(owner, dependencies);
    for (const d of dependencies) {
      let set = this.byDependency.get(d);
      if (!set) this.byDependency.set(d, (set = new Set()));
      set.add(owner);
    }
  }
  delete(owner: string): void {
    for (const d of this.byOwner.get(owner) ?? []) {
      const set = this.byDependency.get(d);
      set?.delete(owner);
      if (set?.size === 0) this.byDependency.delete(d);
    }
    this.byOwner.delete(owner);
  }
  owners(dependency: string): string[] {
    return [...(this.byDependency.get(dependency) ?? [])];
  }
}

function dependenciesOf(dc: DelegatedCredential): string[] {
  const ns = dc.metadata.namespace ?? '';
  const deps = [`cert:${ns}/${dc.spec.certificateSecretRef.name}`];
  const ref = dc.spec.signerRef;
  if (ref) deps.push(`signer:${signerIdOf(ref.kind, ns, ref.name)}`);
  // A ClusterDelegationSigner's namespaceSelector is matched against the namespace's labels.
  if (ref?.kind === 'ClusterDelegationSigner') deps.push(`namespace:${ns}`);
  return deps;
}

/** What the namespace cache keeps: name and labels (nothing else of a Namespace is read). */
interface NamespaceProjection {
  name: string;
  labels: Record<string, string>;
}

function projectNamespace(ns: V1Namespace): NamespaceProjection {
  return { name: ns.metadata?.name ?? '', labels: { ...(ns.metadata?.labels ?? {}) } };
}

function sameLabels(a: Record<string, string> | undefined, b: Record<string, string>): boolean {
  if (a === undefined) return false;
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}

export class Controller {
  readonly queue: WorkQueue;
  readonly credentials: NamespacedInformers<DelegatedCredential>;
  readonly signers: NamespacedInformers<DelegationSigner>;
  readonly clusterSigners: Informer<DelegationSigner>;
  readonly outputSecrets: NamespacedInformers<V1Secret, CachedOutputSecret>;
  readonly namespaces: Informer<V1Namespace, NamespaceProjection>;
  readonly certificateSecrets: CertificateSecrets;
  readonly keyless: KeylessSigners;
  readonly keySecrets: KeySecretWatches;
  readonly keylessIdentity: KeylessIdentity;
  private readonly signingKeys: SigningKeyCache;
  private readonly signerStatus: SignerStatusWriter;
  private readonly reconciler: Reconciler;
  private readonly index = new ReverseIndex();
  private readonly namespaceOf = new Map<string, string>();
  /** `namespace/<owner label>` → keys of the output Secrets labelled for that DelegatedCredential. */
  private readonly outputsByOwner = new Map<string, Set<string>>();
  private readonly ownerOfOutput = new Map<string, string>();
  private workers: Promise<void>[] = [];
  private stopRequested!: () => void;
  private readonly stopping = new Promise<void>((resolve) => (this.stopRequested = resolve));

  constructor(private readonly deps: ControllerDeps) {
    const { kube, clock, log, namespaces } = deps;
    this.queue = new WorkQueue(clock);
    const ilog = { warn: log.warn.bind(log), debug: log.debug.bind(log) };
    const named = (name: string, ns: string | undefined): string => (ns === undefined ? name : `${name}/${ns}`);
    const pool = new StringPool();
    this.credentials = new NamespacedInformers(namespaces, (ns) =>
      new Informer(named('delegatedcredentials', ns), kube.customSource<DelegatedCredential>(RESOURCES.delegatedCredentials.plural, ns), cachedResource<DelegatedCredential>(pool), clock, ilog));
    this.signers = new NamespacedInformers(namespaces, (ns) =>
      new Informer(named('delegationsigners', ns), kube.customSource<DelegationSigner>(RESOURCES.delegationSigners.plural, ns), cachedResource<DelegationSigner>(pool), clock, ilog));
    this.clusterSigners = new Informer('clusterdelegationsigners', kube.customSource<DelegationSigner>(RESOURCES.clusterDelegationSigners.plural, undefined, true), cachedResource<DelegationSigner>(pool), clock, ilog);
    const outputForm = new OutputSecretForm(pool);
    this.outputSecrets = new NamespacedInformers(namespaces, (ns) =>
      new Informer(named('output-secrets', ns), kube.secretSource(ns, { labelSelector: MANAGED_SELECTOR }), outputForm.transform, clock, ilog));
    // Only the watched namespace when there is exactly one; else every namespace (name and labels
    // only, small). Namespaces are cluster-scoped: one informer keyed by name either way.
    this.namespaces = new Informer('namespaces', kube.namespaceSource(namespaces?.length === 1 ? namespaces[0] : undefined), projectNamespace, clock, ilog);
    this.certificateSecrets = new CertificateSecrets((ns) => kube.secretSource(ns, { fieldSelector: CERTIFICATE_SECRET_SELECTOR }), clock, ilog);
    const listers: Listers = {
      delegatedCredential: (ns, name) => this.credentials.get(`${ns}/${name}`),
      outputSecret: (ns, name) => this.outputSecrets.get(`${ns}/${name}`),
      certificateSecret: (ns, name) => this.certificateSecrets.lookup(ns, name),
      signer: (kind, ns, name) => (kind === 'DelegationSigner' ? this.signers.get(`${ns}/${name}`) : this.clusterSigners.get(name)),
      // Not part of the caches the workers wait for: only DelegatedCredentials of a
      // ClusterDelegationSigner need it, and they wait (requeue) on their own.
      namespace: (name) => {
        if (!this.namespaces.hasSynced()) return { state: 'syncing' };
        const ns = this.namespaces.get(name);
        return ns === undefined ? { state: 'absent' } : { state: 'found', labels: ns.labels };
      },
      outputSecretsOwnedBy: (ns, name) =>
        [...(this.outputsByOwner.get(`${ns}/${name}`) ?? [])].map((k) => this.outputSecrets.get(k)).filter((s): s is CachedOutputSecret => s !== undefined),
    };
    this.keySecrets = new KeySecretWatches(
      (ns, name) => kube.secretSource(ns, { fieldSelector: `metadata.name=${name}` }),
      clock,
      ilog,
      // A key Secret changed: what waits on its signers is retried now, not at the end of its backoff.
      (signerIds) => {
        for (const id of signerIds) this.retryDependents(id);
      },
    );
    this.signerStatus = new SignerStatusWriter({
      lookup: (id) => this.signerById(id),
      write: (signer, status) => updateSignerStatus(kube, signer, status),
      prime: (signer) => (signer.kind === 'ClusterDelegationSigner' ? this.clusterSigners : this.signers).prime(signer),
      clock,
      log,
    });
    this.keyless = new KeylessSigners({
      api: kube,
      clock,
      log,
      onHealth: (h) => this.signerStatus.report(h),
      // The key server answers again: retry what waits on it now, not at the end of its backoff.
      onRecovered: (signerId) => this.retryDependents(signerId),
      ...(deps.keylessPingMinMs !== undefined ? { pingMinMs: deps.keylessPingMinMs } : {}),
      ...(deps.keylessPingMaxMs !== undefined ? { pingMaxMs: deps.keylessPingMaxMs } : {}),
    });
    const fallback = deps.keylessFallback ?? {};
    this.keylessIdentity = new KeylessIdentity({
      api: kube,
      namespace: deps.operatorNamespace,
      keyServerAddress: fallback.keyServerAddress,
      trustDomain: fallback.trustDomain ?? DEFAULT_TRUST_DOMAIN,
      clock,
      log,
      ...(fallback.caSecretName !== undefined ? { caSecretName: fallback.caSecretName } : {}),
      ...(fallback.servingSecretName !== undefined ? { servingSecretName: fallback.servingSecretName } : {}),
      ...(fallback.probeIntervalMs !== undefined ? { probeIntervalMs: fallback.probeIntervalMs } : {}),
      ...(fallback.maintenanceIntervalMs !== undefined ? { maintenanceIntervalMs: fallback.maintenanceIntervalMs } : {}),
      // The CA bundle or the key server's readiness changed: only fallback Keyless depends on them.
      onChange: () => {
        for (const dc of this.credentials.list()) if (fallbackOf(dc) === 'Keyless') this.queue.add(objectKey(dc));
      },
    });
    this.signingKeys = new SigningKeyCache(clock);
    this.reconciler = new Reconciler({
      listers,
      api: kube,
      crypto: deps.crypto,
      clock,
      events: deps.events,
      metrics: deps.metrics,
      log,
      operatorNamespace: deps.operatorNamespace,
      clusterResourceNamespace: deps.clusterResourceNamespace ?? deps.operatorNamespace,
      keyless: this.keyless,
      keylessIdentity: this.keylessIdentity,
      signingKeys: this.signingKeys,
      signerHealth: (h) => this.signerStatus.report(h),
      vouchOutputKeys: (sent, keys) => outputForm.vouch(sent, keys),
      settleOutputKeys: (secret) => outputForm.settle(secret),
      forgetOutputKeys: (sent) => outputForm.forget(sent),
      primeSecret: (s) => {
        this.outputSecrets.prime(s);
        this.indexOutput(s, false);
      },
      primeCredential: (dc) => this.credentials.prime(dc),
    });
    this.wire();
  }

  private wire(): void {
    this.credentials.on(({ type, object }) => {
      const key = objectKey(object);
      const ns = object.metadata.namespace ?? '';
      if (type === 'delete') {
        this.index.delete(key);
        if (this.namespaceOf.delete(key)) this.certificateSecrets.release(ns);
        this.queue.cancel(key);
        return;
      }
      if (!this.namespaceOf.has(key)) {
        this.namespaceOf.set(key, ns);
        this.certificateSecrets.retain(ns);
      }
      this.index.set(key, dependenciesOf(object));
      this.queue.add(key);
    });
    this.outputSecrets.on(({ type, object }) => this.indexOutput(object, type === 'delete'));
    this.outputSecrets.on(({ object, old }) => {
      const ns = object.metadata?.namespace ?? '';
      // The owner label's DelegatedCredential, the one it named before (an edit moved or removed
      // it) and the controller reference's: the real owner puts its labels back.
      const owners = new Set([object.metadata?.labels?.[OWNER_LABEL], old?.metadata?.labels?.[OWNER_LABEL], object.metadata?.ownerReferences?.find((o) => o.controller === true && o.kind === 'DelegatedCredential')?.name]);
      for (const owner of owners) if (owner) this.queue.add(`${ns}/${owner}`);
    });
    // A label change may grant or revoke a ClusterDelegationSigner: decide again at once.
    this.namespaces.on(({ type, object, old }) => {
      if (type === 'update' && sameLabels(old?.labels, object.labels)) return;
      for (const key of this.index.owners(`namespace:${object.name}`)) this.queue.add(key);
    });
    this.certificateSecrets.onChange((secret) => {
      this.signingKeys.forget(secret.namespace, secret.name);
      for (const key of this.index.owners(`cert:${secret.namespace}/${secret.name}`)) this.queue.add(key);
    });
    const signerChanged = (kind: 'DelegationSigner' | 'ClusterDelegationSigner') => ({ type, object, old }: { type: string; object: DelegationSigner; old?: DelegationSigner }) => {
      const id = signerIdOf(kind, object.metadata.namespace ?? '', object.metadata.name ?? '');
      if (type === 'delete') this.keyless.forget(id);
      this.keySecrets.set(id, type === 'delete' ? undefined : keySecretOf(object, this.deps.clusterResourceNamespace ?? this.deps.operatorNamespace));
      // Our own status writes (generation unchanged) are no reason to reconcile the dependents.
      if (type === 'update' && old !== undefined && old.metadata.generation === object.metadata.generation && old.metadata.uid === object.metadata.uid) return;
      for (const key of this.index.owners(`signer:${id}`)) this.queue.add(key);
    };
    this.signers.on(signerChanged('DelegationSigner'));
    this.clusterSigners.on(signerChanged('ClusterDelegationSigner'));
  }

  start(): void {
    this.keylessIdentity.start();
    this.keySecrets.start();
    this.outputSecrets.start();
    this.signers.start();
    this.clusterSigners.start();
    this.namespaces.start();
    this.credentials.start();
    const n = this.deps.workers ?? 4;
    // Workers start once the dependency caches are filled: a reconcile against an empty output
    // Secret cache would see every Secret as missing and issue everything again.
    // And once the keyless CA has been loaded (or failed to): else every Keyless bundle would be
    // written without its identity first and rewritten a moment later.
    const synced = Promise.all([this.outputSecrets.synced, this.signers.synced, this.clusterSigners.synced, this.credentials.synced, this.keylessIdentity.settled]);
    const ready = Promise.race([synced, this.stopping]);
    this.workers = Array.from({ length: n }, () => ready.then(() => this.work()));
  }

  /**
   * Keeps `outputsByOwner` current, from watch events and from our own writes (a primed object
   * produces no event when its watch event arrives).
   */
  private indexOutput(secret: { metadata?: { name?: string; namespace?: string; labels?: Record<string, string> } }, deleted: boolean): void {
    const key = objectKey(secret);
    const ns = secret.metadata?.namespace ?? '';
    const owner = deleted ? undefined : secret.metadata?.labels?.[OWNER_LABEL];
    for (const [ownerKey, owned] of this.indexedOwners(key)) {
      if (ownerKey === `${ns}/${owner ?? ''}`) continue;
      owned.delete(key);
      if (owned.size === 0) this.outputsByOwner.delete(ownerKey);
    }
    if (owner === undefined) {
      this.ownerOfOutput.delete(key);
      return;
    }
    let owned = this.outputsByOwner.get(`${ns}/${owner}`);
    if (!owned) this.outputsByOwner.set(`${ns}/${owner}`, (owned = new Set()));
    owned.add(key);
    this.ownerOfOutput.set(key, `${ns}/${owner}`);
  }

  private indexedOwners(key: string): [string, Set<string>][] {
    const ownerKey = this.ownerOfOutput.get(key);
    const owned = ownerKey === undefined ? undefined : this.outputsByOwner.get(ownerKey);
    return ownerKey !== undefined && owned !== undefined ? [[ownerKey, owned]] : [];
  }

  /** Reconciles the DelegatedCredentials that use a signer now, resetting their backoff. */
  private retryDependents(signerId: string): void {
    for (const key of this.index.owners(`signer:${signerId}`)) {
      this.queue.forget(key);
      this.queue.add(key);
    }
  }

  private signerById(id: string): DelegationSigner | undefined {
    const [kind, ...rest] = id.split('/');
    return kind === 'ClusterDelegationSigner' ? this.clusterSigners.get(rest.join('/')) : this.signers.get(rest.join('/'));
  }

  hasSynced(): boolean {
    return this.credentials.hasSynced() && this.outputSecrets.hasSynced() && this.signers.hasSynced() && this.clusterSigners.hasSynced();
  }

  private async work(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      await this.process(key);
      this.queue.done(key);
    }
  }

  private async process(key: string): Promise<void> {
    const [namespace = '', name = ''] = key.split('/');
    const log = this.deps.log;
    try {
      const result = await this.reconciler.reconcile(namespace, name, this.queue.failureCount(key));
      if (result.kind === 'gone') {
        this.queue.cancel(key);
      } else if (result.kind === 'failed') {
        const delay = this.queue.addRateLimited(key);
        log.debug('retrying', { namespace, name, reason: result.failure.reason, retryInMs: delay });
      } else {
        this.queue.forget(key);
        if (result.requeueAt) this.queue.addAfter(key, result.requeueAt.getTime() - this.deps.clock.now().getTime());
      }
    } catch (err) {
      const delay = this.queue.addRateLimited(key);
      log.warn('reconcile error', { namespace, name, error: err instanceof Error ? err.message : String(err), retryInMs: delay });
    }
  }

  async stop(): Promise<void> {
    this.stopRequested();
    this.queue.shutdown();
    await Promise.all([this.credentials.stop(), this.signers.stop(), this.clusterSigners.stop(), this.outputSecrets.stop(), this.namespaces.stop(), this.certificateSecrets.stop(), this.keySecrets.stop()]);
    await Promise.allSettled(this.workers);
    this.signingKeys.clear();
    await this.keylessIdentity.stop();
    await this.keyless.close();
  }
}
