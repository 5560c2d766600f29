/**
 * The TLS 1.2 client's answer to a CertificateRequest (RFC 5246 §7.4.4, §7.4.6, §7.4.8): which of
 * the configured certificates, and the scheme of its CertificateVerify.
 *
 * The choice is the TLS 1.3 client's (the `selectClientCredential` hook, else defaultCredential
 * over `certificates`), asked with the schemes that fit the request: a scheme the server listed
 * in supported_signature_algorithms whose key type is among its certificate_types (ecdsa_sign:
 * ECDSA and, RFC 8422 §5.5, Ed25519; rsa_sign: RSA, with RSA-PSS or PKCS#1 v1.5). ML-DSA and
 * delegated credentials are TLS 1.3 only. Nothing fits: undefined, an empty Certificate.
 */
import type { ClientConfig } from '../client.js';
import { defaultCredential, type CredentialChoice } from '../credentials.js';
import type { CertificateRequest } from '../messages/handshake.js';
import { schemeParams } from '../signature-schemes.js';
import { ClientCertificateType, type CertificateRequest12 } from './messages.js';

/** The schemes of `request` a TLS 1.2 client certificate of the requested types may sign with. */
export function requestedSchemes12(request: CertificateRequest12): readonly number[] {
  return request.signatureAlgorithms.filter((scheme) => {
    const kind = schemeParams(scheme)?.kind;
    if (kind === 'ecdsa' || kind === 'ed25519') return request.certificateTypes.includes(ClientCertificateType.ecdsa_sign);
    if (kind === 'rsa-pss' || kind === 'rsa-pkcs1') return request.certificateTypes.includes(ClientCertificateType.rsa_sign);
    return false;
  });
}

/** The certificate to present (undefined: an empty Certificate); its `scheme` is one of requestedSchemes12. */
export function chooseClientCredential12(
  config: ClientConfig,
  request: CertificateRequest12,
): CredentialChoice | undefined | Promise<CredentialChoice | undefined> {
  const schemes = requestedSchemes12(request);
  const fallback = (): CredentialChoice | undefined => defaultCredential(config.keys, undefined, schemes, 'TLSv1.2');
  const hook = config.options.selectClientCredential;
  if (!hook) return fallback();
  // The hook sees the request in its TLS 1.3 shape, with the schemes that fit and no DC offer.
  const asked: CertificateRequest = { context: NO_BYTES, signatureAlgorithms: schemes, certificateAuthorities: request.certificateAuthorities, unknown: [] };
  // A choice TLS 1.2 cannot carry (a delegated credential, a scheme not asked for) is replaced by the default one.
  const usable = (choice: CredentialChoice | undefined): CredentialChoice | undefined =>
    choice === undefined || (choice.label !== 'delegated-credential' && schemes.includes(choice.scheme)) ? choice : fallback();
  const choice = hook(asked, fallback);
  return choice instanceof Promise ? choice.then(usable) : usable(choice);
}

const NO_BYTES = new Uint8Array(0);
