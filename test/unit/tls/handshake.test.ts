import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { ClientConfig, ClientConnection, type ClientOptions } from '../../../src/tls/client.js';
import { ServerConfig, ServerConnection, type ServerOptions } from '../../../src/tls/server.js';
import { AlertDescription } from '../../../src/tls/alerts.js';
import { CipherSuite, ExtensionType, NamedGroup, SignatureScheme, namedGroupName } from '../../../src/tls/constants.js';
import { AlertReceived, IllegalParameter, PeerMisbehaved } from '../../../src/tls/errors.js';
import { createKeySigner, type Signer } from '../../../src/tls/signer.js';
import type { TlsSession } from '../../../src/tls/session.js';
import type { RecordLayer } from '../../../src/tls/record-layer.js';
import { doHandshake, transfer, type Pair, assertConnected, Endpoint, pump } from './pair.js';
import { decodeClientHello } from '../../../src/tls/messages/client-hello.js';
import { decodeEncryptedExtensions } from '../../../src/tls/messages/handshake.js';
import { testPki, type KeyType } from './pki.js';

async function serverOptions(extra: Partial<ServerOptions> = {}, keyType: KeyType = 'p256'): Promise<ServerOptions> {
  const pki = await testPki();
  const leaf = await pki.leaf(keyType);
  return { certificates: [{ cert: leaf.pem, key: leaf.key }], ...extra };
}

async function clientOptions(extra: Partial<ClientOptions> = {}): Promise<ClientOptions> {
  const pki = await testPki();
  return { servername: 'localhost', ca: [pki.ca.pem], ...extra };
}

async function connect(server: Partial<ServerOptions> = {}, client: Partial<ClientOptions> = {}, keyType: KeyType = 'p256'): Promise<Pair> {
  return doHandshake(new ClientConnection(await clientOptions(client)), new ServerConnection(await serverOptions(server, keyType)));
}

function clientInfo(pair: Pair) {
  return pair.client.ofType('handshake')[0]!.info;
}
function serverInfo(pair: Pair) {
  return pair.server.ofType('handshake')[0]!.info;
}

void describe('full handshakes', () => {
  const suites = [CipherSuite.TLS_AES_128_GCM_SHA256, CipherSuite.TLS_AES_256_GCM_SHA384, CipherSuite.TLS_CHACHA20_POLY1305_SHA256];
  const groups = [NamedGroup.X25519MLKEM768, NamedGroup.SecP256r1MLKEM768, NamedGroup.x25519, NamedGroup.secp256r1, NamedGroup.secp384r1];
  for (const suite of suites) {
    for (const group of groups) {
      void test(`negotiates suite 0x${suite.toString(16)} with group 0x${group.toString(16)} and carries data both ways`, async () => {
        const pair = await connect({}, { cipherSuites: [suite], groups: [group], keyShareGroups: [group] });
        assertConnected(pair);
        assert.equal(clientInfo(pair).cipherSuite, suite);
        assert.equal(serverInfo(pair).group, group);
        assert.equal(clientInfo(pair).helloRetryRequest, false);
        assert.equal((await transfer(pair, 'client', Buffer.from('hello server'))).toString(), 'hello server');
        assert.equal((await transfer(pair, 'server', Buffer.from('hello client'))).toString(), 'hello client');
      });
    }
  }

  for (const keyType of ['ed25519', 'p256', 'p384', 'rsa'] as const) {
    void test(`authenticates with a ${keyType} certificate key`, async () => {
      const pair = await connect({}, {}, keyType);
      assertConnected(pair);
      const expected = {
        ed25519: SignatureScheme.ed25519,
        p256: SignatureScheme.ecdsa_secp256r1_sha256,
        p384: SignatureScheme.ecdsa_secp384r1_sha384,
        rsa: SignatureScheme.rsa_pss_rsae_sha256,
      }[keyType];
      assert.equal(clientInfo(pair).serverMode.signatureScheme, expected);
      assert.equal(clientInfo(pair).peerAuthorized, true);
    });
  }

  void test('transfers 1 MiB in each direction intact', async () => {
    const pair = await connect();
    const big = Buffer.alloc(1 << 20);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7919) & 0xff;
    assert.ok((await transfer(pair, 'client', big)).equals(big));
    assert.ok((await transfer(pair, 'server', big)).equals(big));
  });

  void test('data written before the handshake completes is delivered after it', async () => {
    const client = new ClientConnection(await clientOptions());
    client.write(Buffer.from('early write'));
    const pair = await doHandshake(client, new ServerConnection(await serverOptions()));
    assertConnected(pair);
    assert.equal(pair.server.received.toString(), 'early write');
  });

  void test('both sides derive the same exporter values', async () => {
    const pair = await connect();
    const a = pair.client.conn.exportKeyingMaterial('EXPORTER-test', 32, Buffer.from('ctx'));
    const b = pair.server.conn.exportKeyingMaterial('EXPORTER-test', 32, Buffer.from('ctx'));
    assert.deepEqual(a, b);
    // "tls13 " + label fills HkdfLabel's label<7..255>: 249 bytes is the longest, on either path.
    assert.equal(pair.client.conn.exportKeyingMaterial('x'.repeat(249), 16).length, 16);
    assert.throws(() => pair.client.conn.exportKeyingMaterial('x'.repeat(250), 16), /HKDF label "tls13 x+…" is 256 bytes; at most 255/);
    // The length: 0 to 255 hash lengths (RFC 5869 §2.3), an integer, on either path.
    assert.equal(pair.client.conn.exportKeyingMaterial('EXPORTER-test', 0).length, 0);
    assert.equal(pair.client.conn.exportKeyingMaterial('EXPORTER-test', 255 * 32).length, 255 * 32);
    for (const bad of [255 * 32 + 1, -1, 1.5]) {
      assert.throws(() => pair.client.conn.exportKeyingMaterial('EXPORTER-test', bad), /exporter length .* is not an integer from 0 to 8160/, String(bad));
    }
  });

  void test('the keylog callbacks print the same five secrets on both sides', async () => {
    const clientLines: string[] = [];
    const serverLines: string[] = [];
    const pair = await connect({ keylog: (l) => serverLines.push(l) }, { keylog: (l) => clientLines.push(l) });
    assertConnected(pair);
    assert.deepEqual(
      clientLines.map((l) => l.split(' ')[0]).sort(),
      ['CLIENT_HANDSHAKE_TRAFFIC_SECRET', 'CLIENT_TRAFFIC_SECRET_0', 'EXPORTER_SECRET', 'SERVER_HANDSHAKE_TRAFFIC_SECRET', 'SERVER_TRAFFIC_SECRET_0'],
    );
    assert.deepEqual(clientLines.sort(), serverLines.sort());
    assert.match(clientLines[0]!, /^[A-Z_0]+ [0-9a-f]{64} [0-9a-f]{64}$/);
  });

  void test('close_notify ends the peer\'s readable side without an error', async () => {
    const pair = await connect();
    pair.client.conn.close();
    pair.client.take(pair.client.conn.poll());
    await transfer(pair, 'server', Buffer.from('still writing after the client closed'));
    assert.equal(pair.server.ofType('end').length, 1);
    assert.equal(pair.client.received.toString(), 'still writing after the client closed');
    assert.equal(pair.server.error, undefined);
  });
});

void describe('post-quantum key exchange: which group the server takes', () => {
  void test('default client and server agree on X25519MLKEM768 without a retry', async () => {
    const pair = await connect();
    assertConnected(pair);
    assert.equal(serverInfo(pair).group, NamedGroup.X25519MLKEM768);
    assert.equal(clientInfo(pair).group, NamedGroup.X25519MLKEM768);
    assert.equal(clientInfo(pair).helloRetryRequest, false);
  });

  void test('a hybrid share wins over an x25519 share the client listed first', async () => {
    const pair = await connect({}, { groups: [NamedGroup.x25519, NamedGroup.X25519MLKEM768], keyShareGroups: [NamedGroup.x25519, NamedGroup.X25519MLKEM768] });
    assertConnected(pair);
    assert.equal(serverInfo(pair).group, NamedGroup.X25519MLKEM768);
    assert.equal(clientInfo(pair).helloRetryRequest, false);
  });

  void test('a client that lists X25519MLKEM768 but sent only an x25519 share is asked to retry for the hybrid', async () => {
    const pair = await connect({}, { groups: [NamedGroup.X25519MLKEM768, NamedGroup.x25519], keyShareGroups: [NamedGroup.x25519] });
    assertConnected(pair);
    assert.equal(clientInfo(pair).helloRetryRequest, true);
    assert.equal(serverInfo(pair).group, NamedGroup.X25519MLKEM768);
  });

  void test('a client that lists only SecP256r1MLKEM768 among hybrids gets it, through a retry if it sent x25519', async () => {
    const pair = await connect({}, { groups: [NamedGroup.x25519, NamedGroup.SecP256r1MLKEM768], keyShareGroups: [NamedGroup.x25519] });
    assertConnected(pair);
    assert.equal(clientInfo(pair).helloRetryRequest, true);
    assert.equal(clientInfo(pair).group, NamedGroup.SecP256r1MLKEM768);
  });

  void test('a classical client still gets x25519 with no retry', async () => {
    const pair = await connect({}, { groups: [NamedGroup.x25519, NamedGroup.secp256r1], keyShareGroups: [NamedGroup.x25519] });
    assertConnected(pair);
    assert.equal(serverInfo(pair).group, NamedGroup.x25519);
    assert.equal(clientInfo(pair).helloRetryRequest, false);
  });

  void test('a server restricted to x25519 answers the default client with x25519 and no retry', async () => {
    const pair = await connect({ groups: [NamedGroup.x25519] });
    assertConnected(pair);
    assert.equal(clientInfo(pair).group, NamedGroup.x25519);
    assert.equal(clientInfo(pair).helloRetryRequest, false);
  });
});

void describe('post-quantum key exchange: the group for each (client groups, client shares), and whether it took a retry', () => {
  const { X25519MLKEM768: X_MLKEM, SecP256r1MLKEM768: P_MLKEM, x25519: X, secp256r1: P256, secp384r1: P384 } = NamedGroup;
  // [client supported_groups, client key shares, server groups (undefined: default), group, retry]
  const table: [number[], number[], number[] | undefined, number, boolean][] = [
    // A hybrid share is used, whichever hybrid we prefer: no retry for X25519MLKEM768 without a share.
    [[X_MLKEM, P_MLKEM, X], [P_MLKEM], undefined, P_MLKEM, false],
    [[X_MLKEM, P_MLKEM, X], [P_MLKEM, X], undefined, P_MLKEM, false],
    [[P_MLKEM, X_MLKEM, X], [X_MLKEM, P_MLKEM], undefined, X_MLKEM, false],
    [[X_MLKEM, X], [X_MLKEM, X], undefined, X_MLKEM, false],
    [[X, X_MLKEM], [X, X_MLKEM], undefined, X_MLKEM, false],
    // Only classical shares while both list a hybrid: a retry for our preferred common hybrid (policy).
    [[X_MLKEM, X], [X], undefined, X_MLKEM, true],
    [[P_MLKEM, X], [X], undefined, P_MLKEM, true],
    [[X_MLKEM, P_MLKEM, X], [X], undefined, X_MLKEM, true],
    // Classical only: any share for a group we accept, our preference among shares, no retry.
    [[X, P256], [P256], undefined, P256, false],
    [[X, P256], [X, P256], undefined, X, false],
    [[P384], [P384], undefined, P384, false],
    [[X, P256], [], undefined, X, true],
    // A server without hybrids takes the classical share; one without that share's group retries.
    [[X_MLKEM, X], [X_MLKEM, X], [X, P256], X, false],
    [[X_MLKEM, P256], [X_MLKEM], [X, P256], P256, true],
    // A server preferring SecP256r1MLKEM768 still takes the X25519MLKEM768 share it has.
    [[X_MLKEM, P_MLKEM], [X_MLKEM], [P_MLKEM, X_MLKEM, X], X_MLKEM, false],
  ];
  const name = (g: number): string => namedGroupName(g);
  for (const [groups, shares, serverGroups, group, retry] of table) {
    void test(`groups [${groups.map(name).join(', ')}], shares [${shares.map(name).join(', ')}]${serverGroups ? `, server [${serverGroups.map(name).join(', ')}]` : ''}: ${name(group)}${retry ? ' after a retry' : ''}`, async () => {
      const pair = await connect(serverGroups ? { groups: serverGroups } : {}, { groups, keyShareGroups: shares });
      assertConnected(pair);
      assert.equal(serverInfo(pair).group, group);
      assert.equal(clientInfo(pair).helloRetryRequest, retry);
    });
  }
});

void describe('HelloRetryRequest', () => {
  void test('a client whose key share the server does not take is asked to retry, and succeeds', async () => {
    const pair = await connect({ groups: [NamedGroup.secp384r1] }, { keyShareGroups: [NamedGroup.x25519] });
    assertConnected(pair);
    assert.equal(clientInfo(pair).helloRetryRequest, true);
    assert.equal(serverInfo(pair).helloRetryRequest, true);
    assert.equal(clientInfo(pair).group, NamedGroup.secp384r1);
    assert.equal((await transfer(pair, 'client', Buffer.from('after retry'))).toString(), 'after retry');
  });

  void test('without middlebox compatibility mode no change_cipher_spec is sent', async () => {
    const pair = await connect({ groups: [NamedGroup.secp256r1] }, { middleboxCompat: false });
    assertConnected(pair);
    assert.equal(clientInfo(pair).helloRetryRequest, true);
  });

  void test('no group in common fails with handshake_failure', async () => {
    const pair = await connect({ groups: [NamedGroup.secp384r1] }, { groups: [NamedGroup.x25519], keyShareGroups: [NamedGroup.x25519] });
    assert.equal(pair.server.error?.sentAlert, AlertDescription.handshake_failure);
    assert.ok(pair.client.error?.error instanceof AlertReceived);
  });
});

void describe('ALPN and SNI', () => {
  void test('the server\'s most preferred protocol that the client offers is selected', async () => {
    const pair = await connect({ alpnProtocols: ['h2', 'http/1.1'] }, { alpnProtocols: ['http/1.1', 'h2'] });
    assertConnected(pair);
    assert.equal(clientInfo(pair).alpnProtocol, 'h2');
    assert.equal(serverInfo(pair).alpnProtocol, 'h2');
  });

  void test('one config serves each connection its own ALPN protocol and SNI acknowledgement (EncryptedExtensions encoded once per variant)', async () => {
    const config = new ServerConfig(await serverOptions({ alpnProtocols: ['h2', 'http/1.1'] }));
    const cases = [
      { alpn: ['h2'], servername: 'localhost', want: 'h2' },
      { alpn: ['http/1.1'], servername: 'localhost', want: 'http/1.1' },
      { alpn: undefined, servername: 'localhost', want: undefined },
      { alpn: ['http/1.1'], servername: undefined, want: 'http/1.1' },
      { alpn: ['h2'], servername: 'localhost', want: 'h2' },
    ];
    for (const c of cases) {
      const client = new ClientConnection(await clientOptions({ ...(c.alpn ? { alpnProtocols: c.alpn } : {}), ...(c.servername ? {} : { servername: undefined, rejectUnauthorized: false }) }));
      const pair = await doHandshake(client, new ServerConnection(config));
      assertConnected(pair);
      assert.equal(clientInfo(pair).alpnProtocol, c.want);
      assert.equal(serverInfo(pair).servername, c.servername);
    }
    const withSni = config.encryptedExtensions(true, 'h2');
    assert.equal(config.encryptedExtensions(true, 'h2'), withSni, 'the same bytes, not a new encoding');
    assert.deepEqual(decodeEncryptedExtensions(withSni.subarray(4)), { serverNameAck: true, alpn: 'h2', unknown: [] });
    assert.deepEqual(decodeEncryptedExtensions(config.encryptedExtensions(false, undefined).subarray(4)), { unknown: [] });
    assert.deepEqual(decodeEncryptedExtensions(config.encryptedExtensions(true, undefined).subarray(4)), { serverNameAck: true, unknown: [] });
  });

  void test('no protocol in common fails with no_application_protocol', async () => {
    const pair = await connect({ alpnProtocols: ['h2'] }, { alpnProtocols: ['http/1.1'] });
    assert.equal(pair.server.error?.sentAlert, AlertDescription.no_application_protocol);
  });

  void test('a client without ALPN connects to an ALPN server with no protocol selected', async () => {
    const pair = await connect({ alpnProtocols: ['h2'] }, {});
    assertConnected(pair);
    assert.equal(clientInfo(pair).alpnProtocol, undefined);
  });

  void test('the server picks the certificate matching SNI', async () => {
    const pki = await testPki();
    const a = await pki.leaf('p256', ['a.test']);
    const b = await pki.leaf('ed25519', ['b.test']);
    const certificates = [{ cert: a.pem, key: a.key }, { cert: b.pem, key: b.key }];
    const pair = await doHandshake(
      new ClientConnection(await clientOptions({ servername: 'b.test' })),
      new ServerConnection({ certificates }),
    );
    assertConnected(pair);
    assert.equal(serverInfo(pair).servername, 'b.test');
    assert.equal(clientInfo(pair).serverMode.signatureScheme, SignatureScheme.ed25519);
  });

  void test('a certificate for another name is refused by the client with bad_certificate', async () => {
    const pair = await connect({}, { servername: 'other.test' });
    assert.equal(pair.client.error?.sentAlert, AlertDescription.bad_certificate);
  });

  void test('a certificate from an untrusted CA is refused with unknown_ca', async () => {
    const pki = await testPki();
    const pair = await connect({}, { ca: [pki.otherCa.pem] });
    assert.equal(pair.client.error?.sentAlert, AlertDescription.unknown_ca);
    assert.equal(pair.server.error?.error instanceof AlertReceived, true);
  });

  void test('with rejectUnauthorized false an untrusted chain connects and is reported unauthorized', async () => {
    const pki = await testPki();
    const pair = await connect({}, { ca: [pki.otherCa.pem], rejectUnauthorized: false });
    assertConnected(pair);
    assert.equal(clientInfo(pair).peerAuthorized, false);
    assert.ok(clientInfo(pair).peerAuthorizationError);
  });
});

void describe('KeyUpdate', () => {
  void test('a client KeyUpdate with update_requested makes the server update too, and data keeps flowing', async () => {
    const pair = await connect();
    pair.client.conn.keyUpdate(true);
    pair.client.take(pair.client.conn.poll());
    assert.equal((await transfer(pair, 'client', Buffer.from('after client update'))).toString(), 'after client update');
    assert.equal((await transfer(pair, 'server', Buffer.from('after server update'))).toString(), 'after server update');
    pair.server.conn.keyUpdate(false);
    pair.server.take(pair.server.conn.poll());
    assert.equal((await transfer(pair, 'server', Buffer.from('again'))).toString(), 'again');
    assert.equal(pair.client.error, undefined);
    assert.equal(pair.server.error, undefined);
  });

  void test('many update requests in one flight are answered by a single KeyUpdate', async () => {
    const pair = await connect();
    for (let i = 0; i < 5; i++) pair.client.conn.keyUpdate(true);
    const out = Buffer.concat(pair.client.conn.poll().output);
    const p = pair.server.conn.feed(out);
    assert.equal(p.output.length, 1, 'one record: the single KeyUpdate answer');
    assert.equal(pair.server.conn.failure, undefined);
  });

  void test('approaching the AEAD record limit makes the sender rekey with a KeyUpdate on its own', async () => {
    const pair = await connect();
    // White box: pretend the client already protected almost 2^24 records under this key.
    const records = (pair.client.conn as unknown as { records: RecordLayer }).records;
    const before = records.writeSealer!;
    Reflect.set(before, 'seq', before.suite.recordLimit - 1);
    const serverRecords = (pair.server.conn as unknown as { records: RecordLayer }).records;
    Reflect.set(Reflect.get(serverRecords, 'reader') as object, 'seq', before.suite.recordLimit - 1);
    assert.equal((await transfer(pair, 'client', Buffer.from('near the limit'))).toString(), 'near the limit');
    assert.notEqual(records.writeSealer, before, 'a new write key is in use');
    assert.equal(records.writeSealer!.sequence, 1);
    assert.equal((await transfer(pair, 'client', Buffer.from('after rekey'))).toString(), 'after rekey');
    assert.equal(pair.server.error, undefined);
  });

  void test('a flood of KeyUpdates without data is refused', async () => {
    const pair = await connect();
    for (let i = 0; i < 40; i++) pair.client.conn.keyUpdate(false);
    pair.client.take(pair.client.conn.poll());
    await transfer(pair, 'client', new Uint8Array(0));
    assert.equal(pair.server.error?.sentAlert, AlertDescription.unexpected_message);
  });
});

void describe('resumption', () => {
  async function firstSession(server: ServerConfig, client: ClientConfig): Promise<TlsSession> {
    const pair = await doHandshake(new ClientConnection(client), new ServerConnection(server));
    assertConnected(pair);
    const sessions = pair.client.ofType('session');
    assert.equal(sessions.length, 1);
    return sessions[0]!.session;
  }

  void test('a ticket from the first connection resumes the second with psk_dhe_ke', async () => {
    const server = new ServerConfig(await serverOptions());
    const client = new ClientConfig(await clientOptions());
    const session = await firstSession(server, client);
    const pair = await doHandshake(new ClientConnection(client, { session }), new ServerConnection(server));
    assertConnected(pair);
    assert.equal(clientInfo(pair).resumed, true);
    assert.equal(serverInfo(pair).resumed, true);
    assert.equal(serverInfo(pair).serverMode.authentication, 'psk');
    assert.equal((await transfer(pair, 'client', Buffer.from('resumed'))).toString(), 'resumed');
  });

  void test('a ticket survives a HelloRetryRequest on the resumed connection', async () => {
    const server = new ServerConfig(await serverOptions({ groups: [NamedGroup.secp256r1] }));
    const client = new ClientConfig(await clientOptions({ keyShareGroups: [NamedGroup.x25519] }));
    const session = await firstSession(server, client);
    const pair = await doHandshake(new ClientConnection(client, { session }), new ServerConnection(server));
    assertConnected(pair);
    assert.equal(clientInfo(pair).resumed, true);
    assert.equal(clientInfo(pair).helloRetryRequest, true);
  });

  void test('a resumed connection gets a fresh ticket, which resumes a third connection', async () => {
    const server = new ServerConfig(await serverOptions());
    const client = new ClientConfig(await clientOptions());
    const first = await firstSession(server, client);
    const second = await doHandshake(new ClientConnection(client, { session: first }), new ServerConnection(server));
    assertConnected(second);
    assert.equal(serverInfo(second).resumed, true);
    const fresh = second.client.ofType('session');
    assert.equal(fresh.length, 1, 'one NewSessionTicket after the resumed handshake');
    assert.notDeepEqual(fresh[0]!.session.ticket, first.ticket);
    const third = await doHandshake(new ClientConnection(client, { session: fresh[0]!.session }), new ServerConnection(server));
    assertConnected(third);
    assert.equal(serverInfo(third).resumed, true);
  });

  void test('a ticket issued on a resumed connection lives only as long as the ticket it resumed had left', async () => {
    let now = Date.now();
    const server = new ServerConfig(await serverOptions({ ticketLifetimeSeconds: 60, now: () => new Date(now) }));
    const client = new ClientConfig(await clientOptions({ now: () => new Date(now) }));
    const first = await firstSession(server, client);
    now += 50_000;
    const second = await doHandshake(new ClientConnection(client, { session: first }), new ServerConnection(server));
    assertConnected(second);
    const fresh = second.client.ofType('session')[0]!.session;
    assert.ok(fresh.lifetimeSeconds <= 10, `lifetime ${fresh.lifetimeSeconds} s`);
    now += 15_000;
    const third = await doHandshake(new ClientConnection(client, { session: { ...fresh, lifetimeSeconds: 3600 } }), new ServerConnection(server));
    assertConnected(third);
    assert.equal(serverInfo(third).resumed, false, 'the server refuses it past the original lifetime');
  });

  void test('a ticket sealed by another server key falls back to a full handshake', async () => {
    const client = new ClientConfig(await clientOptions());
    const session = await firstSession(new ServerConfig(await serverOptions()), client);
    const pair = await doHandshake(new ClientConnection(client, { session }), new ServerConnection(await serverOptions()));
    assertConnected(pair);
    assert.equal(clientInfo(pair).resumed, false);
  });

  void test('a ticket past its lifetime is not used', async () => {
    let now = Date.now();
    const server = new ServerConfig(await serverOptions({ ticketLifetimeSeconds: 60, now: () => new Date(now) }));
    const client = new ClientConfig(await clientOptions());
    const session = await firstSession(server, client);
    now += 120_000;
    const pair = await doHandshake(new ClientConnection(client, { session }), new ServerConnection(server));
    assertConnected(pair);
    assert.equal(serverInfo(pair).resumed, false);
  });

  void test('without client authentication the tickets leave with the server flight, before the client Finished arrives', async () => {
    const server = new ServerConnection(new ServerConfig(await serverOptions()));
    const client = new ClientConnection(new ClientConfig(await clientOptions()));
    const flight = server.feed(Buffer.concat(client.poll().output));
    assert.equal(server.stateName, 'ExpectFinished');
    const p = client.feed(Buffer.concat(flight.output));
    assert.deepEqual(p.events.map((e) => e.type), ['handshake', 'session']);
    // The client Finished still has to verify (negative.test.ts); the server sends nothing more after it.
    const after = server.feed(Buffer.concat(p.output));
    assert.deepEqual(after.events.map((e) => e.type), ['handshake']);
    assert.equal(after.output.length, 0);
    const session = (p.events[1] as Extract<(typeof p.events)[number], { type: 'session' }>).session;
    const pair = await doHandshake(new ClientConnection(new ClientConfig(await clientOptions()), { session }), new ServerConnection(server.config));
    assertConnected(pair);
    assert.equal(serverInfo(pair).resumed, true);
  });

  void test('with client authentication the tickets follow the client Finished', async () => {
    const pki = await testPki();
    const leaf = await pki.leaf('p256', ['client.test'], 'client');
    const server = new ServerConnection(new ServerConfig(await serverOptions({ requestCert: true, ca: [pki.ca.pem] })));
    const client = new ClientConnection(new ClientConfig(await clientOptions({ certificates: [{ cert: leaf.pem, key: leaf.key }] })));
    const flight = server.feed(Buffer.concat(client.poll().output));
    const p = client.feed(Buffer.concat(flight.output));
    assert.deepEqual(p.events.map((e) => e.type), ['handshake']);
    const after = server.feed(Buffer.concat(p.output));
    assert.deepEqual(after.events.map((e) => e.type), ['handshake']);
    const sessions = client.feed(Buffer.concat(after.output)).events.filter((e) => e.type === 'session');
    assert.equal(sessions.length, 1);
  });

  void test('a resumption attempt with a corrupted binder fails with decrypt_error', async () => {
    const server = new ServerConfig(await serverOptions());
    const client = new ClientConfig(await clientOptions());
    const session = await firstSession(server, client);
    const wrongPsk = { ...session, psk: Buffer.alloc(session.psk.length, 7) };
    const pair = await doHandshake(new ClientConnection(client, { session: wrongPsk }), new ServerConnection(server));
    assert.equal(pair.server.error?.sentAlert, AlertDescription.decrypt_error);
    const error = pair.server.error?.error;
    assert.equal(error instanceof PeerMisbehaved && error.fault, 'IncorrectBinder');
  });
});

void describe('client certificates', () => {
  async function clientCert(keyType: KeyType = 'p256') {
    const pki = await testPki();
    const leaf = await pki.leaf(keyType, ['client.test'], 'client');
    return [{ cert: leaf.pem, key: leaf.key }];
  }

  void test('a client certificate is requested, verified and reported on the server', async () => {
    const pki = await testPki();
    const pair = await connect({ requestCert: true, ca: [pki.ca.pem] }, { certificates: await clientCert('ed25519') });
    assertConnected(pair);
    assert.equal(serverInfo(pair).peerAuthorized, true);
    assert.equal(serverInfo(pair).peerCertificates.length, 1);
    assert.equal(serverInfo(pair).clientMode?.signatureScheme, SignatureScheme.ed25519);
    assert.equal(clientInfo(pair).clientMode?.authentication, 'certificate');
  });

  void test('a client without a certificate is refused with certificate_required', async () => {
    const pki = await testPki();
    const pair = await connect({ requestCert: true, ca: [pki.ca.pem] }, {});
    assert.equal(pair.server.error?.sentAlert, AlertDescription.certificate_required);
  });

  void test('with rejectUnauthorized false a client without a certificate connects', async () => {
    const pki = await testPki();
    const pair = await connect({ requestCert: true, rejectUnauthorized: false, ca: [pki.ca.pem] }, {});
    assertConnected(pair);
    assert.equal(serverInfo(pair).peerCertificates.length, 0);
  });

  void test('client authentication hooks: the CertificateRequest carries extension 34 and the client hook chooses', async () => {
    const pki = await testPki();
    const certs = await clientCert('p256');
    let requested: readonly number[] | undefined;
    let accepted = false;
    const pair = await connect(
      {
        requestCert: true,
        ca: [pki.ca.pem],
        clientCredentialHooks: {
          offer: [SignatureScheme.ed25519],
          acceptLeaf: (ctx) => {
            accepted = ctx.offeredDelegatedCredentialSchemes.includes(SignatureScheme.ed25519);
            return undefined;
          },
        },
      },
      {
        certificates: certs,
        selectClientCredential: (request, fallback) => {
          requested = request.delegatedCredential;
          return fallback();
        },
      },
    );
    assertConnected(pair);
    assert.deepEqual(requested, [SignatureScheme.ed25519]);
    assert.ok(accepted);
    assert.equal(serverInfo(pair).clientMode?.authentication, 'certificate');
  });

  void test('a resumed session reports the client certificate verified in the original handshake', async () => {
    const pki = await testPki();
    const server = new ServerConfig(await serverOptions({ requestCert: true, ca: [pki.ca.pem] }));
    const client = new ClientConfig(await clientOptions({ certificates: await clientCert('p256') }));
    const first = await doHandshake(new ClientConnection(client), new ServerConnection(server));
    assertConnected(first);
    const session = first.client.ofType('session')[0]!.session;
    const pair = await doHandshake(new ClientConnection(client, { session }), new ServerConnection(server));
    assertConnected(pair);
    assert.equal(serverInfo(pair).resumed, true);
    assert.equal(serverInfo(pair).peerAuthorized, true);
    assert.ok(Buffer.from(serverInfo(pair).peerCertificates[0]!).equals(serverInfo(first).peerCertificates[0]!));
  });

  void test('a session without a client certificate is not resumed by a server that requires one', async () => {
    const pki = await testPki();
    const leaf = await pki.leaf('p256');
    const ticketKey = new Uint8Array(32).fill(5);
    const open = new ServerConfig({ certificates: [{ cert: leaf.pem, key: leaf.key }], ticketKey });
    const strict = new ServerConfig({ certificates: [{ cert: leaf.pem, key: leaf.key }], ticketKey, requestCert: true, ca: [pki.ca.pem] });
    const client = new ClientConfig(await clientOptions({ certificates: await clientCert('p256') }));
    const first = await doHandshake(new ClientConnection(client), new ServerConnection(open));
    const session = first.client.ofType('session')[0]!.session;
    const pair = await doHandshake(new ClientConnection(client, { session }), new ServerConnection(strict));
    assertConnected(pair);
    assert.equal(serverInfo(pair).resumed, false);
    assert.equal(serverInfo(pair).peerAuthorized, true);
  });

  void test('a client certificate from an unknown CA is refused with unknown_ca', async () => {
    const pki = await testPki();
    const pair = await connect({ requestCert: true, ca: [pki.otherCa.pem] }, { certificates: await clientCert() });
    assert.equal(pair.server.error?.sentAlert, AlertDescription.unknown_ca);
  });
});

void describe('credential hooks', () => {
  function asyncSigner(inner: Signer, delayMs: number): Signer & { calls: number } {
    const s = {
      calls: 0,
      schemes: inner.schemes,
      sign(scheme: number, message: Uint8Array): Promise<Uint8Array> {
        s.calls++;
        return new Promise((resolve) => setTimeout(() => resolve(inner.sign(scheme, message) as Uint8Array), delayMs));
      },
    };
    return s;
  }

  void test('the handshake waits for an asynchronous signer and then completes', async () => {
    const pki = await testPki();
    const leaf = await pki.leaf('p256');
    const signer = asyncSigner(createKeySigner(leaf.key), 20);
    const pair = await connect({ certificates: [{ cert: leaf.pem, key: signer }] });
    assertConnected(pair);
    assert.equal(signer.calls, 1);
  });

  void test('bytes that arrive while the signer works are processed after it finished', async () => {
    const pki = await testPki();
    const leaf = await pki.leaf('p256');
    const server = new ServerConnection({ certificates: [{ cert: leaf.pem, key: asyncSigner(createKeySigner(leaf.key), 20) }] });
    const client = new ClientConnection(await clientOptions());
    const hello = client.poll().output;
    const p = server.feed(Buffer.concat(hello));
    assert.ok(p.waitFor, 'the server is waiting for the signer');
    // ServerHello and the messages before CertificateVerify may already go out.
    const before = Buffer.concat(p.output).length;
    // Bytes fed while paused are buffered, not processed (and do not throw).
    const paused = server.feed(new Uint8Array(0));
    assert.equal(paused.output.length, 0);
    await p.waitFor;
    const after = server.poll();
    assert.ok(Buffer.concat(after.output).length > 0, 'CertificateVerify and Finished follow');
    assert.ok(before > 0);
    const done = client.feed(Buffer.concat([...p.output, ...after.output]));
    assert.equal(done.events.find((e) => e.type === 'handshake')?.type, 'handshake');
  });

  void test('a failing signer ends the handshake with internal_error', async () => {
    const pki = await testPki();
    const leaf = await pki.leaf('p256');
    const failing: Signer = { schemes: [SignatureScheme.ecdsa_secp256r1_sha256], sign: () => Promise.reject(new Error('key server down')) };
    const pair = await connect({ certificates: [{ cert: leaf.pem, key: failing }] });
    assert.equal(pair.server.error?.sentAlert, AlertDescription.internal_error);
    assert.match(String(pair.server.error?.error.message), /key server down/);
  });

  void test('selectCredential sees the client\'s extension 34 and its choice reaches the client hooks', async () => {
    const pki = await testPki();
    const leaf = await pki.leaf('p256');
    const dcKey = await pki.leaf('ed25519');
    const seen: number[][] = [];
    const server = await serverOptions({
      selectCredential: (hello) => {
        seen.push([...(hello.extensions.delegatedCredential ?? [])]);
        // A stand-in for a delegated credential: an opaque blob in the leaf entry, signed by another key.
        return {
          certificateChain: [leaf.der],
          leafExtensions: [{ type: ExtensionType.delegated_credential, data: Buffer.from('fake-dc') }],
          signer: createKeySigner(dcKey.key),
          scheme: SignatureScheme.ed25519,
          label: 'delegated-credential',
          details: { algorithm: 'ed25519' },
        };
      },
    });
    let leafExtensions: string[] = [];
    const pair = await doHandshake(
      new ClientConnection(
        await clientOptions({
          serverCredentialHooks: {
            offer: [SignatureScheme.ed25519],
            acceptLeaf: (ctx) => {
              leafExtensions = ctx.extensions.map((e) => Buffer.from(e.data).toString());
              return { publicKey: dcKey.key, schemes: [SignatureScheme.ed25519], label: 'delegated-credential', details: { algorithm: 'ed25519' } };
            },
          },
        }),
      ),
      new ServerConnection(server),
    );
    assertConnected(pair);
    assert.deepEqual(seen, [[SignatureScheme.ed25519]]);
    assert.deepEqual(leafExtensions, ['fake-dc']);
    assert.equal(clientInfo(pair).serverMode.authentication, 'delegated-credential');
    assert.deepEqual(clientInfo(pair).serverMode.details, { algorithm: 'ed25519' });
    assert.equal(serverInfo(pair).serverMode.authentication, 'delegated-credential');
  });

  void test('a client that did not offer extension 34 refuses a delegated credential with unexpected_message (RFC 9345 §4.1.1)', async () => {
    const server = await serverOptions({
      selectCredential: (_hello, fallback) => ({ ...fallback()!, leafExtensions: [{ type: ExtensionType.delegated_credential, data: Buffer.from('x') }] }),
    });
    const pair = await doHandshake(new ClientConnection(await clientOptions()), new ServerConnection(server));
    assert.equal(pair.client.error?.sentAlert, AlertDescription.unexpected_message);
  });

  void test('a client hook that rejects the delegated credential sends illegal_parameter', async () => {
    const server = await serverOptions({
      selectCredential: (_hello, fallback) => ({ ...fallback()!, leafExtensions: [{ type: ExtensionType.delegated_credential, data: Buffer.from('x') }] }),
    });
    const pair = await doHandshake(
      new ClientConnection(
        await clientOptions({
          serverCredentialHooks: {
            offer: [SignatureScheme.ed25519],
            acceptLeaf: () => {
              throw new IllegalParameter('bad DC');
            },
          },
        }),
      ),
      new ServerConnection(server),
    );
    assert.equal(pair.client.error?.sentAlert, AlertDescription.illegal_parameter);
  });
});

void describe('a first ClientHello decoded by the caller (the sidecar peeked at it)', () => {
  /** The client's ClientHello body, the pair not yet started; the server built by `server(body)`. */
  async function withHello(server: (body: Uint8Array) => ServerConnection): Promise<Pair> {
    const client = new Endpoint(new ClientConnection(await clientOptions()));
    const record = client.outbox[0]!;
    const body = record.subarray(5 + 4); // record header, handshake header
    const pair = { client, server: new Endpoint(server(body)) };
    await pump(pair);
    return pair;
  }

  void test('is used, not decoded again, when the bytes received are the ones it was decoded from', async () => {
    const options = await serverOptions();
    // A decoding that differs from the bytes in one field shows which of the two the server used.
    const pair = await withHello((body) => {
      const hello = decodeClientHello(body);
      return new ServerConnection(options, { clientHello: { body, hello: { ...hello, extensions: { ...hello.extensions, serverName: 'decoded-by-the-caller.test' } } } });
    });
    assert.equal(pair.server.error, undefined);
    assert.equal(serverInfo(pair).servername, 'decoded-by-the-caller.test');
  });

  void test('is ignored when the ClientHello received is other bytes: the server decodes what it got', async () => {
    const options = await serverOptions();
    const pair = await withHello((body) => {
      const other = Buffer.from(body);
      other[2]! ^= 0xff; // a byte of the random
      const hello = decodeClientHello(other);
      return new ServerConnection(options, { clientHello: { body: other, hello: { ...hello, extensions: { ...hello.extensions, serverName: 'decoded-by-the-caller.test' } } } });
    });
    assertConnected(pair);
    assert.equal(serverInfo(pair).servername, 'localhost');
  });
});

void describe('what a server keeps while it awaits the client\'s Finished', () => {
  /** A server that has sent its flight for a ClientHello it was handed decoded; a WeakRef to that decoding. */
  async function serverAfterFlight(client: Endpoint, options: ServerOptions): Promise<{ server: Endpoint; hello: WeakRef<object> }> {
    const record = client.drain()[0]!;
    const body = record.subarray(5 + 4);
    const hello = decodeClientHello(body);
    const server = new Endpoint(new ServerConnection(options, { clientHello: { body, hello } }));
    server.take(server.conn.feed(record));
    await server.settle();
    assert.ok(server.outbox.length > 0, 'the server sent its flight');
    return { server, hello: new WeakRef(hello) };
  }

  void test('not the ClientHello: its decoding is collected after the flight, and the handshake still completes', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const client = new Endpoint(new ClientConnection(await clientOptions()));
    const { server, hello } = await serverAfterFlight(client, await serverOptions());
    // A WeakRef is cleared only after the job that made it, and by a full collection.
    await new Promise((resolve) => setImmediate(resolve));
    gc();
    assert.equal(hello.deref(), undefined, 'the decoded ClientHello is still reachable from the server');
    await pump({ client, server });
    assertConnected({ client, server });
  });
});
