/**
 * Bounds how often one kind of log line is written. Under a flood (thousands of refused or
 * failed connections a second) one line per event would cost more than the events and bury
 * everything else; the metrics count every event, the log says what is happening and why.
 *
 * Each key gets at most `linesPerWindow` lines per window; the events beyond that are counted,
 * and the next line written for the key carries that count (`suppressed`). Keys must come from
 * a fixed set (a reason, not a peer address), so the table stays small.
 */

/** Lines per key per window: enough to show a misbehaving client's first attempts in full. */
export const LOG_LINES_PER_WINDOW = 10;
/** A minute: at most LOG_LINES_PER_WINDOW lines a minute per key, whatever the event rate. */
export const LOG_WINDOW_MS = 60_000;

interface Window {
  start: number;
  written: number;
  suppressed: number;
}

export class LogLimiter {
  private readonly windows = new Map<string, Window>();

  constructor(
    readonly linesPerWindow = LOG_LINES_PER_WINDOW,
    readonly windowMs = LOG_WINDOW_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Calls `write` with the number of events of this key left out since its last written line,
   * unless this key's lines for the current window are used up (then the event is only counted).
   */
  log(key: string, write: (suppressed: number) => void): void {
    const now = this.now();
    let w = this.windows.get(key);
    if (!w) {
      w = { start: now, written: 0, suppressed: 0 };
      this.windows.set(key, w);
    } else if (now - w.start >= this.windowMs) {
      w.start = now;
      w.written = 0;
    }
    if (w.written >= this.linesPerWindow) {
      w.suppressed++;
      return;
    }
    w.written++;
    const suppressed = w.suppressed;
    w.suppressed = 0;
    write(suppressed);
  }
}
