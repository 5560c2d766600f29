import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DelegatedCredential } from '../../../src/operator/api/v1alpha1.js';
import { issuanceSpecHash, type OutputView } from '../../../src/operator/output-secret.js';
import { needsIssuing, type TriggerInput } from '../../../src/operator/triggers.js';
import { setCondition } from '../../../src/operator/conditions.js';
import { desiredStatus, statusEqual } from '../../../src/operator/status.js';
import { leaseDecision } from '../../../src/operator/leader.js';

const now = new Date('2026-03-01T12:00:00Z');
const dc: DelegatedCredential = {
  apiVersion: 'dc-operator.io/v1alpha1',
  kind: 'DelegatedCredential',
  metadata: { name: 'web', namespace: 'ns', uid: 'u1', generation: 3 },
  spec: { certificateSecretRef: { name: 'tls' }, algorithms: ['ed25519'], validity: '24h', secretName: 'out', fallback: 'None' },
};
const certificate = { fingerprint: 'f'.repeat(64), chainPem: 'CHAIN' };

function current(overrides: Partial<Extract<OutputView, { exists: true }>> = {}): OutputView {
  return {
    exists: true,
    ownedByThis: true,
    certificateFingerprint: certificate.fingerprint,
    specHash: issuanceSpecHash(dc.spec),
    issuedAt: new Date(now.getTime() - 3600_000),
    chainPem: 'CHAIN',
    chainHoldsPrivateKey: false,
    missingKeys: [],
    extraAlgorithms: [],
    credentials: [{ algorithm: 'ed25519', notAfter: new Date(now.getTime() + 23 * 3600_000), publicKeyFingerprint: 'aa' }],
    problems: [],
    fallback: { value: 'None', address: undefined, caPem: undefined, clientCertPem: undefined, clientKey: undefined, hasCertificateKey: false },
    ...overrides,
  };
}
const input = (output: OutputView, at = now): TriggerInput => ({ dc, output, certificate, policy: { kind: 'default' }, now: at });

void test('nothing to do for a current output Secret', () => {
  assert.equal(needsIssuing(input(current())), null);
});

void test('each trigger fires with its reason, in chain order', () => {
  const table: [string, OutputView][] = [
    ['SecretMissing', { exists: false }],
    ['OutputHoldsPrivateKey', current({ chainHoldsPrivateKey: true, missingKeys: ['ed25519.key'] })],
    ['SecretMissingKeys', current({ missingKeys: ['ed25519.key'], extraAlgorithms: ['p256'] })],
    ['AlgorithmsChanged', current({ extraAlgorithms: ['ecdsa_secp256r1_sha256'], certificateFingerprint: 'other' })],
    ['CertificateChanged', current({ certificateFingerprint: 'other', specHash: 'old' })],
    ['CertificateChanged', current({ chainPem: 'ANOTHER CHAIN' })],
    ['SpecChanged', current({ specHash: 'old', problems: ['x'] })],
    ['InvalidCredential', current({ problems: ['ed25519.cred: bad signature'], issuedAt: new Date(0) })],
    ['Expiring', current({ issuedAt: new Date(now.getTime() - 20 * 3600_000), credentials: [{ algorithm: 'ed25519', notAfter: new Date(now.getTime() + 4 * 3600_000), publicKeyFingerprint: 'aa' }] })],
    ['Expiring', current({ issuedAt: undefined })],
  ];
  for (const [reason, output] of table) assert.equal(needsIssuing(input(output))?.reason, reason, reason);
});

void test('the expiring message names the renewal time', () => {
  const r = needsIssuing(input(current(), new Date(now.getTime() + 22 * 3600_000)));
  assert.equal(r?.reason, 'Expiring');
  assert.match(r?.message ?? '', /renewal time 2026-03-02T/);
});

void test('setCondition keeps lastTransitionTime when the status is unchanged and moves it on a flip', () => {
  const t1 = new Date('2026-01-01T00:00:00Z');
  const t2 = new Date('2026-01-01T01:00:00Z');
  let list = setCondition(undefined, { type: 'Ready', status: 'True', reason: 'Issued', message: 'a' }, 1, t1);
  list = setCondition(list, { type: 'Ready', status: 'True', reason: 'Issued', message: 'b' }, 2, t2);
  assert.equal(list[0]?.lastTransitionTime, '2026-01-01T00:00:00Z');
  assert.equal(list[0]?.message, 'b');
  assert.equal(list[0]?.observedGeneration, 2);
  list = setCondition(list, { type: 'Ready', status: 'False', reason: 'KeyMismatch', message: 'c' }, 2, t2);
  assert.equal(list[0]?.lastTransitionTime, '2026-01-01T01:00:00Z');
  assert.equal(list.length, 1);
});

void test('the same outcome twice gives an equal status, so nothing is written', () => {
  const outcome = { trigger: null, credentials: [{ algorithm: 'ed25519' as const, notAfter: new Date(now.getTime() + 3600_000), publicKeyFingerprint: 'ab' }], signer: 'tls.key of Secret tls', renewalTime: now };
  const first = desiredStatus(dc, outcome, now);
  const second = desiredStatus({ ...dc, status: first }, outcome, new Date(now.getTime() + 60_000));
  assert.ok(statusEqual(first, second));
  assert.equal(first.observedGeneration, 3);
});

void test('statusEqual: JSON equality whatever the key order, a key holding undefined being no key', () => {
  const cond = (message: string): Record<string, unknown> => ({ type: 'Ready', status: 'True', reason: 'Issued', message, lastTransitionTime: '2026-01-01T00:00:00Z', observedGeneration: 3 });
  const base = { observedGeneration: 3, conditions: [cond('a'), { ...cond('b'), type: 'Issuing' }], credentials: [{ algorithm: 'ed25519', notAfter: 'x' }] };
  const reordered = { credentials: [{ notAfter: 'x', algorithm: 'ed25519' }], conditions: [{ ...cond('a') }, { ...cond('b'), type: 'Issuing' }], observedGeneration: 3, lastIssuedAt: undefined };
  const rows: [string, unknown, unknown, boolean][] = [
    ['same content, other key order, an undefined key', base, reordered, true],
    ['both absent', undefined, undefined, true],
    ['absent and empty', undefined, {}, true],
    ['empty and one undefined key', {}, { renewalTime: undefined }, true],
    ['a message differs', base, { ...base, conditions: [cond('A'), base.conditions[1]] }, false],
    ['conditions in another order', base, { ...base, conditions: [base.conditions[1], base.conditions[0]] }, false],
    ['one more key', base, { ...base, renewalTime: 't' }, false],
    ['one key fewer', base, { conditions: base.conditions, credentials: base.credentials }, false],
    ['null against absent', { renewalTime: null }, {}, false],
    ['null against an object', { a: null }, { a: {} }, false],
    ['an array against an object with its indexes', { a: ['x'] }, { a: { 0: 'x' } }, false],
    ['a shorter array', { a: [1, 2] }, { a: [1] }, false],
    ['a number against its string', { a: 1 }, { a: '1' }, false],
    ['an undefined key against a null one', { a: undefined }, { a: null }, false],
  ];
  for (const [name, a, b, equal] of rows) {
    assert.equal(statusEqual(a as DelegatedCredential['status'], b as DelegatedCredential['status']), equal, name);
    assert.equal(statusEqual(b as DelegatedCredential['status'], a as DelegatedCredential['status']), equal, `${name} (swapped)`);
  }
});

void test('a signer failure sets SignerReady=False and Ready=False and keeps the existing credentials listed', () => {
  const withCreds = desiredStatus(dc, { trigger: null, credentials: [{ algorithm: 'ed25519', notAfter: now, publicKeyFingerprint: 'ab' }], signer: 's', renewalTime: now }, now);
  const failed = desiredStatus(
    { ...dc, status: withCreds },
    { trigger: { reason: 'Expiring', message: 'due' }, failure: { reason: 'SignerUnavailable', message: 'key server down' }, credentials: [{ algorithm: 'ed25519', notAfter: now, publicKeyFingerprint: 'ab' }] },
    now,
  );
  const byType = new Map(failed.conditions?.map((c) => [c.type, c]));
  assert.equal(byType.get('SignerReady')?.status, 'False');
  assert.equal(byType.get('Ready')?.reason, 'SignerUnavailable');
  assert.match(byType.get('Ready')?.message ?? '', /left in place/);
  assert.equal(byType.get('Issuing')?.status, 'True');
  assert.equal(failed.credentials?.length, 1);
});

void test('a lease is taken when free, renewed by its holder, and taken over only after a full lease duration unobserved change', () => {
  assert.equal(leaseDecision(undefined, 'a', undefined, 0), 'take');
  assert.equal(leaseDecision({ holderIdentity: '' }, 'a', undefined, 0), 'take');
  assert.equal(leaseDecision({ holderIdentity: 'a', renewTime: 't1' }, 'a', undefined, 0), 'renew');
  const held = { holderIdentity: 'b', renewTime: 't1', leaseDurationSeconds: 15 };
  assert.equal(leaseDecision(held, 'a', undefined, 1000), 'wait', 'first sight starts the clock');
  const seen = { fingerprint: 'b|t1', observedAt: 1000 };
  assert.equal(leaseDecision(held, 'a', seen, 15_999), 'wait');
  assert.equal(leaseDecision(held, 'a', seen, 16_000), 'take');
  assert.equal(leaseDecision({ ...held, renewTime: 't2' }, 'a', seen, 20_000), 'wait', 'the holder renewed');
});
