import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { validateDelegatedCredential } from '../../../src/tls/delegated/index.js';
import { FakeClock } from '../../../src/operator/clock.js';
import { SigningKeyCache } from '../../../src/operator/signing-keys.js';
import { tlsCrypto } from '../../../src/operator/crypto.js';
import { delegationCertificate, harness } from './fakes.js';
import { ReconcileFailure } from '../../../src/operator/failures.js';
import { ecKeyWithForeignScalar, rsaKeyWithForeignPrivateParts } from '../../support/mismatched-keys.js';

const NS = 'web';

function keyGets(calls: string[]): number {
  return calls.filter((c) => c === `get secret ${NS}/web-tls`).length;
}

async function setup() {
  const clock = new FakeClock(new Date());
  const signingKeys = new SigningKeyCache(clock);
  const h = harness(clock.now(), { signingKeys });
  const cert = await delegationCertificate();
  h.cluster.putTlsSecret(NS, 'web-tls', cert);
  return { h, signingKeys, clock, cert };
}

void test('a burst on one certificate reads its key once', async () => {
  const { h, signingKeys } = await setup();
  for (let i = 0; i < 5; i++) {
    h.cluster.putDelegatedCredential(NS, `dc-${i}`, { certificateSecretRef: { name: 'web-tls' }, secretName: `dc-${i}-secret` });
    assert.equal((await h.reconciler.reconcile(NS, `dc-${i}`)).kind, 'done');
  }
  assert.equal(keyGets(h.cluster.calls), 1);
  assert.equal(signingKeys.size(), 1);
  assert.equal(h.cluster.writes().filter((c) => c.startsWith('create secret')).length, 5);
});

void test('concurrent reconciles of a burst (the workers) share one read of the key, not one each', async () => {
  const { h, signingKeys } = await setup();
  for (let i = 0; i < 4; i++) h.cluster.putDelegatedCredential(NS, `dc-${i}`, { certificateSecretRef: { name: 'web-tls' }, secretName: `dc-${i}-secret` });
  const results = await Promise.all([0, 1, 2, 3].map((i) => h.reconciler.reconcile(NS, `dc-${i}`)));
  assert.deepEqual(results.map((r) => r.kind), ['done', 'done', 'done', 'done']);
  assert.equal(keyGets(h.cluster.calls), 1);
  assert.equal(signingKeys.size(), 1);
  assert.equal(h.cluster.writes().filter((c) => c.startsWith('create secret')).length, 4);
});

void test('a rotated certificate Secret (new resourceVersion) is read again, and its new key signs', async () => {
  const { h } = await setup();
  h.cluster.putDelegatedCredential(NS, 'a', { certificateSecretRef: { name: 'web-tls' }, secretName: 'a-secret' });
  await h.reconciler.reconcile(NS, 'a');
  const rotated = await delegationCertificate();
  h.cluster.putTlsSecret(NS, 'web-tls', rotated);
  h.cluster.putDelegatedCredential(NS, 'b', { certificateSecretRef: { name: 'web-tls' }, secretName: 'b-secret' });
  assert.equal((await h.reconciler.reconcile(NS, 'b')).kind, 'done');
  assert.equal(keyGets(h.cluster.calls), 2);
  const data = h.cluster.secrets.get(`${NS}/b-secret`)?.data ?? {};
  const leaf = new X509Certificate(rotated.pem);
  assert.doesNotThrow(() => validateDelegatedCredential(Buffer.from(data['ecdsa_secp256r1_sha256.cred'] ?? '', 'base64'), { certificate: leaf }));
});

void test('fallback CertificateKey reads the key Secret every time: the key PEM is never cached', async () => {
  const { h, signingKeys } = await setup();
  for (const name of ['a', 'b']) {
    h.cluster.putDelegatedCredential(NS, name, { certificateSecretRef: { name: 'web-tls' }, secretName: `${name}-secret`, fallback: 'CertificateKey' });
    assert.equal((await h.reconciler.reconcile(NS, name)).kind, 'done');
  }
  assert.equal(keyGets(h.cluster.calls), 2);
  assert.equal(signingKeys.size(), 0);
});

void test('the cache drops keys unused for the idle time, on forget, on a resourceVersion change, and beyond its bound', async () => {
  const clock = new FakeClock(new Date());
  const cache = new SigningKeyCache(clock, 1000, 2);
  const cert = await delegationCertificate();
  const value = { signer: tlsCrypto.keySigner(cert.key.privateKeyPem, 'test key', tlsCrypto.readCertificate(cert.pem, 'test')), certificate: tlsCrypto.readCertificate(cert.pem, 'test') };
  cache.put(NS, 'a', '1', value);
  assert.ok(cache.get(NS, 'a', '1'));
  clock.advance(1001);
  assert.equal(cache.get(NS, 'a', '1'), undefined, 'idle entries go');
  cache.put(NS, 'a', '1', value);
  assert.equal(cache.get(NS, 'a', '2'), undefined, 'another resourceVersion misses');
  assert.equal(cache.size(), 0, 'and drops the stale entry');
  cache.put(NS, 'a', '1', value);
  cache.forget(NS, 'a');
  assert.equal(cache.get(NS, 'a', '1'), undefined, 'forget drops');
  cache.put(NS, 'a', '1', value);
  cache.put(NS, 'b', '1', value);
  cache.get(NS, 'a', '1');
  cache.put(NS, 'c', '1', value);
  assert.equal(cache.size(), 2);
  assert.equal(cache.get(NS, 'b', '1'), undefined, 'the least recently used goes first');
  assert.ok(cache.get(NS, 'a', '1'));
  cache.put(NS, 'd', '', value);
  assert.equal(cache.get(NS, 'd', ''), undefined, 'no resourceVersion, no caching');
  cache.clear();
  assert.equal(cache.size(), 0);
});

void test('keySigner refuses a key that is not the certificate\'s (KeyMismatch), by its public key and by its private part, and says which', async () => {
  const cases = [
    { name: 'another certificate\'s key', keyType: 'ecdsa-p256' as const, key: async () => (await delegationCertificate()).key.privateKeyPem, says: /its public key is not the certificate \(sha256 [0-9a-f]{12}\)'s/ },
    { name: 'P-256, the certificate\'s public point beside another scalar (SEC1)', keyType: 'ecdsa-p256' as const, swap: (pem: string) => ecKeyWithForeignScalar(pem, 'sec1').pem, says: /its private part does not produce signatures/ },
    { name: 'P-256, the same in PKCS#8', keyType: 'ecdsa-p256' as const, swap: (pem: string) => ecKeyWithForeignScalar(pem, 'pkcs8').pem, says: /its private part does not produce signatures/ },
    { name: 'RSA-2048, the certificate\'s modulus beside another d, p, q', keyType: 'rsa-2048' as const, swap: (pem: string) => rsaKeyWithForeignPrivateParts(pem).pem, says: /its private part does not produce signatures/ },
  ];
  for (const c of cases) {
    const cert = await delegationCertificate({ keyType: c.keyType });
    const facts = tlsCrypto.readCertificate(cert.pem, 'test');
    const pem = c.swap ? c.swap(cert.key.privateKeyPem) : await c.key!();
    assert.throws(
      () => tlsCrypto.keySigner(pem, 'Secret ns/web tls.key', facts),
      (e: unknown) => e instanceof ReconcileFailure && e.reason === 'KeyMismatch' && c.says.test(e.message) && e.message.startsWith('Secret ns/web tls.key does not belong to'),
      c.name,
    );
    // The certificate's own key is accepted.
    assert.ok(tlsCrypto.keySigner(cert.key.privateKeyPem, 'Secret ns/web tls.key', facts), c.name);
  }
});
