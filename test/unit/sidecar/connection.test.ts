/**
 * The states of our engine's connection object (src/sidecar/connection.ts) that the terminator's
 * end-to-end tests do not reach on purpose: plaintext and an end that arrive while the
 * application is still being connected, a client that leaves then, an application that is not
 * there or resets, a bug in a step (logged, the process and the next client unharmed), the
 * records of one socket read going to the application in one write, and the listener's
 * `settled()` counting connections to their end. Real sockets on loopback; a sans-IO client where
 * the test needs its bytes in one write.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect as netConnect, createServer, Socket as NetSocket, type AddressInfo, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { MaterialStore } from '../../../src/sidecar/material.js';
import { SidecarMetrics } from '../../../src/sidecar/metrics.js';
import { createOursEngine } from '../../../src/sidecar/ours-engine.js';
import { ConnectionTracker } from '../../../src/net/connection-tracker.js';
import { SidecarStatus } from '../../../src/sidecar/status.js';
import { listen, type Listener, type TerminatorOptions } from '../../../src/sidecar/terminator.js';
import { ClientConnection } from '../../../src/tls/client.js';
import type { Progress } from '../../../src/tls/connection.js';
import { nativeAead } from '../../../src/tls/native/aead.js';
import { credentialFiles, makePki, memoryStore, type TestPki } from './fixtures.js';

const quiet = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} };

const closers: Array<() => void> = [];
after(() => {
  for (const c of closers.splice(0)) c();
});

async function until(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** An application on loopback; `handler` gets each connection. */
async function application(handler: (s: Socket) => void): Promise<{ server: Server; port: number }> {
  const server = createServer({ allowHalfOpen: true }, (s) => {
    closers.push(() => s.destroy());
    s.on('error', () => {});
    handler(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => server.close());
  return { server, port: (server.address() as AddressInfo).port };
}

/** A port nothing listens on (a server opened and closed). */
async function deadPort(): Promise<number> {
  const { server, port } = await application(() => {});
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

interface Logged {
  level: string;
  message: string;
  meta: Record<string, unknown> | undefined;
}

/**
 * A sans-IO TLS 1.3 client over a plain socket: after its handshake, `whenReady` returns what it
 * sends with its Finished (in the same TCP write); what the sidecar relays back is collected.
 */
function sansIoClient(pki: TestPki, port: number, whenReady: (client: ClientConnection) => void, after?: (socket: Socket) => void): { socket: Socket; fromApp: () => string; ended: () => boolean } {
  const client = new ClientConnection({ servername: 'localhost', ca: [pki.ca.pem] });
  const socket = netConnect({ host: '127.0.0.1', port, allowHalfOpen: true });
  socket.on('error', () => {});
  // Half-open only while the test keeps writing: the sidecar's FIN ends the client too.
  socket.on('end', () => socket.end());
  let fromApp = '';
  let ended = false;
  const apply = (p: Progress): void => {
    let handshook = false;
    for (const e of p.events) {
      if (e.type === 'handshake') handshook = true;
      else if (e.type === 'data') fromApp += Buffer.from(e.data).toString();
      else if (e.type === 'end') ended = true;
      else if (e.type === 'error') assert.fail(e.error.message);
    }
    if (!handshook) {
      for (const out of p.output) socket.write(out);
      return;
    }
    // The Finished, then what the test sends with it: one write.
    whenReady(client);
    socket.write(Buffer.concat([...p.output, ...client.poll().output]));
    after?.(socket);
  };
  socket.on('data', (chunk: Buffer) => apply(client.feed(chunk)));
  apply(client.poll());
  return { socket, fromApp: () => fromApp, ended: () => ended };
}

void describe('the connection object (our engine)', () => {
  let pki: TestPki;
  let store: MaterialStore;

  before(async () => {
    pki = await makePki();
    store = memoryStore(await credentialFiles(pki, { algorithms: ['ed25519'], certificateKey: true }));
  });

  async function rig(upstreamPort: number, opts: { log?: TerminatorOptions['log']; store?: MaterialStore } = {}): Promise<{ listener: Listener; metrics: SidecarMetrics }> {
    const metrics = new SidecarMetrics(store, new SidecarStatus());
    const tracker = new ConnectionTracker(100, 0);
    const listener = await listen('127.0.0.1', 0, {
      store: opts.store ?? store,
      metrics,
      tracker,
      policy: { certificateEngine: 'ours', keylessFor: undefined },
      upstream: { host: '127.0.0.1', port: upstreamPort, idleTimeoutMs: 10_000, connectTimeoutMs: 2000 },
      handshakeTimeoutMs: 5000,
      ours: createOursEngine({ store, keylessFor: undefined }),
      log: opts.log ?? quiet,
    });
    closers.push(() => {
      listener.stopAccepting();
      void tracker.drain(new Date());
    });
    return { listener, metrics };
  }

  void it('data, close_notify and FIN sent with the Finished (held while the application is connected) reach it in order, and the reply comes back', async () => {
    const app = await application((s) => {
      let body = '';
      s.on('data', (c: Buffer) => (body += c.toString()));
      s.on('end', () => s.end(`got ${JSON.stringify(body)} then FIN`));
    });
    const r = await rig(app.port);
    const c = sansIoClient(
      pki,
      r.listener.port,
      (client) => {
        client.write(Buffer.from('first '));
        client.write(Buffer.from('second'));
        client.close();
      },
      (socket) => socket.end(),
    );
    await until('the reply and close_notify', () => c.ended());
    assert.equal(c.fromApp(), 'got "first second" then FIN');
    await until('the client socket to close', () => c.socket.destroyed);
  });

  void it('a client that sends its request and resets at once: an application connection opened for it is closed at once, not at the idle timeout', async () => {
    const appSockets: Socket[] = [];
    const closedAt: number[] = [];
    const app = await application((s) => {
      appSockets.push(s);
      s.resume();
      // The sidecar closing it: a FIN (an 'end' for this half-open server) or a reset.
      let seen = false;
      const gone = (): void => {
        if (!seen) closedAt.push(Date.now());
        seen = true;
      };
      s.on('end', gone);
      s.on('close', gone);
    });
    const r = await rig(app.port);
    for (let i = 0; i < 10; i++) {
      const c = sansIoClient(
        pki,
        r.listener.port,
        (client) => client.write(Buffer.from('GET / HTTP/1.1\r\n\r\n')),
        (socket) => socket.resetAndDestroy(),
      );
      await until('the client socket to close', () => c.socket.destroyed);
    }
    // The reset may reach the sidecar before its request (no application connection then), while
    // the application connection is being opened, or after: whichever, none is held.
    const started = Date.now();
    await r.listener.settled();
    await until('every application connection to be closed by the sidecar', () => closedAt.length === appSockets.length, 3000);
    assert.ok(Date.now() - started < 3000, `settled after ${Date.now() - started} ms (idle timeout 10 s)`);
  });

  void it('an application that is not listening: the client is closed, the error counted and logged at warn', async () => {
    const logged: Logged[] = [];
    const log = { ...quiet, warn: (message: string, meta?: Record<string, unknown>) => void logged.push({ level: 'warn', message, meta }) };
    const r = await rig(await deadPort(), { log });
    const c = sansIoClient(pki, r.listener.port, (client) => client.write(Buffer.from('hello')));
    await until('the client socket to close', () => c.socket.destroyed || c.ended());
    await r.listener.settled();
    assert.equal(await r.metrics.value('dc_sidecar_upstream_errors_total'), 1);
    assert.equal(await r.metrics.value('dc_sidecar_handshakes_total', { mode: 'certificate', engine: 'ours', result: 'success' }), 1, 'the handshake succeeded first');
    assert.equal(logged.length, 1);
    assert.equal(logged[0]!.message, 'the application is not reachable');
    assert.match(String(logged[0]!.meta?.['upstream']), /^127\.0\.0\.1:\d+$/);
  });

  void it('an application that resets mid-relay: both sides torn down, the upstream error counted once', async () => {
    const app = await application((s) => {
      s.once('data', () => s.resetAndDestroy());
    });
    const r = await rig(app.port);
    const c = sansIoClient(pki, r.listener.port, (client) => client.write(Buffer.from('anything')));
    await until('the client socket to close', () => c.socket.destroyed || c.ended());
    await r.listener.settled();
    assert.equal(await r.metrics.value('dc_sidecar_upstream_errors_total'), 1);
  });

  void it('a bug in a step is logged as "connection handler failed" and closes that client only; the next one is served', async () => {
    const app = await application((s) => {
      s.once('data', (d: Buffer) => s.end(`echo ${d.toString()}`));
    });
    let broken = true;
    // The routing step reads the store: a store that throws stands for any bug there.
    const flaky = new Proxy(store, {
      get(target, key, receiver) {
        if (key === 'current' && broken) throw new Error('a bug in routing');
        return Reflect.get(target, key, receiver) as unknown;
      },
    });
    const errors: Logged[] = [];
    const log = { ...quiet, error: (message: string, meta?: Record<string, unknown>) => void errors.push({ level: 'error', message, meta }) };
    const r = await rig(app.port, { log, store: flaky });
    const first = sansIoClient(pki, r.listener.port, () => {});
    await until('the first client socket to close', () => first.socket.destroyed);
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.message, 'connection handler failed');
    assert.match(String(errors[0]!.meta?.['error']), /a bug in routing/);
    broken = false;
    const second = sansIoClient(pki, r.listener.port, (client) => client.write(Buffer.from('still here')));
    await until('the second reply', () => second.ended());
    assert.equal(second.fromApp(), 'echo still here');
    second.socket.end();
    await r.listener.settled();
  });

  void it('a refused connection is counted once: not again as "closed" when its socket closes', async () => {
    const app = await application(() => {});
    const r = await rig(app.port);
    const sends = [
      Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), // bad-hello
      Buffer.from([0x16, 0x03, 0x01]), // then FIN, in the peek: 'closed' (an 'end' and a 'close' follow)
    ];
    for (const bytes of sends) {
      const s = netConnect({ host: '127.0.0.1', port: r.listener.port });
      s.on('error', () => {});
      s.end(bytes);
      s.resume();
      await new Promise((resolve) => s.once('close', resolve));
    }
    await r.listener.settled();
    assert.equal(await r.metrics.value('dc_sidecar_refused_connections_total', { reason: 'bad-hello' }), 1);
    assert.equal(await r.metrics.value('dc_sidecar_refused_connections_total', { reason: 'closed' }), 1);
  });

  void it('a bug while reporting a failed handshake is logged; the process lives and the slot is released', async () => {
    const app = await application(() => {});
    const errors: Logged[] = [];
    const log = {
      ...quiet,
      debug: (message: string) => {
        if (message === 'handshake failed') throw new Error('a bug in failure reporting');
      },
      error: (message: string, meta?: Record<string, unknown>) => void errors.push({ level: 'error', message, meta }),
    };
    const r = await rig(app.port, { log });
    // A whole ClientHello, then FIN: the handshake fails with the client gone.
    const hello = new ClientConnection({ servername: 'localhost', ca: [pki.ca.pem] });
    const first = Buffer.concat(hello.poll().output.map((b) => Buffer.from(b)));
    const s = netConnect({ host: '127.0.0.1', port: r.listener.port });
    s.on('error', () => {});
    s.end(first);
    s.resume();
    await new Promise((resolve) => s.once('close', resolve));
    await r.listener.settled();
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.message, 'connection handler failed');
    assert.match(String(errors[0]!.meta?.['error']), /a bug in failure reporting/);
  });

  void it('the records of one socket read reach the application in one write (native AEAD: opened end to end), intact', async () => {
    const data = randomBytes(3 * 16384);
    let received = Buffer.alloc(0);
    let appPort = 0;
    const app = await application((s) => {
      s.on('data', (c: Buffer) => (received = Buffer.concat([received, c])));
    });
    appPort = app.port;
    // The sidecar's writes to the application's socket, counted where node takes them.
    const writes: number[] = [];
    const write = NetSocket.prototype.write;
    NetSocket.prototype.write = function (this: NetSocket, ...args: Parameters<NetSocket['write']>): boolean {
      if (this.remotePort === appPort && Buffer.isBuffer(args[0])) writes.push(args[0].length);
      return write.apply(this, args);
    } as NetSocket['write'];
    try {
      const r = await rig(app.port);
      // Three full records after the Finished, in one TCP write of ~49 KB: one read on loopback.
      const c = sansIoClient(pki, r.listener.port, (client) => client.write(data));
      await until('all the data at the application', () => received.length === data.length);
      assert.ok(received.equals(data));
      if (nativeAead()) assert.ok(writes.length < 3, `${writes.length} writes for 3 records (${writes.join(', ')} bytes)`);
      c.socket.destroy();
    } finally {
      NetSocket.prototype.write = write;
    }
  });

  void it('settled() waits for a proxied connection until both its sockets have closed', async () => {
    let appSocket: Socket | undefined;
    const app = await application((s) => {
      appSocket = s;
      s.resume();
      s.on('end', () => s.end());
    });
    const r = await rig(app.port);
    const c = sansIoClient(pki, r.listener.port, (client) => client.write(Buffer.from('open')));
    await until('the application connection', () => appSocket !== undefined);
    let settled = false;
    void r.listener.settled().then(() => (settled = true));
    await new Promise((res) => setTimeout(res, 100));
    assert.equal(settled, false, 'a connection is still relaying');
    c.socket.destroy();
    await until('settled', () => settled);
    assert.ok(appSocket!.destroyed || appSocket!.readableEnded, 'the application connection was closed with it');
  });
});
