// Keyless signing in the reconciler, against a real key server on loopback (mutual TLS, the
// certificate's key held only by the key server) and the in-memory cluster of fakes.ts.
import { test, after, before } from 'node:test';
import { createServer as createTcpServer, type Socket } from 'node:net';
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { startKeyServer, type KeyServer } from '../../../src/keyless/server.js';
import { StaticKeys } from '../../../src/keyless/keystore.js';
import { KeylessSigners, type SignerHealth } from '../../../src/operator/keyless.js';
import { Reconciler } from '../../../src/operator/reconciler.js';
import { tlsCrypto } from '../../../src/operator/crypto.js';
import { desiredSignerStatus } from '../../../src/operator/signer-status.js';
import type { DelegatedCredential, DelegationSigner } from '../../../src/operator/api/v1alpha1.js';
import { validateDelegatedCredential } from '../../../src/tls/delegated/index.js';
import { FakeClock } from '../../../src/operator/clock.js';
import { KeylessIdentity } from '../../../src/operator/keyless-identity.js';
import { CountingMetrics, FakeCluster, RecordingEvents, delegationCertificate, silentLog } from './fakes.js';
import { makeKeylessPki, type KeylessPki } from '../keyless/pki.js';
import type { IssuedCertificate } from '../../../src/cli/pki/dev-pki.js';

const NS = 'web';
let pki: KeylessPki;
let cert: IssuedCertificate;

before(async () => {
  pki = makeKeylessPki([]);
  cert = await delegationCertificate();
});
after(() => pki.cleanup());

function startServer(port = 0): Promise<KeyServer> {
  return startKeyServer({ keys: new StaticKeys([createPrivateKey(cert.key.privateKeyPem)]), ca: pki.ca, cert: pki.server.cert, key: pki.server.key, host: '127.0.0.1', port });
}

interface Setup {
  cluster: FakeCluster;
  reconciler: Reconciler;
  keyless: KeylessSigners;
  health: SignerHealth[];
  recovered: string[];
}

function setup(opts: { pingMinMs?: number; secretRecheckMs?: number; clusterResourceNamespace?: string; identity?: KeylessIdentity } = {}): Setup {
  const cluster = opts.identity ? identityCluster : new FakeCluster();
  const clock = new FakeClock(new Date());
  const health: SignerHealth[] = [];
  const recovered: string[] = [];
  const keyless = new KeylessSigners({
    api: cluster,
    clock,
    log: silentLog,
    onHealth: (h) => health.push(h),
    onRecovered: (id) => recovered.push(id),
    pingMinMs: opts.pingMinMs ?? 50,
    pingMaxMs: 200,
    secretRecheckMs: opts.secretRecheckMs ?? 0,
  });
  const reconciler = new Reconciler({
    listers: cluster,
    api: cluster,
    crypto: tlsCrypto,
    clock,
    events: new RecordingEvents(),
    metrics: new CountingMetrics(),
    log: silentLog,
    operatorNamespace: 'dc-operator',
    clusterResourceNamespace: opts.clusterResourceNamespace ?? 'dc-operator',
    keyless,
    ...(opts.identity ? { keylessIdentity: opts.identity } : {}),
  });
  return { cluster, reconciler, keyless, health, recovered };
}

/** The cluster a KeylessIdentity bootstraps its CA into, shared with the setup that uses it. */
let identityCluster = new FakeCluster();

function putKeylessSecrets(cluster: FakeCluster, namespace: string): void {
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  cluster.secrets.set(`${namespace}/keyserver-ca`, { type: 'Opaque', metadata: { name: 'keyserver-ca', namespace, resourceVersion: '1' }, data: { 'ca.crt': b64(pki.ca) } });
  cluster.secrets.set(`${namespace}/keyserver-client`, {
    type: 'kubernetes.io/tls',
    metadata: { name: 'keyserver-client', namespace, resourceVersion: '1' },
    data: { 'tls.crt': b64(pki.client.cert), 'tls.key': b64(pki.client.key) },
  });
}

function keylessSigner(kind: 'DelegationSigner' | 'ClusterDelegationSigner', port: number, timeout = '2s'): DelegationSigner {
  const keyless = { address: `127.0.0.1:${port}`, caBundleSecretRef: { name: 'keyserver-ca' }, clientCertificateSecretRef: { name: 'keyserver-client' }, timeout };
  if (kind === 'DelegationSigner') return { apiVersion: 'dc-operator.io/v1alpha1', kind, metadata: { name: 'edge', namespace: NS, uid: 'signer-uid' }, spec: { keyless } };
  // A ClusterDelegationSigner signs only for the namespaces it selects.
  return { apiVersion: 'dc-operator.io/v1alpha1', kind, metadata: { name: 'edge', uid: 'cluster-signer-uid' }, spec: { keyless, namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': NS } } } };
}

function addDc(s: Setup, name: string, kind: 'DelegationSigner' | 'ClusterDelegationSigner' = 'DelegationSigner'): void {
  s.cluster.putDelegatedCredential(NS, name, {
    certificateSecretRef: { name: 'web-tls' },
    secretName: `${name}-secret`,
    signerRef: { kind, name: 'edge' },
    algorithms: ['ed25519', 'ecdsa_secp256r1_sha256'],
  });
}

function condition(s: Setup, name: string, type: string) {
  const dc: DelegatedCredential | undefined = s.cluster.dcs.get(`${NS}/${name}`);
  return dc?.status?.conditions?.find((c) => c.type === type);
}

function assertVerifies(s: Setup, name: string): void {
  const data = s.cluster.secrets.get(`${NS}/${name}-secret`)?.data ?? {};
  assert.deepEqual(Object.keys(data).sort(), ['ecdsa_secp256r1_sha256.cred', 'ecdsa_secp256r1_sha256.key', 'ed25519.cred', 'ed25519.key', 'fallback', 'tls.crt']);
  const leaf = new X509Certificate(cert.pem);
  for (const alg of ['ed25519', 'ecdsa_secp256r1_sha256']) validateDelegatedCredential(Buffer.from(data[`${alg}.cred`] ?? '', 'base64'), { certificate: leaf });
}

void test('issues through a keyless DelegationSigner while the certificate Secret holds only tls.crt', async () => {
  const server = await startServer();
  const s = setup();
  try {
    s.cluster.putTlsSecret(NS, 'web-tls', cert, null);
    putKeylessSecrets(s.cluster, NS);
    s.cluster.signers.set(`DelegationSigner/${NS}/edge`, keylessSigner('DelegationSigner', server.port));
    addDc(s, 'web-dc');
    const result = await s.reconciler.reconcile(NS, 'web-dc');
    assert.equal(result.kind, 'done');
    assert.equal(condition(s, 'web-dc', 'Ready')?.status, 'True');
    assert.match(condition(s, 'web-dc', 'SignerReady')?.message ?? '', new RegExp(`DelegationSigner web/edge \\(keyless 127\\.0\\.0\\.1:${server.port}\\)`));
    assertVerifies(s, 'web-dc');
    assert.deepEqual(s.health.at(-1), { signerId: 'DelegationSigner/web/edge', ready: true, reason: 'KeyServerReachable', message: `key server 127.0.0.1:${server.port} answers` });
  } finally {
    await s.keyless.close();
    await server.close();
  }
});

void test('shares one pooled client per signer across DelegatedCredentials and replaces it when a Secret changes', async () => {
  const server = await startServer();
  const s = setup();
  try {
    s.cluster.putTlsSecret(NS, 'web-tls', cert, null);
    putKeylessSecrets(s.cluster, NS);
    s.cluster.signers.set(`DelegationSigner/${NS}/edge`, keylessSigner('DelegationSigner', server.port));
    addDc(s, 'a');
    addDc(s, 'b');
    await s.reconciler.reconcile(NS, 'a');
    const first = s.keyless.clientOf('DelegationSigner/web/edge');
    await s.reconciler.reconcile(NS, 'b');
    assert.ok(first);
    assert.equal(s.keyless.clientOf('DelegationSigner/web/edge'), first, 'the second DelegatedCredential reuses the client');
    assert.equal(first.state, 'connected');
    // The client certificate Secret changes: a new client, the old one closed.
    const clientSecret = s.cluster.secrets.get(`${NS}/keyserver-client`);
    assert.ok(clientSecret?.metadata);
    clientSecret.metadata.resourceVersion = '2';
    s.cluster.secrets.delete(`${NS}/b-secret`);
    await s.reconciler.reconcile(NS, 'b');
    const second = s.keyless.clientOf('DelegationSigner/web/edge');
    assert.ok(second && second !== first);
    assert.equal(first.state, 'closed');
    assertVerifies(s, 'b');
  } finally {
    await s.keyless.close();
    await server.close();
  }
});

void test('a key server that is down gives SignerUnavailable naming the address, keeps the output Secret, and recovers by ping', async () => {
  let server = await startServer();
  const port = server.port;
  const s = setup();
  try {
    s.cluster.putTlsSecret(NS, 'web-tls', cert, null);
    putKeylessSecrets(s.cluster, NS);
    s.cluster.signers.set(`DelegationSigner/${NS}/edge`, keylessSigner('DelegationSigner', port, '1s'));
    addDc(s, 'web-dc');
    await s.reconciler.reconcile(NS, 'web-dc');
    const before = structuredClone(s.cluster.secrets.get(`${NS}/web-dc-secret`));
    await server.close();
    // A spec change asks for new credentials while the key server is gone.
    const dc = s.cluster.dcs.get(`${NS}/web-dc`);
    assert.ok(dc);
    s.cluster.dcs.set(`${NS}/web-dc`, { ...dc, metadata: { ...dc.metadata, generation: 2 }, spec: { ...dc.spec, validity: '12h' } });
    const result = await s.reconciler.reconcile(NS, 'web-dc');
    assert.equal(result.kind, 'failed');
    const signerReady = condition(s, 'web-dc', 'SignerReady');
    assert.equal(signerReady?.status, 'False');
    assert.equal(signerReady?.reason, 'SignerUnavailable');
    assert.match(signerReady?.message ?? '', new RegExp(`127\\.0\\.0\\.1:${port}`));
    assert.match(signerReady?.message ?? '', /ECONNREFUSED|not reachable|closed|deadline/);
    assert.match(condition(s, 'web-dc', 'Ready')?.message ?? '', /left in place/);
    assert.deepEqual(s.cluster.secrets.get(`${NS}/web-dc-secret`), before, 'the output Secret is untouched');
    assert.equal(s.health.at(-1)?.ready, false);
    assert.equal(s.health.at(-1)?.reason, 'SignerUnavailable');
    // Back on the same port: the ping loop notices and reports recovery.
    server = await startServer(port);
    const deadline = Date.now() + 15_000;
    while (s.recovered.length === 0 && Date.now() < deadline) await sleep(50);
    assert.deepEqual(s.recovered, ['DelegationSigner/web/edge']);
    const again = await s.reconciler.reconcile(NS, 'web-dc');
    assert.equal(again.kind, 'done');
    assert.equal(condition(s, 'web-dc', 'SignerReady')?.status, 'True');
    assert.notDeepEqual(s.cluster.secrets.get(`${NS}/web-dc-secret`)?.data, before?.data);
    assertVerifies(s, 'web-dc');
  } finally {
    await s.keyless.close();
    await server.close();
  }
});

void test('a keyless ClusterDelegationSigner reads its Secrets from the cluster resource namespace', async () => {
  const server = await startServer();
  const s = setup({ clusterResourceNamespace: 'cert-ops' });
  try {
    s.cluster.putTlsSecret(NS, 'web-tls', cert, null);
    putKeylessSecrets(s.cluster, 'cert-ops');
    s.cluster.signers.set('ClusterDelegationSigner/edge', keylessSigner('ClusterDelegationSigner', server.port));
    s.cluster.namespaces.set(NS, { 'kubernetes.io/metadata.name': NS });
    addDc(s, 'web-dc', 'ClusterDelegationSigner');
    await s.reconciler.reconcile(NS, 'web-dc');
    assert.equal(condition(s, 'web-dc', 'Ready')?.status, 'True');
    assertVerifies(s, 'web-dc');
    assert.ok(s.cluster.calls.includes('get secret cert-ops/keyserver-ca'));
  } finally {
    await s.keyless.close();
    await server.close();
  }
});

void test('a missing CA bundle Secret gives SecretNotFound naming it, for the DelegatedCredential and the signer', async () => {
  const s = setup();
  s.cluster.putTlsSecret(NS, 'web-tls', cert, null);
  s.cluster.signers.set(`DelegationSigner/${NS}/edge`, keylessSigner('DelegationSigner', 2407));
  addDc(s, 'web-dc');
  const result = await s.reconciler.reconcile(NS, 'web-dc');
  assert.equal(result.kind, 'failed');
  assert.equal(condition(s, 'web-dc', 'SignerReady')?.reason, 'SecretNotFound');
  assert.match(condition(s, 'web-dc', 'SignerReady')?.message ?? '', /the CA bundle Secret web\/keyserver-ca of DelegationSigner web\/edge/);
  assert.deepEqual(s.health.map((h) => [h.ready, h.reason]), [[false, 'SecretNotFound']]);
  assert.equal(s.cluster.secrets.has(`${NS}/web-dc-secret`), false);
  await s.keyless.close();
});

void test('a keyless ClusterDelegationSigner missing its CA bundle Secret: the signer learns which Secret, the DelegatedCredential only the reason', async () => {
  const s = setup({ clusterResourceNamespace: 'cert-ops' });
  s.cluster.putTlsSecret(NS, 'web-tls', cert, null);
  s.cluster.signers.set('ClusterDelegationSigner/edge', keylessSigner('ClusterDelegationSigner', 2407));
  s.cluster.namespaces.set(NS, { 'kubernetes.io/metadata.name': NS });
  addDc(s, 'web-dc', 'ClusterDelegationSigner');
  assert.equal((await s.reconciler.reconcile(NS, 'web-dc')).kind, 'failed');
  const signerReady = condition(s, 'web-dc', 'SignerReady');
  assert.equal(signerReady?.reason, 'SecretNotFound');
  assert.match(signerReady?.message ?? '', /ClusterDelegationSigner edge \(keyless 127\.0\.0\.1:2407\): a Secret it needs does not exist; the status of ClusterDelegationSigner edge says more/);
  const everything = JSON.stringify(s.cluster.dcs.get(`${NS}/web-dc`)?.status);
  assert.ok(!everything.includes('cert-ops') && !everything.includes('keyserver-ca'), `no Secret coordinates in the DelegatedCredential status: ${everything}`);
  assert.match(s.health[0]?.message ?? '', /the CA bundle Secret cert-ops\/keyserver-ca of ClusterDelegationSigner edge/);
  await s.keyless.close();
});

void test('a signer status is rewritten only when its Ready condition changes', () => {
  const now = new Date('2026-01-01T00:00:00Z');
  const signer: DelegationSigner = { ...keylessSigner('DelegationSigner', 2407), metadata: { name: 'edge', namespace: NS, generation: 3 } };
  const health: SignerHealth = { signerId: 'DelegationSigner/web/edge', ready: true, reason: 'KeyServerReachable', message: 'key server answers' };
  const status = desiredSignerStatus(signer, health, now);
  assert.equal(status?.conditions?.[0]?.status, 'True');
  assert.equal(status?.observedGeneration, 3);
  const written: DelegationSigner = { ...signer, status };
  assert.equal(desiredSignerStatus(written, health, new Date(now.getTime() + 60_000)), undefined, 'nothing changed: no write');
  const down = desiredSignerStatus(written, { ...health, ready: false, reason: 'SignerUnavailable', message: 'gone' }, new Date(now.getTime() + 60_000));
  assert.equal(down?.conditions?.[0]?.reason, 'SignerUnavailable');
  assert.equal(down?.conditions?.[0]?.lastTransitionTime, '2026-01-01T00:01:00Z');
});

void test('a key server that does not answer costs one timeout: later issues through it fail at once until a ping succeeds', async () => {
  const held: Socket[] = [];
  const blackhole = createTcpServer((socket) => void held.push(socket));
  await new Promise<void>((resolve) => blackhole.listen(0, '127.0.0.1', resolve));
  const port = (blackhole.address() as { port: number }).port;
  const s = setup({ pingMinMs: 60_000 });
  try {
    s.cluster.putTlsSecret(NS, 'web-tls', cert, null);
    putKeylessSecrets(s.cluster, NS);
    s.cluster.signers.set(`DelegationSigner/${NS}/edge`, keylessSigner('DelegationSigner', port, '1s'));
    addDc(s, 'a');
    addDc(s, 'b');
    let started = performance.now();
    assert.equal((await s.reconciler.reconcile(NS, 'a')).kind, 'failed');
    assert.ok(performance.now() - started >= 900, 'the first attempt waits for the timeout');
    started = performance.now();
    assert.equal((await s.reconciler.reconcile(NS, 'b')).kind, 'failed');
    assert.ok(performance.now() - started < 300, `the second fails at once (${(performance.now() - started).toFixed(0)} ms)`);
    const signerReady = condition(s, 'b', 'SignerReady');
    assert.equal(signerReady?.reason, 'SignerUnavailable');
    assert.match(signerReady?.message ?? '', new RegExp(`key server 127\\.0\\.0\\.1:${port} of DelegationSigner web/edge .* is unavailable`));
  } finally {
    await s.keyless.close();
    for (const socket of held) socket.destroy();
    blackhole.close();
  }
});

void test('fallback Keyless with a keyless signer: the sidecar pulls from the signer\'s key server with its CA bundle and an operator-issued identity; CertificateKey is refused', async () => {
  const server = await startServer();
  identityCluster = new FakeCluster();
  const identity = new KeylessIdentity({ api: identityCluster, namespace: 'dc-operator', trustDomain: 'cluster.local', clock: new FakeClock(new Date()), log: silentLog, onChange: () => undefined });
  await identity.maintain();
  const s = setup({ identity });
  try {
    s.cluster.putTlsSecret(NS, 'web-tls', cert, null);
    putKeylessSecrets(s.cluster, NS);
    s.cluster.signers.set(`DelegationSigner/${NS}/edge`, keylessSigner('DelegationSigner', server.port));
    addDc(s, 'web-dc');
    await s.reconciler.reconcile(NS, 'web-dc');
    const data = s.cluster.secrets.get(`${NS}/web-dc-secret`)?.data ?? {};
    const text = (k: string): string => Buffer.from(data[k] ?? '', 'base64').toString('utf8');
    assert.equal(text('fallback'), 'Keyless');
    assert.equal(text('keyless.address'), `127.0.0.1:${server.port}`, "the signer's own key server");
    assert.equal(text('keyless-ca.crt'), pki.ca, "the signer's caBundleSecretRef ca.crt");
    const client = new X509Certificate(text('keyless-client.crt'));
    assert.equal(client.subjectAltName, `URI:spiffe://cluster.local/ns/${NS}/dc/web-dc`);
    const operatorCa = new X509Certificate(Buffer.from(identityCluster.secrets.get('dc-operator/dc-operator-keyless-ca')?.data?.['ca.crt'] ?? '', 'base64'));
    assert.ok(client.verify(operatorCa.publicKey), "issued by the operator's keyless CA (the remote key server must trust it)");
    assert.equal(condition(s, 'web-dc', 'FallbackReady')?.reason, 'KeyServerReady');
    assert.equal(s.cluster.dcs.get(`${NS}/web-dc`)?.status?.keyServer, `127.0.0.1:${server.port}`);
    assert.ok(!identityCluster.secrets.has('dc-operator/dc-operator-keyserver-tls'), 'no in-cluster key server: no serving Secret');

    s.cluster.putDelegatedCredential(NS, 'web-dc', { certificateSecretRef: { name: 'web-tls' }, secretName: 'web-dc-secret', signerRef: { kind: 'DelegationSigner', name: 'edge' }, fallback: 'CertificateKey' }, 2);
    await s.reconciler.reconcile(NS, 'web-dc');
    const refused = condition(s, 'web-dc', 'FallbackReady');
    assert.deepEqual([refused?.status, refused?.reason], ['False', 'CertificateKeyUnavailable']);
    assert.match(refused?.message ?? '', /operator never has it/);
    const after = s.cluster.secrets.get(`${NS}/web-dc-secret`)?.data ?? {};
    assert.ok(!('tls.key' in after) && !('keyless-client.crt' in after), 'neither a key nor keyless parts');
    assert.equal(condition(s, 'web-dc', 'Ready')?.status, 'True', 'the credentials are still issued');
  } finally {
    await s.keyless.close();
    await server.close();
  }
});
