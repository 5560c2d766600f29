// A work queue of `namespace/name` keys (client-go's semantics): a key is queued at most once;
// a key being processed is never handed to a second worker, and is re-queued after done() if
// it was added meanwhile; failures re-queue with per-key exponential backoff; addAfter() keeps
// one due time per key (the earliest wins), which is how renewal times are scheduled.
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
  /** The pending delayed add of each key; `delayed` holds these (and superseded ones, skipped). */
  private readonly timers = new Map<string, Delayed>();
  private readonly delayed = new DueHeap();
  /** One timer, for the earliest due time: not one per key (10,000 renewal times held ~3 MiB of Timeouts, timer lists and closures). */
  private alarm: { due: number; handle: TimerHandle } | undefined;
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
    // NaN would sit at the top of the one heap, never due, and hold back every other key: a delay
    // that is not a number is treated as none.
    if (delayMs <= 0 || Number.isNaN(delayMs)) {
      this.add(key);
      return;
    }
    const now = this.clock.now().getTime();
    const due = now + delayMs;
    const existing = this.timers.get(key);
    if (existing && existing.due <= due) return;
    const entry = { key, due };
    this.timers.set(key, entry);
    this.delayed.push(entry);
    // Superseded entries wait in the heap until their time; rebuilt when they outnumber the live ones.
    if (this.delayed.size > 2 * this.timers.size + 1024) this.delayed.rebuild(this.timers.values());
    this.arm(now);
  }

  /** Keeps the alarm at the earliest live due time (none when nothing is pending). */
  private arm(now: number): void {
    const next = this.delayed.peekLive(this.timers);
    if (next === undefined) {
      this.alarm?.handle.cancel();
      this.alarm = undefined;
      return;
    }
    if (this.alarm !== undefined && this.alarm.due <= next.due) return; // it fires first, and re-arms
    this.alarm?.handle.cancel();
    this.alarm = { due: next.due, handle: this.clock.setTimer(next.due - now, () => this.fire()) };
  }

  private fire(): void {
    this.alarm = undefined;
    const now = this.clock.now().getTime();
    for (let e = this.delayed.popDue(now); e !== undefined; e = this.delayed.popDue(now)) {
      if (this.timers.get(e.key) !== e) continue; // superseded by an earlier one, or cancelled
      this.timers.delete(e.key);
      this.add(e.key);
    }
    this.arm(now);
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
    this.failures.delete(key);
    if (!this.timers.delete(key) || this.timers.size > 0) return;
    this.delayed.rebuild([]);
    this.arm(this.clock.now().getTime());
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
    this.alarm?.handle.cancel();
    this.alarm = undefined;
    this.timers.clear();
    this.delayed.rebuild([]);
    for (const waiter of this.waiters.splice(0)) waiter(undefined);
  }
}

interface Delayed {
  readonly key: string;
  readonly due: number;
}

/** A binary min-heap of delayed adds by due time. */
class DueHeap {
  private items: Delayed[] = [];

  get size(): number {
    return this.items.length;
  }

  push(item: Delayed): void {
    const a = this.items;
    a.push(item);
    for (let i = a.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (a[parent]!.due <= item.due) break;
      a[i] = a[parent]!;
      a[parent] = item;
      i = parent;
    }
  }

  /** The earliest entry that is still `live`'s entry for its key; superseded ones on top are dropped. */
  peekLive(live: ReadonlyMap<string, Delayed>): Delayed | undefined {
    for (let top = this.items[0]; top !== undefined; top = this.items[0]) {
      if (live.get(top.key) === top) return top;
      this.pop();
    }
    return undefined;
  }

  /** The earliest entry if it is due at `now`. */
  popDue(now: number): Delayed | undefined {
    const top = this.items[0];
    return top !== undefined && top.due <= now ? this.pop() : undefined;
  }

  rebuild(items: Iterable<Delayed>): void {
    this.items = [];
    for (const item of items) this.push(item);
  }

  private pop(): Delayed | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (top === undefined || last === undefined || a.length === 0) return top;
    a[0] = last;
    for (let i = 0; ; ) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < a.length && a[l]!.due < a[m]!.due) m = l;
      if (r < a.length && a[r]!.due < a[m]!.due) m = r;
      if (m === i) break;
      [a[i], a[m]] = [a[m]!, a[i]!];
      i = m;
    }
    return top;
  }
}
