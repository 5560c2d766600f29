/**
 * Post-quantum key exchange with real peers, over loopback: node:tls on Node 24 (OpenSSL 3.5)
 * and Go's crypto/tls (test/interop/go/pq-peer, built here once and cached) as clients of our
 * server and as servers for our client, each restricted to one hybrid group so that success
 * proves that group; and OpenSSL 3.0's s_client/s_server, curl and NSS tstclnt, which have no
 * hybrid, still settling on x25519 with us.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import * as nodeTls from 'node:tls';
import { connect, type ConnectOptions } from '../../src/tls/socket.js';
import { NamedGroup } from '../../src/tls/constants.js';
import type { HandshakeInfo } from '../../src/tls/connection.js';
import { goProgram, httpGet, killAll, makePki, run, start, startKeylessKeyServer, startOpensslServer, startOurServer, type OurServer, type Pki } from './support.js';
import { KeylessSigner } from '../../src/signer/keyless.js';
import { mlDsaSelfSigned } from '../support/ml-dsa-certificate.js';
import { makeKeylessPki, type KeylessPki } from '../unit/keyless/pki.js';

const T = { timeout: 120_000 };
/** Our client: the handshake info and the first line the server sent. */
function ourClient(port: number, options: Partial<ConnectOptions>, pki: Pki): Promise<{ info: HandshakeInfo; line: string }> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: [pki.caPem], ...options }, () => {
      let text = '';
      s.on('data', (c: Buffer) => {
        text += c.toString('latin1');
        const nl = text.indexOf('\n');
        if (nl >= 0) {
          resolve({ info: s.handshakeInfo!, line: text.slice(0, nl) });
          s.destroy();
        }
      });
      s.write(httpGet());
    });
    s.once('error', reject);
  });
}

/** A node:tls client of our server: the status line our server wrote about the connection. */
function nodeClient(port: number, ca: Buffer, ecdhCurve: string | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = nodeTls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca, minVersion: 'TLSv1.3', ...(ecdhCurve ? { ecdhCurve } : {}) }, () => s.write(httpGet()));
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.once('end', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      resolve(text.slice(text.indexOf('\r\n\r\n') + 4).trim());
    });
    s.once('error', reject);
  });
}

void describe('post-quantum key exchange with node:tls 24, Go crypto/tls, OpenSSL 3.0, curl and NSS', () => {
  let pki: Pki;
  let ours: OurServer;
  let ca: Buffer;
  let go: string;
  before(async () => {
    pki = await makePki();
    ca = readFileSync(pki.caCrt);
    ours = await startOurServer({ certificates: [{ cert: pki.serverPem, key: pki.serverKeyPem }] });
    go = await goProgram('pq-peer');
  });
  after(async () => {
    killAll();
    await ours?.close();
    pki?.cleanup();
  });

  void it('our server completes X25519MLKEM768 and SecP256r1MLKEM768 with node:tls clients restricted to each', T, async () => {
    assert.match(await nodeClient(ours.port, ca, 'X25519MLKEM768'), /^TLS_AES_\S+ X25519MLKEM768 .*hrr=no/);
    assert.match(await nodeClient(ours.port, ca, 'SecP256r1MLKEM768'), /^TLS_AES_\S+ SecP256r1MLKEM768 .*hrr=no/);
    // node:tls's default (OpenSSL 3.5: X25519MLKEM768 and x25519 shares) gets the hybrid.
    assert.match(await nodeClient(ours.port, ca, undefined), /^TLS_AES_\S+ X25519MLKEM768 .*hrr=no/);
    assert.deepEqual(ours.clientErrors.map((e) => e.message), []);
  });

  void it('our server asks a client that lists X25519MLKEM768 but sent only an x25519 share to retry, and gets the hybrid', T, async () => {
    // OpenSSL sends a share for the first listed group only when the list has no key-share marks.
    assert.match(await nodeClient(ours.port, ca, 'X25519:X25519MLKEM768'), /^TLS_AES_\S+ X25519MLKEM768 .*hrr=yes/);
  });

  void it('our server takes the SecP256r1MLKEM768 share of a client that also lists X25519MLKEM768 (without a share), with no retry', T, async () => {
    // OpenSSL 3.5 sends a share for the first listed group only; both are post-quantum, so a
    // retry for the one we prefer would cost a round trip for nothing.
    assert.match(await nodeClient(ours.port, ca, 'SecP256r1MLKEM768:X25519MLKEM768:X25519'), /^TLS_AES_\S+ SecP256r1MLKEM768 .*hrr=no/);
  });

  void it('our server completes each hybrid with Go crypto/tls clients (default config and restricted CurvePreferences)', T, async () => {
    for (const [curves, want] of [
      ['', 'group=0x11ec'],
      ['X25519MLKEM768', 'group=0x11ec'],
      ['SecP256r1MLKEM768', 'group=0x11eb'],
    ] as const) {
      const r = await run(go, ['client', '-addr', `127.0.0.1:${ours.port}`, '-servername', 'localhost', '-ca', pki.caCrt, ...(curves ? ['-curves', curves] : [])]);
      assert.equal(r.code, 0, r.output);
      assert.match(r.stdout, new RegExp(`^${want} version=0x0304 suite=0x130[123] hrr=false$`, 'm'), `curves ${curves || 'default'}: ${r.output}`);
    }
    const lines = ours.connections.map((c) => c.group);
    assert.deepEqual(lines.slice(-3), ['X25519MLKEM768', 'X25519MLKEM768', 'SecP256r1MLKEM768']);
  });

  void it('OpenSSL 3.0 s_client, curl and NSS tstclnt, with their defaults, still negotiate x25519 with our server', T, async () => {
    const s = await run('openssl', ['s_client', '-connect', `127.0.0.1:${ours.port}`, '-servername', 'localhost', '-CAfile', pki.caCrt, '-verify_return_error', '-ign_eof'], { input: httpGet() });
    assert.equal(s.code, 0, s.output);
    assert.match(s.output, /Server Temp Key: X25519/);
    assert.match(s.stdout, /TLS_AES_\S+ x25519 .*hrr=no/);

    const c = await run('curl', ['-sS', '--cacert', pki.caCrt, '--http1.1', `https://localhost:${ours.port}/`]);
    assert.equal(c.code, 0, c.output);
    assert.match(c.stdout, /^TLS_AES_\S+ x25519 .*hrr=no/);

    const nssDb = join(pki.dir, 'nssdb');
    mkdirSync(nssDb);
    assert.equal((await run('certutil', ['-N', '--empty-password', '-d', nssDb])).code, 0);
    assert.equal((await run('certutil', ['-A', '-n', 'ca', '-t', 'C,,', '-i', pki.caCrt, '-d', nssDb])).code, 0);
    const p = start('tstclnt', ['-h', '127.0.0.1', '-p', String(ours.port), '-a', 'localhost', '-d', nssDb, '-V', 'tls1.3:tls1.3']);
    p.write(httpGet());
    await p.waitFor(/TLS_\S+ x25519 .*hrr=no/, 20_000);
    await p.stop();
  });

  void it('our client completes each hybrid against node:tls servers restricted to it', T, async () => {
    for (const [ecdhCurve, group, retry] of [
      ['X25519MLKEM768', NamedGroup.X25519MLKEM768, false],
      // Our default shares are X25519MLKEM768 and x25519: this server asks for its group.
      ['SecP256r1MLKEM768', NamedGroup.SecP256r1MLKEM768, true],
    ] as const) {
      const server = nodeTls.createServer({ cert: pki.serverPem, key: pki.serverKeyPem, minVersion: 'TLSv1.3', ecdhCurve }, (s) => s.end('hello from node:tls\n'));
      await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
      try {
        const { info, line } = await ourClient((server.address() as AddressInfo).port, {}, pki);
        assert.equal(line, 'hello from node:tls');
        assert.equal(info.group, group);
        assert.equal(info.helloRetryRequest, retry);
      } finally {
        server.close();
      }
    }
  });

  void it('our client completes each hybrid against Go crypto/tls servers (default config and restricted CurvePreferences)', T, async () => {
    for (const [curves, group, retry] of [
      ['', NamedGroup.X25519MLKEM768, false],
      ['X25519MLKEM768', NamedGroup.X25519MLKEM768, false],
      ['SecP256r1MLKEM768', NamedGroup.SecP256r1MLKEM768, true],
    ] as const) {
      const server = start(go, ['server', '-cert', pki.serverCrt, '-key', pki.serverKey, ...(curves ? ['-curves', curves] : [])]);
      try {
        const port = Number((await server.waitFor(/listening (\d+)/))[1]);
        const { info, line } = await ourClient(port, {}, pki);
        assert.equal(info.group, group, `curves ${curves || 'default'}`);
        assert.equal(info.helloRetryRequest, retry);
        // Go's own view of the same connection.
        assert.equal(line, `group=0x${group.toString(16)} version=0x0304 suite=0x${info.cipherSuite.toString(16)} hrr=${retry}`);
      } finally {
        server.endInput();
        await server.exited;
      }
    }
  });

  void it('our client settles on x25519 with an OpenSSL 3.0 s_server on its defaults', T, async () => {
    const s = await startOpensslServer(['-tls1_3', '-cert', pki.serverCrt, '-key', pki.serverKey, '-www']);
    try {
      const { info } = await ourClient(s.port, {}, pki);
      assert.equal(info.group, NamedGroup.x25519);
      assert.equal(info.helloRetryRequest, false);
    } finally {
      await s.proc.stop();
    }
  });
});

void describe('ML-DSA certificates behind a real key server (keyless, opcode 0xC0), with node:tls 24 clients', () => {
  let kpki: KeylessPki | undefined;
  const closers: Array<() => Promise<unknown>> = [];
  after(async () => {
    for (const close of closers.reverse()) await close();
    killAll();
    kpki?.cleanup();
  });

  void it('our server signs its TLS 1.3 CertificateVerify with ML-DSA-44, -65 and -87 keys held by dc-operator keyserver; node:tls verifies the certificate and the signature', T, async () => {
    kpki = makeKeylessPki([]);
    const types = ['ml-dsa-44', 'ml-dsa-65', 'ml-dsa-87'] as const;
    const certificates = types.map((type) => {
      const { certPem, keyPem } = mlDsaSelfSigned(type, 'localhost');
      writeFileSync(join(kpki!.keysDir, `${type}.pem`), keyPem);
      return { type, certPem };
    });
    const keyServer = await startKeylessKeyServer(kpki);
    for (const { type, certPem } of certificates) {
      const signer = new KeylessSigner({ address: keyServer.address, ca: kpki.ca, clientCert: kpki.client.cert, clientKey: kpki.client.key, certificate: certPem, timeoutMs: 5000 });
      closers.push(() => signer.close());
      // As the sidecar does: the certificate's key is the key server's, the hook labels it "keyless".
      const server = await startOurServer({ certificates: [{ cert: certPem, key: signer }], selectCredential: (_hello, fallback) => {
        const c = fallback();
        return c && { ...c, label: 'keyless' };
      } });
      closers.push(() => server.close());
      assert.match(await nodeClient(server.port, Buffer.from(certPem), undefined), /^TLS_AES_\S+ \S+ .*auth=keyless$/, type);
      assert.deepEqual(server.clientErrors.map((e) => e.message), [], type);
    }
    assert.doesNotMatch(keyServer.proc.output(), /"level":"error"/);
  });
});

