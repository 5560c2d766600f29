// `dc-operator keyserver --from-cluster` as a real process against the real apiserver, signing over
// real mutual TLS with our keyless client: each sidecar identity signs with its own certificate's
// key only; a namespace asking for another's key is refused in-band and logged; a key rotated in
// the Secret is followed; a deleted DelegatedCredential revokes the grant. The serving Secret the
// controller would issue is created by the test.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, createPrivateKey, createPublicKey, verify, X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { KeylessClient } from '../../src/keyless/client.js';
import { KeylessRemoteError } from '../../src/keyless/errors.js';
import { ErrorCode, Opcode } from '../../src/keyless/protocol.js';
import { computeSki } from '../../src/keyless/ski.js';
import { controllerIdentityUri, sidecarIdentityUri } from '../../src/operator/api/serving-bundle.js';
import { secretMetadataClient } from '../../src/keyserver/secret-metadata.js';
import { createClientCert } from '../../src/pki/certs.js';
import { createTestNamespace, testApiClient, testKubeConfig, testKubeconfigPath, type TestNamespace } from '../support/cluster.js';
import { freePort, repoRoot } from '../support/control-plane.js';
import { certificateVerifyContent, delegatedCredentialContent, signAsSidecar } from '../support/sidecar-signing.js';
import { makeIdentityPki, rsaKeyOfSize, type IdentityPki, type Pair } from '../unit/keyserver/pki.js';
import { applyCrds, createDelegatedCredential, DC, putSecret, tlsSecret, waitFor } from './operator-fixtures.js';

let kc: KubeConfig;
let core: CoreV1Api;
let a: TestNamespace;
let b: TestNamespace;
let own: TestNamespace;
let pki: IdentityPki;

before(async () => {
  kc = await testKubeConfig();
  core = kc.makeApiClient(CoreV1Api);
  await applyCrds(kc);
  [a, b, own] = await Promise.all([createTestNamespace('ks-a'), createTestNamespace('ks-b'), createTestNamespace('ks-own')]);
  pki = makeIdentityPki();
});

after(async () => {
  await Promise.all([a?.delete(), b?.delete(), own?.delete()]);
  pki?.cleanup();
});

const ski = (pair: Pair): Uint8Array => computeSki(createPrivateKey(pair.key));

/** Has `message` signed whole (opcode 0xC0) as a sidecar does and checks it with the certificate. */
async function signWith(client: KeylessClient, pair: Pair, message: Uint8Array = certificateVerifyContent()): Promise<void> {
  const signature = await signAsSidecar(client, ski(pair), message, { timeoutMs: 5000 });
  assert.ok(verify('sha256', message, createPublicKey(pair.cert), signature), 'the signature verifies with the certificate');
}

/** The same through the documented digest opcode, which hides what was hashed. */
async function signDigestWith(client: KeylessClient, pair: Pair): Promise<void> {
  await client.sign(ski(pair), Opcode.ecdsaSignSha256, createHash('sha256').update(certificateVerifyContent()).digest(), { timeoutMs: 5000 });
}

async function refusal(promise: Promise<unknown>): Promise<number | undefined> {
  try {
    await promise;
    return undefined;
  } catch (err) {
    if (err instanceof KeylessRemoteError) return err.code;
    throw err;
  }
}

interface Running {
  child: ChildProcess;
  lines(): Record<string, unknown>[];
  exited: Promise<number | null>;
}

/** A keyless client with a sidecar's client certificate (closed by the caller through `clients`). */
function sidecarClient(port: number, pair: Pair, clients: KeylessClient[]): KeylessClient {
  const c = new KeylessClient({ address: `127.0.0.1:${port}`, ca: pki.ca.cert, cert: pair.cert, key: pair.key, timeoutMs: 5000 });
  clients.push(c);
  return c;
}

/** A sidecar's client certificate as a controller from before UIDs issued it (no subject UID), at `now`. */
async function legacyClientCertificate(uri: string, now: Date): Promise<Pair> {
  const ca = new X509Certificate(pki.ca.cert);
  const made = await createClientCert({ certPem: pki.ca.cert, keyPem: pki.ca.key, notBefore: ca.validFromDate, notAfter: ca.validToDate }, { uri, now, notAfter: new Date(now.getTime() + 3_600_000) });
  return { cert: made.certPem, key: made.keyPem };
}

function creationTimeOf(dc: { metadata: { creationTimestamp?: Date | string } }): number {
  const t = dc.metadata.creationTimestamp;
  const ms = t instanceof Date ? t.getTime() : Date.parse(String(t));
  assert.ok(Number.isFinite(ms), `creationTimestamp ${String(t)}`);
  return ms;
}

/** The key server's serving Secret, as the controller would issue it. */
function servingSecret(cert: string, key: string, ca: string) {
  return {
    metadata: { namespace: own.name, name: 'dc-operator-keyserver-tls' },
    type: 'kubernetes.io/tls',
    data: Object.fromEntries(Object.entries({ 'tls.crt': cert, 'tls.key': key, 'ca.crt': ca }).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
  };
}

async function startKeyServer(port: number, probes: number): Promise<Running> {
  const child = spawn(
    process.execPath,
    [join(repoRoot, 'dist', 'src', 'cli', 'dc-operator.js'), 'keyserver', '--from-cluster', '--kubeconfig', await testKubeconfigPath(),
      '--namespace', a.name, '--namespace', b.name, '--operator-namespace', own.name,
      '--address', '127.0.0.1', '--port', String(port), '--metrics-port', String(probes)],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const lines = (): Record<string, unknown>[] =>
    stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  return { child, lines, exited };
}

void it('serves each identity its own key over mTLS, refuses and logs a cross-namespace request, follows a key rotation, a serving-certificate rotation and a deletion', { timeout: 120_000 }, async () => {
  const [port, probes] = [await freePort(), await freePort()];
  const ks = await startKeyServer(port, probes);
  const clients: KeylessClient[] = [];
  try {
    // Not ready without its serving Secret, and says why.
    const notReady = await waitFor('/readyz answers', 20_000, async () => {
      const r = await fetch(`http://127.0.0.1:${probes}/readyz`);
      const text = await r.text();
      return r.status === 503 && text.includes('does not exist') ? text : undefined;
    });
    assert.match(notReady, /Secret ks-own-[0-9a-f]+\/dc-operator-keyserver-tls does not exist yet: the controller issues it/);

    const certA = pki.certificate('www-a');
    const certB = pki.certificate('www-b');
    await putSecret(core, tlsSecret(a.name, 'www-tls', certA.cert, certA.key));
    await putSecret(core, tlsSecret(b.name, 'www-tls', certB.cert, certB.key));
    const dcA = await createDelegatedCredential(kc, a.name, 'www', { certificateSecretRef: { name: 'www-tls' }, secretName: 'www-dc' });
    const dcB = await createDelegatedCredential(kc, b.name, 'www', { certificateSecretRef: { name: 'www-tls' }, secretName: 'www-dc' });
    await putSecret(core, servingSecret(pki.server.cert, pki.server.key, pki.ca.cert));
    await waitFor('/readyz 200', 30_000, async () => ((await fetch(`http://127.0.0.1:${probes}/readyz`)).status === 200 ? true : undefined));

    const client = (name: string, ...uris: string[]): KeylessClient => sidecarClient(port, pki.client(name, ...uris), clients);
    const idA = sidecarIdentityUri({ trustDomain: 'cluster.local', namespace: a.name, name: 'www' });
    const idB = sidecarIdentityUri({ trustDomain: 'cluster.local', namespace: b.name, name: 'www' });
    const sidecarA = sidecarClient(port, pki.sidecar('sidecar-a', idA, dcA.metadata.uid!), clients);
    const sidecarB = sidecarClient(port, pki.sidecar('sidecar-b', idB, dcB.metadata.uid!), clients);

    // Own key: signs (the grant may land a moment after readiness's first pass).
    await waitFor('A signs with its own key', 20_000, async () => (await refusal(signWith(sidecarA, certA))) === undefined ? true : undefined);
    await signWith(sidecarB, certB);

    // Namespace A asking for namespace B's key: refused in-band (key not found), logged with why.
    assert.equal(await refusal(signWith(sidecarA, certB)), ErrorCode.keyNotFound);
    assert.equal(await refusal(signWith(sidecarB, certA)), ErrorCode.keyNotFound);
    const deniedLine = await waitFor('the refusal is logged', 5000, () =>
      Promise.resolve(ks.lines().find((l) => l['msg'] === 'keyserver: signing refused' && l['identity'] === idA)));
    assert.equal(deniedLine['result'], 'denied');
    assert.equal(deniedLine['ski'], Buffer.from(ski(certB)).toString('hex'));
    assert.match(String(deniedLine['why']), /may sign only with key/);
    // The connection stays usable after a refusal.
    await signWith(sidecarA, certA);

    // Only handshake signatures, with its own key: not a digest (what was hashed is unknown), not
    // a delegated credential a stolen identity could mint to outlive its client certificate.
    assert.equal(await refusal(signDigestWith(sidecarA, certA)), ErrorCode.keyNotFound);
    assert.equal(await refusal(signWith(sidecarA, certA, delegatedCredentialContent())), ErrorCode.keyNotFound);
    const mintLine = await waitFor('the minting attempt is logged', 5000, () =>
      Promise.resolve(ks.lines().find((l) => l['msg'] === 'keyserver: signing refused' && l['identity'] === idA && /delegated credential/.test(String(l['why'])))));
    assert.equal(mintLine['result'], 'denied');

    // The controller identity may ping, not sign; an identity without a DelegatedCredential gets nothing.
    const controller = client('controller', controllerIdentityUri('cluster.local'));
    assert.ok((await controller.ping()) >= 0);
    assert.equal(await refusal(signWith(controller, certA)), ErrorCode.keyNotFound);
    const stranger = client('stranger', sidecarIdentityUri({ trustDomain: 'cluster.local', namespace: a.name, name: 'other' }));
    assert.equal(await refusal(signWith(stranger, certA)), ErrorCode.keyNotFound);

    // Metrics per tenant.
    const metrics = await (await fetch(`http://127.0.0.1:${probes}/metrics`)).text();
    // Labelled by tenant (namespace), never by DelegatedCredential name: /metrics is readable from the probes port.
    assert.ok(!metrics.includes(idA), 'no identity in /metrics');
    const tenantA = `ns/${a.name}`;
    const deniedSeries = new RegExp(`keyless_server_signatures_total\\{tenant="${tenantA.replace(/[/.]/g, '\\$&')}",opcode="signMessage",result="denied"\\} (\\d+)`).exec(metrics);
    // B's key and the minting attempt; refusals while the grant was still loading count too.
    assert.ok(Number(deniedSeries?.[1]) >= 2, `denied signMessage requests of A: ${deniedSeries?.[1]}`);
    assert.match(metrics, new RegExp(`keyless_server_signatures_total\\{tenant="${tenantA.replace(/[/.]/g, '\\$&')}",opcode="ecdsaSignSha256",result="denied"\\} 1`));

    // Rotation: a new certificate and key in A's Secret are followed; the old key is no longer served.
    const rotated = pki.certificate('www-a-2');
    await putSecret(core, tlsSecret(a.name, 'www-tls', rotated.cert, rotated.key));
    await waitFor('A signs with the rotated key', 20_000, async () => (await refusal(signWith(sidecarA, rotated))) === undefined ? true : undefined);
    assert.equal(await refusal(signWith(sidecarA, certA)), ErrorCode.keyNotFound);
    assert.ok(ks.lines().some((l) => l['msg'] === 'keyserver: grant replaced' && l['identity'] === idA));

    // A broken rotation (key of another certificate) never replaces the working key.
    await putSecret(core, tlsSecret(a.name, 'www-tls', certB.cert, rotated.key));
    await waitFor('the mismatch is logged', 20_000, () =>
      Promise.resolve(ks.lines().find((l) => l['msg'] === 'keyserver: new key refused, keeping the working one' && l['identity'] === idA)));
    await signWith(sidecarA, rotated);

    // The serving Secret rotated (the controller re-issues it): new connections get the new
    // certificate; a broken version is refused and the working one kept.
    const nextPki = makeIdentityPki();
    try {
      await putSecret(core, servingSecret(nextPki.server.cert, pki.server.key, pki.ca.cert)); // key of another certificate
      await waitFor('the broken serving Secret is refused', 20_000, () =>
        Promise.resolve(ks.lines().find((l) => l['msg'] === 'keyserver: new serving credentials refused, keeping the working ones')));
      // A new connection still gets the working certificate (our CA's).
      await signWith(sidecarClient(port, pki.sidecar('late-a', idA, dcA.metadata.uid!), clients), rotated);
      await putSecret(core, servingSecret(nextPki.server.cert, nextPki.server.key, pki.ca.cert));
      const pair = pki.sidecar('sidecar-a-new', idA, dcA.metadata.uid!);
      const trustsNewServer = new KeylessClient({ address: `127.0.0.1:${port}`, ca: nextPki.ca.cert, cert: pair.cert, key: pair.key, timeoutMs: 3000, maxBackoffMs: 500 });
      clients.push(trustsNewServer);
      await waitFor('a new connection gets the rotated serving certificate', 20_000, async () => (await refusal(signWith(trustsNewServer, rotated))) === undefined ? true : undefined);
    } finally {
      nextPki.cleanup();
    }

    // Deleting the DelegatedCredential revokes the grant.
    await kc.makeApiClient(CustomObjectsApi).deleteNamespacedCustomObject({ ...DC, namespace: a.name, name: 'www' });
    await waitFor('A is refused after its DelegatedCredential was deleted', 20_000, async () =>
      (await refusal(signWith(sidecarA, rotated))) === ErrorCode.keyNotFound ? true : undefined);
    await signWith(sidecarB, certB);
    assert.ok(ks.lines().some((l) => l['msg'] === 'keyserver: grant revoked' && l['identity'] === idA));
    // The key never reaches the log.
    const log = JSON.stringify(ks.lines());
    for (const pem of [certA.key, certB.key, rotated.key, pki.server.key]) assert.ok(!log.includes(pem.split('\n')[1]!), 'no key material in the log');
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    ks.child.kill('SIGTERM');
  }
  assert.equal(await ks.exited, 0, JSON.stringify(ks.lines().slice(-20)));
});

void it('a DelegatedCredential deleted and re-created under its name is not served to a client certificate issued for the old one (another UID), nor to one without a UID issued before it was created', { timeout: 120_000 }, async () => {
  const [port, probes] = [await freePort(), await freePort()];
  await putSecret(core, servingSecret(pki.server.cert, pki.server.key, pki.ca.cert));
  const ks = await startKeyServer(port, probes);
  const clients: KeylessClient[] = [];
  const custom = kc.makeApiClient(CustomObjectsApi);
  const signs = (c: KeylessClient, pair: Pair) => async () => ((await refusal(signWith(c, pair))) === undefined ? true : undefined);
  const refusedLine = (identity: string, why: RegExp) => () =>
    Promise.resolve(ks.lines().find((l) => l['msg'] === 'keyserver: signing refused' && l['identity'] === identity && why.test(String(l['why']))));
  try {
    const first = pki.certificate('again-1');
    const second = pki.certificate('again-2');
    await putSecret(core, tlsSecret(b.name, 'again-1-tls', first.cert, first.key));
    await putSecret(core, tlsSecret(b.name, 'again-2-tls', second.cert, second.key));
    const id = sidecarIdentityUri({ trustDomain: 'cluster.local', namespace: b.name, name: 'again' });
    const dc1 = await createDelegatedCredential(kc, b.name, 'again', { certificateSecretRef: { name: 'again-1-tls' }, secretName: 'again-dc' });
    const old = sidecarClient(port, pki.sidecar('again-old', id, dc1.metadata.uid!), clients);
    await waitFor('the first DelegatedCredential\'s client signs', 30_000, signs(old, first));

    // A client certificate without the UID (from a controller before this rule): refused if issued
    // before this DelegatedCredential was created, served if issued after it (the upgrade bridge).
    const created = creationTimeOf(dc1);
    const early = sidecarClient(port, await legacyClientCertificate(id, new Date(created - 60_000)), clients);
    assert.equal(await refusal(signWith(early, first)), ErrorCode.keyNotFound);
    await waitFor('the refusal of the certificate without UID is logged', 5000, refusedLine(id, /names no DelegatedCredential UID .*not issued after the current one was created/));
    // creationTimestamp has one-second resolution: the bridge needs the issue a second past it.
    for (let i = 0; i < 30 && Date.now() < created + 1500; i++) await new Promise((r) => setTimeout(r, 100));
    const legacy = sidecarClient(port, await legacyClientCertificate(id, new Date()), clients);
    await signWith(legacy, first);

    // Deleted and re-created under the same name, with another certificate.
    await custom.deleteNamespacedCustomObject({ ...DC, namespace: b.name, name: 'again' });
    const dc2 = await createDelegatedCredential(kc, b.name, 'again', { certificateSecretRef: { name: 'again-2-tls' }, secretName: 'again-dc' });
    assert.notEqual(dc2.metadata.uid, dc1.metadata.uid);
    const current = sidecarClient(port, pki.sidecar('again-new', id, dc2.metadata.uid!), clients);
    await waitFor('the new DelegatedCredential\'s client signs with its certificate\'s key', 30_000, signs(current, second));
    assert.equal(await refusal(signWith(old, second)), ErrorCode.keyNotFound, 'the old client certificate is refused the new key');
    assert.equal(await refusal(signWith(old, first)), ErrorCode.keyNotFound, 'and the old key');
    assert.equal(await refusal(signWith(legacy, second)), ErrorCode.keyNotFound, 'a certificate without UID issued before the re-creation is refused');
    await waitFor('the refusal names both UIDs', 5000, refusedLine(id, new RegExp(`issued for DelegatedCredential UID ${dc1.metadata.uid!}.*the current one is ${dc2.metadata.uid!}`)));

    // Re-created again with the same certificate: the key is the same, the UID is not.
    await custom.deleteNamespacedCustomObject({ ...DC, namespace: b.name, name: 'again' });
    const dc3 = await createDelegatedCredential(kc, b.name, 'again', { certificateSecretRef: { name: 'again-2-tls' }, secretName: 'again-dc' });
    const third = sidecarClient(port, pki.sidecar('again-third', id, dc3.metadata.uid!), clients);
    await waitFor('the third DelegatedCredential\'s client signs', 30_000, signs(third, second));
    await waitFor('the second one\'s client is refused the same key', 30_000, async () => ((await refusal(signWith(current, second))) === ErrorCode.keyNotFound ? true : undefined));
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    ks.child.kill('SIGTERM');
  }
  assert.equal(await ks.exited, 0, JSON.stringify(ks.lines().slice(-20)));
});

void it('refuses an RSA key over 8192 bits from a Secret: the grant problem is logged with what to use, and the identity gets no key', { timeout: 120_000 }, async () => {
  const [port, probes] = [await freePort(), await freePort()];
  await putSecret(core, servingSecret(pki.server.cert, pki.server.key, pki.ca.cert));
  const ks = await startKeyServer(port, probes);
  const clients: KeylessClient[] = [];
  try {
    // A tenant's self-signed certificate suffices to name a key; the key's size is judged first.
    const any = pki.certificate('huge-rsa');
    const huge = rsaKeyOfSize(16384).export({ type: 'pkcs8', format: 'pem' }) as string;
    await putSecret(core, tlsSecret(a.name, 'huge-tls', any.cert, huge));
    const dc = await createDelegatedCredential(kc, a.name, 'huge', { certificateSecretRef: { name: 'huge-tls' }, secretName: 'huge-dc' });
    const line = await waitFor('the key is refused in the log', 30_000, () =>
      Promise.resolve(ks.lines().find((l) => l['msg'] === 'keyserver: key refused, identity gets no key' && /RSA key of 16384 bits is over the 8192-bit maximum/.test(String(l['error'])))),
    );
    assert.match(String(line['error']), /huge-tls.*use RSA 8192 or smaller, or an ECDSA key/);
    const id = sidecarIdentityUri({ trustDomain: 'cluster.local', namespace: a.name, name: 'huge' });
    const sidecar = sidecarClient(port, pki.sidecar('huge-sidecar', id, dc.metadata.uid!), clients);
    const hugeSki = computeSki(createPublicKey(createPrivateKey(huge)));
    const refused = await refusal(sidecar.signMessage(hugeSki, 0x0804, certificateVerifyContent(), () => {
      throw new Error('no digest path');
    }, { timeoutMs: 5000 }));
    assert.equal(refused, ErrorCode.keyNotFound);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    ks.child.kill('SIGTERM');
  }
  assert.equal(await ks.exited, 0, JSON.stringify(ks.lines().slice(-20)));
});

void it('its Secret watches receive metadata only from the real apiserver: a list and a watch event carry no data, a GET still does', { timeout: 60_000 }, async () => {
  const cert = pki.certificate('metadata-only');
  await putSecret(core, tlsSecret(b.name, 'meta-tls', cert.cert, cert.key));
  const source = secretMetadataClient(await testApiClient()).secretSource(b.name, { fieldSelector: 'type=kubernetes.io/tls' });
  const listed = await source.list();
  const item = listed.items.find((s) => s.metadata?.name === 'meta-tls');
  assert.ok(item?.metadata?.resourceVersion, 'listed with its metadata');
  assert.deepEqual(listed.items.map((s) => Object.keys(s).filter((k) => k === 'data' || k === 'stringData')).flat(), [], 'no data in the list');

  const events: { type: string; object: Record<string, unknown> }[] = [];
  const watch = await source.watch(listed.resourceVersion, (type, object) => events.push({ type, object: object as unknown as Record<string, unknown> }), () => undefined);
  try {
    const rotated = pki.certificate('metadata-only-2');
    await putSecret(core, tlsSecret(b.name, 'meta-tls', rotated.cert, rotated.key));
    const event = await waitFor('the change arrives on the watch', 20_000, () => Promise.resolve(events.find((e) => e.type === 'MODIFIED')));
    assert.equal((event.object['metadata'] as { name?: string }).name, 'meta-tls');
    assert.equal(event.object['data'], undefined, 'no data in the watch event');
    assert.equal(event.object['kind'], 'PartialObjectMetadata');
  } finally {
    watch.abort();
  }
  // The grant's own read is a normal GET with the data.
  const full = await core.readNamespacedSecret({ namespace: b.name, name: 'meta-tls' });
  assert.ok(full.data?.['tls.key']);
});
