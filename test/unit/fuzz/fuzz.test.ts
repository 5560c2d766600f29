/**
 * A few seconds of each fuzz target (test/fuzz/), in the unit suite: the committed corpus
 * (seeds and regression inputs) is replayed, then mutated for FUZZ_TEST_SECONDS (default 3) per
 * target with a fresh seed (FUZZ_SEED to repeat one). A crash fails the test; its input is
 * written under test/fuzz/crashes/<target>/ and the summary line says how to replay it.
 * `make fuzz` runs the same targets for as long as it is given.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TARGETS } from '../../fuzz/protocol.js';
import { runTarget } from '../../fuzz/runner.js';

const seconds = Number(process.env.FUZZ_TEST_SECONDS ?? '3');
const seed = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);

void describe('fuzz targets (short run)', () => {
  for (const name of TARGETS) {
    void test(name, async (t) => {
      const result = await runTarget(name, { seconds, ...(seed !== undefined ? { seed } : {}) });
      t.diagnostic(result.summary);
      console.log(result.summary);
      assert.equal(result.crash, undefined, `${result.summary}\n${result.crash?.error ?? ''}`);
    });
  }
});
