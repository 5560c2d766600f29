/**
 * The sidecar served from its whole serving bundle, as separate processes: `dc-operator
 * keyserver` holding the certificate key (mTLS, a test CA, a client certificate with a SPIFFE URI
 * SAN), `dc-operator sidecar` given only the bundle laid out as kubelet mounts it (..data), and an
 * HTTP app behind it. curl, openssl s_client -tls1_3 and node:tls (no DC support) get the app's
 * answer through keyless pull; NSS tstclnt gets the DC. Then the key server stops (DC clients
 * still served, others get a prompt alert, the interval line says so), restarts (recovery on its
 * own), and the bundle's client certificate rotates through a ..data swap.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { asIssuer, issueCertificate, type IssuedCertificate } from '../../src/cli/pki/dev-pki.js';
import { BUNDLE_KEYS, sidecarIdentityUri } from '../../src/operator/api/serving-bundle.js';
import { credentialFiles, makePki, type TestPki } from '../unit/sidecar/fixtures.js';
import { KubeletVolume } from '../unit/sidecar/kubelet-volume.js';
import { killAll, metricSum, nodeTlsGet, run, start, tstclntHandshake, type Proc } from '../interop/support.js';

const CLI = join(process.cwd(), 'dist', 'src', 'cli', 'dc-operator.js');
const APP_ANSWER = 'hello from the app';
const IDENTITY = sidecarIdentityUri({ trustDomain: 'cluster.local', namespace: 'shop', name: 'web' });

interface LogLine {
  readonly msg: string;
  readonly level?: string;
  readonly [key: string]: unknown;
}

/** JSON log lines of a process (stderr), parsed as they arrive. */
function logLines(p: Proc): LogLine[] {
  const lines: LogLine[] = [];
  for (const text of p.output().split('\n')) {
    try {
      const l = JSON.parse(text) as LogLine;
      if (typeof l.msg === 'string') lines.push(l);
    } catch {
      // not a log line
    }
  }
  return lines;
}

async function waitForLine(p: Proc, what: (l: LogLine) => boolean, timeoutMs = 15_000, after = 0): Promise<LogLine> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = logLines(p).slice(after).find(what);
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`no such log line; output:\n${p.output().slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function clientCertificate(ca: IssuedCertificate, validity: { notBefore?: Date; notAfter?: Date } = {}): Promise<IssuedCertificate> {
  return issueCertificate({ commonName: 'web sidecar', uris: [IDENTITY], extendedKeyUsage: ['clientAuth'], ...validity }, 'ecdsa-p256', asIssuer(ca));
}

void describe('dc-operator sidecar with its serving bundle and a key server process', { timeout: 180_000 }, () => {
  let pki: TestPki;
  let ksCa: IssuedCertificate;
  let work: string;
  let caFile: string;
  let nssDb: string;
  let volume: KubeletVolume;
  let bundle: Record<string, string | Uint8Array>;
  let app: HttpServer;
  let keyServerPort: number;
  let keyServer: Proc;
  let sidecar: Proc;
  let port: number;
  let metricsPort: number;

  const startKeyServer = async (): Promise<Proc> => {
    const p = start(process.execPath, [
      CLI, 'keyserver', '--keys', join(work, 'keys'), '--ca', join(work, 'ks-ca.crt'), '--cert', join(work, 'ks-server.crt'),
      '--key', join(work, 'ks-server.key'), '--address', '127.0.0.1', '--port', String(keyServerPort),
    ]);
    await p.waitFor(/key server listening/, 15_000);
    return p;
  };
  const curl = (): Promise<{ code: number; out: string; ms: number }> => {
    const t0 = Date.now();
    return run('curl', ['-sS', '--max-time', '10', '--cacert', caFile, '--resolve', `localhost:${port}:127.0.0.1`, `https://localhost:${port}/`]).then((r) => ({
      code: r.code,
      out: r.output,
      ms: Date.now() - t0,
    }));
  };
  const tstclnt = async (): Promise<string> => (await tstclntHandshake(port, nssDb)).output;
  const metric = (line: RegExp): Promise<number> => metricSum(metricsPort, line);

  before(async () => {
    pki = await makePki('ecdsa-p256');
    ksCa = await issueCertificate({ commonName: 'key server test CA', isCA: true }, 'ecdsa-p256');
    const ksServer = await issueCertificate({ commonName: 'key server', ipAddresses: ['127.0.0.1'], extendedKeyUsage: ['serverAuth'] }, 'ecdsa-p256', asIssuer(ksCa));
    const client = await clientCertificate(ksCa);
    work = await mkdtemp(join(tmpdir(), 'dc-sidecar-bundle-'));
    await mkdir(join(work, 'keys'));
    // The certificate key lives at the key server only.
    await writeFile(join(work, 'keys', 'web.pem'), pki.leaf.key.privateKeyPem);
    await writeFile(join(work, 'ks-ca.crt'), ksCa.pem);
    await writeFile(join(work, 'ks-server.crt'), ksServer.pem);
    await writeFile(join(work, 'ks-server.key'), ksServer.key.privateKeyPem);
    caFile = join(work, 'ca.crt');
    await writeFile(caFile, pki.ca.pem);
    nssDb = join(work, 'nssdb');
    await mkdir(nssDb);
    assert.equal((await run('certutil', ['-N', '--empty-password', '-d', nssDb])).code, 0);
    assert.equal((await run('certutil', ['-A', '-n', 'ca', '-t', 'C,,', '-i', caFile, '-d', nssDb])).code, 0);

    keyServerPort = await freePort();
    keyServer = await startKeyServer();

    app = createHttpServer((_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end(`${APP_ANSWER}\n`));
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));

    bundle = {
      ...(await credentialFiles(pki, { algorithms: ['ecdsa_secp256r1_sha256'] })),
      [BUNDLE_KEYS.fallback]: 'Keyless',
      [BUNDLE_KEYS.keylessAddress]: `127.0.0.1:${keyServerPort}`,
      [BUNDLE_KEYS.keylessCA]: ksCa.pem,
      [BUNDLE_KEYS.keylessClientCertificate]: client.pem,
      [BUNDLE_KEYS.keylessClientKey]: client.key.privateKeyPem,
    };
    volume = new KubeletVolume(join(work, 'bundle'));
    await volume.write(bundle);

    sidecar = start(process.execPath, [
      CLI, 'sidecar', '--dc-dir', volume.dir, '--address', '127.0.0.1', '--port', '0', '--metrics-port', '0', '--metrics-address', '127.0.0.1',
      '--upstream', String((app.address() as AddressInfo).port), '--report-interval', '1s', '--keyless-timeout', '1s',
      '--reload-debounce', '50ms', '--recheck-interval', '2s',
    ]);
    const listening = await waitForLine(sidecar, (l) => l.msg === 'sidecar listening');
    port = Number(String(listening['listen']).split(':').pop());
    metricsPort = listening['metricsPort'] as number;
  });

  after(async () => {
    killAll();
    await new Promise<void>((r) => (app ? app.close(() => r()) : r()));
    if (work) await rm(work, { recursive: true, force: true });
  });

  void it('says at startup that non-DC clients are served through the key server, as which identity', async () => {
    const line = await waitForLine(sidecar, (l) => l.msg.startsWith('fallback Keyless'));
    assert.match(line.msg, new RegExp(`key server 127\\.0\\.0\\.1:${keyServerPort}`));
    assert.match(line.msg, new RegExp(IDENTITY.replace(/[/.]/g, '\\$&')));
    const readyz = await fetch(`http://127.0.0.1:${metricsPort}/readyz`);
    assert.equal(readyz.status, 200);
    assert.match(await readyz.text(), /^ready: serving 1 delegated credential.*\nfallback Keyless ready: keyless pull from 127\.0\.0\.1:\d+\n$/);
    assert.equal(await metric(/^dc_sidecar_fallback_ready\{fallback="Keyless"\}/), 1);
  });

  void it('serves curl, openssl s_client -tls1_3 and node:tls (no DC support) the app through keyless pull', async () => {
    const c = await curl();
    assert.equal(c.code, 0, c.out);
    assert.match(c.out, new RegExp(APP_ANSWER));
    const o = await run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-CAfile', caFile, '-tls1_3', '-brief', '-ign_eof'], {
      input: 'GET / HTTP/1.0\r\nHost: localhost\r\n\r\n',
    });
    assert.match(o.output, /Verification: OK/);
    assert.match(o.output, new RegExp(APP_ANSWER));
    assert.match(await nodeTlsGet(port, pki.ca.pem), new RegExp(APP_ANSWER));
    assert.equal(await metric(/^dc_sidecar_handshakes_total\{mode="keyless",engine="ours",result="success"\}/), 3);
  });

  void it('serves NSS tstclnt the delegated credential, without the key server', async () => {
    assert.match(await tstclnt(), /Received a Delegated Credential/);
    assert.equal(await metric(/^dc_sidecar_handshakes_total\{mode="dc",engine="ours",result="success"\}/), 1);
  });

  void it('with the key server stopped: DC clients are still served, non-DC clients get a prompt alert, and one line per interval says why', async () => {
    const before = logLines(sidecar).length;
    const t0 = Date.now();
    keyServer.child.kill('SIGTERM');
    await keyServer.exited;
    assert.match(await tstclnt(), /Received a Delegated Credential/);
    for (let i = 0; i < 3; i++) {
      const c = await curl();
      assert.notEqual(c.code, 0, 'curl must fail without the key server');
      assert.match(c.out, /alert|handshake failure|internal error/i);
      assert.ok(c.ms < 5_000, `refused within the keyless timeout, not hung (${c.ms} ms)`);
    }
    const summary = await waitForLine(sidecar, (l) => /^last \d+s: /.test(l.msg) && /key server unreachable/.test(l.msg), 10_000, before);
    assert.equal(summary.level, 'info');
    assert.match(summary.msg, /fallback Keyless not ready/);
    const refused = summary['refused'] as Record<string, number>;
    assert.ok((refused['keyserver-unreachable'] ?? 0) >= 1, JSON.stringify(summary));
    // Once per interval (1 s here), not per connection.
    const lines = logLines(sidecar).slice(before).filter((l) => /^last \d+s: /.test(l.msg));
    const seconds = Math.ceil((Date.now() - t0) / 1000);
    assert.ok(lines.length <= seconds + 1, `${lines.length} summary lines in ${seconds} s`);
    assert.equal(logLines(sidecar).slice(before).filter((l) => /handshake|refused a client/.test(l.msg) && l.level === 'info').length, 0, 'no info line per connection');
    assert.equal(await metric(/^dc_sidecar_fallback_ready\{fallback="Keyless"\}/), 0);
    const readyz = await fetch(`http://127.0.0.1:${metricsPort}/readyz`);
    assert.equal(readyz.status, 200, 'still ready: DC clients are served');
    assert.match(await readyz.text(), /\nfallback Keyless not ready: key server 127\.0\.0\.1:\d+ unreachable/);
  });

  void it('recovers on its own when the key server is back', async () => {
    keyServer = await startKeyServer();
    const deadline = Date.now() + 30_000;
    let last = '';
    for (;;) {
      const c = await curl();
      if (c.code === 0 && c.out.includes(APP_ANSWER)) break;
      last = c.out;
      assert.ok(Date.now() < deadline, `not recovered within 30 s: ${last}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.match(await tstclnt(), /Received a Delegated Credential/);
  });

  void it("rotates the bundle's client certificate through a ..data swap and keeps serving with the new one", async () => {
    const before = logLines(sidecar).length;
    const renewed = await clientCertificate(ksCa);
    bundle = { ...bundle, [BUNDLE_KEYS.keylessClientCertificate]: renewed.pem, [BUNDLE_KEYS.keylessClientKey]: renewed.key.privateKeyPem };
    await volume.write(bundle);
    const replaced = await waitForLine(sidecar, (l) => l.msg.startsWith('keyless configuration replaced'), 15_000, before);
    assert.equal(replaced['clientCertificateValidUntil'], new Date(new X509Certificate(renewed.pem).validTo).toISOString());
    const c = await curl();
    assert.equal(c.code, 0, c.out);
    assert.match(c.out, new RegExp(APP_ANSWER));
    assert.ok((await metric(/^dc_sidecar_keyless_reloads_total\{result="success"\}/)) >= 2);
  });

  void it("logs the key server's own error when it refuses to sign in-band, and counts it in the interval line", async () => {
    const before = logLines(sidecar).length;
    // The key server no longer holds the certificate's key: it answers "key not found".
    await rename(join(work, 'keys', 'web.pem'), join(work, 'web.pem.away'));
    keyServer.child.kill('SIGHUP');
    try {
      const deadline = Date.now() + 15_000;
      let c = await curl();
      while (c.code === 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 200));
        c = await curl();
      }
      assert.notEqual(c.code, 0, 'refused once the key is gone');
      assert.ok(c.ms < 5_000, `an alert, not a hang (${c.ms} ms)`);
      const warned = await waitForLine(sidecar, (l) => l.msg === 'the key server refused to sign for a non-DC client', 10_000, before);
      assert.match(String(warned['error']), /key server 127\.0\.0\.1:\d+ has no key with SKI [0-9a-f]+ \(key not found\)/);
      const summary = await waitForLine(sidecar, (l) => /^last \d+s: /.test(l.msg) && /refused by the key server/.test(l.msg), 10_000, before);
      assert.ok(((summary['refused'] as Record<string, number>)['refused-by-keyserver'] ?? 0) >= 1);
      assert.match(await tstclnt(), /Received a Delegated Credential/);
    } finally {
      await rename(join(work, 'web.pem.away'), join(work, 'keys', 'web.pem'));
      keyServer.child.kill('SIGHUP');
    }
    const deadline = Date.now() + 15_000;
    for (;;) {
      const c = await curl();
      if (c.code === 0) break;
      assert.ok(Date.now() < deadline, `served again once the key is back: ${c.out}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  });

  void it('refuses a bundle whose client certificate has expired, says so, and keeps the working client', async () => {
    const before = logLines(sidecar).length;
    const expired = await clientCertificate(ksCa, { notBefore: new Date(Date.now() - 7200_000), notAfter: new Date(Date.now() - 3600_000) });
    await volume.write({ ...bundle, [BUNDLE_KEYS.keylessClientCertificate]: expired.pem, [BUNDLE_KEYS.keylessClientKey]: expired.key.privateKeyPem });
    const refused = await waitForLine(sidecar, (l) => l.msg === 'keyless configuration not used', 15_000, before);
    assert.match(String(refused['reason']), /keyless client certificate expired at .*: the operator renews it with the DCs; check the DelegatedCredential's status/);
    const c = await curl();
    assert.equal(c.code, 0, c.out);
    assert.match(c.out, new RegExp(APP_ANSWER));
    assert.ok((await metric(/^dc_sidecar_keyless_reloads_total\{result="failure"\}/)) >= 1);
  });

  void it('fallback None: says so at startup, serves NSS the DC and refuses curl with handshake_failure at once', async () => {
    const none = new KubeletVolume(join(work, 'bundle-none'));
    await none.write({ ...(await credentialFiles(pki, { algorithms: ['ecdsa_secp256r1_sha256'] })), [BUNDLE_KEYS.fallback]: 'None' });
    const p = start(process.execPath, [CLI, 'sidecar', '--dc-dir', none.dir, '--address', '127.0.0.1', '--port', '0', '--metrics-port', '0', '--metrics-address', '127.0.0.1', '--upstream', String((app.address() as AddressInfo).port)]);
    try {
      const listening = await waitForLine(p, (l) => l.msg === 'sidecar listening');
      const nonePort = Number(String(listening['listen']).split(':').pop());
      const said = await waitForLine(p, (l) => l.msg.startsWith('fallback None'));
      assert.match(said.msg, /only clients that support delegated credentials are served; other clients get handshake_failure/);
      const t0 = Date.now();
      const c = await run('curl', ['-sS', '--max-time', '10', '--cacert', caFile, '--resolve', `localhost:${nonePort}:127.0.0.1`, `https://localhost:${nonePort}/`]);
      assert.notEqual(c.code, 0);
      assert.match(c.output, /handshake failure/);
      assert.ok(Date.now() - t0 < 3000);
      const nss = await run('tstclnt', ['-B', '-h', '127.0.0.1', '-p', String(nonePort), '-d', nssDb, '-V', 'tls1.3:tls1.3', '-a', 'localhost', '-Q'], { input: '' });
      assert.match(nss.output, /Received a Delegated Credential/);
    } finally {
      p.child.kill('SIGKILL');
    }
  });

  void it('a bundle with no fallback at all (an older operator, a hand-made Secret) starts with a warning that non-DC clients will be refused', async () => {
    const bare = new KubeletVolume(join(work, 'bundle-bare'));
    await bare.write(await credentialFiles(pki, { algorithms: ['ecdsa_secp256r1_sha256'] }));
    const p = start(process.execPath, [CLI, 'sidecar', '--dc-dir', bare.dir, '--address', '127.0.0.1', '--port', '0', '--metrics-port', '0', '--metrics-address', '127.0.0.1']);
    try {
      const warned = await waitForLine(p, (l) => /non-DC clients will be refused/.test(l.msg));
      assert.equal(warned.level, 'warn');
    } finally {
      p.child.kill('SIGKILL');
    }
  });
});
