// spec.fallback on the real apiserver, with a real key server (src/keyless, mutual TLS on loopback)
// serving with the certificate the controller issued into its serving Secret: the leader
// bootstraps the keyless CA and that Secret, a DelegatedCredential with the default fallback gets
// the whole serving bundle (its client identity is accepted by the key server), None and
// CertificateKey lay out theirs, `kubectl get dc -o wide` shows the fallback, and the probe follows
// the key server going away and coming back.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { spawn } from 'node:child_process';
import { X509Certificate, createPrivateKey, createPublicKey, verify } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CoreV1Api, type KubeConfig, type V1Secret } from '@kubernetes/client-node';
import { KeylessClient } from '../../src/keyless/client.js';
import { computeSki } from '../../src/keyless/ski.js';
import { startKeyServer, type KeyServer } from '../../src/keyless/server.js';
import { createLogger } from '../../src/operator/logger.js';
import { runController, type ControllerHandle } from '../../src/operator/main.js';
import { createTestNamespace, testKubeConfig, testKubeconfigPath, type TestNamespace } from '../support/cluster.js';
import { ensureBinaries, freePort, kubectlPath, repoRoot } from '../support/control-plane.js';
import { certificateVerifyContent, signAsSidecar } from '../support/sidecar-signing.js';
import { applyCrds, createDelegatedCredential, dcctlCertificate, putSecret, secretData, tlsSecret, waitFor, waitForCondition } from './operator-fixtures.js';

void describe('spec.fallback on the real apiserver', { timeout: 180_000 }, () => {
  let kc: KubeConfig;
  let core: CoreV1Api;
  let ns: TestNamespace;
  let controller: ControllerHandle;
  let keyServer: KeyServer | undefined;
  let work: string;
  let address: string;
  let port: number;
  let cert: { crt: string; key: string };

  const readSecret = async (name: string): Promise<V1Secret | undefined> => {
    try {
      return await core.readNamespacedSecret({ namespace: ns.name, name });
    } catch (err) {
      if ((err as { code?: number }).code === 404) return undefined;
      throw err;
    }
  };
  const text = (secret: V1Secret | undefined, key: string): string => secretData(secret, key).toString('utf8');

  /** The key server, serving with what the controller wrote into dc-operator-keyserver-tls. */
  async function startKeys(): Promise<KeyServer> {
    const serving = await waitFor('the key server serving Secret', 30_000, () => readSecret('dc-operator-keyserver-tls'));
    return startKeyServer({ keysDir: join(work, 'keys'), ca: text(serving, 'ca.crt'), cert: text(serving, 'tls.crt'), key: text(serving, 'tls.key'), host: '127.0.0.1', port, pollIntervalMs: 1000 });
  }

  before(async () => {
    kc = await testKubeConfig();
    core = kc.makeApiClient(CoreV1Api);
    await applyCrds(kc);
    ns = await createTestNamespace('fallback');
    work = await mkdtemp(join(tmpdir(), 'dc-fallback-'));
    cert = dcctlCertificate();
    await mkdir(join(work, 'keys'));
    await writeFile(join(work, 'keys', 'web.key'), cert.key, { mode: 0o600 });
    port = await freePort();
    address = `127.0.0.1:${port}`;
    controller = await runController({
      kubeconfig: await testKubeconfigPath(),
      namespace: ns.name,
      operatorNamespace: ns.name,
      metricsPort: 0,
      metricsHost: '127.0.0.1',
      leaderElection: false,
      keylessFallback: { keyServerAddress: address, probeIntervalMs: 300 },
      log: createLogger(process.env['DC_TEST_LOG_LEVEL'] ?? 'error'),
    });
    keyServer = await startKeys();
    await putSecret(core, tlsSecret(ns.name, 'web-tls', cert.crt, cert.key));
  });

  after(async () => {
    await controller?.stop();
    await keyServer?.close();
    await ns?.delete();
    if (work) await rm(work, { recursive: true, force: true });
  });

  void it('bootstraps the keyless CA (ca.crt, ca.key) and the key server serving Secret for the address, chained to it', async () => {
    const ca = await readSecret('dc-operator-keyless-ca');
    assert.deepEqual(Object.keys(ca?.data ?? {}).sort(), ['ca.crt', 'ca.key']);
    const serving = await readSecret('dc-operator-keyserver-tls');
    assert.equal(serving?.type, 'kubernetes.io/tls');
    const servingCert = new X509Certificate(text(serving, 'tls.crt'));
    assert.equal(servingCert.subjectAltName, 'IP Address:127.0.0.1');
    assert.ok(servingCert.verify(new X509Certificate(text(ca, 'ca.crt')).publicKey), 'signed by the keyless CA');
    assert.equal(text(serving, 'ca.crt'), text(ca, 'ca.crt'), 'the key server trusts the keyless CA bundle');
  });

  void it('a DelegatedCredential with the default fallback gets the whole bundle; its identity names it, chains to keyless-ca.crt, and the key server accepts it', async () => {
    await createDelegatedCredential(kc, ns.name, 'web-dc', { certificateSecretRef: { name: 'web-tls' }, secretName: 'web-out' });
    const dc = await waitForCondition(kc, ns.name, 'web-dc', 'FallbackReady', 'True', 'KeyServerReady', 30_000);
    assert.equal(dc.spec.fallback, 'Keyless', 'defaulted by the API server');
    assert.equal(dc.status?.fallback, 'Keyless');
    assert.equal(dc.status?.keyServer, address);
    assert.equal(dc.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'True');
    const out = await readSecret('web-out');
    assert.deepEqual(Object.keys(out?.data ?? {}).sort(), ['ecdsa_secp256r1_sha256.cred', 'ecdsa_secp256r1_sha256.key', 'fallback', 'keyless-ca.crt', 'keyless-client.crt', 'keyless-client.key', 'keyless.address', 'tls.crt']);
    assert.equal(text(out, 'fallback'), 'Keyless');
    assert.equal(text(out, 'keyless.address'), address);
    const client = new X509Certificate(text(out, 'keyless-client.crt'));
    assert.equal(client.subjectAltName, `URI:spiffe://cluster.local/ns/${ns.name}/dc/web-dc`);
    assert.ok(dc.metadata.uid, 'the API server gave the DelegatedCredential a UID');
    assert.match(client.subject, new RegExp(`^UID=${dc.metadata.uid}$`, 'm'), 'the identity names this DelegatedCredential object, not only its name');
    const caCert = new X509Certificate(text(out, 'keyless-ca.crt'));
    assert.ok(client.checkIssued(caCert) && client.verify(caCert.publicKey), 'chains to keyless-ca.crt');
    assert.ok(new Date(client.validTo).getTime() <= new Date(dc.status?.notAfter ?? 0).getTime() + 1000, 'no longer than the credentials');
    // The sidecar's view: exactly what the bundle holds reaches the key server over mutual TLS.
    const sidecar = new KeylessClient({ address: text(out, 'keyless.address'), ca: text(out, 'keyless-ca.crt'), cert: text(out, 'keyless-client.crt'), key: text(out, 'keyless-client.key'), timeoutMs: 5000 });
    try {
      assert.ok((await sidecar.ping()) >= 0);
    } finally {
      await sidecar.close();
    }
    const keyPem = cert.key.split('\n')[1] ?? 'unreachable';
    for (const v of Object.values(out?.data ?? {})) assert.ok(!Buffer.from(v, 'base64').toString().includes(keyPem), 'no certificate key in the bundle');
  });

  void it('fallback None holds no keyless parts; CertificateKey holds tls.key with a warning condition', async () => {
    await createDelegatedCredential(kc, ns.name, 'none-dc', { certificateSecretRef: { name: 'web-tls' }, secretName: 'none-out', fallback: 'None' });
    await createDelegatedCredential(kc, ns.name, 'key-dc', { certificateSecretRef: { name: 'web-tls' }, secretName: 'key-out', fallback: 'CertificateKey' });
    await waitForCondition(kc, ns.name, 'none-dc', 'FallbackReady', 'True', 'DisabledBySpec', 30_000);
    const none = await readSecret('none-out');
    assert.deepEqual(Object.keys(none?.data ?? {}).sort(), ['ecdsa_secp256r1_sha256.cred', 'ecdsa_secp256r1_sha256.key', 'fallback', 'tls.crt']);
    const keyDc = await waitForCondition(kc, ns.name, 'key-dc', 'FallbackReady', 'True', 'CertificateKeyInPod', 30_000);
    assert.match(keyDc.status?.conditions?.find((c) => c.type === 'FallbackReady')?.message ?? '', /every pod that mounts it holds the key/);
    const withKey = await readSecret('key-out');
    assert.equal(text(withKey, 'tls.key'), cert.key);
    assert.ok(!text(withKey, 'tls.crt').includes('PRIVATE KEY'));
    assert.ok(!('keyless-client.crt' in (withKey?.data ?? {})));
  });

  void it('kubectl get dc -o wide shows the fallback, whether it is ready, and the key server', async () => {
    const kubectl = kubectlPath(ensureBinaries());
    const table = execFileSync(kubectl, ['--kubeconfig', await testKubeconfigPath(), 'get', 'dc', '-n', ns.name, '-o', 'wide'], { encoding: 'utf8' });
    const [header = '', ...rows] = table.trim().split('\n');
    const columns = header.split(/\s{2,}/);
    for (const c of ['FALLBACK', 'FALLBACK-READY', 'KEY-SERVER']) assert.ok(columns.includes(c), `column ${c} in ${header}`);
    const row = (name: string): Record<string, string> => {
      const line = rows.find((r) => r.startsWith(`${name} `)) ?? '';
      return Object.fromEntries(line.split(/\s{2,}/).map((v, i) => [columns[i] ?? '', v]));
    };
    assert.deepEqual([row('web-dc')['FALLBACK'], row('web-dc')['FALLBACK-READY'], row('web-dc')['KEY-SERVER']], ['Keyless', 'True', address]);
    assert.deepEqual([row('none-dc')['FALLBACK'], row('none-dc')['FALLBACK-READY']], ['None', 'True']);
    assert.deepEqual([row('key-dc')['FALLBACK'], row('key-dc')['FALLBACK-READY']], ['CertificateKey', 'True']);
  });

  void it('the key server stops: FallbackReady=False KeyServerUnreachable, DCs stay Ready; it comes back: ready again on its own', async () => {
    const before = (await readSecret('web-out'))?.metadata?.resourceVersion;
    await keyServer?.close();
    keyServer = undefined;
    const down = await waitForCondition(kc, ns.name, 'web-dc', 'FallbackReady', 'False', 'KeyServerUnreachable', 30_000);
    assert.match(down.status?.conditions?.find((c) => c.type === 'FallbackReady')?.message ?? '', new RegExp(`key server ${address.replace(/\./g, '\\.')}`));
    const ready = down.status?.conditions?.find((c) => c.type === 'Ready');
    assert.equal(ready?.status, 'True', 'DC clients are still served');
    assert.match(ready?.message ?? '', /fallback Keyless not ready \(KeyServerUnreachable\)/);
    assert.equal((await readSecret('web-out'))?.metadata?.resourceVersion, before, 'the output Secret is not rewritten for a probe result');
    keyServer = await startKeys();
    await waitForCondition(kc, ns.name, 'web-dc', 'FallbackReady', 'True', 'KeyServerReady', 30_000);
  });

  void it('with `dc-operator keyserver --from-cluster` on that address: the controller\'s probe is let in, and the bundle\'s identity signs with its own certificate\'s key', async () => {
    await keyServer?.close();
    keyServer = undefined;
    await waitForCondition(kc, ns.name, 'web-dc', 'FallbackReady', 'False', 'KeyServerUnreachable', 30_000);
    const child = spawn(
      process.execPath,
      [join(repoRoot, 'dist', 'src', 'cli', 'dc-operator.js'), 'keyserver', '--from-cluster', '--kubeconfig', await testKubeconfigPath(),
        '--namespace', ns.name, '--operator-namespace', ns.name, '--address', '127.0.0.1', '--port', String(port), '--metrics-port', String(await freePort())],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    try {
      await waitForCondition(kc, ns.name, 'web-dc', 'FallbackReady', 'True', 'KeyServerReady', 40_000).catch((err: unknown) => {
        throw new Error(`${String(err)}; key server said: ${stderr.slice(-2000)}`);
      });
      const out = await readSecret('web-out');
      const sidecar = new KeylessClient({ address: text(out, 'keyless.address'), ca: text(out, 'keyless-ca.crt'), cert: text(out, 'keyless-client.crt'), key: text(out, 'keyless-client.key'), timeoutMs: 5000 });
      try {
        const message = certificateVerifyContent();
        const signature = await waitFor('a signature through the bundle identity', 20_000, () => signAsSidecar(sidecar, computeSki(createPrivateKey(cert.key)), message, { timeoutMs: 5000 }));
        assert.ok(verify('sha256', message, createPublicKey(cert.crt), signature), 'signed with the certificate key');
      } finally {
        await sidecar.close();
      }
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  });
});
