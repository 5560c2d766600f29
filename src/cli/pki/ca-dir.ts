/**
 * A CA directory as `dcctl ca create` writes it: `ca.crt` (the CA certificate, optionally followed
 * by the certificates above it) and `ca.key` (its private key). Loading checks everything that
 * would otherwise surface later as a confusing verification failure.
 */
import { join } from 'node:path';
import { KeyUsageBit, parseCertificate, pemToDers, publicKeyMatchesPrivate, type ParsedCertificate } from '../../tls/x509/index.js';
import { InputError } from '../framework/errors.js';
import { readTextFile } from '../framework/files.js';
import { importSigningKey, type Issuer } from './dev-pki.js';

export const CA_CERT_FILE = 'ca.crt';
export const CA_KEY_FILE = 'ca.key';

export interface LoadedCa {
  readonly issuer: Issuer;
  readonly certificate: ParsedCertificate;
  /** ca.crt as read, for copying next to issued certificates. */
  readonly certificatePem: string;
  /** The certificates of ca.crt that are not self-issued roots: the intermediates to send after a leaf. */
  readonly intermediates: readonly Uint8Array[];
}

export async function loadCaDirectory(dir: string, flag: string, now: Date): Promise<LoadedCa> {
  const certPath = join(dir, CA_CERT_FILE);
  const keyPath = join(dir, CA_KEY_FILE);
  const certificatePem = await readTextFile(certPath, flag);
  const keyPem = await readTextFile(keyPath, flag);
  const fail = (msg: string): never => {
    throw new InputError(`${flag} ${dir}: ${msg}`);
  };

  let ders: Uint8Array[] = [];
  try {
    ders = pemToDers(certificatePem, 'CERTIFICATE');
  } catch (e) {
    fail(`${CA_CERT_FILE}: ${(e as Error).message}`);
  }
  if (ders.length === 0) fail(`${CA_CERT_FILE} contains no PEM CERTIFICATE`);
  let certificate: ParsedCertificate | undefined;
  let rest: ParsedCertificate[] = [];
  try {
    certificate = parseCertificate(ders[0]!);
    rest = ders.slice(1).map((d) => parseCertificate(d));
  } catch (e) {
    fail(`${CA_CERT_FILE}: ${(e as Error).message}`);
  }
  const ca = certificate!;
  if (!ca.basicConstraints?.ca) fail(`${CA_CERT_FILE} is not a CA certificate (basicConstraints cA is not set)`);
  if (ca.keyUsage !== undefined && !(ca.keyUsage & (1 << KeyUsageBit.keyCertSign))) fail(`${CA_CERT_FILE} may not sign certificates (keyUsage lacks keyCertSign)`);
  if (now.getTime() > ca.notAfter.getTime()) fail(`the CA certificate expired at ${ca.notAfter.toISOString()}`);
  if (now.getTime() < ca.notBefore.getTime()) fail(`the CA certificate is not valid before ${ca.notBefore.toISOString()}`);

  let signing: Awaited<ReturnType<typeof importSigningKey>> | undefined;
  try {
    signing = await importSigningKey(keyPem);
  } catch (e) {
    fail(`${CA_KEY_FILE} is ${(e as Error).message}`);
  }
  if (!publicKeyMatchesPrivate(ca.der, signing!.keyObject)) fail(`${CA_KEY_FILE} does not match the certificate in ${CA_CERT_FILE}`);

  return {
    issuer: { certificateDer: ca.der, signingKey: signing!.key },
    certificate: ca,
    certificatePem,
    intermediates: [ca, ...rest].filter((c) => !c.selfIssued).map((c) => c.der),
  };
}
