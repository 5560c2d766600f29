import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { after, describe, it } from 'node:test';
import { proxyToUpstream, splice, type ProxyEnd } from '../../../src/sidecar/proxy.js';

const servers: Server[] = [];
const sockets: Socket[] = [];
after(() => {
  for (const s of servers) s.close();
  for (const s of sockets) s.destroy();
});

async function listening(handler: (s: Socket) => void): Promise<number> {
  const server = createServer({ allowHalfOpen: true }, (s) => {
    sockets.push(s);
    handler(s);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

/** A front server that proxies every connection to `upstreamPort`; `ends` collects the outcomes. */
async function proxy(upstreamPort: number, idleTimeoutMs = 10_000): Promise<{ port: number; ends: ProxyEnd[] }> {
  const ends: ProxyEnd[] = [];
  const port = await listening((s) => {
    void proxyToUpstream(s, { host: '127.0.0.1', port: upstreamPort, idleTimeoutMs }).then((e) => ends.push(e));
  });
  return { port, ends };
}

function dial(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1', allowHalfOpen: true }, () => resolve(s));
    sockets.push(s);
    s.once('error', reject);
  });
}

/** A connection to `port` whose 'connect' has come. */
async function connected(port: number): Promise<Socket> {
  const s = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  sockets.push(s);
  await new Promise((r) => s.once('connect', r));
  return s;
}

/**
 * A client stream that sent `request` and ended its side (close_notify or FIN), and whose writes
 * complete only when `complete` says so: a peer reading slowly, or one that stopped reading.
 */
function halfClosedClient(request: string, complete: (done: () => void) => void): { client: Duplex; received: Buffer[] } {
  const received: Buffer[] = [];
  const client = new Duplex({
    allowHalfOpen: true,
    read() {},
    write(chunk: Buffer, _encoding, done) {
      complete(() => {
        received.push(chunk);
        done();
      });
    },
  });
  client.push(request);
  client.push(null);
  return { client, received };
}

function readAll(s: Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  return new Promise((resolve, reject) => {
    s.on('data', (c: Buffer) => chunks.push(c));
    s.once('end', () => resolve(Buffer.concat(chunks)));
    s.once('error', reject);
  });
}

/** The peer closed its side (FIN: 'end' on our allowHalfOpen socket) or the socket closed. */
function gone(s: Socket): Promise<void> {
  return new Promise((r) => {
    s.once('end', () => r());
    s.once('close', () => r());
  });
}

async function until(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

void describe('TCP proxy to the application', () => {
  void it('passes the client half-close to the application and still delivers the reply', async () => {
    // The application answers only after the client finished sending: needs half-close.
    const upstream = await listening((s) => {
      void readAll(s).then((body) => s.end(`got ${body.length} bytes: ${body.toString()}`));
    });
    const { port } = await proxy(upstream);
    const client = await dial(port);
    const reply = readAll(client);
    client.end('request body');
    assert.equal((await reply).toString(), 'got 12 bytes: request body');
  });

  void it('passes the application half-close to the client while the client keeps sending', async () => {
    let received: Promise<Buffer> | undefined;
    const upstream = await listening((s) => {
      received = readAll(s);
      s.end('greeting, then I stop writing');
    });
    const { port } = await proxy(upstream);
    const client = await dial(port);
    const fromApp = await readAll(client);
    assert.equal(fromApp.toString(), 'greeting, then I stop writing');
    assert.equal(client.writable, true, 'the client may still write after the application ended');
    client.end('late data');
    await until('the upstream to connect', () => received !== undefined);
    assert.equal((await received!).toString(), 'late data');
  });

  void it('applies backpressure: a client that does not read stops the application, and nothing is lost', async () => {
    const total = 32 * 1024 * 1024;
    const payload = randomBytes(total);
    let written = 0;
    const upstream = await listening((s) => {
      const chunk = 64 * 1024;
      const pump = (): void => {
        while (written < total) {
          const ok = s.write(payload.subarray(written, written + chunk));
          written += chunk;
          if (!ok) {
            s.once('drain', pump);
            return;
          }
        }
        s.end();
      };
      pump();
    });
    const { port } = await proxy(upstream);
    const client = await dial(port);
    client.pause();
    await new Promise((r) => setTimeout(r, 500));
    // Kernel buffers on two loopback connections plus the streams' high-water marks: a few MiB, not 32.
    assert.ok(written < total / 2, `the application wrote ${written} of ${total} bytes to a client that reads nothing`);
    const got = readAll(client);
    client.resume();
    const body = await got;
    assert.equal(body.length, total);
    assert.equal(createHash('sha256').update(body).digest('hex'), createHash('sha256').update(payload).digest('hex'));
  });

  void it('closes both sides after the idle timeout', async () => {
    let upstreamClosed = false;
    const upstream = await listening((s) => {
      void gone(s).then(() => (upstreamClosed = true));
      s.resume();
    });
    const { port, ends } = await proxy(upstream, 150);
    const client = await dial(port);
    const closed = gone(client);
    client.on('error', () => {});
    client.write('one message, then silence');
    await closed;
    await until('the proxy to finish', () => ends.length === 1);
    assert.equal(ends[0]!.kind, 'idle-timeout');
    await until('the upstream side to close', () => upstreamClosed);
  });

  void it('keeps a pair with traffic in one direction only open past the idle timeout, either direction', async () => {
    // The idle clock is the application socket's own timeout: bytes either way restart it.
    for (const direction of ['to the client', 'to the application'] as const) {
      let app: Socket | undefined;
      const upstream = await listening((s) => {
        app = s;
        s.resume();
      });
      const { port, ends } = await proxy(upstream, 150);
      const client = await dial(port);
      client.on('error', () => {});
      client.resume();
      const closed = gone(client);
      await until('the upstream to connect', () => app !== undefined);
      const started = Date.now();
      // 600 ms of one message every 40 ms, four times the idle timeout.
      while (Date.now() - started < 600) {
        if (direction === 'to the client') app!.write('tick');
        else client.write('tick');
        await new Promise((r) => setTimeout(r, 40));
      }
      assert.equal(ends.length, 0, `traffic ${direction} kept the pair open`);
      assert.ok(!client.destroyed && !app!.destroyed);
      await closed; // then silence: the idle timeout closes it
      await until('the proxy to finish', () => ends.length === 1);
      assert.equal(ends[0]!.kind, 'idle-timeout');
    }
  });

  void it('closes a half-closed client that stopped reading after the application answered and closed', async () => {
    // The application socket's timer (the idle clock) is gone once it closed; the client's
    // 'finish' never comes while its peer is not reading.
    const app = await listening((s) => {
      s.resume();
      s.on('end', () => s.end('reply'));
    });
    const upstream = await connected(app);
    const { client } = halfClosedClient('request', () => {}); // never completes
    const started = Date.now();
    const outcome = await Promise.race([splice(client, upstream, 300), new Promise<'held'>((r) => setTimeout(() => r('held'), 3000).unref())]);
    if (outcome === 'held') assert.fail(`the pair is still held after 3 s (client destroyed: ${client.destroyed}, ${client.writableLength} bytes queued for it)`);
    assert.equal(outcome.kind, 'idle-timeout');
    assert.ok(upstream.destroyed && client.destroyed);
    assert.ok(Date.now() - started < 2000, `closed after ${Date.now() - started} ms, idle timeout 300 ms`);
  });

  void it('lets a slow but reading client take everything the application sent before it closed', async () => {
    // Five pieces reach the client at once; each write takes 150 ms, 750 ms in all after the
    // application closed, well past the 200 ms idle timeout, but every period sees progress.
    const pieces = ['one,', 'two,', 'three,', 'four,', 'five'];
    const app = await listening((s) => {
      s.resume();
      s.on('end', () => {
        void (async () => {
          for (const piece of pieces) {
            s.write(piece);
            await new Promise((r) => setTimeout(r, 10));
          }
          s.end();
        })();
      });
    });
    const upstream = await connected(app);
    let upstreamClosedAt = 0;
    upstream.on('close', () => (upstreamClosedAt = Date.now()));
    const { client, received } = halfClosedClient('request', (done) => setTimeout(done, 150));
    const outcome = await splice(client, upstream, 200);
    assert.equal(outcome.kind, 'closed');
    assert.equal(Buffer.concat(received).toString(), pieces.join(''));
    assert.ok(Date.now() - upstreamClosedAt > 200, 'the client was still being written after the application closed');
  });

  void it('closes the application connection once the half-closed client connection is cut', async () => {
    const upstream = await listening((s) => s.resume()); // reads, never ends its side
    let front: Socket | undefined;
    let finished: ProxyEnd | undefined;
    const port = await listening((s) => {
      front = s;
      void proxyToUpstream(s, { host: '127.0.0.1', port: upstream, idleTimeoutMs: 60_000 }).then((e) => (finished = e));
    });
    const client = await dial(port);
    client.on('error', () => {});
    client.end('bye');
    await until('the half-close to arrive', () => front?.readableEnded === true);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(finished, undefined, 'a half-closed pair stays open');
    front!.destroy(); // e.g. the drain deadline
    await until('the pair to close, application side included', () => finished !== undefined);
  });

  void it('closes the application connection at once when the client went away while it was being opened', async () => {
    let appClosed = false;
    const upstream = await listening((s) => {
      s.resume();
      void gone(s).then(() => (appClosed = true)); // FIN or close
    });
    let finished: ProxyEnd | undefined;
    const port = await listening((s) => {
      s.on('error', () => {});
      s.destroy(); // gone before the proxy attaches to it (its 'close' is emitted before the splice)
      void proxyToUpstream(s, { host: '127.0.0.1', port: upstream, idleTimeoutMs: 60_000 }).then((e) => (finished = e));
    });
    const client = await dial(port);
    client.on('error', () => {});
    await until('the proxy to finish', () => finished !== undefined, 2000);
    await until('the application connection to close', () => appClosed, 2000);
  });

  void it('closes the client when the application is not listening', async () => {
    const dead = await listening(() => {});
    servers.pop()!.close();
    await new Promise((r) => setTimeout(r, 20));
    const { port, ends } = await proxy(dead);
    const client = await dial(port);
    client.on('error', () => {});
    await gone(client);
    await until('the proxy to finish', () => ends.length === 1);
    assert.equal(ends[0]!.kind, 'upstream-unavailable');
  });

  void it('tears down the client when the application resets its connection', async () => {
    const upstream = await listening((s) => {
      s.once('data', () => s.resetAndDestroy());
    });
    const { port, ends } = await proxy(upstream);
    const client = await dial(port);
    client.on('error', () => {});
    const closed = gone(client);
    client.write('boom');
    await closed;
    await until('the proxy to finish', () => ends.length === 1);
    assert.equal(ends[0]!.kind, 'error');
  });
});
