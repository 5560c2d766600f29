// The output Secret: its layout (one place), how it is built from issued credentials, and a
// pure read-back ("view") the trigger decisions work on.
import { createHash } from 'node:crypto';
import type { V1Secret } from '@kubernetes/client-node';
import type { Algorithm, DelegatedCredential, DelegatedCredentialSpec } from './api/v1alpha1.js';
import { API_VERSION, GROUP } from './api/v1alpha1.js';
import { certificatesOfPem } from '../tls/x509/index.js';
import { BUNDLE_KEYS, DEFAULT_FALLBACK, credentialKey, privateKeyKey, type Fallback } from './api/serving-bundle.js';
import type { StoredFallback } from './fallback.js';
import type { CachedOutputSecret } from './cache-form.js';

export const OUTPUT_SECRET_TYPE = `${GROUP}/delegated-credential`;
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY_VALUE = 'dc-operator';
export const OWNER_LABEL = `${GROUP}/delegated-credential`;
export const MANAGED_SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}`;

export const ANNOTATIONS = {
  certificateFingerprint: `${GROUP}/certificate-fingerprint`,
  specHash: `${GROUP}/spec-hash`,
  issuedAt: `${GROUP}/issued-at`,
} as const;

export const CHAIN_KEY = BUNDLE_KEYS.chain;
export { credentialKey, privateKeyKey };

/** Hex SHA-256, the fingerprint format used in annotations and status. */
export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Hash of the spec fields whose change needs new credentials (not the renewal policy). */
export function issuanceSpecHash(spec: DelegatedCredentialSpec): string {
  const relevant = {
    algorithms: [...spec.algorithms].sort(),
    validity: spec.validity,
    signerRef: spec.signerRef ?? null,
    certificate: spec.certificateSecretRef.name,
    // It decides which parts the bundle holds.
    fallback: spec.fallback ?? DEFAULT_FALLBACK,
  };
  return sha256Hex(Buffer.from(JSON.stringify(relevant))).slice(0, 32);
}

export interface IssuedCredential {
  algorithm: Algorithm;
  /** Encoded DelegatedCredential (RFC 9345 §4). */
  credential: Uint8Array;
  privateKeyPem: string;
  notAfter: Date;
  publicKeySpki: Uint8Array;
}

/** The fallback parts of the bundle (see fallback.ts for which fallback holds what). */
export interface FallbackMaterial {
  fallback: Fallback;
  keyless?: { address: string; caPem: string; clientCertPem: string; clientKeyPem: string };
  /** Only with fallback CertificateKey: tls.key of the certificate Secret. */
  certificateKeyPem?: string;
}

export interface BuildOutputSecret {
  dc: DelegatedCredential;
  fallback: FallbackMaterial;
  chainPem: string;
  certificateFingerprint: string;
  credentials: readonly IssuedCredential[];
  issuedAt: Date;
  /** The current Secret, when replacing: its resourceVersion makes the write conditional. */
  existing?: { metadata?: CachedOutputSecret['metadata'] };
}

/** The complete Secret to write: replaces every data key, so a removed algorithm disappears. */
export function buildOutputSecret(input: BuildOutputSecret): V1Secret {
  const { dc } = input;
  // The chain comes rebuilt from parsed certificates (crypto.ts); this is the last line: every
  // pod the webhook injects mounts this Secret, so a key under tls.crt would reach all of them.
  if (/PRIVATE KEY-----/.test(input.chainPem)) throw new Error('internal error: refusing to write a private key into tls.crt of the output Secret');
  const data: Record<string, string> = { [CHAIN_KEY]: Buffer.from(input.chainPem).toString('base64') };
  for (const c of input.credentials) {
    data[credentialKey(c.algorithm)] = Buffer.from(c.credential).toString('base64');
    data[privateKeyKey(c.algorithm)] = Buffer.from(c.privateKeyPem).toString('base64');
  }
  const { fallback } = input;
  data[BUNDLE_KEYS.fallback] = Buffer.from(fallback.fallback).toString('base64');
  if (fallback.keyless !== undefined) {
    const k = fallback.keyless;
    data[BUNDLE_KEYS.keylessAddress] = Buffer.from(k.address).toString('base64');
    data[BUNDLE_KEYS.keylessCA] = Buffer.from(k.caPem).toString('base64');
    data[BUNDLE_KEYS.keylessClientCertificate] = Buffer.from(k.clientCertPem).toString('base64');
    data[BUNDLE_KEYS.keylessClientKey] = Buffer.from(k.clientKeyPem).toString('base64');
  }
  if (fallback.certificateKeyPem !== undefined) {
    // The one place the certificate key is written, and only when the spec asked for it.
    if (fallback.fallback !== 'CertificateKey' || dc.spec.fallback !== 'CertificateKey') throw new Error('internal error: refusing to write the certificate key into an output Secret whose fallback is not CertificateKey');
    data[BUNDLE_KEYS.certificateKey] = Buffer.from(fallback.certificateKeyPem).toString('base64');
  }
  const existingMeta = input.existing?.metadata;
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: OUTPUT_SECRET_TYPE,
    metadata: {
      name: dc.spec.secretName,
      namespace: dc.metadata.namespace,
      // Keep labels/annotations others added (e.g. reflectors), overwrite ours.
      labels: { ...(existingMeta?.labels ?? {}), [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [OWNER_LABEL]: dc.metadata.name ?? '' },
      annotations: {
        ...(existingMeta?.annotations ?? {}),
        [ANNOTATIONS.certificateFingerprint]: input.certificateFingerprint,
        [ANNOTATIONS.specHash]: issuanceSpecHash(dc.spec),
        [ANNOTATIONS.issuedAt]: input.issuedAt.toISOString(),
      },
      ownerReferences: [
        {
          apiVersion: API_VERSION,
          kind: 'DelegatedCredential',
          name: dc.metadata.name ?? '',
          uid: dc.metadata.uid ?? '',
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
      ...(existingMeta?.resourceVersion !== undefined ? { resourceVersion: existingMeta.resourceVersion } : {}),
    },
    data,
  };
}

// ---- reading it back ------------------------------------------------------------------------

export interface StoredCredential {
  algorithm: Algorithm;
  notAfter: Date;
  publicKeyFingerprint: string;
}

/**
 * Checks one stored credential against the certificate; throws an Error whose message says what is
 * wrong. Its private key was checked when the Secret was cached (cache-form.ts): the reconciler
 * compares the two public keys.
 */
export type CredentialInspector = (input: { algorithm: Algorithm; credential: Uint8Array; certificateDer: Uint8Array }) => { notAfter: Date; publicKeySpki: Uint8Array };

export type OutputView =
  | { exists: false }
  | {
      exists: true;
      /** Written by us for this DelegatedCredential (label + controller owner reference, or our labels without an owner). */
      ownedByThis: boolean;
      certificateFingerprint: string | undefined;
      specHash: string | undefined;
      issuedAt: Date | undefined;
      /** The certificates of its tls.crt, re-encoded from DER (comparable to CertificateFacts.chainPem); undefined when unreadable. */
      chainPem: string | undefined;
      /** Its tls.crt holds a private key (written by a version that copied a combined PEM as it was). */
      chainHoldsPrivateKey: boolean;
      missingKeys: string[];
      extraAlgorithms: string[];
      credentials: StoredCredential[];
      /** Human-readable problems with stored credentials (corrupted, edited, mismatched keys). */
      problems: string[];
      /** The fallback parts as stored (fallback.ts judges them). */
      fallback: StoredFallback;
    };

function decoded(secret: CachedOutputSecret, key: string): Buffer | undefined {
  const v = secret.data?.[key];
  return v === undefined ? undefined : Buffer.from(v, 'base64');
}

export function isOwnedBy(secret: { metadata?: CachedOutputSecret['metadata'] }, dc: DelegatedCredential): boolean {
  if (isControlledBy(secret, dc)) return true; // whatever its labels say now: they are put back (labelsNeedRepair)
  const labels = secret.metadata?.labels ?? {};
  if (labels[MANAGED_BY_LABEL] !== MANAGED_BY_VALUE || labels[OWNER_LABEL] !== dc.metadata.name) return false;
  const controller = secret.metadata?.ownerReferences?.find((o) => o.controller === true);
  // A controller reference to an earlier DelegatedCredential of the same name (deleted and
  // recreated before garbage collection ran) is adopted; a reference to another kind is not.
  return controller === undefined || (controller.kind === 'DelegatedCredential' && controller.name === dc.metadata.name);
}

/**
 * The Secret's controller owner reference is this DelegatedCredential, by uid: we wrote it for
 * this object, whatever anyone did to its labels since (as cert-manager, we adopt it and put our
 * labels back).
 */
export function isControlledBy(secret: { metadata?: { ownerReferences?: { kind: string; uid: string; controller?: boolean }[] } }, dc: DelegatedCredential): boolean {
  const uid = dc.metadata.uid ?? '';
  const controller = secret.metadata?.ownerReferences?.find((o) => o.controller === true);
  return uid !== '' && controller?.kind === 'DelegatedCredential' && controller.uid === uid;
}

/** Our labels are missing or changed on an output Secret of this DelegatedCredential. */
export function labelsNeedRepair(secret: { metadata?: { labels?: Record<string, string> } }, dc: DelegatedCredential): boolean {
  const labels = secret.metadata?.labels ?? {};
  return labels[MANAGED_BY_LABEL] !== MANAGED_BY_VALUE || labels[OWNER_LABEL] !== dc.metadata.name;
}

/** Pure read-back of the output Secret against the spec and the current certificate. */
export function viewOutputSecret(
  secret: CachedOutputSecret | undefined,
  dc: DelegatedCredential,
  certificateDer: Uint8Array | undefined,
  inspect: CredentialInspector,
): OutputView {
  if (secret === undefined) return { exists: false };
  const annotations = secret.metadata?.annotations ?? {};
  const { keys } = secret;
  const wanted = dc.spec.algorithms;
  const missingKeys = [CHAIN_KEY, ...wanted.flatMap((a) => [credentialKey(a), privateKeyKey(a)])].filter((k) => !keys.includes(k));
  const extraAlgorithms = keys
    .filter((k) => k.endsWith('.cred'))
    .map((k) => k.slice(0, -'.cred'.length))
    .filter((a) => !(wanted as readonly string[]).includes(a));
  const issuedAtText = annotations[ANNOTATIONS.issuedAt];
  const issuedAt = issuedAtText === undefined || Number.isNaN(Date.parse(issuedAtText)) ? undefined : new Date(issuedAtText);
  const chain = readChain(decoded(secret, CHAIN_KEY)?.toString('utf8'));
  const text = (key: string): string | undefined => decoded(secret, key)?.toString('utf8');
  const credentials: StoredCredential[] = [];
  const problems: string[] = [];
  for (const algorithm of wanted) {
    const credential = decoded(secret, credentialKey(algorithm));
    const key = secret.privateKeys[privateKeyKey(algorithm)];
    if (credential === undefined || key === undefined || certificateDer === undefined) continue;
    try {
      const r = inspect({ algorithm, credential, certificateDer });
      const publicKeyFingerprint = sha256Hex(r.publicKeySpki);
      if ('problem' in key) throw new Error(`the private key ${privateKeyKey(algorithm)} ${key.problem}`);
      if (key.publicKeyFingerprint !== publicKeyFingerprint) throw new Error(`the private key ${privateKeyKey(algorithm)} does not belong to the credential`);
      credentials.push({ algorithm, notAfter: r.notAfter, publicKeyFingerprint });
    } catch (err) {
      problems.push(`${credentialKey(algorithm)}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return {
    exists: true,
    ownedByThis: isOwnedBy(secret, dc),
    certificateFingerprint: annotations[ANNOTATIONS.certificateFingerprint],
    specHash: annotations[ANNOTATIONS.specHash],
    issuedAt,
    chainPem: chain.pem,
    chainHoldsPrivateKey: chain.holdsPrivateKey,
    missingKeys,
    extraAlgorithms,
    credentials,
    problems,
    fallback: {
      value: text(BUNDLE_KEYS.fallback),
      address: text(BUNDLE_KEYS.keylessAddress),
      caPem: text(BUNDLE_KEYS.keylessCA),
      clientCertPem: text(BUNDLE_KEYS.keylessClientCertificate),
      clientKey: secret.privateKeys[BUNDLE_KEYS.keylessClientKey],
      hasCertificateKey: keys.includes(BUNDLE_KEYS.certificateKey),
    },
  };
}

/** tls.crt of an output Secret, compared by its certificates: PEM line breaks or comments are no change. */
function readChain(text: string | undefined): { pem: string | undefined; holdsPrivateKey: boolean } {
  if (text === undefined) return { pem: undefined, holdsPrivateKey: false };
  try {
    const { pem, privateKeyLabels } = certificatesOfPem(text);
    return { pem, holdsPrivateKey: privateKeyLabels.length > 0 };
  } catch {
    return { pem: undefined, holdsPrivateKey: /PRIVATE KEY-----/.test(text) };
  }
}
