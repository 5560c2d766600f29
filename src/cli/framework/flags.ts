/** Validators for flag values shared by commands. Each error names the flag and what is allowed. */
import { isIP } from 'node:net';
import { UsageError } from './errors.js';

export function oneOf<T extends string>(flag: string, value: string, allowed: readonly T[], what = 'value'): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new UsageError(`unknown ${what} "${value}"; allowed: ${allowed.join(', ')}`, flag);
}

/** A whole number in [min, max]. */
export function integerFlag(flag: string, value: string, min: number, max: number): number {
  if (!/^\d+$/.test(value)) throw new UsageError(`must be a whole number, got "${value}"`, flag);
  const n = Number(value);
  if (n < min || n > max) throw new UsageError(`must be between ${min} and ${max}, got ${value}`, flag);
  return n;
}

export function ipFlag(flag: string, value: string): string {
  if (isIP(value) === 0) throw new UsageError(`"${value}" is not an IPv4 or IPv6 address`, flag);
  return value;
}
