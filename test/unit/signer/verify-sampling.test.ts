import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { STRICT_AFTER_BAD, VerificationSampler } from '../../../src/signer/verify-sampling.js';

/** One step of a table: what happens before the signature, and the connection it came over. */
type Step = { readonly on: number; readonly before?: 'failure' | 'bad' };

/** Runs the steps and returns which signatures were verified, as a string of V (verified) and . (not). */
function run(every: number, steps: readonly Step[]): string {
  const sampler = new VerificationSampler(every);
  return steps
    .map((s) => {
      if (s.before === 'failure') sampler.failure();
      if (s.before === 'bad') sampler.badSignature();
      return sampler.shouldVerify(s.on) ? 'V' : '.';
    })
    .join('');
}

const on = (connection: number, n: number): Step[] => Array.from({ length: n }, () => ({ on: connection }));

void describe('which key-server signatures the keyless signer verifies', () => {
  const table: ReadonlyArray<{ name: string; every: number; steps: Step[]; verified: string }> = [
    { name: 'N = 1 verifies every signature', every: 1, steps: on(1, 5), verified: 'VVVVV' },
    { name: 'the first on a connection, then one in N', every: 4, steps: on(1, 9), verified: 'V...V...V' },
    { name: 'a reconnect (new connection serial) is verified at once', every: 4, steps: [...on(1, 2), ...on(2, 3)], verified: 'V.V..' },
    {
      name: 'each connection of a pool is verified on its first signature, then the count is shared',
      every: 3,
      steps: [{ on: 1 }, { on: 2 }, { on: 1 }, { on: 2 }, { on: 1 }, { on: 3 }],
      verified: 'VV..VV',
    },
    { name: 'the signature after a failed one is verified', every: 10, steps: [...on(1, 3), { on: 1, before: 'failure' }, ...on(1, 2)], verified: 'V..V..' },
    { name: 'a new sampler (a bundle swap makes a new signer) starts by verifying', every: 100, steps: on(7, 1), verified: 'V' },
  ];
  for (const row of table) {
    void it(row.name, () => {
      assert.equal(run(row.every, row.steps), row.verified);
    });
  }

  void it(`verifies every signature for the next ${STRICT_AFTER_BAD} after a bad one, then samples again`, () => {
    const verified = run(8, [...on(1, 3), { on: 1, before: 'bad' }, ...on(1, STRICT_AFTER_BAD + 7)]);
    assert.equal(verified.slice(0, 3), 'V..');
    assert.equal(verified.slice(3, 3 + STRICT_AFTER_BAD), 'V'.repeat(STRICT_AFTER_BAD));
    assert.equal(verified.slice(3 + STRICT_AFTER_BAD), '.......V', 'sampling one in 8 resumes');
  });

  void it('remembers a bounded number of connections, and verifies a forgotten one again', () => {
    const sampler = new VerificationSampler(1000);
    for (let c = 1; c <= 200; c++) assert.equal(sampler.shouldVerify(c), true, `connection ${c} first signature`);
    assert.equal(sampler.shouldVerify(200), false, 'a recent connection is remembered');
    assert.equal(sampler.shouldVerify(1), true, 'the oldest connections were dropped, so verified again');
  });

  void it('refuses an N that is not a whole number of at least 1', () => {
    for (const n of [0, -1, 1.5, Number.NaN]) assert.throws(() => new VerificationSampler(n), /at least 1/);
  });
});
