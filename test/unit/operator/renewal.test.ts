import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatDuration, parseDuration, InvalidDurationError } from '../../../src/operator/duration.js';
import { credentialSetRenewalTime, InvalidRenewalPolicyError, jitterFraction, MIN_RENEWAL_INTERVAL_MS, minRenewalInterval, nextCronOccurrence, renewalPolicyOf, renewalTime, type RenewalPolicy } from '../../../src/operator/renewal.js';
import { ROTATION_SCHEDULE_MACROS, ROTATION_SCHEDULE_PATTERN } from '../../../src/operator/api/v1alpha1.js';

const H = 3_600_000;
const M = 60_000;

void test('parses Go duration strings into milliseconds', () => {
  const table: [string, number][] = [
    ['24h', 24 * H],
    ['90m', 90 * M],
    ['168h', 168 * H],
    ['1h30m', 90 * M],
    ['1.5h', 90 * M],
    ['2m30s', 150_000],
    ['500ms', 500],
    ['0s', 0],
  ];
  for (const [input, ms] of table) assert.equal(parseDuration(input), ms, input);
});

void test('rejects durations that are not Go durations, naming the input', () => {
  for (const input of ['', '24', 'h', '1d', '-1h', '1h 30m', '7 days']) {
    assert.throws(() => parseDuration(input), (e: unknown) => e instanceof InvalidDurationError && e.message.includes(JSON.stringify(input)), input);
  }
});

void test('formats milliseconds as a short Go-style duration', () => {
  assert.equal(formatDuration(90 * M), '1h30m');
  assert.equal(formatDuration(24 * H), '24h');
  assert.equal(formatDuration(61_000), '1m1s');
});

const t0 = new Date('2026-01-01T00:00:00Z');
const at = (ms: number) => new Date(t0.getTime() + ms);

void test('computes the renewal time for each policy (table)', () => {
  const table: { name: string; lifetime: number; policy: RenewalPolicy; expected: number }[] = [
    { name: 'default: two thirds into a 24h lifetime', lifetime: 24 * H, policy: { kind: 'default' }, expected: 16 * H },
    { name: 'renewBefore 8h of 24h', lifetime: 24 * H, policy: { kind: 'renewBefore', renewBeforeMs: 8 * H }, expected: 16 * H },
    { name: 'renewBefore 60s of 2m', lifetime: 2 * M, policy: { kind: 'renewBefore', renewBeforeMs: 60_000 }, expected: 60_000 },
    {
      name: 'renewBefore longer than a lifetime cut short by the certificate falls back to the default',
      lifetime: 6 * H,
      policy: { kind: 'renewBefore', renewBeforeMs: 8 * H },
      expected: 4 * H,
    },
    { name: 'percentage 25 of 24h', lifetime: 24 * H, policy: { kind: 'percentage', percentage: 25 }, expected: 18 * H },
    { name: 'percentage 99 renews almost at once', lifetime: 100 * M, policy: { kind: 'percentage', percentage: 99 }, expected: 1 * M },
    { name: 'schedule every 6 hours: next occurrence', lifetime: 24 * H, policy: { kind: 'schedule', cron: '0 */6 * * *' }, expected: 6 * H },
    {
      name: 'schedule that would let the credential expire is capped at 90% of the lifetime',
      lifetime: 10 * H,
      policy: { kind: 'schedule', cron: '0 0 * * 0' },
      expected: 9 * H,
    },
  ];
  for (const row of table) {
    const got = renewalTime({ issuedAt: t0, notAfter: at(row.lifetime), policy: row.policy });
    assert.equal(got.toISOString(), at(row.expected).toISOString(), row.name);
  }
});

/**
 * The floor between two issuances: at least a minute (half the lifetime for a credential shorter
 * than 2m), whatever the policy asks. Each row's `asked` is what the policy alone gives; before the
 * floor those rows re-issued at once or within a second.
 */
void test('never renews sooner than a minute (or half the lifetime) after the issue, whatever the policy (table)', () => {
  const lateInMinute = new Date(t0.getTime() + 59_000);
  const table: { name: string; issuedAt?: Date; lifetime: number; policy: RenewalPolicy; expected: number; jitter?: number }[] = [
    { name: 'validity 1m, renewBefore 59999ms (asked: 1 ms)', lifetime: 1 * M, policy: { kind: 'renewBefore', renewBeforeMs: 59_999 }, expected: 30_000 },
    { name: 'validity 1m, renewBeforePercentage 99 (asked: 600 ms)', lifetime: 1 * M, policy: { kind: 'percentage', percentage: 99 }, expected: 30_000 },
    { name: 'validity 10m, renewBeforePercentage 99 (asked: 6 s)', lifetime: 10 * M, policy: { kind: 'percentage', percentage: 99 }, expected: 1 * M },
    { name: 'validity 2m, renewBefore 110s (asked: 10 s)', lifetime: 2 * M, policy: { kind: 'renewBefore', renewBeforeMs: 110_000 }, expected: 1 * M },
    { name: 'every minute, issued 1 s before the minute (asked: 1 s)', issuedAt: lateInMinute, lifetime: 24 * H, policy: { kind: 'schedule', cron: '* * * * *' }, expected: 1 * M },
    { name: 'validity 1m, default policy with the largest jitter', lifetime: 1 * M, policy: { kind: 'default' }, expected: Math.floor(40_000 - 0.999 * 0.02 * M), jitter: 0.999 },
    { name: 'validity 1m, renewBefore 59s with the largest jitter stays on the floor', lifetime: 1 * M, policy: { kind: 'renewBefore', renewBeforeMs: 59_000 }, expected: 30_000, jitter: 0.999 },
    // Above the floor, the policy is honoured as asked: no fraction of the lifetime is imposed.
    { name: 'weekly credential rotated hourly', lifetime: 168 * H, policy: { kind: 'schedule', cron: '0 * * * *' }, expected: 1 * H },
    { name: 'weekly credential, renewBeforePercentage 99', lifetime: 168 * H, policy: { kind: 'percentage', percentage: 99 }, expected: 168 * H * 0.01 },
  ];
  for (const row of table) {
    const issuedAt = row.issuedAt ?? t0;
    const got = renewalTime({ issuedAt, notAfter: new Date(issuedAt.getTime() + row.lifetime), policy: row.policy, jitter: row.jitter });
    assert.equal(got.getTime() - issuedAt.getTime(), row.expected, row.name);
    assert.ok(got.getTime() - issuedAt.getTime() >= Math.min(MIN_RENEWAL_INTERVAL_MS, row.lifetime / 2), `${row.name}: on or above the floor`);
  }
  assert.equal(minRenewalInterval(1 * M), 30_000);
  assert.equal(minRenewalInterval(24 * H), MIN_RENEWAL_INTERVAL_MS);
});

void test('refuses a cron schedule with a seconds field, saying to write 5 fields', () => {
  for (const cron of ['* * * * * *', '*/5 * * * * *', '0 0 * * * *', '@secondly', ' @SECONDLY ', '* * * *']) {
    assert.throws(
      () => renewalPolicyOf({ rotationSchedule: cron }),
      (e: unknown) => e instanceof InvalidRenewalPolicyError && e.message.includes(JSON.stringify(cron)) && /5-field|write 5/.test(e.message),
      cron,
    );
  }
  for (const cron of ['0 */6 * * *', '* * * * *', '@hourly', '@daily', ' 0 0 * * 0 ', '0\t0 * * MON-FRI', '@weekdays', ' @daily', '@weekly\t', '0 0 * * *\n', '@daily\n']) {
    const policy = renewalPolicyOf({ rotationSchedule: cron });
    assert.equal(policy.kind, 'schedule', JSON.stringify(cron));
    // What the controller keeps is what cron-parser reads: a macro with blanks around it is not one.
    assert.doesNotThrow(() => renewalTime({ issuedAt: t0, notAfter: at(168 * H), policy }), JSON.stringify(cron));
  }
});

void test('refuses the macros cron-parser does not read (and upper case) and separators other than spaces and tabs, naming the macros it reads', () => {
  // The CRD's rule is the same pattern: these passed it before, then failed only in the controller.
  for (const cron of ['@midnight', '@reboot', '@every 1h', '@DAILY', '0\u00a00 * * * *']) {
    assert.throws(
      () => renewalPolicyOf({ rotationSchedule: cron }),
      (e: unknown) => e instanceof InvalidRenewalPolicyError && e.message.includes(JSON.stringify(cron)) && /5-field cron/.test(e.message) && (!cron.startsWith('@') || /@daily, @hourly/.test(e.message)),
      cron,
    );
  }
  const rule = new RegExp(ROTATION_SCHEDULE_PATTERN);
  for (const macro of ROTATION_SCHEDULE_MACROS) assert.doesNotThrow(() => nextCronOccurrence(`@${macro}`, t0), macro);
  assert.ok(rule.test('@hourly') && !rule.test('@midnight'));
});

void test('a schedule with hash fields (H H * * *) renews at the same time on every reconcile, and at different times for different objects', () => {
  const policy = renewalPolicyOf({ rotationSchedule: 'H H * * *' });
  const notAfters = [at(168 * H)];
  const times = (uid: string): number[] => [1, 2, 3, 4, 5].map(() => credentialSetRenewalTime({ uid, issuedAt: t0, notAfters, policy })!.getTime());
  assert.equal(new Set(times('uid-a')).size, 1, 'stable for one object');
  // Checked with the object's seed too: a day H may land on that does not exist is refused (or
  // not) the same way every time for one object, never at random between reconciles.
  for (const uid of ['uid-a', 'uid-b', 'uid-c']) {
    const verdicts = new Set([1, 2, 3, 4, 5, 6].map(() => { try { renewalPolicyOf({ rotationSchedule: '0 0 H(29-31) 2 *' }, uid); return 'ok'; } catch { return 'refused'; } }));
    assert.equal(verdicts.size, 1, uid);
  }
  const spread = new Set(['uid-a', 'uid-b', 'uid-c', 'uid-d', 'uid-e'].map((uid) => times(uid)[0]));
  assert.ok(spread.size > 1, 'spread across objects');
});

/**
 * What the controller does with a schedule: issue at the renewal time, then compute the next one
 * from that issue time. Each occurrence must be served by exactly one issuance, within the jitter
 * after it. Before, the jitter put the renewal before the occurrence (23:57:41 for midnight), whose
 * next occurrence was the same midnight: 2-5 issuances a minute apart around each one.
 */
void test('a rotation schedule issues exactly once per occurrence, for every object (table)', () => {
  const lifetime = 168 * H;
  const schedules: { cron: string; occurrences: number }[] = [
    { cron: '0 0 * * *', occurrences: 5 },
    { cron: '@daily', occurrences: 5 },
    { cron: '0 */6 * * *', occurrences: 12 },
    { cron: '30 * * * *', occurrences: 24 },
    { cron: 'H H * * *', occurrences: 5 },
    // Closer together than the jitter (5 minutes here): the jitter is cut to a quarter of the gap.
    { cron: '* * * * *', occurrences: 20 },
    { cron: '*/3 * * * *', occurrences: 10 },
    { cron: '*/5 * * * *', occurrences: 10 },
  ];
  const maxJitter = Math.min(5 * M, lifetime * 0.02);
  for (const { cron, occurrences } of schedules) {
    for (const uid of ['uid-a', 'uid-b', 'uid-c', 'uid-d', 'uid-e', 'uid-f']) {
      const policy = renewalPolicyOf({ rotationSchedule: cron }, uid);
      let issuedAt = t0;
      let expected = nextCronOccurrence(policy.kind === 'schedule' ? policy.cron : '', t0, uid);
      for (let i = 0; i < occurrences; i++) {
        const renewal = credentialSetRenewalTime({ uid, issuedAt, notAfters: [new Date(issuedAt.getTime() + lifetime)], policy })!;
        const row = `${cron} × ${uid} × issuance ${i + 1} (${renewal.toISOString()})`;
        assert.ok(renewal.getTime() >= expected.getTime() && renewal.getTime() <= expected.getTime() + maxJitter, `${row}: serves ${expected.toISOString()}`);
        issuedAt = renewal;
        expected = nextCronOccurrence(policy.kind === 'schedule' ? policy.cron : '', expected, uid);
      }
    }
  }
});

/**
 * The same chain of issuances over schedules × lifetimes × objects, the lifetimes around the 90%
 * fallback (0.9 × lifetime near the gap between occurrences). Each renewal is either for the next
 * occurrence (at it, within the jitter after it) or, only when that occurrence is past 90% of the
 * lifetime, a renewal for the lifetime; never later than 90% of the lifetime. Before, an occurrence
 * just inside 90% (daily, validity 26h41m40s) was served by a renewal before it (23:59:26) and
 * then again after it (00:00:56).
 */
void test('a rotation schedule near the 90% fallback: one issuance per occurrence, never past 90% (fuzz)', () => {
  const schedules: { cron: string; gap: number }[] = [
    { cron: '0 0 * * *', gap: 24 * H },
    { cron: 'H H * * *', gap: 24 * H },
    { cron: '0 */6 * * *', gap: 6 * H },
    { cron: '30 * * * *', gap: H },
    { cron: '0 9,17 * * *', gap: 8 * H },
    { cron: '*/15 * * * *', gap: 15 * M },
    { cron: '* * * * *', gap: M },
    { cron: '*/2 * * * *', gap: 2 * M },
    { cron: '*/5 * * * *', gap: 5 * M },
  ];
  const offsets = [-10 * M, -5 * M, -3 * M, -M, -30_000, -1000, 0, 1000, 30_000, M, 90_000, 3 * M, 5 * M, 10 * M];
  for (const { cron, gap } of schedules) {
    const lifetimes = [...offsets.map((d) => Math.round((gap + d) / 0.9)), 26 * H + 41 * M + 40_000, 168 * H].filter((l) => l > 2 * M);
    for (const lifetime of lifetimes) {
      const maxJitter = Math.min(5 * M, lifetime * 0.02);
      for (const uid of ['uid-a', 'uid-b', 'uid-c', 'uid-d', 'uid-e', 'uid-f']) {
        const policy = renewalPolicyOf({ rotationSchedule: cron }, uid);
        const spec = policy.kind === 'schedule' ? policy.cron : '';
        let issuedAt = t0;
        for (let i = 0; i < 6; i++) {
          const renewal = credentialSetRenewalTime({ uid, issuedAt, notAfters: [new Date(issuedAt.getTime() + lifetime)], policy })!;
          const next = nextCronOccurrence(spec, issuedAt, uid);
          const row = `${cron} × ${lifetime}ms × ${uid} × issued ${issuedAt.toISOString()} → ${renewal.toISOString()} (next ${next.toISOString()})`;
          assert.ok(renewal.getTime() - issuedAt.getTime() <= lifetime * 0.9, `${row}: later than 90% of the lifetime`);
          if (renewal.getTime() >= next.getTime()) {
            // Or the least interval between two issuances, after a renewal for the lifetime just before.
            const latest = Math.max(next.getTime() + maxJitter, issuedAt.getTime() + minRenewalInterval(lifetime));
            assert.ok(renewal.getTime() <= latest, `${row}: more than the jitter after the occurrence`);
            // No occurrence is skipped: the one after `next` is still ahead.
            assert.ok(nextCronOccurrence(spec, next, uid).getTime() > renewal.getTime(), `${row}: skipped the occurrence after it`);
          } else {
            assert.ok(next.getTime() > issuedAt.getTime() + lifetime * 0.9, `${row}: renewed before an occurrence that was within 90% of the lifetime`);
          }
          issuedAt = renewal;
        }
      }
    }
  }
});

void test('jitter moves renewal earlier by at most 2% of the lifetime and at most 5 minutes', () => {
  const base = renewalTime({ issuedAt: t0, notAfter: at(10 * M), policy: { kind: 'default' } });
  const jittered = renewalTime({ issuedAt: t0, notAfter: at(10 * M), policy: { kind: 'default' }, jitter: 0.5 });
  assert.equal(base.getTime() - jittered.getTime(), 6_000); // 0.5 × 2% × 10m
  const long = renewalTime({ issuedAt: t0, notAfter: at(168 * H), policy: { kind: 'default' }, jitter: 0.999 });
  const longBase = renewalTime({ issuedAt: t0, notAfter: at(168 * H), policy: { kind: 'default' } });
  assert.ok(longBase.getTime() - long.getTime() <= 5 * M);
});

void test('jitter fractions are stable per object and spread across objects', () => {
  assert.equal(jitterFraction('uid-1'), jitterFraction('uid-1'));
  const values = new Set(Array.from({ length: 100 }, (_, i) => Math.floor(jitterFraction(`uid-${i}`) * 10)));
  assert.ok(values.size >= 8, `only ${values.size} of 10 buckets used`);
  for (let i = 0; i < 100; i++) {
    const f = jitterFraction(`x${i}`);
    assert.ok(f >= 0 && f < 1);
  }
});

void test('derives the policy from the spec and rejects an invalid cron expression with its text', () => {
  assert.deepEqual(renewalPolicyOf({}), { kind: 'default' });
  assert.deepEqual(renewalPolicyOf({ renewBefore: '90s' }), { kind: 'renewBefore', renewBeforeMs: 90_000 });
  assert.deepEqual(renewalPolicyOf({ renewBeforePercentage: 30 }), { kind: 'percentage', percentage: 30 });
  assert.deepEqual(renewalPolicyOf({ rotationSchedule: '@daily' }), { kind: 'schedule', cron: '@daily' });
  assert.throws(
    () => renewalPolicyOf({ rotationSchedule: 'every tuesday' }),
    (e: unknown) => e instanceof InvalidRenewalPolicyError && e.message.includes('"every tuesday"'),
  );
});

/**
 * cert-manager's RenewalTime table, for a set of credentials issued together: every validity ×
 * every policy, each with several objects' jitter. The expected time without jitter is written
 * out per row; jitter may only move it earlier, by at most min(2% of the lifetime, 5 minutes),
 * and never before the issue time.
 */
void test('renewal time of an issued set: validity × policy × jitter bounds (table)', () => {
  const policies: Array<{ name: string; policy: RenewalPolicy; expected: (lifetime: number) => number }> = [
    { name: 'default', policy: { kind: 'default' }, expected: (l) => (l * 2) / 3 },
    { name: 'renewBefore 30m', policy: { kind: 'renewBefore', renewBeforeMs: 30 * M }, expected: (l) => (30 * M < l ? l - 30 * M : (l * 2) / 3) },
    { name: 'renewBeforePercentage 25', policy: { kind: 'percentage', percentage: 25 }, expected: (l) => l * 0.75 },
    { name: 'rotationSchedule every 6h', policy: { kind: 'schedule', cron: '0 */6 * * *' }, expected: (l) => Math.min(6 * H, l * 0.9) },
  ];
  const validities = [2 * M, 1 * H, 24 * H, 168 * H];
  const uids = ['uid-a', 'uid-b', 'uid-c', 'uid-d', 'uid-e'];
  for (const lifetime of validities) {
    for (const { name, policy, expected } of policies) {
      const unjittered = Math.floor(expected(lifetime));
      const maxJitter = Math.min(5 * M, lifetime * 0.02);
      for (const uid of uids) {
        const row = `${lifetime / M}m × ${name} × ${uid}`;
        // A second, longer credential of the same set (another algorithm) never renews first.
        const got = credentialSetRenewalTime({ uid, issuedAt: t0, notAfters: [at(lifetime), at(lifetime * 2)], policy });
        assert.ok(got, row);
        const offset = got.getTime() - t0.getTime();
        if (policy.kind === 'schedule' && 6 * H + maxJitter <= lifetime * 0.9) {
          // A schedule's occurrence is jittered later (renewing before it would re-issue for it again).
          assert.ok(offset >= unjittered && offset <= unjittered + maxJitter, `${row}: ${offset} not within the jitter after ${unjittered}`);
          continue;
        }
        assert.ok(offset <= unjittered, `${row}: ${offset} after ${unjittered}`);
        assert.ok(offset >= Math.max(0, unjittered - Math.ceil(maxJitter)), `${row}: ${offset} earlier than the jitter allows (${unjittered} - ${maxJitter})`);
        assert.equal(
          got.getTime(),
          renewalTime({ issuedAt: t0, notAfter: at(lifetime), policy, jitter: jitterFraction(`${uid}/${t0.toISOString()}`) }).getTime(),
          `${row}: the earliest credential's time, with this object's jitter`,
        );
      }
    }
  }
});

void test('renewal time of an issued set is stable for one object and issuance, and differs between objects', () => {
  const input = { issuedAt: t0, notAfters: [at(24 * H)], policy: { kind: 'default' } as RenewalPolicy };
  const a = credentialSetRenewalTime({ ...input, uid: 'uid-1' });
  assert.equal(a?.getTime(), credentialSetRenewalTime({ ...input, uid: 'uid-1' })?.getTime(), 'recomputed from the Secret, the same time');
  const spread = new Set(Array.from({ length: 20 }, (_, i) => credentialSetRenewalTime({ ...input, uid: `uid-${i}` })?.getTime()));
  assert.ok(spread.size >= 18, `20 objects issued in the same millisecond renew at ${spread.size} distinct times`);
  assert.equal(credentialSetRenewalTime({ ...input, uid: 'uid-1', notAfters: [] }), undefined, 'no credentials: no renewal time');
});
