/**
 * TLS 1.3 resumption with client authentication: a ticket resumes as authenticated only under the
 * client authentication configuration that issued it and while the client's certificate is still
 * valid; otherwise the server does a full handshake that verifies the client afresh.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { ClientConfig, ClientConnection } from '../../../src/tls/client.js';
import { ServerConfig, ServerConnection, type ServerOptions } from '../../../src/tls/server.js';
import { AlertDescription } from '../../../src/tls/alerts.js';
import { BadCertificate } from '../../../src/tls/errors.js';
import type { PeerCredentialHooks } from '../../../src/tls/credentials.js';
import type { TlsSession } from '../../../src/tls/session.js';
import { assertConnected, doHandshake, type Pair } from './pair.js';
import { testPki } from './pki.js';

const ticketKey = new Uint8Array(32).fill(0x42);

async function fixture() {
  const pki = await testPki();
  const server = await pki.leaf('p256');
  const client = await pki.leaf('p256', ['client.test'], 'client');
  const serverConfig = (extra: Partial<ServerOptions>) => new ServerConfig({ certificates: [{ cert: server.pem, key: server.key }], ticketKey, ...extra });
  const clientConfig = new ClientConfig({ servername: 'localhost', ca: [pki.ca.pem], certificates: [{ cert: client.pem, key: client.key }] });
  const clientNotAfter = new X509Certificate(client.pem).validToDate.getTime();
  return { pki, serverConfig, clientConfig, clientNotAfter };
}

function info(pair: Pair) {
  return pair.server.ofType('handshake')[0]!.info;
}

async function issueTicket(server: ServerConfig, client: ClientConfig): Promise<TlsSession> {
  const pair = await doHandshake(new ClientConnection(client), new ServerConnection(server));
  assertConnected(pair);
  const sessions = pair.client.ofType('session');
  assert.equal(sessions.length, 1);
  return sessions[0]!.session;
}

function resume(server: ServerConfig, client: ClientConfig, session: TlsSession): Promise<Pair> {
  return doHandshake(new ClientConnection(client, { session }), new ServerConnection(server));
}

void describe('a resumed TLS 1.3 session is authenticated only while the original client authentication still stands', () => {
  void test('same configuration (a new ServerConfig from equal options): resumes with the client certificate', async () => {
    const { pki, serverConfig, clientConfig } = await fixture();
    const session = await issueTicket(serverConfig({ requestCert: true, ca: [pki.ca.pem] }), clientConfig);
    const pair = await resume(serverConfig({ requestCert: true, ca: [pki.ca.pem] }), clientConfig, session);
    assertConnected(pair);
    assert.equal(info(pair).resumed, true);
    assert.equal(info(pair).peerAuthorized, true);
    assert.equal(info(pair).peerCertificates.length, 1);
  });

  void test('another CA set with the same ticket key: a full handshake that verifies the client again', async () => {
    const { pki, serverConfig, clientConfig } = await fixture();
    const session = await issueTicket(serverConfig({ requestCert: true, ca: [pki.ca.pem] }), clientConfig);
    const pair = await resume(serverConfig({ requestCert: true, ca: [pki.ca.pem, pki.otherCa.pem] }), clientConfig, session);
    assertConnected(pair);
    assert.equal(info(pair).resumed, false);
    assert.equal(info(pair).clientMode?.authentication, 'certificate', 'the client signed CertificateVerify');
    assert.equal(info(pair).peerAuthorized, true);
  });

  void test('a CA set that no longer trusts the client: not resumed, the full handshake refuses it with unknown_ca', async () => {
    const { pki, serverConfig, clientConfig } = await fixture();
    const session = await issueTicket(serverConfig({ requestCert: true, ca: [pki.ca.pem] }), clientConfig);
    const pair = await resume(serverConfig({ requestCert: true, ca: [pki.otherCa.pem] }), clientConfig, session);
    assert.equal(pair.server.ofType('handshake').length, 0, 'no connection');
    assert.equal(pair.server.error?.sentAlert, AlertDescription.unknown_ca);
  });

  void test('a client certificate that expired since the ticket was issued: not resumed, the full handshake refuses it', async () => {
    const { pki, serverConfig, clientConfig, clientNotAfter } = await fixture();
    let now = clientNotAfter - 3600_000;
    const server = serverConfig({ requestCert: true, ca: [pki.ca.pem], now: () => new Date(now) });
    const session = await issueTicket(server, clientConfig);
    now = clientNotAfter - 60_000;
    const before = await resume(server, clientConfig, session);
    assertConnected(before);
    assert.equal(info(before).resumed, true, 'still valid: resumes');
    now = clientNotAfter + 60_000;
    const after = await resume(server, clientConfig, session);
    assert.equal(after.server.ofType('handshake').length, 0, 'no connection');
    assert.equal(after.server.error?.sentAlert, AlertDescription.certificate_expired);
  });

  void test('a ticket issued on a resumed connection keeps the original certificate\'s validity', async () => {
    const { pki, serverConfig, clientConfig, clientNotAfter } = await fixture();
    let now = clientNotAfter - 3600_000;
    const server = serverConfig({ requestCert: true, ca: [pki.ca.pem], now: () => new Date(now) });
    const first = await issueTicket(server, clientConfig);
    now = clientNotAfter - 1800_000;
    const second = await resume(server, clientConfig, first);
    assertConnected(second);
    assert.equal(info(second).resumed, true);
    const fresh = second.client.ofType('session')[0]!.session;
    now = clientNotAfter + 60_000;
    const third = await resume(server, clientConfig, fresh);
    assert.equal(third.server.error?.sentAlert, AlertDescription.certificate_expired, 'the fresh ticket did not extend the certificate');
  });

  void test('a ticket issued without client authentication: a full handshake with a server that asks for certificates, even optionally', async () => {
    const { pki, serverConfig, clientConfig } = await fixture();
    const session = await issueTicket(serverConfig({}), clientConfig);
    for (const rejectUnauthorized of [true, false]) {
      const pair = await resume(serverConfig({ requestCert: true, rejectUnauthorized, ca: [pki.ca.pem] }), clientConfig, session);
      assertConnected(pair);
      assert.equal(info(pair).resumed, false, `rejectUnauthorized ${rejectUnauthorized}`);
      assert.equal(info(pair).peerAuthorized, true);
    }
  });

  void test('a ticket with a client certificate is not resumed by a server without client authentication (the same ticket key)', async () => {
    const { pki, serverConfig, clientConfig } = await fixture();
    const session = await issueTicket(serverConfig({ requestCert: true, ca: [pki.ca.pem] }), clientConfig);
    const pair = await resume(serverConfig({}), clientConfig, session);
    assertConnected(pair);
    assert.equal(info(pair).resumed, false);
    assert.equal(info(pair).peerCertificates.length, 0);
  });

  void test('optional client authentication, no certificate sent: resumes unauthenticated under the same configuration', async () => {
    const { pki, serverConfig } = await fixture();
    const anonymous = new ClientConfig({ servername: 'localhost', ca: [pki.ca.pem] });
    const options = { requestCert: true, rejectUnauthorized: false, ca: [pki.ca.pem] };
    const session = await issueTicket(serverConfig(options), anonymous);
    const pair = await resume(serverConfig(options), anonymous, session);
    assertConnected(pair);
    assert.equal(info(pair).resumed, true);
    assert.equal(info(pair).peerAuthorized, false);
    assert.equal(info(pair).peerCertificates.length, 0);
  });

  void describe('client credential hooks (functions the digest cannot cover): sessionIdContext', () => {
    const allow: PeerCredentialHooks = { offer: [], acceptLeaf: () => undefined };
    const deny: PeerCredentialHooks = {
      offer: [],
      acceptLeaf: () => {
        throw new BadCertificate('policy: this client is revoked');
      },
    };

    void test('two servers with one ticket key and different hooks, no sessionIdContext: the other server does not resume the ticket, its hook refuses the client', async () => {
      const { pki, serverConfig, clientConfig } = await fixture();
      const session = await issueTicket(serverConfig({ requestCert: true, ca: [pki.ca.pem], clientCredentialHooks: allow }), clientConfig);
      const pair = await resume(serverConfig({ requestCert: true, ca: [pki.ca.pem], clientCredentialHooks: deny }), clientConfig, session);
      assert.equal(pair.server.ofType('handshake').length, 0, 'the deny hook was bypassed by resumption');
      assert.equal(pair.server.error?.sentAlert, AlertDescription.bad_certificate);
    });

    void test('hooks without sessionIdContext: the ticket resumes on the same ServerConfig only (a random context per config)', async () => {
      const { pki, serverConfig, clientConfig } = await fixture();
      const options = { requestCert: true, ca: [pki.ca.pem], clientCredentialHooks: allow };
      const config = serverConfig(options);
      const session = await issueTicket(config, clientConfig);
      const same = await resume(config, clientConfig, session);
      assertConnected(same);
      assert.equal(info(same).resumed, true);
      assert.equal(info(same).peerAuthorized, true);
      const other = await resume(serverConfig(options), clientConfig, session);
      assertConnected(other);
      assert.equal(info(other).resumed, false);
    });

    void test('the same sessionIdContext (string or bytes) resumes across configs; another one does not', async () => {
      const { pki, serverConfig, clientConfig } = await fixture();
      const options = { requestCert: true, ca: [pki.ca.pem], clientCredentialHooks: allow };
      const session = await issueTicket(serverConfig({ ...options, sessionIdContext: 'tenant-a' }), clientConfig);
      const same = await resume(serverConfig({ ...options, sessionIdContext: Buffer.from('tenant-a') }), clientConfig, session);
      assertConnected(same);
      assert.equal(info(same).resumed, true);
      assert.equal(info(same).peerAuthorized, true);
      const other = await resume(serverConfig({ ...options, sessionIdContext: 'tenant-b' }), clientConfig, session);
      assertConnected(other);
      assert.equal(info(other).resumed, false);
    });
  });
});
