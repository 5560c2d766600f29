// When should a credential be renewed? One small pure function with table tests
// (test/unit/operator/renewal.test.ts), in the spirit of cert-manager's pki.RenewalTime.
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import type * as CronParser from 'cron-parser';
import { ROTATION_SCHEDULE_MACROS, ROTATION_SCHEDULE_PATTERN } from './api/v1alpha1.js';
import { parseDuration } from './duration.js';

export type RenewalPolicy =
  | { kind: 'default' }
  | { kind: 'renewBefore'; renewBeforeMs: number }
  | { kind: 'percentage'; percentage: number }
  | { kind: 'schedule'; cron: string };

export interface RenewalInput {
  /** When the credential was issued (its lifetime starts here). */
  issuedAt: Date;
  /** When it stops being valid: issuedAt + validity, or earlier when the certificate expires first. */
  notAfter: Date;
  policy: RenewalPolicy;
  /**
   * In [0, 1): moves the renewal earlier by this fraction of min(2% of the lifetime, 5 minutes),
   * so a fleet of credentials issued in the same second does not renew in the same second. A
   * rotation schedule's occurrence is moved later instead (see renewalTime).
   * Deterministic per object (see jitterFraction) so that a recomputed renewal time is stable.
   */
  jitter?: number;
  /**
   * Seeds the `H` (hash) fields of a rotation schedule ("H H * * *": a time of day picked per
   * object). Without a seed cron-parser draws a new one on every parse, and the renewal time would
   * move on every reconcile. The object's uid.
   */
  scheduleSeed?: string;
}

/** Renewal when neither renewBefore nor a percentage is set: two thirds into the lifetime. */
export const DEFAULT_RENEW_FRACTION = 1 / 3;
/** With a rotation schedule, a credential is still renewed when this fraction of its lifetime remains. */
export const SCHEDULE_SAFETY_FRACTION = 0.1;
/**
 * The least time between two issuances of one DelegatedCredential, whatever its policy asks: a
 * minute, or half the lifetime when that is shorter (a 1m credential renews after 30s, so it is
 * always replaced before it expires). Without it a tenant could make a worker re-issue without
 * pause (validity 1m with renewBefore 59999ms, renewBeforePercentage 99, or a schedule that fires
 * every second): new keys, signatures (remote ones for keyless), a whole Secret write and a sidecar
 * reload each time. No fraction of the lifetime: a weekly credential rotated hourly is a fair ask.
 */
export const MIN_RENEWAL_INTERVAL_MS = 60_000;
const MAX_JITTER_MS = 5 * 60_000;
/** A rotation schedule's jitter is at most this fraction of the gap between its occurrence and the following one. */
const SCHEDULE_JITTER_GAP_FRACTION = 0.25;
const JITTER_LIFETIME_FRACTION = 0.02;

export class InvalidRenewalPolicyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidRenewalPolicyError';
  }
}

export function renewalTime(input: RenewalInput): Date {
  const start = input.issuedAt.getTime();
  const end = input.notAfter.getTime();
  const lifetime = Math.max(0, end - start);
  const lifetimeJitter = (input.jitter ?? 0) * Math.min(MAX_JITTER_MS, lifetime * JITTER_LIFETIME_FRACTION);
  let jitter = lifetimeJitter;
  let at: number;
  switch (input.policy.kind) {
    case 'default':
      at = end - lifetime * DEFAULT_RENEW_FRACTION;
      break;
    case 'renewBefore':
      // A credential cut short by the certificate's notAfter can be shorter than renewBefore:
      // then fall back to the default point rather than renewing immediately, forever.
      at = input.policy.renewBeforeMs < lifetime ? end - input.policy.renewBeforeMs : end - lifetime * DEFAULT_RENEW_FRACTION;
      break;
    case 'percentage':
      at = end - (lifetime * input.policy.percentage) / 100;
      break;
    case 'schedule': {
      const [nextAt, followingAt] = cronOccurrences(input.policy.cron, input.issuedAt, input.scheduleSeed, 2);
      const next = nextAt!.getTime();
      const safety = end - lifetime * SCHEDULE_SAFETY_FRACTION;
      // At most a quarter of the gap to the following occurrence: a jitter past it (every minute
      // with up to 5 minutes of jitter) would serve that one too and skip it.
      jitter = Math.min(lifetimeJitter, ((followingAt?.getTime() ?? next) - next) * SCHEDULE_JITTER_GAP_FRACTION);
      // The jitter comes after the scheduled time, never before it: an issue time before the
      // occurrence would have that same occurrence as its next one, and the credential would be
      // issued again (a minute apart, by the floor below) until the clock passed it. An occurrence
      // within 90% of the lifetime is served at it, the jitter cut at the 90% point: the fallback
      // below would come before it, and the occurrence would be served a second time.
      if (next <= safety) return new Date(Math.max(start + minRenewalInterval(lifetime), Math.floor(Math.min(next + jitter, safety))));
      at = safety;
      break;
    }
  }
  return new Date(Math.max(start + minRenewalInterval(lifetime), Math.floor(at - jitter)));
}

/** How long after its issue a credential of this lifetime is renewed at the earliest (see MIN_RENEWAL_INTERVAL_MS). */
export function minRenewalInterval(lifetimeMs: number): number {
  return Math.floor(Math.min(lifetimeMs / 2, MIN_RENEWAL_INTERVAL_MS));
}

/**
 * When the credentials issued together into one output Secret must be renewed: the earliest of
 * their renewal times, with the jitter of this object and issuance (its uid and issue time, so
 * the time computed right after issuing and the one recomputed from the Secret later agree).
 * The one place the reconciler (after issuing) and the triggers (on every reconcile) ask.
 */
export function credentialSetRenewalTime(input: { uid: string; issuedAt: Date; notAfters: readonly Date[]; policy: RenewalPolicy }): Date | undefined {
  if (input.notAfters.length === 0) return undefined;
  const jitter = jitterFraction(`${input.uid}/${input.issuedAt.toISOString()}`);
  return new Date(Math.min(...input.notAfters.map((notAfter) => renewalTime({ issuedAt: input.issuedAt, notAfter, policy: input.policy, jitter, scheduleSeed: input.uid }).getTime())));
}

/**
 * cron-parser, loaded on the first rotationSchedule: with luxon it costs a process 1.1 MiB of heap
 * and 3.5 MiB of RSS (bench/scripts/module-memory.mjs cron-parser), and the default policies need
 * neither (test/unit/operator/runtime-imports.test.ts).
 */
let cronModule: typeof CronParser | undefined;
const cronParser = (): typeof CronParser => (cronModule ??= createRequire(import.meta.url)('cron-parser') as typeof CronParser);

/** The first occurrence of `cron` (UTC) strictly after `after`, `H` fields seeded by `seed`; throws InvalidRenewalPolicyError. */
export function nextCronOccurrence(cron: string, after: Date, seed = ''): Date {
  return cronOccurrences(cron, after, seed, 1)[0]!;
}

/** The first `count` occurrences of `cron` (UTC) strictly after `after` (see nextCronOccurrence). */
function cronOccurrences(cron: string, after: Date, seed: string | undefined, count: 1 | 2): Date[] {
  // Loaded outside the try: a module that cannot load is a broken installation, not a bad spec.
  const { CronExpressionParser } = cronParser();
  try {
    const occurrences = CronExpressionParser.parse(cron, { currentDate: after, tz: 'UTC', strict: false, hashSeed: seed ?? '' });
    const first = occurrences.next().toDate();
    return count === 1 ? [first] : [first, occurrences.next().toDate()];
  } catch (cause) {
    const why = cause instanceof Error ? cause.message : String(cause);
    throw new InvalidRenewalPolicyError(`rotationSchedule ${JSON.stringify(cron)} is not a valid cron expression: ${why}`);
  }
}

/**
 * The policy a spec asks for; throws InvalidRenewalPolicyError (e.g. a bad cron string). `seed`
 * is the object's uid: a schedule's `H` fields are checked as they will be used.
 */
export function renewalPolicyOf(spec: { renewBefore?: string; renewBeforePercentage?: number; rotationSchedule?: string }, seed = ''): RenewalPolicy {
  if (spec.renewBefore !== undefined) {
    try {
      return { kind: 'renewBefore', renewBeforeMs: parseDuration(spec.renewBefore) };
    } catch (cause) {
      throw new InvalidRenewalPolicyError(`renewBefore: ${cause instanceof Error ? cause.message : String(cause)}`);
    }
  }
  if (spec.renewBeforePercentage !== undefined) return { kind: 'percentage', percentage: spec.renewBeforePercentage };
  if (spec.rotationSchedule !== undefined) {
    checkCronFields(spec.rotationSchedule);
    // cron-parser knows a macro only without the spaces (or a YAML block's newline) around it.
    const cron = spec.rotationSchedule.trim();
    nextCronOccurrence(cron, new Date(0), seed); // validate now, not at renewal time
    return { kind: 'schedule', cron };
  }
  return { kind: 'default' };
}

/**
 * Schedules are 5-field cron (minute hour day-of-month month day-of-week) or a macro such as
 * @daily, as in Kubernetes CronJobs. cron-parser also reads a leading seconds field and @secondly;
 * say what to write instead. The CRD refuses the same (v1alpha1.ts); this catches objects stored
 * before that rule.
 */
function checkCronFields(cron: string): void {
  if (ROTATION_SCHEDULE.test(cron)) return;
  const text = cron.trim();
  if (text.startsWith('@')) {
    throw new InvalidRenewalPolicyError(
      `rotationSchedule ${JSON.stringify(cron)}: the macros are ${ROTATION_SCHEDULE_MACROS.map((m) => `@${m}`).join(', ')} (lower case; schedules by the second are not supported); or write 5-field cron (minute hour day-of-month month day-of-week, e.g. "0 */6 * * *")`,
    );
  }
  throw new InvalidRenewalPolicyError(
    `rotationSchedule ${JSON.stringify(cron)} is not 5 fields of cron's characters (digits, names such as MON or JAN, * ? , / - # L H) separated by spaces or tabs (it has ${text.split(/[ \t]+/).length}); write 5-field cron (minute hour day-of-month month day-of-week, e.g. "0 */6 * * *"): a seconds field is not supported`,
  );
}

const ROTATION_SCHEDULE = new RegExp(ROTATION_SCHEDULE_PATTERN);

/** A stable number in [0, 1) for an object (e.g. its uid), so its jitter does not change between reconciles. */
export function jitterFraction(seed: string): number {
  return createHash('sha256').update(seed).digest().readUInt32BE(0) / 0x1_0000_0000;
}
