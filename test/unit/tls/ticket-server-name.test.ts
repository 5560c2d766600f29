/**
 * A client may send a host_name longer than a ticket's one length byte (RFC 6066 allows up to
 * 2^16-1; a DNS name is at most 253): it gets a handshake and no ticket, not an internal_error
 * after its Finished. TLS 1.3 and TLS 1.2.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ClientConnection } from '../../../src/tls/client.js';
import { ServerConnection } from '../../../src/tls/server.js';
import { MAX_TICKET_SERVER_NAME } from '../../../src/tls/session.js';
import { assertConnected, doHandshake } from './pair.js';
import { testPki } from './pki.js';

void describe('a server name longer than a ticket carries', () => {
  for (const maxVersion of ['TLSv1.3', 'TLSv1.2'] as const) {
    void test(`${maxVersion}: connects, no ticket, no error`, async () => {
      const pki = await testPki();
      const leaf = await pki.leaf('p256');
      const long = `${'a'.repeat(60)}.`.repeat(5).slice(0, MAX_TICKET_SERVER_NAME + 1);
      const pair = await doHandshake(
        new ClientConnection({ servername: long, ca: [pki.ca.pem], rejectUnauthorized: false, minVersion: 'TLSv1.2', maxVersion }),
        new ServerConnection({ certificates: [{ cert: leaf.pem, key: leaf.key }] }),
      );
      assertConnected(pair);
      const sessions = pair.client.ofType('session');
      assert.equal(sessions.length, 0, 'no resumable session offered');
    });
  }
});
