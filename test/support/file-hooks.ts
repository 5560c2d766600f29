// A test file's own setup and teardown (root `before` and `after` hooks) as one pair whose
// teardown waits for the setup, pass or fail.
//
// Why not two plain hooks: node:test starts a file's root `before` hook at once, and its tests
// wait for it; but when --test-name-pattern filters out every test of the file, nothing waits,
// and the root `after` hooks run while `before` is still working. A plain `after` then finds
// nothing to stop, the setup finishes a moment later, and what it started (a controller's
// watches and metrics server, a child process) keeps the test process alive for good.
import { after, before } from 'node:test';

/**
 * Registers `setup` as a root `before` hook and `teardown` as a root `after` hook; `teardown` runs
 * once `setup` has settled (also when it failed: it may have started something before failing,
 * so teardown must cope with a partial setup, as a plain `after` hook must).
 */
export function beforeAndAfter(setup: () => Promise<void>, teardown: () => Promise<void>): void {
  let settled: Promise<unknown> = Promise.resolve();
  before(() => {
    const running = setup();
    settled = running.catch(() => undefined);
    return running;
  });
  after(async () => {
    await settled;
    await teardown();
  });
}
