// What the informer caches keep of the objects they list and watch: every DelegatedCredential
// and every output Secret stays in memory for the operator's lifetime, so their form decides the
// operator's RSS at scale (issue 19: 10,000 objects).
import type { V1Secret } from '@kubernetes/client-node';
import { BUNDLE_KEYS } from './api/serving-bundle.js';

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
}

/** A DelegatedCredential or signer as cached: without managedFields, its conditions' text pooled. */
export function cachedResource<R extends { metadata?: { managedFields?: unknown }; status?: { conditions?: CachedCondition[] } }>(pool: StringPool): (object: R) => R {
  return (object) => {
    withoutManagedFields(object);
    for (const c of object.status?.conditions ?? []) {
      if (c.reason !== undefined) c.reason = pool.of(c.reason);
      // Ready's message names the object's own validity and renewal times: no other object shares it.
      if (c.message !== undefined && c.type !== 'Ready') c.message = pool.of(c.message);
    }
    return object;
  };
}

/** Output Secret keys whose values are the same for every DelegatedCredential of a certificate or key server. */
const SHARED_OUTPUT_KEYS: readonly string[] = [BUNDLE_KEYS.chain, BUNDLE_KEYS.fallback, BUNDLE_KEYS.keylessAddress, BUNDLE_KEYS.keylessCA];

/** An output Secret as cached: without managedFields, the certificate chain and other shared values pooled. */
export function cachedOutputSecret(pool: StringPool): (secret: V1Secret) => V1Secret {
  return (secret) => {
    withoutManagedFields(secret);
    const data = secret.data;
    if (data !== undefined) {
      for (const key of SHARED_OUTPUT_KEYS) {
        const value = data[key];
        if (value !== undefined) data[key] = pool.of(value);
      }
    }
    return secret;
  };
}
