// The operator's view of the crypto it needs, as one port (CryptoPort) with the real
// implementation over src/tls. The reconciler depends on the port only, so unit tests can
// substitute it; integration tests use this implementation.
import { createPublicKey } from 'node:crypto';
import type { Algorithm } from './api/v1alpha1.js';
import { ReconcileFailure } from './failures.js';
import { sha256Hex, type CredentialInspector, type IssuedCredential } from './output-secret.js';
import { certificatesOfPem, chainOrderProblem, delegationUsageProblem, spkiOf } from '../tls/x509/index.js';
import type { Signer } from '../tls/signer.js';
import { keyPairMessage } from '../tls/key-pair.js';
import { InMemoryKeySigner } from '../signer/index.js';
import {
  DC_ALGORITHMS,
  DelegationError,
  decodeDelegatedCredential,
  delegatedCredentialExpiry,
  delegatedCredentialSignatureVerifies,
  delegationCertificate,
  issueDelegatedCredential,
} from '../tls/delegated/index.js';

export type { Signer };

export interface CertificateFacts {
  /** The CERTIFICATE blocks of tls.crt re-encoded from DER (leaf first): what goes into the output Secret. */
  chainPem: string;
  leafDer: Uint8Array;
  /** Hex SHA-256 of the leaf DER. */
  fingerprint: string;
  notBefore: Date;
  notAfter: Date;
  /** Why this certificate cannot delegate, or undefined. */
  delegationProblem: string | undefined;
}

export interface IssueRequest {
  certificate: CertificateFacts;
  signer: Signer;
  algorithm: Algorithm;
  validitySeconds: number;
  now: Date;
}

export interface CryptoPort {
  /** Parses tls.crt, keeping only its certificates; throws ReconcileFailure(CertificateInvalid). */
  readCertificate(tlsCrt: string, source: string): CertificateFacts;
  inspectCredential: CredentialInspector;
  /** A signer over a PEM private key; throws ReconcileFailure(KeyInvalid | KeyMismatch). */
  keySigner(keyPem: string, source: string, certificate: CertificateFacts): Signer;
  issue(request: IssueRequest): Promise<IssuedCredential>;
}

export const tlsCrypto: CryptoPort = {
  readCertificate(tlsCrt, source) {
    // Rebuilt from the parsed certificates: a private key pasted into tls.crt (a combined PEM)
    // must never reach the output Secret, which every injected pod mounts.
    let ders: Uint8Array[];
    let chainPem: string;
    try {
      ({ ders, pem: chainPem } = certificatesOfPem(tlsCrt));
    } catch (err) {
      throw new ReconcileFailure('CertificateInvalid', `${source}: ${messageOf(err)}`);
    }
    const leafDer = ders[0];
    if (leafDer === undefined) throw new ReconcileFailure('CertificateInvalid', `${source} holds no PEM CERTIFICATE block`);
    // Checked before the leaf's own extensions: a CA first would otherwise be reported as a leaf
    // lacking DelegationUsage, which points at the wrong fix.
    const order = chainOrderProblem(ders);
    if (order) throw new ReconcileFailure('CertificateInvalid', `${source}: ${order}`);
    try {
      const cert = delegationCertificate(leafDer);
      return {
        chainPem,
        leafDer,
        fingerprint: sha256Hex(leafDer),
        notBefore: new Date(cert.notBeforeSeconds * 1000),
        notAfter: new Date(cert.notAfterSeconds * 1000),
        delegationProblem: delegationUsageProblem(leafDer),
      };
    } catch (err) {
      throw new ReconcileFailure('CertificateInvalid', `${source}: the leaf certificate does not parse: ${messageOf(err)}`);
    }
  },

  inspectCredential({ algorithm, credential, certificateDer }) {
    const dc = decodeDelegatedCredential(credential);
    if (dc.credential.dcCertVerifyAlgorithm !== DC_ALGORITHMS[algorithm]) {
      throw new Error(`holds a credential for another algorithm (0x${dc.credential.dcCertVerifyAlgorithm.toString(16)})`);
    }
    if (!delegatedCredentialSignatureVerifies(dc, certificateDer)) {
      throw new Error("its signature does not verify with the certificate's key");
    }
    return { notAfter: delegatedCredentialExpiry(dc, certificateDer), publicKeySpki: dc.credential.spki };
  },

  keySigner(keyPem, source, certificate) {
    let signer: InMemoryKeySigner;
    try {
      signer = InMemoryKeySigner.fromPem(keyPem, source);
    } catch (err) {
      // SignerKeyError messages already name the source and say what kind of key is needed.
      throw new ReconcileFailure('KeyInvalid', messageOf(err), { signer: true });
    }
    const certificateKey = createPublicKey({ key: Buffer.from(spkiOf(certificate.leafDer)), format: 'der', type: 'spki' });
    const fault = signer.pairFault(certificateKey);
    if (fault !== undefined) {
      throw new ReconcileFailure('KeyMismatch', keyPairMessage(fault.fault, { key: source, owner: `the certificate (sha256 ${certificate.fingerprint.slice(0, 12)})` }, fault.signingError));
    }
    return signer;
  },

  async issue({ certificate, signer, algorithm, validitySeconds, now }) {
    try {
      const issued = await issueDelegatedCredential({ certificate: certificate.leafDer, signer, dcAlgorithm: algorithm, validitySeconds, now });
      return {
        algorithm,
        credential: issued.delegatedCredential,
        privateKeyPem: issued.privateKeyPem,
        notAfter: issued.expiresAt,
        publicKeySpki: issued.decoded.credential.spki,
      };
    } catch (err) {
      if (err instanceof DelegationError) {
        if (err.code === 'certificate-not-delegation-capable') throw new ReconcileFailure('CertificateMissingDelegationUsage', err.message);
        if (err.code === 'signer-key-mismatch' || err.code === 'key-mismatch') throw new ReconcileFailure('KeyMismatch', err.message);
        if (err.code === 'past-certificate-expiry') throw new ReconcileFailure('CertificateExpired', err.message);
        if (err.code === 'certificate-not-yet-valid') throw new ReconcileFailure('CertificateNotYetValid', err.message);
        if (err.code === 'signer-failed') throw new ReconcileFailure('SignerUnavailable', err.message);
      }
      throw err;
    }
  },
};

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
