/**
 * Signers: whatever produces a signature with a certificate key (delegated credentials in the
 * operator, CertificateVerify in the sidecar's fallback). The interface lives in the TLS package;
 * the backends live here: in-memory/in-cluster (in-memory.ts, key-pair.ts, secret.ts) and the
 * keyless client (keyless.ts, over the src/keyless protocol).
 */
export type { Signer } from '../tls/signer.js';
export { createKeySigner } from '../tls/signer.js';
export { InMemoryKeySigner, SignerKeyError, parsePrivateKeyPem } from './in-memory.js';
export { keyPairSigner, signerFromFiles, type KeyPairSigner, type KeyPairSources } from './key-pair.js';
export { signerFromTlsSecret, secretRef, TLS_CERT, TLS_KEY, type SecretLike, type TlsSecretSigner } from './secret.js';
