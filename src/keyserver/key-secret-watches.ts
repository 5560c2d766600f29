// The key Secrets of in-cluster signers, watched with one metadata-only list+watch per namespace
// that holds any, so a changed key is tried at once instead of after a backoff.
//
// Why per namespace, not per Secret (src/operator/key-secrets.ts watches each by name): every
// DelegationSigner names its own key Secret, so one watch each grows with the signers, each a
// long-lived request to the apiserver plus a LIST on every (re)start, without bound. A Secret
// field selector takes one name only (no set-based `metadata.name in (...)`), and a label
// selector would ask users to label their key Secrets. One watch of a namespace's Secrets serves
// every key Secret in it: the watches are bounded by the namespaces (the watched ones, plus the
// ClusterDelegationSigners' key namespaces), whatever the number of signers.
//
// The price is that the list and the events carry every Secret of those namespaces, so this
// watch must be metadata-only (the key server's sources are: secret-metadata.ts): names and
// resourceVersions, never data. The store keeps name and resourceVersion; an event for a name no
// signer uses is dropped.
import type { V1Secret } from '@kubernetes/client-node';
import type { Clock } from '../operator/clock.js';
import { Informer, type InformerLogger, type ListWatchSource } from '../operator/informer.js';

interface SecretName {
  namespace: string;
  name: string;
  resourceVersion: string;
}

function project(secret: V1Secret): SecretName {
  return { namespace: secret.metadata?.namespace ?? '', name: secret.metadata?.name ?? '', resourceVersion: secret.metadata?.resourceVersion ?? '' };
}

export interface KeySecretNamespaceWatchOptions {
  /** All Secrets of one namespace, as metadata only. */
  readonly source: (namespace: string) => ListWatchSource<V1Secret>;
  readonly clock: Clock;
  readonly log: InformerLogger;
  /** A key Secret in use changed (or appeared, or was deleted): the signers that use it. */
  readonly onChange: (signerIds: string[]) => void;
}

export class KeySecretNamespaceWatches {
  /** Signer → the key Secret it uses. */
  private readonly uses = new Map<string, { namespace: string; name: string }>();
  /** Key Secret (`namespace/name`) → the signers that use it: an event finds its signers at once. */
  private readonly usedBy = new Map<string, Set<string>>();
  /** Namespace → how many signers use a key Secret in it; a watch is open while this is > 0. */
  private readonly users = new Map<string, number>();
  private readonly watches = new Map<string, Informer<V1Secret, SecretName>>();
  private running = false;

  constructor(private readonly o: KeySecretNamespaceWatchOptions) {}

  /** The signer `signerId` now uses `keySecret` (`namespace/name`), or none (keyless, deleted). */
  set(signerId: string, keySecret: string | undefined): void {
    const before = this.uses.get(signerId);
    const [namespace = '', name = ''] = keySecret?.split('/') ?? [];
    if (before !== undefined && keySecret !== undefined && before.namespace === namespace && before.name === name) return;
    if (before !== undefined) {
      const key = `${before.namespace}/${before.name}`;
      const signers = this.usedBy.get(key);
      signers?.delete(signerId);
      if (signers?.size === 0) this.usedBy.delete(key);
    }
    if (keySecret === undefined) this.uses.delete(signerId);
    else {
      this.uses.set(signerId, { namespace, name });
      const key = `${namespace}/${name}`;
      let signers = this.usedBy.get(key);
      if (signers === undefined) this.usedBy.set(key, (signers = new Set()));
      signers.add(signerId);
    }
    // Count the new namespace first: a signer moving within one namespace keeps its watch open.
    if (keySecret !== undefined) this.count(namespace, 1);
    if (before !== undefined) this.count(before.namespace, -1);
  }

  /** Watches open: one per namespace holding a key Secret in use (tests, metrics). */
  get size(): number {
    return this.watches.size;
  }

  /** Key Secrets in use, over all namespaces. */
  get secrets(): number {
    return this.usedBy.size;
  }

  start(): void {
    this.running = true;
    for (const informer of this.watches.values()) informer.start();
  }

  async stop(): Promise<void> {
    this.running = false;
    const informers = [...this.watches.values()];
    this.watches.clear();
    await Promise.all(informers.map((i) => i.stop()));
  }

  private count(namespace: string, delta: number): void {
    const n = (this.users.get(namespace) ?? 0) + delta;
    if (n > 0) {
      this.users.set(namespace, n);
      if (!this.watches.has(namespace)) this.open(namespace);
      return;
    }
    this.users.delete(namespace);
    const informer = this.watches.get(namespace);
    this.watches.delete(namespace);
    void informer?.stop();
  }

  private open(namespace: string): void {
    const informer = new Informer(`key-secrets/${namespace}`, this.o.source(namespace), project, this.o.clock, this.o.log);
    // Every Secret of the namespace comes by (a relist brings them all): one lookup each, not a
    // scan of the signers.
    informer.on(({ object }) => {
      const signers = this.usedBy.get(`${object.namespace}/${object.name}`);
      if (signers !== undefined && signers.size > 0) this.o.onChange([...signers]);
    });
    this.watches.set(namespace, informer);
    if (this.running) informer.start();
  }
}
