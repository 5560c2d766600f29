/**
 * TLS 1.2 client authentication on our server (src/tls/tls12/client-auth.ts): the CertificateRequest,
 * client certificates of each key type and CertificateVerify scheme, rejectUnauthorized both ways,
 * every hostile or misordered client flight with the alert it gets, and what tickets keep of it.
 * The client is mostly scripted (./tls12-script.ts), to send what our own TLS 1.2 client never
 * would; at the end our client presents its certificates to our server.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { ClientConfig, ClientConnection } from '../../../src/tls/client.js';
import { ServerConfig, ServerConnection, DEFAULT_VERIFY_SCHEMES, type ServerOptions } from '../../../src/tls/server.js';
import { AlertDescription as A } from '../../../src/tls/alerts.js';
import { ContentType, HandshakeType, SignatureScheme as S } from '../../../src/tls/constants.js';
import type { HandshakeInfo, TlsEvent } from '../../../src/tls/connection.js';
import { AlertReceived, BadCertificate, HandshakeFailure, UnknownCa } from '../../../src/tls/errors.js';
import { encodeHandshake, MAX_CERTIFICATE_BODY } from '../../../src/tls/messages/handshake.js';
import { decodeCertificateRequest12, decodeNewSessionTicket12 } from '../../../src/tls/tls12/messages.js';
import { requestedSchemes12 } from '../../../src/tls/tls12/client-certificate.js';
import { createKeySigner, type Signer } from '../../../src/tls/signer.js';
import { CHANGE_CIPHER_SPEC, completed, feedAll, handshakeMessages, hello12, record, refusalAfter, refusalIn, ScriptedClient12 } from './tls12-script.js';
import { assertConnected, doHandshake, transfer } from './pair.js';
import { testPki, type Issued, type KeyType } from './pki.js';

const H = HandshakeType;
const TICKET_KEY = new Uint8Array(32).fill(0x42);

async function serverConfig(extra: Partial<ServerOptions> = {}): Promise<ServerConfig> {
  const pki = await testPki();
  const leaf = await pki.leaf('p256');
  return new ServerConfig({ certificates: [{ cert: leaf.pem, key: leaf.key }], requestCert: true, ca: [pki.ca.pem], ticketKey: TICKET_KEY, ...extra });
}

function clientLeaf(keyType: KeyType): Promise<Issued> {
  return testPki().then((pki) => pki.leaf(keyType, ['client.test'], 'client'));
}

/** The ClientHello: ECDHE_ECDSA (our P-256 certificate), and every scheme a client may sign with. */
function hello(extra: Parameters<typeof hello12>[0] = {}, over: Parameters<typeof hello12>[1] = {}): Uint8Array {
  return hello12({ signatureAlgorithms: [S.ecdsa_secp256r1_sha256, S.rsa_pss_rsae_sha256, S.rsa_pkcs1_sha256], ...extra }, over);
}

/** A scripted client that sent its ClientHello to a new connection of `config` and read the first flight. */
async function started(config: ServerConfig, clientHello = hello()): Promise<ScriptedClient12> {
  const c = new ScriptedClient12(new ServerConnection(config));
  await c.hello(clientHello);
  return c;
}

/** The whole client flight with a certificate: Certificate, ClientKeyExchange, CertificateVerify, ChangeCipherSpec, Finished. */
function authenticatedFlight(c: ScriptedClient12, leaf: Issued, scheme: number): Uint8Array[] {
  return [c.certificate([leaf.der]), c.keyExchange(), c.certificateVerify(leaf.key, scheme), CHANGE_CIPHER_SPEC, c.finished()];
}

function errorOf(events: readonly TlsEvent[]): Extract<TlsEvent, { type: 'error' }> | undefined {
  return events.find((e): e is Extract<TlsEvent, { type: 'error' }> => e.type === 'error');
}

void describe('TLS 1.2 client authentication: what the server asks for', () => {
  void test('with requestCert, a CertificateRequest after ServerKeyExchange: ECDSA and RSA types, the TLS 1.2 schemes of the TLS 1.3 list (PKCS#1 v1.5 in, Ed25519 and ML-DSA out), any CA', async () => {
    const c = await started(await serverConfig());
    assert.deepEqual(c.serverMessages.map((m) => m[0]), [H.server_hello, H.certificate, H.server_key_exchange, H.certificate_request, H.server_hello_done]);
    const cr = decodeCertificateRequest12(c.serverMessage(H.certificate_request)!);
    assert.deepEqual(cr.certificateTypes, [1, 64]);
    assert.deepEqual(cr.certificateAuthorities, []);
    assert.ok(cr.signatureAlgorithms.includes(S.rsa_pkcs1_sha256) && cr.signatureAlgorithms.includes(S.ecdsa_secp256r1_sha256) && cr.signatureAlgorithms.includes(S.rsa_pss_rsae_sha256));
    for (const never of [S.ed25519, S.mldsa44, S.mldsa65, S.mldsa87]) assert.ok(!cr.signatureAlgorithms.includes(never), `0x${never.toString(16)} offered`);
    assert.deepEqual(cr.signatureAlgorithms, DEFAULT_VERIFY_SCHEMES.filter((s) => s !== S.ed25519 && s !== S.mldsa44 && s !== S.mldsa65 && s !== S.mldsa87));
  });

  void test('without requestCert, no CertificateRequest (and the first flight is as before)', async () => {
    const c = await started(await serverConfig({ requestCert: false }));
    assert.deepEqual(c.serverMessages.map((m) => m[0]), [H.server_hello, H.certificate, H.server_key_exchange, H.server_hello_done]);
  });

  void test('requestCert with maxVersion TLSv1.2 is a valid configuration now, and a TLS 1.2 hello to a TLS 1.3 server with requestCert gets TLS 1.2', async () => {
    const only12 = await serverConfig({ maxVersion: 'TLSv1.2' });
    assert.deepEqual((await started(only12)).serverMessages.map((m) => m[0]).includes(H.certificate_request), true);
    const both = await started(await serverConfig());
    assert.equal(both.serverMessages[0]![4], 3);
    assert.equal(both.serverMessages[0]![5], 3, 'ServerHello version 1.2');
  });
});

void describe('TLS 1.2 client certificates that are accepted', () => {
  const cases: [KeyType, number, string][] = [
    ['p256', S.ecdsa_secp256r1_sha256, 'ECDSA P-256'],
    ['p384', S.ecdsa_secp384r1_sha384, 'ECDSA P-384'],
    ['p384', S.ecdsa_secp256r1_sha256, 'ECDSA P-384 key with SHA-256 (a TLS 1.2 ECDSA scheme names the hash only, RFC 5246 §7.4.1.4.1)'],
    ['rsa', S.rsa_pss_rsae_sha256, 'RSA with RSA-PSS'],
    ['rsa', S.rsa_pkcs1_sha256, 'RSA with PKCS#1 v1.5 (allowed in TLS 1.2 CertificateVerify)'],
    ['rsa', S.rsa_pkcs1_sha512, 'RSA with PKCS#1 v1.5 and SHA-512 (not the suite hash)'],
  ];
  for (const [keyType, scheme, label] of cases) {
    void test(`${label}: the handshake completes, authorized, with the client's certificate and scheme`, async () => {
      const leaf = await clientLeaf(keyType);
      const c = await started(await serverConfig());
      const { events } = await feedAll(c.conn, ...authenticatedFlight(c, leaf, scheme));
      const info = completed(events);
      assert.equal(info.version, 'TLSv1.2');
      assert.equal(info.peerAuthorized, true);
      assert.equal(info.peerAuthorizationError, undefined);
      assert.deepEqual(info.peerCertificates.map((d) => Buffer.from(d)), [Buffer.from(leaf.der)]);
      assert.deepEqual(info.clientMode, { authentication: 'certificate', signatureScheme: scheme });
    });
  }

  void test('rejectUnauthorized false: an untrusted certificate completes, not authorized, with the reason; the chain is still shown', async () => {
    const pki = await testPki();
    const leaf = await clientLeaf('p256');
    const c = await started(await serverConfig({ rejectUnauthorized: false, ca: [pki.otherCa.pem] }));
    const info = completed((await feedAll(c.conn, ...authenticatedFlight(c, leaf, S.ecdsa_secp256r1_sha256))).events);
    assert.equal(info.peerAuthorized, false);
    assert.match(info.peerAuthorizationError ?? '', /issuer|trust|CA/i);
    assert.equal(info.peerCertificates.length, 1);
    // It still had to prove its key: CertificateVerify was checked.
    assert.equal(info.clientMode?.signatureScheme, S.ecdsa_secp256r1_sha256);
  });

  void test('rejectUnauthorized false: no certificate completes, not authorized, no peer certificate', async () => {
    const c = await started(await serverConfig({ rejectUnauthorized: false }));
    const info = completed((await feedAll(c.conn, c.certificate([]), c.keyExchange(), CHANGE_CIPHER_SPEC, c.finished())).events);
    assert.equal(info.peerAuthorized, false);
    assert.deepEqual(info.peerCertificates, []);
    assert.equal(info.clientMode, undefined);
  });

  void test('rejectUnauthorized false: an untrusted certificate whose CertificateVerify does not verify is still refused (decrypt_error)', async () => {
    const pki = await testPki();
    const leaf = await clientLeaf('p256');
    const c = await started(await serverConfig({ rejectUnauthorized: false, ca: [pki.otherCa.pem] }));
    const flight = [c.certificate([leaf.der]), c.keyExchange(), c.certificateVerify((await clientLeaf('p384')).key, S.ecdsa_secp256r1_sha256)];
    assert.deepEqual(refusalAfter(c.conn, ...flight), { alert: A.decrypt_error, fault: 'BadCertificateVerifySignature' });
  });
});

void describe('TLS 1.2 client authentication refusals, each with its alert', () => {
  void test('no certificate (an empty list) while one is required: handshake_failure (certificate_required is TLS 1.3 only)', async () => {
    const c = await started(await serverConfig());
    const { events } = await feedAll(c.conn, c.certificate([]));
    const err = errorOf(events);
    assert.equal(err?.sentAlert, A.handshake_failure);
    assert.ok(err?.error instanceof HandshakeFailure);
    assert.match(err.error.message, /no certificate/);
  });

  void test('a certificate from a CA we do not trust: unknown_ca', async () => {
    const pki = await testPki();
    const c = await started(await serverConfig({ ca: [pki.otherCa.pem] }));
    const err = errorOf((await feedAll(c.conn, c.certificate([(await clientLeaf('p256')).der]))).events);
    assert.equal(err?.sentAlert, A.unknown_ca);
    assert.ok(err?.error instanceof UnknownCa);
  });

  void test('an oversized chain (11 certificates, more than MAX_CHAIN_LENGTH): bad_certificate', async () => {
    const leaf = await clientLeaf('p256');
    const c = await started(await serverConfig());
    const err = errorOf((await feedAll(c.conn, c.certificate(Array.from({ length: 11 }, () => leaf.der)))).events);
    assert.equal(err?.sentAlert, A.bad_certificate);
    assert.ok(err?.error instanceof BadCertificate);
    assert.match(err.error.message, /11 certificates/);
  });

  void test('a Certificate declaring more than the message limit: record_overflow at its header, before the body', async () => {
    const c = await started(await serverConfig());
    const n = MAX_CERTIFICATE_BODY + 1;
    const header = Uint8Array.of(H.certificate, n >>> 16, (n >>> 8) & 0xff, n & 0xff);
    assert.equal(refusalAfter(c.conn, record(ContentType.handshake, header)).alert, A.record_overflow);
  });

  void test('malformed Certificates: a zero-length entry, a list longer than the message, trailing bytes: decode_error; bytes that are no certificate: bad_certificate', async () => {
    const leaf = await clientLeaf('p256');
    const cert = (body: Uint8Array) => encodeHandshake(H.certificate, (w) => w.bytes(body));
    const zeroEntry = Uint8Array.of(0, 0, 3, 0, 0, 0);
    const overlong = Uint8Array.of(0, 0, 9, 0, 0, 1, 7);
    const trailing = Buffer.concat([Uint8Array.of(0, (leaf.der.length + 3) >> 8, (leaf.der.length + 3) & 0xff, 0, leaf.der.length >> 8, leaf.der.length & 0xff), leaf.der, Uint8Array.of(0)]);
    for (const [name, body] of [['zero-length entry', zeroEntry], ['overlong list', overlong], ['trailing byte', trailing]] as const) {
      const c = await started(await serverConfig());
      assert.equal(refusalAfter(c.conn, c.handshake(cert(body))).alert, A.decode_error, name);
    }
    const c = await started(await serverConfig());
    assert.equal(refusalAfter(c.conn, c.certificate([Buffer.from('not a certificate')])).alert, A.bad_certificate);
  });

  void test('a CertificateVerify with a scheme we did not offer (RSA PKCS#1 SHA-1, Ed25519): illegal_parameter', async () => {
    const leaf = await clientLeaf('p256');
    for (const scheme of [0x0201, S.ed25519]) {
      const c = await started(await serverConfig());
      const cv = encodeHandshake(H.certificate_verify, (w) => w.u16(scheme).opaque16(new Uint8Array(64).fill(1)));
      assert.deepEqual(refusalAfter(c.conn, c.certificate([leaf.der]), c.keyExchange(), c.handshake(cv)), { alert: A.illegal_parameter, fault: 'UnofferedSignatureScheme' }, `0x${scheme.toString(16)}`);
    }
  });

  void test('a CertificateVerify that does not verify: decrypt_error (a flipped byte, another key, a scheme of another key type, the messages without ClientKeyExchange)', async () => {
    const leaf = await clientLeaf('p256');
    const other = await clientLeaf('p384');
    const rsa = await clientLeaf('rsa');
    const tries: [string, (c: ScriptedClient12) => Uint8Array[]][] = [
      ['flipped byte', (c) => [c.certificate([leaf.der]), c.keyExchange(), c.certificateVerify(leaf.key, S.ecdsa_secp256r1_sha256, (s) => { s[s.length - 1]! ^= 1; return s; })]],
      ['another key', (c) => [c.certificate([leaf.der]), c.keyExchange(), c.certificateVerify(other.key, S.ecdsa_secp256r1_sha256)]],
      ['RSA scheme from an ECDSA certificate', (c) => [c.certificate([leaf.der]), c.keyExchange(), c.certificateVerify(rsa.key, S.rsa_pss_rsae_sha256)]],
      ['ECDSA scheme from an RSA certificate', (c) => [c.certificate([rsa.der]), c.keyExchange(), c.certificateVerify(leaf.key, S.ecdsa_secp256r1_sha256)]],
      [
        'signature over the messages before ClientKeyExchange',
        (c) => {
          const certificate = c.certificate([leaf.der]);
          const early = c.certificateVerify(leaf.key, S.ecdsa_secp256r1_sha256);
          c.log.pop();
          return [certificate, c.keyExchange(), early];
        },
      ],
    ];
    for (const [name, flight] of tries) {
      const c = await started(await serverConfig());
      assert.deepEqual(refusalAfter(c.conn, ...flight(c)), { alert: A.decrypt_error, fault: 'BadCertificateVerifySignature' }, name);
    }
  });

  void test('an empty CertificateVerify signature is well-formed in TLS 1.2 (signature<0..2^16-1>) and does not verify: decrypt_error', async () => {
    const leaf = await clientLeaf('p256');
    const c = await started(await serverConfig());
    const cv = encodeHandshake(H.certificate_verify, (w) => w.u16(S.ecdsa_secp256r1_sha256).u16(0));
    assert.deepEqual(refusalAfter(c.conn, c.certificate([leaf.der]), c.keyExchange(), c.handshake(cv)), { alert: A.decrypt_error, fault: 'BadCertificateVerifySignature' });
  });

  void test('a truncated CertificateVerify: decode_error', async () => {
    const leaf = await clientLeaf('p256');
    const c = await started(await serverConfig());
    const cv = encodeHandshake(H.certificate_verify, (w) => w.u16(S.ecdsa_secp256r1_sha256).u16(70).bytes(new Uint8Array(10)));
    assert.equal(refusalAfter(c.conn, c.certificate([leaf.der]), c.keyExchange(), c.handshake(cv)).alert, A.decode_error);
  });
});

void describe('TLS 1.2 client authentication: messages out of place get unexpected_message', () => {
  void test('a CertificateVerify without a Certificate (after an empty one): unexpected_message', async () => {
    const leaf = await clientLeaf('p256');
    const c = await started(await serverConfig({ rejectUnauthorized: false }));
    const flight = [c.certificate([]), c.keyExchange(), c.certificateVerify(leaf.key, S.ecdsa_secp256r1_sha256)];
    assert.deepEqual(refusalAfter(c.conn, ...flight), { alert: A.unexpected_message, fault: 'UnexpectedHandshakeMessage' });
  });

  void test('a Certificate to a server that did not ask for one: unexpected_message', async () => {
    const leaf = await clientLeaf('p256');
    const c = await started(await serverConfig({ requestCert: false }));
    assert.deepEqual(refusalAfter(c.conn, c.certificate([leaf.der])), { alert: A.unexpected_message, fault: 'UnexpectedHandshakeMessage' });
  });

  void test('a CertificateVerify without a Certificate to a server that did not ask: unexpected_message', async () => {
    const leaf = await clientLeaf('p256');
    const c = await started(await serverConfig({ requestCert: false }));
    assert.deepEqual(refusalAfter(c.conn, c.keyExchange(), c.certificateVerify(leaf.key, S.ecdsa_secp256r1_sha256)), { alert: A.unexpected_message, fault: 'UnexpectedHandshakeMessage' });
  });

  void test('wrong order: ClientKeyExchange before the Certificate, CertificateVerify before ClientKeyExchange, two Certificates: unexpected_message', async () => {
    const leaf = await clientLeaf('p256');
    const orders: [string, (c: ScriptedClient12) => Uint8Array[]][] = [
      ['ClientKeyExchange first', (c) => [c.keyExchange()]],
      ['CertificateVerify before ClientKeyExchange', (c) => [c.certificate([leaf.der]), c.certificateVerify(leaf.key, S.ecdsa_secp256r1_sha256)]],
      ['two Certificates', (c) => [c.certificate([leaf.der]), c.certificate([leaf.der])]],
      ['Finished without the rest', () => [record(ContentType.handshake, encodeHandshake(H.finished, (w) => w.bytes(new Uint8Array(12))))]],
    ];
    for (const [name, flight] of orders) {
      const c = await started(await serverConfig());
      assert.deepEqual(refusalAfter(c.conn, ...flight(c)), { alert: A.unexpected_message, fault: 'UnexpectedHandshakeMessage' }, name);
    }
  });

  void test('a certificate and then ChangeCipherSpec without CertificateVerify: unexpected_message (the key is never proven)', async () => {
    const leaf = await clientLeaf('p256');
    const c = await started(await serverConfig());
    assert.deepEqual(refusalAfter(c.conn, c.certificate([leaf.der]), c.keyExchange(), CHANGE_CIPHER_SPEC), { alert: A.unexpected_message, fault: 'UnexpectedChangeCipherSpec' });
  });
});

void describe('TLS 1.2 client authentication: clientCredentialHooks.acceptLeaf, the same verdict as TLS 1.3', () => {
  void test('a hook that refuses the client: TLS 1.2 refuses it with the alert TLS 1.3 sends (bad_certificate), after the hook saw the leaf', async () => {
    const leaf = await clientLeaf('p256');
    const seen: Uint8Array[] = [];
    const offered: (readonly number[])[] = [];
    const config = await serverConfig({
      clientCredentialHooks: {
        offer: [S.ecdsa_secp256r1_sha256],
        acceptLeaf: (ctx) => {
          seen.push(ctx.leaf);
          offered.push(ctx.offeredDelegatedCredentialSchemes);
          throw new BadCertificate('policy: this client is revoked');
        },
      },
    });
    const c = await started(config);
    const err = errorOf((await feedAll(c.conn, ...authenticatedFlight(c, leaf, S.ecdsa_secp256r1_sha256))).events);
    assert.equal(err?.sentAlert, A.bad_certificate);
    assert.match(String(err?.error), /revoked/);
    assert.deepEqual(seen.map((d) => Buffer.from(d)), [Buffer.from(leaf.der)]);
    assert.deepEqual(offered, [[]], 'TLS 1.2 offers no delegated credential');
    // TLS 1.3, the same server and client certificate: the same alert.
    const pki = await testPki();
    const tls13 = await doHandshake(new ClientConnection(new ClientConfig({ servername: 'localhost', ca: [pki.ca.pem], certificates: [{ cert: leaf.pem, key: leaf.key }] })), new ServerConnection(config));
    assert.equal(tls13.server.error?.sentAlert, A.bad_certificate);
    assert.deepEqual(offered[1], [S.ecdsa_secp256r1_sha256]);
  });

  void test('a hook that accepts (returns undefined): connected and authorized, as without it', async () => {
    const leaf = await clientLeaf('p256');
    let calls = 0;
    const config = await serverConfig({ clientCredentialHooks: { acceptLeaf: () => void calls++ } });
    const c = await started(config);
    const info = completed((await feedAll(c.conn, ...authenticatedFlight(c, leaf, S.ecdsa_secp256r1_sha256))).events);
    assert.equal(info.peerAuthorized, true);
    assert.equal(calls, 1);
  });
});

void describe('TLS 1.2 client authentication and tickets', () => {
  /** A full handshake offering tickets; resolves with the ticket and master secret. */
  async function ticketOf(config: ServerConfig, flight: (c: ScriptedClient12) => Uint8Array[]): Promise<{ ticket: Uint8Array; master: Uint8Array; info: HandshakeInfo }> {
    const c = await started(config, hello({ sessionTicket: new Uint8Array(0) }));
    const { events, output } = await feedAll(c.conn, ...flight(c));
    const info = completed(events);
    const nst = handshakeMessages(output).find((m) => m[0] === H.new_session_ticket);
    assert.ok(nst, 'no NewSessionTicket');
    return { ticket: decodeNewSessionTicket12(nst.subarray(4)).ticket, master: c.masterSecret, info };
  }

  /** Offers `ticket`; resolves with the resumed handshake's info, or undefined when the server did a full handshake. */
  async function resume(config: ServerConfig, ticket: Uint8Array, master: Uint8Array): Promise<HandshakeInfo | undefined> {
    const c = new ScriptedClient12(new ServerConnection(config));
    const types = await c.hello(hello({ sessionTicket: ticket }, { legacySessionId: new Uint8Array(32).fill(9) }));
    if (types.includes(H.certificate)) return undefined;
    assert.deepEqual(types, [H.server_hello]);
    c.resumedWith(master);
    const info = completed((await feedAll(c.conn, CHANGE_CIPHER_SPEC, c.finished())).events);
    assert.equal(info.resumed, true);
    return info;
  }

  void test('an authenticated session resumes authenticated, with the client certificate', async () => {
    const leaf = await clientLeaf('p256');
    const config = await serverConfig();
    const { ticket, master } = await ticketOf(config, (c) => authenticatedFlight(c, leaf, S.ecdsa_secp256r1_sha256));
    const info = await resume(config, ticket, master);
    assert.ok(info, 'not resumed');
    assert.equal(info.peerAuthorized, true);
    assert.deepEqual(info.peerCertificates.map((d) => Buffer.from(d)), [Buffer.from(leaf.der)]);
  });

  void test('a client certificate too large for a ticket (a ~70 KB leaf): the promised NewSessionTicket comes with an empty ticket (RFC 5077 §3.3) and the client is connected, authenticated', async () => {
    const pki = await testPki();
    // About 1,400 names of 50 bytes: a valid leaf of ~70 KB, under the 256 KB Certificate limit, over a ticket's 0xffff.
    const names = Array.from({ length: 1400 }, (_, i) => `n${i}.${'a'.repeat(40)}.test`);
    const leaf = await pki.leaf('p256', names, 'client');
    assert.ok(leaf.der.length > 0xffff && leaf.der.length < MAX_CERTIFICATE_BODY, `leaf of ${leaf.der.length} bytes`);
    const c = await started(await serverConfig(), hello({ sessionTicket: new Uint8Array(0) }));
    const { events, output } = await feedAll(c.conn, ...authenticatedFlight(c, leaf, S.ecdsa_secp256r1_sha256));
    const info = completed(events);
    assert.equal(info.peerAuthorized, true);
    const nst = handshakeMessages(output).find((m) => m[0] === H.new_session_ticket);
    assert.ok(nst, 'no NewSessionTicket although ServerHello promised one');
    assert.equal(decodeNewSessionTicket12(nst.subarray(4)).ticket.length, 0);
  });

  void test('the ticket records the client authentication as TLS 1.3 tickets do: the config digest, the verified leaf, the earliest notAfter of its chain', async () => {
    const leaf = await clientLeaf('p256');
    const config = await serverConfig();
    const { ticket } = await ticketOf(config, (c) => authenticatedFlight(c, leaf, S.ecdsa_secp256r1_sha256));
    const state = config.ticketKey.open(ticket);
    assert.ok(state);
    assert.deepEqual(Buffer.from(state.clientAuthConfig), Buffer.from(config.clientAuth.digest));
    assert.deepEqual(Buffer.from(state.clientCertificate), Buffer.from(leaf.der));
    assert.equal(state.clientValidUntil, new X509Certificate(leaf.der).validToDate.getTime());
  });

  void test('an authenticated session is not resumed by a server that shares the ticket key but trusts other CAs: a full handshake verifies the client afresh', async () => {
    const pki = await testPki();
    const leaf = await clientLeaf('p256');
    const { ticket, master } = await ticketOf(await serverConfig(), (c) => authenticatedFlight(c, leaf, S.ecdsa_secp256r1_sha256));
    assert.equal(await resume(await serverConfig({ ca: [pki.otherCa.pem] }), ticket, master), undefined);
  });

  void test('a session without a certificate (rejectUnauthorized false) resumes unauthenticated there, and never where a certificate is required', async () => {
    const lenient = await serverConfig({ rejectUnauthorized: false });
    const { ticket, master } = await ticketOf(lenient, (c) => [c.certificate([]), c.keyExchange(), CHANGE_CIPHER_SPEC, c.finished()]);
    const again = await resume(lenient, ticket, master);
    assert.ok(again, 'not resumed');
    assert.equal(again.peerAuthorized, false);
    assert.deepEqual(again.peerCertificates, []);
    // The same ticket key, a server that requires certificates: a full handshake with a CertificateRequest.
    assert.equal(await resume(await serverConfig(), ticket, master), undefined);
  });

  void test('an untrusted certificate accepted with rejectUnauthorized false is not carried in the ticket: the resumed session is not authorized', async () => {
    const pki = await testPki();
    const leaf = await clientLeaf('p256');
    const lenient = await serverConfig({ rejectUnauthorized: false, ca: [pki.otherCa.pem] });
    const { ticket, master, info } = await ticketOf(lenient, (c) => authenticatedFlight(c, leaf, S.ecdsa_secp256r1_sha256));
    assert.equal(info.peerAuthorized, false);
    const again = await resume(lenient, ticket, master);
    assert.ok(again);
    assert.equal(again.peerAuthorized, false);
    assert.deepEqual(again.peerCertificates, []);
  });

  void test('an authenticated session is not resumed by a server that no longer asks for certificates (it would claim a verdict it never makes)', async () => {
    const leaf = await clientLeaf('p256');
    const { ticket, master } = await ticketOf(await serverConfig(), (c) => authenticatedFlight(c, leaf, S.ecdsa_secp256r1_sha256));
    assert.equal(await resume(await serverConfig({ requestCert: false }), ticket, master), undefined);
  });

  void test('a session without client authentication resumes on a server without requestCert as before', async () => {
    const plain = await serverConfig({ requestCert: false });
    const { ticket, master } = await ticketOf(plain, (c) => [c.keyExchange(), CHANGE_CIPHER_SPEC, c.finished()]);
    const again = await resume(plain, ticket, master);
    assert.ok(again);
    assert.equal(again.peerAuthorized, false);
  });
});

void test('after a client-authenticated TLS 1.2 handshake, renegotiation is still refused with a warning and data still flows', async () => {
  const leaf = await clientLeaf('p256');
  const c = await started(await serverConfig());
  completed((await feedAll(c.conn, ...authenticatedFlight(c, leaf, S.ecdsa_secp256r1_sha256))).events);
  const reneg = c.conn.feed(c.seal(ContentType.handshake, hello()));
  assert.equal(errorOf(reneg.events), undefined);
  assert.equal(reneg.output.length, 1, 'one record: the warning no_renegotiation');
  const data = c.conn.feed(c.seal(ContentType.application_data, Buffer.from('after')));
  assert.deepEqual(data.events.filter((e) => e.type === 'data').map((e) => Buffer.from((e as Extract<TlsEvent, { type: 'data' }>).data).toString()), ['after']);
});

void test('a refused client certificate ends the handshake without a ticket or Finished from the server', async () => {
  const pki = await testPki();
  const c = await started(await serverConfig({ ca: [pki.otherCa.pem] }), hello({ sessionTicket: new Uint8Array(0) }));
  const { events, output } = await feedAll(c.conn, c.certificate([(await clientLeaf('p256')).der]));
  assert.equal(refusalIn(events).alert, A.unknown_ca);
  assert.deepEqual(handshakeMessages(output), []);
});

void describe('our TLS 1.2 client asked for a certificate', () => {
  const client12 = async (extra: Partial<ConstructorParameters<typeof ClientConnection>[0]> = {}) =>
    new ClientConnection({ servername: 'localhost', ca: [(await testPki()).ca.pem], minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ...extra });

  void test('without certificates: an empty Certificate; a server that asks but does not require one lets it in, not authorized, data flows', async () => {
    const pair = await doHandshake(await client12(), new ServerConnection(await serverConfig({ rejectUnauthorized: false })));
    assertConnected(pair);
    const info = pair.server.ofType('handshake')[0]!.info;
    assert.equal(info.version, 'TLSv1.2');
    assert.equal(info.peerAuthorized, false);
    assert.deepEqual(info.peerCertificates, []);
    assert.equal(pair.client.ofType('handshake')[0]!.info.clientMode, undefined);
    assert.equal((await transfer(pair, 'client', Buffer.from('ping'))).toString(), 'ping');
  });

  void test('without certificates, a server that requires one refuses with handshake_failure, which the client reports', async () => {
    const pair = await doHandshake(await client12(), new ServerConnection(await serverConfig()));
    assert.equal(pair.server.error?.sentAlert, A.handshake_failure);
    assert.ok(pair.client.error?.error instanceof AlertReceived && pair.client.error.error.description === A.handshake_failure, String(pair.client.error?.error));
    assert.equal(pair.client.ofType('handshake').length, 0);
  });

  // Our server asks for ECDSA and RSA certificates with its TLS 1.3 list less Ed25519/ML-DSA, RSA-PSS before PKCS#1.
  const accepted: [KeyType, number][] = [
    ['p256', S.ecdsa_secp256r1_sha256],
    ['p384', S.ecdsa_secp384r1_sha384],
    ['rsa', S.rsa_pss_rsae_sha256],
  ];
  for (const [keyType, scheme] of accepted) {
    void test(`a ${keyType} certificate is presented with a CertificateVerify (0x${scheme.toString(16)}) that the server verifies: authorized, both sides say how`, async () => {
      const leaf = await clientLeaf(keyType);
      const pair = await doHandshake(await client12({ certificates: [{ cert: leaf.pem, key: leaf.key }] }), new ServerConnection(await serverConfig()));
      assertConnected(pair);
      const server = pair.server.ofType('handshake')[0]!.info;
      assert.equal(server.version, 'TLSv1.2');
      assert.equal(server.peerAuthorized, true);
      assert.deepEqual(server.peerCertificates.map((d) => Buffer.from(d)), [Buffer.from(leaf.der)]);
      assert.deepEqual(server.clientMode, { authentication: 'certificate', signatureScheme: scheme });
      assert.deepEqual(pair.client.ofType('handshake')[0]!.info.clientMode, { authentication: 'certificate', signatureScheme: scheme });
      assert.equal((await transfer(pair, 'client', Buffer.from('ping'))).toString(), 'ping');
    });
  }

  void test('a signer that answers later (a key server) signs the CertificateVerify: the handshake waits for it', async () => {
    const leaf = await clientLeaf('p256');
    const local = createKeySigner(leaf.key);
    let signed = 0;
    const remote: Signer = {
      schemes: local.schemes,
      sign: async (scheme, message) => {
        await new Promise((r) => setTimeout(r, 5));
        signed++;
        return local.sign(scheme, message);
      },
    };
    const pair = await doHandshake(await client12({ certificates: [{ cert: leaf.pem, key: remote }] }), new ServerConnection(await serverConfig()));
    assertConnected(pair);
    assert.equal(signed, 1);
    assert.equal(pair.server.ofType('handshake')[0]!.info.peerAuthorized, true);
  });

  void test('an Ed25519 certificate fits no scheme our server asks for in TLS 1.2: an empty Certificate, refused with handshake_failure; over TLS 1.3 it is presented', async () => {
    const leaf = await clientLeaf('ed25519');
    const certificates = [{ cert: leaf.pem, key: leaf.key }];
    const pair = await doHandshake(await client12({ certificates }), new ServerConnection(await serverConfig()));
    assert.equal(pair.server.error?.sentAlert, A.handshake_failure);
    assert.match(String(pair.server.error?.error), /no certificate/);
    const tls13 = await doHandshake(await client12({ certificates, maxVersion: 'TLSv1.3' }), new ServerConnection(await serverConfig()));
    assertConnected(tls13);
    assert.equal(tls13.server.ofType('handshake')[0]!.info.peerAuthorized, true);
  });

  void test('with two certificates, the first that fits: an Ed25519 one is passed over for the P-256 one', async () => {
    const ed = await clientLeaf('ed25519');
    const p256 = await clientLeaf('p256');
    const pair = await doHandshake(await client12({ certificates: [{ cert: ed.pem, key: ed.key }, { cert: p256.pem, key: p256.key }] }), new ServerConnection(await serverConfig()));
    assertConnected(pair);
    assert.deepEqual(pair.server.ofType('handshake')[0]!.info.peerCertificates.map((d) => Buffer.from(d)), [Buffer.from(p256.der)]);
  });

  void test('the selectClientCredential hook chooses, asked with the schemes that fit the request; a delegated credential it offers is replaced by the certificate', async () => {
    const leaf = await clientLeaf('p256');
    const asked: number[][] = [];
    const pair = await doHandshake(
      await client12({
        certificates: [{ cert: leaf.pem, key: leaf.key }],
        selectClientCredential: (request, fallback) => {
          asked.push([...(request.signatureAlgorithms ?? [])]);
          const chosen = fallback();
          return chosen && { ...chosen, label: 'delegated-credential' };
        },
      }),
      new ServerConnection(await serverConfig()),
    );
    assertConnected(pair);
    assert.equal(asked.length, 1);
    assert.ok(asked[0]!.includes(S.ecdsa_secp256r1_sha256) && !asked[0]!.includes(S.ed25519), asked[0]!.join(','));
    assert.deepEqual(pair.server.ofType('handshake')[0]!.info.clientMode, { authentication: 'certificate', signatureScheme: S.ecdsa_secp256r1_sha256 });
  });

  void test('the schemes that fit a request: its certificate_types decide which key types count (Ed25519 under ecdsa_sign, RFC 8422), never ML-DSA', () => {
    const all = [S.ecdsa_secp256r1_sha256, S.ed25519, S.rsa_pss_rsae_sha256, S.rsa_pkcs1_sha256, S.mldsa65];
    assert.deepEqual(requestedSchemes12({ certificateTypes: [1, 64], signatureAlgorithms: all, certificateAuthorities: [] }), [S.ecdsa_secp256r1_sha256, S.ed25519, S.rsa_pss_rsae_sha256, S.rsa_pkcs1_sha256]);
    assert.deepEqual(requestedSchemes12({ certificateTypes: [1], signatureAlgorithms: all, certificateAuthorities: [] }), [S.rsa_pss_rsae_sha256, S.rsa_pkcs1_sha256]);
    assert.deepEqual(requestedSchemes12({ certificateTypes: [64], signatureAlgorithms: all, certificateAuthorities: [] }), [S.ecdsa_secp256r1_sha256, S.ed25519]);
    assert.deepEqual(requestedSchemes12({ certificateTypes: [2], signatureAlgorithms: all, certificateAuthorities: [] }), []);
  });
});
