// A work queue of `namespace/name` keys (client-go's semantics): a key is queued at most once;
// a key being processed is never handed to a second worker, and is re-queued after done() if
// it was added meanwhile; failures re-queue with per-key exponential backoff; addAfter() keeps
// one timer per key (the earliest wins), which is how renewal times are scheduled.
import type { Clock, TimerHandle } from './clock.js';

export interface BackoffOptions {
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseDelayMs: 1000, maxDelayMs: 5 * 60_000 };

/** Delay before the n-th retry (n ≥ 1): base·2^(n-1), capped. */
export function backoffDelay(failures: number, opts: BackoffOptions = DEFAULT_BACKOFF): number {
  if (failures <= 0) return 0;
  return Math.min(opts.maxDelayMs, opts.baseDelayMs * 2 ** Math.min(failures - 1, 30));
}

export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, { due: number; handle: TimerHandle }>();
  private readonly waiters: ((key: string | undefined) => void)[] = [];
  private shuttingDown = false;

  constructor(
    private readonly clock: Clock,
    private readonly backoff: BackoffOptions = DEFAULT_BACKOFF,
  ) {}

  add(key: string): void {
    if (this.shuttingDown) return;
    if (this.processing.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    const waiter = this.waiters.shift();
    if (waiter) {
      this.processing.add(key);
      waiter(key);
      return;
    }
    this.queued.add(key);
    this.queue.push(key);
  }

  /** Adds `key` after `delayMs`; an earlier pending timer for the key is kept. */
  addAfter(key: string, delayMs: number): void {
    if (this.shuttingDown) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    const due = this.clock.now().getTime() + delayMs;
    const existing = this.timers.get(key);
    if (existing && existing.due <= due) return;
    existing?.handle.cancel();
    const handle = this.clock.setTimer(delayMs, () => {
      this.timers.delete(key);
      this.add(key);
    });
    this.timers.set(key, { due, handle });
  }

  /** Re-queues after a failure with this key's next backoff delay; returns the delay. */
  addRateLimited(key: string): number {
    const n = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, n);
    const delay = backoffDelay(n, this.backoff);
    this.addAfter(key, delay);
    return delay;
  }

  /** Success: the next failure starts from the base delay again. */
  forget(key: string): void {
    this.failures.delete(key);
  }

  failureCount(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** Drops every pending timer and the backoff state of a key (its object was deleted). */
  cancel(key: string): void {
    this.timers.get(key)?.handle.cancel();
    this.timers.delete(key);
    this.failures.delete(key);
  }

  /** The next key, marked as processing; undefined once shut down. */
  get(): Promise<string | undefined> {
    if (this.shuttingDown) return Promise.resolve(undefined);
    const key = this.queue.shift();
    if (key !== undefined) {
      this.queued.delete(key);
      this.processing.add(key);
      return Promise.resolve(key);
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.delete(key)) this.add(key);
  }

  get length(): number {
    return this.queue.length;
  }

  get scheduled(): number {
    return this.timers.size;
  }

  shutdown(): void {
    this.shuttingDown = true;
    for (const { handle } of this.timers.values()) handle.cancel();
    this.timers.clear();
    for (const waiter of this.waiters.splice(0)) waiter(undefined);
  }
}
