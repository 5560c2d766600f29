/**
 * The serving material of the sidecar: everything a handshake needs from the mounted DC Secret,
 * read and validated as one unit.
 *
 *   tls.crt               certificate chain, end-entity first (always)
 *   <algorithm>.cred/.key  delegated credentials and their keys (any number)
 *   tls.key                the certificate's own key (only with `fallback: CertificateKey`)
 *   fallback, keyless.address, keyless-ca.crt, keyless-client.crt/.key
 *                          the fallback for non-DC clients (bundle.ts)
 *
 * `loadServingMaterial` reads one consistent version of the directory (with kubelet's layout it
 * resolves `..data` once and reads the files from that version's directory, then checks that
 * `..data` did not move meanwhile), validates all of it, and returns a frozen value. Any failure
 * is a `MaterialError` naming the file and the reason; nothing partial is ever returned.
 */
import { createHash, createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readlink } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CERTIFICATE_FILE,
  DelegationError,
  isServableAt,
  loadDelegatedCredentialSet,
  readCredentialDirectory,
  readRegularFile,
  type DelegatedCredentialSet,
  type FileMap,
} from '../tls/delegated/index.js';
import { keyPairProblem } from '../tls/key-pair.js';
import { BundleError, FALLBACK_FILES, readBundle, type BundleFallback } from './bundle.js';

export const CERTIFICATE_KEY_FILE = 'tls.key';
/** kubelet's atomic writer: the symlink to the current version's directory. */
export const KUBELET_DATA_LINK = '..data';

export interface ServingMaterial {
  /** Delegated credentials (possibly none) with the certificate chain they were validated against. */
  readonly credentials: DelegatedCredentialSet;
  /** The certificate's private key when `tls.key` is mounted (local fallback), else undefined. */
  readonly certificateKey: KeyObject | undefined;
  readonly certificateNotAfter: Date;
  /** The bundle's fallback declaration and keyless configuration (bundle.ts). */
  readonly fallback: BundleFallback;
  /** sha256 over the file names and contents: equal fingerprints mean nothing changed. */
  readonly fingerprint: string;
  /** The directory the files were read from (kubelet: the `..<timestamp>` version directory). */
  readonly source: string;
  readonly loadedAt: Date;
}

export class MaterialError extends Error {
  constructor(
    /** The file (or directory) at fault. */
    readonly file: string,
    /** Why, in words a person can act on. */
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`${file}: ${reason}`, options);
    this.name = 'MaterialError';
  }
}

export interface LoadMaterialOptions {
  readonly now?: Date;
  /**
   * True when a keyless signer is configured: then a directory with the certificate alone can
   * still serve every client. Otherwise a DC or tls.key is required.
   */
  readonly keylessConfigured?: boolean;
  /**
   * What a delegated credential not servable now (expired, or more than 7 days left by this
   * clock) does to the load (BuildOptions.expired): 'refuse' (the default) fails it, naming the
   * file, so a reload never replaces credentials that still serve; 'keep' loads it out of
   * selection, so a sidecar whose credentials expired while the operator was away still serves
   * through tls.key or the key server.
   */
  readonly expiredCredentials?: 'refuse' | 'keep';
}

/** The names the material consists of; everything else in the directory is ignored. */
function isMaterialFile(name: string): boolean {
  return !name.startsWith('.') && (name === CERTIFICATE_FILE || name.endsWith('.cred') || name.endsWith('.key') || FALLBACK_FILES.includes(name));
}

/** The files the DC library reads: the chain and the credential pairs (not the bundle's other parts). */
function delegatedCredentialFiles(files: FileMap): FileMap {
  return Object.fromEntries(Object.entries(files).filter(([name]) => !FALLBACK_FILES.includes(name)));
}

/** Reads one consistent version of `dir` (kubelet layout or a plain directory). */
export async function readMaterialFiles(dir: string): Promise<{ source: string; files: FileMap }> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const version = await dataLinkTarget(dir);
    const source = version === undefined ? dir : join(dir, version);
    try {
      const read = await readCredentialDirectory(source);
      const fallbackFiles = await readFallbackFiles(source);
      // kubelet may have swapped ..data (and deleted the old version) while we read: start over.
      if ((await dataLinkTarget(dir)) !== version) continue;
      const files: Record<string, Uint8Array> = {};
      for (const [name, bytes] of Object.entries({ ...read.files, ...fallbackFiles })) if (isMaterialFile(name)) files[name] = bytes;
      return { source, files };
    } catch (cause) {
      if ((await dataLinkTarget(dir)) !== version) continue;
      throw asMaterialError(cause, source);
    }
  }
  throw new MaterialError(dir, 'the directory kept changing while it was read (5 attempts)');
}

/** The bundle's fallback files that exist in `source` (the DC library reads only the chain and the pairs). */
async function readFallbackFiles(source: string): Promise<Record<string, Uint8Array>> {
  const files: Record<string, Uint8Array> = {};
  for (const name of FALLBACK_FILES) {
    try {
      files[name] = await readRegularFile(join(source, name));
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw new MaterialError(join(source, name), `cannot read: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    }
  }
  return files;
}

/** Target of `dir/..data`, or undefined when the directory is not laid out by kubelet. */
export async function dataLinkTarget(dir: string): Promise<string | undefined> {
  try {
    return await readlink(join(dir, KUBELET_DATA_LINK));
  } catch {
    return undefined;
  }
}

export function fingerprintFiles(files: FileMap): string {
  const h = createHash('sha256');
  for (const name of Object.keys(files).sort()) {
    const bytes = files[name]!;
    h.update(`${name}\0${bytes.length}\0`);
    h.update(bytes);
  }
  return h.digest('hex');
}

/**
 * LoadMaterialOptions.expiredCredentials for the next load: a credential not servable now fails a
 * reload while the current credentials still serve (they are kept, and the periodic re-check
 * tries again), and is left out of selection otherwise, so a sidecar that starts after its
 * credentials expired serves through its fallback.
 */
export function expiredCredentialsPolicy(current: ServingMaterial | undefined, now: Date): 'refuse' | 'keep' {
  const nowMs = now.getTime();
  return current !== undefined && current.credentials.entries.some((e) => isServableAt(e, nowMs)) ? 'refuse' : 'keep';
}

/** Reads and validates the whole directory; throws MaterialError naming the file at fault. */
export async function loadServingMaterial(dir: string, options: LoadMaterialOptions = {}): Promise<ServingMaterial> {
  const { source, files } = await readMaterialFiles(dir);
  return validateServingMaterial(source, files, options);
}

/** Validation of an already-read file map (pure apart from the clock). */
export function validateServingMaterial(source: string, files: FileMap, options: LoadMaterialOptions = {}): ServingMaterial {
  const now = options.now ?? new Date();
  const at = (name: string): string => join(source, name);
  for (const [name, bytes] of Object.entries(files)) {
    // A zero-length file is what a half-written or truncated Secret key looks like: name it plainly.
    if (bytes.length === 0) throw new MaterialError(at(name), 'is empty');
  }
  if (!files[CERTIFICATE_FILE]) throw new MaterialError(at(CERTIFICATE_FILE), 'missing: the certificate chain is required');

  let credentials: DelegatedCredentialSet;
  try {
    credentials = loadDelegatedCredentialSet([{ label: source, files: delegatedCredentialFiles(files) }], { now, expired: options.expiredCredentials });
  } catch (cause) {
    throw asMaterialError(cause, source);
  }
  const leaf = new X509Certificate(credentials.certificateChain[0]!);
  const certificateNotAfter = new Date(leaf.validTo);
  if (certificateNotAfter.getTime() <= now.getTime()) {
    throw new MaterialError(at(CERTIFICATE_FILE), `the certificate expired at ${certificateNotAfter.toISOString()}`);
  }
  if (new Date(leaf.validFrom).getTime() > now.getTime()) {
    throw new MaterialError(at(CERTIFICATE_FILE), `the certificate is not valid before ${new Date(leaf.validFrom).toISOString()}`);
  }

  let fallback: BundleFallback;
  try {
    fallback = readBundle(files);
  } catch (cause) {
    if (cause instanceof BundleError) throw new MaterialError(at(cause.problem.file), cause.problem.reason, { cause });
    throw cause;
  }
  // Before tls.key is parsed: a key the declared fallback does not ask for is never loaded.
  checkDeclaredFallback(fallback, files[CERTIFICATE_KEY_FILE] !== undefined, at);
  const certificateKey = readCertificateKey(files, leaf, at(CERTIFICATE_KEY_FILE));
  const keylessInBundle = fallback.keyless.kind !== 'absent';
  if (!certificateKey && !options.keylessConfigured && !keylessInBundle) {
    if (credentials.entries.length === 0) {
      throw new MaterialError(source, 'nothing to serve: no <algorithm>.cred/<algorithm>.key pair, no tls.key, and no keyless signer configured');
    }
    const latest = Math.max(...credentials.entries.map((e) => e.expiresAt.getTime()));
    if (latest <= now.getTime()) {
      throw new MaterialError(
        source,
        `nothing to serve: every delegated credential has expired (the last at ${new Date(latest).toISOString()}), and there is no tls.key or keyless signer to serve without one`,
      );
    }
  }
  return Object.freeze({
    credentials,
    certificateKey,
    certificateNotAfter,
    fallback,
    fingerprint: fingerprintFiles(files),
    source,
    loadedAt: now,
  });
}

/**
 * The certificate key is in the bundle only when the operator was asked for it: `tls.key` with
 * any other declared fallback is refused (the key would be in the pod against the configuration),
 * and `CertificateKey` without `tls.key` cannot serve what it says.
 */
function checkDeclaredFallback(fallback: BundleFallback, hasCertificateKey: boolean, at: (name: string) => string): void {
  if (fallback.declared === undefined) return;
  if (fallback.declared === 'CertificateKey' && !hasCertificateKey) {
    throw new MaterialError(at(CERTIFICATE_KEY_FILE), 'missing: the bundle declares fallback CertificateKey, which serves non-DC clients with tls.key');
  }
  if (fallback.declared !== 'CertificateKey' && hasCertificateKey) {
    throw new MaterialError(
      at(CERTIFICATE_KEY_FILE),
      `present, but the bundle declares fallback ${fallback.declared}: the certificate key belongs in the bundle only with fallback CertificateKey`,
    );
  }
}

function readCertificateKey(files: FileMap, leaf: X509Certificate, where: string): KeyObject | undefined {
  const pem = files[CERTIFICATE_KEY_FILE];
  if (!pem) return undefined;
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: Buffer.from(pem), format: 'pem' });
  } catch (cause) {
    throw new MaterialError(where, `not a PEM private key (${cause instanceof Error ? cause.message : String(cause)})`, { cause });
  }
  const problem = keyPairProblem(key, leaf.publicKey, { key: CERTIFICATE_KEY_FILE, owner: CERTIFICATE_FILE });
  if (problem !== undefined) throw new MaterialError(where, problem);
  return key;
}

/**
 * DelegationError messages start with the path they concern (`<source>/<file>: reason`); split
 * that into file and reason so logs and metrics carry them separately.
 */
function asMaterialError(cause: unknown, source: string): MaterialError {
  if (cause instanceof MaterialError) return cause;
  const message = cause instanceof Error ? cause.message : String(cause);
  const prefix = source.replace(/\/$/, '') + '/';
  if (message.startsWith(prefix)) {
    const colon = message.indexOf(': ', prefix.length);
    if (colon > 0) return new MaterialError(message.slice(0, colon), message.slice(colon + 2), { cause });
  }
  if (message.startsWith(source + ': ')) return new MaterialError(source, message.slice(source.length + 2), { cause });
  const kind = cause instanceof DelegationError ? cause.code : 'error';
  return new MaterialError(source, `${kind}: ${message}`, { cause });
}

/**
 * Holds the current material. `replace` is one reference assignment: a handshake that took
 * `current` keeps that version to its end, and a failed reload never reaches `replace`.
 */
export class MaterialStore {
  private material: ServingMaterial | undefined;

  get current(): ServingMaterial | undefined {
    return this.material;
  }

  replace(next: ServingMaterial): ServingMaterial | undefined {
    const previous = this.material;
    this.material = next;
    return previous;
  }
}
