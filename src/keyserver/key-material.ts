// Turns the Secrets a grant comes from into a SigningKey, checked against its certificate. Pure
// apart from node:crypto: the Secrets are given, nothing is fetched here.
//
// Where key material lives while this runs: the Secret's base64 string as the API client parsed it
// (JavaScript cannot wipe strings), the decoded PEM bytes in a Buffer of ours, zeroed as soon as
// node:crypto has parsed them, then only the KeyObject (OpenSSL memory) inside the SigningKey.
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import type { V1Secret } from '@kubernetes/client-node';
import { SigningKey } from '../keyless/keystore.js';
import { computeSki, skiHex } from '../keyless/ski.js';

/**
 * Why a grant cannot be (re)built. `revoke`: the source is gone (a Secret or a key entry was
 * deleted), so the old grant goes too; otherwise the data is broken and the old grant stays
 * (validate-then-swap: a broken new key never replaces a working one).
 */
export class GrantProblem extends Error {
  constructor(message: string, readonly revoke: boolean) {
    super(message);
    this.name = 'GrantProblem';
  }
}

function secretEntry(secret: V1Secret | undefined, namespace: string, name: string, key: string): string {
  if (secret === undefined) throw new GrantProblem(`Secret ${namespace}/${name} does not exist`, true);
  const value = secret.data?.[key];
  if (value === undefined || value === '') throw new GrantProblem(`Secret ${namespace}/${name} has no ${key}`, true);
  return value;
}

/** The private key in `data` (base64 of PEM: PKCS#8, SEC1 or PKCS#1), with the decoded bytes zeroed. */
export function privateKeyOf(base64: string, what: string): KeyObject {
  const bytes = Buffer.from(base64, 'base64');
  try {
    return createPrivateKey({ key: bytes, format: 'pem' });
  } catch (err) {
    // node's message names the parse failure, never the key's bytes.
    throw new GrantProblem(`${what} is not a readable PEM private key (${err instanceof Error ? err.message : String(err)})`, false);
  } finally {
    bytes.fill(0);
  }
}

export interface GrantSource {
  readonly certificate: { readonly namespace: string; readonly name: string };
  readonly key: { readonly namespace: string; readonly name: string; readonly key: string };
}

/**
 * The key of `source`, checked to be the key of the leaf certificate in the certificate Secret's
 * tls.crt (same SKI, RFC 5280 method 1, as src/keyless/ski.ts computes it).
 */
export function signingKeyFor(source: GrantSource, certificateSecret: V1Secret | undefined, keySecret: V1Secret | undefined): SigningKey {
  const { certificate: c, key: k } = source;
  // The controller serves only kubernetes.io/tls certificate Secrets, and only those are watched
  // here: a grant built from another type would never see its Secret's deletion or rotation.
  if (certificateSecret !== undefined && certificateSecret.type !== 'kubernetes.io/tls') {
    throw new GrantProblem(`Secret ${c.namespace}/${c.name} has type ${certificateSecret.type ?? '(none)'}; the certificate Secret must be of type kubernetes.io/tls`, true);
  }
  const crt = secretEntry(certificateSecret, c.namespace, c.name, 'tls.crt');
  const keyData = secretEntry(keySecret, k.namespace, k.name, k.key);
  const what = `${k.key} of Secret ${k.namespace}/${k.name}`;
  let certificateSki: string;
  try {
    certificateSki = skiHex(computeSki(new X509Certificate(Buffer.from(crt, 'base64')).publicKey));
  } catch (err) {
    throw new GrantProblem(`tls.crt of Secret ${c.namespace}/${c.name} holds no readable certificate (${err instanceof Error ? err.message : String(err)})`, false);
  }
  let key: SigningKey;
  try {
    key = new SigningKey(privateKeyOf(keyData, what), what);
  } catch (err) {
    if (err instanceof GrantProblem) throw err;
    throw new GrantProblem(`${what} cannot sign: ${err instanceof Error ? err.message : String(err)}`, false);
  }
  if (key.skiHex !== certificateSki) {
    throw new GrantProblem(
      `${what} (SKI ${key.skiHex}) is not the key of the certificate in tls.crt of Secret ${c.namespace}/${c.name} (SKI ${certificateSki})`,
      false,
    );
  }
  return key;
}
