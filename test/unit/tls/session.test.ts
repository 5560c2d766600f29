import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { Writer } from '../../../src/tls/codec.js';
import { ClientAuthPolicy, TicketKey, type TicketState } from '../../../src/tls/session.js';
import { createTrustStore } from '../../../src/tls/x509/trust-store.js';
import { testPki } from './pki.js';
import { ClientConfig, ClientConnection } from '../../../src/tls/client.js';
import { ServerConfig, ServerConnection } from '../../../src/tls/server.js';
import { assertConnected, doHandshake } from './pair.js';

const state: TicketState = {
  cipherSuite: 0x1302,
  psk: randomBytes(48),
  issuedAt: 1_764_000_000_123,
  ageAdd: 0xfedcba98,
  lifetimeSeconds: 7200,
  servername: 'api.example.test',
  alpnProtocol: 'h2',
  clientAuthConfig: randomBytes(32),
  clientCertificate: randomBytes(700),
  // Past 2^32 ms: both halves of the u64 are used.
  clientValidUntil: 1_764_600_000_456,
};

void test('a sealed ticket opens to the same state under the same key', () => {
  const key = new TicketKey();
  const opened = key.open(key.seal(state));
  assert.ok(opened);
  const bytes = (t: TicketState) => ({ ...t, psk: Buffer.from(t.psk), clientAuthConfig: Buffer.from(t.clientAuthConfig), clientCertificate: Buffer.from(t.clientCertificate) });
  assert.deepEqual(bytes(opened), bytes(state));
});

/** The plaintext of a ticket sealed under `raw`, decrypted by node:crypto. */
function decrypt(raw: Uint8Array, ticket: Buffer): Buffer {
  const d = createDecipheriv('aes-256-gcm', raw, ticket.subarray(1, 13));
  d.setAuthTag(ticket.subarray(ticket.length - 16));
  return Buffer.concat([d.update(ticket.subarray(13, ticket.length - 16)), d.final()]);
}

/** `plain` sealed under `raw` as a ticket of `version` (the first byte; the plaintext's own is left as given). */
function sealRaw(raw: Uint8Array, version: number, plain: Uint8Array): Buffer {
  const nonce = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', raw, nonce);
  return Buffer.concat([Buffer.of(version), nonce, c.update(plain), c.final(), c.getAuthTag()]);
}

/** Version 4's fixed header: 34 bytes, the PSK right after it. */
const HEADER = 34;

void test('a ticket is version || nonce || AES-256-GCM(version 4 fixed header || fields) || tag, whichever AEAD sealed it (native or node:crypto)', () => {
  // Sealed through the native AEAD when it loaded (DC_TLS_AEAD=node: node:crypto), opened here by node:crypto.
  const raw = new Uint8Array(32).fill(7);
  const ticket = Buffer.from(new TicketKey(raw).seal(state));
  const plain = decrypt(raw, ticket);
  assert.equal(ticket[0], 4);
  assert.equal(plain[0], 4);
  assert.equal(plain.readUInt16BE(1), state.cipherSuite);
  assert.equal(plain.readUInt32BE(3) * 2 ** 32 + plain.readUInt32BE(7), state.issuedAt);
  assert.equal(plain.readUInt32BE(11), state.ageAdd);
  assert.equal(plain.readUInt32BE(15), state.lifetimeSeconds);
  assert.equal(plain.readUInt32BE(19) * 2 ** 32 + plain.readUInt32BE(23), state.clientValidUntil);
  assert.deepEqual([plain[27], plain[28], plain[29], plain[30], plain.readUIntBE(31, 3)], [48, state.servername.length, 2, 32, 700]);
  assert.ok(plain.subarray(HEADER, HEADER + 48).equals(state.psk));
  assert.equal(plain.toString('latin1', HEADER + 48, HEADER + 48 + state.servername.length), state.servername);
  assert.equal(plain.length, HEADER + 48 + state.servername.length + 2 + 32 + 700);
  assert.equal(ticket.length, 1 + 12 + plain.length + 16);
});

void test('round trip at the edges: empty fields, a TLS 1.2 master secret, 255-byte names, times near 2^53, the largest u32s', () => {
  const key = new TicketKey();
  const bytes = (t: TicketState) => ({ ...t, psk: Buffer.from(t.psk), clientAuthConfig: Buffer.from(t.clientAuthConfig), clientCertificate: Buffer.from(t.clientCertificate) });
  const edges: TicketState[] = [
    { ...state, psk: randomBytes(32), servername: '', alpnProtocol: '', clientAuthConfig: new Uint8Array(0), clientCertificate: new Uint8Array(0), issuedAt: 0, clientValidUntil: 0, ageAdd: 0, lifetimeSeconds: 0 },
    { ...state, servername: 'a'.repeat(255), alpnProtocol: 'x'.repeat(255), ageAdd: 0xffffffff, lifetimeSeconds: 0xffffffff, issuedAt: Number.MAX_SAFE_INTEGER, clientValidUntil: Number.MAX_SAFE_INTEGER - 1 },
    { ...state, servername: 'caf\u00e9.test', cipherSuite: 0xc02f },
  ];
  for (const edge of edges) assert.deepEqual(bytes(key.open(key.seal(edge))!), bytes(edge));
  assert.throws(() => key.seal({ ...state, servername: 'a'.repeat(256) }), /server name of 256 bytes/);
  assert.throws(() => key.seal({ ...state, issuedAt: -1 }), /out of range/);
});

void test('an authentic ticket whose lengths do not add up (forged with the key, or of a bug) is refused without an exception', () => {
  const raw = new Uint8Array(32).fill(5);
  const key = new TicketKey(raw);
  const plain = decrypt(raw, Buffer.from(key.seal(state)));
  // Each length field one more and one less than the bytes that follow, and the plaintext cut or extended.
  for (const [at, size] of [[27, 1], [28, 1], [29, 1], [30, 1], [31, 3]] as const) {
    for (const delta of [1, -1]) {
      const p = Buffer.from(plain);
      p.writeUIntBE(p.readUIntBE(at, size) + delta, at, size);
      assert.equal(key.open(sealRaw(raw, 4, p)), undefined, `length at ${at} ${delta > 0 ? '+' : ''}${delta}`);
    }
  }
  for (const n of [0, 1, HEADER - 1, HEADER, HEADER + 47, plain.length - 1]) assert.equal(key.open(sealRaw(raw, 4, plain.subarray(0, n))), undefined, `plaintext cut at ${n}`);
  assert.equal(key.open(sealRaw(raw, 4, Buffer.concat([plain, Buffer.of(0)]))), undefined, 'a byte too many');
  const wrongInner = Buffer.from(plain);
  wrongInner[0] = 3;
  assert.equal(key.open(sealRaw(raw, 4, wrongInner)), undefined, 'the plaintext of another version');
  assert.ok(key.open(sealRaw(raw, 4, plain)), 'the same plaintext, unaltered, opens');
});

void test('hostile bytes of every length up to 300 never throw and never open', () => {
  const key = new TicketKey();
  for (let n = 0; n <= 300; n++) {
    const junk = randomBytes(n);
    if (n > 0) junk[0] = 4;
    assert.equal(key.open(junk), undefined, `${n} bytes`);
  }
});

void test('a ticket with a client certificate larger than one record (60 KB) seals and opens (the native AEAD takes at most 32 KiB: node:crypto then)', () => {
  const key = new TicketKey();
  const big = { ...state, clientCertificate: randomBytes(60_000) };
  const opened = key.open(key.seal(big));
  assert.ok(opened);
  assert.ok(Buffer.from(opened.clientCertificate).equals(big.clientCertificate));
});

void test('one TicketKey seals ticket after ticket on one cipher context: each under its own nonce, each node:crypto-decryptable, each opening', () => {
  const raw = new Uint8Array(32).fill(9);
  const key = new TicketKey(raw);
  const tickets = Array.from({ length: 4 }, (_, i) => Buffer.from(key.seal({ ...state, ageAdd: i })));
  assert.equal(new Set(tickets.map((t) => t.subarray(1, 13).toString('hex'))).size, tickets.length, 'a fresh nonce per ticket');
  // Opened out of order on the key's one opening context, and by node:crypto with the ticket's nonce.
  for (const i of [2, 0, 3, 1]) {
    const t = tickets[i]!;
    assert.equal(key.open(t)?.ageAdd, i);
    const d = createDecipheriv('aes-256-gcm', raw, t.subarray(1, 13));
    d.setAuthTag(t.subarray(t.length - 16));
    const plain = Buffer.concat([d.update(t.subarray(13, t.length - 16)), d.final()]);
    assert.ok(plain.subarray(HEADER, HEADER + 48).equals(state.psk));
  }
  // A ticket that fails to open leaves the context usable for the next one.
  const bad = Buffer.from(tickets[0]!);
  bad[bad.length - 1]! ^= 1;
  assert.equal(key.open(bad), undefined);
  assert.equal(key.open(tickets[0]!)?.ageAdd, 0);
});

void test('two tickets of the same state differ (fresh nonce each)', () => {
  const key = new TicketKey();
  assert.notDeepEqual(Buffer.from(key.seal(state)), Buffer.from(key.seal(state)));
});

void test('a ticket with any single byte changed, truncated, or from another key does not open', () => {
  const key = new TicketKey(new Uint8Array(32).fill(1));
  const ticket = Buffer.from(key.seal({ ...state, clientCertificate: new Uint8Array(0), servername: '', alpnProtocol: '' }));
  for (let i = 0; i < ticket.length; i++) {
    const t = Buffer.from(ticket);
    t[i] = t[i]! ^ 0x01;
    assert.equal(key.open(t), undefined, `byte ${i}`);
  }
  for (let n = 0; n < ticket.length; n++) assert.equal(key.open(ticket.subarray(0, n)), undefined, `prefix ${n}`);
  assert.equal(new TicketKey(new Uint8Array(32).fill(2)).open(ticket), undefined);
  assert.ok(key.open(ticket));
});

void test('sealing a ticket leaves its secret nowhere in the codec pool or node\'s Buffer pool that later buffers are cut from', () => {
  // The plaintext is written into the ticket (a Buffer from node's pool) and sealed in place.
  // With and without a client certificate (a ticket larger than node's pool takes: its own memory).
  for (const clientCertificate of [new Uint8Array(0), randomBytes(700), randomBytes(5000)]) {
    const psk = Buffer.alloc(48, 0xab);
    const ticket = new TicketKey().seal({ ...state, psk, clientCertificate });
    const next = new Writer(16).u16(0x0303).finish();
    assert.equal(Buffer.from(next.buffer).indexOf(psk), -1, `the PSK is still in the codec pool (certificate of ${clientCertificate.length} bytes)`);
    assert.equal(Buffer.from(ticket.buffer).indexOf(psk), -1, `the PSK is in the ticket's memory (certificate of ${clientCertificate.length} bytes)`);
    assert.equal(Buffer.from(Buffer.allocUnsafe(16).buffer).indexOf(psk), -1, `the PSK is still in node's pool (certificate of ${clientCertificate.length} bytes)`);
  }
});

void test('tickets of older versions (2, and 3: the same fields as TLS vectors) do not open, however authentic', () => {
  const raw = new Uint8Array(32).fill(9);
  for (const version of [2, 3]) {
    const v3 = encodeVersion3(state);
    v3[0] = version;
    assert.equal(new TicketKey(raw).open(sealRaw(raw, version, v3)), undefined, `version ${version}`);
  }
});

void describe('ClientAuthPolicy: a ticket stands for the client authentication of the handshake that issued it', async () => {
  const pki = await testPki();
  const caOnly = createTrustStore([pki.ca.pem]);
  const both = createTrustStore([pki.ca.pem, pki.otherCa.pem]);
  const bothReversed = createTrustStore([pki.otherCa.pem, pki.ca.pem]);
  const required = new ClientAuthPolicy({ requestCert: true }, caOnly);
  const now = 1_800_000_000_000;
  const verified = { authorized: true, chain: [randomBytes(300)], validUntil: now + 60_000 };

  void test('the digest is a function of the configuration only: equal for equal options, anchors in any order', () => {
    assert.deepEqual(new ClientAuthPolicy({ requestCert: true }, caOnly).digest, required.digest);
    assert.deepEqual(new ClientAuthPolicy({ requestCert: true, rejectUnauthorized: true }, createTrustStore([pki.ca.der])).digest, required.digest);
    assert.deepEqual(new ClientAuthPolicy({ requestCert: true }, both).digest, new ClientAuthPolicy({ requestCert: true }, bothReversed).digest);
    // Without requestCert nothing else is used.
    assert.deepEqual(new ClientAuthPolicy({}, undefined).digest, new ClientAuthPolicy({ rejectUnauthorized: false }, both).digest);
  });

  void test('every part of the configuration changes the digest', () => {
    const digests = [
      required.digest,
      new ClientAuthPolicy({}, caOnly).digest,
      new ClientAuthPolicy({ requestCert: true, rejectUnauthorized: false }, caOnly).digest,
      new ClientAuthPolicy({ requestCert: true }, both).digest,
      new ClientAuthPolicy({ requestCert: true }, createTrustStore([pki.otherCa.pem])).digest,
      new ClientAuthPolicy({ requestCert: true }, undefined).digest,
      new ClientAuthPolicy({ requestCert: true, delegatedCredentialOffer: [0x0807] }, caOnly).digest,
    ].map((d) => Buffer.from(d).toString('hex'));
    assert.equal(new Set(digests).size, digests.length);
  });

  void test('a verified client resumes under the same configuration until its verification expires', () => {
    const ticket = required.identity(verified);
    assert.ok(Buffer.from(ticket.clientCertificate).equals(verified.chain[0]!));
    assert.equal(ticket.clientValidUntil, verified.validUntil);
    assert.equal(required.accepts(ticket, now), true);
    assert.equal(required.accepts(ticket, verified.validUntil), true);
    assert.equal(required.accepts(ticket, verified.validUntil + 1), false, 'expired since');
  });

  void test('a ticket from another client authentication configuration is not accepted', () => {
    const ticket = required.identity(verified);
    assert.equal(new ClientAuthPolicy({ requestCert: true }, both).accepts(ticket, now), false, 'another CA set');
    assert.equal(new ClientAuthPolicy({ requestCert: true, rejectUnauthorized: false }, caOnly).accepts(ticket, now), false);
    assert.equal(new ClientAuthPolicy({}, caOnly).accepts(ticket, now), false, 'a server without client authentication');
  });

  void test('a ticket without a verified certificate resumes only where none is required', () => {
    const optional = new ClientAuthPolicy({ requestCert: true, rejectUnauthorized: false }, caOnly);
    const unverified = optional.identity({ authorized: false, chain: [randomBytes(300)], validUntil: 0 });
    assert.equal(unverified.clientCertificate.length, 0, 'an unverified certificate is not carried');
    assert.equal(optional.accepts(unverified, now), true);
    assert.equal(optional.accepts(optional.identity(undefined), now), true);
    // Same digest, no certificate, yet one is required (a forged or mixed-up state): refused.
    assert.equal(required.accepts({ ...required.identity(undefined) }, now), false);
    const open = new ClientAuthPolicy({}, undefined);
    assert.equal(open.accepts(open.identity(undefined), now), true);
  });
});

void test('a ticket sealed by node:crypto opens (whichever AEAD opens it), and its plaintext is wiped after reading', () => {
  const raw = new Uint8Array(32).fill(11);
  const key = new TicketKey(raw);
  // A PSK of this test alone (earlier tests left copies of `state.psk` in the pool).
  const psk = randomBytes(48);
  const ticket = Buffer.from(key.seal({ ...state, psk }));
  const d = createDecipheriv('aes-256-gcm', raw, ticket.subarray(1, 13));
  d.setAuthTag(ticket.subarray(ticket.length - 16));
  const plain = Buffer.concat([d.update(ticket.subarray(13, ticket.length - 16)), d.final()]);
  const nonce = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', raw, nonce);
  const resealed = Buffer.concat([Buffer.of(4), nonce, c.update(plain), c.final(), c.getAuthTag()]);
  plain.fill(0); // this test's own copy, from node's pool too
  const opened = key.open(resealed);
  assert.ok(opened);
  assert.equal(Buffer.compare(opened.psk, psk), 0);
  // The opened plaintext came from node's pool: the next small Buffer from it must not carry the PSK.
  const next = Buffer.allocUnsafe(16);
  assert.equal(Buffer.from(next.buffer).indexOf(psk), -1, 'the PSK is still in node\'s buffer pool');
});

void test('opening a ticket through node:crypto leaves no copy of its plaintext behind (the Decipheriv output is zeroed too)', async () => {
  const { createRequire, syncBuiltinESMExports } = await import('node:module');
  const crypto = createRequire(import.meta.url)('node:crypto') as { createDecipheriv: typeof createDecipheriv };
  const outputs: Buffer[] = [];
  const original = crypto.createDecipheriv;
  // A ticket over the native AEAD's input limit always opens through node:crypto, native addon or not.
  const big: TicketState = { ...state, clientCertificate: randomBytes(40_000) };
  const key = new TicketKey();
  const ticket = key.seal(big);
  crypto.createDecipheriv = ((...args: Parameters<typeof original>) => {
    const d = original(...args);
    const update = d.update.bind(d) as (data: Uint8Array) => Buffer;
    (d as { update: unknown }).update = (data: Uint8Array) => {
      const out = update(data);
      outputs.push(out);
      return out;
    };
    return d;
  }) as typeof original;
  syncBuiltinESMExports();
  try {
    assert.ok(key.open(ticket));
  } finally {
    crypto.createDecipheriv = original;
    syncBuiltinESMExports();
  }
  assert.equal(outputs.length, 1, 'the big ticket went through node:crypto');
  assert.ok(!outputs[0]!.includes(Buffer.from(big.psk)), 'the PSK is still in the Decipheriv output');
});

/** A version 3 ticket plaintext (the layout before version 4), for the tests of old tickets. */
function encodeVersion3(s: TicketState): Buffer {
  const w = new Writer(512).u8(3).u16(s.cipherSuite).opaque8(s.psk);
  w.u32(Math.floor(s.issuedAt / 2 ** 32)).u32(s.issuedAt % 2 ** 32).u32(s.ageAdd).u32(s.lifetimeSeconds);
  w.opaque8(Buffer.from(s.servername, 'latin1')).opaque8(Buffer.from(s.alpnProtocol, 'latin1'));
  w.opaque8(s.clientAuthConfig).opaque24(s.clientCertificate);
  w.u32(Math.floor(s.clientValidUntil / 2 ** 32)).u32(s.clientValidUntil % 2 ** 32);
  return Buffer.from(w.finish());
}

void test('a client offering a version 3 ticket (issued before an upgrade) gets a full handshake, not an error', async () => {
  const pki = await testPki();
  const leaf = await pki.leaf('p256');
  const raw = new Uint8Array(32).fill(0x33);
  const server = new ServerConfig({ certificates: [{ cert: leaf.pem, key: leaf.key }], ticketKey: raw });
  const client = new ClientConfig({ servername: 'localhost', ca: [pki.ca.pem] });
  const first = await doHandshake(new ClientConnection(client), new ServerConnection(server));
  assertConnected(first);
  const session = first.client.ofType('session')[0]!.session;
  // The same session state, as the previous release sealed it: authentic under the key, version 3.
  const opened = server.ticketKey.open(session.ticket)!;
  const oldTicket = sealRaw(raw, 3, encodeVersion3(opened));
  const resumedNew = await doHandshake(new ClientConnection(client, { session }), new ServerConnection(server));
  assertConnected(resumedNew);
  assert.equal(resumedNew.server.ofType('handshake')[0]!.info.resumed, true, 'the version 4 ticket resumes');
  const pair = await doHandshake(new ClientConnection(client, { session: { ...session, ticket: oldTicket } }), new ServerConnection(server));
  assertConnected(pair);
  assert.equal(pair.server.ofType('handshake')[0]!.info.resumed, false, 'a full handshake');
  assert.equal(pair.client.ofType('session').length, 1, 'and a new (version 4) ticket');
});
