// In-memory stand-ins for the reconciler's ports: one map of objects serves as both the API and
// the caches (tests of stale caches set them apart explicitly).
import type { V1Secret } from '@kubernetes/client-node';
import type { DelegatedCredential, DelegatedCredentialSpecInput, DelegatedCredentialStatus, DelegationSigner } from '../../../src/operator/api/v1alpha1.js';
import { FakeClock } from '../../../src/operator/clock.js';
import { tlsCrypto } from '../../../src/operator/crypto.js';
import { projectCertificateSecret } from '../../../src/operator/certificate-secrets.js';
import { OutputSecretForm, StringPool, type CachedOutputSecret } from '../../../src/operator/cache-form.js';
import type { CertificateLookup, EventRecorder, IssueMetrics, KubeApi, Listers, Logger, NamespaceLookup } from '../../../src/operator/ports.js';
import { Reconciler, type ReconcilerDeps } from '../../../src/operator/reconciler.js';
import { issueCertificate, KeyUsage, type IssuedCertificate, type KeyType } from '../../../src/cli/pki/dev-pki.js';

export class Conflict extends Error {
  readonly code = 409;
}

export class FakeCluster implements KubeApi, Listers {
  readonly secrets = new Map<string, V1Secret>();
  readonly dcs = new Map<string, DelegatedCredential>();
  readonly signers = new Map<string, DelegationSigner>();
  /** Namespace name → labels; a namespace not here is 'absent' (or every lookup 'syncing' while namespacesSynced is false). */
  readonly namespaces = new Map<string, Record<string, string>>();
  namespacesSynced = true;
  readonly calls: string[] = [];
  private rv = 100;

  private nextRv(): string {
    return String(++this.rv);
  }

  // ---- Listers
  delegatedCredential(namespace: string, name: string): DelegatedCredential | undefined {
    return this.dcs.get(`${namespace}/${name}`);
  }
  /** Like the real informer: only Secrets labelled app.kubernetes.io/managed-by=dc-operator, in the cached form. */
  outputSecret(namespace: string, name: string): CachedOutputSecret | undefined {
    const s = this.secrets.get(`${namespace}/${name}`);
    return s?.metadata?.labels?.['app.kubernetes.io/managed-by'] === 'dc-operator' ? this.outputForm.transform(s) : undefined;
  }
  /** Like the controller's: pairwise key checks wait for the reconciler's settleOutputKeys. */
  readonly outputForm = new OutputSecretForm(new StringPool());
  /** Like the real informer: kubernetes.io/tls Secrets only, through the same projection. */
  certificateSecret(namespace: string, name: string): CertificateLookup {
    const s = this.secrets.get(`${namespace}/${name}`);
    if (s === undefined || s.type !== 'kubernetes.io/tls') return { state: 'absent' };
    return { state: 'found', secret: projectCertificateSecret(s) };
  }
  outputSecretsOwnedBy(namespace: string, name: string): CachedOutputSecret[] {
    return [...this.secrets.values()]
      .filter((s) => s.metadata?.namespace === namespace && s.metadata.labels?.['app.kubernetes.io/managed-by'] === 'dc-operator' && s.metadata.labels['dc-operator.io/delegated-credential'] === name)
      .map((s) => this.outputForm.transform(s));
  }
  signer(kind: 'DelegationSigner' | 'ClusterDelegationSigner', namespace: string, name: string): DelegationSigner | undefined {
    return this.signers.get(kind === 'DelegationSigner' ? `${kind}/${namespace}/${name}` : `${kind}/${name}`);
  }

  namespace(name: string): NamespaceLookup {
    if (!this.namespacesSynced) return { state: 'syncing' };
    const labels = this.namespaces.get(name);
    return labels === undefined ? { state: 'absent' } : { state: 'found', labels };
  }

  // ---- KubeApi
  getSecret(namespace: string, name: string): Promise<V1Secret | undefined> {
    this.calls.push(`get secret ${namespace}/${name}`);
    const s = this.secrets.get(`${namespace}/${name}`);
    return Promise.resolve(s === undefined ? undefined : structuredClone(s));
  }
  createSecret(secret: V1Secret): Promise<V1Secret> {
    const key = `${secret.metadata?.namespace ?? ''}/${secret.metadata?.name ?? ''}`;
    this.calls.push(`create secret ${key}`);
    if (this.secrets.has(key)) return Promise.reject(new Conflict('already exists'));
    const stored = structuredClone(secret);
    stored.metadata = { ...stored.metadata, resourceVersion: this.nextRv() };
    this.secrets.set(key, stored);
    return Promise.resolve(structuredClone(stored));
  }
  replaceSecret(secret: V1Secret): Promise<V1Secret> {
    const key = `${secret.metadata?.namespace ?? ''}/${secret.metadata?.name ?? ''}`;
    this.calls.push(`replace secret ${key}`);
    const current = this.secrets.get(key);
    if (current?.metadata?.resourceVersion !== secret.metadata?.resourceVersion) return Promise.reject(new Conflict('conflict'));
    const stored = structuredClone(secret);
    stored.metadata = { ...stored.metadata, resourceVersion: this.nextRv() };
    this.secrets.set(key, stored);
    return Promise.resolve(structuredClone(stored));
  }
  deleteSecret(namespace: string, name: string, preconditions: { uid: string; resourceVersion: string }): Promise<void> {
    const key = `${namespace}/${name}`;
    this.calls.push(`delete secret ${key}`);
    const current = this.secrets.get(key);
    if (current === undefined) return Promise.resolve();
    if ((current.metadata?.uid ?? '') !== preconditions.uid || current.metadata?.resourceVersion !== preconditions.resourceVersion) {
      return Promise.reject(new Conflict('precondition failed'));
    }
    this.secrets.delete(key);
    return Promise.resolve();
  }
  updateStatus(dc: DelegatedCredential, status: DelegatedCredentialStatus): Promise<DelegatedCredential> {
    const key = `${dc.metadata.namespace ?? ''}/${dc.metadata.name ?? ''}`;
    this.calls.push(`update status ${key}`);
    const current = this.dcs.get(key);
    if (current === undefined || current.metadata.resourceVersion !== dc.metadata.resourceVersion) return Promise.reject(new Conflict('conflict'));
    const updated: DelegatedCredential = { ...structuredClone(current), status: structuredClone(status) };
    updated.metadata.resourceVersion = this.nextRv();
    this.dcs.set(key, updated);
    return Promise.resolve(structuredClone(updated));
  }

  // ---- test helpers
  /** Without `keyPem` the certificate's own key is stored as tls.key; null: no tls.key at all. */
  putTlsSecret(namespace: string, name: string, cert: IssuedCertificate, keyPem: string | null = cert.key.privateKeyPem): void {
    const data: Record<string, string> = { 'tls.crt': Buffer.from(cert.pem).toString('base64') };
    if (keyPem !== null) data['tls.key'] = Buffer.from(keyPem).toString('base64');
    this.secrets.set(`${namespace}/${name}`, { type: 'kubernetes.io/tls', metadata: { name, namespace, resourceVersion: this.nextRv() }, data });
  }
  putDelegatedCredential(namespace: string, name: string, spec: DelegatedCredentialSpecInput, generation = 1): DelegatedCredential {
    const dc: DelegatedCredential = {
      apiVersion: 'dc-operator.io/v1alpha1',
      kind: 'DelegatedCredential',
      metadata: { name, namespace, uid: `uid-${name}`, generation, resourceVersion: this.nextRv() },
      spec: { algorithms: ['ecdsa_secp256r1_sha256'], validity: '24h', fallback: 'Keyless', ...spec },
    };
    this.dcs.set(`${namespace}/${name}`, dc);
    return dc;
  }
  writes(): string[] {
    return this.calls.filter((c) => !c.startsWith('get'));
  }
}

export class RecordingEvents implements EventRecorder {
  readonly events: { type: string; reason: string; message: string }[] = [];
  record(_dc: DelegatedCredential, type: 'Normal' | 'Warning', reason: string, message: string): void {
    this.events.push({ type, reason, message });
  }
}

export class CountingMetrics implements IssueMetrics {
  readonly issuedCount = new Map<string, number>();
  readonly failures = new Map<string, number>();
  readonly signs: number[] = [];
  issued(algorithm: string): void {
    this.issuedCount.set(algorithm, (this.issuedCount.get(algorithm) ?? 0) + 1);
  }
  failed(reason: string): void {
    this.failures.set(reason, (this.failures.get(reason) ?? 0) + 1);
  }
  signDuration(_algorithm: string, _signer: string, seconds: number): void {
    this.signs.push(seconds);
  }
}

export const silentLog: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined };

export interface Harness {
  cluster: FakeCluster;
  clock: FakeClock;
  events: RecordingEvents;
  metrics: CountingMetrics;
  reconciler: Reconciler;
}

type ExtraDeps = Pick<ReconcilerDeps, 'signerHealth' | 'keylessIdentity' | 'signingKeys' | 'primeSecret'>;

/** `extra` may be made from the harness's cluster and clock (a KeylessIdentity needs both). */
export function harness(start = new Date(), more: ExtraDeps | ((h: { cluster: FakeCluster; clock: FakeClock }) => ExtraDeps) = {}): Harness {
  const cluster = new FakeCluster();
  const clock = new FakeClock(start);
  const extra = typeof more === 'function' ? more({ cluster, clock }) : more;
  const events = new RecordingEvents();
  const metrics = new CountingMetrics();
  const reconciler = new Reconciler({
    listers: cluster,
    api: cluster,
    crypto: tlsCrypto,
    clock,
    events,
    metrics,
    log: silentLog,
    operatorNamespace: 'dc-operator',
    settleOutputKeys: (secret) => cluster.outputForm.settle(secret),
    ...extra,
  });
  return { cluster, clock, events, metrics, reconciler };
}

export interface CertOptions {
  keyType?: KeyType;
  delegationUsage?: boolean;
  notBefore?: Date;
  notAfter?: Date;
}

export function delegationCertificate(opts: CertOptions = {}): Promise<IssuedCertificate> {
  return issueCertificate(
    {
      commonName: 'web.example.test',
      dnsNames: ['web.example.test'],
      keyUsage: KeyUsage.digitalSignature,
      delegationUsage: opts.delegationUsage === false ? 'none' : 'non-critical',
      ...(opts.notBefore ? { notBefore: opts.notBefore } : {}),
      ...(opts.notAfter ? { notAfter: opts.notAfter } : {}),
    },
    opts.keyType ?? 'ecdsa-p256',
  );
}

/** A harness at `start` whose DelegatedCredential web/web-dc (24h, Secret web-dc-secret, from web-tls) has been issued once. */
export async function issuedOnce(start: Date): Promise<Harness> {
  const h = harness(start);
  const cert = await delegationCertificate({ notBefore: new Date('2025-12-01T00:00:00Z'), notAfter: new Date('2027-01-01T00:00:00Z') });
  h.cluster.putTlsSecret('web', 'web-tls', cert);
  h.cluster.putDelegatedCredential('web', 'web-dc', { certificateSecretRef: { name: 'web-tls' }, secretName: 'web-dc-secret', validity: '24h' });
  await h.reconciler.reconcile('web', 'web-dc');
  return h;
}
