import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { validateDelegatedCredential } from '../../../src/tls/delegated/index.js';
import { ANNOTATIONS, OUTPUT_SECRET_TYPE } from '../../../src/operator/output-secret.js';
import type { DelegatedCredential } from '../../../src/operator/api/v1alpha1.js';
import type { ClusterDelegationSignerSpec } from '../../../src/operator/api/v1alpha1.js';
import type { SignerHealth } from '../../../src/operator/keyless.js';
import { delegationCertificate, harness, silentLog, type FakeCluster, type Harness } from './fakes.js';
import { Reconciler } from '../../../src/operator/reconciler.js';
import { tlsCrypto } from '../../../src/operator/crypto.js';
import { SigningKeyCache } from '../../../src/operator/signing-keys.js';
import type { CertificateLookup, Listers } from '../../../src/operator/ports.js';
import { ecKeyWithForeignScalar } from '../../support/mismatched-keys.js';
import { KeyUsage, generateKeyPair, issueCertificate, type IssuedCertificate } from '../../../src/cli/pki/dev-pki.js';

const NS = 'web';

function dcOf(h: Harness, name = 'web-dc'): DelegatedCredential {
  const dc = h.cluster.dcs.get(`${NS}/${name}`);
  assert.ok(dc, 'the DelegatedCredential exists');
  return dc;
}

function condition(dc: DelegatedCredential, type: string) {
  return dc.status?.conditions?.find((c) => c.type === type);
}

function outputData(h: Harness, name = 'web-dc-secret'): Record<string, string> {
  const s = h.cluster.secrets.get(`${NS}/${name}`);
  assert.ok(s?.data, 'the output Secret exists');
  return s.data;
}

async function ready(spec: Partial<DelegatedCredential['spec']> = {}): Promise<Harness & { certPem: string }> {
  const h = harness(new Date());
  const cert = await delegationCertificate();
  h.cluster.putTlsSecret(NS, 'web-tls', cert);
  h.cluster.putDelegatedCredential(NS, 'web-dc', { certificateSecretRef: { name: 'web-tls' }, secretName: 'web-dc-secret', ...spec });
  const result = await h.reconciler.reconcile(NS, 'web-dc');
  assert.equal(result.kind, 'done');
  return { ...h, certPem: cert.pem };
}

void test('issues one credential per algorithm into a new Secret that verifies against the certificate', async () => {
  const h = await ready({ algorithms: ['ed25519', 'ecdsa_secp256r1_sha256', 'ecdsa_secp384r1_sha384'] });
  const secret = h.cluster.secrets.get(`${NS}/web-dc-secret`);
  assert.equal(secret?.type, OUTPUT_SECRET_TYPE);
  assert.equal(secret?.metadata?.ownerReferences?.[0]?.uid, 'uid-web-dc');
  assert.equal(secret?.metadata?.labels?.['app.kubernetes.io/managed-by'], 'dc-operator');
  const data = outputData(h);
  assert.deepEqual(Object.keys(data).sort(), [
    'ecdsa_secp256r1_sha256.cred', 'ecdsa_secp256r1_sha256.key',
    'ecdsa_secp384r1_sha384.cred', 'ecdsa_secp384r1_sha384.key',
    'ed25519.cred', 'ed25519.key',
    'fallback', 'tls.crt',
  ]);
  const leaf = new X509Certificate(Buffer.from(data['tls.crt'] ?? '', 'base64'));
  for (const algorithm of ['ed25519', 'ecdsa_secp256r1_sha256', 'ecdsa_secp384r1_sha384']) {
    const verified = validateDelegatedCredential(Buffer.from(data[`${algorithm}.cred`] ?? '', 'base64'), { certificate: leaf });
    const validityMs = verified.expiresAt.getTime() - h.clock.now().getTime();
    assert.ok(validityMs > 23.9 * 3600_000 && validityMs <= 24 * 3600_000, `${algorithm} valid for 24h`);
  }
  const dc = dcOf(h);
  assert.equal(condition(dc, 'Ready')?.status, 'True');
  assert.equal(condition(dc, 'SignerReady')?.status, 'True');
  assert.equal(condition(dc, 'Issuing')?.status, 'False');
  assert.equal(dc.status?.credentials?.length, 3);
  assert.equal(dc.status?.observedGeneration, 1);
  assert.ok(dc.status?.renewalTime);
  // The default fallback is Keyless, and this reconciler has no key server: DCs issued, fallback not ready.
  assert.equal(condition(dc, 'FallbackReady')?.status, 'False');
  assert.equal(condition(dc, 'FallbackReady')?.reason, 'NoKeyServer');
  assert.equal(dc.status?.fallback, 'Keyless');
  assert.match(condition(dc, 'Ready')?.message ?? '', /fallback Keyless not ready \(NoKeyServer\)/);
  assert.deepEqual(h.events.events.map((e) => e.reason), ['Issued'], 'no event per object for a cluster-wide fact (no key server)');
});

void test('never copies the certificate private key into the output Secret', async () => {
  const h = await ready();
  const keyPem = Buffer.from(h.cluster.secrets.get(`${NS}/web-tls`)?.data?.['tls.key'] ?? '', 'base64').toString();
  for (const value of Object.values(outputData(h))) {
    assert.ok(!Buffer.from(value, 'base64').toString().includes(keyPem.split('\n')[1] ?? 'x'));
  }
});

void test('a second reconcile with nothing changed makes no API write', async () => {
  const h = await ready();
  const before = h.cluster.writes().length;
  const result = await h.reconciler.reconcile(NS, 'web-dc');
  assert.equal(result.kind, 'done');
  assert.equal(h.cluster.writes().length, before);
  assert.equal(h.cluster.calls.filter((c) => c.startsWith('get')).length, 1, 'only the issuing GET of the key');
});

void test('re-issues against a replaced certificate', async () => {
  const h = await ready();
  const oldCred = outputData(h)['ecdsa_secp256r1_sha256.cred'];
  const next = await delegationCertificate();
  h.cluster.putTlsSecret(NS, 'web-tls', next);
  await h.reconciler.reconcile(NS, 'web-dc');
  const data = outputData(h);
  assert.notEqual(data['ecdsa_secp256r1_sha256.cred'], oldCred);
  assert.equal(Buffer.from(data['tls.crt'] ?? '', 'base64').toString(), next.pem);
  validateDelegatedCredential(Buffer.from(data['ecdsa_secp256r1_sha256.cred'] ?? '', 'base64'), { certificate: next.der });
  assert.match(h.events.events.at(-1)?.message ?? '', /CertificateChanged/);
});

void test('a combined PEM in tls.crt is issued with the certificates only, and Ready says to move the key', async () => {
  const h = harness(new Date());
  const cert = await delegationCertificate();
  const keyBody = cert.key.privateKeyPem.split('\n')[1] ?? 'unreachable';
  h.cluster.putTlsSecret(NS, 'web-tls', { ...cert, pem: cert.pem + cert.key.privateKeyPem });
  // fallback None: the only warning is the combined PEM's (Keyless without a key server would add NoKeyServer).
  h.cluster.putDelegatedCredential(NS, 'web-dc', { certificateSecretRef: { name: 'web-tls' }, secretName: 'web-dc-secret', fallback: 'None' });
  assert.equal((await h.reconciler.reconcile(NS, 'web-dc')).kind, 'done');
  const data = outputData(h);
  assert.equal(Buffer.from(data['tls.crt'] ?? '', 'base64').toString(), cert.pem, 'tls.crt holds the certificate only');
  for (const [k, v] of Object.entries(data)) assert.ok(!Buffer.from(v, 'base64').toString().includes(keyBody), `${k} holds no part of the certificate key`);
  const ready = condition(dcOf(h), 'Ready');
  assert.equal(ready?.status, 'True');
  assert.equal(ready?.reason, 'CertificateSecretHoldsPrivateKey');
  assert.match(ready?.message ?? '', /tls\.crt of Secret web\/web-tls holds a PRIVATE KEY block \(a combined PEM\).*move the key to tls\.key/);
  assert.deepEqual(h.events.events.map((e) => `${e.type}/${e.reason}`), ['Normal/Issued', 'Warning/CertificateSecretHoldsPrivateKey']);

  const writes = h.cluster.writes().length;
  await h.reconciler.reconcile(NS, 'web-dc');
  assert.equal(h.cluster.writes().length, writes, 'steady: no write, no event');
  assert.equal(h.events.events.length, 2);

  h.cluster.putTlsSecret(NS, 'web-tls', cert);
  await h.reconciler.reconcile(NS, 'web-dc');
  assert.equal(condition(dcOf(h), 'Ready')?.reason, 'Issued', 'fixed Secret, plain Ready');
  assert.deepEqual(h.cluster.writes().slice(writes), ['update status web/web-dc'], 'the same certificates: nothing re-issued');
});

void test('an output Secret whose tls.crt holds a private key (written by an earlier version) is rewritten with the certificates only', async () => {
  const h = await ready();
  const secret = h.cluster.secrets.get(`${NS}/web-dc-secret`);
  assert.ok(secret?.data);
  const keyPem = Buffer.from(h.cluster.secrets.get(`${NS}/web-tls`)?.data?.['tls.key'] ?? '', 'base64').toString();
  secret.data['tls.crt'] = Buffer.from(h.certPem + keyPem).toString('base64');
  await h.reconciler.reconcile(NS, 'web-dc');
  assert.match(h.events.events.at(-1)?.message ?? '', /OutputHoldsPrivateKey/);
  assert.equal(Buffer.from(outputData(h)['tls.crt'] ?? '', 'base64').toString(), h.certPem);
});

void test('restores a deleted output Secret and repairs an edited one', async () => {
  const h = await ready();
  h.cluster.secrets.delete(`${NS}/web-dc-secret`);
  await h.reconciler.reconcile(NS, 'web-dc');
  assert.match(h.events.events.at(-1)?.message ?? '', /SecretMissing/);
  const secret = h.cluster.secrets.get(`${NS}/web-dc-secret`);
  assert.ok(secret?.data);
  secret.data['ecdsa_secp256r1_sha256.cred'] = Buffer.from('garbage').toString('base64');
  await h.reconciler.reconcile(NS, 'web-dc');
  assert.match(h.events.events.at(-1)?.message ?? '', /InvalidCredential/);
  const repaired = outputData(h)['ecdsa_secp256r1_sha256.cred'];
  validateDelegatedCredential(Buffer.from(repaired ?? '', 'base64'), { certificate: Buffer.from(h.certPem) && new X509Certificate(h.certPem) });
});

void test('a credential private key replaced in the output Secret (another key, its private part swapped, or not a key) is re-issued; the cache never held the key', async () => {
  const h = await ready();
  const other = await generateKeyPair('ecdsa-p256');
  // The credential's own key with another scalar: its public key still is the credential's.
  const swapped = (current: string): string => ecKeyWithForeignScalar(current, 'pkcs8').pem;
  const cases: Array<[string, string | ((current: string) => string), RegExp]> = [
    ['another key', other.privateKeyPem, /ecdsa_secp256r1_sha256\.key does not belong to the credential/],
    ['its private part swapped', swapped, /ecdsa_secp256r1_sha256\.key does not pair with the public key it carries: its private part does not produce signatures/],
    ['not a key', 'garbage', /ecdsa_secp256r1_sha256\.key does not parse/],
    ['a public key', new X509Certificate(h.certPem).publicKey.export({ type: 'spki', format: 'pem' }).toString(), /ecdsa_secp256r1_sha256\.key does not parse/],
  ];
  for (const [name, replacement, message] of cases) {
    const secret = h.cluster.secrets.get(`${NS}/web-dc-secret`);
    assert.ok(secret?.data);
    const pem = typeof replacement === 'string' ? replacement : replacement(Buffer.from(secret.data['ecdsa_secp256r1_sha256.key'] ?? '', 'base64').toString());
    secret.data['ecdsa_secp256r1_sha256.key'] = Buffer.from(pem).toString('base64');
    secret.metadata = { ...secret.metadata, resourceVersion: `${secret.metadata?.resourceVersion ?? ''}0` };
    const cached = h.cluster.outputSecret(NS, 'web-dc-secret');
    assert.equal(cached?.data['ecdsa_secp256r1_sha256.key'], undefined, `${name}: not in the cached form`);
    await h.reconciler.reconcile(NS, 'web-dc');
    assert.match(h.events.events.at(-1)?.message ?? '', message, name);
    const data = outputData(h);
    const key = Buffer.from(data['ecdsa_secp256r1_sha256.key'] ?? '', 'base64').toString();
    const verified = validateDelegatedCredential(Buffer.from(data['ecdsa_secp256r1_sha256.cred'] ?? '', 'base64'), { certificate: new X509Certificate(h.certPem) });
    assert.ok(key.includes('PRIVATE KEY') && key !== pem, `${name}: a new key was written`);
    assert.equal(condition(dcOf(h), 'Ready')?.status, 'True', name);
    assert.ok(verified.expiresAt.getTime() > h.clock.now().getTime());
  }
});

void test('a certificate key left in the output Secret after fallback left CertificateKey is removed with one read and one conditional write', async () => {
  const h = await ready({ fallback: 'CertificateKey' });
  const before = h.cluster.secrets.get(`${NS}/web-dc-secret`);
  assert.ok(before?.data?.['tls.key'], 'CertificateKey: the key is in the bundle');
  const dc = dcOf(h);
  h.cluster.dcs.set(`${NS}/web-dc`, { ...dc, spec: { ...dc.spec, fallback: 'None' } });
  const calls = h.cluster.calls.length;
  const result = await h.reconciler.reconcile(NS, 'web-dc');
  assert.equal(result.kind, 'done');
  assert.deepEqual(h.cluster.calls.slice(calls), [`get secret ${NS}/web-dc-secret`, `replace secret ${NS}/web-dc-secret`]);
  const after = outputData(h);
  assert.equal(after['tls.key'], undefined, 'the key left');
  assert.equal(Buffer.from(after['fallback'] ?? '', 'base64').toString(), 'None');
  assert.equal(after['ecdsa_secp256r1_sha256.key'], before.data['ecdsa_secp256r1_sha256.key'], 'everything else kept');
});

void test('a certificate is parsed once per cached version of its Secret, not once per DelegatedCredential', async () => {
  const h = harness(new Date());
  const parsed: string[] = [];
  // As the real cache does: one projection object per version of the Secret.
  const projections = new Map<string, CertificateLookup>();
  const listers: Listers = Object.assign(Object.create(h.cluster) as FakeCluster, {
    certificateSecret: (ns: string, name: string): CertificateLookup => {
      const rv = h.cluster.secrets.get(`${ns}/${name}`)?.metadata?.resourceVersion ?? '';
      const key = `${ns}/${name}@${rv}`;
      if (!projections.has(key)) projections.set(key, h.cluster.certificateSecret(ns, name));
      return projections.get(key)!;
    },
  });
  const reconciler = new Reconciler({
    listers,
    api: h.cluster,
    crypto: { ...tlsCrypto, readCertificate: (pem, source) => (parsed.push(source), tlsCrypto.readCertificate(pem, source)) },
    clock: h.clock,
    events: h.events,
    metrics: h.metrics,
    log: silentLog,
    operatorNamespace: 'dc-operator',
    signingKeys: new SigningKeyCache(h.clock),
  });
  const first = await delegationCertificate();
  h.cluster.putTlsSecret(NS, 'web-tls', first);
  for (const name of ['one', 'two', 'three']) h.cluster.putDelegatedCredential(NS, name, { certificateSecretRef: { name: 'web-tls' }, secretName: `${name}-out`, fallback: 'None' });
  for (const name of ['one', 'two', 'three']) assert.equal((await reconciler.reconcile(NS, name)).kind, 'done');
  // One parse of the cached projection, one of the key Secret the burst GETs once (signing-keys.ts).
  assert.deepEqual(parsed, ['tls.crt of Secret web/web-tls', 'tls.crt of Secret web/web-tls']);
  const next = await delegationCertificate();
  h.cluster.putTlsSecret(NS, 'web-tls', next);
  for (const name of ['one', 'two']) await reconciler.reconcile(NS, name);
  assert.equal(parsed.length, 4, 'a new version of the Secret: parsed again, once, and its key read again');
  const leaf = new X509Certificate(Buffer.from(outputData(h, 'two-out')['tls.crt'] ?? '', 'base64'));
  assert.equal(leaf.fingerprint256, new X509Certificate(next.pem).fingerprint256, 'and its certificate is the one issued under');
});

void test('re-issues with a new key when the renewal time is reached', async () => {
  // renewBefore 60s of 2m: renewal at 60s, which is also the floor (a minute between issuances).
  const h = await ready({ validity: '2m', renewBefore: '60s' });
  const first = dcOf(h).status?.credentials?.[0]?.publicKeyFingerprint;
  const renewalTime = Date.parse(dcOf(h).status?.renewalTime ?? '');
  assert.ok(renewalTime - h.clock.now().getTime() <= 60_000 && renewalTime - h.clock.now().getTime() > 55_000, 'renews 60s before a 2m expiry');
  h.clock.advance(10_000);
  await h.reconciler.reconcile(NS, 'web-dc');
  assert.equal(dcOf(h).status?.credentials?.[0]?.publicKeyFingerprint, first, 'not yet');
  h.clock.advance(51_000);
  const result = await h.reconciler.reconcile(NS, 'web-dc');
  assert.notEqual(dcOf(h).status?.credentials?.[0]?.publicKeyFingerprint, first, 'a fresh key');
  assert.equal(result.kind, 'done');
  assert.ok(result.kind === 'done' && result.requeueAt && result.requeueAt.getTime() > h.clock.now().getTime());
});

void test('caps the credential expiry at the certificate notAfter', async () => {
  const h = harness(new Date());
  const notAfter = new Date(h.clock.now().getTime() + 3 * 3600_000);
  const cert = await delegationCertificate({ notAfter });
  h.cluster.putTlsSecret(NS, 'web-tls', cert);
  h.cluster.putDelegatedCredential(NS, 'web-dc', { certificateSecretRef: { name: 'web-tls' }, secretName: 'web-dc-secret', validity: '168h' });
  await h.reconciler.reconcile(NS, 'web-dc');
  const notAfterStatus = Date.parse(dcOf(h).status?.notAfter ?? '');
  assert.ok(notAfterStatus <= notAfter.getTime() && notAfterStatus > notAfter.getTime() - 2000);
});

void test('a certificate without DelegationUsage gives Ready=False CertificateMissingDelegationUsage and writes no Secret', async () => {
  const h = harness(new Date());
  h.cluster.putTlsSecret(NS, 'web-tls', await delegationCertificate({ delegationUsage: false }));
  h.cluster.putDelegatedCredential(NS, 'web-dc', { certificateSecretRef: { name: 'web-tls' }, secretName: 'web-dc-secret' });
  const result = await h.reconciler.reconcile(NS, 'web-dc');
  assert.equal(result.kind, 'failed');
  const ready = condition(dcOf(h), 'Ready');
  assert.equal(ready?.status, 'False');
  assert.equal(ready?.reason, 'CertificateMissingDelegationUsage');
  assert.match(ready?.message ?? '', /DelegationUsage extension \(1\.3\.6\.1\.4\.1\.44363\.44\)/);
  assert.equal(h.cluster.secrets.has(`${NS}/web-dc-secret`), false);
  assert.deepEqual(h.events.events.map((e) => `${e.type}/${e.reason}`), ['Warning/CertificateMissingDelegationUsage']);
});

void test('a chain with the CA first gives Ready=False CertificateInvalid that names the order, not the CA lacking DelegationUsage', async () => {
  const h = harness(new Date());
  const leaf = await delegationCertificate();
  const ca = await issueCertificate({ commonName: 'Example CA', isCA: true, keyUsage: KeyUsage.keyCertSign }, 'ecdsa-p256');
  h.cluster.putTlsSecret(NS, 'web-tls', { ...leaf, pem: ca.pem + leaf.pem });
  h.cluster.putDelegatedCredential(NS, 'web-dc', { certificateSecretRef: { name: 'web-tls' }, secretName: 'web-dc-secret' });
  const result = await h.reconciler.reconcile(NS, 'web-dc');
  assert.equal(result.kind, 'failed');
  const ready = condition(dcOf(h), 'Ready');
  assert.equal(ready?.reason, 'CertificateInvalid');
  assert.match(ready?.message ?? '', /the chain is in the wrong order: certificate 2 \(CN=web\.example\.test\) is the end-entity and must come first/);
  assert.doesNotMatch(ready?.message ?? '', /DelegationUsage/);
  assert.equal(h.cluster.secrets.has(`${NS}/web-dc-secret`), false);
});

void test('a working output Secret is left alone when the certificate is replaced by one that cannot delegate', async () => {
  const h = await ready();
  const before = structuredClone(h.cluster.secrets.get(`${NS}/web-dc-secret`));
  h.cluster.putTlsSecret(NS, 'web-tls', await delegationCertificate({ delegationUsage: false }));
  await h.reconciler.reconcile(NS, 'web-dc');
  assert.deepEqual(h.cluster.secrets.get(`${NS}/web-dc-secret`), before);
  assert.equal(condition(dcOf(h), 'Ready')?.reason, 'CertificateMissingDelegationUsage');
  assert.equal(condition(dcOf(h), 'Issuing')?.reason, 'Blocked');
});

void test('a key that does not belong to the certificate gives KeyMismatch and SignerReady=False', async () => {
  const h = harness(new Date());
  const other = await generateKeyPair('ecdsa-p256');
  h.cluster.putTlsSecret(NS, 'web-tls', await delegationCertificate(), other.privateKeyPem);
  h.cluster.putDelegatedCredential(NS, 'web-dc', { certificateSecretRef: { name: 'web-tls' }, secretName: 'web-dc-secret' });
  await h.reconciler.reconcile(NS, 'web-dc');
  assert.equal(condition(dcOf(h), 'Ready')?.reason, 'KeyMismatch');
  assert.equal(condition(dcOf(h), 'SignerReady')?.status, 'False');
  assert.equal(h.cluster.secrets.has(`${NS}/web-dc-secret`), false);
});

void test('an expired certificate gives CertificateExpired', async () => {
  const h = harness(new Date());
  const cert = await delegationCertificate({ notBefore: new Date(Date.now() - 10 * 86400_000), notAfter: new Date(Date.now() - 86400_000) });
  h.cluster.putTlsSecret(NS, 'web-tls', cert);
  h.cluster.putDelegatedCredential(NS, 'web-dc', { certificateSecretRef: { name: 'web-tls' }, secretName: 'web-dc-secret' });
  await h.reconciler.reconcile(NS, 'web-dc');
  assert.equal(condition(dcOf(h), 'Ready')?.reason, 'CertificateExpired');
  assert.equal(h.cluster.secrets.has(`${NS}/web-dc-secret`), false);
});

void test('a missing certificate Secret gives SecretNotFound naming it', async () => {
  const h = harness(new Date());
  h.cluster.putDelegatedCredential(NS, 'web-dc', { certificateSecretRef: { name: 'nope' }, secretName: 'web-dc-secret' });
  await h.reconciler.reconcile(NS, 'web-dc');
  const ready = condition(dcOf(h), 'Ready');
  assert.equal(ready?.reason, 'SecretNotFound');
  assert.match(ready?.message ?? '', /web\/nope/);
});

void test('a keyless signer in a reconciler built without keyless signing gives SignerReady=False KeylessNotImplemented without crashing', async () => {
  const h = harness(new Date());
  h.cluster.putTlsSecret(NS, 'web-tls', await delegationCertificate(), null);
  h.cluster.signers.set('ClusterDelegationSigner/edge', {
    apiVersion: 'dc-operator.io/v1alpha1',
    kind: 'ClusterDelegationSigner',
    metadata: { name: 'edge' },
    spec: { keyless: { address: 'keys.example.test:2407', caBundleSecretRef: { name: 'ca' }, clientCertificateSecretRef: { name: 'client' }, timeout: '5s' }, namespaceSelector: {} },
  });
  h.cluster.namespaces.set(NS, {});
  h.cluster.putDelegatedCredential(NS, 'web-dc', {
    certificateSecretRef: { name: 'web-tls' },
    secretName: 'web-dc-secret',
    signerRef: { kind: 'ClusterDelegationSigner', name: 'edge' },
  });
  const result = await h.reconciler.reconcile(NS, 'web-dc');
  assert.equal(result.kind, 'failed');
  const signer = condition(dcOf(h), 'SignerReady');
  assert.equal(signer?.status, 'False');
  assert.equal(signer?.reason, 'KeylessNotImplemented');
  assert.match(signer?.message ?? '', /keys\.example\.test:2407/);
});

void test('a DelegationSigner with an in-cluster key Secret signs for a certificate Secret without tls.key', async () => {
  const h = harness(new Date());
  const cert = await delegationCertificate({ keyType: 'ed25519' });
  h.cluster.putTlsSecret(NS, 'web-tls', cert, null);
  h.cluster.secrets.set(`${NS}/web-key`, { type: 'Opaque', metadata: { name: 'web-key', namespace: NS }, data: { 'private.pem': Buffer.from(cert.key.privateKeyPem).toString('base64') } });
  h.cluster.signers.set(`DelegationSigner/${NS}/vault`, {
    apiVersion: 'dc-operator.io/v1alpha1',
    kind: 'DelegationSigner',
    metadata: { name: 'vault', namespace: NS },
    spec: { inCluster: { keySecretRef: { name: 'web-key', key: 'private.pem' } } },
  });
  h.cluster.putDelegatedCredential(NS, 'web-dc', {
    certificateSecretRef: { name: 'web-tls' },
    secretName: 'web-dc-secret',
    signerRef: { kind: 'DelegationSigner', name: 'vault' },
  });
  await h.reconciler.reconcile(NS, 'web-dc');
  assert.equal(condition(dcOf(h), 'Ready')?.status, 'True');
  assert.match(condition(dcOf(h), 'SignerReady')?.message ?? '', /DelegationSigner web\/vault \(key private\.pem of Secret web\/web-key\)/);
});

void test('refuses to overwrite a Secret it does not manage', async () => {
  const h = harness(new Date());
  h.cluster.putTlsSecret(NS, 'web-tls', await delegationCertificate());
  h.cluster.secrets.set(`${NS}/web-dc-secret`, { type: 'Opaque', metadata: { name: 'web-dc-secret', namespace: NS, resourceVersion: '1' }, data: { precious: 'eA==' } });
  h.cluster.putDelegatedCredential(NS, 'web-dc', { certificateSecretRef: { name: 'web-tls' }, secretName: 'web-dc-secret' });
  await h.reconciler.reconcile(NS, 'web-dc');
  assert.equal(condition(dcOf(h), 'Ready')?.reason, 'OutputSecretConflict');
  assert.match(condition(dcOf(h), 'Ready')?.message ?? '', /is not managed by dc-operator/);
  assert.deepEqual(h.cluster.secrets.get(`${NS}/web-dc-secret`)?.data, { precious: 'eA==' });
});

void test('refuses to take over the output Secret of another DelegatedCredential', async () => {
  const h = await ready();
  h.cluster.putDelegatedCredential(NS, 'other-dc', { certificateSecretRef: { name: 'web-tls' }, secretName: 'web-dc-secret' });
  const before = structuredClone(h.cluster.secrets.get(`${NS}/web-dc-secret`));
  await h.reconciler.reconcile(NS, 'other-dc');
  assert.equal(condition(dcOf(h, 'other-dc'), 'Ready')?.reason, 'OutputSecretConflict');
  assert.deepEqual(h.cluster.secrets.get(`${NS}/web-dc-secret`), before);
});

void test('re-issues when the algorithms change and drops credentials no longer requested', async () => {
  const h = await ready({ algorithms: ['ed25519', 'ecdsa_secp256r1_sha256'] });
  const dc = dcOf(h);
  h.cluster.dcs.set(`${NS}/web-dc`, { ...dc, metadata: { ...dc.metadata, generation: 2 }, spec: { ...dc.spec, algorithms: ['ed25519'] } });
  await h.reconciler.reconcile(NS, 'web-dc');
  assert.deepEqual(Object.keys(outputData(h)).sort(), ['ed25519.cred', 'ed25519.key', 'fallback', 'tls.crt']);
  assert.equal(dcOf(h).status?.observedGeneration, 2);
  assert.deepEqual(dcOf(h).status?.credentials?.map((c) => c.algorithm), ['ed25519']);
});

void test('keeps lastTransitionTime while Ready stays True', async () => {
  const h = await ready({ validity: '2m', renewBefore: '60s' });
  const first = condition(dcOf(h), 'Ready')?.lastTransitionTime;
  h.clock.advance(61_000);
  await h.reconciler.reconcile(NS, 'web-dc');
  assert.equal(condition(dcOf(h), 'Ready')?.lastTransitionTime, first);
  assert.ok(Date.parse(dcOf(h).status?.lastIssuedTime ?? '') > Date.parse(first ?? ''));
  assert.equal(h.cluster.secrets.get(`${NS}/web-dc-secret`)?.metadata?.annotations?.[ANNOTATIONS.issuedAt], h.clock.now().toISOString());
});

void test('an unreadable tls.key gives KeyInvalid naming the Secret, and nothing is written', async () => {
  const h = harness(new Date());
  h.cluster.putTlsSecret(NS, 'web-tls', await delegationCertificate(), '-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n');
  h.cluster.putDelegatedCredential(NS, 'web-dc', { certificateSecretRef: { name: 'web-tls' }, secretName: 'web-dc-secret' });
  await h.reconciler.reconcile(NS, 'web-dc');
  const signer = condition(dcOf(h), 'SignerReady');
  assert.equal(signer?.status, 'False');
  assert.equal(signer?.reason, 'KeyInvalid');
  assert.match(signer?.message ?? '', /tls\.key of Secret web\/web-tls is an encrypted private key/);
  assert.equal(h.cluster.secrets.has(`${NS}/web-dc-secret`), false);
});

void test('a certificate Secret of another type gives CertificateInvalid naming the type', async () => {
  const h = harness(new Date());
  const cert = await delegationCertificate();
  h.cluster.secrets.set(`${NS}/web-tls`, { type: 'Opaque', metadata: { name: 'web-tls', namespace: NS }, data: { 'tls.crt': Buffer.from(cert.pem).toString('base64') } });
  h.cluster.putDelegatedCredential(NS, 'web-dc', { certificateSecretRef: { name: 'web-tls' }, secretName: 'web-dc-secret' });
  await h.reconciler.reconcile(NS, 'web-dc');
  const ready = condition(dcOf(h), 'Ready');
  assert.equal(ready?.reason, 'CertificateInvalid');
  assert.match(ready?.message ?? '', /has type Opaque; the certificate Secret must be of type kubernetes\.io\/tls/);
});

/** A certificate Secret without its key in NS, and a ClusterDelegationSigner `shared` holding the key in dc-operator/shared-key. */
async function clusterSigned(namespaceSelector: ClusterDelegationSignerSpec['namespaceSelector'], labels: Record<string, string> | undefined): Promise<Harness & { cert: IssuedCertificate; health: SignerHealth[] }> {
  const health: SignerHealth[] = [];
  const h = harness(new Date(), { signerHealth: (x) => health.push(x) });
  const cert = await delegationCertificate({ keyType: 'ecdsa-p384' });
  h.cluster.putTlsSecret(NS, 'web-tls', cert, null);
  h.cluster.secrets.set('dc-operator/shared-key', { type: 'Opaque', metadata: { name: 'shared-key', namespace: 'dc-operator' }, data: { 'tls.key': Buffer.from(cert.key.privateKeyPem).toString('base64') } });
  h.cluster.signers.set('ClusterDelegationSigner/shared', {
    apiVersion: 'dc-operator.io/v1alpha1',
    kind: 'ClusterDelegationSigner',
    metadata: { name: 'shared' },
    spec: { inCluster: { keySecretRef: { name: 'shared-key', key: 'tls.key' } }, ...(namespaceSelector !== undefined ? { namespaceSelector } : {}) },
  });
  if (labels !== undefined) h.cluster.namespaces.set(NS, labels);
  h.cluster.putDelegatedCredential(NS, 'web-dc', {
    certificateSecretRef: { name: 'web-tls' },
    secretName: 'web-dc-secret',
    signerRef: { kind: 'ClusterDelegationSigner', name: 'shared' },
    algorithms: ['ecdsa_secp384r1_sha384'],
  });
  return { ...h, cert, health };
}

void test('a ClusterDelegationSigner that selects the namespace signs with the key Secret in the operator namespace, and says so without naming it', async () => {
  const h = await clusterSigned({ matchLabels: { team: 'web' } }, { team: 'web', 'kubernetes.io/metadata.name': NS });
  await h.reconciler.reconcile(NS, 'web-dc');
  assert.equal(condition(dcOf(h), 'Ready')?.status, 'True');
  assert.equal(condition(dcOf(h), 'SignerReady')?.message, 'signing with ClusterDelegationSigner shared (in-cluster key)');
  assert.ok(h.cluster.calls.includes('get secret dc-operator/shared-key'));
  assert.match(h.health[0]?.message ?? '', /key tls\.key of Secret dc-operator\/shared-key loads/, 'the signer status names its Secret');
  validateDelegatedCredential(Buffer.from(outputData(h)['ecdsa_secp384r1_sha384.cred'] ?? '', 'base64'), { certificate: new X509Certificate(h.cert.pem) });
});

void test('a ClusterDelegationSigner refuses a namespace it does not select (or without a selector), saying what to change, before reading its key', async () => {
  const table: [string, ClusterDelegationSignerSpec['namespaceSelector'], Record<string, string>, RegExp][] = [
    ['no selector', undefined, { team: 'web' }, /ClusterDelegationSigner shared has no spec\.namespaceSelector, so it signs for no namespace \(deny by default\): its owner must add a namespaceSelector that selects namespace web/],
    ['a selector for another team', { matchLabels: { team: 'payments' } }, { team: 'web' }, /ClusterDelegationSigner shared does not allow namespace web: .*label namespace web so they do, or ask the signer's owner to widen the selector/],
    ['an expression the namespace fails', { matchExpressions: [{ key: 'tier', operator: 'In', values: ['prod'] }] }, { tier: 'dev' }, /does not allow namespace web/],
  ];
  for (const [what, selector, labels, message] of table) {
    const h = await clusterSigned(selector, labels);
    const result = await h.reconciler.reconcile(NS, 'web-dc');
    assert.equal(result.kind, 'failed', what);
    for (const type of ['Ready', 'SignerReady']) {
      assert.equal(condition(dcOf(h), type)?.status, 'False', `${what}: ${type}`);
      assert.equal(condition(dcOf(h), type)?.reason, 'SignerNotAllowed', `${what}: ${type}`);
    }
    assert.match(condition(dcOf(h), 'Ready')?.message ?? '', message, what);
    assert.ok(!JSON.stringify(dcOf(h).status).includes('shared-key'), `${what}: the key Secret is not named`);
    assert.deepEqual(h.cluster.calls.filter((c) => c.startsWith('get secret')), [], `${what}: the key is never read`);
    assert.equal(h.cluster.secrets.has(`${NS}/web-dc-secret`), false, `${what}: nothing written`);
    assert.deepEqual(h.events.events.map((e) => `${e.type}/${e.reason}`), ['Warning/SignerNotAllowed'], what);
  }
});

void test('an empty namespaceSelector selects every namespace', async () => {
  const h = await clusterSigned({}, {});
  await h.reconciler.reconcile(NS, 'web-dc');
  assert.equal(condition(dcOf(h), 'Ready')?.status, 'True');
});

void test('waits for the namespace cache before deciding a ClusterDelegationSigner', async () => {
  const h = await clusterSigned({}, {});
  h.cluster.namespacesSynced = false;
  const result = await h.reconciler.reconcile(NS, 'web-dc');
  assert.ok(result.kind === 'done' && result.requeueAt !== undefined, 'comes back shortly');
  assert.deepEqual(h.cluster.writes(), [], 'no status, no Secret');
});

void test('revoked access keeps the issued credentials in place but stops renewing them', async () => {
  const h = await clusterSigned({ matchLabels: { team: 'web' } }, { team: 'web' });
  await h.reconciler.reconcile(NS, 'web-dc');
  const before = structuredClone(h.cluster.secrets.get(`${NS}/web-dc-secret`));
  assert.ok(before);
  h.cluster.namespaces.set(NS, { team: 'someone-else' });
  h.clock.advance(20 * 3600_000); // past the renewal time (a third of 24h before expiry)
  const result = await h.reconciler.reconcile(NS, 'web-dc');
  assert.equal(result.kind, 'failed');
  assert.deepEqual(h.cluster.secrets.get(`${NS}/web-dc-secret`), before, 'the output Secret is untouched');
  const ready = condition(dcOf(h), 'Ready');
  assert.equal(ready?.reason, 'SignerNotAllowed');
  assert.match(ready?.message ?? '', /The existing credentials were left in place\.$/);
  assert.equal(dcOf(h).status?.credentials?.length, 1, 'the status still lists what is served');
});

void test('a ClusterDelegationSigner whose key Secret is missing: the signer learns which Secret, the DelegatedCredential only the reason', async () => {
  const h = await clusterSigned({}, {});
  h.cluster.secrets.delete('dc-operator/shared-key');
  await h.reconciler.reconcile(NS, 'web-dc');
  const signer = condition(dcOf(h), 'SignerReady');
  assert.equal(signer?.reason, 'SecretNotFound');
  assert.match(signer?.message ?? '', /^ClusterDelegationSigner shared \(in-cluster key\): a Secret it needs does not exist; the status of ClusterDelegationSigner shared says more/);
  assert.ok(!JSON.stringify(dcOf(h).status).includes('dc-operator/'), 'no Secret coordinates in the status');
  assert.ok(!h.events.events.some((e) => e.message.includes('shared-key')), 'nor in events');
  assert.match(h.health[0]?.message ?? '', /the key Secret dc-operator\/shared-key of ClusterDelegationSigner shared/);
});

void test('a signerRef to a signer that does not exist gives SignerNotFound', async () => {
  const h = harness(new Date());
  h.cluster.putTlsSecret(NS, 'web-tls', await delegationCertificate());
  h.cluster.putDelegatedCredential(NS, 'web-dc', { certificateSecretRef: { name: 'web-tls' }, secretName: 'web-dc-secret', signerRef: { kind: 'DelegationSigner', name: 'ghost' } });
  await h.reconciler.reconcile(NS, 'web-dc');
  const signer = condition(dcOf(h), 'SignerReady');
  assert.equal(signer?.reason, 'SignerNotFound');
  assert.match(signer?.message ?? '', /DelegationSigner web\/ghost does not exist/);
});

void test('removes its previous output Secret after spec.secretName changed and the new one is written', async () => {
  const h = await ready();
  const dc = dcOf(h);
  h.cluster.secrets.set(`${NS}/unrelated`, { type: 'Opaque', metadata: { name: 'unrelated', namespace: NS, labels: { 'app.kubernetes.io/managed-by': 'dc-operator', 'dc-operator.io/delegated-credential': 'web-dc' } }, data: {} });
  h.cluster.dcs.set(`${NS}/web-dc`, { ...dc, metadata: { ...dc.metadata, generation: 2 }, spec: { ...dc.spec, secretName: 'renamed-secret' } });
  const result = await h.reconciler.reconcile(NS, 'web-dc');
  assert.equal(result.kind, 'done');
  assert.ok(h.cluster.secrets.has(`${NS}/renamed-secret`), 'the new output Secret is written');
  assert.equal(h.cluster.secrets.has(`${NS}/web-dc-secret`), false, 'the previous one is gone');
  assert.ok(h.cluster.secrets.has(`${NS}/unrelated`), 'a labelled Secret without our owner reference is left alone');
  const writes = h.cluster.writes();
  assert.ok(writes.indexOf(`create secret ${NS}/renamed-secret`) < writes.indexOf(`delete secret ${NS}/web-dc-secret`), 'deleted only after the new one was written');
  assert.ok(h.events.events.some((e) => e.reason === 'OutputSecretRemoved'));
});

void test('keeps the previous output Secret while the new one cannot be issued', async () => {
  const h = await ready();
  const dc = dcOf(h);
  h.cluster.putTlsSecret(NS, 'web-tls', await delegationCertificate(), '');
  h.cluster.dcs.set(`${NS}/web-dc`, { ...dc, metadata: { ...dc.metadata, generation: 2 }, spec: { ...dc.spec, secretName: 'renamed-secret' } });
  const result = await h.reconciler.reconcile(NS, 'web-dc');
  assert.equal(result.kind, 'failed');
  assert.ok(h.cluster.secrets.has(`${NS}/web-dc-secret`));
  assert.equal(h.cluster.secrets.has(`${NS}/renamed-secret`), false);
});
