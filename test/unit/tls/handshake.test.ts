import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClientConnection } from '../../../src/tls/client.js';
import { ServerConnection } from '../../../src/tls/server.js';
import { CipherSuite, NamedGroup } from '../../../src/tls/constants.js';
import { doHandshake, transfer } from './pair.js';
import { testPki } from './pki.js';

void test('a client and a server complete a handshake and exchange data', async () => {
  const pki = await testPki();
  const leaf = await pki.leaf('p256');
  const server = new ServerConnection({ certificates: [{ cert: leaf.pem, key: leaf.key }] });
  const client = new ClientConnection({ servername: 'localhost', ca: [pki.ca.pem] });
  const pair = await doHandshake(client, server);
  assert.equal(pair.client.error, undefined, String(pair.client.error?.error));
  assert.equal(pair.server.error, undefined, String(pair.server.error?.error));
  const info = pair.client.ofType('handshake')[0]!.info;
  assert.equal(info.cipherSuite, CipherSuite.TLS_AES_128_GCM_SHA256);
  assert.equal(info.group, NamedGroup.x25519);
  assert.equal(info.peerAuthorized, true);
  assert.equal((await transfer(pair, 'client', Buffer.from('ping'))).toString(), 'ping');
  assert.equal((await transfer(pair, 'server', Buffer.from('pong'))).toString(), 'pong');
});
