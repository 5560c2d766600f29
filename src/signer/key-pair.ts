/**
 * A certificate chain and its private key, checked against each other, as a Signer. The sources
 * (a TLS Secret, a pair of files) differ only in where the PEM comes from and how errors name it.
 */
import { readFile } from 'node:fs/promises';
import { certificatePublicKey, pemToDers } from '../tls/x509/index.js';
import { InMemoryKeySigner, SignerKeyError } from './in-memory.js';

export interface KeyPairSigner {
  readonly signer: InMemoryKeySigner;
  /** DER certificates, leaf first; empty when no certificate was given and none was required. */
  readonly certificateChain: readonly Uint8Array[];
}

export interface KeyPairSources {
  readonly keyPem: string | undefined;
  readonly certPem: string | undefined;
  /** How messages name the key and the certificate, e.g. 'tls.key', 'tls.crt' or file paths. */
  readonly keyName: string;
  readonly certName: string;
  /** Prefix for every message, e.g. 'Secret ns/name'; empty for none. */
  readonly owner: string;
  /** Default true. */
  readonly requireCertificate?: boolean;
}

function prefixed(owner: string, message: string): string {
  return owner ? `${owner}: ${message}` : message;
}

export function keyPairSigner(src: KeyPairSources): KeyPairSigner {
  if (src.keyPem === undefined || src.keyPem.trim() === '') {
    throw new SignerKeyError('missing_key', src.owner ? `${src.owner} has no ${src.keyName}` : `${src.keyName} is empty`);
  }
  let signer: InMemoryKeySigner;
  try {
    signer = InMemoryKeySigner.fromPem(src.keyPem, src.keyName);
  } catch (e) {
    if (e instanceof SignerKeyError) throw new SignerKeyError(e.reason, prefixed(src.owner, e.message));
    throw e;
  }
  if (src.certPem === undefined || src.certPem.trim() === '') {
    if (src.requireCertificate ?? true) {
      throw new SignerKeyError('missing_certificate', src.owner ? `${src.owner} has no ${src.certName}` : `${src.certName} is empty`);
    }
    return { signer, certificateChain: [] };
  }
  let chain: Uint8Array[];
  let leafSpki: Buffer;
  try {
    chain = pemToDers(src.certPem, 'CERTIFICATE');
    if (chain.length === 0) throw new Error('no PEM CERTIFICATE block');
    leafSpki = certificatePublicKey(chain[0]!).export({ type: 'spki', format: 'der' });
  } catch (e) {
    throw new SignerKeyError('malformed_certificate', prefixed(src.owner, `${src.certName} is not a PEM certificate chain (${(e as Error).message})`));
  }
  if (Buffer.compare(leafSpki, signer.spki) !== 0) {
    throw new SignerKeyError('key_mismatch', prefixed(src.owner, `key does not match the certificate in ${src.certName}`));
  }
  return { signer, certificateChain: chain };
}

/**
 * Loads a certificate file (PEM chain, leaf first) and its private key file. Errors name the
 * files: "cannot read F: ...", "F is not a PKCS#8/PKCS#1/SEC1 PEM private key",
 * "key does not match the certificate in F".
 */
export async function signerFromFiles(files: { cert: string; key: string }): Promise<KeyPairSigner> {
  const read = async (path: string, missing: 'missing_key' | 'missing_certificate'): Promise<string> => {
    try {
      return await readFile(path, 'utf8');
    } catch (e) {
      const code = (e as { code?: string }).code;
      throw new SignerKeyError(missing, `cannot read ${path}: ${code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
    }
  };
  const [keyPem, certPem] = await Promise.all([read(files.key, 'missing_key'), read(files.cert, 'missing_certificate')]);
  return keyPairSigner({ keyPem, certPem, keyName: files.key, certName: files.cert, owner: '' });
}
