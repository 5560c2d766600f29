/**
 * TLS 1.2 (src/tls/tls12): our client and server in memory. Suites of both AEAD families with
 * both key types, tickets, the downgrade sentinel, exporters, and what 1.2 leaves out.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ClientConnection, type ClientOptions } from '../../../src/tls/client.js';
import { ServerConnection, type ServerOptions } from '../../../src/tls/server.js';
import { CipherSuite, NamedGroup, SignatureScheme } from '../../../src/tls/constants.js';
import { createKeySigner, type Signer } from '../../../src/tls/signer.js';
import { doHandshake, transfer, type Pair } from './pair.js';
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

function assertConnected(pair: Pair): void {
  assert.equal(pair.client.error, undefined, `client: ${String(pair.client.error?.error)}`);
  assert.equal(pair.server.error, undefined, `server: ${String(pair.server.error?.error)}`);
  assert.equal(pair.client.ofType('handshake').length, 1);
  assert.equal(pair.server.ofType('handshake').length, 1);
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
        const pair = await connect12({}, { tls12CipherSuites: [suite], groups: [group] }, keyType);
        assertConnected(pair);
        assert.equal(info(pair.client).version, 'TLSv1.2');
        assert.equal(info(pair.server).cipherSuite, suite);
        assert.equal(info(pair.server).group, group);
        assert.equal((await transfer(pair, 'client', Buffer.from('ping'))).toString(), 'ping');
        assert.equal((await transfer(pair, 'server', Buffer.alloc(40000, 7))).length, 40000);
        const a = pair.client.conn.exportKeyingMaterial('EXPORTER-test', 32);
        assert.deepEqual(a, pair.server.conn.exportKeyingMaterial('EXPORTER-test', 32));
      });
    }
  }
});
