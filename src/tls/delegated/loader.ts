/**
 * Loading a credential set from the layout the operator writes into its output Secret (and the
 * kubelet mounts as files):
 *
 *   tls.crt         the certificate chain (PEM), end-entity first
 *   <name>.cred     an encoded DelegatedCredential (raw bytes)
 *   <name>.key      its private key (PKCS#8 PEM)
 *
 * `<name>` is normally the algorithm (`ed25519`, `ecdsa_secp256r1_sha256`, ...); when it is an
 * algorithm name it must match the credential's dc_cert_verify_algorithm. Other keys (ca.crt,
 * kubelet's `..data` entries) are ignored. Everything is parsed and validated before the set is
 * built; every error names the file it came from.
 */
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { constants } from 'node:fs';
import { open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { signatureSchemeName } from '../constants.js';
import { pemBlocks } from '../x509/pem.js';
import { dcAlgorithmFromName } from './algorithms.js';
import { decodeDelegatedCredential } from './codec.js';
import { DelegatedCredentialSet, errorText, type CredentialInput } from './credential-set.js';
import { DelegationError } from './errors.js';
import type { DelegationSide } from './types.js';

/** File name → contents, e.g. a Kubernetes Secret's `data` decoded from base64. */
export type FileMap = Readonly<Record<string, Uint8Array>>;

export const CERTIFICATE_FILE = 'tls.crt';
const CRED_SUFFIX = '.cred';
const KEY_SUFFIX = '.key';

export interface LoadOptions {
  readonly now?: Date;
  readonly side?: DelegationSide;
  /** The chain to use when the sources carry no tls.crt (e.g. `dcctl serve --cert`). */
  readonly certificateChain?: readonly Uint8Array[];
  /** What an expired credential does: BuildOptions.expired. */
  readonly expired?: 'refuse' | 'keep';
}

export interface CredentialSource {
  /** Shown in error messages: a directory path or a Secret's namespace/name. */
  readonly label: string;
  readonly files: FileMap;
}

/** Kubernetes keeps a whole Secret under 1 MiB: a larger file is not one it mounted. */
export const MAX_CREDENTIAL_FILE_BYTES = 1024 * 1024;
const READ_CHUNK = 64 * 1024;

/**
 * Reads a regular file (following symlinks, as kubelet's `..data` links need) without ever
 * waiting on it: opened non-blocking, a FIFO or a device is refused at once. A blocked open of
 * a FIFO would hold a thread-pool thread that even process.exit() waits for, so a stop signal
 * could not end the process. Bounded by `maxBytes`, as a Secret is.
 */
export async function readRegularFile(path: string, maxBytes = MAX_CREDENTIAL_FILE_BYTES): Promise<Uint8Array> {
  const handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new Error('not a regular file');
    if (info.size > maxBytes) throw new Error(`${info.size} bytes, more than the ${maxBytes} a Secret can hold`);
    // Read up to the bound, not to the end: a file that grew after stat (or a pseudo-file that
    // reports size 0) is refused after maxBytes + 1 bytes, not after all of it is in memory. Only
    // a read of 0 bytes is the end: procfs, FUSE or NFS may read short before it.
    const chunks: Uint8Array[] = [];
    let total = 0;
    for (let want = info.size + 1; ; want = READ_CHUNK) {
      const chunk = new Uint8Array(Math.min(want, maxBytes + 1 - total));
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) break;
      chunks.push(chunk.subarray(0, bytesRead));
      total += bytesRead;
      if (total > maxBytes) throw new Error(`more than the ${maxBytes} bytes a Secret can hold`);
      // Asked for one byte more than stat said and got exactly what it said: the whole file, no
      // read more (a kubelet volume is swapped by its ..data link while it is read; fewer
      // operations per file let a read finish between swaps).
      if (info.size > 0 && total === info.size && bytesRead < chunk.length) break;
    }
    return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
  } finally {
    await handle.close();
  }
}

/** Reads the regular files of a directory (following kubelet's symlinks) into a FileMap. */
export async function readCredentialDirectory(dir: string): Promise<CredentialSource> {
  const files: Record<string, Uint8Array> = {};
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (cause) {
    throw new DelegationError('missing-file', `${dir}: cannot list the directory: ${errorText(cause)}`, { cause });
  }
  for (const name of names) {
    if (name.startsWith('.') || !isRelevant(name)) continue;
    const path = join(dir, name);
    try {
      files[name] = await readRegularFile(path);
    } catch (cause) {
      throw new DelegationError('invalid-file', `${path}: cannot read: ${errorText(cause)}`, { cause });
    }
  }
  return { label: dir, files };
}

/** Loads one directory (or FileMap) into a validated set. */
export async function loadDelegatedCredentialDirectory(dir: string, options: LoadOptions = {}): Promise<DelegatedCredentialSet> {
  return loadDelegatedCredentialSet([await readCredentialDirectory(dir)], options);
}

/**
 * Builds one validated set from one or more sources (several `--dc-dir`s, or one Secret). The
 * chain comes from the sources' tls.crt (all must agree) or from `options.certificateChain`.
 */
export function loadDelegatedCredentialSet(
  sources: readonly CredentialSource[],
  options: LoadOptions = {},
): DelegatedCredentialSet {
  const chain = resolveChain(sources, options.certificateChain);
  const credentials: CredentialInput[] = [];
  for (const source of sources) credentials.push(...readCredentialPairs(source));
  return DelegatedCredentialSet.build({ certificateChain: chain, credentials, now: options.now, side: options.side, expired: options.expired });
}

function isRelevant(name: string): boolean {
  return name === CERTIFICATE_FILE || name.endsWith(CRED_SUFFIX) || name.endsWith(KEY_SUFFIX);
}

function resolveChain(sources: readonly CredentialSource[], given: readonly Uint8Array[] | undefined): readonly Uint8Array[] {
  let chain: Uint8Array[] | undefined;
  let from = '';
  for (const source of sources) {
    const pem = source.files[CERTIFICATE_FILE];
    if (!pem) continue;
    const where = fileLabel(source, CERTIFICATE_FILE);
    const parsed = parseCertificateChain(pem, where);
    if (chain && !sameDer(chain[0]!, parsed[0]!)) {
      throw new DelegationError('invalid-file', `${where}: a different certificate than ${from}`);
    }
    chain ??= parsed;
    from = where;
  }
  if (given && given.length > 0) {
    if (chain && !sameDer(chain[0]!, given[0]!)) {
      throw new DelegationError('invalid-file', `${from}: not the certificate given for these credentials`);
    }
    return chain ?? given;
  }
  if (!chain) {
    const labels = sources.map((s) => s.label).join(', ') || '(no sources)';
    throw new DelegationError('missing-file', `${labels}: no ${CERTIFICATE_FILE} with the certificate chain`);
  }
  return chain;
}

/** Splits a PEM bundle into DER certificates, end-entity first; throws naming `where`. */
export function parseCertificateChain(pem: Uint8Array, where: string): Uint8Array[] {
  const text = new TextDecoder().decode(pem);
  const blocks = pemBlocks(text)
    .filter((b) => b.label === 'CERTIFICATE')
    .map((b) => b.text);
  if (blocks.length === 0) throw new DelegationError('invalid-file', `${where}: no PEM certificate found`);
  return blocks.map((block, i) => {
    try {
      return new Uint8Array(new X509Certificate(block).raw);
    } catch (cause) {
      throw new DelegationError('invalid-file', `${where}: certificate #${i + 1} does not parse: ${errorText(cause)}`, { cause });
    }
  });
}

function readCredentialPairs(source: CredentialSource): CredentialInput[] {
  const names = Object.keys(source.files).filter((n) => !n.startsWith('.'));
  const stems = new Set<string>();
  for (const name of names) {
    if (name.endsWith(CRED_SUFFIX)) stems.add(name.slice(0, -CRED_SUFFIX.length));
    else if (name.endsWith(KEY_SUFFIX) && name !== 'tls.key') stems.add(name.slice(0, -KEY_SUFFIX.length));
  }
  const out: CredentialInput[] = [];
  for (const stem of [...stems].sort()) {
    const credName = stem + CRED_SUFFIX;
    const keyName = stem + KEY_SUFFIX;
    const cred = source.files[credName];
    const key = source.files[keyName];
    if (!cred) throw new DelegationError('missing-file', `${fileLabel(source, credName)}: missing (its key ${keyName} is present)`);
    if (!key) throw new DelegationError('missing-file', `${fileLabel(source, keyName)}: missing (its credential ${credName} is present)`);
    checkNameMatchesAlgorithm(stem, cred, fileLabel(source, credName));
    out.push({ delegatedCredential: cred, privateKey: parsePrivateKey(key, fileLabel(source, keyName)), label: fileLabel(source, credName) });
  }
  return out;
}

function checkNameMatchesAlgorithm(stem: string, cred: Uint8Array, where: string): void {
  const named = dcAlgorithmFromName(stem);
  if (named === undefined) return;
  let actual: number;
  try {
    actual = decodeDelegatedCredential(cred).credential.dcCertVerifyAlgorithm;
  } catch (cause) {
    throw new DelegationError('invalid-file', `${where}: not an encoded DelegatedCredential: ${errorText(cause)}`, { cause });
  }
  if (actual !== named) {
    throw new DelegationError('invalid-file', `${where}: holds a ${signatureSchemeName(actual)} credential, not ${stem}`);
  }
}

function parsePrivateKey(pem: Uint8Array, where: string): KeyObject {
  try {
    return createPrivateKey({ key: Buffer.from(pem), format: 'pem' });
  } catch (cause) {
    throw new DelegationError('invalid-file', `${where}: not a PEM private key: ${errorText(cause)}`, { cause });
  }
}

function fileLabel(source: CredentialSource, name: string): string {
  return source.label ? `${source.label.replace(/\/$/, '')}/${name}` : name;
}

function sameDer(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
