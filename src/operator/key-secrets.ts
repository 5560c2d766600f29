// The key Secrets named by in-cluster DelegationSigners and ClusterDelegationSigners, watched so a
// key that changes (added after a failure, rotated together with its certificate, fixed after a
// KeyMismatch) is tried at once instead of at the end of a backoff of up to 5 minutes.
//
// One watch per referenced key Secret (field selector metadata.name=<name> in its namespace):
// signers are few, unlike DelegatedCredentials, so this costs a handful of connections. The store
// keeps name and resourceVersion only; the key itself is never cached (read with a GET when issuing).
// A change does not itself force new credentials: a valid key belongs to the certificate, so a
// usable new key comes with a new certificate, which re-issues through the certificate watch.
import type { V1Secret } from '@kubernetes/client-node';
import type { DelegationSigner } from './api/v1alpha1.js';
import type { Clock } from './clock.js';
import { Informer, type InformerLogger, type ListWatchSource } from './informer.js';

interface KeySecretProjection {
  namespace: string;
  name: string;
  resourceVersion: string;
}

function project(secret: V1Secret): KeySecretProjection {
  return { namespace: secret.metadata?.namespace ?? '', name: secret.metadata?.name ?? '', resourceVersion: secret.metadata?.resourceVersion ?? '' };
}

/** `namespace/name` of an in-cluster signer's key Secret, or undefined for keyless signers. */
export function keySecretOf(signer: DelegationSigner, clusterResourceNamespace: string): string | undefined {
  const ref = signer.spec.inCluster?.keySecretRef;
  if (ref === undefined) return undefined;
  const namespace = signer.kind === 'ClusterDelegationSigner' ? (ref.namespace ?? clusterResourceNamespace) : (signer.metadata.namespace ?? '');
  return `${namespace}/${ref.name}`;
}

export class KeySecretWatches {
  private readonly watches = new Map<string, { informer: Informer<V1Secret, KeySecretProjection>; signers: Set<string> }>();
  private readonly bySigner = new Map<string, string>();
  private started = false;
  private stopped = false;

  constructor(
    private readonly source: (namespace: string, name: string) => ListWatchSource<V1Secret>,
    private readonly clock: Clock,
    private readonly log: InformerLogger,
    /** A watched key Secret changed (or appeared, or was deleted): the signers that use it. */
    private readonly onChange: (signerIds: string[]) => void,
  ) {}

  /** The signer `signerId` now uses `keySecret` (`namespace/name`), or none (keyless, deleted). */
  set(signerId: string, keySecret: string | undefined): void {
    const previous = this.bySigner.get(signerId);
    if (previous === keySecret) return;
    if (previous !== undefined) this.release(signerId, previous);
    if (keySecret === undefined) {
      this.bySigner.delete(signerId);
      return;
    }
    this.bySigner.set(signerId, keySecret);
    let watch = this.watches.get(keySecret);
    if (!watch) {
      const [namespace = '', name = ''] = keySecret.split('/');
      const informer = new Informer(`key-secret/${keySecret}`, this.source(namespace, name), project, this.clock, this.log);
      const entry = { informer, signers: new Set<string>() };
      informer.on(() => this.onChange([...entry.signers]));
      this.watches.set(keySecret, (watch = entry));
      if (this.started && !this.stopped) informer.start();
    }
    watch.signers.add(signerId);
  }

  /** Number of key Secrets watched (tests, metrics). */
  get size(): number {
    return this.watches.size;
  }

  start(): void {
    this.started = true;
    for (const { informer } of this.watches.values()) informer.start();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all([...this.watches.values()].map(({ informer }) => informer.stop()));
    this.watches.clear();
  }

  private release(signerId: string, keySecret: string): void {
    const watch = this.watches.get(keySecret);
    if (!watch) return;
    watch.signers.delete(signerId);
    if (watch.signers.size > 0) return;
    this.watches.delete(keySecret);
    void watch.informer.stop();
  }
}
