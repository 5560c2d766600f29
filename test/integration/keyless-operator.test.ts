// The operator signing through a real key server (src/keyless, mutual TLS on loopback) on the real
// apiserver: the certificate Secret holds only tls.crt. The key server stops → SignerReady=False,
// the output Secret stays exactly as it was and keeps serving (our TLS server hands its DC to our
// client); the key server comes back on the same port → the operator recovers on its own.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { CoreV1Api, CustomObjectsApi, type KubeConfig, type V1Secret } from '@kubernetes/client-node';
import { startKeyServer, type KeyServer } from '../../src/keyless/server.js';
import { runController, type ControllerHandle } from '../../src/operator/main.js';
import { createLogger } from '../../src/operator/logger.js';
import type { DelegationSigner } from '../../src/operator/api/v1alpha1.js';
import { asIssuer, issueCertificate, KeyUsage, type IssuedCertificate } from '../../src/cli/pki/dev-pki.js';
import { connect, createServer, type TLSServer } from '../../src/tls/index.js';
import {
  delegatedCredentialPeerHooks,
  delegatedCredentialSelector,
  loadDelegatedCredentialSet,
  validateDelegatedCredential,
  type DelegatedCredentialSet,
} from '../../src/tls/delegated/index.js';
import { createTestNamespace, testKubeConfig, testKubeconfigPath, type TestNamespace } from '../support/cluster.js';
import { makeKeylessPki, type KeylessPki } from '../unit/keyless/pki.js';
import { DC, applyCrds, createDelegatedCredential, getDelegatedCredential, putSecret, secretData, waitFor, waitForCondition } from './operator-fixtures.js';

const ALGORITHMS = ['ecdsa_secp256r1_sha256', 'ed25519'];

void describe('keyless signing by the operator on the real apiserver', { timeout: 180_000 }, () => {
  let kc: KubeConfig;
  let core: CoreV1Api;
  let custom: CustomObjectsApi;
  let ns: TestNamespace;
  let controller: ControllerHandle;
  let mtls: KeylessPki;
  let ca: IssuedCertificate;
  let leaf: IssuedCertificate;
  let work: string;
  let keysDir: string;
  let keyServer: KeyServer | undefined;
  let port: number;

  const startKeys = (p: number): Promise<KeyServer> =>
    startKeyServer({ keysDir, ca: mtls.ca, cert: mtls.server.cert, key: mtls.server.key, host: '127.0.0.1', port: p, pollIntervalMs: 1000 });

  async function outputSecret(): Promise<V1Secret> {
    return core.readNamespacedSecret({ namespace: ns.name, name: 'web-dc' });
  }

  async function signer(): Promise<DelegationSigner> {
    return (await custom.getNamespacedCustomObject({ group: DC.group, version: DC.version, namespace: ns.name, plural: 'delegationsigners', name: 'edge' })) as DelegationSigner;
  }

  function waitForSigner(status: string, reason: string): Promise<DelegationSigner> {
    return waitFor(`DelegationSigner edge Ready=${status} (${reason})`, 30_000, async () => {
      const s = await signer();
      const c = s.status?.conditions?.find((x) => x.type === 'Ready');
      return c?.status === status && c.reason === reason ? s : undefined;
    });
  }

  function assertVerifies(secret: V1Secret): void {
    const cert = new X509Certificate(secretData(secret, 'tls.crt'));
    for (const alg of ALGORITHMS) {
      const dc = validateDelegatedCredential(secretData(secret, `${alg}.cred`), { certificate: cert });
      assert.ok(dc.expiresAt.getTime() > Date.now());
    }
    assert.ok(!('tls.key' in (secret.data ?? {})), 'no certificate key in the output Secret');
  }

  before(async () => {
    kc = await testKubeConfig();
    core = kc.makeApiClient(CoreV1Api);
    custom = kc.makeApiClient(CustomObjectsApi);
    await applyCrds(kc);
    ns = await createTestNamespace('keyless-op');
    mtls = makeKeylessPki([]);
    ca = await issueCertificate({ commonName: 'keyless operator test CA', isCA: true }, 'ecdsa-p256');
    leaf = await issueCertificate(
      { commonName: 'localhost', dnsNames: ['localhost'], keyUsage: KeyUsage.digitalSignature, delegationUsage: 'non-critical', extendedKeyUsage: ['serverAuth'] },
      'ecdsa-p256',
      asIssuer(ca),
    );
    // Only the key server holds the certificate's key.
    work = await mkdtemp(join(tmpdir(), 'dc-keyless-operator-'));
    keysDir = join(work, 'keys');
    await mkdir(keysDir);
    await writeFile(join(keysDir, 'web.pem'), leaf.key.privateKeyPem);
    keyServer = await startKeys(0);
    port = keyServer.port;

    const b64 = (s: string): string => Buffer.from(s).toString('base64');
    await putSecret(core, { metadata: { name: 'keyserver-ca', namespace: ns.name }, type: 'Opaque', data: { 'ca.crt': b64(mtls.ca) } });
    await putSecret(core, { metadata: { name: 'keyserver-client', namespace: ns.name }, type: 'kubernetes.io/tls', data: { 'tls.crt': b64(mtls.client.cert), 'tls.key': b64(mtls.client.key) } });
    // kubernetes.io/tls requires the tls.key entry; it is empty: the certificate Secret holds only tls.crt.
    await putSecret(core, { metadata: { name: 'web-tls', namespace: ns.name }, type: 'kubernetes.io/tls', data: { 'tls.crt': b64(leaf.pem), 'tls.key': '' } });
    await custom.createNamespacedCustomObject({
      group: DC.group,
      version: DC.version,
      namespace: ns.name,
      plural: 'delegationsigners',
      body: {
        apiVersion: 'dc-operator.io/v1alpha1',
        kind: 'DelegationSigner',
        metadata: { name: 'edge' },
        spec: { keyless: { address: `127.0.0.1:${port}`, caBundleSecretRef: { name: 'keyserver-ca' }, clientCertificateSecretRef: { name: 'keyserver-client' }, timeout: '2s' } },
      },
    });
    controller = await runController({
      kubeconfig: await testKubeconfigPath(),
      namespace: ns.name,
      metricsPort: 0,
      metricsHost: '127.0.0.1',
      leaderElection: false,
      keylessPingMinMs: 500,
      keylessPingMaxMs: 2000,
      log: createLogger(process.env['DC_TEST_LOG_LEVEL'] ?? 'error'),
    });
  });

  after(async () => {
    await controller?.stop();
    await keyServer?.close();
    await ns?.delete();
    mtls?.cleanup();
    if (work) await rm(work, { recursive: true, force: true });
  });

  void it('issues through the key server while the certificate Secret holds only tls.crt', async () => {
    const certificateSecret = await core.readNamespacedSecret({ namespace: ns.name, name: 'web-tls' });
    assert.equal(certificateSecret.data?.['tls.key'] ?? '', '', 'the certificate Secret has no key');
    await createDelegatedCredential(kc, ns.name, 'web', { certificateSecretRef: { name: 'web-tls' }, secretName: 'web-dc', algorithms: ALGORITHMS as never, signerRef: { kind: 'DelegationSigner', name: 'edge' } });
    const dc = await waitForCondition(kc, ns.name, 'web', 'Ready', 'True', undefined, 30_000);
    const signerReady = dc.status?.conditions?.find((c) => c.type === 'SignerReady');
    assert.equal(signerReady?.status, 'True');
    assert.match(signerReady?.message ?? '', new RegExp(`keyless 127\\.0\\.0\\.1:${port}`));
    assertVerifies(await outputSecret());
    const s = await waitForSigner('True', 'KeyServerReachable');
    assert.match(s.status?.conditions?.[0]?.message ?? '', new RegExp(`key server 127\\.0\\.0\\.1:${port} answers`));
  });

  void it('with the key server stopped, a re-issue fails with SignerUnavailable and the existing credential stays and keeps serving', async () => {
    const before = await outputSecret();
    await keyServer?.close();
    keyServer = undefined;
    // Force a re-issue: a spec change.
    const dc = await getDelegatedCredential(kc, ns.name, 'web');
    await custom.replaceNamespacedCustomObject({ ...DC, namespace: ns.name, name: 'web', body: { ...dc, spec: { ...dc.spec, validity: '12h' } } });
    const failed = await waitForCondition(kc, ns.name, 'web', 'SignerReady', 'False', 'SignerUnavailable', 30_000);
    const message = failed.status?.conditions?.find((c) => c.type === 'SignerReady')?.message ?? '';
    assert.match(message, new RegExp(`127\\.0\\.0\\.1:${port}`), 'the message names the key server');
    assert.match(message, /ECONNREFUSED|not reachable|deadline|closed/, 'and says what went wrong');
    const ready = failed.status?.conditions?.find((c) => c.type === 'Ready');
    assert.equal(ready?.status, 'False');
    assert.match(ready?.message ?? '', /left in place/);
    await waitForSigner('False', 'SignerUnavailable');

    const after = await outputSecret();
    assert.equal(after.metadata?.resourceVersion, before.metadata?.resourceVersion, 'the output Secret was not touched');
    assert.deepEqual(after.data, before.data);
    // The sidecar's loader takes the Secret as mounted; our server serves its DC to our client.
    const files = Object.fromEntries(Object.entries(after.data ?? {}).map(([k, v]) => [k, new Uint8Array(Buffer.from(v, 'base64'))]));
    const set = loadDelegatedCredentialSet([{ label: `${ns.name}/web-dc`, files }]);
    assert.equal(set.entries.length, ALGORITHMS.length);
    const mode = await handshake(set, ca.pem);
    assert.equal(mode.authentication, 'delegated-credential');
  });

  void it('recovers on its own when the key server is back on the same port', async () => {
    const before = await outputSecret();
    keyServer = await startKeys(port);
    const dc = await waitForCondition(kc, ns.name, 'web', 'Ready', 'True', undefined, 60_000);
    assert.equal(dc.status?.conditions?.find((c) => c.type === 'SignerReady')?.status, 'True');
    const after = await outputSecret();
    assert.notEqual(after.metadata?.resourceVersion, before.metadata?.resourceVersion, 'new credentials were issued');
    assertVerifies(after);
    const expiry = Date.parse(dc.status?.notAfter ?? '');
    assert.ok(expiry - Date.now() <= 12 * 3600_000 && expiry - Date.now() > 11.9 * 3600_000, 'issued with the new 12h validity');
    await waitForSigner('True', 'KeyServerReachable');
    const metrics = await waitFor('the signer Ready metric', 10_000, async () => {
      const text = await (await fetch(`http://127.0.0.1:${controller.port}/metrics`)).text();
      return text.includes(`dc_operator_signer_ready_status{kind="DelegationSigner",namespace="${ns.name}",name="edge",condition="True"} 1`) ? text : undefined;
    });
    assert.match(metrics, /dc_operator_sign_duration_seconds_count\{algorithm="ed25519",signer="keyless"\} [1-9]/);
  });
});

/** One handshake: our TLS server with the credential set, our client offering DCs; the server's auth mode. */
async function handshake(set: DelegatedCredentialSet, caPem: string): Promise<{ authentication: string }> {
  const server: TLSServer = createServer({ selectCredential: delegatedCredentialSelector(set) }, (socket) => socket.pipe(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  try {
    return await new Promise((resolve, reject) => {
      const client = connect(
        { host: '127.0.0.1', port: address.port, servername: 'localhost', ca: [caPem], serverCredentialHooks: delegatedCredentialPeerHooks({ peer: 'server' }) },
        () => {
          const mode = client.handshakeMode?.server;
          client.end();
          resolve({ authentication: String(mode?.authentication) });
        },
      );
      client.on('error', reject);
    });
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
