import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Secret } from '@kubernetes/client-node';
import type { DelegatedCredential } from '../../../src/operator/api/v1alpha1.js';
import { X509Certificate, createPublicKey } from 'node:crypto';
import { OutputSecretForm, StringPool, cachedOutputSecret, cachedResource, checkPrivateKey } from '../../../src/operator/cache-form.js';
import { ANNOTATIONS, sha256Hex } from '../../../src/operator/output-secret.js';
import { issueCertificate } from '../../../src/cli/pki/dev-pki.js';
import { ecKeyWithForeignScalar, rsaKeyWithForeignPrivateParts } from '../../support/mismatched-keys.js';

const spkiOf = (pem: string): Buffer => createPublicKey(pem).export({ type: 'spki', format: 'der' });
const managedFields = [{ manager: 'dc-operator', operation: 'Update', fieldsV1: { 'f:data': {} } }];

void test('an output Secret is cached without managedFields or private keys: public values as stored, each private key as its check', async () => {
  const pool = new StringPool();
  const form = cachedOutputSecret(pool);
  const [a, b] = await Promise.all([issueCertificate({ commonName: 'a' }, 'ecdsa-p256'), issueCertificate({ commonName: 'b' }, 'ed25519')]);
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  const secret = (name: string, keyPem: string): V1Secret => ({
    metadata: {
      name,
      namespace: 'ns',
      resourceVersion: '1',
      labels: { app: 'x' },
      annotations: { [ANNOTATIONS.specHash]: 'h', [ANNOTATIONS.issuedAt]: '2026-01-01T00:00:00.000Z' },
      ownerReferences: [{ apiVersion: 'dc-operator.io/v1alpha1', kind: 'DelegatedCredential', name, uid: `uid-${name}`, controller: true }],
      managedFields,
    },
    data: { 'tls.crt': 'Q0hBSU4=', fallback: 'Tm9uZQ==', 'ecdsa_secp256r1_sha256.key': b64(keyPem), 'ecdsa_secp256r1_sha256.cred': `cred-${name}`, 'tls.key': b64(keyPem), 'keyless-client.key': b64('not a key') },
  });
  const ca = form(secret('a', a.key.privateKeyPem));
  const cb = form(secret('b', b.key.privateKeyPem));
  assert.equal((ca.metadata as { managedFields?: unknown }).managedFields, undefined);
  assert.deepEqual(ca.metadata.labels, { app: 'x' });
  assert.deepEqual(ca.metadata.ownerReferences, [{ apiVersion: 'dc-operator.io/v1alpha1', kind: 'DelegatedCredential', name: 'a', uid: 'uid-a', controller: true }]);
  assert.deepEqual(cb.data, { 'tls.crt': 'Q0hBSU4=', fallback: 'Tm9uZQ==', 'ecdsa_secp256r1_sha256.cred': 'cred-b' }, 'no private key among the cached values');
  assert.deepEqual([...cb.keys].sort(), ['ecdsa_secp256r1_sha256.cred', 'ecdsa_secp256r1_sha256.key', 'fallback', 'keyless-client.key', 'tls.crt', 'tls.key'], 'every key is still known by name');
  assert.deepEqual(ca.privateKeys['ecdsa_secp256r1_sha256.key'], { publicKeyFingerprint: sha256Hex(spkiOf(a.key.privateKeyPem)) });
  assert.deepEqual(cb.privateKeys['ecdsa_secp256r1_sha256.key'], { publicKeyFingerprint: sha256Hex(spkiOf(b.key.privateKeyPem)) });
  assert.deepEqual(ca.privateKeys['keyless-client.key'], { problem: 'does not parse' });
  assert.equal(ca.privateKeys['tls.key'], undefined, 'the certificate key: only its presence is kept');
  assert.ok(!JSON.stringify([ca, cb]).includes('PRIVATE KEY') && !JSON.stringify([ca, cb]).includes(b64(a.key.privateKeyPem).slice(0, 40)), 'no key material anywhere in the cached form');
  assert.equal(ca.metadata.annotations?.[ANNOTATIONS.specHash], cb.metadata.annotations?.[ANNOTATIONS.specHash]);
  assert.ok(pool.size <= 16, `shared strings only: ${pool.size}`);
});

void test('keys the issuer vouched for before its write are not read back, whichever copy comes first; a failed write leaves nothing', () => {
  const read: string[] = [];
  const form = new OutputSecretForm(new StringPool(), (pem) => (read.push(pem), Buffer.from(`public of ${pem}`)), 3);
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  const sent = (name: string, key: string): V1Secret => ({ metadata: { name, namespace: 'ns' }, data: { 'p256.key': b64(key), 'tls.crt': 'Q0hBSU4=' } });
  const written = (s: V1Secret, rv: string): V1Secret => ({ ...s, metadata: { ...s.metadata, resourceVersion: rv } });

  const a = sent('a', 'k1');
  form.vouch(a, { 'p256.key': { publicKeyFingerprint: 'vouched' } });
  assert.deepEqual(form.transform(written(a, '7')).privateKeys['p256.key'], { publicKeyFingerprint: 'vouched' }, 'the watch event, first');
  assert.deepEqual(form.transform(written(a, '7')).privateKeys['p256.key'], { publicKeyFingerprint: sha256Hex(Buffer.from('public of k1')) }, 'used once: a second copy is read');
  assert.deepEqual(read, ['k1']);

  const b = sent('b', 'k2');
  form.vouch(b, { 'p256.key': { publicKeyFingerprint: 'vouched' } });
  form.forget(b);
  assert.deepEqual(form.transform(written(b, '8')).privateKeys['p256.key'], { publicKeyFingerprint: sha256Hex(Buffer.from('public of k2')) }, 'a failed write is forgotten');

  for (const k of ['x1', 'x2', 'x3', 'x4']) form.vouch(sent(k, k), { 'p256.key': { publicKeyFingerprint: `v-${k}` } });
  assert.deepEqual(form.transform(sent('x1', 'x1')).privateKeys['p256.key'], { publicKeyFingerprint: sha256Hex(Buffer.from('public of x1')) }, 'bounded: the oldest went');
  assert.deepEqual(form.transform(sent('x4', 'x4')).privateKeys['p256.key'], { publicKeyFingerprint: 'v-x4' });
});

void test('a public key under a private key name is no private key', async () => {
  const c = await issueCertificate({ commonName: 'p' }, 'ecdsa-p256');
  const publicPem = createPublicKey(c.key.privateKeyPem).export({ type: 'spki', format: 'pem' }).toString();
  assert.deepEqual(checkPrivateKey(publicPem), { problem: 'does not parse' });
  assert.deepEqual(checkPrivateKey(c.key.privateKeyPem), { publicKeyFingerprint: sha256Hex(spkiOf(c.key.privateKeyPem)) });
});

void test('a key whose private part does not sign for the public key it carries is no usable key: its check is a problem, never a fingerprint', async () => {
  for (const keyType of ['ecdsa-p256', 'rsa-2048'] as const) {
    const c = await issueCertificate({ commonName: 'p' }, keyType);
    const swapped = keyType === 'rsa-2048' ? rsaKeyWithForeignPrivateParts(c.key.privateKeyPem) : ecKeyWithForeignScalar(c.key.privateKeyPem, 'sec1');
    assert.ok(new X509Certificate(c.pem).checkPrivateKey(swapped.key), `${keyType}: the public key it carries is the certificate's`);
    const check = checkPrivateKey(swapped.pem);
    assert.ok('problem' in check, `${keyType}: vouched for ${JSON.stringify(check)}`);
    assert.match(check.problem, /^does not pair with the public key it carries: its private part does not produce signatures that public key verifies/);
    const form = new OutputSecretForm(new StringPool());
    const stored = { metadata: { name: 's', resourceVersion: '1' }, data: { 'p256.key': Buffer.from(swapped.pem).toString('base64'), 'keyless-client.key': Buffer.from(swapped.pem).toString('base64') } };
    const cached = form.transform(stored);
    form.settle(cached);
    assert.deepEqual(cached.privateKeys['p256.key'], check);
    assert.deepEqual(cached.privateKeys['keyless-client.key'], check);
  }
});

void test('a relist of N output Secrets runs no pairwise key check; settling a Secret checks its keys once each, and a key that does not pair becomes a problem', () => {
  const paired: string[] = [];
  const form = new OutputSecretForm(new StringPool(), (pem) => Buffer.from(`public of ${pem}`), 256, (pem) => (paired.push(pem), !pem.startsWith('bad')));
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  const listed = Array.from({ length: 500 }, (_, i): V1Secret => ({
    metadata: { name: `s${i}`, namespace: 'ns', resourceVersion: '1' },
    data: { 'p256.key': b64(i === 7 ? 'bad k7' : `k${i}`), 'keyless-client.key': b64(`c${i}`), 'tls.crt': 'Q0hBSU4=' },
  }));
  const cached = listed.map(form.transform); // the informer's synchronous map
  assert.equal(paired.length, 0, 'no pairwise check during the relist');
  assert.deepEqual(cached[7]?.privateKeys['p256.key'], { publicKeyFingerprint: sha256Hex(Buffer.from('public of bad k7')) }, 'read: the public key it carries');

  const good = cached[3];
  const bad = cached[7];
  assert.ok(good && bad);
  form.settle(good);
  form.settle(good);
  assert.deepEqual(paired.sort(), ['c3', 'k3'], 'once per key, only the settled Secret');
  assert.deepEqual(good.privateKeys['p256.key'], { publicKeyFingerprint: sha256Hex(Buffer.from('public of k3')) });
  form.settle(bad);
  assert.deepEqual(bad.privateKeys['p256.key'], checkPrivateKey('bad k7', (pem) => Buffer.from(pem), () => false), "checkPrivateKey's problem");
  assert.match(JSON.stringify(bad.privateKeys['p256.key']), /does not pair with the public key it carries/);
  assert.deepEqual(bad.privateKeys['keyless-client.key'], { publicKeyFingerprint: sha256Hex(Buffer.from('public of c7')) });
  assert.equal(paired.length, 4);
});

void test('a DelegatedCredential is cached without managedFields; condition text is pooled except Ready messages', () => {
  const pool = new StringPool();
  const form = cachedResource<DelegatedCredential>(pool);
  const dc = (name: string): DelegatedCredential => ({
    apiVersion: 'dc-operator.io/v1alpha1',
    kind: 'DelegatedCredential',
    metadata: { name, namespace: 'ns', managedFields },
    spec: { certificateSecretRef: { name: 'web-tls' }, secretName: `${name}-out`, fallback: 'None', algorithms: ['ecdsa_secp256r1_sha256'], validity: '24h' },
    status: {
      conditions: [
        { type: 'Ready', status: 'True', reason: 'Issued', message: `credentials for ${name}`, lastTransitionTime: '2026-01-01T00:00:00Z' },
        { type: 'Issuing', status: 'False', reason: 'UpToDate', message: 'the credentials are current', lastTransitionTime: '2026-01-01T00:00:00Z' },
      ],
    },
  });
  const cached = [form(dc('a')), form(dc('b'))];
  for (const [i, c] of cached.entries()) {
    assert.equal(c.metadata.managedFields, undefined);
    assert.equal(c.status?.conditions?.[0]?.message, `credentials for ${['a', 'b'][i] ?? ''}`);
    assert.equal(c.status?.conditions?.[1]?.message, 'the credentials are current');
  }
  assert.equal(
    pool.size,
    11,
    "Issued, UpToDate, Issuing's message and the transition time; apiVersion, kind, namespace, the algorithm, the certificate Secret's name and the two condition types; not the per-object Ready messages",
  );
});

void test('the times a burst shares are pooled (transition, issue, expiry, creation), the jittered renewal time is not', () => {
  const pool = new StringPool();
  const form = cachedResource<DelegatedCredential>(pool);
  const t = '2026-01-01T00:00:00Z';
  const dc = (name: string, renewal: string): DelegatedCredential => ({
    apiVersion: 'dc-operator.io/v1alpha1',
    kind: 'DelegatedCredential',
    metadata: { name, namespace: 'ns', creationTimestamp: t as unknown as Date },
    spec: { certificateSecretRef: { name: 'web-tls' }, secretName: `${name}-out`, fallback: 'None', algorithms: ['ecdsa_secp256r1_sha256'], validity: '24h' },
    status: {
      conditions: [{ type: 'Ready', status: 'True', reason: 'Issued', message: `credentials for ${name}`, lastTransitionTime: t }],
      credentials: [{ algorithm: 'ecdsa_secp256r1_sha256', notAfter: '2026-01-02T00:00:00Z', publicKeyFingerprint: `fp-${name}` }],
      notAfter: '2026-01-02T00:00:00Z',
      lastIssuedTime: t,
      renewalTime: renewal,
    },
  });
  const [a, b] = [form(dc('a', '2026-01-01T16:00:01Z')), form(dc('b', '2026-01-01T16:03:17Z'))];
  assert.equal(pool.size, 9, 'Issued, the issue time, the expiry, and apiVersion, kind, namespace, the algorithm (spec and credential), the certificate Secret, Ready: the renewal times and fingerprints stay out');
  assert.deepEqual([a.status?.renewalTime, b.status?.renewalTime], ['2026-01-01T16:00:01Z', '2026-01-01T16:03:17Z']);
  assert.deepEqual([a.status?.lastIssuedTime, b.status?.credentials?.[0]?.notAfter, String(b.metadata.creationTimestamp)], [t, '2026-01-02T00:00:00Z', t]);
});

void test('the pool is bounded: full, it starts over rather than pinning what no object holds', () => {
  const pool = new StringPool(3);
  for (const s of ['a', 'b', 'c']) pool.of(s);
  assert.equal(pool.size, 3);
  assert.equal(pool.of('d'), 'd');
  assert.equal(pool.size, 1);
  assert.equal(pool.of('a'), 'a');
});
