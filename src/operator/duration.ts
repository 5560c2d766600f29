// Go-style duration strings ("24h", "90m", "1h30m", "1.5h", "500ms"), the format CEL's
// duration() accepts, so the apiserver's validation and the operator agree on every value.

const UNIT_MS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** The schema pattern: one or more <number><unit>, no sign (negative durations make no sense here). */
export const DURATION_PATTERN = '^([0-9]+(\\.[0-9]+)?(ns|us|ms|s|m|h))+$';

const WHOLE = new RegExp(DURATION_PATTERN);
const PART = /([0-9]+(?:\.[0-9]+)?)(ns|us|ms|s|m|h)/g;

export class InvalidDurationError extends Error {
  constructor(readonly input: string) {
    super(`invalid duration ${JSON.stringify(input)}: expected a Go duration such as "24h", "90m" or "1h30m"`);
    this.name = 'InvalidDurationError';
  }
}

/** Parses a Go-style duration into milliseconds; throws InvalidDurationError. */
export function parseDuration(input: string): number {
  if (!WHOLE.test(input)) throw new InvalidDurationError(input);
  let total = 0;
  for (const match of input.matchAll(PART)) {
    const [, amount, unit] = match;
    total += Number(amount) * (UNIT_MS[unit ?? ''] ?? Number.NaN);
  }
  if (!Number.isFinite(total)) throw new InvalidDurationError(input);
  return total;
}

/** Formats milliseconds the way Go does for whole seconds ("1h30m0s" → "1h30m"), for messages. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  let seconds = Math.round(ms / 1000);
  const hours = Math.floor(seconds / 3600);
  seconds -= hours * 3600;
  const minutes = Math.floor(seconds / 60);
  seconds -= minutes * 60;
  let out = '';
  if (hours > 0) out += `${hours}h`;
  if (minutes > 0) out += `${minutes}m`;
  if (seconds > 0 || out === '') out += `${seconds}s`;
  return out;
}
