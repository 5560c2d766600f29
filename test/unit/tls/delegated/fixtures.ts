/**
 * Test certificates for delegated credentials, built with @peculiar/x509 over node's WebCrypto:
 * a self-signed end-entity certificate with (or deliberately without) the DelegationUsage
 * extension and digitalSignature key usage, plus node KeyObjects and a Signer for its key.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { KeyObject, webcrypto } from 'node:crypto';

type CryptoKeyPair = webcrypto.CryptoKeyPair;
type Algorithm = webcrypto.Algorithm;
type EcdsaParams = webcrypto.EcdsaParams;
type RsaPssParams = webcrypto.RsaPssParams;
import { createKeySigner, type Signer } from '../../../../src/tls/signer.js';

x509.cryptoProvider.set(webcrypto as unknown as webcrypto.Crypto);

export type CertKeyType = 'ed25519' | 'p256' | 'p384' | 'rsa';

export interface TestCertificate {
  readonly der: Uint8Array;
  readonly pem: string;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly signer: Signer;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export interface CertificateOptions {
  readonly keyType?: CertKeyType;
  /** 'non-critical' (the RFC), 'critical' (forbidden) or 'absent'. */
  readonly delegationUsage?: 'non-critical' | 'critical' | 'absent';
  /** Key usage flags: default digitalSignature; 'none' omits the KeyUsage extension. */
  readonly keyUsage?: 'digitalSignature' | 'keyEncipherment' | 'none';
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  /** subjectAltName DNS names. */
  readonly dnsNames?: readonly string[];
  /** Reuse a key pair (e.g. two certificates for one key). */
  readonly keys?: CryptoKeyPair;
}

const DELEGATION_USAGE_OID = '1.3.6.1.4.1.44363.44';

interface KeyAlgorithms {
  readonly generate: webcrypto.RsaHashedKeyGenParams | webcrypto.EcKeyGenParams | Algorithm;
  readonly signing: Algorithm | EcdsaParams | RsaPssParams;
}

function algorithms(keyType: CertKeyType): KeyAlgorithms {
  switch (keyType) {
    case 'ed25519':
      return { generate: { name: 'Ed25519' }, signing: { name: 'Ed25519' } };
    case 'p256':
      return { generate: { name: 'ECDSA', namedCurve: 'P-256' }, signing: { name: 'ECDSA', hash: 'SHA-256' } as EcdsaParams };
    case 'p384':
      return { generate: { name: 'ECDSA', namedCurve: 'P-384' }, signing: { name: 'ECDSA', hash: 'SHA-384' } as EcdsaParams };
    case 'rsa':
      // WebCrypto RSA-PSS keys carry an rsaEncryption SPKI: the usual RSA certificate, rsa_pss_rsae_*.
      return {
        generate: { name: 'RSA-PSS', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
        signing: { name: 'RSA-PSS', saltLength: 32 } as RsaPssParams,
      };
  }
}

export async function generateCertificateKeys(keyType: CertKeyType): Promise<CryptoKeyPair> {
  const { generate } = algorithms(keyType);
  return (await webcrypto.subtle.generateKey(generate, true, ['sign', 'verify'])) as CryptoKeyPair;
}

/** Infers the key type of a WebCrypto key pair (for `keys` reuse). */
function keyTypeOf(keys: CryptoKeyPair): CertKeyType {
  const alg = keys.publicKey.algorithm as webcrypto.EcKeyAlgorithm;
  if (alg.name === 'Ed25519') return 'ed25519';
  if (alg.name === 'ECDSA') return alg.namedCurve === 'P-384' ? 'p384' : 'p256';
  return 'rsa';
}

export async function makeCertificate(options: CertificateOptions = {}): Promise<TestCertificate> {
  const keys = options.keys ?? (await generateCertificateKeys(options.keyType ?? 'p256'));
  const keyType = options.keys ? keyTypeOf(keys) : (options.keyType ?? 'p256');
  const notBefore = options.notBefore ?? new Date(Math.floor(Date.now() / 1000 - 86400) * 1000);
  const notAfter = options.notAfter ?? new Date(notBefore.getTime() + 90 * 86400 * 1000);
  const extensions: x509.Extension[] = [];
  const usage = options.keyUsage ?? 'digitalSignature';
  if (usage !== 'none') {
    const flag = usage === 'digitalSignature' ? x509.KeyUsageFlags.digitalSignature : x509.KeyUsageFlags.keyEncipherment;
    extensions.push(new x509.KeyUsagesExtension(flag, true));
  }
  const delegation = options.delegationUsage ?? 'non-critical';
  if (delegation !== 'absent') {
    extensions.push(new x509.Extension(DELEGATION_USAGE_OID, delegation === 'critical', new Uint8Array([0x05, 0x00])));
  }
  if (options.dnsNames && options.dnsNames.length > 0) {
    extensions.push(new x509.SubjectAlternativeNameExtension(options.dnsNames.map((value) => ({ type: 'dns' as const, value }))));
  }
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: 'CN=delegation.test',
    notBefore,
    notAfter,
    keys,
    signingAlgorithm: algorithms(keyType).signing,
    extensions,
  });
  const privateKey = KeyObject.from(keys.privateKey);
  const publicKey = KeyObject.from(keys.publicKey);
  return {
    der: new Uint8Array(cert.rawData),
    pem: cert.toString('pem'),
    privateKey,
    publicKey,
    signer: createKeySigner(privateKey),
    notBefore,
    notAfter,
  };
}

/** A signer that holds some other key of the same type: its signatures do not match the certificate. */
export async function otherSigner(keyType: CertKeyType): Promise<Signer> {
  const keys = await generateCertificateKeys(keyType);
  return createKeySigner(KeyObject.from(keys.privateKey));
}
