/**
 * The deadline of a connection's ClientHello and handshake together ("ClientHello plus handshake
 * within --handshake-timeout"): one timer per connection, armed at accept, whose expiry means
 * whatever the step running then says (`onExpiry`).
 *
 * One timer of always the same duration, not one per step: node keeps a timer list per
 * duration, and a second timer for "what is left after the peek" had a duration of its own for
 * nearly every connection, so each of them made (and then deleted) a list and a priority-queue
 * entry (bench/results/sidecar-bulk.md section 4).
 */
export class Deadline {
  private readonly timer: NodeJS.Timeout;
  private readonly at: number;
  private expiry: (() => void) | undefined;
  private expired = false;

  constructor(readonly ms: number) {
    this.at = Date.now() + ms;
    this.timer = setTimeout(expire, ms, this);
  }

  /** What expiry means from now on (replaces the previous step's); runs at once if already expired. */
  onExpiry(what: (() => void) | undefined): void {
    this.expiry = what;
    if (this.expired && what) what();
  }

  /** Milliseconds left (at least 1): for a step that keeps a timer of its own (node:tls). */
  remainingMs(): number {
    return Math.max(1, this.at - Date.now());
  }

  /** The connection is past its handshake, or gone: nothing happens at expiry. */
  clear(): void {
    clearTimeout(this.timer);
    this.expiry = undefined;
  }

  /** @internal the timer's callback */
  fire(): void {
    this.expired = true;
    const what = this.expiry;
    this.expiry = undefined;
    what?.();
  }
}

function expire(deadline: Deadline): void {
  deadline.fire();
}
