// Where the webhook's serving certificate comes from, and when it changes.
//
// SelfBootstrappedCertificates: a CA kept in a Secret in the operator's namespace (shared by all
//   replicas), its certificates written as caBundle into the MutatingWebhookConfiguration, and a
//   serving certificate each replica signs for itself in memory. The CA is replaced at 2/3 of its
//   lifetime; the old CA stays in the bundle until it expires, so serving certificates it signed
//   (this replica's or another's) stay trusted during the change-over.
// DirectoryCertificates: cert-manager (or anything else) writes tls.crt/tls.key into a mounted
//   directory; we re-read it and serve what is there.
//
// Both answer refresh() with the material to serve and whether it changed; the server swaps its
// TLS context on change (no restart).

import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AdmissionregistrationV1Api, CoreV1Api, V1Secret } from '@kubernetes/client-node';
import { CA_LIFETIME_MS, SERVING_LIFETIME_MS, createServingCert, renewalTime, type KeyedCertificate } from '../pki/certs.js';
import { ensureCa, parseCaSecret as parseWebhookCa, type CaSecretLayout, type StoredCa } from '../pki/ca-secret.js';
import { syncCaBundle } from './webhook-configuration.js';
import { keyPairProblem } from '../tls/key-pair.js';

export interface ServingMaterial {
  certPem: string;
  keyPem: string;
}

export interface ServingCertificateSource {
  /** Loads, renews or re-reads; `changed` tells the server to swap its TLS context. */
  refresh(): Promise<ServingMaterial & { changed: boolean }>;
}

export interface Logger {
  info(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
  error(message: string, meta?: Record<string, unknown>): void;
}

export const DEFAULT_CA_SECRET_NAME = 'dc-operator-webhook-ca';

export type ServingDecision = 'keep' | 'issue' | 'wait-for-trust';

/** How long a new caBundle is given to reach the API server's webhook cache before we rely on it. */
export const DEFAULT_TRUST_PROPAGATION_MS = 30_000;

/**
 * Pure: must this replica sign itself a new serving certificate?
 * - none yet, or the current one is 2/3 through its life: issue;
 * - the CA changed (rotation): issue only once the bundle naming the new CA has been in the
 *   MutatingWebhookConfiguration for `propagationMs` (or the current certificate has expired). The API server reads that configuration
 *   through an informer; presenting a new-CA certificate before it has the new bundle would fail
 *   every admission call in between. The old serving certificate stays valid and trusted meanwhile.
 */
export function decideServing(
  serving: { cert: KeyedCertificate; issuerPem: string } | undefined,
  caPem: string,
  now: Date,
  bundleTrustedSince: Date | undefined,
  propagationMs = DEFAULT_TRUST_PROPAGATION_MS,
): ServingDecision {
  if (!serving) return 'issue';
  if (serving.issuerPem !== caPem) {
    // Even when the current certificate is due for renewal (it still has a third of its life),
    // a certificate the API server cannot verify yet would be worse than waiting a few seconds.
    const trusted = bundleTrustedSince !== undefined && now.getTime() - bundleTrustedSince.getTime() >= propagationMs;
    const expired = now.getTime() >= serving.cert.notAfter.getTime();
    return trusted || expired ? 'issue' : 'wait-for-trust';
  }
  return now.getTime() >= renewalTime(serving.cert).getTime() ? 'issue' : 'keep';
}

/** The webhook CA's Secret: a kubernetes.io/tls Secret, the trusted bundle under a key of its own. */
export const WEBHOOK_CA_LAYOUT: CaSecretLayout = {
  certKey: 'tls.crt',
  keyKey: 'tls.key',
  bundleKey: 'ca-bundle.crt',
  type: 'kubernetes.io/tls',
  labels: { 'app.kubernetes.io/name': 'dc-operator', 'app.kubernetes.io/component': 'webhook' },
  commonName: 'dc-operator webhook CA',
};

/** Reads the webhook's CA Secret; an unreadable one counts as absent (it will be replaced, with a warning). */
export function parseCaSecret(secret: V1Secret): StoredCa | undefined {
  return parseWebhookCa(secret, WEBHOOK_CA_LAYOUT);
}

export interface SelfBootstrapOptions {
  core: CoreV1Api;
  admission: AdmissionregistrationV1Api;
  namespace: string;
  caSecretName?: string;
  webhookConfigurationName: string;
  dnsNames: string[];
  ipAddresses: string[];
  now?: () => Date;
  caLifetimeMs?: number;
  servingLifetimeMs?: number;
  trustPropagationMs?: number;
  log: Logger;
}

export class SelfBootstrappedCertificates implements ServingCertificateSource {
  private serving: { cert: KeyedCertificate; issuerPem: string } | undefined;
  private lastBundle = '';
  private trustedBundle: { pem: string; since: Date } | undefined;
  private readonly now: () => Date;
  private readonly secretName: string;

  constructor(private readonly opts: SelfBootstrapOptions) {
    this.now = opts.now ?? (() => new Date());
    this.secretName = opts.caSecretName ?? DEFAULT_CA_SECRET_NAME;
  }

  /** The PEM bundle last written as caBundle (for tests and for registering a configuration). */
  caBundle(): string {
    return this.lastBundle;
  }

  async refresh(): Promise<ServingMaterial & { changed: boolean }> {
    const stored = await this.ensureCa();
    const bundle = stored.bundle.join('');
    // Trust first, then serve: the bundle must contain the new CA before any replica presents a
    // certificate it signed.
    const synced = await syncCaBundle(this.opts.admission, this.opts.webhookConfigurationName, bundle);
    if (synced === 'updated') this.opts.log.info('wrote caBundle into MutatingWebhookConfiguration', { name: this.opts.webhookConfigurationName, cas: stored.bundle.length });
    if (synced === 'missing') this.opts.log.warn('MutatingWebhookConfiguration not found; caBundle not written yet', { name: this.opts.webhookConfigurationName });
    this.lastBundle = bundle;

    const now = this.now();
    // When did we first see this exact bundle in the configuration (written by us or a peer)?
    if (synced !== 'missing' && this.trustedBundle?.pem !== bundle) this.trustedBundle = { pem: bundle, since: now };
    const trustedSince = this.trustedBundle?.pem === bundle ? this.trustedBundle.since : undefined;
    const decision = decideServing(this.serving, stored.ca.certPem, now, trustedSince, this.opts.trustPropagationMs);
    if (decision === 'wait-for-trust') this.opts.log.info('new CA not yet trusted long enough by the API server; keeping the current serving certificate');
    let changed = false;
    if (decision === 'issue') {
      const cert = await createServingCert(stored.ca, {
        dnsNames: this.opts.dnsNames,
        ipAddresses: this.opts.ipAddresses,
        now,
        lifetimeMs: this.opts.servingLifetimeMs ?? SERVING_LIFETIME_MS,
      });
      this.serving = { cert, issuerPem: stored.ca.certPem };
      changed = true;
      this.opts.log.info('issued webhook serving certificate', { notAfter: cert.notAfter.toISOString(), dnsNames: this.opts.dnsNames });
    }
    const { cert } = this.serving as { cert: KeyedCertificate };
    return { certPem: cert.certPem, keyPem: cert.keyPem, changed };
  }

  /** Reads the CA Secret, creating or rotating the CA when due; concurrent replicas converge on one. */
  private async ensureCa(): Promise<StoredCa> {
    const { core, namespace } = this.opts;
    const name = this.secretName;
    return ensureCa({
      access: {
        read: async () => {
          try {
            return await core.readNamespacedSecret({ name, namespace });
          } catch (err) {
            if ((err as { code?: number }).code === 404) return undefined;
            throw err;
          }
        },
        create: (body) => core.createNamespacedSecret({ namespace, body }),
        replace: (body) => core.replaceNamespacedSecret({ name, namespace, body }),
      },
      name,
      namespace,
      layout: WEBHOOK_CA_LAYOUT,
      now: this.now,
      lifetimeMs: this.opts.caLifetimeMs ?? CA_LIFETIME_MS,
      log: this.opts.log,
    });
  }
}

/** cert-manager mode: tls.crt and tls.key from a mounted directory, re-read on every refresh. */
export class DirectoryCertificates implements ServingCertificateSource {
  private last: ServingMaterial | undefined;
  constructor(private readonly dir: string) {}

  async refresh(): Promise<ServingMaterial & { changed: boolean }> {
    const [certPem, keyPem] = await Promise.all([
      readFile(join(this.dir, 'tls.crt'), 'utf8'),
      readFile(join(this.dir, 'tls.key'), 'utf8'),
    ]);
    if (!certPem.includes('BEGIN CERTIFICATE') || !keyPem.includes('PRIVATE KEY')) {
      throw new Error(`${this.dir}: tls.crt or tls.key is not PEM (half-written?)`);
    }
    // Files are replaced one at a time; a pair caught mid-change is refused (and retried later),
    // never remembered as served. A pair already checked and served is not signed with again.
    const changed = !this.last || this.last.certPem !== certPem || this.last.keyPem !== keyPem;
    if (changed) {
      let mismatch: string | undefined;
      try {
        mismatch = keyPairProblem(createPrivateKey(keyPem), new X509Certificate(certPem).publicKey, { key: 'tls.key', owner: 'tls.crt' });
      } catch (err) {
        throw new Error(`${this.dir}: cannot parse tls.crt/tls.key: ${(err as Error).message}`);
      }
      if (mismatch !== undefined) throw new Error(`${this.dir}: ${mismatch} (or caught mid-rotation: retried at the next refresh)`);
    }
    this.last = { certPem, keyPem };
    return { certPem, keyPem, changed };
  }
}
