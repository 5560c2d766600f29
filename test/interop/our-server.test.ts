/**
 * Our TLS 1.3 server against real clients: openssl s_client, curl and node:tls (OpenSSL), over
 * loopback. One server per configuration serves the whole matrix.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as nodeTls from 'node:tls';
import { NamedGroup } from '../../src/tls/constants.js';
import { GROUPS, SUITES, httpGet, killAll, makePki, run, start, startOurServer, type OurServer, type Pki } from './support.js';

function nodeClient(options: nodeTls.ConnectionOptions): Promise<nodeTls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = nodeTls.connect({ host: '127.0.0.1', servername: 'localhost', minVersion: 'TLSv1.3', ...options }, () => resolve(s));
    s.once('error', reject);
  });
}

function readAll(s: nodeTls.TLSSocket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.once('end', () => resolve(Buffer.concat(chunks)));
    s.once('error', reject);
  });
}

function body(http: string): string {
  const i = http.indexOf('\r\n\r\n');
  return i < 0 ? '' : http.slice(i + 4);
}

void describe('our server with openssl s_client, curl and node:tls clients', () => {
  let pki: Pki;
  let main: OurServer;
  let hrr: OurServer;
  let clientAuth: OurServer;
  let ca: Buffer;
  before(async () => {
    pki = await makePki();
    ca = readFileSync(pki.caCrt);
    const cert = { cert: pki.serverPem, key: pki.serverKeyPem };
    main = await startOurServer({ certificates: [cert], alpnProtocols: ['http/1.1', 'h2'] });
    // Takes no P-384 share: a client sending only a P-384 key share gets a HelloRetryRequest.
    hrr = await startOurServer({ certificates: [cert], groups: [NamedGroup.x25519, NamedGroup.secp256r1] });
    clientAuth = await startOurServer({ certificates: [cert], requestCert: true, rejectUnauthorized: true, ca: [pki.caPem] });
  });
  after(async () => {
    killAll();
    await Promise.all([main?.close(), hrr?.close(), clientAuth?.close()]);
    pki?.cleanup();
  });

  void it('completes every suite x group with openssl s_client, curl and node:tls', { timeout: 60_000 }, async () => {
    const failures: string[] = [];
    for (const suite of SUITES) {
      for (const group of GROUPS) {
        const want = `${suite.name} ${group.name} `;
        // openssl s_client
        const s = await run('openssl', ['s_client', '-connect', `127.0.0.1:${main.port}`, '-servername', 'localhost', '-tls1_3', '-ciphersuites', suite.name, '-groups', group.openssl, '-CAfile', pki.caCrt, '-verify_return_error', '-ign_eof'], { input: httpGet() });
        if (s.code !== 0 || !s.output.includes(`Cipher is ${suite.name}`) || !group.temp.test(s.output) || !s.stdout.includes(want) || !/Verify return code: 0 \(ok\)/.test(s.output)) {
          failures.push(`s_client ${suite.name} ${group.name}: exit ${s.code}\n${s.output.slice(-1500)}`);
        }
        // curl
        const c = await run('curl', ['-sS', '--tlsv1.3', '--tls13-ciphers', suite.curl, '--curves', group.openssl, '--cacert', pki.caCrt, '--http1.1', `https://localhost:${main.port}/`]);
        if (c.code !== 0 || !c.stdout.startsWith(want)) failures.push(`curl ${suite.name} ${group.name}: exit ${c.code}: ${c.output}`);
        // node:tls
        try {
          const n = await nodeClient({ port: main.port, ca, ciphers: suite.node, ecdhCurve: group.openssl });
          assert.equal(n.getCipher().standardName, suite.name);
          n.write(httpGet());
          const text = (await readAll(n)).toString('latin1');
          if (!body(text).startsWith(want)) failures.push(`node:tls ${suite.name} ${group.name}: ${text}`);
        } catch (e) {
          failures.push(`node:tls ${suite.name} ${group.name}: ${(e as Error).message}`);
        }
      }
    }
    assert.deepEqual(failures, []);
    assert.deepEqual(main.clientErrors.map((e) => e.message), []);
  });

  void it('sends a HelloRetryRequest to s_client and node:tls clients whose only key share is P-384, then completes on x25519', { timeout: 60_000 }, async () => {
    const s = await run('openssl', ['s_client', '-connect', `127.0.0.1:${hrr.port}`, '-servername', 'localhost', '-tls1_3', '-groups', 'P-384:X25519', '-CAfile', pki.caCrt, '-verify_return_error', '-ign_eof', '-msg'], { input: httpGet() });
    assert.equal(s.code, 0, s.output);
    assert.match(s.output, /Server Temp Key: X25519/);
    assert.match(s.stdout, /TLS_AES_128_GCM_SHA256 x25519 .*hrr=yes/);
    // -msg shows two ClientHellos: the second one answers the HelloRetryRequest.
    assert.equal(s.output.match(/>>> TLS 1\.3, Handshake \[length [0-9a-f]+\], ClientHello/g)?.length, 2, s.output);

    const n = await nodeClient({ port: hrr.port, ca, ecdhCurve: 'P-384:X25519' });
    n.write(httpGet());
    assert.match(body((await readAll(n)).toString('latin1')), /^TLS_AES_128_GCM_SHA256 x25519 .*hrr=yes/);
    assert.deepEqual(hrr.clientErrors.map((e) => e.message), []);
  });

  void it('negotiates ALPN: h2 with s_client -alpn h2, http/1.1 with curl --http2 (server preference) and node:tls', { timeout: 60_000 }, async () => {
    const s = await run('openssl', ['s_client', '-connect', `127.0.0.1:${main.port}`, '-servername', 'localhost', '-alpn', 'h2', '-CAfile', pki.caCrt, '-ign_eof'], { input: httpGet() });
    assert.match(s.output, /ALPN protocol: h2/);
    assert.match(s.stdout, / alpn=h2 /);
    const c = await run('curl', ['-sS', '-v', '--http2', '--cacert', pki.caCrt, `https://localhost:${main.port}/`]);
    assert.equal(c.code, 0, c.output);
    assert.match(c.output, /ALPN(: server accepted|, server accepted to use) http\/1\.1/);
    assert.match(c.stdout, / alpn=http\/1\.1 /);
    const n = await nodeClient({ port: main.port, ca, ALPNProtocols: ['h2'] });
    assert.equal(n.alpnProtocol, 'h2');
    n.end();
    // A client offering only protocols we do not speak is refused with no_application_protocol.
    const bad = await run('openssl', ['s_client', '-connect', `127.0.0.1:${main.port}`, '-servername', 'localhost', '-alpn', 'spdy/3', '-CAfile', pki.caCrt], { input: '' });
    assert.match(bad.output, /alert no application protocol|alert number 120/);
  });

  void it('handles KeyUpdate from s_client ("k" and "K") and keeps echoing, answering the requested update', { timeout: 60_000 }, async () => {
    const p = start('openssl', ['s_client', '-connect', `127.0.0.1:${main.port}`, '-servername', 'localhost', '-CAfile', pki.caCrt, '-msg']);
    await p.waitFor(/Verify return code: 0 \(ok\)/);
    p.write('k\n');
    await p.waitFor(/KEYUPDATE/);
    p.write('after-k\n');
    await p.waitFor(/^after-k$/m);
    const before = p.output().match(/<<< TLS 1\.3, Handshake \[length 0005\], KeyUpdate/g)?.length ?? 0;
    p.write('K\n');
    // Our server answers update_requested with its own KeyUpdate.
    await p.waitFor(/<<< TLS 1\.3, Handshake \[length 0005\], KeyUpdate/);
    p.write('after-K\n');
    await p.waitFor(/^after-K$/m);
    assert.equal(before, 0, 'no KeyUpdate from the server before it was requested');
    p.endInput();
    await p.exited;
  });

  void it('echoes 1 MiB both ways to a node:tls client and to s_client', { timeout: 60_000 }, async () => {
    const payload = Buffer.alloc(1 << 20);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 7 + (i >> 12)) & 0xff;
    const n = await nodeClient({ port: main.port, ca });
    const received = readAll(n);
    n.end(payload);
    assert.ok((await received).equals(payload), 'node:tls got back what it sent');

    // s_client: 1 MiB of text lines on stdin comes back on stdout.
    const line = 'x'.repeat(1023) + '\n';
    const text = line.repeat(1024);
    const p = start('openssl', ['s_client', '-connect', `127.0.0.1:${main.port}`, '-servername', 'localhost', '-CAfile', pki.caCrt, '-quiet']);
    p.write(text);
    assert.equal(await p.waitForStdout(text.length, 30_000), text);
    await p.stop(); // -quiet implies -ign_eof: s_client would wait for the server to close
  });

  void it('resumes sessions: s_client -sess_out/-sess_in reports "Reused" and node:tls resumes with its session', { timeout: 60_000 }, async () => {
    const sess = join(pki.dir, 'sess.pem');
    const first = await run('openssl', ['s_client', '-connect', `127.0.0.1:${main.port}`, '-servername', 'localhost', '-CAfile', pki.caCrt, '-ign_eof', '-sess_out', sess], { input: httpGet() });
    assert.match(first.output, /^New, TLSv1\.3/m);
    const second = await run('openssl', ['s_client', '-connect', `127.0.0.1:${main.port}`, '-servername', 'localhost', '-CAfile', pki.caCrt, '-ign_eof', '-sess_in', sess], { input: httpGet() });
    assert.match(second.output, /^Reused, TLSv1\.3/m, second.output);
    assert.match(second.stdout, / resumed=yes /);
    rmSync(sess);

    // The ticket may arrive with the server's first flight, so listen before the handshake ends.
    const a = nodeTls.connect({ host: '127.0.0.1', port: main.port, servername: 'localhost', ca });
    const session = await new Promise<Buffer>((res, rej) => {
      a.once('session', res);
      a.once('error', rej);
    });
    // node:tls loses a write made from inside its 'session' callback (also against a node:tls server).
    await new Promise((res) => setImmediate(res));
    a.write(httpGet());
    await readAll(a);
    const b = await nodeClient({ port: main.port, ca, session });
    assert.equal(b.isSessionReused(), true);
    b.write(httpGet());
    assert.match(body((await readAll(b)).toString('latin1')), / resumed=yes /);
  });

  void it('authenticates clients: s_client and node:tls with a certificate are accepted, without one refused', { timeout: 60_000 }, async () => {
    const s = await run('openssl', ['s_client', '-connect', `127.0.0.1:${clientAuth.port}`, '-servername', 'localhost', '-CAfile', pki.caCrt, '-cert', pki.clientCrt, '-key', pki.clientKey, '-ign_eof'], { input: httpGet() });
    assert.equal(s.code, 0, s.output);
    assert.match(s.stdout, / client=interop-client /);

    const n = await nodeClient({ port: clientAuth.port, ca, cert: pki.clientPem, key: pki.clientKeyPem });
    n.write(httpGet());
    assert.match(body((await readAll(n)).toString('latin1')), / client=interop-client /);

    const errorsBefore = clientAuth.clientErrors.length;
    const none = await run('openssl', ['s_client', '-connect', `127.0.0.1:${clientAuth.port}`, '-servername', 'localhost', '-CAfile', pki.caCrt, '-ign_eof'], { input: httpGet() });
    assert.match(none.output, /alert certificate required|alert number 116/, none.output);
    assert.doesNotMatch(none.stdout, / client=/);
    assert.equal(clientAuth.clientErrors.length, errorsBefore + 1);
  });
});
