// A token bucket per key (the in-cluster key server: per tenant, `tenantOf` in authorization.ts):
// each may sign `ratePerSecond` RSA-2048 signatures' worth a second on average
// (src/keyless/signature-cost.ts: a signature with a costlier key takes more tokens), with bursts of
// up to `burst`. Why: every sidecar shares the key server, and one pod (a stolen credential, a
// client in a reconnect loop, a load test) must not take every other tenant's signatures; per
// tenant rather than per identity, because a tenant makes as many identities (DelegatedCredentials)
// as it likes. Keys are bounded by the namespaces, so the table is too; one idle long enough for a
// full bucket is dropped from it.

export interface RateLimitOptions {
  /** Tokens added per second; 0 turns limiting off. */
  readonly ratePerSecond: number;
  /** Bucket size: the burst an idle identity may spend at once (default: one second's worth, at least 1). */
  readonly burst?: number;
  readonly now?: () => number;
}

/**
 * Signatures a second per identity by default, in RSA-2048 signatures (signatureCost). A sidecar
 * asks for one signature per handshake of a client without DC support; 1,000 full handshakes a
 * second is more than one pod's TLS terminator does on a core. Weighted by cost, one identity takes
 * at most about half a key server core (1,000 RSA-2048 signatures, ~0.5 s), whatever its key:
 * with RSA-8192 it gets ~27 signatures a second, not 1,000 (which would be ~24 to 52 s of CPU a
 * second); with P-256 or Ed25519, 1,000, a twentieth of a core.
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

  /**
   * Takes `tokens` of `identity`'s bucket (a signature's cost, signatureCost: 1 for an RSA-2048
   * or P-256 signature); false when it does not hold them (refuse the request). A request costing
   * more than the burst is admitted from a full bucket and leaves it in debt, which the rate repays
   * before the next one: the long-run rate is the same whatever the cost, and no key is too
   * expensive to be served at all.
   */
  take(identity: string, tokens = 1): boolean {
    if (!this.enabled) return true;
    const now = this.now();
    const bucket = this.buckets.get(identity) ?? { tokens: this.burst, at: now };
    bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.rate);
    bucket.at = now;
    const ok = bucket.tokens >= Math.min(tokens, this.burst);
    if (ok) bucket.tokens -= tokens;
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
