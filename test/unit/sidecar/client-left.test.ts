/**
 * Clients that end or leave right after the handshake, on both engines, against a real sidecar.
 * A half-close is passed on to the application as a half-close (a FIN it reads), whenever it
 * comes, and the other direction keeps flowing: a client that sends nothing, half-closes and reads
 * to the end gets everything a server-speaks-first application sends. On the node:tls engine a
 * client that leaves mid-handshake (its Finished and FIN together) is released at once, not at
 * the handshake deadline.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { runSidecar, type RunningSidecar } from '../../../src/sidecar/main.js';
import { delegatedCredentialPeerHooks } from '../../../src/tls/delegated/index.js';
import { connect as oursConnect } from '../../../src/tls/socket.js';
import { credentialFiles, loopbackSidecarConfig, makePki, type TestPki } from './fixtures.js';
import { KubeletVolume } from './kubelet-volume.js';

const quiet = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} };

/** An application that reads everything and never ends its side (allowHalfOpen): its open connections. */
async function application(): Promise<{ server: Server; port: number; open: Set<Socket>; accepted: Socket[]; received: () => string }> {
  const open = new Set<Socket>();
  const accepted: Socket[] = [];
  let received = '';
  const server = createServer({ allowHalfOpen: true }, (s) => {
    open.add(s);
    accepted.push(s);
    s.on('close', () => open.delete(s));
    s.on('error', () => {});
    s.on('data', (c: Buffer) => (received += c.toString()));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port, open, accepted, received: () => received };
}

async function until(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function openGauge(sidecar: RunningSidecar): Promise<string | undefined> {
  return (await sidecar.metrics.registry.metrics()).split('\n').find((l) => l.startsWith('dc_sidecar_open_connections '));
}

/** An application that speaks first: a line at once, another and its end 300 ms later. */
async function speaksFirst(): Promise<{ server: Server; port: number; open: Set<Socket> }> {
  const open = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (s) => {
    open.add(s);
    s.on('close', () => open.delete(s));
    s.on('error', () => {});
    s.resume();
    s.write('hello\n');
    setTimeout(() => {
      if (!s.destroyed) s.end('world\n');
    }, 300);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port, open };
}

type Engine = 'node' | 'ours';

/** A client on `engine`'s path: node:tls (routed to the node:tls engine) or ours offering DC. */
function dialer(engine: Engine, pki: TestPki, port: number, onSecure: (c: { destroy(): void; end(data?: string): void }) => void) {
  return engine === 'node'
    ? tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ca: pki.ca.pem, maxVersion: 'TLSv1.3' }, function (this: { destroy(): void; end(): void }) {
        onSecure(this);
      })
    : oursConnect({ host: '127.0.0.1', port, servername: 'localhost', ca: [pki.ca.pem], serverCredentialHooks: delegatedCredentialPeerHooks({ peer: 'server' }) }, function (this: { destroy(): void; end(): void }) {
        onSecure(this);
      });
}

void describe('sidecar: clients that leave right after the handshake', () => {
  let pki: TestPki;
  let dir: string;
  before(async () => {
    pki = await makePki('ecdsa-p256');
    dir = await mkdtemp(join(tmpdir(), 'client-left-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function start(app: { port: number }, name: string): Promise<RunningSidecar> {
    const vol = new KubeletVolume(join(dir, name));
    await vol.write({ ...(await credentialFiles(pki, { certificateKey: true })), fallback: 'CertificateKey' });
    const config = loopbackSidecarConfig(vol.dir, app.port, { 'report-interval': '0', 'warm-up-handshakes': '0', 'warm-up-connections': '0' });
    return runSidecar({ ...config, log: quiet });
  }

  void it('node: clients that leave right after the handshake are released within 2 s, not at the handshake deadline', async () => {
    const app = await application();
    const sidecar = await start(app, 'leave-node');
    try {
      for (let i = 0; i < 10; i++) {
        await new Promise<void>((resolve) => {
          const c = dialer('node', pki, sidecar.port, (s) => {
            s.destroy();
            resolve();
          });
          c.on('error', () => resolve());
        });
      }
      await until('the tracker to empty', () => sidecar.tracker.size === 0, 2000);
      assert.equal(await openGauge(sidecar), 'dc_sidecar_open_connections 0');
    } finally {
      await sidecar.close();
      for (const s of app.open) s.destroy();
      app.server.close();
    }
  });

  for (const engine of ['node', 'ours'] as const) {
    void it(`${engine}: a client that half-closes right after the handshake, having sent nothing, has its half-close passed on`, async () => {
      const app = await application();
      const sidecar = await start(app, `end-${engine}`);
      const clients: Array<{ destroy(): void }> = [];
      try {
        for (let i = 0; i < 5; i++) {
          await new Promise<void>((resolve) => {
            const c = dialer(engine, pki, sidecar.port, (s) => {
              s.end();
              resolve();
            });
            clients.push(c);
            c.on('error', () => resolve());
          });
        }
        await until('the application to accept every connection', () => app.accepted.length === 5, 2000);
        await until('the application to read every end', () => app.accepted.every((s) => s.readableEnded), 2000);
      } finally {
        for (const c of clients) c.destroy();
        await sidecar.close();
        for (const s of app.open) s.destroy();
        app.server.close();
      }
    });

    void it(`${engine}: a client that sends nothing, half-closes and reads gets all a server-speaks-first application says`, async () => {
      const app = await speaksFirst();
      const sidecar = await start(app, `first-${engine}`);
      try {
        let got = '';
        const how = await new Promise<string>((resolve) => {
          const c = dialer(engine, pki, sidecar.port, (s) => s.end()) as unknown as { on(e: string, f: (x?: unknown) => void): void; destroy(): void };
          c.on('data', (d) => (got += String(d)));
          c.on('end', () => resolve('end'));
          c.on('error', (e) => resolve(`error ${(e as Error).message}`));
          setTimeout(() => {
            resolve('timeout');
            c.destroy();
          }, 5000);
        });
        assert.deepEqual({ got, how }, { got: 'hello\nworld\n', how: 'end' });
      } finally {
        await sidecar.close();
        for (const s of app.open) s.destroy();
        app.server.close();
      }
    });

    void it(`${engine}: a client that half-closes after its request keeps its pair open for the reply, until close()`, async () => {
      const app = await application();
      const sidecar = await start(app, `close-${engine}`);
      try {
        const client = dialer(engine, pki, sidecar.port, (s) => s.end('request'));
        client.on('error', () => {});
        await until('the request to reach the application', () => app.received() === 'request', 2000);
        await new Promise((r) => setTimeout(r, 100));
        assert.equal(app.open.size, 1, 'the pair of a half-closed client stays open for its reply');
        assert.equal(sidecar.tracker.size, 1);
        assert.equal([...app.open][0]!.readableEnded, true, "the client's half-close reached the application");
        await sidecar.close();
        await until('close() to release the connection', () => sidecar.tracker.size === 0, 2000);
        assert.equal(await openGauge(sidecar), 'dc_sidecar_open_connections 0');
        client.destroy();
      } finally {
        await sidecar.close();
        for (const s of app.open) s.destroy();
        app.server.close();
      }
    });
  }
});
