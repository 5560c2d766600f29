// What the informer caches keep of the objects they list and watch: every DelegatedCredential
// and every output Secret stays in memory for the operator's lifetime, so their form decides the
// operator's RSS at scale (issue 19: 10,000 objects).
import { createPrivateKey, createPublicKey } from 'node:crypto';
import type { V1OwnerReference, V1Secret } from '@kubernetes/client-node';
import { keyPairFault } from '../tls/key-pair.js';
import { BUNDLE_KEYS } from './api/serving-bundle.js';
import { ANNOTATIONS, OWNER_LABEL, sha256Hex } from './output-secret.js';

/**
 * What the caches keep of our own kinds and of output Secrets: the object without
 * metadata.managedFields. Nothing here reads them, and they are most of a small object's heap
 * (dozens of nested objects per DelegatedCredential for the field paths of its status conditions).
 * Writes built from a cached object then carry no managedFields, which the apiserver reads as
 * "keep the existing ones" on an update. The raw object is ours (parsed for this informer), so it
 * is trimmed in place rather than copied.
 */
export function withoutManagedFields<R extends { metadata?: { managedFields?: unknown } }>(object: R): R {
  if (object.metadata?.managedFields !== undefined) delete object.metadata.managedFields;
  return object;
}

/**
 * One copy of strings that many cached objects hold alike: each watch event and list item is
 * parsed on its own, so 10,000 output Secrets of one certificate hold 10,000 copies of its chain,
 * and 10,000 statuses as many copies of "the credentials are current". Bounded: once full it
 * starts over, so strings no object holds any more (a rotated certificate's chain) are not pinned.
 */
export class StringPool {
  private readonly pool = new Map<string, string>();
  constructor(private readonly max = 512) {}

  of(value: string): string {
    const kept = this.pool.get(value);
    if (kept !== undefined) return kept;
    if (this.pool.size >= this.max) this.pool.clear();
    this.pool.set(value, value);
    return value;
  }

  get size(): number {
    return this.pool.size;
  }
}

interface CachedCondition {
  type: string;
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
}

interface CachedStatus {
  conditions?: CachedCondition[];
  notAfter?: string;
  lastIssuedTime?: string;
  credentials?: { algorithm?: string; notAfter?: string }[];
  fallback?: string;
  keyServer?: string;
}

interface CachedSpec {
  algorithms?: unknown;
  certificateSecretRef?: { name?: unknown };
}

/**
 * A DelegatedCredential or signer as cached: without managedFields, its conditions' text pooled,
 * and the times a burst gives many objects alike (to the second: transitions, issue, expiry,
 * creation; ~0.36 KB per DelegatedCredential). renewalTime is not pooled: its jitter makes it
 * nearly unique, and unique strings would only churn the pool. Also pooled: what every object of
 * a namespace or certificate repeats (apiVersion, kind, namespace, the algorithms, the certificate
 * Secret's name, condition types, the fallback). V8 shares only strings of up to 10 characters
 * between parsed objects.
 */
export function cachedResource<R extends { apiVersion?: string; kind?: string; metadata?: { namespace?: string; managedFields?: unknown; creationTimestamp?: unknown }; spec?: object; status?: CachedStatus }>(pool: StringPool): (object: R) => R {
  const time = <T>(value: T): T => (typeof value === 'string' ? (pool.of(value) as T) : value);
  return (object) => {
    withoutManagedFields(object);
    if (object.apiVersion !== undefined) object.apiVersion = pool.of(object.apiVersion);
    if (object.kind !== undefined) object.kind = pool.of(object.kind);
    const metadata = object.metadata;
    if (metadata !== undefined) {
      if (metadata.namespace !== undefined) metadata.namespace = pool.of(metadata.namespace);
      if (metadata.creationTimestamp !== undefined) metadata.creationTimestamp = time(metadata.creationTimestamp);
    }
    const spec = object.spec as CachedSpec | undefined;
    if (spec !== undefined) {
      if (Array.isArray(spec.algorithms)) spec.algorithms = spec.algorithms.map(time);
      if (spec.certificateSecretRef !== undefined) spec.certificateSecretRef.name = time(spec.certificateSecretRef.name);
    }
    const status = object.status;
    if (status === undefined) return object;
    if (status.fallback !== undefined) status.fallback = pool.of(status.fallback);
    if (status.keyServer !== undefined) status.keyServer = pool.of(status.keyServer);
    for (const c of status.conditions ?? []) {
      c.type = pool.of(c.type);
      if (c.reason !== undefined) c.reason = pool.of(c.reason);
      // Ready's message names the object's own validity and renewal times: no other object shares it.
      if (c.message !== undefined && c.type !== 'Ready') c.message = pool.of(c.message);
      if (c.lastTransitionTime !== undefined) c.lastTransitionTime = time(c.lastTransitionTime);
    }
    if (status.notAfter !== undefined) status.notAfter = time(status.notAfter);
    if (status.lastIssuedTime !== undefined) status.lastIssuedTime = time(status.lastIssuedTime);
    for (const c of status.credentials ?? []) {
      if (c.algorithm !== undefined) c.algorithm = pool.of(c.algorithm);
      if (c.notAfter !== undefined) c.notAfter = time(c.notAfter);
    }
    return object;
  };
}

/** Output Secret keys whose values are the same for every DelegatedCredential of a certificate or key server. */
const SHARED_OUTPUT_KEYS: readonly string[] = [BUNDLE_KEYS.chain, BUNDLE_KEYS.fallback, BUNDLE_KEYS.keylessAddress, BUNDLE_KEYS.keylessCA];

/**
 * A private key of an output Secret as cached: its public key's SHA-256 (hex), or why it is
 * unusable. Read from a Secret, the fingerprint first says only which public key the file
 * carries; the form (OutputSecretForm.settle) then checks once that the private part signs for
 * it, so comparing it with a credential's or certificate's public key says the key pairs with it
 * (src/tls/key-pair.ts). A settled check that fails becomes a problem in place.
 */
export type KeyCheck = { publicKeyFingerprint: string } | { problem: string };

/** The public key (SPKI DER) a PEM private key carries; throws when it is not a readable private key. */
export type PublicKeyReader = (privateKeyPem: string) => Uint8Array;

/** Whether a PEM private key's private part signs for the public key it carries (false when unreadable). */
export type PairwiseCheck = (privateKeyPem: string) => boolean;

/** The real reader: a private key only (a public key under a `.key` name is not one). ~0.15 ms. */
export const publicKeyOfPrivateKey: PublicKeyReader = (pem) => new Uint8Array(createPublicKey(createPrivateKey(pem)).export({ type: 'spki', format: 'der' }));

/**
 * The real pairwise check: one signature and one verification (0.3 ms for P-256, several ms for
 * P-384, RSA and ML-DSA: bench/results/key-pair.md), which is why a relist does not run it.
 */
export const privateKeyPairs: PairwiseCheck = (pem) => {
  try {
    const privateKey = createPrivateKey(pem);
    return keyPairFault(privateKey, createPublicKey(privateKey)) === undefined;
  } catch {
    return false;
  }
};

/** A stand-in reader (tests) stands in for the whole check; the real reader comes with the real pairwise check. */
function pairwiseFor(readPublicKey: PublicKeyReader): PairwiseCheck {
  return readPublicKey === publicKeyOfPrivateKey ? privateKeyPairs : () => true;
}

/** Follows the key's data name in messages: "<algorithm>.key <problem>", "keyless-client.key <problem>". */
const KEY_DOES_NOT_PAIR =
  'does not pair with the public key it carries: its private part does not produce signatures that public key verifies (corrupted or tampered); the operator issues it again';

/**
 * An output Secret as the caches keep it: what the reconciler reads and nothing else. Its private
 * keys (`<algorithm>.key`, `keyless-client.key`, `tls.key`) are read once per resourceVersion,
 * when the watch delivers it, and only their check is kept, so a reconcile does not parse them
 * again. One exception: a key the issuer did not vouch for (after a relist, every key) keeps its
 * PEM beside the cached object until a reconcile settles its pairwise check
 * (OutputSecretForm.settle); until then the operator holds that private key in memory, and an
 * output Secret that no reconcile settles (its certificate Secret missing or invalid) keeps it
 * as long as it is cached. Metadata is
 * a plain object of the fields read (client-node's V1ObjectMeta instances carry every field).
 */
export interface CachedOutputSecret {
  metadata: {
    name?: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: V1OwnerReference[];
  };
  /** Every data key the Secret holds, private keys included. */
  keys: readonly string[];
  /** Public values as stored (base64): the chain, the credentials, the fallback parts. */
  data: Readonly<Record<string, string>>;
  /** The check of each private key but the certificate key (only its presence matters), by data key. */
  privateKeys: Readonly<Record<string, KeyCheck>>;
}

/** Data keys of an output Secret that hold private keys: never cached. */
export function holdsPrivateKey(key: string): boolean {
  return key.endsWith('.key');
}

/**
 * Makes the cached form of output Secrets (one pool of shared strings, one key reader). Reading a
 * private key costs ~150 µs (OpenSSL's decoder and encoder): before the operator writes a Secret,
 * the issuer tells the form the checks of the keys it is sending (it knows their public keys), and
 * the first transform that meets one of those values uses the check instead of reading the key,
 * whether the watch event or our write's response comes first. A check is a function of the
 * value alone, so this is a memo, seeded; it holds only writes in flight (bounded, each entry
 * dropped when used or when the write fails). The informer does not transform an object at a
 * resourceVersion it already holds either, so a burst of issuances reads no key back.
 *
 * The pairwise check of a key read back (a signature and its verification, up to ~20x the read for
 * P-384, RSA, ML-DSA) is not run by the transform: the informer transforms a whole relist in one
 * synchronous map (10,000 P-384 keys would block the event loop for over a minute, past the
 * leader lease and the liveness probe). The transform keeps the key's value beside its check
 * until `settle`, which the reconciler calls before it reads the Secret's checks: each key is
 * checked once, by the reconcile that would keep it, one DelegatedCredential at a time. The value
 * is held weakly by its check: a Secret replaced or deleted before its reconcile drops it.
 */
export class OutputSecretForm {
  private readonly known = new Map<string, KeyCheck>();
  private readonly shared = new Set(SHARED_OUTPUT_KEYS);
  /** Checks read from a Secret whose pairwise check has not run yet, and the key's PEM for it. */
  private readonly unpaired = new WeakMap<KeyCheck, string>();

  constructor(
    private readonly pool: StringPool,
    private readonly readPublicKey: PublicKeyReader = publicKeyOfPrivateKey,
    private readonly maxKnown = 256,
    private readonly pairs: PairwiseCheck = pairwiseFor(readPublicKey),
  ) {}

  /**
   * Runs the pending pairwise checks of `secret`'s private keys (once each); a key whose private
   * part does not sign for its public key becomes a problem in the cached object itself.
   */
  settle(secret: CachedOutputSecret): void {
    for (const check of Object.values(secret.privateKeys)) {
      const pem = this.unpaired.get(check);
      if (pem === undefined) continue;
      this.unpaired.delete(check);
      if (this.pairs(pem)) continue;
      const failed = check as { publicKeyFingerprint?: string; problem?: string };
      delete failed.publicKeyFingerprint;
      failed.problem = KEY_DOES_NOT_PAIR;
    }
  }

  /** Before writing `sent`: the checks of the private keys it holds, by data key. */
  vouch(sent: V1Secret, checks: Readonly<Record<string, KeyCheck>>): void {
    for (const [key, check] of Object.entries(checks)) {
      const value = sent.data?.[key];
      if (value === undefined) continue;
      if (this.known.size >= this.maxKnown) this.known.delete(this.known.keys().next().value ?? '');
      this.known.set(value, check);
    }
  }

  /** The write of `sent` failed: what was vouched for it is dropped. */
  forget(sent: V1Secret): void {
    for (const value of Object.values(sent.data ?? {})) this.known.delete(value);
  }

  private check(base64: string): KeyCheck {
    const known = this.known.get(base64);
    if (known !== undefined) {
      this.known.delete(base64);
      return known;
    }
    const pem = Buffer.from(base64, 'base64').toString('utf8');
    const read = publicKeyCheck(pem, this.readPublicKey);
    if ('publicKeyFingerprint' in read) this.unpaired.set(read, pem);
    return read;
  }

  readonly transform = (secret: V1Secret): CachedOutputSecret => {
    const { pool } = this;
    const m = secret.metadata ?? {};
    const data: Record<string, string> = {};
    const privateKeys: Record<string, KeyCheck> = {};
    const stored = secret.data ?? {};
    const keys = Object.keys(stored);
    for (const key of keys) {
      const value = stored[key] ?? '';
      if (!holdsPrivateKey(key)) data[key] = this.shared.has(key) ? pool.of(value) : value;
      else if (key !== BUNDLE_KEYS.certificateKey) privateKeys[key] = this.check(value);
    }
    const metadata: CachedOutputSecret['metadata'] = {
      name: m.name,
      namespace: m.namespace === undefined ? undefined : pool.of(m.namespace),
      uid: m.uid,
      resourceVersion: m.resourceVersion,
    };
    if (m.labels !== undefined) metadata.labels = pooledRecord(m.labels, pool, (k) => k !== OWNER_LABEL);
    // The certificate fingerprint and the spec hash are shared by every credential of a certificate.
    if (m.annotations !== undefined) metadata.annotations = pooledRecord(m.annotations, pool, (k) => k !== ANNOTATIONS.issuedAt);
    if (m.ownerReferences !== undefined) {
      metadata.ownerReferences = m.ownerReferences.map((o) => ({
        apiVersion: pool.of(o.apiVersion),
        kind: pool.of(o.kind),
        name: o.name,
        uid: o.uid,
        ...(o.controller !== undefined ? { controller: o.controller } : {}),
        ...(o.blockOwnerDeletion !== undefined ? { blockOwnerDeletion: o.blockOwnerDeletion } : {}),
      }));
    }
    return { metadata, keys: keys.map((k) => pool.of(k)), data, privateKeys };
  };
}

/** The transform alone, each Secret settled at once (tests, and callers that never vouch nor settle). */
export function cachedOutputSecret(pool: StringPool, readPublicKey: PublicKeyReader = publicKeyOfPrivateKey): (secret: V1Secret) => CachedOutputSecret {
  const form = new OutputSecretForm(pool, readPublicKey);
  return (secret) => {
    const cached = form.transform(secret);
    form.settle(cached);
    return cached;
  };
}

/** What the cache keeps of a PEM private key, its pairwise check included. */
export function checkPrivateKey(pem: string, readPublicKey: PublicKeyReader = publicKeyOfPrivateKey, pairs: PairwiseCheck = pairwiseFor(readPublicKey)): KeyCheck {
  const read = publicKeyCheck(pem, readPublicKey);
  if ('problem' in read || pairs(pem)) return read;
  return { problem: KEY_DOES_NOT_PAIR };
}

/** The public key a PEM private key carries, unchecked against its private part. */
function publicKeyCheck(pem: string, readPublicKey: PublicKeyReader): KeyCheck {
  try {
    return { publicKeyFingerprint: sha256Hex(readPublicKey(pem)) };
  } catch {
    return { problem: 'does not parse' };
  }
}

/** A plain copy of labels or annotations, the values `shared(key)` says many objects hold pooled. */
function pooledRecord(record: Record<string, string>, pool: StringPool, shared: (key: string) => boolean): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(record)) out[k] = shared(k) ? pool.of(v) : v;
  return out;
}
