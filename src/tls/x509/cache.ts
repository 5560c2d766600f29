import { createHash } from 'node:crypto';

/**
 * A bounded cache that evicts the oldest insertion. Not LRU on purpose: refreshing the order on
 * every hit costs more than the occasional re-parse of an evicted entry.
 */
export class BoundedCache<V> {
  private readonly map = new Map<string, V>();
  constructor(private readonly capacity: number) {}
  get(key: string): V | undefined {
    return this.map.get(key);
  }
  set(key: string, v: V): void {
    if (!this.map.has(key) && this.map.size >= this.capacity) this.map.delete(this.map.keys().next().value as string);
    this.map.set(key, v);
  }
}

/** Hex SHA-256: the key of the caches (certificates by DER, trust stores by PEM text). */
export function sha256hex(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}
