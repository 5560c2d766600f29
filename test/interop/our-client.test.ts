/**
 * Our TLS 1.3 client against real servers: `openssl s_server` (separate processes) and a
 * node:tls server (OpenSSL), over loopback.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import * as nodeTls from 'node:tls';
import { connect, type ConnectOptions, type TLSSocket } from '../../src/tls/socket.js';
import { NamedGroup } from '../../src/tls/constants.js';
import type { TlsSession } from '../../src/tls/session.js';
import { GROUPS, SUITES, httpGet, killAll, makePki, startOpensslServer, type Pki, type Proc } from './support.js';

function ours(options: ConnectOptions): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', servername: 'localhost', ...options }, () => resolve(s));
    s.once('error', reject);
  });
}

function readAll(s: TLSSocket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.once('end', () => resolve(Buffer.concat(chunks)));
    s.once('error', reject);
  });
}

/** Reads until `n` bytes arrived. */
function readBytes(s: TLSSocket, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const onData = (c: Buffer): void => {
      chunks.push(c);
      got += c.length;
      if (got >= n) {
        s.off('data', onData);
        resolve(Buffer.concat(chunks));
      }
    };
    s.on('data', onData);
    s.once('error', reject);
  });
}

const T = { timeout: 60_000 };

void describe('our client with openssl s_server and node:tls servers', () => {
  let pki: Pki;
  let www: { proc: Proc; port: number };
  let verify: { proc: Proc; port: number };
  let hrrServer: { proc: Proc; port: number };
  let node: nodeTls.Server;
  let nodePort: number;
  let ca: string[];
  before(async () => {
    pki = await makePki();
    ca = [pki.caPem];
    const common = ['-tls1_3', '-cert', pki.serverCrt, '-key', pki.serverKey, '-ciphersuites', SUITES.map((s) => s.name).join(':'), '-groups', 'X25519:P-256:P-384'];
    www = await startOpensslServer([...common, '-www', '-alpn', 'http/1.1,h2']);
    verify = await startOpensslServer([...common, '-www', '-Verify', '1', '-CAfile', pki.caCrt]);
    hrrServer = await startOpensslServer(['-tls1_3', '-cert', pki.serverCrt, '-key', pki.serverKey, '-groups', 'P-384', '-www']);
    node = nodeTls.createServer({ cert: pki.serverPem, key: pki.serverKeyPem, minVersion: 'TLSv1.3', ALPNProtocols: ['h2', 'http/1.1'], ecdhCurve: 'X25519:P-256:P-384' }, (s) => {
      s.on('error', () => undefined);
      s.on('data', (d: Buffer) => {
        if (d.subarray(0, 4).toString('latin1') === 'GET ') {
          // (getEphemeralKeyInfo() is null on a server socket: the group is checked on our side.)
          s.end(`${s.getCipher().standardName} alpn=${s.alpnProtocol || '-'} resumed=${s.isSessionReused() ? 'yes' : 'no'}\n`);
        } else s.write(d);
      });
      s.on('end', () => s.end());
    });
    await new Promise<void>((res) => node.listen(0, '127.0.0.1', res));
    nodePort = (node.address() as AddressInfo).port;
  });
  after(async () => {
    killAll();
    await new Promise<void>((res) => (node ? node.close(() => res()) : res()));
    pki?.cleanup();
  });

  void it('completes every suite x group against openssl s_server -www and a node:tls server', T, async () => {
    const failures: string[] = [];
    for (const suite of SUITES) {
      for (const group of GROUPS) {
        const opts = { ca, cipherSuites: [suite.id], groups: [group.id], keyShareGroups: [group.id] };
        try {
          const s = await ours({ ...opts, port: www.port });
          assert.equal(s.handshakeInfo!.cipherSuite, suite.id);
          assert.equal(s.handshakeInfo!.group, group.id);
          assert.equal(s.handshakeInfo!.helloRetryRequest, false);
          assert.equal(s.authorized, true);
          s.write(httpGet());
          const page = (await readAll(s)).toString('latin1');
          // s_server -www describes the connection from its side.
          if (!page.includes(`New, TLSv1.3, Cipher is ${suite.name}`)) failures.push(`s_server ${suite.name} ${group.name}: ${page.slice(0, 400)}`);
        } catch (e) {
          failures.push(`s_server ${suite.name} ${group.name}: ${(e as Error).message}`);
        }
        try {
          const s = await ours({ ...opts, port: nodePort });
          assert.equal(s.handshakeInfo!.group, group.id);
          assert.equal(s.handshakeInfo!.helloRetryRequest, false);
          s.write(httpGet());
          const line = (await readAll(s)).toString('latin1');
          if (line !== `${suite.name} alpn=- resumed=no\n`) failures.push(`node:tls ${suite.name} ${group.name}: ${line}`);
        } catch (e) {
          failures.push(`node:tls ${suite.name} ${group.name}: ${(e as Error).message}`);
        }
      }
    }
    assert.deepEqual(failures, []);
  });

  void it('retries after a HelloRetryRequest from s_server (P-384 only) and from node:tls (ecdhCurve P-384)', T, async () => {
    const s = await ours({ ca, port: hrrServer.port });
    assert.equal(s.handshakeInfo!.helloRetryRequest, true);
    assert.equal(s.handshakeInfo!.group, NamedGroup.secp384r1);
    s.write(httpGet());
    assert.match((await readAll(s)).toString('latin1'), /New, TLSv1\.3/);

    const only384 = nodeTls.createServer({ cert: pki.serverPem, key: pki.serverKeyPem, minVersion: 'TLSv1.3', ecdhCurve: 'P-384' }, (c) => c.end('ok\n'));
    await new Promise<void>((res) => only384.listen(0, '127.0.0.1', res));
    try {
      const n = await ours({ ca, port: (only384.address() as AddressInfo).port });
      assert.equal(n.handshakeInfo!.helloRetryRequest, true);
      assert.equal((await readAll(n)).toString(), 'ok\n');
    } finally {
      only384.close();
    }
  });

  void it('negotiates ALPN with s_server -alpn and node:tls', T, async () => {
    const a = await ours({ ca, port: www.port, alpnProtocols: ['h2'] });
    assert.equal(a.alpnProtocol, 'h2');
    a.destroy();
    const b = await ours({ ca, port: nodePort, alpnProtocols: ['http/1.1'] });
    assert.equal(b.alpnProtocol, 'http/1.1');
    b.write(httpGet());
    assert.match((await readAll(b)).toString(), / alpn=http\/1\.1 /);
  });

  void it('requests a KeyUpdate from s_server and from node:tls, and keeps exchanging data under the new keys', T, async () => {
    const s = await ours({ ca, port: www.port });
    s.keyUpdate(true);
    s.write(httpGet());
    assert.match((await readAll(s)).toString('latin1'), /New, TLSv1\.3/);

    const n = await ours({ ca, port: nodePort });
    for (let i = 0; i < 3; i++) {
      n.keyUpdate(i % 2 === 0);
      n.write(`round ${i}\n`);
      assert.equal((await readBytes(n, 8)).toString(), `round ${i}\n`);
    }
    n.end();
  });

  void it('sends and receives 1 MiB through node:tls (echo) and s_server (-rev)', T, async () => {
    const payload = Buffer.alloc(1 << 20);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 13 + (i >> 10)) & 0xff;
    const n = await ours({ ca, port: nodePort });
    const back = readAll(n);
    n.end(payload);
    assert.ok((await back).equals(payload));

    // s_server -rev reverses each line it reads and sends it back.
    const rev = await startOpensslServer(['-tls1_3', '-cert', pki.serverCrt, '-key', pki.serverKey, '-rev']);
    const line = Buffer.from('abcdefghijklmnopqrstuvwxyz'.repeat(39) + 'abcdefghi\n'); // 1024 bytes
    const lines = Buffer.concat(Array.from({ length: 1024 }, () => line));
    const s = await ours({ ca, port: rev.port });
    const got = readBytes(s, lines.length);
    s.write(lines);
    const reversed = Buffer.from('ihgfedcba' + 'zyxwvutsrqponmlkjihgfedcba'.repeat(39) + '\n');
    const answer = await got;
    assert.equal(answer.length, lines.length);
    assert.ok(answer.equals(Buffer.concat(Array.from({ length: 1024 }, () => reversed))));
    s.destroy();
    await rev.proc.stop();
  });

  void it('resumes with a ticket from s_server and from node:tls', T, async () => {
    for (const port of [www.port, nodePort]) {
      const a = connect({ host: '127.0.0.1', servername: 'localhost', ca, port });
      const session = await new Promise<TlsSession>((res, rej) => {
        a.once('session', res);
        a.once('error', rej);
      });
      a.write(httpGet());
      await readAll(a);
      const b = await ours({ ca, port, session });
      assert.equal(b.isSessionReused(), true, `port ${port}`);
      b.write(httpGet());
      const text = (await readAll(b)).toString('latin1');
      assert.match(text, port === www.port ? /Reused, TLSv1\.3/ : / resumed=yes/);
    }
  });

  void it('presents a client certificate to s_server -Verify, which fails without one', T, async () => {
    const s = await ours({ ca, port: verify.port, certificates: [{ cert: pki.clientPem, key: pki.clientKeyPem }] });
    s.write(httpGet());
    const page = (await readAll(s)).toString('latin1');
    assert.match(page, /CN ?= ?interop-client/, page.slice(0, 2000));
    await assert.rejects(async () => {
      const t = await ours({ ca, port: verify.port });
      t.write(httpGet());
      await readAll(t);
    }, /certificate|alert|closed|reset/i);
  });
});
