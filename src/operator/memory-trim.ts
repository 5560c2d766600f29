// The controller gives glibc's free heap memory back to the kernel every few seconds
// (native/malloc-trim.c says why). Measured in bench/results/operator.md (issue 19): after a burst
// of 10,000 issuances glibc otherwise keeps ~75 MiB of free chunks inside its heap for good.
import type { Clock, TimerHandle } from './clock.js';
import { mallocTrim, trimMalloc } from './native/malloc-trim.js';

export const MALLOC_TRIM_INTERVAL_MS = 5000;

/** Calls `trim` every `intervalMs` until stopped; nothing when the interval is 0 or the addon did not load. */
export function startMallocTrim(
  clock: Clock,
  intervalMs: number = MALLOC_TRIM_INTERVAL_MS,
  trim: () => boolean | undefined = trimMalloc,
  available: boolean = mallocTrim.available,
): { stop(): void } {
  if (intervalMs <= 0 || !available) return { stop: () => undefined };
  let timer: TimerHandle | undefined;
  let stopped = false;
  const tick = (): void => {
    if (stopped) return;
    trim();
    timer = clock.setTimer(intervalMs, tick);
  };
  timer = clock.setTimer(intervalMs, tick);
  return {
    stop: () => {
      stopped = true;
      timer?.cancel();
    },
  };
}
