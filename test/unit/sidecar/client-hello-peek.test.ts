import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { before, describe, it } from 'node:test';
import { ClientHelloPeeker, MAX_CLIENT_HELLO, plaintextAlert } from '../../../src/sidecar/client-hello-peek.js';
import { AlertDescription } from '../../../src/tls/alerts.js';
import { HandshakeType, ProtocolVersion, SignatureScheme } from '../../../src/tls/constants.js';
import { encodeHandshake } from '../../../src/tls/messages/handshake.js';
import { writeClientHello, type ClientHello } from '../../../src/tls/messages/client-hello.js';

/** The first bytes a real node:tls (OpenSSL) client sends. */
async function captureClientHello(maxVersion: 'TLSv1.2' | 'TLSv1.3'): Promise<Buffer> {
  return new Promise((resolve) => {
    const server = createServer((s) => {
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => {
        chunks.push(c);
        const all = Buffer.concat(chunks);
        if (all.length >= 5 && all.length >= 5 + all.readUInt16BE(3)) {
          resolve(all);
          s.destroy();
          server.close();
        }
      });
    }).listen(0, '127.0.0.1', () => {
      const c = tlsConnect({ port: (server.address() as AddressInfo).port, host: '127.0.0.1', maxVersion, servername: 'example.test' });
      c.on('error', () => {});
    });
  });
}

/** A ClientHello with a large unknown extension, so it must span records when fragmented. */
function bigHello(extraBytes: number): ClientHello {
  return {
    legacyVersion: 0x0303,
    random: new Uint8Array(32).fill(7),
    legacySessionId: new Uint8Array(32).fill(1),
    cipherSuites: [0x1301],
    legacyCompressionMethods: Uint8Array.of(0),
    extensions: {
      supportedVersions: [ProtocolVersion.TLS1_3],
      signatureAlgorithms: [SignatureScheme.ecdsa_secp256r1_sha256],
      delegatedCredential: [SignatureScheme.ed25519],
      supportedGroups: [0x1d],
      keyShares: [{ group: 0x1d, keyExchange: new Uint8Array(32).fill(9) }],
      unknown: [{ type: 0xfe0d, data: new Uint8Array(extraBytes).fill(0xab) }],
    },
  };
}

/** Handshake message bytes cut into records of at most `fragment` bytes. */
function records(message: Uint8Array, fragment: number): Buffer {
  const out: Buffer[] = [];
  for (let at = 0; at < message.length; at += fragment) {
    const part = message.subarray(at, at + fragment);
    out.push(Buffer.from([22, 3, 1, part.length >> 8, part.length & 0xff]), Buffer.from(part));
  }
  return Buffer.concat(out);
}

void describe('ClientHello peek', () => {
  let tls13: Buffer;
  let tls12: Buffer;
  before(async () => {
    tls13 = await captureClientHello('TLSv1.3');
    tls12 = await captureClientHello('TLSv1.2');
  });

  void it("decodes OpenSSL's TLS 1.3 ClientHello with its SNI and supported_versions", () => {
    const r = new ClientHelloPeeker().push(tls13);
    assert.equal(r.kind, 'client-hello');
    if (r.kind !== 'client-hello') return;
    assert.equal(r.hello.extensions.serverName, 'example.test');
    assert.ok(r.hello.extensions.supportedVersions?.includes(ProtocolVersion.TLS1_3));
  });

  void it('sees a TLS 1.2-only ClientHello as one without TLS 1.3', () => {
    const r = new ClientHelloPeeker().push(tls12);
    assert.equal(r.kind, 'client-hello');
    if (r.kind !== 'client-hello') return;
    assert.equal(r.hello.extensions.supportedVersions?.includes(ProtocolVersion.TLS1_3) ?? false, false);
  });

  void it('needs more for every strict prefix, fed one byte at a time, and keeps every byte for replay', () => {
    const p = new ClientHelloPeeker();
    for (let i = 0; i < tls13.length - 1; i++) assert.equal(p.push(tls13.subarray(i, i + 1)).kind, 'need-more', `after ${i + 1} bytes`);
    assert.equal(p.push(tls13.subarray(tls13.length - 1)).kind, 'client-hello');
    assert.deepEqual(p.buffered, tls13);
  });

  void it('reassembles a ClientHello split across records and reads the delegated_credential extension', () => {
    const message = encodeHandshake(HandshakeType.client_hello, (w) => writeClientHello(w, bigHello(3000)), 4096);
    const bytes = records(message, 1000);
    const r = new ClientHelloPeeker().push(bytes);
    assert.equal(r.kind, 'client-hello');
    if (r.kind !== 'client-hello') return;
    assert.deepEqual(r.hello.extensions.delegatedCredential, [SignatureScheme.ed25519]);
  });

  void it('keeps bytes that follow the ClientHello in the replay buffer', () => {
    const p = new ClientHelloPeeker();
    const extra = Buffer.from([20, 3, 3, 0, 1, 1]); // a middlebox-compat CCS right behind it
    assert.equal(p.push(Buffer.concat([tls13, extra])).kind, 'client-hello');
    assert.deepEqual(p.buffered, Buffer.concat([tls13, extra]));
  });

  void it('refuses plain HTTP, a non-handshake record, an oversized record and an oversized ClientHello', () => {
    const http = new ClientHelloPeeker().push(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    assert.equal(http.kind, 'not-tls');
    assert.match(http.kind === 'not-tls' ? http.reason : '', /^the peer spoke plain HTTP \("GET \/ HT\.\.\."\), not TLS, to a TLS port: use https:\/\/$/);
    const alertFirst = new ClientHelloPeeker().push(Buffer.from([21, 3, 3, 0, 2, 2, 40]));
    assert.equal(alertFirst.kind, 'not-tls');
    const huge = new ClientHelloPeeker().push(Buffer.from([22, 3, 1, 0x40, 0x01]));
    assert.deepEqual(huge.kind === 'not-tls' && huge.alert, AlertDescription.record_overflow);
    const len = MAX_CLIENT_HELLO + 1;
    const hugeHello = new ClientHelloPeeker().push(Buffer.from([22, 3, 1, 0, 4, 1, len >> 16, (len >> 8) & 0xff, len & 0xff]));
    assert.deepEqual(hugeHello.kind === 'not-tls' && hugeHello.alert, AlertDescription.record_overflow);
  });

  void it('refuses a ClientHello that does not decode, with the codec’s alert', () => {
    const broken = Buffer.from(tls13);
    broken.writeUInt16BE(0xffff, 5 + 4 + 2 + 32 + 1 + broken[5 + 4 + 2 + 32]!); // cipher_suites length overruns
    const r = new ClientHelloPeeker().push(broken);
    assert.equal(r.kind, 'not-tls');
    assert.deepEqual(r.kind === 'not-tls' && r.alert, AlertDescription.decode_error);
  });

  void it('decodes a ClientHello sent as one-byte records and fed one byte at a time (headers split everywhere)', () => {
    const message = encodeHandshake(HandshakeType.client_hello, (w) => writeClientHello(w, bigHello(0)));
    const bytes = records(message, 1);
    const p = new ClientHelloPeeker();
    for (let i = 0; i < bytes.length - 1; i++) assert.equal(p.push(bytes.subarray(i, i + 1)).kind, 'need-more', `after ${i + 1} bytes`);
    const r = p.push(bytes.subarray(bytes.length - 1));
    assert.equal(r.kind, 'client-hello');
    assert.deepEqual(r.kind === 'client-hello' && r.hello.extensions.delegatedCredential, [SignatureScheme.ed25519]);
    assert.deepEqual(p.buffered, bytes);
  });

  void it('refuses a ClientHello spread over more than 1024 records, at record 1025 (unexpected_message), as our stack does', () => {
    const message = encodeHandshake(HandshakeType.client_hello, (w) => writeClientHello(w, bigHello(2000)), 4096);
    const bytes = records(message, 1);
    const p = new ClientHelloPeeker();
    assert.equal(p.push(bytes.subarray(0, 1024 * 6)).kind, 'need-more');
    const r = p.push(bytes.subarray(1024 * 6, 1025 * 6));
    assert.deepEqual(r.kind === 'not-tls' && r.alert, AlertDescription.unexpected_message);
  });

  void it('encodes a plaintext fatal alert record in the client’s record version', () => {
    assert.deepEqual([...plaintextAlert(AlertDescription.protocol_version, 0x0301)], [21, 3, 1, 0, 2, 2, 70]);
    assert.deepEqual([...plaintextAlert(AlertDescription.handshake_failure, 0x0400)], [21, 3, 3, 0, 2, 2, 40]);
  });
});
