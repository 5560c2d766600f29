// The certificate Secrets DelegatedCredentials reference, watched without caching every Secret
// in the cluster and without caching any private key:
//
// - one watch per namespace that holds at least one DelegatedCredential (started with the
//   first, stopped with the last), restricted by the field selector type=kubernetes.io/tls;
// - the store keeps a projection (name, resourceVersion, the certificates of tls.crt) and drops
//   tls.key at once, and any private key pasted into tls.crt after the certificate (a "combined
//   PEM"): only the CERTIFICATE blocks, re-encoded from DER, are kept, and the key's presence noted;
// - the key itself is read with a targeted GET only when issuing (once per burst: signing-keys.ts).
//
// Alternatives considered: a label users must put on their certificate Secrets (cert-manager
// Secrets would need a secretTemplate: easy to forget, and a silent failure); one watch per
// referenced name (fieldSelector metadata.name=X: a connection per DelegatedCredential); a
// cluster-wide watch of every Secret (what this avoids). Namespaces with DCs are usually few.
import type { V1Secret } from '@kubernetes/client-node';
import type { Clock } from './clock.js';
import { Informer, type InformerLogger, type ListWatchSource } from './informer.js';
import type { CertificateLookup, CertificateSecretProjection } from './ports.js';
import { certificatesOfPem } from '../tls/x509/index.js';

export const CERTIFICATE_SECRET_SELECTOR = 'type=kubernetes.io/tls';

export function projectCertificateSecret(secret: V1Secret): CertificateSecretProjection {
  const crt = secret.data?.['tls.crt'];
  // Only whether tls.key is there (fallback CertificateKey copies it at issue time); never the key.
  const hasKey = (secret.data?.['tls.key'] ?? '') !== '';
  const meta = { namespace: secret.metadata?.namespace ?? '', name: secret.metadata?.name ?? '', resourceVersion: secret.metadata?.resourceVersion ?? '', hasKey };
  if (crt === undefined) return { ...meta, chainPem: undefined, privateKeyLabels: [] };
  const text = Buffer.from(crt, 'base64').toString('utf8');
  try {
    const { pem, privateKeyLabels } = certificatesOfPem(text);
    return { ...meta, chainPem: pem, privateKeyLabels };
  } catch (err) {
    return { ...meta, chainPem: undefined, privateKeyLabels: [], invalid: err instanceof Error ? err.message : String(err) };
  }
}

export class CertificateSecrets {
  private readonly namespaces = new Map<string, { informer: Informer<V1Secret, CertificateSecretProjection>; refs: number }>();
  private readonly handlers: ((secret: CertificateSecretProjection) => void)[] = [];
  private stopped = false;

  constructor(
    private readonly source: (namespace: string) => ListWatchSource<V1Secret>,
    private readonly clock: Clock,
    private readonly log: InformerLogger,
  ) {}

  onChange(handler: (secret: CertificateSecretProjection) => void): void {
    this.handlers.push(handler);
  }

  /** One more DelegatedCredential in `namespace`: watch it if not yet watched. */
  retain(namespace: string): void {
    if (this.stopped) return;
    const entry = this.namespaces.get(namespace);
    if (entry) {
      entry.refs++;
      return;
    }
    const informer = new Informer(`certificate-secrets/${namespace}`, this.source(namespace), projectCertificateSecret, this.clock, this.log);
    informer.on(({ object }) => {
      for (const h of this.handlers) h(object);
    });
    this.namespaces.set(namespace, { informer, refs: 1 });
    informer.start();
  }

  /** One DelegatedCredential fewer in `namespace`: stop watching it with the last. */
  release(namespace: string): void {
    const entry = this.namespaces.get(namespace);
    if (!entry) return;
    entry.refs--;
    if (entry.refs <= 0) {
      this.namespaces.delete(namespace);
      void entry.informer.stop();
    }
  }

  lookup(namespace: string, name: string): CertificateLookup {
    const entry = this.namespaces.get(namespace);
    if (!entry || !entry.informer.hasSynced()) return { state: 'syncing' };
    const secret = entry.informer.get(`${namespace}/${name}`);
    return secret ? { state: 'found', secret } : { state: 'absent' };
  }

  watchedNamespaces(): string[] {
    return [...this.namespaces.keys()];
  }

  allSynced(): boolean {
    return [...this.namespaces.values()].every((e) => e.informer.hasSynced());
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const entries = [...this.namespaces.values()];
    this.namespaces.clear();
    await Promise.all(entries.map((e) => e.informer.stop()));
  }
}
