/**
 * The TLSSocket adapter over loopback, our client against our server: events, getters,
 * backpressure with a large transfer, half-close on close_notify, sessions, timeouts.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import { connect, createServer, type CreateServerOptions, type TLSServer, type TLSSocket } from '../../../src/tls/socket.js';
import type { TlsSession } from '../../../src/tls/session.js';
import { createKeySigner, type Signer } from '../../../src/tls/signer.js';
import { testPki } from './pki.js';

async function startServer(extra: Partial<CreateServerOptions> = {}, onSecure?: (s: TLSSocket) => void): Promise<{ server: TLSServer; port: number }> {
  const pki = await testPki();
  const leaf = await pki.leaf('p256');
  const server = createServer({ cert: leaf.pem, key: leaf.keyPem, alpnProtocols: ['h2', 'http/1.1'], ...extra }, (s) => {
    s.on('error', () => undefined);
    if (onSecure) onSecure(s);
    else s.pipe(s); // echo
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port };
}

async function ca(): Promise<string[]> {
  return [(await testPki()).ca.pem];
}

function close(server: TLSServer): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

void describe('TLSSocket over loopback', () => {
  void test('connects, reports what was negotiated and echoes data', async () => {
    const { server, port } = await startServer();
    const client = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: await ca(), alpnProtocols: ['http/1.1'] });
    await once(client, 'secureConnect');
    assert.equal(client.alpnProtocol, 'http/1.1');
    assert.equal(client.getProtocol(), 'TLSv1.3');
    assert.equal(client.getCipher()?.name, 'TLS_AES_128_GCM_SHA256');
    assert.equal(client.authorized, true);
    assert.match(client.peerCertificate?.subject ?? '', /CN=localhost/);
    assert.equal(client.handshakeMode?.server.authentication, 'certificate');
    client.write('ping');
    const [data] = (await once(client, 'data')) as [Buffer];
    assert.equal(data.toString(), 'ping');
    client.end();
    await once(client, 'close');
    await close(server);
  });

  void test('moves 8 MiB through an echo server with backpressure on both sides', async () => {
    const { server, port } = await startServer();
    const client = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: await ca() });
    await once(client, 'secureConnect');
    const total = 8 << 20;
    const chunk = Buffer.alloc(64 * 1024, 0x5a);
    let received = 0;
    const done = new Promise<void>((resolve) => {
      client.on('data', (d: Buffer) => {
        received += d.length;
        if (received >= total) resolve();
      });
    });
    for (let sent = 0; sent < total; sent += chunk.length) {
      if (!client.write(chunk)) await once(client, 'drain');
    }
    await done;
    assert.equal(received, total);
    client.end();
    await once(client, 'close');
    await close(server);
  });

  void test('ending the client sends close_notify: the server sees end and can still answer', async () => {
    const { server, port } = await startServer({}, (s) => {
      const parts: Buffer[] = [];
      s.on('data', (d: Buffer) => parts.push(d));
      s.on('end', () => s.end(`got ${Buffer.concat(parts).length} bytes`));
    });
    const client = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: await ca() }, () => {
      client.end('0123456789');
    });
    const closed = once(client, 'close');
    const parts: Buffer[] = [];
    client.on('data', (d: Buffer) => parts.push(d));
    await once(client, 'end');
    assert.equal(Buffer.concat(parts).toString(), 'got 10 bytes');
    await closed;
    await close(server);
  });

  void test('a session from the first connection resumes the second', async () => {
    const { server, port } = await startServer();
    const trust = await ca();
    const first = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: trust });
    const [session] = (await once(first, 'session')) as [TlsSession];
    first.end();
    await once(first, 'close');
    const second = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: trust, session });
    await once(second, 'secureConnect');
    assert.equal(second.isSessionReused(), true);
    assert.equal(second.handshakeMode?.server.authentication, 'psk');
    second.end();
    await once(second, 'close');
    await close(server);
  });

  void test('a client that refuses the certificate gets an error and the server a tlsClientError', async () => {
    const { server, port } = await startServer();
    const trust = await ca();
    const clientError = new Promise<Error>((resolve) => {
      const client = connect({ host: '127.0.0.1', port, servername: 'wrong.test', ca: trust });
      client.on('error', resolve);
    });
    const [serverError] = (await Promise.all([once(server, 'tlsClientError'), clientError])) as [[Error], Error];
    assert.match(String((await clientError).message), /not valid for "wrong.test"/);
    assert.match(serverError[0].message, /bad_certificate/);
    await close(server);
  });

  void test('keylog lines arrive on both the client socket and the server', async () => {
    const { server, port } = await startServer();
    const serverLines: string[] = [];
    server.on('keylog', (line: Buffer) => serverLines.push(line.toString()));
    const client = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: await ca() });
    const clientLines: string[] = [];
    client.on('keylog', (line: Buffer) => clientLines.push(line.toString()));
    await once(client, 'secureConnect');
    client.end();
    await once(client, 'close');
    assert.equal(clientLines.length, 5);
    assert.ok(clientLines.every((l) => l.endsWith('\n')));
    assert.deepEqual([...serverLines].sort(), [...clientLines].sort());
    await close(server);
  });

  void test('a server whose signer answers asynchronously (a remote key server) serves over loopback', async () => {
    const pki = await testPki();
    const leaf = await pki.leaf('p256');
    const local = createKeySigner(leaf.key);
    const remote: Signer = {
      schemes: local.schemes,
      sign: (scheme, message) => new Promise((resolve) => setTimeout(() => resolve(local.sign(scheme, message) as Uint8Array), 30)),
    };
    const { server, port } = await startServer({ cert: leaf.pem, key: remote });
    const client = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: await ca() });
    const closed = once(client, 'close');
    await once(client, 'secureConnect');
    client.end('x');
    await closed;
    await close(server);
  });

  void test('a peer that never completes the handshake is dropped after handshakeTimeout', async () => {
    const { server, port } = await startServer({ handshakeTimeout: 100 });
    const raw = net.connect({ host: '127.0.0.1', port });
    raw.on('error', () => undefined);
    const started = Date.now();
    await once(raw, 'close');
    assert.ok(Date.now() - started < 5000);
    await close(server);
  });
});
