// The parsed signing key of a certificate Secret, kept in memory for the length of an issuing
// burst, so that N DelegatedCredentials on one certificate cost one key GET instead of N.
//
// What is kept: the Signer (a node:crypto KeyObject; no PEM string, no Buffer of key bytes) and
// the certificate read from the same GET, under the Secret's resourceVersion. An entry is used
// only while the certificate-Secret watch shows that same resourceVersion (so a rotated key or
// certificate is read afresh), is dropped as soon as the watch reports any change to the Secret
// or its deletion, is dropped after IDLE_MS without a use (a burst's length, not the process's),
// and at most MAX_ENTRIES certificates are held (the least recently used goes first).
// docs/architecture.md, "Where secrets live", says why and what it measured.
import type { Clock, TimerHandle } from './clock.js';
import type { CertificateFacts, Signer } from './crypto.js';

/** How long an unused key stays: long enough to span one burst of reconciles, no longer. */
export const SIGNING_KEY_IDLE_MS = 10_000;
/** Certificates whose keys are held at once. */
export const SIGNING_KEY_MAX_ENTRIES = 32;

export interface CachedSigningKey {
  signer: Signer;
  certificate: CertificateFacts;
}

interface Entry extends CachedSigningKey {
  resourceVersion: string;
  lastUsedMs: number;
}

export class SigningKeyCache {
  private readonly entries = new Map<string, Entry>();
  private sweep: TimerHandle | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly idleMs = SIGNING_KEY_IDLE_MS,
    private readonly maxEntries = SIGNING_KEY_MAX_ENTRIES,
  ) {}

  /** The key read from `namespace/name` at `resourceVersion`, if still held. */
  get(namespace: string, name: string, resourceVersion: string): CachedSigningKey | undefined {
    const key = `${namespace}/${name}`;
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.resourceVersion !== resourceVersion || resourceVersion === '') {
      this.entries.delete(key);
      return undefined;
    }
    entry.lastUsedMs = this.clock.now().getTime();
    // Re-insert: Map order is the eviction order (least recently used first).
    this.entries.delete(key);
    this.entries.set(key, entry);
    return { signer: entry.signer, certificate: entry.certificate };
  }

  put(namespace: string, name: string, resourceVersion: string, value: CachedSigningKey): void {
    if (resourceVersion === '' || this.maxEntries <= 0) return;
    const key = `${namespace}/${name}`;
    this.entries.delete(key);
    this.entries.set(key, { ...value, resourceVersion, lastUsedMs: this.clock.now().getTime() });
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
    this.armSweep();
  }

  /** The certificate-Secret watch saw `namespace/name` change or go: its key is read afresh. */
  forget(namespace: string, name: string): void {
    this.entries.delete(`${namespace}/${name}`);
  }

  size(): number {
    return this.entries.size;
  }

  clear(): void {
    this.entries.clear();
    this.sweep?.cancel();
    this.sweep = undefined;
  }

  private armSweep(): void {
    if (this.sweep !== undefined) return;
    this.sweep = this.clock.setTimer(this.idleMs, () => {
      this.sweep = undefined;
      const cutoff = this.clock.now().getTime() - this.idleMs;
      for (const [key, entry] of this.entries) if (entry.lastUsedMs <= cutoff) this.entries.delete(key);
      if (this.entries.size > 0) this.armSweep();
    });
  }
}
