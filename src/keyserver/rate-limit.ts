// A token bucket per identity: each identity may sign `ratePerSecond` times a second on average,
// with bursts of up to `burst`. Why per identity: every sidecar shares the key server, and one
// pod (a stolen credential, a client in a reconnect loop, a load test) must not take every other
// tenant's signatures. Identities are bounded by the DelegatedCredentials the cluster holds, so
// the table is too; an identity idle long enough for a full bucket is dropped from it.

export interface RateLimitOptions {
  /** Tokens added per second; 0 turns limiting off. */
  readonly ratePerSecond: number;
  /** Bucket size: the burst an idle identity may spend at once (default: one second's worth, at least 1). */
  readonly burst?: number;
  readonly now?: () => number;
}

/**
 * Signatures a second per identity by default. A sidecar asks for one signature per handshake of a
 * client without DC support; 1,000 full handshakes a second is more than one pod's TLS terminator
 * does on a core, and a twentieth of what one key server core signs (P-256), so one identity can
 * never take more than that share of a replica.
 */
export const DEFAULT_SIGNATURES_PER_SECOND = 1_000;

interface Bucket {
  tokens: number;
  at: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly rate: number;
  private readonly burst: number;
  private readonly now: () => number;

  constructor(options: RateLimitOptions) {
    if (!(options.ratePerSecond >= 0) || !Number.isFinite(options.ratePerSecond)) throw new RangeError('ratePerSecond must be a finite number >= 0');
    this.rate = options.ratePerSecond;
    this.burst = Math.max(1, options.burst ?? this.rate);
    this.now = options.now ?? Date.now;
  }

  get enabled(): boolean {
    return this.rate > 0;
  }

  /** Takes one token of `identity`'s bucket; false when it is empty (refuse the request). */
  take(identity: string): boolean {
    if (!this.enabled) return true;
    const now = this.now();
    const bucket = this.buckets.get(identity) ?? { tokens: this.burst, at: now };
    bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.rate);
    bucket.at = now;
    const ok = bucket.tokens >= 1;
    if (ok) bucket.tokens -= 1;
    this.buckets.set(identity, bucket);
    if (this.buckets.size > 1024) this.prune(now);
    return ok;
  }

  /** Identities tracked (tests). */
  get size(): number {
    return this.buckets.size;
  }

  /** Drops buckets that would be full by now: forgetting them changes no decision. */
  private prune(now: number): void {
    for (const [identity, b] of this.buckets) {
      if (b.tokens + ((now - b.at) / 1000) * this.rate >= this.burst) this.buckets.delete(identity);
    }
  }
}
