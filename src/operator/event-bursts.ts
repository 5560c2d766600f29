// How many routine (Normal) Events a burst of issuances may send, per namespace and reason.
//
// A cold start or a certificate rotation re-issues every DelegatedCredential of a namespace at
// once: one Issued Event each was a quarter of the API requests of an issuance, and the apiserver
// and etcd it loads are the ones the issuing itself waits on. So, as client-go's spam filter
// does per object, a token bucket, here per namespace+reason: BURST Events, then one per
// REFILL_MS; what the bucket holds back is summed into one Event (count = how many, the legacy
// Event series fields) once the burst has been quiet for SUMMARY_AFTER_MS. Warnings are never
// held back: each names a problem its object has. Each object's status says when it was issued.

export const EVENT_BURST = 25;
export const EVENT_REFILL_MS = 1000;
export const EVENT_SUMMARY_AFTER_MS = 5000;

interface Bucket<T> {
  tokens: number;
  updatedMs: number;
  /** Held back since the last summary. */
  held: number;
  firstHeldMs: number;
  lastHeldMs: number;
  /** The last object held back: the summary Event is about it (an Event needs one object). */
  lastObject: T | undefined;
}

export interface HeldBack<T> {
  namespace: string;
  reason: string;
  count: number;
  first: Date;
  last: Date;
  object: T;
}

export class EventBursts<T> {
  private readonly buckets = new Map<string, Bucket<T>>();

  constructor(
    private readonly burst = EVENT_BURST,
    private readonly refillMs = EVENT_REFILL_MS,
    private readonly summaryAfterMs = EVENT_SUMMARY_AFTER_MS,
  ) {}

  /** True: send this Event. False: it was counted into the next summary. */
  admit(namespace: string, reason: string, nowMs: number, object: T): boolean {
    const key = `${namespace}/${reason}`;
    let bucket = this.buckets.get(key);
    if (bucket === undefined) {
      bucket = { tokens: this.burst, updatedMs: nowMs, held: 0, firstHeldMs: 0, lastHeldMs: 0, lastObject: undefined };
      this.buckets.set(key, bucket);
    }
    bucket.tokens = Math.min(this.burst, bucket.tokens + Math.max(0, nowMs - bucket.updatedMs) / this.refillMs);
    bucket.updatedMs = nowMs;
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return true;
    }
    if (bucket.held === 0) bucket.firstHeldMs = nowMs;
    bucket.held++;
    bucket.lastHeldMs = nowMs;
    bucket.lastObject = object;
    return false;
  }

  /**
   * The summaries due at `nowMs` (quiet for summaryAfterMs since the last held-back Event), and
   * forgets buckets that are full again. Called from a timer while anything is held back.
   */
  due(nowMs: number): HeldBack<T>[] {
    const out: HeldBack<T>[] = [];
    for (const [key, bucket] of this.buckets) {
      if (bucket.held > 0 && bucket.lastObject !== undefined && nowMs - bucket.lastHeldMs >= this.summaryAfterMs) {
        const slash = key.lastIndexOf('/');
        out.push({ namespace: key.slice(0, slash), reason: key.slice(slash + 1), count: bucket.held, first: new Date(bucket.firstHeldMs), last: new Date(bucket.lastHeldMs), object: bucket.lastObject });
        bucket.held = 0;
        bucket.lastObject = undefined;
      }
      const full = bucket.tokens + (nowMs - bucket.updatedMs) / this.refillMs >= this.burst;
      if (bucket.held === 0 && full) this.buckets.delete(key);
    }
    return out;
  }

  holding(): boolean {
    for (const bucket of this.buckets.values()) if (bucket.held > 0) return true;
    return false;
  }
}
