/**
 * Our TLS 1.2 server against real clients over loopback: openssl s_client -tls1_2, curl
 * --tls-max 1.2, node:tls with maxVersion TLSv1.2 and Go's crypto/tls (MaxVersion TLS12;
 * test/interop/go/tls12-client, built once by goProgram). Both AEAD families, ECDSA and RSA
 * certificates, the key in this process and behind a real key server process (keyless).
 * Refusals are checked by the alert the real client reports.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { constants as cryptoConstants } from 'node:crypto';
import * as nodeTls from 'node:tls';
import { asIssuer, issueCertificate, type IssuedCertificate } from '../../src/cli/pki/dev-pki.js';
import { KeylessSigner } from '../../src/signer/keyless.js';
import { connect as connectOurs, type CreateServerOptions, type TLSSocket } from '../../src/tls/socket.js';
import { makeKeylessPki, type KeylessPki } from '../unit/keyless/pki.js';
import { goProgram, httpGet, killAll, makePki, run, start, startKeylessKeyServer, startOpensslServer, startOurServer, type OurServer, type Pki, type Proc } from './support.js';

const repo = fileURLToPath(new URL('../../../', import.meta.url));

/** One TLS 1.2 suite per AEAD family and key type, in the names each client uses. */
const SUITES = {
  ecdsa: [
    { name: 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256', openssl: 'ECDHE-ECDSA-AES128-GCM-SHA256', go: 'c02b' },
    { name: 'TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384', openssl: 'ECDHE-ECDSA-AES256-GCM-SHA384', go: 'c02c' },
    { name: 'TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256', openssl: 'ECDHE-ECDSA-CHACHA20-POLY1305', go: 'cca9' },
  ],
  rsa: [
    { name: 'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256', openssl: 'ECDHE-RSA-AES128-GCM-SHA256', go: 'c02f' },
    { name: 'TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384', openssl: 'ECDHE-RSA-AES256-GCM-SHA384', go: 'c030' },
    { name: 'TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256', openssl: 'ECDHE-RSA-CHACHA20-POLY1305', go: 'cca8' },
  ],
} as const;

interface Served {
  readonly label: string;
  readonly keyType: 'ecdsa' | 'rsa';
  readonly auth: 'certificate' | 'keyless';
  readonly server: OurServer;
}

function body(http: string): string {
  const i = http.indexOf('\r\n\r\n');
  return i < 0 ? '' : http.slice(i + 4);
}

function nodeGet(port: number, ca: string, options: nodeTls.ConnectionOptions = {}): Promise<{ text: string; socket: nodeTls.TLSSocket }> {
  return new Promise((resolve, reject) => {
    const s = nodeTls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca, maxVersion: 'TLSv1.2', ...options }, () => s.write(httpGet()));
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.once('end', () => resolve({ text: Buffer.concat(chunks).toString('latin1'), socket: s }));
    s.once('error', reject);
  });
}

void describe('our TLS 1.2 server with openssl, curl, node:tls and Go crypto/tls', () => {
  let pki: Pki;
  let kpki: KeylessPki;
  let rsa: IssuedCertificate;
  let goClient: string;
  let keyServer: { proc: Proc; address: string };
  const signers: KeylessSigner[] = [];
  const served: Served[] = [];

  before(async () => {
    pki = await makePki();
    const now = Date.now();
    rsa = await issueCertificate(
      { commonName: 'localhost', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], extendedKeyUsage: ['serverAuth'], notBefore: new Date(now - 3600_000), notAfter: new Date(now + 20 * 86400_000) },
      'rsa-2048',
      asIssuer(pki.ca),
    );
    goClient = await goProgram('tls12-client');

    // The certificate keys live only in the key server's directory for the keyless servers.
    kpki = makeKeylessPki(['p256']);
    writeFileSync(join(kpki.keysDir, 'serving-ecdsa.pem'), pki.serverKeyPem);
    writeFileSync(join(kpki.keysDir, 'serving-rsa.pem'), rsa.key.privateKeyPem);
    keyServer = await startKeylessKeyServer(kpki);

    const certs = { ecdsa: { cert: pki.serverPem, key: pki.serverKeyPem }, rsa: { cert: rsa.pem, key: rsa.key.privateKeyPem } };
    for (const keyType of ['ecdsa', 'rsa'] as const) {
      const local: CreateServerOptions = { certificates: [certs[keyType]], alpnProtocols: ['http/1.1'] };
      served.push({ label: `local ${keyType}`, keyType, auth: 'certificate', server: await startOurServer(local) });
      const signer = new KeylessSigner({ address: keyServer.address, ca: kpki.ca, clientCert: kpki.client.cert, clientKey: kpki.client.key, certificate: certs[keyType].cert, timeoutMs: 5000 });
      signers.push(signer);
      const keyless: CreateServerOptions = {
        certificates: [{ cert: certs[keyType].cert, key: signer }],
        // As the sidecar does: the hook labels the certificate choice "keyless".
        selectCredential: (_hello, fallback) => {
          const c = fallback();
          return c && { ...c, label: 'keyless' };
        },
        alpnProtocols: ['http/1.1'],
      };
      served.push({ label: `keyless ${keyType}`, keyType, auth: 'keyless', server: await startOurServer(keyless) });
    }
  });

  after(async () => {
    await Promise.all(signers.map((s) => s.close()));
    await Promise.all(served.map((s) => s.server.close()));
    killAll();
    kpki?.cleanup();
    pki?.cleanup();
  });

  void it('completes every suite with every client, for ECDSA and RSA certificates, local key and keyless', { timeout: 120_000 }, async () => {
    const failures: string[] = [];
    for (const s of served) {
      const port = s.server.port;
      for (const suite of SUITES[s.keyType]) {
        const want = `${suite.name} `;
        const wantAuth = `auth=${s.auth}`;
        const ok = (text: string): boolean => text.startsWith(want) && text.includes(wantAuth);
        const o = await run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-tls1_2', '-cipher', suite.openssl, '-CAfile', pki.caCrt, '-verify_return_error', '-ign_eof'], { input: httpGet() });
        if (o.code !== 0 || !o.output.includes(`Cipher is ${suite.openssl}`) || !/Extended master secret: yes/.test(o.output) || !ok(body(o.stdout))) {
          failures.push(`${s.label} s_client ${suite.name}: exit ${o.code}\n${o.output.slice(-1200)}`);
        }
        const c = await run('curl', ['-sS', '--tls-max', '1.2', '--tlsv1.2', '--ciphers', suite.openssl, '--cacert', pki.caCrt, '--http1.1', `https://localhost:${port}/`]);
        if (c.code !== 0 || !ok(c.stdout)) failures.push(`${s.label} curl ${suite.name}: exit ${c.code}: ${c.output}`);
        try {
          const n = await nodeGet(port, pki.caPem, { ciphers: suite.openssl });
          assert.equal(n.socket.getProtocol(), 'TLSv1.2');
          if (!ok(body(n.text))) failures.push(`${s.label} node:tls ${suite.name}: ${n.text}`);
        } catch (e) {
          failures.push(`${s.label} node:tls ${suite.name}: ${(e as Error).message}`);
        }
        const g = await run(goClient, ['-addr', `127.0.0.1:${port}`, '-ca', pki.caCrt, '-suite', suite.go]);
        if (g.code !== 0 || !g.stdout.startsWith(`version=TLS 1.2 suite=${suite.name} resumed=false\n`) || !ok(g.stdout.split('\n')[1] ?? '')) {
          failures.push(`${s.label} go ${suite.name}: exit ${g.code}: ${g.output}`);
        }
      }
    }
    assert.deepEqual(failures, []);
  });

  void it('resumes with session tickets: openssl -sess_in, node:tls session, Go session cache', { timeout: 60_000 }, async () => {
    for (const s of [served[0]!, served[3]!]) {
      const port = s.server.port;
      const sess = join(pki.dir, `sess-${s.keyType}-${s.auth}`);
      const first = await run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-tls1_2', '-CAfile', pki.caCrt, '-sess_out', sess, '-ign_eof'], { input: httpGet() });
      assert.match(first.output, /New, TLSv1\.2/, s.label);
      const again = await run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-tls1_2', '-CAfile', pki.caCrt, '-sess_in', sess, '-ign_eof'], { input: httpGet() });
      assert.match(again.output, /Reused, TLSv1\.2/, `${s.label}: ${again.output.slice(-800)}`);
      assert.match(body(again.stdout), /resumed=yes hrr=no client=- auth=psk/);

      const n1 = await nodeGet(port, pki.caPem);
      const session = n1.socket.getSession();
      assert.ok(session, 'node:tls got a session');
      const n2 = await nodeGet(port, pki.caPem, { session });
      assert.equal(n2.socket.isSessionReused(), true, s.label);

      const g = await run(goClient, ['-addr', `127.0.0.1:${port}`, '-ca', pki.caCrt, '-resume']);
      assert.equal(g.code, 0, g.output);
      assert.match(g.stdout, /resumed=false\n[^\n]*\nversion=TLS 1\.2 suite=\S+ resumed=true\n/, `${s.label}: ${g.stdout}`);
    }
  });

  void it('resumes by session ID for clients that take no tickets: openssl -no_ticket -reconnect says "Reused", node:tls with SSL_OP_NO_TICKET resumes', { timeout: 60_000 }, async () => {
    for (const s of [served[0]!, served[3]!]) {
      const port = s.server.port;
      const o = await run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-tls1_2', '-CAfile', pki.caCrt, '-no_ticket', '-reconnect'], { input: '' });
      const lines = o.output.split('\n').filter((l) => /^(New|Reused), TLSv1\.2/.test(l));
      // The first connection and five reconnections with the session ID it got.
      assert.equal(lines.length, 6, `${s.label}: ${o.output.slice(-1500)}`);
      assert.match(lines[0]!, /^New/);
      for (const l of lines.slice(1)) assert.match(l, /^Reused/, `${s.label}: ${o.output.slice(-1500)}`);
      const ids = new Set([...o.output.matchAll(/Session-ID: ([0-9A-F]{64})/g)].map((m) => m[1]));
      assert.equal(ids.size, 1, 'one 32-byte session ID, the same every time');

      const noTicket = { secureOptions: cryptoConstants.SSL_OP_NO_TICKET };
      const n1 = await nodeGet(port, pki.caPem, noTicket);
      const session = n1.socket.getSession();
      assert.ok(session, 'node:tls got a session');
      const n2 = await nodeGet(port, pki.caPem, { ...noTicket, session });
      assert.equal(n2.socket.isSessionReused(), true, s.label);
      assert.match(body(n2.text), /resumed=yes/);
    }
  });

  void it('refuses with the alert each real client reports: CBC only, TLS 1.1, renegotiation, fallback, no extended master secret', { timeout: 60_000 }, async () => {
    const port = served[0]!.server.port;
    const client = (...args: string[]) => run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', ...args], { input: '' });
    assert.match((await client('-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-SHA:AES128-GCM-SHA256')).output, /alert handshake failure/);
    assert.match((await client('-tls1_1', '-cipher', 'DEFAULT@SECLEVEL=0')).output, /alert protocol version/);
    assert.match((await client('-tls1_2', '-fallback_scsv')).output, /alert inappropriate fallback/);
    // "R" on s_client's stdin asks the server to renegotiate: the refusal is a warning (RFC 5246
    // §7.2.2), after which OpenSSL itself ends the connection with handshake_failure.
    const reneg = start('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-tls1_2', '-CAfile', pki.caCrt, '-msg']);
    await reneg.waitFor(/Verify return code/);
    reneg.write('R\n');
    await reneg.waitFor(/<<< TLS 1\.2, Alert \[length 0002\], warning no_renegotiation/);
    assert.doesNotMatch(reneg.output(), /fatal no_renegotiation/);
    await reneg.stop();
    // 0x1 is SSL_OP_NO_EXTENDED_MASTER_SECRET in OpenSSL 3 (node:tls does not export the name).
    await assert.rejects(nodeGet(port, pki.caPem, { secureOptions: 0x1 }), /handshake failure/i);
    const faults = served[0]!.server.clientErrors.map((e) => e.message.split(':')[0]);
    for (const f of ['NoCipherSuitesInCommon', 'NoSupportedVersionInCommon', 'InappropriateFallback', 'MissingExtendedMasterSecret']) {
      assert.ok(faults.includes(f), `${f} in ${faults.join(', ')}`);
    }
  });

  void it('serves TLS 1.3 to a client that offers both, and TLS 1.2 only when asked (Go, openssl)', async () => {
    const port = served[1]!.server.port;
    const g = await run(goClient, ['-addr', `127.0.0.1:${port}`, '-ca', pki.caCrt, '-max', '1.3']);
    assert.match(g.stdout, /^version=TLS 1\.3 suite=TLS_AES_128_GCM_SHA256/);
    const o = await run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-CAfile', pki.caCrt, '-ign_eof'], { input: httpGet() });
    assert.match(o.output, /New, TLSv1\.3/);
  });
});

void describe('dcctl serve speaks TLS 1.2 on our stack, with ECDSA and RSA certificates', () => {
  let pki: Pki;
  after(() => {
    killAll();
    pki?.cleanup();
  });

  void it('answers openssl s_client -tls1_2 and node:tls (maxVersion TLSv1.2) with the certificate', { timeout: 90_000 }, async () => {
    pki = await makePki();
    const rsa = await issueCertificate({ commonName: 'localhost', dnsNames: ['localhost'], extendedKeyUsage: ['serverAuth'] }, 'rsa-2048', asIssuer(pki.ca));
    writeFileSync(join(pki.dir, 'rsa.crt'), rsa.pem);
    writeFileSync(join(pki.dir, 'rsa.key'), rsa.key.privateKeyPem, { mode: 0o600 });
    for (const [crt, key, openssl] of [
      [pki.serverCrt, pki.serverKey, 'ECDHE-ECDSA-CHACHA20-POLY1305'],
      [join(pki.dir, 'rsa.crt'), join(pki.dir, 'rsa.key'), 'ECDHE-RSA-AES256-GCM-SHA384'],
    ] as const) {
      const proc = start(process.execPath, [join(repo, 'dist/src/cli/dcctl.js'), 'serve', '--cert', crt, '--key', key, '--port', '0', '--quiet']);
      try {
        const port = Number((await proc.waitFor(/listening on https:\/\/127\.0\.0\.1:(\d+)/, 30_000))[1]);
        const o = await run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-tls1_2', '-cipher', openssl, '-CAfile', pki.caCrt, '-verify_return_error', '-ign_eof'], { input: httpGet() });
        assert.match(o.output, new RegExp(`New, TLSv1\\.2, Cipher is ${openssl}`));
        assert.match(body(o.stdout), /^certificate\n/);
        const n = await nodeGet(port, pki.caPem);
        assert.equal(n.socket.getProtocol(), 'TLSv1.2');
        assert.equal(body(n.text), 'certificate\n');
      } finally {
        await proc.stop();
      }
    }
  });
});

void describe('our minimal TLS 1.2 client against openssl s_server', () => {
  let pki: Pki;
  after(() => {
    killAll();
    pki?.cleanup();
  });

  void it('completes TLS 1.2 with ECDSA and RSA servers (AES-GCM and ChaCha20), verifies the chain and reads the page', { timeout: 60_000 }, async () => {
    pki = await makePki();
    const rsa = await issueCertificate({ commonName: 'localhost', dnsNames: ['localhost'], extendedKeyUsage: ['serverAuth'] }, 'rsa-2048', asIssuer(pki.ca));
    writeFileSync(join(pki.dir, 'rsa.crt'), rsa.pem);
    writeFileSync(join(pki.dir, 'rsa.key'), rsa.key.privateKeyPem, { mode: 0o600 });
    for (const [crt, key, cipher, name] of [
      [pki.serverCrt, pki.serverKey, 'ECDHE-ECDSA-AES128-GCM-SHA256', 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256'],
      [join(pki.dir, 'rsa.crt'), join(pki.dir, 'rsa.key'), 'ECDHE-RSA-CHACHA20-POLY1305', 'TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256'],
    ] as const) {
      const { proc, port } = await startOpensslServer(['-tls1_2', '-cert', crt, '-key', key, '-cipher', cipher, '-www']);
      try {
        const s = await new Promise<TLSSocket>((resolve, reject) => {
          const c = connectOurs({ host: '127.0.0.1', port, servername: 'localhost', ca: [pki.caPem], minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' }, () => resolve(c));
          c.once('error', reject);
        });
        assert.equal(s.getProtocol(), 'TLSv1.2');
        assert.equal(s.getCipher()?.name, name);
        assert.equal(s.authorized, true);
        const page = await new Promise<string>((resolve, reject) => {
          let text = '';
          s.setEncoding('latin1');
          s.on('data', (d: string) => (text += d));
          s.once('end', () => resolve(text));
          s.once('error', reject);
          s.write(httpGet());
        });
        assert.match(page, /Protocol\s*: TLSv1\.2/);
        assert.match(page, /Extended master secret/i);
      } finally {
        await proc.stop();
      }
    }
  });

  void it('answers openssl s_server\'s HelloRequest with a warning no_renegotiation, and reads on until the server ends it', { timeout: 60_000 }, async () => {
    pki ??= await makePki();
    // No -www: "r" on s_server's stdin sends a HelloRequest on the open connection.
    const { proc, port } = await startOpensslServer(['-tls1_2', '-cert', pki.serverCrt, '-key', pki.serverKey, '-msg']);
    try {
      const s = await new Promise<TLSSocket>((resolve, reject) => {
        const c = connectOurs({ host: '127.0.0.1', port, servername: 'localhost', ca: [pki.caPem], minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' }, () => resolve(c));
        c.once('error', reject);
      });
      const ended = new Promise<Error | undefined>((resolve) => {
        s.once('error', resolve);
        s.once('close', () => resolve(undefined));
      });
      await proc.waitFor(/CIPHER is/);
      proc.write('r\n');
      await proc.waitFor(/<<< TLS 1\.2, Alert \[length 0002\], warning no_renegotiation/);
      // OpenSSL ends a renegotiation it asked for and was refused (handshake_failure); the
      // connection was ours to keep until then: our error is the alert we received, not one we sent.
      const error = await ended;
      assert.match(String(error), /peer sent fatal alert handshake_failure/);
      assert.doesNotMatch(proc.output(), /unexpected_message|fatal no_renegotiation/);
    } finally {
      await proc.stop();
    }
  });
});
