/**
 * The serving bundle's fallback parts (src/operator/api/serving-bundle.ts defines the layout):
 * which fallback the operator configured, and the keyless pull configuration — the key server's
 * address, the CA bundle of its certificate, and our client certificate and key.
 *
 * `readBundle` is pure: it takes the files of one consistent version of the mounted Secret
 * (material.ts reads them) and says what is there. A keyless part that is missing or broken is
 * not an error of the whole bundle: the delegated credentials in the same version still serve DC
 * clients, so the problem is returned (file + reason) and the caller keeps its previous keyless
 * client. A declared fallback that contradicts the files is an error of the bundle (MaterialError
 * in material.ts), because what to serve would be a guess.
 */
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { BUNDLE_KEYS, FALLBACKS, type Fallback } from '../operator/api/serving-bundle.js';
import { parseAddress } from '../keyless/client.js';
import { keyPairProblem } from '../tls/key-pair.js';
import { pemToDers } from '../tls/x509/index.js';
import type { FileMap } from '../tls/delegated/index.js';

/** The bundle's keyless files; a bundle holds all of them or none. */
export const KEYLESS_FILES = [
  BUNDLE_KEYS.keylessAddress,
  BUNDLE_KEYS.keylessCA,
  BUNDLE_KEYS.keylessClientCertificate,
  BUNDLE_KEYS.keylessClientKey,
] as const;

/** Every file of the bundle besides tls.crt and the DCs. */
export const FALLBACK_FILES: readonly string[] = [BUNDLE_KEYS.fallback, ...KEYLESS_FILES];

/** A keyless pull configuration that parsed and whose parts fit together. */
export interface KeylessBundle {
  /** `host:port` of the key server. */
  readonly address: string;
  /** PEM: the CA bundle of the key server's certificate. */
  readonly ca: string;
  /** PEM: our client certificate (chain) and its key. */
  readonly clientCertificate: string;
  readonly clientKey: string;
  readonly clientNotBefore: Date;
  readonly clientNotAfter: Date;
  /** The client certificate's URI SANs (our identity toward the key server). */
  readonly identities: readonly string[];
  /** sha256 over the four parts: equal means the same configuration. */
  readonly fingerprint: string;
}

export interface BundleProblem {
  /** The bundle file at fault (a name in the mounted directory). */
  readonly file: string;
  readonly reason: string;
}

export type KeylessPart =
  | { readonly kind: 'absent' }
  | { readonly kind: 'valid'; readonly config: KeylessBundle }
  | { readonly kind: 'invalid'; readonly problem: BundleProblem };

export interface BundleFallback {
  /** What the `fallback` file says; undefined when the bundle has no such file (older operator, hand-made Secret). */
  readonly declared: Fallback | undefined;
  readonly keyless: KeylessPart;
}

export class BundleError extends Error {
  constructor(readonly problem: BundleProblem) {
    super(`${problem.file}: ${problem.reason}`);
    this.name = 'BundleError';
  }
}

const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString('utf8');

/** The declared fallback; throws BundleError for a value that is not one of FALLBACKS. */
export function readDeclaredFallback(files: FileMap): Fallback | undefined {
  const bytes = files[BUNDLE_KEYS.fallback];
  if (bytes === undefined) return undefined;
  const value = text(bytes).trim();
  if (!(FALLBACKS as readonly string[]).includes(value)) {
    throw new BundleError({ file: BUNDLE_KEYS.fallback, reason: `"${value.slice(0, 40)}" is not one of ${FALLBACKS.join(', ')}` });
  }
  return value as Fallback;
}

/** Reads the fallback declaration and the keyless part of one version of the bundle. */
export function readBundle(files: FileMap): BundleFallback {
  return { declared: readDeclaredFallback(files), keyless: readKeylessPart(files) };
}

export function readKeylessPart(files: FileMap): KeylessPart {
  const present = KEYLESS_FILES.filter((name) => files[name] !== undefined);
  if (present.length === 0) return { kind: 'absent' };
  try {
    const missing = KEYLESS_FILES.find((name) => files[name] === undefined);
    if (missing) throw problem(missing, `missing: the keyless files go together (${KEYLESS_FILES.join(', ')}); found only ${present.join(', ')}`);
    return { kind: 'valid', config: parseKeylessFiles(files) };
  } catch (err) {
    if (err instanceof BundleError) return { kind: 'invalid', problem: err.problem };
    throw err;
  }
}

function problem(file: string, reason: string): BundleError {
  return new BundleError({ file, reason });
}

/** Parses and cross-checks the four keyless files (all present). */
function parseKeylessFiles(files: FileMap): KeylessBundle {
  const address = text(files[BUNDLE_KEYS.keylessAddress]!).trim();
  try {
    parseAddress(address);
  } catch (err) {
    throw problem(BUNDLE_KEYS.keylessAddress, err instanceof Error ? err.message : String(err));
  }
  const ca = text(files[BUNDLE_KEYS.keylessCA]!);
  certificatesIn(ca, BUNDLE_KEYS.keylessCA);
  const clientCertificate = text(files[BUNDLE_KEYS.keylessClientCertificate]!);
  const leaf = certificatesIn(clientCertificate, BUNDLE_KEYS.keylessClientCertificate)[0]!;
  const clientKey = text(files[BUNDLE_KEYS.keylessClientKey]!);
  let key;
  try {
    key = createPrivateKey({ key: clientKey, format: 'pem' });
  } catch (err) {
    throw problem(BUNDLE_KEYS.keylessClientKey, `not a PEM private key (${err instanceof Error ? err.message : String(err)})`);
  }
  const mismatch = keyPairProblem(key, leaf.publicKey, { key: BUNDLE_KEYS.keylessClientKey, owner: BUNDLE_KEYS.keylessClientCertificate });
  if (mismatch !== undefined) throw problem(BUNDLE_KEYS.keylessClientKey, mismatch);
  const fingerprint = createHash('sha256');
  for (const part of [address, ca, clientCertificate, clientKey]) fingerprint.update(`${part.length}\0${part}`);
  return {
    address,
    ca,
    clientCertificate,
    clientKey,
    clientNotBefore: new Date(leaf.validFrom),
    clientNotAfter: new Date(leaf.validTo),
    identities: uriNames(leaf),
    fingerprint: fingerprint.digest('hex'),
  };
}

function certificatesIn(pem: string, file: string): X509Certificate[] {
  let ders: Uint8Array[];
  try {
    ders = pemToDers(pem, 'CERTIFICATE');
  } catch (err) {
    throw problem(file, err instanceof Error ? err.message : String(err));
  }
  if (ders.length === 0) throw problem(file, 'no PEM certificate found');
  return ders.map((der, i) => {
    try {
      return new X509Certificate(der);
    } catch (err) {
      throw problem(file, `certificate #${i + 1} does not parse: ${err instanceof Error ? err.message : String(err)}`);
    }
  });
}

/** URI entries of the subjectAltName, as node renders them (`URI:spiffe://...`). */
function uriNames(cert: X509Certificate): string[] {
  const san = cert.subjectAltName ?? '';
  return san
    .split(', ')
    .filter((entry) => entry.startsWith('URI:'))
    .map((entry) => entry.slice(4).replace(/^"|"$/g, ''));
}

/**
 * Why the client certificate cannot be used at `now`, in words that say what to do; undefined
 * while it is valid. The operator issues it short-lived and renews it with the DCs, so an expired
 * one means the operator could not write the bundle: its DelegatedCredential's status says why.
 */
export function clientCertificateProblem(config: Pick<KeylessBundle, 'clientNotBefore' | 'clientNotAfter'>, now: Date, source = 'the bundle'): string | undefined {
  if (now.getTime() >= config.clientNotAfter.getTime()) {
    return `keyless client certificate expired at ${config.clientNotAfter.toISOString()} (${source}): the operator renews it with the DCs; check the DelegatedCredential's status`;
  }
  if (now.getTime() < config.clientNotBefore.getTime()) {
    return `keyless client certificate is not valid before ${config.clientNotBefore.toISOString()} (${source}): check the clocks of this node and of the operator`;
  }
  return undefined;
}
