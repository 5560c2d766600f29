/**
 * The node:tls engine offers what our own stack offers: TLS 1.3, for TLS 1.2 only ECDHE with
 * AEAD suites in our order, our groups, and no renegotiation. Node's default list also has static RSA key exchange, which RFC 9345 §7.6 asks
 * operators of a DC-enabled RSA certificate to avoid (a signature forgery through an RSA
 * decryption oracle would forge credentials) and which gives no forward secrecy. The leaf here
 * is what `dcctl cert create --key-type rsa-2048` makes: digitalSignature and keyEncipherment.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { connect, type TLSSocket } from 'node:tls';
import { leafKeyUsage } from '../../../src/cli/commands/cert-create.js';
import { asIssuer, issueCertificate } from '../../../src/cli/pki/dev-pki.js';
import { validateServingMaterial } from '../../../src/sidecar/material.js';
import { terminateWithNode } from '../../../src/sidecar/node-engine.js';
import { credentialFiles, type TestPki } from './fixtures.js';

void describe('the node:tls engine suites', () => {
  let pki: TestPki;
  let server: Server;
  let port: number;

  before(async () => {
    const ca = await issueCertificate({ commonName: 'node engine test CA', isCA: true }, 'ecdsa-p256');
    const leaf = await issueCertificate(
      { commonName: 'localhost', dnsNames: ['localhost'], delegationUsage: 'non-critical', extendedKeyUsage: ['serverAuth'], keyUsage: leafKeyUsage('rsa-2048') },
      'rsa-2048',
      asIssuer(ca),
    );
    pki = { ca, leaf };
    const files = await credentialFiles(pki, { algorithms: ['ecdsa_secp256r1_sha256'], certificateKey: true });
    const material = validateServingMaterial('/mem', Object.fromEntries(Object.entries(files).map(([k, v]) => [k, typeof v === 'string' ? Buffer.from(v) : v])));
    // The sidecar's own path: a raw socket handed to terminateWithNode.
    server = createServer((socket) => {
      terminateWithNode(socket, Buffer.alloc(0), material, { timeoutMs: 5000 }).then(
        (tls) => {
          // Reads as the sidecar's relay does, so records after the handshake (a renegotiating
          // ClientHello) reach OpenSSL; answers, and ends when the client does.
          tls.on('end', () => tls.end());
          tls.resume();
          tls.write('ok');
        },
        () => socket.destroy(),
      );
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
  });
  after(() => server.close());

  function handshake(options: { maxVersion?: 'TLSv1.2'; ciphers?: string; ecdhCurve?: string }): Promise<{ version: string | null; cipher: string } | Error> {
    return new Promise((resolve) => {
      const s: TLSSocket = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: pki.ca.pem, ...options }, () => {
        resolve({ version: s.getProtocol(), cipher: s.getCipher().standardName });
        s.end();
      });
      s.once('error', (e) => resolve(e));
    });
  }

  void it('refuses a TLS 1.2 client that offers only static RSA key exchange', async () => {
    const out = await handshake({ maxVersion: 'TLSv1.2', ciphers: 'AES128-GCM-SHA256:AES256-GCM-SHA384:AES128-SHA256' });
    assert.ok(out instanceof Error, `negotiated ${JSON.stringify(out)}`);
  });

  void it('gives a TLS 1.2 client ECDHE with an AEAD suite', async () => {
    const out = await handshake({ maxVersion: 'TLSv1.2' });
    assert.ok(!(out instanceof Error), String(out));
    assert.equal(out.version, 'TLSv1.2');
    assert.match(out.cipher, /^TLS_ECDHE_RSA_WITH_(AES_128_GCM_SHA256|AES_256_GCM_SHA384|CHACHA20_POLY1305_SHA256)$/);
  });

  void it('refuses a TLS 1.2 client that offers only CBC suites', async () => {
    const out = await handshake({ maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-SHA256:ECDHE-RSA-AES256-SHA' });
    assert.ok(out instanceof Error, `negotiated ${JSON.stringify(out)}`);
  });

  void it('prefers its own suite order over the client\'s', async () => {
    const out = await handshake({ maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256' });
    assert.ok(!(out instanceof Error), String(out));
    assert.equal(out.cipher, 'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256');
  });

  void it('refuses X448 and P-521, which our stack does not offer', async () => {
    for (const ecdhCurve of ['X448', 'P-521']) {
      const out = await handshake({ ecdhCurve });
      assert.ok(out instanceof Error, `${ecdhCurve}: negotiated ${JSON.stringify(out)}`);
    }
  });

  void it('refuses a client-initiated TLS 1.2 renegotiation (each would be a full handshake signed by the certificate key)', async () => {
    const sockets: TLSSocket[] = [];
    const result = await new Promise<Error | 'completed' | 'no answer'>((resolve) => {
      const s: TLSSocket = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: pki.ca.pem, maxVersion: 'TLSv1.2' }, () => {
        s.resume(); // read, so the server's answer to the new ClientHello is seen
        s.renegotiate({}, (err) => resolve(err ?? 'completed'));
      });
      sockets.push(s);
      s.on('error', (e) => resolve(e));
      setTimeout(() => resolve('no answer'), 5000).unref();
    });
    for (const s of sockets) s.destroy();
    assert.ok(result instanceof Error, `the renegotiation: ${String(result)}`);
  });

  void it('still speaks TLS 1.3', async () => {
    const out = await handshake({});
    assert.ok(!(out instanceof Error), String(out));
    assert.equal(out.version, 'TLSv1.3');
  });
});
