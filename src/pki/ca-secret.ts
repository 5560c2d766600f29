// A private CA kept in a Secret, shared by every replica that reads it: created when missing,
// never overwritten while valid, replaced at 2/3 of its lifetime. The replaced CA stays in the
// trusted bundle until it expires, so what it signed stays trusted during the change-over.
// The webhook keeps its CA this way, and so does the controller for keyless identities; each
// names its own Secret layout.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import type { V1Secret } from '@kubernetes/client-node';
import { keyPairProblem } from '../tls/key-pair.js';
import { CA_LIFETIME_MS, certValidity, createCa, normalizePem, pruneExpired, renewalTime, splitPemCertificates, type KeyedCertificate } from './certs.js';

/** The CA as kept in its Secret: the signing CA and every CA still trusted (newest first). */
export interface StoredCa {
  ca: KeyedCertificate;
  bundle: string[];
  resourceVersion?: string;
}

export type CaAction = 'create' | 'rotate' | 'keep';

/** Pure: what to do with the stored CA at `now`. */
export function decideCaAction(stored: StoredCa | undefined, now: Date): CaAction {
  if (!stored) return 'create';
  return now.getTime() >= renewalTime(stored.ca).getTime() ? 'rotate' : 'keep';
}

/** Pure apart from key generation: a fresh CA, and a bundle trusting it and the unexpired old ones. */
export async function nextCa(previous: StoredCa | undefined, now: Date, lifetimeMs = CA_LIFETIME_MS, commonName = 'dc-operator CA'): Promise<StoredCa> {
  const ca = await createCa(commonName, now, lifetimeMs);
  const bundle = pruneExpired([ca.certPem, ...(previous?.bundle ?? [])], now);
  return { ca, bundle };
}

/** Where a CA lives in its Secret. */
export interface CaSecretLayout {
  /** The signing CA's certificate; without `bundleKey`, the whole trusted bundle, signing CA first. */
  certKey: string;
  keyKey: string;
  /** The trusted bundle under a key of its own (absent: it is `certKey`). */
  bundleKey?: string;
  type: string;
  labels: Record<string, string>;
  commonName: string;
}

function decode(secret: V1Secret, key: string): string | undefined {
  const b64 = secret.data?.[key];
  return b64 === undefined ? undefined : Buffer.from(b64, 'base64').toString('utf8');
}

/** Reads a CA Secret; an unreadable one counts as absent (it will be replaced, with a warning). */
export function parseCaSecret(secret: V1Secret, layout: CaSecretLayout): StoredCa | undefined {
  const read = readCaSecret(secret, layout);
  return 'problem' in read ? undefined : read;
}

/** A CA Secret's CA, or why it cannot be used (the warning ensureCa logs before replacing it). */
export function readCaSecret(secret: V1Secret, layout: CaSecretLayout): StoredCa | { problem: string } {
  const rawCert = decode(secret, layout.certKey);
  const rawKey = decode(secret, layout.keyKey);
  if (!rawCert || !rawKey) return { problem: `it has no ${!rawCert ? layout.certKey : layout.keyKey}` };
  const keyPem = normalizePem(rawKey);
  try {
    const certs = layout.bundleKey === undefined ? splitPemCertificates(rawCert) : [normalizePem(rawCert)];
    const certPem = certs[0];
    if (certPem === undefined) return { problem: `${layout.certKey} holds no PEM certificate` };
    const x = new X509Certificate(certPem);
    if (!x.ca) return { problem: `${layout.certKey} is not a CA certificate` };
    const mismatch = keyPairProblem(createPrivateKey(keyPem), x.publicKey, { key: layout.keyKey, owner: layout.certKey });
    if (mismatch !== undefined) return { problem: mismatch };
    const validity = certValidity(certPem);
    const bundle = layout.bundleKey === undefined ? certs : splitPemCertificates(decode(secret, layout.bundleKey) ?? certPem);
    return { ca: { certPem, keyPem, ...validity }, bundle: bundle.length > 0 ? bundle : [certPem], resourceVersion: secret.metadata?.resourceVersion };
  } catch (err) {
    return { problem: `${layout.certKey} or ${layout.keyKey} does not parse: ${err instanceof Error ? err.message : String(err)}` };
  }
}

export function caSecretBody(name: string, namespace: string, stored: StoredCa, layout: CaSecretLayout): V1Secret {
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  // Without a bundle key the certificate key carries the bundle: the signing CA must come first.
  const certText = layout.bundleKey === undefined ? [stored.ca.certPem, ...stored.bundle.filter((c) => c !== stored.ca.certPem)].join('') : stored.ca.certPem;
  const data: Record<string, string> = { [layout.certKey]: b64(certText), [layout.keyKey]: b64(stored.ca.keyPem) };
  if (layout.bundleKey !== undefined) data[layout.bundleKey] = b64(stored.bundle.join(''));
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: layout.type,
    metadata: { name, namespace, labels: { ...layout.labels }, ...(stored.resourceVersion ? { resourceVersion: stored.resourceVersion } : {}) },
    data,
  };
}

/** The three calls the store makes on its one Secret. */
export interface CaSecretAccess {
  /** undefined on 404. */
  read(): Promise<V1Secret | undefined>;
  create(body: V1Secret): Promise<unknown>;
  /** Conditional on body.metadata.resourceVersion. */
  replace(body: V1Secret): Promise<unknown>;
}

export interface EnsureCaOptions {
  access: CaSecretAccess;
  name: string;
  namespace: string;
  layout: CaSecretLayout;
  now: () => Date;
  lifetimeMs?: number;
  log: { info(message: string, meta?: Record<string, unknown>): void; warn(message: string, meta?: Record<string, unknown>): void };
}

function statusCode(err: unknown): number | undefined {
  return (err as { code?: number }).code;
}

/** Reads the CA Secret, creating or rotating the CA when due; concurrent writers converge on one. */
export async function ensureCa(opts: EnsureCaOptions): Promise<StoredCa & { action: CaAction }> {
  const { access, name, namespace, layout, log } = opts;
  for (let attempt = 0; attempt < 5; attempt++) {
    const secret = await access.read();
    const read = secret ? readCaSecret(secret, layout) : undefined;
    const stored = read === undefined || 'problem' in read ? undefined : read;
    if (read !== undefined && 'problem' in read) log.warn(`CA Secret is unreadable (${read.problem}); replacing it`, { secret: `${namespace}/${name}` });
    const now = opts.now();
    const action = decideCaAction(stored, now);
    if (action === 'keep' && stored) return { ...stored, action };

    const next = await nextCa(stored, now, opts.lifetimeMs ?? CA_LIFETIME_MS, layout.commonName);
    try {
      if (!secret) {
        await access.create(caSecretBody(name, namespace, next, layout));
      } else {
        next.resourceVersion = secret.metadata?.resourceVersion;
        await access.replace(caSecretBody(name, namespace, next, layout));
      }
      log.info(action === 'create' ? `created ${layout.commonName}` : `rotated ${layout.commonName}`, { secret: `${namespace}/${name}`, notAfter: next.ca.notAfter.toISOString(), trusted: next.bundle.length });
      return { ...next, action };
    } catch (err) {
      // Another replica created or rotated it first: read theirs and go round again.
      if (statusCode(err) !== 409) throw err;
    }
  }
  throw new Error(`could not settle the CA Secret ${namespace}/${name} after 5 attempts (write conflicts)`);
}
