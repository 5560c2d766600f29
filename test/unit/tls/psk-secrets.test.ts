/**
 * A resumed handshake's early secret (PskEarlyKeys: the PSK extracted once, kept in the
 * handshake's SecretBlock) is zeroed on every way out: when the handshake aborts after the binder
 * verified and before the handshake keys exist, and, when it goes on, as soon as the handshake
 * secret is extracted from it (nothing later needs it, so a later abort leaves none behind).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { ClientConfig, ClientConnection } from '../../../src/tls/client.js';
import { ServerConfig, ServerConnection } from '../../../src/tls/server.js';
import { AlertDescription } from '../../../src/tls/alerts.js';
import { NamedGroup } from '../../../src/tls/constants.js';
import { PeerMisbehaved } from '../../../src/tls/errors.js';
import { PskEarlyKeys } from '../../../src/tls/handshake-keys.js';
import { EarlySecret, finishedVerifyData } from '../../../src/tls/key-schedule.js';
import { decodeClientHello } from '../../../src/tls/messages/client-hello.js';
import { nativeHandshake } from '../../../src/tls/native/handshake.js';
import { TicketKey, type TicketState, type TlsSession } from '../../../src/tls/session.js';
import { suiteParams } from '../../../src/tls/suites.js';
import { assertConnected, doHandshake } from './pair.js';
import { testPki } from './pki.js';

async function configs(): Promise<{ server: ServerConfig; client: ClientConfig }> {
  const pki = await testPki();
  const leaf = await pki.leaf('p256');
  return {
    server: new ServerConfig({ certificates: [{ cert: leaf.pem, key: leaf.key }], groups: [NamedGroup.x25519] }),
    client: new ClientConfig({ servername: 'localhost', ca: [pki.ca.pem], keyShareGroups: [NamedGroup.x25519] }),
  };
}

async function firstSession(server: ServerConfig, client: ClientConfig): Promise<TlsSession> {
  const pair = await doHandshake(new ClientConnection(client), new ServerConnection(server));
  assertConnected(pair);
  return pair.client.ofType('session')[0]!.session;
}

/** Every PskEarlyKeys the server makes while `run` runs (its binder is what every accepted PSK goes through). */
async function capturingPskKeys<T>(run: () => T | Promise<T>): Promise<{ result: T; made: PskEarlyKeys[] }> {
  const made: PskEarlyKeys[] = [];
  const binder = PskEarlyKeys.prototype.binder;
  PskEarlyKeys.prototype.binder = function (this: PskEarlyKeys, hash: Uint8Array) {
    made.push(this);
    return binder.call(this, hash);
  };
  try {
    return { result: await run(), made };
  } finally {
    PskEarlyKeys.prototype.binder = binder;
  }
}

function assertZeroed(keys: PskEarlyKeys, what: string): void {
  assert.ok(keys.early.secret.every((b) => b === 0), `${what}: the early secret is zeroed`);
}

void test('a resumed ClientHello whose binder verifies but whose x25519 share is refused leaves its early secret zeroed', async () => {
  const { server, client } = await configs();
  const session = await firstSession(server, client);
  // The client's resumed ClientHello (one plaintext record), its x25519 share replaced by zeros
  // (a low-order point: the shared secret is all zeros, §7.4.2) and the binder made anew over
  // the changed bytes, so the server verifies the binder and then refuses the share.
  const record = Uint8Array.from(Buffer.concat(new ClientConnection(client, { session }).poll().output));
  const message = record.subarray(5);
  const hello = decodeClientHello(message.subarray(4));
  const share = hello.extensions.keyShares!.find((s) => s.group === NamedGroup.x25519)!.keyExchange;
  record.fill(0, share.byteOffset - record.byteOffset, share.byteOffset - record.byteOffset + share.length);
  const suite = suiteParams(session.cipherSuite)!;
  assert.equal(hello.extensions.preSharedKey!.identities.length, 1);
  const bindersLength = 2 + 1 + suite.hashLength;
  const truncatedHash = createHash(suite.hash).update(message.subarray(0, message.length - bindersLength)).digest();
  record.set(finishedVerifyData(suite, new EarlySecret(suite, session.psk).binderKey('resumption'), truncatedHash), record.length - suite.hashLength);

  const { result: progress, made } = await capturingPskKeys(() => new ServerConnection(server).feed(record));
  const failed = progress.events.find((e) => e.type === 'error');
  assert.ok(failed && failed.type === 'error');
  assert.ok(failed.error instanceof PeerMisbehaved && failed.error.fault === 'InvalidKeyShare', `refused for its share, not its binder: ${failed.error.message}`);
  assert.equal(failed.sentAlert, AlertDescription.illegal_parameter);
  assert.equal(made.length, 1, 'the binder verified with one PskEarlyKeys');
  assertZeroed(made[0]!, 'after the abort');
  // On the addon the early secret is a view of the handshake's block: all of it is zeroed.
  if (nativeHandshake()) assert.ok(new Uint8Array(made[0]!.early.secret.buffer).every((b) => b === 0), 'the whole block is zeroed');
});

void test('once the handshake secret is extracted, a resumed handshake keeps no early secret, even when the client never finishes', async () => {
  const { server, client } = await configs();
  const session = await firstSession(server, client);
  const resumed = new ClientConnection(client, { session });
  const serverConn = new ServerConnection(server);
  const { result: flight, made } = await capturingPskKeys(() => serverConn.feed(Buffer.concat(resumed.poll().output)));
  assert.ok(flight.output.length > 0, 'the server sent its flight');
  assert.equal(serverConn.stateName, 'ExpectFinished');
  assert.equal(made.length, 1);
  assertZeroed(made[0]!, 'while the client Finished is awaited');
  // The handshake still completes with the client: nothing it needs was erased.
  const p = resumed.feed(Buffer.concat(flight.output));
  assert.ok(p.events.some((e) => e.type === 'handshake'));
  const done = serverConn.feed(Buffer.concat(p.output));
  const info = done.events.find((e) => e.type === 'handshake');
  assert.ok(info && info.type === 'handshake' && info.info.resumed);
});

/** Every session state the server's ticket key opens while `run` runs. */
async function capturingOpenedTickets<T>(run: () => T | Promise<T>): Promise<{ result: T; opened: TicketState[] }> {
  const opened: TicketState[] = [];
  const open = TicketKey.prototype.open;
  TicketKey.prototype.open = function (this: TicketKey, ticket: Uint8Array) {
    const state = open.call(this, ticket);
    if (state) opened.push(state);
    return state;
  };
  try {
    return { result: await run(), opened };
  } finally {
    TicketKey.prototype.open = open;
  }
}

void test("the server keeps no ticket's PSK: zeroed once its early secret is extracted, and zeroed when the ticket is not resumed", async () => {
  const { server, client } = await configs();
  const session = await firstSession(server, client);
  const serverConn = new ServerConnection(server);
  const { result: flight, opened } = await capturingOpenedTickets(() => serverConn.feed(Buffer.concat(new ClientConnection(client, { session }).poll().output)));
  assert.equal(serverConn.stateName, 'ExpectFinished', 'resumed, waiting for the client Finished');
  assert.ok(flight.output.length > 0);
  assert.equal(opened.length, 1);
  assert.ok(opened[0]!.psk.length > 0 && opened[0]!.psk.every((b) => b === 0), 'the resumed ticket\'s PSK is zeroed');

  // A ticket for another server name is opened, not resumed (a full handshake): its PSK is zeroed too.
  const other = new ClientConfig({ servername: 'other.example', ca: [], keyShareGroups: [NamedGroup.x25519], rejectUnauthorized: false });
  const { opened: skipped } = await capturingOpenedTickets(() => new ServerConnection(server).feed(Buffer.concat(new ClientConnection(other, { session }).poll().output)));
  assert.equal(skipped.length, 1);
  assert.ok(skipped[0]!.psk.every((b) => b === 0), 'the skipped ticket\'s PSK is zeroed');
});
