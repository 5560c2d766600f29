/**
 * Signers: whatever produces a signature with a certificate key (delegated credentials in the
 * operator, CertificateVerify in the sidecar's fallback). The interface lives in the TLS package;
 * the backends live here: in-memory/in-cluster (in-memory.ts) and the
 * keyless client (keyless.ts, over the src/keyless protocol).
 */
export type { Signer } from '../tls/signer.js';
export { createKeySigner } from '../tls/signer.js';
export { InMemoryKeySigner, SignerKeyError, parsePrivateKeyPem } from './in-memory.js';
