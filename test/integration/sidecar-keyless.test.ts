/**
 * Keyless pull in the sidecar: no tls.key in the volume; TLS 1.3 clients without DC support get
 * the certificate with CertificateVerify signed by the project's key server over mutual TLS
 * (configured through the --keyless-* flags), while DC clients keep getting DCs locally.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startKeyServer, type KeyServer } from '../../src/keyless/server.js';
import { runSidecar, type RunningSidecar, type SidecarLogger } from '../../src/sidecar/main.js';
import { asIssuer, issueCertificate } from '../../src/cli/pki/dev-pki.js';
import { makeKeylessPki, type KeylessPki } from '../unit/keyless/pki.js';
import { credentialFiles, loopbackSidecarConfig, makePki, type TestPki } from '../unit/sidecar/fixtures.js';
import { KubeletVolume } from '../unit/sidecar/kubelet-volume.js';

const quiet: SidecarLogger = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} };

function runTool(command: string, args: readonly string[], stdin: string, timeoutMs = 15_000): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
    child.stdin.on('error', () => {}); // EPIPE when the tool exits without reading its input
    child.stdin.end(stdin);
  });
}

void describe('dc-operator sidecar with a keyless key server', { timeout: 120_000 }, () => {
  let pki: TestPki;
  let mtls: KeylessPki;
  let work: string;
  let keyServer: KeyServer;
  let echo: Server;
  let sidecar: RunningSidecar;
  let caFile: string;
  let keysDir: string;
  let volume: KubeletVolume;

  before(async () => {
    pki = await makePki('ecdsa-p256');
    mtls = makeKeylessPki(['p256']);
    work = await mkdtemp(join(tmpdir(), 'dc-sidecar-keyless-'));
    // The key server holds the certificate's key; the sidecar's volume does not.
    keysDir = join(work, 'keys');
    await mkdir(keysDir);
    await writeFile(join(keysDir, 'leaf.pem'), pki.leaf.key.privateKeyPem);
    keyServer = await startKeyServer({ keysDir, ca: mtls.ca, cert: mtls.server.cert, key: mtls.server.key, host: '127.0.0.1', port: 0, pollIntervalMs: 100 });
    for (const [name, pem] of [['keyless-ca.crt', mtls.ca], ['client.crt', mtls.client.cert], ['client.key', mtls.client.key], ['ca.crt', pki.ca.pem]] as const) {
      await writeFile(join(work, name), pem);
    }
    caFile = join(work, 'ca.crt');
    volume = new KubeletVolume(join(work, 'credentials'));
    await volume.write(await credentialFiles(pki, { algorithms: ['ecdsa_secp256r1_sha256'] }));
    // Echoes the first chunk and closes, so s_client sees the end of the exchange.
    echo = createServer({ allowHalfOpen: true }, (s) => s.once('data', (d: Buffer) => s.end(d)));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    const config = loopbackSidecarConfig(volume.dir, (echo.address() as AddressInfo).port, {
      'keyless-address': `127.0.0.1:${keyServer.port}`,
      'keyless-ca': join(work, 'keyless-ca.crt'),
      'keyless-client-cert': join(work, 'client.crt'),
      'keyless-client-key': join(work, 'client.key'),
    });
    sidecar = await runSidecar({ ...config, log: quiet });
  });

  after(async () => {
    await sidecar?.close();
    echo?.close();
    await keyServer?.close();
    mtls?.cleanup();
    if (work) await rm(work, { recursive: true, force: true });
  });

  void it('is ready without a local key because keyless is configured', async () => {
    const res = await fetch(`http://127.0.0.1:${sidecar.metricsPort}/readyz`);
    assert.equal(res.status, 200);
  });

  void it('serves a TLS 1.3 client without DC support through the key server (keyless pull)', async () => {
    const r = await runTool(
      'openssl',
      ['s_client', '-connect', `127.0.0.1:${sidecar.port}`, '-servername', 'localhost', '-CAfile', caFile, '-tls1_3', '-brief', '-ign_eof'],
      'through keyless\n',
    );
    assert.match(r.out, /Protocol version: TLSv1\.3/);
    assert.match(r.out, /Verification: OK/);
    assert.match(r.out, /through keyless/);
    assert.equal(await sidecar.metrics.value('dc_sidecar_handshakes_total', { mode: 'keyless', engine: 'ours', result: 'success' }), 1);
  });

  void it('still serves DC clients locally, without a key server round trip', async () => {
    const nss = join(work, 'nssdb');
    await mkdir(nss);
    assert.equal((await runTool('certutil', ['-N', '--empty-password', '-d', nss], '')).code, 0);
    assert.equal((await runTool('certutil', ['-A', '-n', 'ca', '-t', 'C,,', '-i', caFile, '-d', nss], '')).code, 0);
    const r = await runTool('tstclnt', ['-B', '-h', '127.0.0.1', '-p', String(sidecar.port), '-d', nss, '-V', 'tls1.3:tls1.3', '-a', 'localhost', '-Q'], '');
    assert.match(r.out, /Received a Delegated Credential/);
    assert.equal(await sidecar.metrics.value('dc_sidecar_handshakes_total', { mode: 'keyless' }), 1, 'no further keyless handshake');
  });

  void it('follows a certificate renewed with a new key: keyless handshakes are signed with the new key after the reload', async () => {
    const renewed = await issueCertificate(
      { commonName: 'localhost', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], delegationUsage: 'non-critical', extendedKeyUsage: ['serverAuth'] },
      'ecdsa-p256',
      asIssuer(pki.ca),
    );
    await writeFile(join(keysDir, 'renewed.pem'), renewed.key.privateKeyPem);
    await new Promise((r) => setTimeout(r, 500)); // the key server polls its directory every 100 ms
    const before = sidecar.store.current;
    await volume.write(await credentialFiles({ ca: pki.ca, leaf: renewed }, { algorithms: ['ecdsa_secp256r1_sha256'] }));
    const deadline = Date.now() + 10_000;
    while (sidecar.store.current === before) {
      assert.ok(Date.now() < deadline, 'the renewed certificate was loaded');
      await new Promise((r) => setTimeout(r, 20));
    }
    const r = await runTool(
      'openssl',
      ['s_client', '-connect', `127.0.0.1:${sidecar.port}`, '-servername', 'localhost', '-CAfile', caFile, '-tls1_3', '-brief', '-ign_eof'],
      'after renewal\n',
    );
    assert.match(r.out, /Verification: OK/);
    assert.match(r.out, /after renewal/);
    assert.equal(await sidecar.metrics.value('dc_sidecar_handshakes_total', { mode: 'keyless', result: 'success' }), 2);
  });

  void it('serves TLS 1.2 clients through the key server on our stack (node:tls cannot sign through it)', async () => {
    const r = await runTool(
      'openssl',
      ['s_client', '-connect', `127.0.0.1:${sidecar.port}`, '-servername', 'localhost', '-CAfile', caFile, '-tls1_2', '-brief', '-ign_eof'],
      'over TLS 1.2\n',
    );
    assert.match(r.out, /Protocol version: TLSv1\.2/);
    assert.match(r.out, /Verification: OK/);
    assert.match(r.out, /over TLS 1\.2/);
    assert.equal(await sidecar.metrics.value('dc_sidecar_handshakes_total', { mode: 'keyless', result: 'success' }), 3);
  });
});
