/**
 * The key server against hostile and broken clients, over real sockets on loopback (127.0.0.2
 * and 127.0.0.3 are distinct sources): the handshake deadline, the connection caps, the idle
 * timeout, and the log line that says why a client was dropped. Every suite has a deadline: a
 * connection the server fails to close must fail the test, not hang it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { KeylessClient } from '../../../src/keyless/client.js';
import { encodeMessage, FrameDecoder } from '../../../src/keyless/codec.js';
import { createPrivateKey } from 'node:crypto';
import { Opcode } from '../../../src/keyless/protocol.js';
import { encodeSignMessage } from '../../../src/keyless/sign-message.js';
import { computeSki, skiHex } from '../../../src/keyless/ski.js';
import { DEFAULT_MAX_QUEUED_BYTES_PER_CONNECTION, startKeyServer, type KeyServer, type KeyServerOptions } from '../../../src/keyless/server.js';
import { LOG_LINES_PER_WINDOW } from '../../../src/net/log-limiter.js';
import { metricSum as metric } from './metrics.js';
import { makeKeylessPki, type Identity, type KeylessPki } from './pki.js';
import { until } from './relay.js';

interface Line {
  readonly level: string;
  readonly message: string;
  readonly meta: Record<string, unknown>;
}

let pki: KeylessPki;
const servers: KeyServer[] = [];
const sockets: Socket[] = [];

before(() => {
  pki = makeKeylessPki(['p256', 'rsa2048']);
});
after(async () => {
  for (const s of sockets) s.destroy();
  await Promise.all(servers.map((s) => s.close()));
  pki.cleanup();
});

async function start(options: Partial<KeyServerOptions> = {}): Promise<{ ks: KeyServer; lines: Line[] }> {
  const lines: Line[] = [];
  const line = (level: string) => (message: string, meta: Record<string, unknown> = {}) => lines.push({ level, message, meta });
  const ks = await startKeyServer({
    keysDir: pki.keysDir,
    ca: pki.ca,
    cert: pki.server.cert,
    key: pki.server.key,
    host: '127.0.0.1',
    port: 0,
    logger: { info: line('info'), warn: line('warn'), error: line('error') },
    ...options,
  });
  servers.push(ks);
  return { ks, lines };
}

/** A TCP connection that says nothing; `closed` resolves with ms from connect to close. */
async function silent(port: number, localAddress = '127.0.0.1'): Promise<{ socket: Socket; closed: Promise<number>; isClosed: () => boolean }> {
  const socket = netConnect({ host: '127.0.0.1', port, localAddress });
  sockets.push(socket);
  socket.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const connectedAt = Date.now();
  let done = false;
  const closed = new Promise<number>((resolve) =>
    socket.once('close', () => {
      done = true;
      resolve(Date.now() - connectedAt);
    }),
  );
  return { socket, closed, isClosed: () => done };
}

/** A mutual-TLS connection from `localAddress` that answers a ping; resolves once the pong is back. */
async function pingFrom(port: number, localAddress: string, id: Identity = pki.client): Promise<TLSSocket> {
  const raw = netConnect({ host: '127.0.0.1', port, localAddress });
  const socket = tlsConnect({ socket: raw, host: '127.0.0.1', ca: pki.ca, cert: id.cert, key: id.key });
  sockets.push(raw);
  sockets.push(socket);
  const decoder = new FrameDecoder();
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', () => socket.write(encodeMessage(7, { opcode: Opcode.ping, payload: Uint8Array.of(1) })));
    socket.on('data', (chunk: Buffer) => {
      if (decoder.push(chunk).some((f) => f.header.id === 7)) resolve();
    });
    socket.once('error', reject);
    socket.once('close', () => reject(new Error('closed before the pong')));
  });
  return socket;
}

void describe('key server: connections that do not finish their handshake', { timeout: 15_000 }, () => {
  void it('closes silent connections at the handshake timeout, counts each, and logs a bounded number of lines', async () => {
    const { ks, lines } = await start({ handshakeTimeoutMs: 300 });
    const conns = await Promise.all(Array.from({ length: 25 }, () => silent(ks.port)));
    const after = await Promise.all(conns.map((c) => c.closed));
    for (const ms of after) assert.ok(ms >= 250 && ms < 3000, `closed after ${ms} ms`);
    await until('all counted', async () => (await metric(ks.registry, 'keyless_server_handshake_failures_total', { reason: 'timeout' })) === 25);
    const timeoutLines = lines.filter((l) => l.meta.reason === 'timeout');
    assert.equal(timeoutLines.length, LOG_LINES_PER_WINDOW, '25 timeouts, 10 lines');
    assert.match(timeoutLines[0]!.message, /handshake timeout/);
    assert.equal(await metric(ks.registry, 'keyless_server_connections'), 0);
  });

  void it('does not extend the deadline for a client that dribbles its ClientHello a byte at a time', async () => {
    const { ks } = await start({ handshakeTimeoutMs: 400 });
    const c = await silent(ks.port);
    // A handshake record header announcing 4 KiB, then one byte every 50 ms: TLS waits for the record.
    c.socket.write(Buffer.from([0x16, 0x03, 0x01, 0x10, 0x00]));
    const drip = setInterval(() => c.socket.write(Buffer.of(0)), 50);
    try {
      const ms = await c.closed;
      assert.ok(ms >= 350 && ms < 1500, `closed after ${ms} ms`);
    } finally {
      clearInterval(drip);
    }
  });
});

void describe('key server: connection caps', { timeout: 15_000 }, () => {
  void it('refuses the connection after the cap at accept, and admits again when one closes', async () => {
    const { ks, lines } = await start({ maxConnections: 3, handshakeTimeoutMs: 10_000 });
    const held = await Promise.all([silent(ks.port), silent(ks.port), silent(ks.port)]);
    await new Promise((r) => setTimeout(r, 50));
    const fourth = await silent(ks.port);
    const ms = await fourth.closed;
    assert.ok(ms < 1000, `the 4th was closed at once (${ms} ms), not at the handshake timeout`);
    assert.ok(held.every((c) => !c.isClosed()), 'the first three are still open');
    assert.equal(await metric(ks.registry, 'keyless_server_refused_connections_total', { reason: 'limit' }), 1);
    const refusal = lines.find((l) => l.meta.reason === 'limit');
    assert.ok(refusal, 'a log line for the refusal');
    assert.match(refusal.message, /connection refused: 3 connections open, the limit/);
    held[0]!.socket.destroy();
    await until('the server to see the close', async () => {
      const next = await silent(ks.port);
      await new Promise((r) => setTimeout(r, 50));
      return !next.isClosed();
    });
  });

  void it('refuses a source over its limit while another source still gets served', async () => {
    const { ks, lines } = await start({ maxConnectionsPerSource: 2, handshakeTimeoutMs: 10_000 });
    const held = await Promise.all([silent(ks.port, '127.0.0.2'), silent(ks.port, '127.0.0.2')]);
    await new Promise((r) => setTimeout(r, 50));
    const third = await silent(ks.port, '127.0.0.2');
    assert.ok((await third.closed) < 1000, 'the third from 127.0.0.2 was closed at once');
    await pingFrom(ks.port, '127.0.0.3');
    await pingFrom(ks.port, '127.0.0.3');
    assert.ok(held.every((c) => !c.isClosed()), 'the two from 127.0.0.2 are still open');
    assert.equal(await metric(ks.registry, 'keyless_server_refused_connections_total', { reason: 'source-limit' }), 1);
    const refusal = lines.find((l) => l.meta.reason === 'source-limit');
    assert.ok(refusal);
    assert.match(refusal.message, /2 connections open from 127\.0\.0\.2, the per-source limit/);
    assert.equal(refusal.meta.peer, '127.0.0.2');
  });
});

void describe('key server: idle connections', { timeout: 15_000 }, () => {
  void it('closes a connection that asks nothing after its handshake, keeps a busy one, and our client reconnects', async () => {
    const { ks } = await start({ idleTimeoutMs: 300 });
    const idle = await pingFrom(ks.port, '127.0.0.1');
    const pongAt = Date.now();
    const idleClosed = new Promise<number>((r) => idle.once('close', () => r(Date.now() - pongAt)));

    const busy = await pingFrom(ks.port, '127.0.0.1');
    let busyClosed = false;
    busy.once('close', () => (busyClosed = true));
    const decoder = new FrameDecoder();
    let pongs = 0;
    busy.on('data', (chunk: Buffer) => (pongs += decoder.push(chunk).length));
    for (let i = 0; i < 8; i++) {
      busy.write(encodeMessage(100 + i, { opcode: Opcode.ping }));
      await new Promise((r) => setTimeout(r, 100));
    }
    const ms = await idleClosed;
    assert.ok(ms >= 250 && ms < 2000, `the idle connection was closed after ${ms} ms`);
    assert.equal(busyClosed, false, 'a connection with a request every 100 ms stays open past 3 idle timeouts');
    assert.equal(pongs, 8);
    assert.equal(await metric(ks.registry, 'keyless_server_idle_timeouts_total'), 1);

    const client = new KeylessClient({ address: `127.0.0.1:${ks.port}`, ca: pki.ca, cert: pki.client.cert, key: pki.client.key, timeoutMs: 2000 });
    try {
      await client.ping();
      await until('the server to close the client connection', () => client.state !== 'connected', 3000);
      await client.ping();
    } finally {
      await client.close();
    }
  });
});

void describe('key server: why a client was dropped', { timeout: 15_000 }, () => {
  // Identities are looked up when the test runs: the PKI is made in before().
  const cases: Array<[string, () => Identity | undefined, string, RegExp, { subject: RegExp; issuer: RegExp } | undefined]> = [
    ['a client certificate from an unknown CA', () => pki.strangerClient, 'unknown-ca', /unknown CA/, { subject: /CN=stranger/, issuer: /CN=other-ca/ }],
    ['a client certificate for server authentication only', () => pki.serverOnlyClient, 'key-usage', /wrong key usage/, { subject: /CN=server-only/, issuer: /CN=ca/ }],
    ['no client certificate', () => undefined, 'no-certificate', /no client certificate/, undefined],
  ];
  for (const [what, identity, reason, why, names] of cases) {
    void it(`closes a client with ${what} before reading anything, logs ${reason} and counts it`, async () => {
      const id = identity();
      const { ks, lines } = await start();
      const socket = tlsConnect({ host: '127.0.0.1', port: ks.port, ca: pki.ca, ...(id ? { cert: id.cert, key: id.key } : {}) });
      sockets.push(socket);
      socket.on('error', () => {});
      let answered = false;
      socket.on('data', () => (answered = true));
      await new Promise<void>((resolve) => {
        socket.once('secureConnect', () => socket.write(encodeMessage(1, { opcode: Opcode.ping })));
        socket.once('close', () => resolve());
      });
      assert.equal(answered, false, 'the ping got no pong');
      await until('the log line', () => lines.some((l) => l.meta.reason === reason));
      const line = lines.find((l) => l.meta.reason === reason)!;
      assert.equal(line.level, 'warn');
      assert.match(line.message, /client dropped during the TLS handshake/);
      assert.match(line.message, why);
      assert.equal(line.meta.peer, '127.0.0.1');
      if (names) {
        assert.match(String(line.meta.subject), names.subject);
        assert.match(String(line.meta.issuer), names.issuer);
      }
      assert.equal(await metric(ks.registry, 'keyless_server_handshake_failures_total', { reason }), 1);
      assert.equal(await metric(ks.registry, 'keyless_server_connections'), 0);
    });
  }
});

void describe('key server: a client that does not read its answers', { timeout: 30_000 }, () => {
  /** A mutual-TLS connection that reads nothing until told; sends `frames`, then waits until nothing moves (bounded). */
  const floodWithoutReading = async (port: number, frames: Uint8Array[]): Promise<TLSSocket> => {
    const raw = netConnect({ host: '127.0.0.1', port });
    const socket = tlsConnect({ socket: raw, host: '127.0.0.1', ca: pki.ca, cert: pki.client.cert, key: pki.client.key });
    sockets.push(raw, socket);
    socket.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', resolve);
      socket.once('error', reject);
    });
    socket.pause(); // never reads: the server's answers pile up wherever the server lets them
    for (const frame of frames) socket.write(frame);
    // The client's own unsent bytes stop shrinking once the server stops reading.
    let last = -1;
    let still = 0;
    await until('the connection to stop moving', () => {
      const left = socket.writableLength;
      still = left === last ? still + 1 : 0;
      last = left;
      return still >= 30; // 300 ms without progress
    }, 20_000);
    return socket;
  };
  /** Reads again: resolves with the ids of the answers, once `count` came. */
  const readAll = (socket: TLSSocket, count: number): Promise<number[]> => {
    const decoder = new FrameDecoder();
    const ids: number[] = [];
    return new Promise((resolve) => {
      socket.on('data', (chunk: Buffer) => {
        for (const f of decoder.push(chunk)) ids.push(f.header.id);
        if (ids.length === count) resolve(ids);
      });
      socket.resume();
    });
  };
  /** The budget, plus what one read brought in and the answers to it. */
  const bound = DEFAULT_MAX_QUEUED_BYTES_PER_CONNECTION + 4 * 65_536;

  void it('holds at most the per-connection byte budget for 400 echoed 60 KiB pings, and answers everything once it reads', async () => {
    const { ks } = await start();
    const pings = 400;
    const payload = new Uint8Array(60_000).fill(7);
    const socket = await floodWithoutReading(ks.port, Array.from({ length: pings }, (_, i) => encodeMessage(1000 + i, { opcode: Opcode.ping, payload })));
    assert.ok(socket.writableLength > 0, 'the server stopped reading before the client had sent 24 MB');
    const held = await metric(ks.registry, 'keyless_server_queued_bytes');
    assert.ok(held <= bound, `${held} bytes held for a client that reads nothing`);

    // It reads again: every ping is answered, in order.
    assert.deepEqual(await readAll(socket, pings), Array.from({ length: pings }, (_, i) => 1000 + i));
    assert.equal(await metric(ks.registry, 'keyless_server_queued_bytes'), 0);
  });

  void it('holds at most the budget for 1,000 requests of 60 KiB waiting for a signing worker (not 1,000 × 60 KiB), and signs them all once read', async () => {
    // Signing on a worker is asynchronous: requests read faster than they are signed wait here
    // with their bodies, up to 1,024 of them, while their small answers never fill the write side.
    const { ks } = await start({ signingWorkers: 1, maxConcurrency: 1 });
    const ski = Buffer.from(skiHex(computeSki(createPrivateKey(pki.keys.rsa2048.key))), 'hex');
    const message = Buffer.concat([Buffer.alloc(64, 0x20), Buffer.alloc(60_000, 1)]);
    const count = 1000;
    const frames = Array.from({ length: count }, (_, i) => encodeMessage(5000 + i, { opcode: Opcode.signMessage, ski, payload: encodeSignMessage({ scheme: 0x0804, message }) }));
    const socket = await floodWithoutReading(ks.port, frames);
    const held = await metric(ks.registry, 'keyless_server_queued_bytes');
    assert.ok(held <= bound, `${held} bytes held for requests waiting to be signed`);
    assert.ok((await metric(ks.registry, 'keyless_server_read_pauses_total')) >= 1, 'reads paused over the budget');
    const ids = await readAll(socket, count);
    assert.equal(new Set(ids).size, count);
    assert.equal(await metric(ks.registry, 'keyless_server_requests_total', { result: 'ok' }), count);
  });
});

void describe('key server: connections per identity', { timeout: 15_000 }, () => {
  void it('refuses an identity over its connection cap after the handshake, logs and counts it, and serves another identity', async () => {
    // The identity comes from the authorizer (the in-cluster key server: the URI SAN); one client
    // certificate plays two identities here.
    let current = 'spiffe://cluster.local/ns/a/dc/www';
    const { ks, lines } = await start({
      maxConnectionsPerIdentity: 2,
      authorizer: { forPeer: () => ({ identity: current, admit: () => undefined, answered: () => undefined }) },
    });
    const first = await pingFrom(ks.port, '127.0.0.1');
    await pingFrom(ks.port, '127.0.0.2');
    await assert.rejects(pingFrom(ks.port, '127.0.0.3'), /closed before the pong/);
    assert.equal(await metric(ks.registry, 'keyless_server_refused_connections_total', { reason: 'identity-limit' }), 1);
    assert.ok(lines.some((l) => /2 connections open for identity spiffe:\/\/cluster\.local\/ns\/a\/dc\/www, the per-identity limit/.test(l.message)));
    current = 'spiffe://cluster.local/ns/b/dc/www';
    await pingFrom(ks.port, '127.0.0.3');
    // One of the first identity's connections closes: it may connect again.
    current = 'spiffe://cluster.local/ns/a/dc/www';
    first.destroy();
    await until('the server to see the close', async () => (await metric(ks.registry, 'keyless_server_connections')) === 2);
    await pingFrom(ks.port, '127.0.0.1');
  });
});
