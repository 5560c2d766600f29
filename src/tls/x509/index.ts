/**
 * X.509 for the TLS stack and the delegated-credential code, laid out as webpki is:
 *
 * | file | what it does |
 * | --- | --- |
 * | `der.ts` | the DER reader and writer (src/keyless uses it too) |
 * | `pem.ts` | PEM to DER and back; `pemBlocks`, the one PEM block scanner (linear: keys and certificates from files and Secrets) |
 * | `certificate.ts` | parsing a certificate once (cached by digest), per-certificate helpers |
 * | `names.ts` | host names against subjectAltName, name-constraint comparisons |
 * | `trust-store.ts` | trust anchors, parsed once and cached |
 * | `verify-chain.ts` | path building and validation |
 * | `errors.ts` | `CertificateError` and the alert each failure maps to; `DerDecodeError` |
 * | `cache.ts` | the bounded cache behind parsed certificates, verified signatures, trust stores |
 *
 * Shared by the TLS client and server, the sidecar, the operator and dcctl. Nothing here imports
 * from outside src/tls.
 */
export { CertificateError, type CertificateErrorCode, type CertificateErrorKind } from './errors.js';
export { certificatesOfPem, derToPem, pemBlocks, pemToDers, type PemBlock, type PemScanWork } from './pem.js';
export {
  DELEGATION_USAGE_OID,
  KeyUsageBit,
  certificateExtensions,
  certificateNotAfter,
  certificateNotBefore,
  certificatePublicKey,
  chainOrderProblem,
  delegationUsageProblem,
  describeCertificate,
  hasDelegationUsage,
  hasDigitalSignatureKeyUsage,
  parseCertificate,
  publicKeyFromSpki,
  publicKeyMatchesPrivate,
  spkiOf,
  type CertificateExtension,
  type CertificateInput,
  type NameConstraints,
  type NameSubtree,
  type ParsedCertificate,
} from './certificate.js';
export { matchesServerName, type SubjectAltNames } from './names.js';
export { createTrustStore, type TrustAnchorInput, type TrustStore } from './trust-store.js';
export { MAX_CHAIN_LENGTH, verifyCertificateChain, type VerifiedChain, type VerifyChainOptions } from './verify-chain.js';
