// spec.fallback: the pure policies as tables (what the bundle holds per fallback × signer, when the
// stored parts need rewriting, the key server's serving Secret), then the reconciler with a real
// KeylessIdentity over the fake cluster (CA bootstrapped into a Secret, client certificates issued).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { createServer } from 'node:net';
import type { V1Secret } from '@kubernetes/client-node';
import {
  chainsTo,
  fallbackCondition,
  fallbackProblem,
  planFallback,
  type FallbackPlan,
  type KeylessIdentitySnapshot,
  type SignerKind,
  type StoredFallback,
  type WantedFallback,
} from '../../../src/operator/fallback.js';
import { KeylessIdentity, decideServingSecret, keyServerNames } from '../../../src/operator/keyless-identity.js';
import { createCa, createClientCert, createServingCert } from '../../../src/pki/certs.js';
import type { Fallback } from '../../../src/operator/api/serving-bundle.js';
import type { FakeCluster} from './fakes.js';
import { delegationCertificate, harness, silentLog } from './fakes.js';
import { checkPrivateKey } from '../../../src/operator/cache-form.js';
import { ecKeyWithForeignScalar } from '../../support/mismatched-keys.js';

const HOUR = 3600_000;
const DAY = 24 * HOUR;
const t0 = new Date('2026-06-01T00:00:00Z');
const ADDRESS = 'dc-operator-keyserver.dc-operator.svc:2407';

const inCluster: SignerKind = { kind: 'in-cluster' };
const certKey: SignerKind = { kind: 'certificate-key' };
const remote = (healthy?: boolean): SignerKind => ({ kind: 'keyless', address: 'keys.example.net:2407', description: 'DelegationSigner web/hsm (keyless keys.example.net:2407)', healthy });
const identity = (over: Partial<KeylessIdentitySnapshot> = {}): KeylessIdentitySnapshot => ({
  caBundlePem: 'CA',
  keyServer: { address: ADDRESS, ready: true, message: 'answers' },
  trustDomain: 'cluster.local',
  ...over,
});
const withKey = { secretName: 'web/web-tls', hasKey: true };

void test('planFallback and FallbackReady, per fallback × signer × key server', () => {
  type Row = [string, Fallback, SignerKind, KeylessIdentitySnapshot | undefined, { hasKey: boolean }, FallbackPlan['kind'], string, string];
  const rows: Row[] = [
    // name, fallback, signer, identity, certificate Secret, plan, FallbackReady status, reason
    ['Keyless, certificate key, key server answers', 'Keyless', certKey, identity(), withKey, 'keyless', 'True', 'KeyServerReady'],
    ['Keyless, inCluster signer, key server answers', 'Keyless', inCluster, identity(), withKey, 'keyless', 'True', 'KeyServerReady'],
    ['Keyless, key server not probed yet', 'Keyless', inCluster, identity({ keyServer: { address: ADDRESS, ready: undefined, message: '' } }), withKey, 'keyless', 'Unknown', 'Probing'],
    ['Keyless, key server down', 'Keyless', inCluster, identity({ keyServer: { address: ADDRESS, ready: false, message: 'ECONNREFUSED' } }), withKey, 'keyless', 'False', 'KeyServerUnreachable'],
    ['Keyless, no key server configured', 'Keyless', certKey, identity({ keyServer: undefined }), withKey, 'unavailable', 'False', 'NoKeyServer'],
    ['Keyless, no keyless identity at all', 'Keyless', certKey, undefined, withKey, 'unavailable', 'False', 'NoKeyServer'],
    ['Keyless, CA not loaded', 'Keyless', certKey, identity({ caBundlePem: undefined, caProblem: 'forbidden' }), withKey, 'unavailable', 'False', 'KeylessCANotReady'],
    ['Keyless, remote signer (no in-cluster key server needed)', 'Keyless', remote(), identity({ keyServer: undefined }), withKey, 'keyless', 'True', 'KeyServerReady'],
    ['Keyless, remote signer down', 'Keyless', remote(false), identity(), withKey, 'keyless', 'False', 'KeyServerUnreachable'],
    ['None, any signer', 'None', inCluster, identity(), withKey, 'none', 'True', 'DisabledBySpec'],
    ['None, remote signer', 'None', remote(), undefined, withKey, 'none', 'True', 'DisabledBySpec'],
    ['CertificateKey, certificate key', 'CertificateKey', certKey, undefined, withKey, 'certificate-key', 'True', 'CertificateKeyInPod'],
    ['CertificateKey, no tls.key in the certificate Secret', 'CertificateKey', inCluster, undefined, { hasKey: false }, 'unavailable', 'False', 'CertificateKeyNotFound'],
    ['CertificateKey, remote signer: the operator has no key', 'CertificateKey', remote(), identity(), withKey, 'unavailable', 'False', 'CertificateKeyUnavailable'],
  ];
  for (const [name, fallback, signer, id, cert, kind, status, reason] of rows) {
    const plan = planFallback(fallback, signer, id, { secretName: 'web/web-tls', ...cert });
    assert.equal(plan.kind, kind, `${name}: plan`);
    const condition = fallbackCondition(plan, signer, id);
    assert.deepEqual([condition.type, condition.status, condition.reason], ['FallbackReady', status, reason], `${name}: condition`);
    assert.ok(condition.message.length > 20, `${name}: a message that says something`);
  }
  const refused = planFallback('CertificateKey', remote(), identity(), withKey);
  assert.ok(refused.kind === 'unavailable' && /operator never has it.*Keyless.*keys\.example\.net:2407/.test(refused.message), 'the refusal says why and what to use instead');
  const remotePlan = planFallback('Keyless', remote(), identity(), withKey);
  assert.deepEqual(remotePlan, { kind: 'keyless', address: 'keys.example.net:2407', source: 'remote' });
});

void test('fallbackProblem: which stored bundles are rewritten, and why', async () => {
  const ca = await createCa('test keyless CA', t0);
  const otherCa = await createCa('another CA', t0);
  const uri = 'spiffe://cluster.local/ns/web/dc/web-dc';
  const now = new Date(t0.getTime() + HOUR);
  const client = await createClientCert(ca, { uri, now: t0, notAfter: new Date(t0.getTime() + DAY) });
  const foreign = await createClientCert(otherCa, { uri, now: t0, notAfter: new Date(t0.getTime() + DAY) });
  const wrongName = await createClientCert(ca, { uri: 'spiffe://cluster.local/ns/shop/dc/web-dc', now: t0, notAfter: new Date(t0.getTime() + DAY) });
  const uid = '6a1f0e2c-3b4d-4e5f-8a9b-0c1d2e3f4a5b';
  const ofUid = await createClientCert(ca, { uri, uid, now: t0, notAfter: new Date(t0.getTime() + DAY) });
  const ofOldUid = await createClientCert(ca, { uri, uid: '0d9e8f7a-0000-4000-8000-000000000000', now: t0, notAfter: new Date(t0.getTime() + DAY) });
  const keyless: FallbackPlan = { kind: 'keyless', address: ADDRESS, source: 'in-cluster' };
  const wanted = (plan: FallbackPlan, fallback: Fallback = 'Keyless'): WantedFallback => ({ plan, fallback, identityUri: uri, caBundlePem: ca.certPem });
  const good: StoredFallback = { value: 'Keyless', address: ADDRESS, caPem: ca.certPem, clientCertPem: client.certPem, clientKey: checkPrivateKey(client.keyPem), hasCertificateKey: false };
  const nothing: StoredFallback = { value: 'None', address: undefined, caPem: undefined, clientCertPem: undefined, clientKey: undefined, hasCertificateKey: false };
  const renewal = new Date(t0.getTime() + 16 * HOUR);
  const rows: [string, StoredFallback, WantedFallback, RegExp | null, Date?][] = [
    ['a current keyless bundle', good, wanted(keyless), null],
    ['a CA bundle with more CAs than the stored one (rotation)', good, { ...wanted(keyless), caBundlePem: ca.certPem + otherCa.certPem }, /CA bundle changed/],
    ['another key server address', { ...good, address: 'old:2407' }, wanted(keyless), /address changed \(old:2407 → /],
    ['no keyless-ca.crt', { ...good, caPem: undefined }, wanted(keyless), /lacks keyless-ca\.crt/],
    ['no client certificate', { ...good, clientCertPem: undefined }, wanted(keyless), /no client certificate/],
    ['a client key of another certificate', { ...good, clientKey: checkPrivateKey(foreign.keyPem) }, wanted(keyless), /does not belong/],
    ['a client key whose private part was swapped (its public key kept)', { ...good, clientKey: checkPrivateKey(ecKeyWithForeignScalar(client.keyPem, 'pkcs8').pem) }, wanted(keyless), /^keyless-client\.key does not pair with the public key it carries: its private part does not produce signatures/],
    ['a client certificate of another CA', { ...good, clientCertPem: foreign.certPem, clientKey: checkPrivateKey(foreign.keyPem) }, wanted(keyless), /not issued by the operator's keyless CA/],
    ['a client certificate naming another DelegatedCredential', { ...good, clientCertPem: wrongName.certPem, clientKey: checkPrivateKey(wrongName.keyPem) }, wanted(keyless), /names spiffe:\/\/cluster\.local\/ns\/shop/],
    ['a client certificate of this DelegatedCredential\'s UID', { ...good, clientCertPem: ofUid.certPem, clientKey: checkPrivateKey(ofUid.keyPem) }, { ...wanted(keyless), uid }, null],
    ['a client certificate of a deleted namesake (another UID)', { ...good, clientCertPem: ofOldUid.certPem, clientKey: checkPrivateKey(ofOldUid.keyPem) }, { ...wanted(keyless), uid }, /names DelegatedCredential UID 0d9e8f7a-0000-4000-8000-000000000000, not 6a1f0e2c/],
    ['a client certificate without UID (issued before UIDs)', good, { ...wanted(keyless), uid }, /names DelegatedCredential UID \(none\), not 6a1f0e2c/],
    ['an expired client certificate', good, wanted(keyless), /expired at/, new Date(t0.getTime() + 2 * DAY)],
    ['a client certificate expiring before the next renewal', good, wanted(keyless), /before the next renewal/, now],
    ['laid out for another fallback', nothing, wanted(keyless), /laid out for fallback None/],
    ['None with leftover keyless parts', { ...good, value: 'None' }, wanted({ kind: 'none' }, 'None'), /keyless settings the fallback no longer uses/],
    ['None, clean', nothing, wanted({ kind: 'none' }, 'None'), null],
    ['a certificate key left behind (fallback changed away from CertificateKey)', { ...nothing, hasCertificateKey: true }, wanted({ kind: 'none' }, 'None'), /holds tls\.key.*removing the certificate key/],
    ['CertificateKey without tls.key', { ...nothing, value: 'CertificateKey' }, wanted({ kind: 'certificate-key' }, 'CertificateKey'), /lacks tls\.key/],
    ['CertificateKey, complete', { ...nothing, value: 'CertificateKey', hasCertificateKey: true }, wanted({ kind: 'certificate-key' }, 'CertificateKey'), null],
    ['Keyless unavailable (no key server): nothing keyless expected', { ...nothing, value: 'Keyless' }, wanted({ kind: 'unavailable', reason: 'NoKeyServer', message: '' }), null],
  ];
  for (const [name, stored, want, expected, at] of rows) {
    const problem = fallbackProblem(stored, want, at ?? now, name.includes('before the next renewal') ? new Date(t0.getTime() + 2 * DAY) : renewal);
    if (expected === null) assert.equal(problem, null, name);
    else assert.match(problem ?? '(none)', expected, name);
  }
});

void test('client certificates: URI SAN only, clientAuth, P-256, capped at the CA and never born expired', async () => {
  const ca = await createCa('test keyless CA', t0, 10 * DAY);
  const uri = 'spiffe://cluster.local/ns/web/dc/web-dc';
  const c = await createClientCert(ca, { uri, now: t0, notAfter: new Date(t0.getTime() + 30 * DAY) });
  const x = new X509Certificate(c.certPem);
  assert.equal(x.subjectAltName, `URI:${uri}`);
  assert.equal(x.keyUsage?.join(','), '1.3.6.1.5.5.7.3.2', 'clientAuth only');
  assert.equal(x.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  assert.equal(x.ca, false);
  assert.ok(chainsTo(x, ca.certPem));
  assert.equal(new Date(x.validTo).getTime(), Math.floor(ca.notAfter.getTime() / 1000) * 1000, 'capped at the CA notAfter');
  await assert.rejects(createClientCert(ca, { uri, now: t0, notAfter: t0 }), /expired at once/);
});

void test('key server names: the host and, for a Service, its short forms; an IP as an IP', () => {
  assert.deepEqual(keyServerNames(ADDRESS, 'ops'), {
    dnsNames: ['dc-operator-keyserver.dc-operator.svc', 'dc-operator-keyserver', 'dc-operator-keyserver.dc-operator', 'dc-operator-keyserver.dc-operator.svc.cluster.local'],
    ipAddresses: [],
  });
  assert.deepEqual(keyServerNames('dc-operator-keyserver:2407', 'ops').dnsNames, ['dc-operator-keyserver', 'dc-operator-keyserver.ops', 'dc-operator-keyserver.ops.svc', 'dc-operator-keyserver.ops.svc.cluster.local']);
  assert.deepEqual(keyServerNames('keys.example.net:2407', 'ops').dnsNames, ['keys.example.net'], 'not a Service name: no short forms');
  assert.deepEqual(keyServerNames('127.0.0.1:2407', 'ops'), { dnsNames: [], ipAddresses: ['127.0.0.1'] });
});

void test('decideServingSecret: issue, renew, update the CA bundle only, keep, or leave a Secret that is not ours', async () => {
  const ca = await createCa('test keyless CA', t0);
  const next = await createCa('next keyless CA', t0);
  const names = keyServerNames(ADDRESS, 'dc-operator');
  const serving = await createServingCert(ca, { ...names, now: t0, lifetimeMs: 90 * DAY });
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  const secret = (over: Record<string, string> = {}, labels: Record<string, string> = { 'app.kubernetes.io/managed-by': 'dc-operator' }): V1Secret => ({
    metadata: { name: 'dc-operator-keyserver-tls', namespace: 'dc-operator', labels },
    data: { 'tls.crt': b64(serving.certPem), 'tls.key': b64(serving.keyPem), 'ca.crt': b64(ca.certPem), ...over },
  });
  const at = new Date(t0.getTime() + DAY);
  const rows: [string, V1Secret | undefined, string, Date, string][] = [
    ['missing', undefined, ca.certPem, at, 'issue'],
    ['current', secret(), ca.certPem, at, 'keep'],
    ['a user-provided Secret (cert-manager)', secret({}, {}), ca.certPem, at, 'not-ours'],
    ['at 2/3 of its life', secret(), ca.certPem, new Date(t0.getTime() + 61 * DAY), 'issue'],
    ['the CA rotated (old one still in the bundle)', secret(), next.certPem + ca.certPem, at, 'update-ca'],
    ['the CA it chains to is gone from the bundle', secret(), next.certPem, at, 'issue'],
    ['a key of another certificate', secret({ 'tls.key': b64(next.keyPem) }), ca.certPem, at, 'issue'],
    ['its key with the private part swapped', secret({ 'tls.key': b64(ecKeyWithForeignScalar(serving.keyPem, 'sec1').pem) }), ca.certPem, at, 'issue'],
  ];
  for (const [name, s, bundle, now, action] of rows) assert.equal(decideServingSecret(s, bundle, names, now).action, action, name);
  assert.match(
    decideServingSecret(secret({ 'tls.key': b64(ecKeyWithForeignScalar(serving.keyPem, 'pkcs8').pem) }), ca.certPem, names, at).why,
    /^tls\.key does not belong to tls\.crt: its private part does not produce signatures tls\.crt's public key verifies/,
  );
  assert.match(decideServingSecret(secret({ 'tls.key': b64(next.keyPem) }), ca.certPem, names, at).why, /^tls\.key does not belong to tls\.crt: its public key is not tls\.crt's/);
  assert.equal(decideServingSecret(secret(), ca.certPem, keyServerNames('other.dc-operator.svc:2407', 'dc-operator'), at).action, 'issue', 'another address: new names');
});

/** A loopback port with nothing listening: the probe's connection is refused. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function keylessHarness(address: string | undefined) {
  let changes = 0;
  let identity: KeylessIdentity | undefined;
  const h = harness(new Date(), ({ cluster, clock }) => {
    identity = new KeylessIdentity({
      api: cluster,
      namespace: 'dc-operator',
      keyServerAddress: address,
      trustDomain: 'cluster.local',
      clock,
      log: silentLog,
      probeTimeoutMs: 1_000,
      onChange: () => void changes++,
    });
    return { keylessIdentity: identity };
  });
  assert.ok(identity);
  await identity.maintain();
  const cert = await delegationCertificate();
  h.cluster.putTlsSecret('web', 'web-tls', cert);
  return { ...h, identity, cert, changes: () => changes };
}

const data = (cluster: FakeCluster, name = 'web/web-dc-secret'): Record<string, string> => cluster.secrets.get(name)?.data ?? {};
const text = (d: Record<string, string>, key: string): string => Buffer.from(d[key] ?? '', 'base64').toString('utf8');
const conditionOf = (cluster: FakeCluster, type: string) => cluster.dcs.get('web/web-dc')?.status?.conditions?.find((c) => c.type === type);

void test('fallback Keyless with the in-cluster key server: the whole bundle in one write, an identity that chains to the CA, the CA and serving Secrets bootstrapped', async () => {
  const h = await keylessHarness(ADDRESS);
  const ca = h.cluster.secrets.get('dc-operator/dc-operator-keyless-ca');
  assert.deepEqual(Object.keys(ca?.data ?? {}).sort(), ['ca.crt', 'ca.key'], 'the CA Secret: ca.crt and ca.key');
  const serving = h.cluster.secrets.get('dc-operator/dc-operator-keyserver-tls');
  assert.deepEqual(Object.keys(serving?.data ?? {}).sort(), ['ca.crt', 'tls.crt', 'tls.key']);
  const servingCert = new X509Certificate(text(serving?.data ?? {}, 'tls.crt'));
  assert.match(servingCert.subjectAltName ?? '', /DNS:dc-operator-keyserver\.dc-operator\.svc\.cluster\.local/);

  h.cluster.putDelegatedCredential('web', 'web-dc', { certificateSecretRef: { name: 'web-tls' }, secretName: 'web-dc-secret' });
  assert.equal((await h.reconciler.reconcile('web', 'web-dc')).kind, 'done');
  assert.deepEqual(h.cluster.writes().filter((w) => w.includes('web-dc-secret')), ['create secret web/web-dc-secret'], 'one write');
  const d = data(h.cluster);
  assert.deepEqual(Object.keys(d).sort(), ['ecdsa_secp256r1_sha256.cred', 'ecdsa_secp256r1_sha256.key', 'fallback', 'keyless-ca.crt', 'keyless-client.crt', 'keyless-client.key', 'keyless.address', 'tls.crt']);
  assert.equal(text(d, 'fallback'), 'Keyless');
  assert.equal(text(d, 'keyless.address'), ADDRESS);
  assert.equal(text(d, 'keyless-ca.crt'), text(ca?.data ?? {}, 'ca.crt'));
  const client = new X509Certificate(text(d, 'keyless-client.crt'));
  assert.equal(client.subjectAltName, 'URI:spiffe://cluster.local/ns/web/dc/web-dc');
  assert.ok(chainsTo(client, text(d, 'keyless-ca.crt')), 'chains to keyless-ca.crt');
  const notAfter = new Date(h.cluster.dcs.get('web/web-dc')?.status?.notAfter ?? 0);
  assert.ok(new Date(client.validTo).getTime() <= notAfter.getTime() + 1000, 'no longer than the credentials');
  assert.ok(!Object.values(d).some((v) => Buffer.from(v, 'base64').toString().includes(h.cert.key.privateKeyPem.split('\n')[1] ?? 'x')), 'no certificate key');
  // Not probed yet: Unknown; the status names the key server.
  assert.equal(conditionOf(h.cluster, 'FallbackReady')?.reason, 'Probing');
  assert.equal(h.cluster.dcs.get('web/web-dc')?.status?.keyServer, ADDRESS);

  const writes = h.cluster.writes().length;
  await h.reconciler.reconcile('web', 'web-dc');
  assert.equal(h.cluster.writes().length, writes, 'a second reconcile writes nothing');

  // A missing client certificate is re-issued (the whole bundle, in one replace).
  const stored = h.cluster.secrets.get('web/web-dc-secret');
  assert.ok(stored?.data);
  delete stored.data['keyless-client.crt'];
  await h.reconciler.reconcile('web', 'web-dc');
  assert.ok(data(h.cluster)['keyless-client.crt'], 'the client certificate is back');
  assert.equal(h.cluster.dcs.get('web/web-dc')?.status?.conditions?.find((c) => c.type === 'Issuing')?.reason, 'UpToDate');
});

void test('the key server probe: one ping for all, FallbackReady=False KeyServerUnreachable with the error, SignerReady and Ready say it, status only', async () => {
  const address = `127.0.0.1:${await closedPort()}`;
  const h = await keylessHarness(address);
  h.cluster.putDelegatedCredential('web', 'web-dc', { certificateSecretRef: { name: 'web-tls' }, secretName: 'web-dc-secret' });
  await h.reconciler.reconcile('web', 'web-dc');
  await h.identity.probe();
  assert.equal(h.changes(), 2, 'the CA appeared once, the readiness changed once');
  assert.equal(h.identity.snapshot().keyServer?.ready, false);
  const before = h.cluster.writes().filter((w) => w.includes('secret')).length;
  await h.reconciler.reconcile('web', 'web-dc');
  assert.equal(h.cluster.writes().filter((w) => w.includes('secret')).length, before, 'no Secret write for a readiness change');
  const fallback = conditionOf(h.cluster, 'FallbackReady');
  assert.equal(fallback?.status, 'False');
  assert.equal(fallback?.reason, 'KeyServerUnreachable');
  assert.match(fallback?.message ?? '', new RegExp(`key server ${address.replace('.', '\\.')}: .*(ECONNREFUSED|refused|failed)`));
  assert.match(conditionOf(h.cluster, 'SignerReady')?.message ?? '', /cannot pull from the key server/);
  assert.equal(conditionOf(h.cluster, 'Ready')?.status, 'True', 'DC clients are still served');
  assert.match(conditionOf(h.cluster, 'Ready')?.message ?? '', /fallback Keyless not ready \(KeyServerUnreachable\)/);
  await h.identity.probe();
  assert.equal(h.changes(), 2, 'the same failure again changes nothing');
  await h.identity.stop();
});

void test('fallback None: DC clients only, no keyless parts; CertificateKey: tls.key copied with a warning; back to Keyless removes it', async () => {
  const h = await keylessHarness(ADDRESS);
  h.cluster.putDelegatedCredential('web', 'web-dc', { certificateSecretRef: { name: 'web-tls' }, secretName: 'web-dc-secret', fallback: 'None' });
  await h.reconciler.reconcile('web', 'web-dc');
  assert.deepEqual(Object.keys(data(h.cluster)).sort(), ['ecdsa_secp256r1_sha256.cred', 'ecdsa_secp256r1_sha256.key', 'fallback', 'tls.crt']);
  assert.equal(text(data(h.cluster), 'fallback'), 'None');
  assert.deepEqual([conditionOf(h.cluster, 'FallbackReady')?.status, conditionOf(h.cluster, 'FallbackReady')?.reason], ['True', 'DisabledBySpec']);

  h.cluster.putDelegatedCredential('web', 'web-dc', { certificateSecretRef: { name: 'web-tls' }, secretName: 'web-dc-secret', fallback: 'CertificateKey' }, 2);
  await h.reconciler.reconcile('web', 'web-dc');
  const d = data(h.cluster);
  assert.deepEqual(Object.keys(d).sort(), ['ecdsa_secp256r1_sha256.cred', 'ecdsa_secp256r1_sha256.key', 'fallback', 'tls.crt', 'tls.key']);
  assert.equal(text(d, 'tls.key'), h.cert.key.privateKeyPem, 'the certificate key, as the certificate Secret holds it');
  assert.ok(!text(d, 'tls.crt').includes('PRIVATE KEY'), 'tls.crt never holds a key');
  assert.deepEqual([conditionOf(h.cluster, 'FallbackReady')?.status, conditionOf(h.cluster, 'FallbackReady')?.reason], ['True', 'CertificateKeyInPod']);
  assert.ok(h.events.events.some((e) => e.type === 'Warning' && e.reason === 'CertificateKeyInPod'), 'a Warning event');

  h.cluster.putDelegatedCredential('web', 'web-dc', { certificateSecretRef: { name: 'web-tls' }, secretName: 'web-dc-secret', fallback: 'Keyless' }, 3);
  await h.reconciler.reconcile('web', 'web-dc');
  assert.ok(!('tls.key' in data(h.cluster)), 'the certificate key is gone');
  await h.reconciler.reconcile('web', 'web-dc'); // the requeue after the key's removal issues the Keyless bundle
  assert.ok(!('tls.key' in data(h.cluster)));
  assert.ok('keyless-client.crt' in data(h.cluster));
  assert.equal(text(data(h.cluster), 'fallback'), 'Keyless');
});

void test('leaving CertificateKey removes tls.key at once, even when issuance is blocked (the certificate Secret is gone)', async () => {
  const h = await keylessHarness(ADDRESS);
  h.cluster.putDelegatedCredential('web', 'web-dc', { certificateSecretRef: { name: 'web-tls' }, secretName: 'web-dc-secret', fallback: 'CertificateKey' });
  await h.reconciler.reconcile('web', 'web-dc');
  assert.ok('tls.key' in data(h.cluster), 'the opt-in copied the key');
  const credential = text(data(h.cluster), 'ecdsa_secp256r1_sha256.cred');

  h.cluster.secrets.delete('web/web-tls');
  h.cluster.putDelegatedCredential('web', 'web-dc', { certificateSecretRef: { name: 'web-tls' }, secretName: 'web-dc-secret', fallback: 'Keyless' }, 2);
  await h.reconciler.reconcile('web', 'web-dc');
  const d = data(h.cluster);
  assert.ok(!('tls.key' in d), 'the certificate key is gone although nothing can be issued');
  assert.equal(text(d, 'fallback'), 'None', 'the sidecar takes the version without the key');
  assert.equal(text(d, 'ecdsa_secp256r1_sha256.cred'), credential, 'the working DC is kept');
});

void test('fallback CertificateKey with a certificate Secret that has no tls.key: DCs issued, FallbackReady=False, no rewrite loop', async () => {
  const h = await keylessHarness(ADDRESS);
  h.cluster.putTlsSecret('web', 'web-tls', h.cert, null);
  h.cluster.putDelegatedCredential('web', 'web-dc', {
    certificateSecretRef: { name: 'web-tls' },
    secretName: 'web-dc-secret',
    fallback: 'CertificateKey',
    signerRef: { kind: 'DelegationSigner', name: 'keys' },
  });
  h.cluster.signers.set('DelegationSigner/web/keys', {
    apiVersion: 'dc-operator.io/v1alpha1',
    kind: 'DelegationSigner',
    metadata: { name: 'keys', namespace: 'web', uid: 's1' },
    spec: { inCluster: { keySecretRef: { name: 'signer-key', key: 'tls.key' } } },
  });
  h.cluster.secrets.set('web/signer-key', { metadata: { name: 'signer-key', namespace: 'web', resourceVersion: '1' }, data: { 'tls.key': Buffer.from(h.cert.key.privateKeyPem).toString('base64') } });
  await h.reconciler.reconcile('web', 'web-dc');
  assert.ok(!('tls.key' in data(h.cluster)), 'no key copied from anywhere else');
  assert.deepEqual([conditionOf(h.cluster, 'FallbackReady')?.status, conditionOf(h.cluster, 'FallbackReady')?.reason], ['False', 'CertificateKeyNotFound']);
  const writes = h.cluster.writes().length;
  await h.reconciler.reconcile('web', 'web-dc');
  assert.equal(h.cluster.writes().length, writes);
});

void test('a rotated CA: the bundle carries old and new, and every Keyless bundle is rewritten with it', async () => {
  const h = await keylessHarness(ADDRESS);
  h.cluster.putDelegatedCredential('web', 'web-dc', { certificateSecretRef: { name: 'web-tls' }, secretName: 'web-dc-secret' });
  await h.reconciler.reconcile('web', 'web-dc');
  const oldBundle = text(data(h.cluster), 'keyless-ca.crt');
  const stored = h.cluster.secrets.get('dc-operator/dc-operator-keyless-ca');
  assert.ok(stored?.data);
  // The CA is due: rewind its Secret to one made 300 days ago (rotation at 2/3 of 365 days).
  const aged = await createCa('dc-operator keyless CA', new Date(h.clock.now().getTime() - 300 * DAY));
  stored.data = { 'ca.crt': Buffer.from(aged.certPem).toString('base64'), 'ca.key': Buffer.from(aged.keyPem).toString('base64') };
  await h.identity.maintain();
  const bundle = h.identity.snapshot().caBundlePem ?? '';
  assert.equal((bundle.match(/BEGIN CERTIFICATE/g) ?? []).length, 2, 'old and new CA during the overlap');
  assert.ok(bundle.endsWith(aged.certPem), 'the previous CA stays, after the new one');
  assert.equal(text(h.cluster.secrets.get('dc-operator/dc-operator-keyserver-tls')?.data ?? {}, 'ca.crt'), bundle, 'the key server trusts both');
  await h.reconciler.reconcile('web', 'web-dc');
  assert.notEqual(text(data(h.cluster), 'keyless-ca.crt'), oldBundle);
  assert.equal(text(data(h.cluster), 'keyless-ca.crt'), bundle);
  assert.ok(chainsTo(new X509Certificate(text(data(h.cluster), 'keyless-client.crt')), bundle));
});
