/**
 * Server (or client-auth) side: the delegated credentials held for one certificate, and the choice
 * of one for a handshake (RFC 9345 §4.1.1, §4.1.2).
 *
 * A `DelegatedCredentialSet` is immutable and fully validated when built. A `CredentialStore`
 * holds the current set; `replace` is a single reference assignment, so a handshake that took
 * `store.current` at its start keeps using that set even if a reload swaps it mid-flight.
 */
import type { KeyObject } from 'node:crypto';
import { signatureSchemeName } from '../constants.js';
import { createKeySigner, type Signer } from '../signer.js';
import { checkKeyPair, keyPairMessage } from '../key-pair.js';
import { parseCertificate } from '../x509/certificate.js';
import type { SubjectAltNames } from '../x509/names.js';
import { isPostQuantumSignature } from '../signature-schemes.js';
import { dcAlgorithmRank } from './algorithms.js';
import { delegationCertificate, type DelegationCertificate } from './certificate.js';
import { decodeDelegatedCredential } from './codec.js';
import { DelegationError } from './errors.js';
import { MAX_DC_VALIDITY_SECONDS, type DelegatedCredential, type DelegationSide } from './types.js';
import { validateDelegatedCredential } from './verify.js';

export interface DelegatedCredentialEntry {
  /** The encoded DelegatedCredential, sent in the end-entity CertificateEntry's extension 34. */
  readonly encoded: Uint8Array;
  readonly delegatedCredential: DelegatedCredential;
  /** The CertificateVerify scheme: sign it with `signer`. */
  readonly dcCertVerifyAlgorithm: number;
  /** The scheme of the signature on the credential (must be in the peer's signature_algorithms). */
  readonly algorithm: number;
  readonly expiresAt: Date;
  /** Signs CertificateVerify with the credential's private key. */
  readonly signer: Signer;
  readonly publicKey: KeyObject;
}

export interface CredentialInput {
  /** The encoded DelegatedCredential. */
  readonly delegatedCredential: Uint8Array;
  /** The credential's private key. */
  readonly privateKey: KeyObject;
  /** Where it came from, for error messages (e.g. `/etc/dc/ed25519.cred`). */
  readonly label?: string;
}

export interface BuildOptions {
  /** The delegation certificate first, then its intermediates (DER). */
  readonly certificateChain: readonly Uint8Array[];
  readonly credentials: readonly CredentialInput[];
  readonly now?: Date;
  readonly side?: DelegationSide;
  /**
   * 'refuse' (the default): a credential not servable now (expired, or more than 7 days left by
   * this clock) fails the build, naming it, so a reload never replaces a set that still serves
   * with one that does not. 'keep': such a credential is kept and never selected until it is
   * servable (select checks the time per handshake), so a server that starts after its
   * credentials expired, or whose clock is behind the issuer's, still serves through its fallback.
   */
  readonly expired?: 'refuse' | 'keep';
}

export interface SelectOptions {
  /** The peer's delegated_credential extension (34) list; undefined when the peer did not send it. */
  readonly dcSchemes: readonly number[] | undefined;
  /** The peer's signature_algorithms list. */
  readonly signatureSchemes: readonly number[];
  readonly now?: Date;
  /**
   * Also require the credential's signature `algorithm` in the extension-34 list when it differs
   * from dc_cert_verify_algorithm. RFC 9345 only asks for it in signature_algorithms, but NSS
   * (Firefox, `tstclnt -B`) enforces this stricter rule and, since no client lists rsa_pss_rsae_*
   * in extension 34, aborts with illegal_parameter on any credential signed by an RSA
   * (rsaEncryption) certificate. With this set, such clients get the certificate instead.
   */
  readonly requireAlgorithmInDcSchemes?: boolean;
}

export class DelegatedCredentialSet {
  private constructor(
    readonly certificateChain: readonly Uint8Array[],
    readonly certificate: DelegationCertificate,
    /** Which side's context string the credentials were validated with. */
    readonly side: DelegationSide,
    /** subjectAltName of the certificate, read from its DER, for SNI checks (matchesServerName). */
    readonly names: SubjectAltNames,
    /** Cheapest algorithm first; for equal algorithms the longest-lived first. */
    readonly entries: readonly DelegatedCredentialEntry[],
  ) {
    Object.freeze(this);
  }

  /** An empty set for a certificate: every handshake falls back to the certificate key. */
  static empty(certificateChain: readonly Uint8Array[]): DelegatedCredentialSet {
    return DelegatedCredentialSet.build({ certificateChain, credentials: [] });
  }

  /**
   * Validates every credential against the certificate (signature, DelegationUsage, expiry, the
   * 7-day rule) and checks that each private key is the credential's key. Throws DelegationError
   * naming the credential's label; nothing is built unless everything is valid.
   */
  static build(options: BuildOptions): DelegatedCredentialSet {
    const leaf = options.certificateChain[0];
    if (!leaf) throw new DelegationError('missing-file', 'the certificate chain is empty');
    let certificate: DelegationCertificate;
    try {
      certificate = delegationCertificate(leaf);
    } catch (cause) {
      throw new DelegationError('invalid-file', `the end-entity certificate does not parse: ${errorText(cause)}`, { cause });
    }
    const entries = options.credentials.map((input, i) =>
      buildEntry(input, input.label ?? `credential #${i}`, certificate, options.now, options.side ?? 'server', options.expired ?? 'refuse'),
    );
    entries.sort(
      (a, b) =>
        dcAlgorithmRank(a.dcCertVerifyAlgorithm) - dcAlgorithmRank(b.dcCertVerifyAlgorithm) ||
        b.expiresAt.getTime() - a.expiresAt.getTime(),
    );
    const chain = Object.freeze(options.certificateChain.map((c) => Uint8Array.from(c)));
    const { dnsNames, ipAddressBytes } = parseCertificate(certificate.der);
    const names: SubjectAltNames = Object.freeze({ dnsNames, ipAddressBytes });
    return new DelegatedCredentialSet(
      chain,
      certificate,
      options.side ?? 'server',
      names,
      Object.freeze(entries.map((e) => Object.freeze(e))),
    );
  }

  /**
   * The credential to serve, or undefined to fall back to the certificate key: the peer must have
   * offered extension 34 with our dc_cert_verify_algorithm AND list our signature `algorithm` in
   * signature_algorithms (two lists, two checks); expired credentials and any with more than
   * 7 days left (a clock that went backwards) are skipped. An ML-DSA credential also needs its
   * scheme in signature_algorithms: RFC 9345 asks only extension 34 for it, but no deployed
   * client verifies ML-DSA yet, and one listing it in both has said twice that it does.
   * Preferred algorithm wins (`dcAlgorithmRank`).
   * The caller must only use a credential in TLS 1.3.
   */
  select(options: SelectOptions): DelegatedCredentialEntry | undefined {
    const { dcSchemes, signatureSchemes } = options;
    if (dcSchemes === undefined || dcSchemes.length === 0) return undefined;
    const nowMs = (options.now ?? new Date()).getTime();
    return this.entries.find(
      (e) =>
        dcSchemes.includes(e.dcCertVerifyAlgorithm) &&
        signatureSchemes.includes(e.algorithm) &&
        (!isPostQuantumSignature(e.dcCertVerifyAlgorithm) || signatureSchemes.includes(e.dcCertVerifyAlgorithm)) &&
        (!options.requireAlgorithmInDcSchemes || e.algorithm === e.dcCertVerifyAlgorithm || dcSchemes.includes(e.algorithm)) &&
        isServableAt(e, nowMs),
    );
  }

  /** The earliest expiry among the credentials (when a reload must have happened), if any. */
  get earliestExpiry(): Date | undefined {
    let min: number | undefined;
    for (const e of this.entries) min = min === undefined ? e.expiresAt.getTime() : Math.min(min, e.expiresAt.getTime());
    return min === undefined ? undefined : new Date(min);
  }
}

/** Not expired and at most 7 days left: what a receiver accepts at `nowMs` (RFC 9345 §4.1.3). */
export function isServableAt(entry: DelegatedCredentialEntry, nowMs: number): boolean {
  const expiryMs = entry.expiresAt.getTime();
  return expiryMs > nowMs && expiryMs - nowMs <= MAX_DC_VALIDITY_SECONDS * 1000;
}

function buildEntry(
  input: CredentialInput,
  label: string,
  certificate: DelegationCertificate,
  now: Date | undefined,
  side: DelegationSide,
  expired: 'refuse' | 'keep',
): DelegatedCredentialEntry {
  let delegatedCredential: DelegatedCredential;
  try {
    delegatedCredential = decodeDelegatedCredential(input.delegatedCredential);
  } catch (cause) {
    throw new DelegationError('invalid-file', `${label}: not an encoded DelegatedCredential: ${errorText(cause)}`, { cause });
  }
  let verified;
  try {
    verified = validateDelegatedCredential(delegatedCredential, { certificate, now, side, timeRules: expired === 'keep' ? 'none' : 'all' });
  } catch (cause) {
    throw new DelegationError('invalid-file', `${label}: ${errorText(cause)}`, { cause });
  }
  // RFC 9345 §3: a credential must not outlive its certificate. Our issuer never makes one; one
  // from elsewhere is refused rather than served past the point where no client accepts it.
  if (verified.expiresAt.getTime() > certificate.notAfterSeconds * 1000) {
    throw new DelegationError(
      'invalid-file',
      `${label}: valid until ${verified.expiresAt.toISOString()}, after the certificate expires (${new Date(certificate.notAfterSeconds * 1000).toISOString()}); RFC 9345 §3 forbids a credential to outlive its certificate: issue it again`,
    );
  }
  if (input.privateKey.type !== 'private') {
    throw new DelegationError('invalid-file', `${label}: the key given for this credential is not a private key`);
  }
  // Signs and verifies, not only compares public keys: a key file's public part can lie (key-pair.ts).
  const check = checkKeyPair(input.privateKey, verified.publicKey);
  if (check !== undefined) {
    const scheme = signatureSchemeName(verified.dcCertVerifyAlgorithm);
    throw new DelegationError('key-mismatch', `${label}: the private key does not match the credential's public key (${scheme}): ${keyPairMessage(check.fault, { key: 'its key', owner: 'the credential' }, check.signingError)}`);
  }
  return {
    encoded: Uint8Array.from(input.delegatedCredential),
    delegatedCredential,
    dcCertVerifyAlgorithm: verified.dcCertVerifyAlgorithm,
    algorithm: delegatedCredential.algorithm,
    expiresAt: verified.expiresAt,
    signer: createKeySigner(input.privateKey),
    publicKey: verified.publicKey,
  };
}

/**
 * Holds the current credential set. Readers take `current` once per handshake; `replace` swaps the
 * reference atomically (JavaScript runs it without interleaving), so in-flight handshakes are never
 * affected and a failed reload, which never reaches `replace`, leaves the old set serving.
 */
export class CredentialStore {
  private set: DelegatedCredentialSet | undefined;

  constructor(initial?: DelegatedCredentialSet) {
    this.set = initial;
  }

  get current(): DelegatedCredentialSet | undefined {
    return this.set;
  }

  /** Installs `next` and returns the set it replaced. */
  replace(next: DelegatedCredentialSet | undefined): DelegatedCredentialSet | undefined {
    const previous = this.set;
    this.set = next;
    return previous;
  }
}

export function errorText(cause: unknown): string {
  return cause instanceof Error ? cause.message : String(cause);
}
