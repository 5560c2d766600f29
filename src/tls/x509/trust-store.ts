/**
 * The trust store: trust anchors parsed once, indexed by subject and fingerprint, and cached by
 * the array or the PEM text they came from.
 */
import { X509Certificate } from 'node:crypto';
import { BoundedCache, sha256hex } from './cache.js';
import { parseCertificate, type ParsedCertificate } from './certificate.js';
import { hex } from './der.js';
import { CertificateError } from './errors.js';
import { pemToDers } from './pem.js';

export interface TrustStore {
  readonly anchors: readonly ParsedCertificate[];
  /** Anchors by hex of their subject Name DER. */
  readonly bySubject: ReadonlyMap<string, readonly ParsedCertificate[]>;
  /** Anchors by fingerprint (for a leaf that is itself trusted). */
  readonly byFingerprint: ReadonlySet<string>;
}

export type TrustAnchorInput = string | Uint8Array | X509Certificate;

const storeByArray = new WeakMap<readonly TrustAnchorInput[], { entries: TrustAnchorInput[]; store: TrustStore }>();
const storeByKey = new BoundedCache<TrustStore>(32);

/**
 * Builds a trust store from PEM bundles (several certificates per string allowed), DER bytes or
 * X509Certificate objects. Throws CertificateError('invalid_trust_anchor') naming the bad entry.
 */
export function createTrustStore(ca: readonly TrustAnchorInput[]): TrustStore {
  const anchors: ParsedCertificate[] = [];
  ca.forEach((entry, i) => {
    let ders: Uint8Array[];
    if (typeof entry === 'string') {
      ders = pemToDers(entry, 'CERTIFICATE');
      if (ders.length === 0) {
        throw new CertificateError('certificate_unknown', 'invalid_trust_anchor', `trust anchor #${i} contains no PEM CERTIFICATE block`);
      }
    } else if (entry instanceof X509Certificate) ders = [entry.raw];
    else ders = [entry];
    for (const der of ders) {
      try {
        anchors.push(parseCertificate(der));
      } catch (e) {
        throw new CertificateError('certificate_unknown', 'invalid_trust_anchor', `trust anchor #${i}: ${(e as Error).message}`);
      }
    }
  });
  const bySubject = new Map<string, ParsedCertificate[]>();
  for (const a of anchors) {
    const k = hex(a.subjectName);
    const list = bySubject.get(k);
    if (list) list.push(a);
    else bySubject.set(k, [a]);
  }
  return { anchors, bySubject, byFingerprint: new Set(anchors.map((a) => a.fingerprint)) };
}

function isTrustStore(x: unknown): x is TrustStore {
  return typeof x === 'object' && x !== null && 'bySubject' in x && 'anchors' in x;
}

/**
 * Cached: the same array with the same entries (checked, so a mutated array is re-read), or equal
 * PEM strings in a new array, reuse the parsed store.
 */
export function trustStoreFor(ca: readonly TrustAnchorInput[] | TrustStore): TrustStore {
  if (isTrustStore(ca)) return ca;
  const byArray = storeByArray.get(ca);
  if (byArray && byArray.entries.length === ca.length && byArray.entries.every((e, i) => e === ca[i])) return byArray.store;
  let key: string | undefined;
  let store: TrustStore | undefined;
  if (ca.every((c) => typeof c === 'string')) {
    key = sha256hex(Buffer.from((ca as string[]).join('\u0000')));
    store = storeByKey.get(key);
  }
  if (!store) {
    store = createTrustStore(ca);
    if (key) storeByKey.set(key, store);
  }
  storeByArray.set(ca, { entries: [...ca], store });
  return store;
}
