import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { ApiClient } from '../../../src/operator/apiserver/client.js';
import { FakeClock } from '../../../src/operator/clock.js';
import { LeaderElector, missingLeaseNamespaceMessage } from '../../../src/operator/leader.js';
import type { Logger } from '../../../src/operator/ports.js';

// The apiserver's 404 on creating a Lease says "namespaces "x" not found" and nothing about the
// flag; the controller's line says which namespace, how to create it and which flag moves it.
// (test/integration/operator-leader.test.ts checks the controller logs it, once, on a real 404.)
void it('a missing Lease namespace is named, with the command that creates it and the flag that moves it', () => {
  assert.equal(
    missingLeaseNamespaceMessage('dc-system', 'dc-operator-controller'),
    'leader election: cannot create the Lease dc-system/dc-operator-controller: namespace "dc-system" does not exist. ' +
      'Create it (kubectl create namespace dc-system), or run with --operator-namespace set to the namespace the controller runs in ' +
      '(default: $POD_NAMESPACE, else dc-operator); retrying until it exists',
  );
});

/**
 * A Lease API that answers until `hang` is set, then never answers (until the request's signal is
 * aborted, or `timeOutHanging()` plays the client's request timeout), on a fake clock.
 */
function hangingLeaseApi() {
  const clock = new FakeClock(Date.parse('2026-01-01T00:00:00Z'));
  const state = { hang: false, delayMs: 0, aborted: 0, hanging: [] as (() => void)[], lease: undefined as Record<string, unknown> | undefined };
  const api = {
    request: (method: string, path: string, opts: { body?: unknown; signal?: AbortSignal } = {}): Promise<unknown> => {
      if (state.delayMs > 0) {
        // A slow but healthy apiserver: every answer after delayMs.
        const delay = state.delayMs;
        return new Promise((resolve, reject) => {
          clock.setTimer(delay, () => {
            state.delayMs = 0;
            api.request(method, path, opts).then(resolve, reject);
            state.delayMs = delay;
          });
          opts.signal?.addEventListener('abort', () => {
            state.aborted++;
            reject(new Error(`${method}: aborted`));
          });
        });
      }
      if (state.hang) {
        return new Promise((_resolve, reject) => {
          state.hanging.push(() => reject(new Error(`${method}: timed out`)));
          opts.signal?.addEventListener('abort', () => {
            state.aborted++;
            reject(new Error(`${method}: aborted`));
          });
        });
      }
      if (method === 'GET') return state.lease ? Promise.resolve(state.lease) : Promise.reject(Object.assign(new Error('not found'), { statusCode: 404 }));
      state.lease = { ...(opts.body as Record<string, unknown>), metadata: { name: 'l', namespace: 'ns', resourceVersion: String(Math.random()) } };
      return Promise.resolve(state.lease);
    },
  };
  // The same API through the shorthand methods (no signal: nothing to abort them with).
  const shorthand = {
    get: (path: string) => api.request('GET', path),
    post: (path: string, body: unknown) => api.request('POST', path, { body }),
    put: (path: string, body: unknown) => api.request('PUT', path, { body }),
  };
  const log = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined };
  const elector = new LeaderElector({ api: { ...shorthand, ...api } as unknown as ApiClient, namespace: 'ns', name: 'l', identity: 'me', clock, log: log as unknown as Logger, leaseDurationSeconds: 15, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 });
  const tick = async (ms: number): Promise<void> => {
    for (let i = 0; i < ms / 500; i++) {
      clock.advance(500);
      for (let j = 0; j < 5; j++) await new Promise((r) => setImmediate(r));
    }
  };
  const timeOutHanging = (): void => {
    for (const timeOut of state.hanging.splice(0)) timeOut();
  };
  return { state, elector, tick, timeOutHanging };
}

/**
 * Before, the renewal's GET and PUT (60 s request timeout each) were awaited whole and
 * renewDeadline was checked only after they returned: the old leader stayed leader (and kept
 * writing) long after a standby could take the lease.
 */
void it('a renewal that hangs is abandoned at renewDeadline: leadership is lost and the request aborted', async () => {
  const { state, elector, tick, timeOutHanging } = hangingLeaseApi();
  let stopped = 0;
  const done = elector.run(() => undefined, () => (stopped++, Promise.resolve()));
  await tick(500);
  assert.equal(elector.isLeader(), true, 'took the free lease');
  await tick(2_000);
  assert.equal(elector.isLeader(), true, 'renewed');
  state.hang = true;
  await tick(10_000);
  assert.equal(elector.isLeader(), false, 'not leader once renewDeadline passed without a renewal');
  assert.equal(stopped, 1, 'onStopped ran');
  assert.ok(state.aborted >= 1, 'the hanging request was aborted');
  state.hang = false;
  timeOutHanging(); // the client's request timeout, for the campaign's attempts
  const stop = elector.stop();
  await tick(4_000);
  await stop;
  await done;
});

/**
 * Before, the campaign's acquire had no deadline: a GET or PUT that hung took the client's 60 s
 * request timeout, and a PUT landing then made a second leader for ~10 s. Now it is aborted at
 * renewDeadline, like a renewal, and a later attempt takes the lease.
 */
void it('an acquire that hangs is abandoned at renewDeadline, then a later attempt leads', async () => {
  const { state, elector, tick, timeOutHanging } = hangingLeaseApi();
  state.hang = true;
  let started = 0;
  const done = elector.run(() => void started++, () => Promise.resolve());
  await tick(9_500);
  assert.equal(state.aborted, 0, 'not abandoned before renewDeadline');
  await tick(1_000);
  assert.equal(state.aborted, 1, 'the hanging acquire was aborted at renewDeadline');
  assert.equal(elector.isLeader(), false);
  state.hang = false;
  await tick(3_000);
  assert.equal(elector.isLeader(), true, 'a later attempt took the lease');
  assert.equal(started, 1);
  timeOutHanging();
  const stop = elector.stop();
  await tick(4_000);
  await stop;
  await done;
});

void it('a slow but healthy apiserver (3.5 s per request, an acquire of 7 s) keeps one leader: the renewal budget counts from the acquire\'s end', async () => {
  const { state, elector, tick } = hangingLeaseApi();
  state.delayMs = 3_500;
  let started = 0;
  let stopped = 0;
  const done = elector.run(() => void started++, () => (stopped++, Promise.resolve()));
  await tick(60_000);
  assert.equal(started, 1);
  assert.equal(stopped, 0);
  assert.equal(elector.isLeader(), true);
  const stop = elector.stop();
  await tick(10_000);
  await stop;
  await done;
});
