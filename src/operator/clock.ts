// Time as a dependency, so queues, timers and renewal decisions are testable without waiting.
export interface TimerHandle {
  cancel(): void;
}

export interface Clock {
  now(): Date;
  setTimer(ms: number, fn: () => void): TimerHandle;
}

/** setTimeout cannot wait longer than 2^31-1 ms; longer timers re-arm in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export const systemClock: Clock = {
  now: () => new Date(),
  setTimer(ms, fn) {
    let handle: NodeJS.Timeout;
    const due = Date.now() + Math.max(0, ms);
    const arm = (): void => {
      const left = due - Date.now();
      handle = setTimeout(left > MAX_TIMER_MS ? arm : fn, Math.min(Math.max(0, left), MAX_TIMER_MS));
    };
    arm();
    return { cancel: () => clearTimeout(handle) };
  },
};

/** A manual clock for tests: timers fire only when advance() passes their due time. */
export class FakeClock implements Clock {
  private nowMs: number;
  private timers: { due: number; fn: () => void; cancelled: boolean }[] = [];
  constructor(start: Date | number = 0) {
    this.nowMs = typeof start === 'number' ? start : start.getTime();
  }
  now(): Date {
    return new Date(this.nowMs);
  }
  setTimer(ms: number, fn: () => void): TimerHandle {
    const timer = { due: this.nowMs + Math.max(0, ms), fn, cancelled: false };
    this.timers.push(timer);
    return { cancel: () => void (timer.cancelled = true) };
  }
  /** Moves time forward, firing due timers in order. */
  advance(ms: number): void {
    const target = this.nowMs + ms;
    for (;;) {
      const next = this.timers.filter((t) => !t.cancelled && t.due <= target).sort((a, b) => a.due - b.due)[0];
      if (!next) break;
      this.nowMs = next.due;
      next.cancelled = true;
      next.fn();
    }
    this.timers = this.timers.filter((t) => !t.cancelled);
    this.nowMs = target;
  }
  pendingTimers(): number {
    return this.timers.filter((t) => !t.cancelled).length;
  }
}
