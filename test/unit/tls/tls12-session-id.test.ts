/**
 * TLS 1.2 session-ID resumption on our server (src/tls/tls12/session-cache.ts) for clients that
 * take no tickets: the ID in ServerHello, resumption with it under the checks a ticket gets
 * (suite, lifetime, name, the client authentication record), when it is off, and the cache's
 * bounds (count, bytes, lifetime, least recently used first). The client is scripted
 * (./tls12-script.ts): our own TLS 1.2 client does full handshakes only.
 */
import { describe, test } from 'node:test';
import { X509Certificate } from 'node:crypto';
import assert from 'node:assert/strict';
import { ServerConfig, ServerConnection, type ServerOptions } from '../../../src/tls/server.js';
import { AlertDescription } from '../../../src/tls/alerts.js';
import { ContentType, HandshakeType, SignatureScheme as S } from '../../../src/tls/constants.js';
import type { HandshakeInfo } from '../../../src/tls/connection.js';
import type { TicketState } from '../../../src/tls/session.js';
import { decodeServerHello12 } from '../../../src/tls/tls12/messages.js';
import { SessionCache } from '../../../src/tls/tls12/session-cache.js';
import { CHANGE_CIPHER_SPEC, completed, feedAll, hello12, ScriptedClient12 } from './tls12-script.js';
import { testPki, type Issued } from './pki.js';

const H = HandshakeType;

async function serverConfig(extra: Partial<ServerOptions> = {}): Promise<ServerConfig> {
  const pki = await testPki();
  const leaf = await pki.leaf('p256');
  return new ServerConfig({ certificates: [{ cert: leaf.pem, key: leaf.key }], ...extra });
}

function hello(extra: Parameters<typeof hello12>[0] = {}, over: Parameters<typeof hello12>[1] = {}): Uint8Array {
  return hello12({ signatureAlgorithms: [S.ecdsa_secp256r1_sha256], serverName: 'localhost', ...extra }, over);
}

/** A full handshake (with a client certificate when `client` is given); the session ID our ServerHello gave and the master secret. */
async function fullHandshake(config: ServerConfig, clientHello = hello(), client?: Issued): Promise<{ sessionId: Uint8Array; master: Uint8Array; info: HandshakeInfo }> {
  const c = new ScriptedClient12(new ServerConnection(config));
  await c.hello(clientHello);
  const sessionId = decodeServerHello12(c.serverMessage(H.server_hello)!).sessionId;
  const flight = client
    ? [c.certificate([client.der]), c.keyExchange(), c.certificateVerify(client.key, S.ecdsa_secp256r1_sha256), CHANGE_CIPHER_SPEC, c.finished()]
    : [...(c.serverMessage(H.certificate_request) ? [c.certificate([])] : []), c.keyExchange(), CHANGE_CIPHER_SPEC, c.finished()];
  const info = completed((await feedAll(c.conn, ...flight)).events);
  return { sessionId: Uint8Array.from(sessionId), master: c.masterSecret, info };
}

/** Offers session `id`; the resumed handshake's info, or undefined when the server did a full handshake. */
async function resume(config: ServerConfig, id: Uint8Array, master: Uint8Array, clientHello = hello({}, { legacySessionId: id })): Promise<HandshakeInfo | undefined> {
  const c = new ScriptedClient12(new ServerConnection(config));
  const types = await c.hello(clientHello);
  if (types.includes(H.certificate)) return undefined;
  assert.deepEqual(types, [H.server_hello]);
  assert.deepEqual(Buffer.from(decodeServerHello12(c.serverMessage(H.server_hello)!).sessionId), Buffer.from(id), 'the ID is echoed');
  c.resumedWith(master);
  const info = completed((await feedAll(c.conn, CHANGE_CIPHER_SPEC, c.finished())).events);
  assert.equal(info.resumed, true);
  return info;
}

void describe('TLS 1.2 session IDs for clients without tickets', () => {
  void test('a full handshake without session_ticket gets a 32-byte session ID, and a hello with it resumes (ServerHello, ChangeCipherSpec, Finished), more than once', async () => {
    const config = await serverConfig();
    const { sessionId, master, info } = await fullHandshake(config);
    assert.equal(info.resumed, false);
    assert.equal(sessionId.length, 32);
    for (let i = 0; i < 2; i++) {
      const again = await resume(config, sessionId, master);
      assert.ok(again, `resumption ${i + 1}`);
      assert.equal(again.serverMode.authentication, 'psk');
    }
  });

  void test('an ID the server never gave, or one of another server, gets a full handshake', async () => {
    const config = await serverConfig();
    const { sessionId, master } = await fullHandshake(config);
    assert.equal(await resume(config, new Uint8Array(32).fill(7), master), undefined);
    assert.equal(await resume(await serverConfig(), sessionId, master), undefined);
  });

  void test('a client that takes tickets gets a ticket and no session ID, as before', async () => {
    const config = await serverConfig();
    const c = new ScriptedClient12(new ServerConnection(config));
    await c.hello(hello({ sessionTicket: new Uint8Array(0) }));
    const sh = decodeServerHello12(c.serverMessage(H.server_hello)!);
    assert.equal(sh.sessionId.length, 0);
    assert.equal(sh.sessionTicket, true);
  });

  void test('the checks of a ticket: another server name, a suite no longer offered, or a session past its lifetime does not resume', async () => {
    let now = Date.now();
    const config = await serverConfig({ ticketLifetimeSeconds: 60, now: () => new Date(now) });
    const { sessionId, master } = await fullHandshake(config);
    assert.equal(await resume(config, sessionId, master, hello({ serverName: 'other.test' }, { legacySessionId: sessionId })), undefined);
    assert.equal(await resume(config, sessionId, master, hello({}, { legacySessionId: sessionId, cipherSuites: [0xc02c] })), undefined);
    assert.ok(await resume(config, sessionId, master), 'still resumes with the same name and suite');
    now += 61_000;
    assert.equal(await resume(config, sessionId, master), undefined);
  });

  void test('client authentication is recorded and checked as in a ticket: an authenticated session resumes with its certificate; one without a certificate (rejectUnauthorized false) resumes unauthenticated', async () => {
    const pki = await testPki();
    const client = await pki.leaf('p256', ['client.test'], 'client');
    const strict = await serverConfig({ requestCert: true, ca: [pki.ca.pem] });
    const authenticated = await fullHandshake(strict, hello(), client);
    assert.equal(authenticated.info.peerAuthorized, true);
    const again = await resume(strict, authenticated.sessionId, authenticated.master);
    assert.ok(again, 'not resumed');
    assert.equal(again.peerAuthorized, true);
    assert.deepEqual(again.peerCertificates.map((d) => Buffer.from(d)), [Buffer.from(client.der)]);

    const lenient = await serverConfig({ requestCert: true, rejectUnauthorized: false, ca: [pki.ca.pem] });
    const anonymous = await fullHandshake(lenient);
    assert.equal(anonymous.info.peerAuthorized, false);
    const resumed = await resume(lenient, anonymous.sessionId, anonymous.master);
    assert.ok(resumed, 'not resumed');
    assert.equal(resumed.peerAuthorized, false);
    assert.deepEqual(resumed.peerCertificates, []);
  });

  void test('an authenticated session is not resumed after the verification it records ran out (the certificate expired), within the session lifetime: a full handshake', async () => {
    const pki = await testPki();
    const client = await pki.leaf('p256', ['client.test'], 'client');
    const validUntil = new X509Certificate(client.der).validToDate.getTime();
    // The handshake an hour before the client certificate's notAfter, with a week-long session lifetime.
    let now = validUntil - 3600_000;
    const config = await serverConfig({ requestCert: true, ca: [pki.ca.pem], ticketLifetimeSeconds: 604800, now: () => new Date(now) });
    const { sessionId, master, info } = await fullHandshake(config, hello(), client);
    assert.equal(info.peerAuthorized, true);
    assert.ok(await resume(config, sessionId, master), 'resumes while the certificate is valid');
    now = validUntil + 1000;
    assert.equal(await resume(config, sessionId, master), undefined);
  });

  void test('off where resumption is off (sessionTickets 0) and with custom clientCredentialHooks but no sessionIdContext; on again with a sessionIdContext', async () => {
    const hooks = { acceptLeaf: () => undefined };
    for (const [extra, on] of [
      [{ sessionTickets: 0 }, false],
      [{ requestCert: true, rejectUnauthorized: false, clientCredentialHooks: hooks }, false],
      [{ requestCert: true, rejectUnauthorized: false, clientCredentialHooks: hooks, sessionIdContext: 'ctx' }, true],
    ] as const) {
      const config = await serverConfig(extra);
      const { sessionId, master } = await fullHandshake(config);
      assert.equal(sessionId.length, on ? 32 : 0, JSON.stringify(extra));
      if (on) assert.ok(await resume(config, sessionId, master));
    }
  });
});

void describe('a failed connection is not resumed (RFC 5246 §7.2.2)', () => {
  void test('a resumption whose Finished does not verify takes the session out of the cache', async () => {
    const config = await serverConfig();
    const { sessionId, master } = await fullHandshake(config);
    const c = new ScriptedClient12(new ServerConnection(config));
    assert.deepEqual(await c.hello(hello({}, { legacySessionId: sessionId })), [H.server_hello], 'resumed');
    c.resumedWith(master);
    const finished = Uint8Array.from(c.finished());
    finished[finished.length - 1]! ^= 1;
    const failed = (await feedAll(c.conn, CHANGE_CIPHER_SPEC, finished)).events.find((e) => e.type === 'error');
    assert.ok(failed, 'the server refused the Finished');
    assert.equal(await resume(config, sessionId, master), undefined, 'a full handshake, not a resumption');
  });

  /** A full handshake that put its session in the cache, then `alert` from the client on the same connection; whether the session still resumes. */
  async function resumableAfter(level: number, alert: number): Promise<boolean> {
    const config = await serverConfig();
    const c = new ScriptedClient12(new ServerConnection(config));
    await c.hello(hello());
    const sessionId = Uint8Array.from(decodeServerHello12(c.serverMessage(H.server_hello)!).sessionId);
    completed((await feedAll(c.conn, c.keyExchange(), CHANGE_CIPHER_SPEC, c.finished())).events);
    const after = await feedAll(c.conn, c.seal(ContentType.alert, Uint8Array.of(level, alert)));
    assert.equal(after.events.some((e) => e.type === 'error'), alert !== AlertDescription.close_notify, 'only a fatal alert is an error');
    return (await resume(config, sessionId, c.masterSecret)) !== undefined;
  }

  void test('a connection that put its session in the cache and then got a fatal alert from the client takes it out again', async () => {
    assert.equal(await resumableAfter(2, AlertDescription.internal_error), false, 'a full handshake, not a resumption');
  });

  void test('a connection that ends with close_notify leaves its session resumable', async () => {
    assert.equal(await resumableAfter(1, AlertDescription.close_notify), true);
  });
});

void describe('the session cache', () => {
  const state = (extra: Partial<TicketState> = {}): TicketState => ({
    cipherSuite: 0xc02b,
    psk: new Uint8Array(48).fill(1),
    issuedAt: 1_000_000,
    ageAdd: 0,
    lifetimeSeconds: 100,
    servername: 'localhost',
    alpnProtocol: '',
    clientAuthConfig: new Uint8Array(32),
    clientCertificate: new Uint8Array(0),
    clientValidUntil: 0,
    ...extra,
  });
  const id = (n: number): Uint8Array => new Uint8Array(32).fill(n);

  void test('keeps at most maxEntries, the least recently used leaving first', () => {
    const cache = new SessionCache({ maxEntries: 2, maxBytes: 1 << 20 });
    cache.put(id(1), state());
    cache.put(id(2), state());
    assert.ok(cache.get(id(1), 1_000_000), 'used: now the most recent');
    cache.put(id(3), state());
    assert.equal(cache.size, 2);
    assert.equal(cache.get(id(2), 1_000_000), undefined, 'the least recently used left');
    assert.ok(cache.get(id(1), 1_000_000));
    assert.ok(cache.get(id(3), 1_000_000));
  });

  void test('keeps at most maxBytes, client certificates counted; a session a ticket could not carry is not kept', () => {
    const cache = new SessionCache({ maxEntries: 100, maxBytes: 30_000 });
    for (let i = 1; i <= 3; i++) assert.equal(cache.put(id(i), state({ clientCertificate: new Uint8Array(12_000) })), true);
    assert.equal(cache.size, 2);
    assert.equal(cache.get(id(1), 1_000_000), undefined);
    assert.equal(cache.put(id(9), state({ clientCertificate: new Uint8Array(0x10000) })), false);
    assert.equal(cache.get(id(9), 1_000_000), undefined);
  });

  void test('a session past its lifetime is not returned and is dropped; a wrong-length ID is nothing', () => {
    const cache = new SessionCache({ maxEntries: 10, maxBytes: 1 << 20 });
    cache.put(id(1), state());
    assert.ok(cache.get(id(1), 1_000_000 + 100_000));
    assert.equal(cache.get(id(1), 1_000_000 + 100_001), undefined);
    assert.equal(cache.size, 0);
    assert.equal(cache.put(new Uint8Array(16), state()), false);
    assert.equal(cache.get(new Uint8Array(16), 1_000_000), undefined);
  });

  void test('keeps its own copy of the master secret and hands out copies', () => {
    const cache = new SessionCache({ maxEntries: 10, maxBytes: 1 << 20 });
    const s = state();
    cache.put(id(1), s);
    s.psk.fill(0);
    const got = cache.get(id(1), 1_000_000)!;
    assert.deepEqual([...got.psk], new Array(48).fill(1));
    got.psk.fill(0);
    assert.deepEqual([...cache.get(id(1), 1_000_000)!.psk], new Array(48).fill(1));
  });
  void test('a client certificate is kept as its own bytes, not as a view pinning what the connection received', () => {
    const cache = new SessionCache({ maxEntries: 10, maxBytes: 1 << 20 });
    // As the connection holds it: a view into a 256 KiB Certificate message.
    const received = new Uint8Array(256 * 1024).fill(7);
    const leaf = received.subarray(1000, 1600);
    cache.put(id(1), state({ clientCertificate: leaf }));
    received.fill(0);
    const got = cache.get(id(1), 1_000_000)!;
    assert.equal(got.clientCertificate.length, 600);
    assert.equal(got.clientCertificate.buffer.byteLength, 600, 'the cached certificate owns exactly its bytes');
    assert.deepEqual([...got.clientCertificate.subarray(0, 4)], [7, 7, 7, 7], 'unchanged by what happens to the received buffer');
    got.clientCertificate.fill(9);
    assert.deepEqual([...cache.get(id(1), 1_000_000)!.clientCertificate.subarray(0, 4)], [7, 7, 7, 7], 'a resumed connection cannot change what later ones see');
  });

  void test('expired sessions at the least recently used end are dropped as other handshakes come, not only when their ID returns', () => {
    const cache = new SessionCache({ maxEntries: 100, maxBytes: 1 << 20 });
    const old = [state(), state()];
    cache.put(id(1), old[0]!);
    cache.put(id(2), old[1]!);
    // Another client's full handshake after both expired.
    cache.put(id(3), state({ issuedAt: 1_000_000 + 100_001 }));
    assert.equal(cache.size, 1);
    assert.ok(cache.get(id(3), 1_000_000 + 100_002));
  });
});
