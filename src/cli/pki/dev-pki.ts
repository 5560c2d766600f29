/**
 * A small development PKI: CA and leaf certificates with the extensions delegated credentials
 * need (RFC 9345 §4.2: DelegationUsage, digitalSignature). Used by `dcctl ca create` /
 * `dcctl cert create` and by tests that need chains with particular properties (expired,
 * intermediates, path lengths, missing key usages, ...), hence the knobs.
 *
 * Keys are generated and used through node's WebCrypto (what @peculiar/x509 signs with) and
 * exported as PKCS#8 PEM.
 */
import { randomBytes, webcrypto, type KeyObject } from 'node:crypto';
import { parsePrivateKeyPem } from '../../signer/in-memory.js';
import { isIP } from 'node:net';
import { DELEGATION_USAGE_OID, derToPem } from '../../tls/x509/index.js';
import { DerTag, encodeTlv } from '../../tls/x509/der.js';
import { x509 } from './x509.js';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
const subtle = webcrypto.subtle;

export const KEY_TYPES = ['ecdsa-p256', 'ecdsa-p384', 'ed25519', 'rsa-2048'] as const;
export type KeyType = (typeof KEY_TYPES)[number];

export function isKeyType(s: string): s is KeyType {
  return (KEY_TYPES as readonly string[]).includes(s);
}

/** WebCrypto algorithm for generating/importing each key type (and signing with it). */
interface KeyAlgorithm {
  generate: webcrypto.AlgorithmIdentifier | webcrypto.EcKeyGenParams | webcrypto.RsaHashedKeyGenParams;
  import: webcrypto.AlgorithmIdentifier | webcrypto.EcKeyImportParams | webcrypto.RsaHashedImportParams;
}

function algorithmFor(keyType: KeyType): KeyAlgorithm {
  switch (keyType) {
    case 'ecdsa-p256':
      return { generate: { name: 'ECDSA', namedCurve: 'P-256' }, import: { name: 'ECDSA', namedCurve: 'P-256' } };
    case 'ecdsa-p384':
      return { generate: { name: 'ECDSA', namedCurve: 'P-384' }, import: { name: 'ECDSA', namedCurve: 'P-384' } };
    case 'ed25519':
      return { generate: { name: 'Ed25519' }, import: { name: 'Ed25519' } };
    case 'rsa-2048':
      return {
        generate: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
        import: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
      };
  }
}

/** A key pair usable both by WebCrypto (signing certificates) and node:crypto (KeyObject). */
export interface DevKeyPair {
  readonly keyType: KeyType | 'other';
  readonly keys: CryptoKeyPair;
  /** PKCS#8 PEM of the private key. */
  readonly privateKeyPem: string;
}

export async function generateKeyPair(keyType: KeyType): Promise<DevKeyPair> {
  const keys = (await subtle.generateKey(algorithmFor(keyType).generate, true, ['sign', 'verify'])) as CryptoKeyPair;
  const pkcs8 = new Uint8Array(await subtle.exportKey('pkcs8', keys.privateKey));
  return { keyType, keys, privateKeyPem: derToPem(pkcs8, 'PRIVATE KEY') };
}

/** The key type of a node KeyObject in our naming, or undefined when we cannot sign with it. */
export function keyTypeOf(key: KeyObject): KeyType | 'ecdsa-p521' | 'rsa' | undefined {
  switch (key.asymmetricKeyType) {
    case 'ed25519':
      return 'ed25519';
    case 'ec': {
      const c = key.asymmetricKeyDetails?.namedCurve;
      return c === 'prime256v1' ? 'ecdsa-p256' : c === 'secp384r1' ? 'ecdsa-p384' : c === 'secp521r1' ? 'ecdsa-p521' : undefined;
    }
    case 'rsa':
      return key.asymmetricKeyDetails?.modulusLength === 2048 ? 'rsa-2048' : 'rsa';
    default:
      return undefined;
  }
}

/**
 * Loads a private key (PKCS#8, PKCS#1 or SEC1 PEM) for signing certificates with WebCrypto.
 * Throws an Error whose message says what is wrong with the key.
 */
export async function importSigningKey(pem: string): Promise<{ key: CryptoKey; keyObject: KeyObject }> {
  let keyObject: KeyObject;
  try {
    keyObject = parsePrivateKeyPem(pem, 'the key');
  } catch (e) {
    // "the key is an encrypted private key; ..." -> "an encrypted private key; ..."
    throw new Error((e as Error).message.replace(/^the key is /, ''));
  }
  const type = keyTypeOf(keyObject);
  let alg: KeyAlgorithm['import'];
  if (type === 'ecdsa-p521') alg = { name: 'ECDSA', namedCurve: 'P-521' };
  else if (type === 'rsa') alg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  else if (type === undefined) throw new Error(`a key of type ${keyObject.asymmetricKeyType ?? 'unknown'}, which cannot sign certificates (want ECDSA P-256/P-384/P-521, Ed25519 or RSA)`);
  else alg = algorithmFor(type).import;
  const der = keyObject.export({ type: 'pkcs8', format: 'der' });
  const key = await subtle.importKey('pkcs8', der, alg, false, ['sign']);
  return { key, keyObject };
}

/** Signature algorithm an issuer key signs certificates with. */
function signingAlgorithmFor(key: CryptoKey, rsaPss: boolean): webcrypto.AlgorithmIdentifier | webcrypto.EcdsaParams | webcrypto.RsaPssParams {
  const alg = key.algorithm as webcrypto.KeyAlgorithm & { namedCurve?: string };
  switch (alg.name) {
    case 'ECDSA':
      return { name: 'ECDSA', hash: alg.namedCurve === 'P-384' ? 'SHA-384' : alg.namedCurve === 'P-521' ? 'SHA-512' : 'SHA-256' };
    case 'Ed25519':
      return { name: 'Ed25519' };
    case 'RSASSA-PKCS1-v1_5':
    case 'RSA-PSS':
      return rsaPss ? ({ name: 'RSA-PSS', hash: 'SHA-256', saltLength: 32 } as webcrypto.RsaPssParams) : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
    default:
      throw new Error(`cannot sign certificates with a ${alg.name} key`);
  }
}

/** An RSA WebCrypto key re-imported for RSA-PSS signing (same key material). */
async function asRsaPss(key: CryptoKey): Promise<CryptoKey> {
  const pkcs8 = await subtle.exportKey('pkcs8', key);
  return subtle.importKey('pkcs8', pkcs8, { name: 'RSA-PSS', hash: 'SHA-256' }, false, ['sign']);
}

export interface Issuer {
  /** The issuing CA certificate (DER). */
  readonly certificateDer: Uint8Array;
  readonly signingKey: CryptoKey;
}

export type DelegationUsageMode = 'none' | 'non-critical' | 'critical' | 'non-null-value';

export interface CertificateTemplate {
  /** Common name of the subject. */
  commonName: string;
  dnsNames?: readonly string[];
  ipAddresses?: readonly string[];
  /** URI subjectAltNames (e.g. a SPIFFE identity for a client certificate). */
  uris?: readonly string[];
  notBefore?: Date;
  notAfter?: Date;
  isCA?: boolean;
  pathLength?: number;
  /** keyUsage flags (peculiar's KeyUsageFlags bitmask); null omits the extension. */
  keyUsage?: number | null;
  /** extendedKeyUsage; omitted/empty leaves the extension out. */
  extendedKeyUsage?: ReadonlyArray<'serverAuth' | 'clientAuth'>;
  delegationUsage?: DelegationUsageMode;
  /** For RSA issuers: sign with RSASSA-PSS instead of PKCS#1 v1.5. */
  rsaPssSignature?: boolean;
  /** Leave out the AuthorityKeyIdentifier (tests: path building by name and signature alone). */
  omitAuthorityKeyId?: boolean;
  /** Extra extensions as-is (tests: unknown critical extensions, ...). */
  extraExtensions?: ReadonlyArray<{ oid: string; critical: boolean; value: Uint8Array }>;
}

export interface IssuedCertificate {
  readonly der: Uint8Array;
  readonly pem: string;
  readonly key: DevKeyPair;
}

export const KeyUsage = x509.KeyUsageFlags;

/** A positive 128-bit serial (RFC 5280 allows up to 20 octets). */
function randomSerial(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x40;
  return b.toString('hex');
}

/** AuthorityKeyIdentifier carrying the issuer's own SubjectKeyIdentifier, whatever method made it. */
function authorityKeyIdFrom(issuerDer: Uint8Array): x509.Extension | undefined {
  const issuer = new x509.X509Certificate(issuerDer);
  const ski = issuer.getExtension(x509.SubjectKeyIdentifierExtension);
  if (!ski) return undefined;
  const keyId = Buffer.from(ski.keyId, 'hex');
  // AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT OCTET STRING }
  const value = encodeTlv(DerTag.sequence, encodeTlv(0x80, keyId));
  return new x509.Extension('2.5.29.35', false, value);
}

/**
 * Issues a certificate for a fresh key of `keyType` (or the given key), signed by `issuer`, or
 * self-signed when `issuer` is undefined.
 */
export async function issueCertificate(
  template: CertificateTemplate,
  keyTypeOrKey: KeyType | DevKeyPair,
  issuer?: Issuer,
): Promise<IssuedCertificate> {
  const key = typeof keyTypeOrKey === 'string' ? await generateKeyPair(keyTypeOrKey) : keyTypeOrKey;
  const notBefore = template.notBefore ?? new Date(Date.now() - 60_000);
  const notAfter = template.notAfter ?? new Date(notBefore.getTime() + 90 * 86_400_000);
  const isCA = template.isCA ?? false;

  const extensions: x509.Extension[] = [];
  extensions.push(new x509.BasicConstraintsExtension(isCA, isCA ? template.pathLength : undefined, true));
  const defaultUsage = isCA ? x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature : x509.KeyUsageFlags.digitalSignature;
  const keyUsage = template.keyUsage === undefined ? defaultUsage : template.keyUsage;
  if (keyUsage !== null) extensions.push(new x509.KeyUsagesExtension(keyUsage, true));
  const eku = template.extendedKeyUsage ?? [];
  if (eku.length > 0) {
    extensions.push(new x509.ExtendedKeyUsageExtension(eku.map((u) => (u === 'serverAuth' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth)), false));
  }
  const names: x509.JsonGeneralName[] = [
    ...(template.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(template.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
    ...(template.uris ?? []).map((value) => ({ type: 'url' as const, value })),
  ];
  if (names.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(names, false));
  extensions.push(await x509.SubjectKeyIdentifierExtension.create(key.keys.publicKey));
  if (issuer && template.omitAuthorityKeyId !== true) {
    const aki = authorityKeyIdFrom(issuer.certificateDer);
    if (aki) extensions.push(aki);
  }
  const du = template.delegationUsage ?? 'none';
  if (du !== 'none') {
    const value = du === 'non-null-value' ? new Uint8Array([0x04, 0x00]) : new Uint8Array([0x05, 0x00]);
    extensions.push(new x509.Extension(DELEGATION_USAGE_OID, du === 'critical', value));
  }
  for (const e of template.extraExtensions ?? []) extensions.push(new x509.Extension(e.oid, e.critical, e.value));

  const subject: x509.JsonName = [{ CN: [template.commonName] }];
  const rawSigningKey = issuer ? issuer.signingKey : key.keys.privateKey;
  const rsaPss = template.rsaPssSignature === true && rawSigningKey.algorithm.name.startsWith('RSA');
  const signingKey = rsaPss ? await asRsaPss(rawSigningKey) : rawSigningKey;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject,
    issuer: issuer ? new x509.X509Certificate(issuer.certificateDer).subjectName : subject,
    notBefore,
    notAfter,
    publicKey: key.keys.publicKey,
    signingKey,
    signingAlgorithm: signingAlgorithmFor(signingKey, rsaPss),
    extensions,
  });
  const der = new Uint8Array(cert.rawData);
  return { der, pem: derToPem(der, 'CERTIFICATE'), key };
}

/** The issuer handle of an issued CA certificate. */
export function asIssuer(ca: IssuedCertificate): Issuer {
  return { certificateDer: ca.der, signingKey: ca.key.keys.privateKey };
}

// ---------------------------------------------------------------------------------------------
// Name validation (shared by dcctl flags)

/** Why `name` is not a valid DNS subjectAltName (RFC 5280 preferred name syntax, leftmost-label wildcard), or undefined. */
export function dnsNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'is empty';
  if (name.length > 253) return 'is longer than 253 characters';
  if (isIP(name) !== 0) return 'is an IP address (use --ip)';
  const labels = name.split('.');
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i]!;
    if (l === '*' && i === 0) {
      if (labels.length < 3) return 'has a wildcard too close to the top level (want *.example.com or deeper)';
      continue;
    }
    if (l.includes('*')) return 'may only have a wildcard as the whole leftmost label (*.example.com)';
    if (l.length === 0) return 'has an empty label';
    if (l.length > 63) return `has a label longer than 63 characters`;
    if (!/^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$/.test(l)) return `has an invalid label "${l}" (letters, digits and inner hyphens only)`;
  }
  return undefined;
}
