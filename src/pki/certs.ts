// The small private CAs dc-operator bootstraps for itself, and what they sign: the webhook's
// serving certificate (its CA goes into the MutatingWebhookConfiguration's caBundle), the key
// server's serving certificate and the keyless client identities of sidecars and the controller.
// ECDSA P-256, made with @peculiar/x509 over node's WebCrypto. Pure apart from randomness: the
// time is always passed in.

import 'reflect-metadata'; // @peculiar/x509 2.x needs the Reflect polyfill loaded first
import * as x509 from '@peculiar/x509';
import { X509Certificate as NodeX509Certificate, randomBytes, webcrypto } from 'node:crypto';
import { pemBlocks } from '../tls/x509/pem.js';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 24 * 60 * 60 * 1000;

export const CA_LIFETIME_MS = 365 * DAY_MS;
export const SERVING_LIFETIME_MS = 90 * DAY_MS;
/** Renew when this fraction of the lifetime has passed (cert-manager's default is 2/3 too). */
export const RENEW_FRACTION = 2 / 3;
/** Backdate notBefore a little so a peer whose clock is behind still accepts a fresh certificate. */
const BACKDATE_MS = 5 * 60 * 1000;

/** When a certificate of ours was issued, by the issuer's clock: its notBefore undoes the backdate. */
export function issuedAtOf(notBefore: Date): Date {
  return new Date(notBefore.getTime() + BACKDATE_MS);
}

export interface KeyedCertificate {
  certPem: string;
  keyPem: string;
  notBefore: Date;
  notAfter: Date;
}

/** One form for PEM text (trimmed, one final newline) so equal certificates compare equal as strings. */
export function normalizePem(pem: string): string {
  return `${pem.trim()}\n`;
}

function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] as number) & 0x7f; // positive INTEGER
  return bytes.toString('hex');
}

async function generateKeys(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
}

async function privateKeyPem(key: CryptoKey): Promise<string> {
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(pkcs8, 'PRIVATE KEY');
}

async function importPrivateKey(pem: string): Promise<CryptoKey> {
  const der = x509.PemConverter.decodeFirst(pem);
  return webcrypto.subtle.importKey('pkcs8', der, ALGORITHM, false, ['sign']);
}

export async function createCa(commonName: string, now: Date, lifetimeMs = CA_LIFETIME_MS): Promise<KeyedCertificate> {
  const keys = await generateKeys();
  const notBefore = new Date(now.getTime() - BACKDATE_MS);
  const notAfter = new Date(now.getTime() + lifetimeMs);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: new x509.Name([{ CN: [commonName] }, { O: ['dc-operator'] }]),
    notBefore,
    notAfter,
    signingAlgorithm: ALGORITHM,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: normalizePem(cert.toString('pem')), keyPem: normalizePem(await privateKeyPem(keys.privateKey)), notBefore, notAfter };
}

export interface ServingCertRequest {
  dnsNames: string[];
  ipAddresses: string[];
  now: Date;
  lifetimeMs?: number;
}

/** An end-entity certificate signed by `ca` with a fresh P-256 key, valid until `notAfter` (capped by the CA). */
async function signLeaf(
  ca: KeyedCertificate,
  req: { now: Date; notAfter: number; subject: x509.Name; usage: string; san: x509.JsonGeneralName[]; what: string },
): Promise<KeyedCertificate> {
  const caCert = new x509.X509Certificate(ca.certPem);
  const keys = await generateKeys();
  const notBefore = new Date(req.now.getTime() - BACKDATE_MS);
  const notAfter = new Date(Math.min(req.notAfter, caCert.notAfter.getTime()));
  if (notAfter.getTime() <= req.now.getTime()) throw new Error(`${req.what} would be expired at once (notAfter ${notAfter.toISOString()})`);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: req.subject,
    issuer: caCert.subjectName,
    notBefore,
    notAfter,
    signingAlgorithm: ALGORITHM,
    publicKey: keys.publicKey,
    signingKey: await importPrivateKey(ca.keyPem),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([req.usage]),
      new x509.SubjectAlternativeNameExtension(req.san),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
    ],
  });
  return { certPem: normalizePem(cert.toString('pem')), keyPem: normalizePem(await privateKeyPem(keys.privateKey)), notBefore, notAfter };
}

/** A serving certificate signed by `ca`, never outliving it. */
export async function createServingCert(ca: KeyedCertificate, req: ServingCertRequest): Promise<KeyedCertificate> {
  if (req.dnsNames.length === 0 && req.ipAddresses.length === 0) throw new Error('a serving certificate needs at least one DNS name or IP address');
  return signLeaf(ca, {
    now: req.now,
    notAfter: req.now.getTime() + (req.lifetimeMs ?? SERVING_LIFETIME_MS),
    subject: new x509.Name([{ CN: [req.dnsNames[0] ?? req.ipAddresses[0] ?? 'dc-operator-webhook'] }]),
    usage: x509.ExtendedKeyUsage.serverAuth,
    san: [...req.dnsNames.map((value) => ({ type: 'dns' as const, value })), ...req.ipAddresses.map((value) => ({ type: 'ip' as const, value }))],
    what: 'a serving certificate',
  });
}

export interface ClientCertRequest {
  /** The identity, as the certificate's only SAN (a SPIFFE ID). */
  uri: string;
  now: Date;
  /** Capped at the CA's notAfter. */
  notAfter: Date;
  /**
   * A sidecar's: the UID of its DelegatedCredential, as the subject's UID attribute. The key server
   * serves the certificate only while that object exists: one deleted and re-created under the same
   * name (same URI) has another UID.
   */
  uid?: string;
}

/** The userId attribute (OpenSSL and node print it `UID=`), which carries a DelegatedCredential's UID. */
const UID_ATTRIBUTE = '0.9.2342.19200300.100.1.1';
const KUBERNETES_UID = /^[0-9A-Za-z-]{1,128}$/;

/**
 * The DelegatedCredential UID a client certificate was issued for, from node's `X509Certificate.subject`
 * (one `KEY=value` a line); undefined when it has none, several, or one that is not a UID.
 */
export function subjectUidOf(subject: string | undefined): string | undefined {
  const values = (subject ?? '').split('\n').filter((l) => l.startsWith('UID=')).map((l) => l.slice(4));
  return values.length === 1 && KUBERNETES_UID.test(values[0]!) ? values[0] : undefined;
}

/** A TLS client certificate (clientAuth only) naming one identity by URI SAN, signed by `ca`. */
export async function createClientCert(ca: KeyedCertificate, req: ClientCertRequest): Promise<KeyedCertificate> {
  if (req.uid !== undefined && !KUBERNETES_UID.test(req.uid)) throw new Error(`a client certificate for ${req.uri}: ${JSON.stringify(req.uid)} is not a UID`);
  return signLeaf(ca, {
    now: req.now,
    notAfter: req.notAfter.getTime(),
    // The key server reads the URI SAN (the identity) and, for a sidecar, the UID (which object).
    // (With an empty subject the SAN would have to be critical, RFC 5280 §4.2.1.6; O keeps it simple.)
    subject: new x509.Name([{ O: ['dc-operator'] }, ...(req.uid !== undefined ? [{ [UID_ATTRIBUTE]: [req.uid] }] : [])]),
    usage: x509.ExtendedKeyUsage.clientAuth,
    san: [{ type: 'url', value: req.uri }],
    what: `a client certificate for ${req.uri}`,
  });
}

/** The DNS names a Service answers to inside the cluster, shortest first. */
export function serviceDnsNames(service: string, namespace: string): string[] {
  return [service, `${service}.${namespace}`, `${service}.${namespace}.svc`, `${service}.${namespace}.svc.cluster.local`];
}

/** The moment a certificate should be replaced: RENEW_FRACTION of the way through its validity. */
export function renewalTime(cert: Pick<KeyedCertificate, 'notBefore' | 'notAfter'>, fraction = RENEW_FRACTION): Date {
  const start = cert.notBefore.getTime();
  return new Date(start + Math.floor((cert.notAfter.getTime() - start) * fraction));
}

/** The validity of the first certificate in a PEM string. */
export function certValidity(certPem: string): { notBefore: Date; notAfter: Date } {
  const cert = new NodeX509Certificate(certPem);
  return { notBefore: new Date(cert.validFrom), notAfter: new Date(cert.validTo) };
}

/** Splits a PEM bundle into its certificates (each as PEM). */
export function splitPemCertificates(bundle: string): string[] {
  return pemBlocks(bundle)
    .filter((b) => b.label === 'CERTIFICATE' && b.body.trim() !== '')
    .map((b) => normalizePem(b.text));
}

/** The certificates of `bundle` still valid at `now`, de-duplicated, newest first kept first. */
export function pruneExpired(certPems: readonly string[], now: Date): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const pem of certPems) {
    const normal = normalizePem(pem);
    if (seen.has(normal)) continue;
    seen.add(normal);
    if (certValidity(normal).notAfter.getTime() > now.getTime()) out.push(normal);
  }
  return out;
}
