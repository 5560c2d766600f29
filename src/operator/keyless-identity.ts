// The keyless identities the controller (the leader) manages, from one CA it keeps in a Secret of
// its own namespace (bootstrapped like the webhook's, src/pki/ca-secret.ts):
// - the in-cluster key server's serving certificate, in the Secret the key server mounts
//   (tls.crt, tls.key, ca.crt: ca.crt is also the bundle it verifies sidecars against);
// - each sidecar's client certificate, issued by the reconciler with every issuance of its
//   DelegatedCredential (issueClientCertificate);
// - the controller's own ping-only identity, in memory, to probe the key server's readiness.
//
// API traffic stays flat: the CA and serving Secrets are read once per maintenance interval (not
// per DelegatedCredential), the probe is one keyless ping per interval over one connection, and
// onChange fires only when the CA bundle or the key server's readiness changes.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { isIP } from 'node:net';
import type { V1Secret } from '@kubernetes/client-node';
import { controllerIdentityUri } from './api/serving-bundle.js';
import type { Clock } from './clock.js';
import { chainsTo, type KeylessIdentitySnapshot, type KeyServerState } from './fallback.js';
import type { KubeApi, Logger } from './ports.js';
import { statusCodeOf } from './informer.js';
import { KeylessClient, parseAddress } from '../keyless/client.js';
import { keyPairProblem } from '../tls/key-pair.js';
import { SERVING_LIFETIME_MS, createClientCert, createServingCert, renewalTime, serviceDnsNames, type KeyedCertificate } from '../pki/certs.js';
import { ensureCa, type CaSecretLayout, type StoredCa } from '../pki/ca-secret.js';

export const DEFAULT_KEYLESS_CA_SECRET = 'dc-operator-keyless-ca';
export const DEFAULT_KEYSERVER_TLS_SECRET = 'dc-operator-keyserver-tls';

/** The keyless CA's Secret: ca.crt is the trusted bundle, signing CA first; ca.key its key. */
export const KEYLESS_CA_LAYOUT: CaSecretLayout = {
  certKey: 'ca.crt',
  keyKey: 'ca.key',
  type: 'Opaque',
  labels: { 'app.kubernetes.io/name': 'dc-operator', 'app.kubernetes.io/component': 'keyless-ca', 'app.kubernetes.io/managed-by': 'dc-operator' },
  commonName: 'dc-operator keyless CA',
};

/** The controller's own identity is renewed at 2/3 of this. */
const CONTROLLER_IDENTITY_LIFETIME_MS = 24 * 3600_000;

export interface KeylessIdentityPort {
  snapshot(): KeylessIdentitySnapshot;
  /** A client certificate naming `uri` (and the DelegatedCredential `uid`), from the current CA, valid until `notAfter` (capped by the CA). */
  issueClientCertificate(uri: string, notAfter: Date, now: Date, uid?: string): Promise<{ certPem: string; keyPem: string }>;
}

/**
 * The DNS names (or IP) of the key server's serving certificate, from its address: the host as
 * given and, for a Service name, its short forms (`svc`, `svc.ns`, `svc.ns.svc`, `svc.ns.svc.cluster.local`).
 */
export function keyServerNames(address: string, operatorNamespace: string): { dnsNames: string[]; ipAddresses: string[] } {
  const { host } = parseAddress(address);
  if (isIP(host) !== 0) return { dnsNames: [], ipAddresses: [host] };
  const labels = host.split('.');
  const [service, namespace = operatorNamespace] = labels as [string, string?];
  // svc, svc.ns, svc.ns.svc, svc.ns.svc.<cluster domain>: a Service. Anything else is a name of its own.
  const isService = labels.length <= 2 || labels[2] === 'svc';
  return { dnsNames: [...new Set([host, ...(isService ? serviceDnsNames(service, namespace) : [])])], ipAddresses: [] };
}

export type ServingAction = 'keep' | 'update-ca' | 'issue' | 'not-ours';

/** Pure apart from parsing: what to do with the key server's serving Secret. */
export function decideServingSecret(secret: V1Secret | undefined, caBundlePem: string, names: { dnsNames: string[]; ipAddresses: string[] }, now: Date): { action: ServingAction; why: string } {
  if (secret === undefined) return { action: 'issue', why: 'it does not exist' };
  if (secret.metadata?.labels?.['app.kubernetes.io/managed-by'] !== 'dc-operator') return { action: 'not-ours', why: 'it is not labelled app.kubernetes.io/managed-by=dc-operator' };
  const text = (k: string): string => Buffer.from(secret.data?.[k] ?? '', 'base64').toString('utf8');
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(text('tls.crt'));
    const mismatch = keyPairProblem(createPrivateKey(text('tls.key')), cert.publicKey, { key: 'tls.key', owner: 'tls.crt' });
    if (mismatch !== undefined) return { action: 'issue', why: mismatch };
  } catch (err) {
    return { action: 'issue', why: `tls.crt or tls.key does not parse: ${err instanceof Error ? err.message : String(err)}` };
  }
  const want = [...names.dnsNames.map((n) => `DNS:${n}`), ...names.ipAddresses.map((n) => `IP Address:${n}`)].sort();
  const have = (cert.subjectAltName ?? '').split(', ').filter((n) => n !== '').sort();
  if (want.join(',') !== have.join(',')) return { action: 'issue', why: `its names (${have.join(', ')}) differ from the key server address's (${want.join(', ')})` };
  if (!chainsTo(cert, caBundlePem)) return { action: 'issue', why: 'it was not issued by a CA of the keyless CA bundle' };
  const validity = { notBefore: new Date(cert.validFrom), notAfter: new Date(cert.validTo) };
  if (now.getTime() >= renewalTime(validity).getTime()) return { action: 'issue', why: `it is due for renewal (expires ${validity.notAfter.toISOString()})` };
  // A rotated CA alone does not re-sign the serving certificate: the one in place chains to the
  // previous CA, which stays in every bundle until it expires; only the trust anchors are updated.
  if (text('ca.crt').trim() !== caBundlePem.trim()) return { action: 'update-ca', why: 'the keyless CA bundle changed' };
  return { action: 'keep', why: '' };
}

export interface KeylessIdentityOptions {
  api: Pick<KubeApi, 'getSecret' | 'createSecret' | 'replaceSecret'>;
  /** The controller's namespace: both Secrets live here. */
  namespace: string;
  caSecretName?: string;
  servingSecretName?: string;
  /** host:port of the in-cluster key server; empty or absent: none. */
  keyServerAddress?: string;
  trustDomain: string;
  clock: Clock;
  log: Logger;
  /** Default 15 s: one keyless ping per interval. */
  probeIntervalMs?: number;
  /** Default 5 min: the CA and serving Secrets are read (and renewed when due) this often. */
  maintenanceIntervalMs?: number;
  probeTimeoutMs?: number;
  caLifetimeMs?: number;
  servingLifetimeMs?: number;
  /** The CA bundle or the key server's readiness changed: reconcile what depends on them. */
  onChange(): void;
}

export class KeylessIdentity implements KeylessIdentityPort {
  private ca: StoredCa | undefined;
  private caProblem: string | undefined;
  private keyServer: KeyServerState | undefined;
  private controllerCert: { cert: KeyedCertificate; issuer: string } | undefined;
  private probeClient: { client: KeylessClient; fingerprint: string } | undefined;
  private lastMaintenance = -Infinity;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private running: Promise<void> = Promise.resolve();
  private firstRound!: () => void;
  /** Settles after the first maintenance and probe, whatever their outcome. */
  readonly settled = new Promise<void>((resolve) => (this.firstRound = resolve));
  private readonly caSecretName: string;
  private readonly servingSecretName: string;

  constructor(private readonly opts: KeylessIdentityOptions) {
    this.caSecretName = opts.caSecretName ?? DEFAULT_KEYLESS_CA_SECRET;
    this.servingSecretName = opts.servingSecretName ?? DEFAULT_KEYSERVER_TLS_SECRET;
    const address = opts.keyServerAddress ?? '';
    if (address !== '') this.keyServer = { address, ready: undefined, message: 'not probed yet' };
  }

  start(): void {
    this.running = this.round().finally(() => this.firstRound());
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running.catch(() => undefined);
    await this.probeClient?.client.close();
    this.probeClient = undefined;
  }

  snapshot(): KeylessIdentitySnapshot {
    return {
      caBundlePem: this.ca?.bundle.join(''),
      ...(this.caProblem !== undefined ? { caProblem: this.caProblem } : {}),
      keyServer: this.keyServer === undefined ? undefined : { ...this.keyServer },
      trustDomain: this.opts.trustDomain,
    };
  }

  async issueClientCertificate(uri: string, notAfter: Date, now: Date, uid?: string): Promise<{ certPem: string; keyPem: string }> {
    const ca = this.ca;
    if (ca === undefined) throw new Error(`the keyless CA is not available${this.caProblem ? `: ${this.caProblem}` : ''}`);
    const cert = await createClientCert(ca.ca, { uri, now, notAfter, ...(uid !== undefined ? { uid } : {}) });
    return { certPem: cert.certPem, keyPem: cert.keyPem };
  }

  /** One maintenance (when due) and one probe; then the next round is scheduled. */
  private async round(): Promise<void> {
    const now = this.opts.clock.now().getTime();
    if (now - this.lastMaintenance >= (this.opts.maintenanceIntervalMs ?? 300_000)) {
      this.lastMaintenance = now;
      await this.maintain();
    }
    await this.probe();
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.round();
    }, this.opts.probeIntervalMs ?? 15_000);
    this.timer.unref();
  }

  /** Loads, creates or rotates the CA; issues or renews the key server's serving Secret. */
  async maintain(): Promise<void> {
    const { api, namespace, log } = this.opts;
    const before = this.ca?.bundle.join('');
    try {
      const name = this.caSecretName;
      this.ca = await ensureCa({
        access: { read: () => api.getSecret(namespace, name), create: (body) => api.createSecret(body), replace: (body) => api.replaceSecret(body) },
        name,
        namespace,
        layout: KEYLESS_CA_LAYOUT,
        now: () => this.opts.clock.now(),
        ...(this.opts.caLifetimeMs !== undefined ? { lifetimeMs: this.opts.caLifetimeMs } : {}),
        log,
      });
      this.caProblem = undefined;
    } catch (err) {
      this.caProblem = `Secret ${namespace}/${this.caSecretName}: ${messageOf(err)}`;
      log.warn('keyless CA not available', { error: this.caProblem });
      if (this.ca === undefined) this.opts.onChange();
      return;
    }
    if (before !== this.ca.bundle.join('')) this.opts.onChange();
    if (this.keyServer !== undefined) {
      try {
        await this.ensureServingSecret(this.ca);
      } catch (err) {
        log.warn('could not write the key server serving Secret', { secret: `${namespace}/${this.servingSecretName}`, error: messageOf(err) });
      }
    }
  }

  private async ensureServingSecret(ca: StoredCa): Promise<void> {
    const { api, namespace, log } = this.opts;
    const address = this.keyServer?.address ?? '';
    const names = keyServerNames(address, namespace);
    const existing = await api.getSecret(namespace, this.servingSecretName);
    const bundle = ca.bundle.join('');
    const now = this.opts.clock.now();
    const { action, why } = decideServingSecret(existing, bundle, names, now);
    if (action === 'keep') return;
    if (action === 'not-ours') {
      log.warn('the key server serving Secret is not ours; leaving it alone', { secret: `${namespace}/${this.servingSecretName}`, why });
      return;
    }
    const b64 = (s: string): string => Buffer.from(s).toString('base64');
    let data: Record<string, string>;
    if (action === 'update-ca' && existing?.data !== undefined) {
      data = { ...existing.data, 'ca.crt': b64(bundle) };
    } else {
      const cert = await createServingCert(ca.ca, { ...names, now, lifetimeMs: this.opts.servingLifetimeMs ?? SERVING_LIFETIME_MS });
      data = { 'tls.crt': b64(cert.certPem), 'tls.key': b64(cert.keyPem), 'ca.crt': b64(bundle) };
    }
    const body: V1Secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'kubernetes.io/tls',
      metadata: {
        name: this.servingSecretName,
        namespace,
        labels: { 'app.kubernetes.io/name': 'dc-operator', 'app.kubernetes.io/component': 'keyserver', 'app.kubernetes.io/managed-by': 'dc-operator' },
        ...(existing?.metadata?.resourceVersion !== undefined ? { resourceVersion: existing.metadata.resourceVersion } : {}),
      },
      data,
    };
    try {
      if (existing === undefined) await api.createSecret(body);
      else await api.replaceSecret(body);
    } catch (err) {
      // Another writer was first (a former leader still finishing): the next maintenance decides again.
      if (statusCodeOf(err) === 409) return;
      throw err;
    }
    log.info(action === 'update-ca' ? 'updated the key server CA bundle' : 'issued the key server serving certificate', { secret: `${namespace}/${this.servingSecretName}`, why, dnsNames: names.dnsNames });
  }

  /** One keyless ping to the in-cluster key server with the controller's identity. */
  async probe(): Promise<void> {
    const state = this.keyServer;
    if (state === undefined || this.stopped) return;
    let ready: boolean;
    let message: string;
    try {
      const client = await this.client(state.address);
      const rtt = await client.ping({ timeoutMs: this.opts.probeTimeoutMs ?? 5_000 });
      ready = true;
      message = `answers (ping ${rtt.toFixed(1)} ms)`;
    } catch (err) {
      ready = false;
      message = messageOf(err);
    }
    if (ready !== state.ready || (!ready && message !== state.message)) {
      if (ready) this.opts.log.info('key server ready', { address: state.address });
      else this.opts.log.warn('key server not ready', { address: state.address, error: message });
      const changed = ready !== state.ready;
      this.keyServer = { address: state.address, ready, message };
      // A new error text alone rewrites no status: only a change of readiness reconciles.
      if (changed) this.opts.onChange();
    }
  }

  /** The probe client, remade when the CA bundle or the controller's certificate changes. */
  private async client(address: string): Promise<KeylessClient> {
    const ca = this.ca;
    if (ca === undefined) throw new Error(`the keyless CA is not available${this.caProblem ? `: ${this.caProblem}` : ''}`);
    const now = this.opts.clock.now();
    const current = this.controllerCert;
    if (current === undefined || current.issuer !== ca.ca.certPem || now.getTime() >= renewalTime(current.cert).getTime()) {
      const cert = await createClientCert(ca.ca, { uri: controllerIdentityUri(this.opts.trustDomain), now, notAfter: new Date(now.getTime() + CONTROLLER_IDENTITY_LIFETIME_MS) });
      this.controllerCert = { cert, issuer: ca.ca.certPem };
    }
    const { cert } = this.controllerCert as { cert: KeyedCertificate };
    const bundle = ca.bundle.join('');
    const fingerprint = `${bundle}|${cert.certPem}`;
    if (this.probeClient?.fingerprint !== fingerprint) {
      void this.probeClient?.client.close();
      // One connection, and no retry backoff of its own beyond the probe interval.
      this.probeClient = { client: new KeylessClient({ address, ca: bundle, cert: cert.certPem, key: cert.keyPem, poolSize: 1, maxBackoffMs: 1_000 }), fingerprint };
    }
    return this.probeClient.client;
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
