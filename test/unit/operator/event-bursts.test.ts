import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { CoreV1Event } from '@kubernetes/client-node';
import { EVENT_BURST, EVENT_SUMMARY_AFTER_MS, EventBursts } from '../../../src/operator/event-bursts.js';
import { KubeEventRecorder } from '../../../src/operator/kube.js';
import { FakeClock } from '../../../src/operator/clock.js';
import type { DelegatedCredential } from '../../../src/operator/api/v1alpha1.js';

const silent = { debug() {}, info() {}, warn() {}, error() {} };

function dc(name: string, namespace = 'web'): DelegatedCredential {
  return { apiVersion: 'dc-operator.io/v1alpha1', kind: 'DelegatedCredential', metadata: { name, namespace, uid: `uid-${name}` }, spec: { certificateSecretRef: { name: 'tls' }, secretName: `${name}-out`, algorithms: ['ed25519'], validity: '24h' } } as DelegatedCredential;
}

void test('a bucket admits its burst, then one per refill, and sums the rest into one summary once quiet', () => {
  const b = new EventBursts<string>(3, 1000, 5000);
  const admitted = [0, 0, 0, 0, 0].map((_, i) => b.admit('web', 'Issued', i, `o${i}`));
  assert.deepEqual(admitted, [true, true, true, false, false]);
  assert.equal(b.admit('other', 'Issued', 5, 'x'), true, 'another namespace has its own bucket');
  assert.equal(b.admit('web', 'Other', 5, 'x'), true, 'another reason has its own bucket');
  assert.equal(b.admit('web', 'Issued', 1010, 'o5'), true, 'one token back after a refill period');
  assert.equal(b.admit('web', 'Issued', 1020, 'o6'), false);
  assert.deepEqual(b.due(3000), [], 'not quiet long enough');
  assert.ok(b.holding());
  const [summary, ...rest] = b.due(6020);
  assert.equal(rest.length, 0);
  assert.deepEqual(summary, { namespace: 'web', reason: 'Issued', count: 3, first: new Date(3), last: new Date(1020), object: 'o6' });
  assert.equal(b.holding(), false);
  assert.deepEqual(b.due(60_000), [], 'a summary is sent once');
});

void test('the recorder sends the first events of a burst, holds back the rest, then one summary with their count; warnings always go', () => {
  const clock = new FakeClock(new Date('2026-01-01T00:00:00Z'));
  const sent: CoreV1Event[] = [];
  const kube = { createEvent: (_namespace: string, body: CoreV1Event) => (sent.push(body), Promise.resolve(body)) };
  const recorder = new KubeEventRecorder(kube, clock, silent);
  const n = EVENT_BURST + 40;
  for (let i = 0; i < n; i++) recorder.record(dc(`dc-${i}`), 'Normal', 'Issued', `issued dc-${i}`);
  recorder.record(dc('bad'), 'Warning', 'KeyMismatch', 'the key does not belong');
  assert.equal(sent.length, EVENT_BURST + 1);
  assert.equal(sent.at(-1)?.reason, 'KeyMismatch');
  clock.advance(EVENT_SUMMARY_AFTER_MS);
  assert.equal(sent.length, EVENT_BURST + 2, 'one summary');
  const summary = sent.at(-1);
  assert.equal(summary?.reason, 'Issued');
  assert.equal(summary?.count, 40);
  assert.equal(summary?.involvedObject.name, `dc-${n - 1}`);
  assert.match(summary?.message ?? '', /Issued 40 more times in namespace web/);
  clock.advance(60_000);
  assert.equal(sent.length, EVENT_BURST + 2, 'nothing more');
});
