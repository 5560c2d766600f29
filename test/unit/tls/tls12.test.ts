/**
 * TLS 1.2 (src/tls/tls12): our client and server in memory. Suites of both AEAD families with
 * both key types, tickets, the downgrade sentinel, exporters, and what 1.2 leaves out.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ClientConnection, type ClientOptions } from '../../../src/tls/client.js';
import { ServerConfig, ServerConnection, type ServerOptions } from '../../../src/tls/server.js';
import { AlertDescription as A, AlertLevel } from '../../../src/tls/alerts.js';
import { CipherSuite, ContentType, HandshakeType, NamedGroup, SignatureScheme } from '../../../src/tls/constants.js';
import type { TlsEvent } from '../../../src/tls/connection.js';
import { AlertReceived, PeerMisbehaved } from '../../../src/tls/errors.js';
import { generateKeyShare } from '../../../src/tls/key-exchange.js';
import { Transcript } from '../../../src/tls/key-schedule.js';
import { decodeClientHello, encodeHandshake, frameHandshake, writeClientHello, type ClientHello, type ClientHelloExtensions } from '../../../src/tls/messages/index.js';
import { createKeySigner, type Signer } from '../../../src/tls/signer.js';
import { decodeServerHello12, decodeServerKeyExchange } from '../../../src/tls/tls12/messages.js';
import { extendedMasterSecret, finishedVerifyData12, keyBlock } from '../../../src/tls/tls12/prf.js';
import { Tls12RecordSealer } from '../../../src/tls/tls12/record.js';
import { MAX_REFUSED_RENEGOTIATIONS } from '../../../src/tls/tls12/renegotiation.js';
import type { RecordLayer } from '../../../src/tls/record-layer.js';
import type { RecordUnprotector } from '../../../src/tls/record.js';
import { doHandshake, Endpoint, pump, splitRecords, transfer, type Pair, assertConnected } from './pair.js';
import { CLIENT_RANDOM, handshakeMessages, hello12, record, refusalAfter, SUITE } from './tls12-script.js';
import { testPki, type KeyType } from './pki.js';

async function serverOptions(extra: Partial<ServerOptions> = {}, keyType: KeyType = 'p256'): Promise<ServerOptions> {
  const leaf = await (await testPki()).leaf(keyType);
  return { certificates: [{ cert: leaf.pem, key: leaf.key }], ...extra };
}

async function clientOptions(extra: Partial<ClientOptions> = {}): Promise<ClientOptions> {
  return { servername: 'localhost', ca: [(await testPki()).ca.pem], minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ...extra };
}

async function connect12(server: Partial<ServerOptions> = {}, client: Partial<ClientOptions> = {}, keyType: KeyType = 'p256'): Promise<Pair> {
  return doHandshake(new ClientConnection(await clientOptions(client)), new ServerConnection(await serverOptions(server, keyType)));
}

const info = (e: Pair['client']) => e.ofType('handshake')[0]!.info;

void describe('TLS 1.2 full handshakes', () => {
  const cases: [KeyType, number][] = [
    ['p256', CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256],
    ['p256', CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384],
    ['p384', CipherSuite.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256],
    ['rsa', CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256],
    ['rsa', CipherSuite.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384],
    ['rsa', CipherSuite.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256],
  ];
  for (const [keyType, suite] of cases) {
    for (const group of [NamedGroup.x25519, NamedGroup.secp256r1, NamedGroup.secp384r1]) {
      void test(`negotiates 0x${suite.toString(16)} over group 0x${group.toString(16)} with a ${keyType} certificate and carries data`, async () => {
        const curve = keyType === "p384" ? NamedGroup.secp384r1 : NamedGroup.secp256r1;
        // The client lists the certificate's curve too (RFC 8422 §5.1); the server does ECDHE on `group` only.
        const pair = await connect12({ groups: [group] }, { tls12CipherSuites: [suite], groups: group === curve ? [group] : [group, curve] }, keyType);
        assertConnected(pair);
        assert.equal(info(pair.client).version, 'TLSv1.2');
        assert.equal(info(pair.server).cipherSuite, suite);
        assert.equal(info(pair.server).group, group);
        assert.equal((await transfer(pair, 'client', Buffer.from('ping'))).toString(), 'ping');
        assert.equal((await transfer(pair, 'server', Buffer.alloc(40000, 7))).length, 40000);
        const a = pair.client.conn.exportKeyingMaterial('EXPORTER-test', 32);
        assert.deepEqual(a, pair.server.conn.exportKeyingMaterial('EXPORTER-test', 32));
        // RFC 5705: a context of up to 65,535 bytes (the PRF's HMAC input is then ~65 KB).
        const context = Buffer.alloc(65_535, 3);
        assert.deepEqual(pair.client.conn.exportKeyingMaterial('EXPORTER-test', 32, context), pair.server.conn.exportKeyingMaterial('EXPORTER-test', 32, context));
      });
    }
  }
});

// --- a scripted TLS 1.2 client, byte by byte, for what our client never sends -----------------------

let config12: ServerConfig | undefined;
async function server12(extra: Partial<ServerOptions> = {}): Promise<ServerConnection> {
  if (Object.keys(extra).length > 0) return new ServerConnection(await serverOptions(extra));
  config12 ??= new ServerConfig(await serverOptions());
  return new ServerConnection(config12);
}

interface Scripted {
  readonly conn: ServerConnection;
  readonly events: TlsEvent[];
  /** ClientKeyExchange, ChangeCipherSpec and Finished records (Finished with `verifyData` when given). */
  flight(verifyData?: Uint8Array): Uint8Array[];
  /** Our sealer after the flight, to send more protected records. */
  sealer(): Tls12RecordSealer;
  readonly serverMessages: Uint8Array[];
}

/** Sends a ClientHello and reads the server's first flight (ServerHello … ServerHelloDone). */
async function scripted(conn?: ServerConnection, hello = hello12()): Promise<Scripted> {
  const server = conn ?? (await server12());
  const events: TlsEvent[] = [];
  const p = server.feed(record(ContentType.handshake, hello));
  events.push(...p.events);
  const output = [...p.output];
  if (p.waitFor) {
    await p.waitFor;
    const q = server.poll();
    output.push(...q.output);
    events.push(...q.events);
  }
  const msgs = handshakeMessages(output);
  assert.deepEqual(msgs.map((m) => m[0]), [HandshakeType.server_hello, HandshakeType.certificate, HandshakeType.server_key_exchange, HandshakeType.server_hello_done]);
  const serverRandom = msgs[0]!.subarray(6, 38);
  const ske = decodeServerKeyExchange(msgs[2]!.subarray(4));
  const share = generateKeyShare(ske.group)!;
  const transcript = new Transcript();
  transcript.start('sha256');
  transcript.add(hello);
  for (const m of msgs) transcript.add(m);
  const cke = encodeHandshake(HandshakeType.client_key_exchange, (w) => w.opaque8(share.publicKey));
  transcript.add(cke);
  const master = extendedMasterSecret(SUITE, share.computeSecret(ske.publicKey), transcript.current());
  const keys = keyBlock(SUITE, master, CLIENT_RANDOM, serverRandom);
  const sealer = new Tls12RecordSealer(SUITE, keys.clientKey, keys.clientIv);
  return {
    conn: server,
    events,
    serverMessages: msgs,
    sealer: () => sealer,
    flight(verifyData) {
      const vd = verifyData ?? finishedVerifyData12(SUITE, master, 'client', transcript.current());
      return [record(ContentType.handshake, cke), Uint8Array.of(ContentType.change_cipher_spec, 3, 3, 0, 1, 1), sealer.seal(ContentType.handshake, frameHandshake(HandshakeType.finished, vd))];
    },
  };
}

void describe('TLS 1.2 refusals, each with its fault and alert', () => {
  void test('a client without extended_master_secret: handshake_failure (RFC 7627 required)', async () => {
    const ch = hello12({ extendedMasterSecret: undefined } as Partial<ClientHelloExtensions>);
    assert.deepEqual(refusalAfter(await server12(), record(ContentType.handshake, ch)), { alert: A.handshake_failure, fault: 'MissingExtendedMasterSecret' });
  });

  void test('a client offering only CBC and RSA key transport suites: handshake_failure', async () => {
    const ch = hello12({}, { cipherSuites: [0xc013, 0xc014, 0x002f, 0x009c, 0x000a] });
    assert.deepEqual(refusalAfter(await server12(), record(ContentType.handshake, ch)), { alert: A.handshake_failure, fault: 'NoCipherSuitesInCommon' });
  });

  void test('a client offering only TLS 1.0/1.1: protocol_version, with or without supported_versions', async () => {
    assert.deepEqual(refusalAfter(await server12(), record(ContentType.handshake, hello12({}, { legacyVersion: 0x0302 }))), { alert: A.protocol_version, fault: 'NoSupportedVersionInCommon' });
    const ch = hello12({ supportedVersions: [0x0302, 0x0301] });
    assert.deepEqual(refusalAfter(await server12(), record(ContentType.handshake, ch)), { alert: A.protocol_version, fault: 'NoSupportedVersionInCommon' });
  });

  void test('TLS_FALLBACK_SCSV in a TLS 1.2 hello to a TLS 1.3 server: inappropriate_fallback (RFC 7507)', async () => {
    const ch = hello12({}, { cipherSuites: [CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, CipherSuite.TLS_FALLBACK_SCSV] });
    assert.deepEqual(refusalAfter(await server12(), record(ContentType.handshake, ch)), { alert: A.inappropriate_fallback, fault: 'InappropriateFallback' });
  });

  void test('a non-empty renegotiation_info in an initial handshake: handshake_failure (RFC 5746)', async () => {
    const ch = hello12({ renegotiationInfo: new Uint8Array(12) });
    assert.deepEqual(refusalAfter(await server12(), record(ContentType.handshake, ch)), { alert: A.handshake_failure, fault: 'RenegotiationInfoNotEmpty' });
  });

  void test('a client Finished that does not verify: decrypt_error', async () => {
    const s = await scripted();
    assert.deepEqual(refusalAfter(s.conn, ...s.flight(new Uint8Array(12).fill(1))), { alert: A.decrypt_error, fault: 'IncorrectFinished' });
  });

  void test('a right Finished completes the handshake', async () => {
    const s = await scripted();
    const events = s.flight().flatMap((r) => s.conn.feed(r).events);
    assert.equal(events.find((e) => e.type === 'error'), undefined);
    assert.equal(events.filter((e) => e.type === 'handshake').length, 1);
  });

  void test('a ChangeCipherSpec before ClientKeyExchange: unexpected_message', async () => {
    const s = await scripted();
    assert.deepEqual(refusalAfter(s.conn, Uint8Array.of(ContentType.change_cipher_spec, 3, 3, 0, 1, 1)), { alert: A.unexpected_message, fault: 'UnexpectedChangeCipherSpec' });
  });

  void test('a truncated ClientKeyExchange (point shorter than its length): decode_error', async () => {
    const s = await scripted();
    const cke = encodeHandshake(HandshakeType.client_key_exchange, (w) => w.u8(32).bytes(new Uint8Array(10)));
    assert.equal(refusalAfter(s.conn, record(ContentType.handshake, cke)).alert, A.decode_error);
  });

  void test('a ClientKeyExchange declaring more than the message limit: record_overflow at its header', async () => {
    const s = await scripted();
    assert.equal(refusalAfter(s.conn, record(ContentType.handshake, Uint8Array.of(HandshakeType.client_key_exchange, 0x02, 0, 0))).alert, A.record_overflow);
  });

  void test('a ClientKeyExchange with a point off the curve or of the wrong size: illegal_parameter', async () => {
    const s = await scripted();
    const cke = encodeHandshake(HandshakeType.client_key_exchange, (w) => w.opaque8(new Uint8Array(31)));
    assert.deepEqual(refusalAfter(s.conn, record(ContentType.handshake, cke)), { alert: A.illegal_parameter, fault: 'InvalidKeyShare' });
  });

  void test('every strict prefix of the first flight leaves the server waiting, never failing', async () => {
    const ch = record(ContentType.handshake, hello12());
    for (let n = 1; n < ch.length; n++) {
      const conn = await server12();
      const p = conn.feed(ch.subarray(0, n));
      assert.equal(p.events.length, 0, `prefix ${n}`);
      assert.equal(p.output.length, 0, `prefix ${n}`);
    }
  });

  void test('the server random carries the TLS 1.2 downgrade sentinel when TLS 1.3 is enabled, and not when it is off', async () => {
    const on = await scripted();
    assert.equal(Buffer.from(on.serverMessages[0]!.subarray(30, 38)).toString('latin1'), 'DOWNGRD\x01');
    const off = await scripted(await server12({ maxVersion: 'TLSv1.2' }));
    assert.notEqual(Buffer.from(off.serverMessages[0]!.subarray(30, 38)).toString('latin1'), 'DOWNGRD\x01');
  });
});

void describe('TLS 1.2 with our client', () => {
  void test('a ServerKeyExchange whose signature does not verify: the client sends decrypt_error', async () => {
    const leaf = await (await testPki()).leaf('p256');
    const honest = createKeySigner(leaf.key);
    const lying: Signer = { schemes: honest.schemes, sign: (scheme, message) => honest.sign(scheme, Buffer.concat([message, Uint8Array.of(0)])) };
    const pair = await doHandshake(new ClientConnection(await clientOptions()), new ServerConnection({ certificates: [{ cert: leaf.pem, key: lying }] }));
    assert.equal(pair.client.error?.sentAlert, A.decrypt_error);
    assert.equal(pair.client.error?.error instanceof PeerMisbehaved && pair.client.error.error.fault, 'BadServerKeyExchangeSignature');
    assert.equal(pair.server.error?.error instanceof AlertReceived && pair.server.error.error.description, A.decrypt_error);
  });

  void test('a TLS 1.3-capable client forced to TLS 1.2 by a middlebox detects the downgrade (illegal_parameter)', async () => {
    // The middlebox rewrites the ClientHello to offer TLS 1.2 only.
    const strip = (from: 'client' | 'server', bytes: Uint8Array): Uint8Array => {
      if (from !== 'client' || bytes[0] !== ContentType.handshake || bytes[5] !== HandshakeType.client_hello) return bytes;
      const hello = decodeClientHello(bytes.subarray(9));
      const forced: ClientHello = { ...hello, extensions: { ...hello.extensions, supportedVersions: [0x0303] } };
      return record(ContentType.handshake, encodeHandshake(HandshakeType.client_hello, (w) => writeClientHello(w, forced)));
    };
    const pair = { client: new Endpoint(new ClientConnection(await clientOptions({ maxVersion: 'TLSv1.3' }))), server: new Endpoint(new ServerConnection(await serverOptions())) };
    await pump(pair, strip);
    assert.equal(pair.client.error?.sentAlert, A.illegal_parameter);
    assert.equal(pair.client.error?.error instanceof PeerMisbehaved && pair.client.error.error.fault, 'DowngradeDetected');
  });

  void test('a client offering TLS 1.3 and 1.2 gets TLS 1.3 from us, and TLS 1.2 (no sentinel) from a TLS 1.2-only server', async () => {
    const both = await connect12({}, { maxVersion: 'TLSv1.3' });
    assertConnected(both);
    assert.equal(info(both.client).version, 'TLSv1.3');
    const only12 = await connect12({ maxVersion: 'TLSv1.2' }, { maxVersion: 'TLSv1.3' });
    assertConnected(only12);
    assert.equal(info(only12.client).version, 'TLSv1.2');
  });

  void test('a TLS 1.2 client offering delegated_credential (34) gets the certificate: DCs are TLS 1.3 only', async () => {
    let sawDcOffer = false;
    const pair = await connect12(
      {
        selectCredential: (hello, fallback) => {
          if (hello.extensions.delegatedCredential) sawDcOffer = true;
          const c = fallback();
          return c && hello.extensions.delegatedCredential ? { ...c, label: 'delegated-credential' } : c;
        },
      },
      { serverCredentialHooks: { offer: [SignatureScheme.ecdsa_secp256r1_sha256], acceptLeaf: () => undefined } },
    );
    assertConnected(pair);
    assert.equal(sawDcOffer, false);
    assert.equal(info(pair.server).serverMode.authentication, 'certificate');
  });

  void test('an RSA certificate signs with RSA-PSS when offered, PKCS#1 v1.5 when only that is offered, and ECDSA with the curve hash', async () => {
    const pss = await connect12({}, {}, 'rsa');
    assert.equal(info(pss.server).serverMode.signatureScheme, SignatureScheme.rsa_pss_rsae_sha256);
    const pkcs1 = await connect12({}, { signatureAlgorithms: [SignatureScheme.rsa_pkcs1_sha384, SignatureScheme.ecdsa_secp256r1_sha256] }, 'rsa');
    assertConnected(pkcs1);
    assert.equal(info(pkcs1.server).serverMode.signatureScheme, SignatureScheme.rsa_pkcs1_sha384);
    const p384 = await connect12({}, {}, 'p384');
    assert.equal(info(p384.client).serverMode.signatureScheme, SignatureScheme.ecdsa_secp384r1_sha384);
  });

  void test('an async signer (keyless) pauses the handshake and completes it', async () => {
    const leaf = await (await testPki()).leaf('p256');
    const local = createKeySigner(leaf.key);
    const remote: Signer = { schemes: local.schemes, sign: async (scheme, message) => { await new Promise((r) => setTimeout(r, 5)); return local.sign(scheme, message); } };
    const pair = await doHandshake(new ClientConnection(await clientOptions()), new ServerConnection({ certificates: [{ cert: leaf.pem, key: remote }] }));
    assertConnected(pair);
  });

  void test('KeyUpdate does not exist in TLS 1.2: keyUpdate() sends nothing and data still flows', async () => {
    const pair = await connect12();
    pair.client.conn.keyUpdate(true);
    assert.equal(pair.client.conn.poll().output.length, 0);
    assert.equal((await transfer(pair, 'client', Buffer.from('after'))).toString(), 'after');
  });
});

void test('TLS 1.2: an ECDSA certificate on a curve the client does not list in supported_groups is not served (RFC 8422 §5.1)', async () => {
  const pair = await connect12({}, { groups: [NamedGroup.x25519] }, 'p256');
  assert.equal(pair.server.error?.sentAlert, A.handshake_failure);
  assert.equal(pair.server.error?.error instanceof PeerMisbehaved && pair.server.error.error.fault, 'NoSignatureSchemesInCommon');
  const ok = await connect12({}, { groups: [NamedGroup.x25519, NamedGroup.secp256r1] }, 'p256');
  assertConnected(ok);
  assert.equal(info(ok.server).group, NamedGroup.x25519);
});

void test('TLS 1.2: the same refusal through an async credential hook keeps its alert (handshake_failure, not internal_error)', async () => {
  const pair = await connect12(
    { selectCredential: async (_hello, fallback) => { await new Promise((r) => setTimeout(r, 1)); return fallback(); } },
    { groups: [NamedGroup.x25519] },
    'p256',
  );
  assert.equal(pair.server.error?.sentAlert, A.handshake_failure);
  assert.equal(pair.server.error?.error instanceof PeerMisbehaved && pair.server.error.error.fault, 'NoSignatureSchemesInCommon');
});

// --- renegotiation: refused with a warning, the connection carries on (RFC 5246 §7.2.2, RFC 5746) ----

/** A connection's record layer: the tests below send through one side's current keys. */
function recordsOf(e: Endpoint): RecordLayer {
  return (e.conn as unknown as { records: RecordLayer }).records;
}

/**
 * Has `from` send a handshake message after the handshake (what our own endpoints never do) and
 * feeds the record to the peer; returns the peer's reply records opened with `from`'s read keys.
 */
function sendAfterHandshake(pair: Pair, from: 'client' | 'server', message: Uint8Array): { type: number; content: Buffer }[] {
  const sender = from === 'client' ? pair.client : pair.server;
  const receiver = from === 'client' ? pair.server : pair.client;
  recordsOf(sender).queueHandshake(message);
  const reply = receiver.conn.feed(Buffer.concat(recordsOf(sender).takeOutput()));
  receiver.events.push(...reply.events);
  const reader = (recordsOf(sender) as unknown as { reader: RecordUnprotector }).reader;
  return splitRecords(Buffer.concat(reply.output)).map((r) => reader.openIn(r, 0, r.length));
}

const WARNING_NO_RENEGOTIATION = { type: ContentType.alert, content: Buffer.of(AlertLevel.warning, A.no_renegotiation) };

void describe('TLS 1.2 renegotiation is refused with a warning (RFC 5246 §7.2.2) and the connection carries on', () => {
  void test('the server answers a ClientHello after the handshake with a warning no_renegotiation, then data flows both ways', async () => {
    const pair = await connect12();
    assertConnected(pair);
    assert.deepEqual(sendAfterHandshake(pair, 'client', hello12()), [WARNING_NO_RENEGOTIATION]);
    assert.equal(pair.server.error, undefined, String(pair.server.error?.error));
    assert.equal((await transfer(pair, 'client', Buffer.from('after'))).toString(), 'after');
    assert.equal((await transfer(pair, 'server', Buffer.from('reply'))).toString(), 'reply');
  });

  void test('the client answers a HelloRequest with a warning no_renegotiation, then data flows both ways', async () => {
    const pair = await connect12();
    assertConnected(pair);
    assert.deepEqual(sendAfterHandshake(pair, 'server', frameHandshake(HandshakeType.hello_request, new Uint8Array(0))), [WARNING_NO_RENEGOTIATION]);
    assert.equal(pair.client.error, undefined, String(pair.client.error?.error));
    assert.equal((await transfer(pair, 'server', Buffer.from('after'))).toString(), 'after');
    assert.equal((await transfer(pair, 'client', Buffer.from('reply'))).toString(), 'reply');
  });

  for (const [from, message, name] of [
    ['client', () => hello12(), 'ClientHellos'],
    ['server', () => frameHandshake(HandshakeType.hello_request, new Uint8Array(0)), 'HelloRequests'],
  ] as const) {
    void test(`${MAX_REFUSED_RENEGOTIATIONS} ${name} get warnings; one more ends the connection with handshake_failure`, async () => {
      const pair = await connect12();
      const peer = from === 'client' ? pair.server : pair.client;
      for (let i = 0; i < MAX_REFUSED_RENEGOTIATIONS; i++) assert.deepEqual(sendAfterHandshake(pair, from, message()), [WARNING_NO_RENEGOTIATION], `request ${i + 1}`);
      assert.equal(peer.error, undefined);
      const last = sendAfterHandshake(pair, from, message());
      assert.deepEqual(last, [{ type: ContentType.alert, content: Buffer.of(AlertLevel.fatal, A.handshake_failure) }]);
      const failure = peer.ofType('error')[0]?.error;
      assert.equal(failure instanceof PeerMisbehaved && failure.fault, 'TooManyRenegotiationRequests');
    });
  }

  void test('RFC 5746 §3.6: the server echoes an empty renegotiation_info for the extension or the SCSV alone, and none without either', async () => {
    const withoutRi = { renegotiationInfo: undefined } as Partial<ClientHelloExtensions>;
    const suites = { cipherSuites: [CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, CipherSuite.TLS_EMPTY_RENEGOTIATION_INFO_SCSV] };
    const riOf = async (hello: Uint8Array) => decodeServerHello12((await scripted(undefined, hello)).serverMessages[0]!.subarray(4)).renegotiationInfo?.length;
    assert.equal(await riOf(hello12()), 0);
    assert.equal(await riOf(hello12(withoutRi, suites)), 0);
    assert.equal(await riOf(hello12(withoutRi)), undefined);
  });

  void test('a HelloRequest with a body: decode_error', async () => {
    const pair = await connect12();
    const reply = sendAfterHandshake(pair, 'server', frameHandshake(HandshakeType.hello_request, new Uint8Array(1)));
    assert.deepEqual(reply, [{ type: ContentType.alert, content: Buffer.of(AlertLevel.fatal, A.decode_error) }]);
  });

  void test('a HelloRequest during the handshake is ignored by the client and kept out of the transcript (RFC 5246 §7.4.1.1)', async () => {
    // The ServerHello flight with a HelloRequest put in front of ServerHelloDone.
    const hr = frameHandshake(HandshakeType.hello_request, new Uint8Array(0));
    const insert = (from: 'client' | 'server', bytes: Uint8Array): Uint8Array => {
      if (from !== 'server' || bytes[0] !== ContentType.handshake) return bytes;
      const msgs = handshakeMessages([bytes]);
      if (!msgs.some((m) => m[0] === HandshakeType.server_hello_done)) return bytes;
      const body = Buffer.concat(msgs.flatMap((m) => (m[0] === HandshakeType.server_hello_done ? [hr, m] : [m])));
      return record(ContentType.handshake, body);
    };
    const pair = { client: new Endpoint(new ClientConnection(await clientOptions())), server: new Endpoint(new ServerConnection(await serverOptions())) };
    await pump(pair, insert);
    assert.equal(pair.client.error, undefined, String(pair.client.error?.error));
    assert.equal(pair.server.error, undefined, String(pair.server.error?.error));
    assertConnected(pair);
  });
});

// --- the hybrid post-quantum groups are TLS 1.3 only ----------------------------------------------------

void describe('TLS 1.2 never uses a hybrid post-quantum group', () => {
  const hybrids = [NamedGroup.X25519MLKEM768, NamedGroup.SecP256r1MLKEM768];

  for (const hybrid of hybrids) {
    void test(`our client refuses a ServerKeyExchange naming 0x${hybrid.toString(16)} with illegal_parameter, though its supported_groups lists it for TLS 1.3`, async () => {
      // A server that picks the hybrid for TLS 1.2: the ServerKeyExchange's named group rewritten
      // (the group is checked before the signature, which no longer verifies).
      const rename = (from: 'client' | 'server', bytes: Uint8Array): Uint8Array => {
        if (from !== 'server' || bytes[0] !== ContentType.handshake) return bytes;
        const msgs = handshakeMessages([bytes]);
        if (!msgs.some((m) => m[0] === HandshakeType.server_key_exchange)) return bytes;
        for (const m of msgs) if (m[0] === HandshakeType.server_key_exchange) Buffer.from(m.buffer, m.byteOffset, m.length).writeUInt16BE(hybrid, 5);
        return record(ContentType.handshake, Buffer.concat(msgs));
      };
      const client = new ClientConnection(await clientOptions({ maxVersion: 'TLSv1.3', groups: [hybrid, NamedGroup.x25519, NamedGroup.secp256r1] }));
      const pair = { client: new Endpoint(client), server: new Endpoint(new ServerConnection(await serverOptions({ maxVersion: 'TLSv1.2' }))) };
      await pump(pair, rename);
      assert.equal(pair.client.error?.sentAlert, A.illegal_parameter);
      assert.equal(pair.client.error?.error instanceof PeerMisbehaved && pair.client.error.error.fault, 'SelectedUnofferedGroup');
    });
  }

  void test('our server picks an ECDHE group for TLS 1.2 even when the client lists the hybrids first and the server prefers them', async () => {
    for (const hybrid of hybrids) {
      const s = await scripted(await server12({ groups: [hybrid, NamedGroup.secp256r1, NamedGroup.x25519] }), hello12({ supportedGroups: [hybrid, NamedGroup.secp256r1, NamedGroup.x25519] }));
      assert.equal(decodeServerKeyExchange(s.serverMessages[2]!.subarray(4)).group, NamedGroup.secp256r1);
    }
  });

  void test('our server refuses a TLS 1.2 client that lists only hybrid groups: handshake_failure', async () => {
    // An RSA certificate: with ECDSA the missing curve would refuse the certificate first.
    const ch = hello12({ supportedGroups: hybrids, signatureAlgorithms: [SignatureScheme.rsa_pss_rsae_sha256] }, { cipherSuites: [CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256] });
    const server = new ServerConnection(await serverOptions({ groups: [...hybrids, NamedGroup.x25519] }, 'rsa'));
    assert.deepEqual(refusalAfter(server, record(ContentType.handshake, ch)), { alert: A.handshake_failure, fault: 'NoKeyExchangeGroupsInCommon' });
  });

  void test('our TLS 1.2-only ClientHello lists no hybrid group; offering TLS 1.3 too, it lists them', async () => {
    const groupsOffered = async (options: Partial<ClientOptions>) => {
      const out = new ClientConnection(await clientOptions(options)).poll().output;
      return decodeClientHello(handshakeMessages(out)[0]!.subarray(4)).extensions.supportedGroups;
    };
    assert.deepEqual(await groupsOffered({}), [NamedGroup.x25519, NamedGroup.secp256r1, NamedGroup.secp384r1]);
    assert.deepEqual(await groupsOffered({ maxVersion: 'TLSv1.3' }), [NamedGroup.X25519MLKEM768, NamedGroup.x25519, NamedGroup.SecP256r1MLKEM768, NamedGroup.secp256r1, NamedGroup.secp384r1]);
    await assert.rejects(groupsOffered({ groups: hybrids }), /TLS 1\.2 alone needs x25519, secp256r1 or secp384r1/);
  });
});
