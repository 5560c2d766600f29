/**
 * TLS 1.3 tickets near the size limits: a NewSessionTicket is ticket<1..2^16-1> plus 14 bytes or
 * more (RFC 8446 §4.6.1), and clients such as Go's refuse any handshake message over 64 KiB. Our
 * server sends only NewSessionTickets whose body fits MAX_HANDSHAKE_BODY; our client takes every
 * well-formed one (up to MAX_NEW_SESSION_TICKET_BODY) and offers a ticket only if its ClientHello
 * can carry it.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ClientConfig, ClientConnection } from '../../../src/tls/client.js';
import { ServerConfig, ServerConnection } from '../../../src/tls/server.js';
import { HandshakeType } from '../../../src/tls/constants.js';
import { encodeHandshake, MAX_HANDSHAKE_BODY, MAX_NEW_SESSION_TICKET_BODY, writeNewSessionTicket } from '../../../src/tls/messages/handshake.js';
import type { RecordLayer } from '../../../src/tls/record-layer.js';
import { assertConnected, doHandshake, transfer, type Endpoint, type Pair } from './pair.js';
import { testPki, type Issued } from './pki.js';

const ticketKey = new Uint8Array(32).fill(0x42);

async function fixture() {
  const pki = await testPki();
  const server = await pki.leaf('p256');
  const serverConfig = new ServerConfig({ certificates: [{ cert: server.pem, key: server.key }], requestCert: true, ca: [pki.ca.pem], ticketKey });
  const clientConfig = (leaf: Issued) => new ClientConfig({ servername: 'localhost', ca: [pki.ca.pem], certificates: [{ cert: leaf.pem, key: leaf.key }] });
  return { pki, serverConfig, clientConfig };
}

/**
 * A CA-signed client leaf of `bytes` of DER, give or take `slack` (an ECDSA signature's length
 * varies by a byte or two): names of 50 bytes, the last one sized to fit.
 */
async function leafOf(bytes: number, slack = 0): Promise<Issued> {
  const pki = await testPki();
  const filler = (i: number) => `n${i}.${'a'.repeat(40)}.test`;
  let count = Math.max(0, Math.floor((bytes - 400) / 52));
  let last = 20;
  for (let round = 0; round < 40; round++) {
    const names = [...Array.from({ length: count }, (_, i) => filler(i)), `last${round}.${'b'.repeat(last)}.test`];
    const leaf = await pki.leaf('p256', names, 'client');
    const missing = bytes - leaf.der.length;
    if (Math.abs(missing) <= slack) return leaf;
    if (last + missing >= 1 && last + missing <= 60) last += missing;
    else count = Math.max(0, count + (Math.trunc(missing / 52) || Math.sign(missing)));
  }
  throw new Error(`no leaf of ${bytes} bytes`);
}

function recordsOf(e: Endpoint): RecordLayer {
  return (e.conn as unknown as { records: RecordLayer }).records;
}

/** Has the server send `message` after the handshake (what ours never sends) and feeds it to the client. */
function serverSends(pair: Pair, message: Uint8Array): void {
  recordsOf(pair.server).queueHandshake(message);
  const reply = pair.client.conn.feed(Buffer.concat(recordsOf(pair.server).takeOutput()));
  pair.client.events.push(...reply.events);
}

void describe('TLS 1.3 NewSessionTicket size limits', () => {
  void test('a ticket of 65,523..65,535 bytes (a ~65 KB client certificate): the server sends no NewSessionTicket over 64 KiB, and both sides stay connected', async () => {
    const { serverConfig, clientConfig } = await fixture();
    // What a ticket adds to the client certificate it carries, with this server and client.
    const small = await leafOf(600);
    const first = await doHandshake(new ClientConnection(clientConfig(small)), new ServerConnection(serverConfig));
    assertConnected(first);
    const overhead = first.client.ofType('session')[0]!.session.ticket.length - small.der.length;
    // Tickets of 65,523..65,535 bytes: NewSessionTicket bodies of 65,537..65,549.
    for (const ticketBytes of [65_526, 65_532]) {
      const leaf = await leafOf(ticketBytes - overhead, 3);
      const pair = await doHandshake(new ClientConnection(clientConfig(leaf)), new ServerConnection(serverConfig));
      assertConnected(pair);
      assert.equal(pair.client.error, undefined, String(pair.client.error?.error));
      assert.equal(pair.server.ofType('handshake')[0]!.info.peerAuthorized, true);
      assert.equal(pair.client.ofType('session').length, 0, `a ticket of ${leaf.der.length + overhead} bytes was sent`);
      assert.equal((await transfer(pair, 'client', Buffer.from('still up'))).toString(), 'still up');
    }
    // Just under the limit (a body of at most MAX_HANDSHAKE_BODY): the ticket still goes out.
    const leaf = await leafOf(MAX_HANDSHAKE_BODY - 14 - 4 - overhead, 3);
    const pair = await doHandshake(new ClientConnection(clientConfig(leaf)), new ServerConnection(serverConfig));
    assertConnected(pair);
    assert.equal(pair.client.ofType('session')[0]?.session.ticket.length, leaf.der.length + overhead);
  });

  void test('our client takes a well-formed NewSessionTicket over 64 KiB (another server\'s): the connection carries on, and a ticket its ClientHello cannot carry is not offered', async () => {
    const { serverConfig, clientConfig } = await fixture();
    const leaf = await leafOf(600);
    const pair = await doHandshake(new ClientConnection(clientConfig(leaf)), new ServerConnection(serverConfig));
    assertConnected(pair);
    const sessions = pair.client.ofType('session').length;
    const nst = { lifetime: 3600, ageAdd: 7, nonce: Uint8Array.of(9), ticket: randomBytes(0xffff), unknown: [{ type: 0x5a5a, data: new Uint8Array(5000) }] };
    const message = encodeHandshake(HandshakeType.new_session_ticket, (w) => writeNewSessionTicket(w, nst), 80_000);
    assert.ok(message.length - 4 > MAX_HANDSHAKE_BODY && message.length - 4 <= MAX_NEW_SESSION_TICKET_BODY);
    serverSends(pair, message);
    assert.equal(pair.client.error, undefined, String(pair.client.error?.error));
    const got = pair.client.ofType('session');
    assert.equal(got.length, sessions + 1);
    const session = got.at(-1)!.session;
    assert.equal(session.ticket.length, 0xffff);
    assert.equal((await transfer(pair, 'client', Buffer.from('after the ticket'))).toString(), 'after the ticket');
    // Offered, a 65,535-byte identity would overflow the ClientHello's extensions: a full handshake instead.
    const next = await doHandshake(new ClientConnection(clientConfig(leaf), { session }), new ServerConnection(serverConfig));
    assertConnected(next);
    assert.equal(next.server.ofType('handshake')[0]!.info.resumed, false);
  });
});
