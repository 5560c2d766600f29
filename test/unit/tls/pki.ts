/**
 * A throwaway PKI for the TLS tests: a CA and end-entity certificates of every key type we
 * support, built with @peculiar/x509 over node's WebCrypto. Generated once per process.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { KeyObject, webcrypto } from 'node:crypto';

x509.cryptoProvider.set(webcrypto as unknown as webcrypto.Crypto);

export type KeyType = 'ed25519' | 'p256' | 'p384' | 'rsa';

interface Algorithms {
  readonly generate: webcrypto.RsaHashedKeyGenParams | webcrypto.EcKeyGenParams | webcrypto.Algorithm;
  readonly signing: webcrypto.Algorithm | webcrypto.EcdsaParams;
}

function algorithms(keyType: KeyType | 'rsa-pkcs1'): Algorithms {
  switch (keyType) {
    case 'ed25519':
      return { generate: { name: 'Ed25519' }, signing: { name: 'Ed25519' } };
    case 'p256':
      return { generate: { name: 'ECDSA', namedCurve: 'P-256' }, signing: { name: 'ECDSA', hash: 'SHA-256' } as webcrypto.EcdsaParams };
    case 'p384':
      return { generate: { name: 'ECDSA', namedCurve: 'P-384' }, signing: { name: 'ECDSA', hash: 'SHA-384' } as webcrypto.EcdsaParams };
    case 'rsa':
    case 'rsa-pkcs1':
      return {
        generate: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
        signing: { name: 'RSASSA-PKCS1-v1_5' },
      };
  }
}

export interface Issued {
  readonly pem: string;
  readonly der: Uint8Array;
  readonly keyPem: string;
  readonly key: KeyObject;
}

export interface TestPki {
  readonly ca: Issued;
  /** Another CA that signed nothing we serve: for "unknown CA" tests. */
  readonly otherCa: Issued;
  leaf(keyType: KeyType, names?: readonly string[], purpose?: 'server' | 'client'): Promise<Issued>;
}

async function keyPair(keyType: KeyType | 'rsa-pkcs1'): Promise<webcrypto.CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(algorithms(keyType).generate, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
}

function toIssued(cert: x509.X509Certificate, keys: webcrypto.CryptoKeyPair): Issued {
  const key = KeyObject.from(keys.privateKey);
  return {
    pem: cert.toString('pem'),
    der: new Uint8Array(cert.rawData),
    keyPem: key.export({ type: 'pkcs8', format: 'pem' }).toString(),
    key,
  };
}

const day = 86400_000;

async function makeCa(name: string): Promise<{ issued: Issued; cert: x509.X509Certificate; keys: webcrypto.CryptoKeyPair }> {
  const keys = await keyPair('p256');
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: `CN=${name}`,
    notBefore: new Date(Date.now() - day),
    notAfter: new Date(Date.now() + 30 * day),
    keys,
    signingAlgorithm: algorithms('p256').signing,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    ],
  });
  return { issued: toIssued(cert, keys), cert, keys };
}

let cached: Promise<TestPki> | undefined;

export function testPki(): Promise<TestPki> {
  cached ??= (async () => {
    const ca = await makeCa('dc-operator test CA');
    const other = await makeCa('some other CA');
    const leaves = new Map<string, Promise<Issued>>();
    let serial = 2;
    const leaf = (keyType: KeyType, names: readonly string[] = ['localhost', 'server.test'], purpose: 'server' | 'client' = 'server'): Promise<Issued> => {
      const k = `${keyType}|${names.join(',')}|${purpose}`;
      let p = leaves.get(k);
      if (!p) {
        p = (async () => {
          const keys = await keyPair(keyType);
          const cert = await x509.X509CertificateGenerator.create({
            serialNumber: (serial++).toString(16).padStart(2, '0'),
            subject: `CN=${names[0] ?? 'client'}`,
            issuer: ca.cert.subject,
            notBefore: new Date(Date.now() - day),
            notAfter: new Date(Date.now() + 10 * day),
            publicKey: keys.publicKey,
            signingKey: ca.keys.privateKey,
            signingAlgorithm: algorithms('p256').signing,
            extensions: [
              new x509.BasicConstraintsExtension(false),
              new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
              new x509.ExtendedKeyUsageExtension([purpose === 'server' ? '1.3.6.1.5.5.7.3.1' : '1.3.6.1.5.5.7.3.2']),
              ...(names.length > 0 ? [new x509.SubjectAlternativeNameExtension(names.map((n) => ({ type: 'dns' as const, value: n })))] : []),
            ],
          });
          return toIssued(cert, keys);
        })();
        leaves.set(k, p);
      }
      return p;
    };
    return { ca: ca.issued, otherCa: other.issued, leaf };
  })();
  return cached;
}
