/**
 * Chain verification against a trust store: path building, signatures, validity, CA
 * constraints, key usages, name constraints and the host name.
 *
 * Signatures are checked with node:crypto over the TBSCertificate bytes; node's X509Certificate
 * is used only for RSASSA-PSS signatures. Speed: a client runs this per handshake. Trust stores
 * are parsed once and cached, presented certificates are cached by the SHA-256 of their DER, and
 * a verified (certificate, issuer key) signature is remembered, so a repeated chain costs a few
 * hashes and map lookups.
 */
import { constants as cryptoConstants, verify as cryptoVerify, type X509Certificate, type KeyObject } from 'node:crypto';
import { BoundedCache } from './cache.js';
import { DELEGATION_USAGE_OID, OID, KeyUsageBit, describe, parseCertificate, publicKeyOf, type ParsedCertificate } from './certificate.js';
import { hex } from './der.js';
import { CertificateError } from './errors.js';
import { dnsWithinConstraint, ipWithinConstraint, matchesServerName } from './names.js';
import { trustStoreFor, type TrustAnchorInput, type TrustStore } from './trust-store.js';

export const MAX_CHAIN_LENGTH = 10;

/**
 * Critical extensions we understand and enforce. Anything else marked critical makes the
 * certificate unusable (RFC 5280 §4.2). Name constraints are enforced for dNSName and iPAddress
 * subtrees; a CA constraining other name types is refused (see checkNameConstraints).
 */
const HANDLED_CRITICAL = new Set<string>([
  OID.keyUsage,
  OID.subjectAltName,
  OID.basicConstraints,
  OID.extKeyUsage,
  OID.nameConstraints,
  OID.certificatePolicies, // no policy processing; accepted as Go and browsers do for TLS
  DELEGATION_USAGE_OID, // reported by hasDelegationUsage; RFC 9345 forbids critical, DC code rejects
]);

/** Certificate signature algorithms accepted on certificates we verify (no MD5, no SHA-1). */
const ACCEPTED_SIGNATURE_ALGORITHMS = new Map<string, string>([
  ['1.2.840.113549.1.1.11', 'sha256WithRSAEncryption'],
  ['1.2.840.113549.1.1.12', 'sha384WithRSAEncryption'],
  ['1.2.840.113549.1.1.13', 'sha512WithRSAEncryption'],
  ['1.2.840.113549.1.1.10', 'RSASSA-PSS'],
  ['1.2.840.10045.4.3.2', 'ecdsa-with-SHA256'],
  ['1.2.840.10045.4.3.3', 'ecdsa-with-SHA384'],
  ['1.2.840.10045.4.3.4', 'ecdsa-with-SHA512'],
  ['1.3.101.112', 'Ed25519'],
  ['1.3.101.113', 'Ed448'],
]);


const verifiedSignatures = new BoundedCache<true>(1024);

export interface VerifyChainOptions {
  /** Trust anchors, or a store from createTrustStore (fastest). */
  ca: readonly TrustAnchorInput[] | TrustStore;
  /** DNS name or IP address the leaf must be valid for; omitted: no name check. */
  servername?: string;
  now?: Date;
  /** extendedKeyUsage required on the leaf (and intermediates) when they carry the extension. Default 'server'. */
  purpose?: 'server' | 'client';
}

/** `leaf`, `path` and `anchor` build node X509Certificate objects on first access. */
export interface VerifiedChain {
  readonly leaf: X509Certificate;
  readonly leafDer: Uint8Array;
  readonly publicKey: KeyObject;
  /** Leaf first, trust anchor last (a directly trusted leaf: just the leaf). */
  readonly path: readonly X509Certificate[];
  readonly anchor: X509Certificate;
  /** The earliest notAfter on the path: when this verification stops holding. */
  readonly notAfter: Date;
}

/** Budget of signature checks while searching for a path: bounds pathological chains. */
const MAX_SIGNATURE_CHECKS = 64;

interface SearchState {
  checks: number;
  /** Failures seen while searching, to explain why no path was found. */
  badSignatureBetweenPresented: { child: number; issuer: number } | undefined;
  anchorNameMatchedButSignatureFailed: ParsedCertificate | undefined;
  firstPathError: CertificateError | undefined;
}

export function verifyCertificateChain(chainDers: readonly Uint8Array[], opts: VerifyChainOptions): VerifiedChain {
  if (chainDers.length === 0) throw new CertificateError('bad_certificate', 'empty_chain', 'the peer sent no certificate');
  if (chainDers.length > MAX_CHAIN_LENGTH) {
    throw new CertificateError('bad_certificate', 'chain_too_long', `certificate chain has ${chainDers.length} certificates; at most ${MAX_CHAIN_LENGTH} are accepted`);
  }
  const now = opts.now ?? new Date();
  const purpose = opts.purpose ?? 'server';
  const chain = chainDers.map((d, i) => parseCertificate(d, i));
  const store = trustStoreFor(opts.ca);
  const leaf = chain[0]!;

  // Intrinsic leaf checks first: they are true whatever the path is, and the most useful message.
  checkValidity(leaf, now, 0, 'leaf');

  const state: SearchState = {
    checks: 0,
    badSignatureBetweenPresented: undefined,
    anchorNameMatchedButSignatureFailed: undefined,
    firstPathError: undefined,
  };
  let path: ParsedCertificate[] | undefined;
  if (store.byFingerprint.has(leaf.fingerprint)) {
    // The leaf itself is trusted (a pinned self-signed or dev certificate).
    const err = validatePath([leaf], now, purpose, [0]);
    if (err) throw err;
    path = [leaf];
  } else {
    path = findPath(chain, store, now, purpose, state);
  }
  if (!path) throw noPathError(chain, state);

  if (opts.servername !== undefined) checkName(leaf, opts.servername);
  const found = path;
  let notAfter = leaf.notAfter;
  for (const c of found) if (c.notAfter.getTime() < notAfter.getTime()) notAfter = c.notAfter;
  return {
    get leaf() {
      return leaf.x509;
    },
    leafDer: leaf.der,
    publicKey: publicKeyOf(leaf),
    get path() {
      return found.map((p) => p.x509);
    },
    get anchor() {
      return found[found.length - 1]!.x509;
    },
    notAfter,
  };
}

/** Depth-first search from the leaf to an anchor; every complete path is validated, first valid wins. */
function findPath(
  chain: readonly ParsedCertificate[],
  store: TrustStore,
  now: Date,
  purpose: 'server' | 'client',
  state: SearchState,
): ParsedCertificate[] | undefined {
  const used = new Set<number>([0]);
  // Repeated copies of a certificate add nothing but search time.
  const duplicates = new Set<number>();
  const seen = new Set<string>();
  chain.forEach((c, i) => {
    if (seen.has(c.fingerprint)) duplicates.add(i);
    seen.add(c.fingerprint);
  });
  const path: ParsedCertificate[] = [chain[0]!];
  const indices: number[] = [0];

  const step = (): ParsedCertificate[] | undefined => {
    const current = path[path.length - 1]!;
    const currentIndex = indices[indices.length - 1]!;
    // 1. A trust anchor that issued `current`.
    for (const anchor of store.bySubject.get(hex(current.issuerName)) ?? []) {
      if (!keyIdsCompatible(current, anchor)) continue;
      if (anchor.fingerprint === current.fingerprint) continue;
      if (!signatureVerifies(current, anchor, state)) {
        state.anchorNameMatchedButSignatureFailed ??= anchor;
        continue;
      }
      const candidate = [...path, anchor];
      const err = validatePath(candidate, now, purpose, [...indices, -1]);
      if (!err) return candidate;
      state.firstPathError ??= err;
    }
    // A presented self-signed root that is not trusted ends this branch.
    if (current.selfIssued && signatureVerifies(current, current, state)) return undefined;
    if (path.length >= MAX_CHAIN_LENGTH) return undefined;
    // 2. A presented intermediate that issued `current`.
    for (let j = 1; j < chain.length; j++) {
      if (used.has(j) || duplicates.has(j)) continue;
      const issuer = chain[j]!;
      if (Buffer.compare(issuer.subjectName, current.issuerName) !== 0) continue;
      if (!keyIdsCompatible(current, issuer)) continue;
      if (!signatureVerifies(current, issuer, state)) {
        state.badSignatureBetweenPresented ??= { child: currentIndex, issuer: j };
        continue;
      }
      // A presented copy of a trust anchor: treat it as reaching that anchor.
      if (store.byFingerprint.has(issuer.fingerprint)) {
        const candidate = [...path, issuer];
        const err = validatePath(candidate, now, purpose, [...indices, j]);
        if (!err) return candidate;
        state.firstPathError ??= err;
        continue;
      }
      used.add(j);
      path.push(issuer);
      indices.push(j);
      const found = step();
      if (found) return found;
      path.pop();
      indices.pop();
      used.delete(j);
    }
    return undefined;
  };
  return step();
}

/** When both key identifiers are present they must agree; otherwise the name match decides. */
function keyIdsCompatible(child: ParsedCertificate, issuer: ParsedCertificate): boolean {
  return child.authorityKeyId === undefined || issuer.subjectKeyId === undefined || child.authorityKeyId === issuer.subjectKeyId;
}

function signatureVerifies(child: ParsedCertificate, issuer: ParsedCertificate, state: SearchState): boolean {
  const key = `${child.fingerprint}:${issuer.fingerprint}`;
  if (verifiedSignatures.get(key)) return true;
  if (state.checks++ >= MAX_SIGNATURE_CHECKS) return false;
  let ok = false;
  try {
    ok = verifyCertificateSignature(child, publicKeyOf(issuer));
  } catch {
    ok = false;
  }
  if (ok) verifiedSignatures.set(key, true);
  return ok;
}

/**
 * Checks the issuer's signature over the TBSCertificate with node:crypto directly (no
 * X509Certificate needed). RSASSA-PSS, whose parameters live in the AlgorithmIdentifier, is left
 * to OpenSSL through X509Certificate.verify.
 */
function verifyCertificateSignature(child: ParsedCertificate, key: KeyObject): boolean {
  const type = key.asymmetricKeyType;
  const sig = child.signature;
  switch (child.signatureAlgorithm) {
    case '1.2.840.113549.1.1.11':
    case '1.2.840.113549.1.1.12':
    case '1.2.840.113549.1.1.13':
      if (type !== 'rsa') return false;
      return cryptoVerify(SIGNATURE_HASH[child.signatureAlgorithm]!, child.tbs, { key, padding: cryptoConstants.RSA_PKCS1_PADDING }, sig);
    case '1.2.840.10045.4.3.2':
    case '1.2.840.10045.4.3.3':
    case '1.2.840.10045.4.3.4':
      if (type !== 'ec') return false;
      return cryptoVerify(SIGNATURE_HASH[child.signatureAlgorithm]!, child.tbs, { key, dsaEncoding: 'der' }, sig);
    case '1.3.101.112':
      return type === 'ed25519' && cryptoVerify(null, child.tbs, key, sig);
    case '1.3.101.113':
      return type === 'ed448' && cryptoVerify(null, child.tbs, key, sig);
    default:
      return child.x509.verify(key);
  }
}

const SIGNATURE_HASH: Readonly<Record<string, string>> = {
  '1.2.840.113549.1.1.11': 'sha256',
  '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512',
  '1.2.840.10045.4.3.2': 'sha256',
  '1.2.840.10045.4.3.3': 'sha384',
  '1.2.840.10045.4.3.4': 'sha512',
};

/**
 * Checks a complete path (leaf first, anchor last) against validity, CA and usage constraints.
 * Returns the first problem, or undefined when the path is good.
 */
function validatePath(
  path: readonly ParsedCertificate[],
  now: Date,
  purpose: 'server' | 'client',
  presentedIndices: readonly number[],
): CertificateError | undefined {
  try {
    const last = path.length - 1;
    for (let k = 0; k <= last; k++) {
      const c = path[k]!;
      const index = presentedIndices[k] ?? -1;
      const role = k === 0 ? 'leaf' : k === last ? 'trust anchor' : 'intermediate';
      checkValidity(c, now, index, role);
      checkCriticalExtensions(c, index, role);
      // The anchor's own signature and EKU are not checked: it is trusted by configuration.
      if (k < last) checkSignatureAlgorithm(c, index, role);
      if (k === 0 || k < last) checkPurpose(c, purpose, index, role);
      if (k === 0) {
        if (c.keyUsage !== undefined && !(c.keyUsage & (1 << KeyUsageBit.digitalSignature))) {
          throw new CertificateError('unsupported_certificate', 'key_usage_forbids_signing', `leaf certificate ${describe(c)} has a keyUsage extension without digitalSignature, so it cannot sign a TLS 1.3 handshake`, index);
        }
        continue;
      }
      // Issuers.
      if (!c.basicConstraints?.ca) {
        throw new CertificateError('bad_certificate', 'issuer_not_ca', `${role} ${describe(c)} issued ${describe(path[k - 1]!)} but is not a CA (basicConstraints cA is ${c.basicConstraints ? 'false' : 'absent'})`, index);
      }
      if (c.keyUsage !== undefined && !(c.keyUsage & (1 << KeyUsageBit.keyCertSign))) {
        throw new CertificateError('bad_certificate', 'issuer_cannot_sign_certificates', `${role} ${describe(c)} has a keyUsage extension without keyCertSign`, index);
      }
      if (c.nameConstraints) checkNameConstraints(c, role, index, path.slice(0, k), presentedIndices);
      const pathLen = c.basicConstraints.pathLen;
      if (pathLen !== undefined) {
        // Non-self-issued intermediate CAs below this one (RFC 5280 §4.2.1.9).
        let below = 0;
        for (let j = 1; j < k; j++) if (!path[j]!.selfIssued) below++;
        if (below > pathLen) {
          throw new CertificateError('bad_certificate', 'path_length_exceeded', `${role} ${describe(c)} allows ${pathLen} intermediate CA(s) below it (pathLenConstraint) but the chain has ${below}`, index);
        }
      }
    }
    return undefined;
  } catch (e) {
    if (e instanceof CertificateError) return e;
    throw e;
  }
}

/**
 * RFC 5280 §4.2.1.10 for dNSName and iPAddress subtrees, applied to the subjectAltName names of
 * every certificate below the constraining CA (self-issued intermediates excepted). The subject
 * common name is not a host name here (we never match host names against it), so it is not checked.
 */
function checkNameConstraints(ca: ParsedCertificate, role: string, index: number, below: readonly ParsedCertificate[], presentedIndices: readonly number[]): void {
  const nc = ca.nameConstraints!;
  const other = [...nc.permitted, ...nc.excluded].find((t) => t.type === 'other');
  if (other && other.type === 'other') {
    throw new CertificateError('unsupported_certificate', 'unsupported_name_constraint', `${role} ${describe(ca)} has name constraints on ${other.what}, which we do not evaluate`, index);
  }
  const permittedDns = nc.permitted.filter((t) => t.type === 'dns');
  const permittedIp = nc.permitted.filter((t) => t.type === 'ip');
  below.forEach((c, j) => {
    if (j > 0 && c.selfIssued) return;
    const violation = (name: string, why: string) =>
      new CertificateError('bad_certificate', 'name_constraint_violation', `certificate ${describe(c)} has the name ${name}, which the name constraints of ${role} ${describe(ca)} ${why}`, presentedIndices[j] ?? -1);
    for (const dns of c.dnsNames) {
      if (nc.excluded.some((t) => t.type === 'dns' && dnsWithinConstraint(dns, t.name))) throw violation(`DNS:${dns}`, 'exclude');
      if (permittedDns.length > 0 && !permittedDns.some((t) => t.type === 'dns' && dnsWithinConstraint(dns, t.name))) throw violation(`DNS:${dns}`, 'do not permit');
    }
    c.ipAddressBytes.forEach((ip, n) => {
      const label = `IP:${c.ipAddresses[n] ?? '?'}`;
      if (nc.excluded.some((t) => t.type === 'ip' && ipWithinConstraint(ip, t.address, t.mask))) throw violation(label, 'exclude');
      if (permittedIp.length > 0 && !permittedIp.some((t) => t.type === 'ip' && ipWithinConstraint(ip, t.address, t.mask))) throw violation(label, 'do not permit');
    });
  });
}

function checkValidity(c: ParsedCertificate, now: Date, index: number, role: string): void {
  const t = now.getTime();
  if (t < c.notBefore.getTime()) {
    throw new CertificateError('certificate_expired', 'not_yet_valid', `${role} certificate ${describe(c)} is not valid before ${c.notBefore.toISOString()} (now ${now.toISOString()})`, index);
  }
  if (t > c.notAfter.getTime()) {
    throw new CertificateError('certificate_expired', 'expired', `${role} certificate ${describe(c)} expired at ${c.notAfter.toISOString()} (now ${now.toISOString()})`, index);
  }
}

function checkCriticalExtensions(c: ParsedCertificate, index: number, role: string): void {
  for (const [oid, ext] of c.extensions) {
    if (ext.critical && !HANDLED_CRITICAL.has(oid)) {
      throw new CertificateError('unsupported_certificate', 'unhandled_critical_extension', `${role} certificate ${describe(c)} has a critical extension we do not process (${oid})`, index);
    }
  }
}

function checkSignatureAlgorithm(c: ParsedCertificate, index: number, role: string): void {
  if (!ACCEPTED_SIGNATURE_ALGORITHMS.has(c.signatureAlgorithm)) {
    throw new CertificateError('unsupported_certificate', 'unsupported_signature_algorithm', `${role} certificate ${describe(c)} is signed with an algorithm we do not accept (${c.signatureAlgorithm}); SHA-256 or stronger RSA/ECDSA, or Ed25519/Ed448, are required`, index);
  }
}

function checkPurpose(c: ParsedCertificate, purpose: 'server' | 'client', index: number, role: string): void {
  const eku = c.extKeyUsage;
  if (eku === undefined) return;
  const wanted = purpose === 'server' ? OID.serverAuth : OID.clientAuth;
  if (eku.includes(wanted) || eku.includes(OID.anyExtendedKeyUsage)) return;
  throw new CertificateError('unsupported_certificate', 'wrong_purpose', `${role} certificate ${describe(c)} is not valid for TLS ${purpose} authentication (extendedKeyUsage lacks ${purpose === 'server' ? 'serverAuth' : 'clientAuth'})`, index);
}

/** The leaf must cover `servername`; the rules are those of matchesServerName (names.ts). */
function checkName(leaf: ParsedCertificate, servername: string): void {
  if (matchesServerName(leaf, servername)) return;
  const covered = [...leaf.dnsNames.map((d) => `DNS:${d}`), ...leaf.ipAddresses.map((a) => `IP Address:${a}`)];
  const names = covered.length ? covered.join(', ') : '(no subjectAltName names)';
  throw new CertificateError('bad_certificate', 'hostname_mismatch', `certificate ${describe(leaf)} is not valid for "${servername}"; it covers ${names}`, 0);
}

function noPathError(chain: readonly ParsedCertificate[], state: SearchState): CertificateError {
  if (state.firstPathError) return state.firstPathError;
  if (state.badSignatureBetweenPresented) {
    const { child, issuer } = state.badSignatureBetweenPresented;
    return new CertificateError('bad_certificate', 'bad_signature', `the signature on certificate #${child} ${describe(chain[child]!)} does not verify with the key of certificate #${issuer} ${describe(chain[issuer]!)}`, child);
  }
  const leaf = chain[0]!;
  const top = chain[chain.length - 1]!;
  let issuerName = '(unreadable)';
  try {
    issuerName = top.x509.issuer.replace(/\n/g, ', ');
  } catch {
    // keep the placeholder
  }
  if (state.anchorNameMatchedButSignatureFailed) {
    return new CertificateError('unknown_ca', 'untrusted', `certificate ${describe(top)} names a trusted CA (${issuerName}) as issuer but its signature does not verify with that CA's key: it was issued by a different CA with the same name`, chain.length - 1);
  }
  if (state.checks >= MAX_SIGNATURE_CHECKS) {
    return new CertificateError('unknown_ca', 'untrusted', `gave up building a path for ${describe(leaf)} after ${MAX_SIGNATURE_CHECKS} signature checks`, 0);
  }
  return new CertificateError('unknown_ca', 'untrusted', `certificate ${describe(leaf)} does not chain to a trusted CA (the chain ends at an issuer named "${issuerName}", which is not in the trust store)`, chain.length - 1);
}

