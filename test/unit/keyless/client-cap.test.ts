/**
 * The keyless client's cap on requests per connection, against a real key server on loopback
 * behind a relay that can stop passing its answers on (a key server that stops answering while
 * its connection stays up: overloaded, paused, or behind a stalled network path), and pass them
 * on again.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Registry } from 'prom-client';
import { DEFAULT_MAX_IN_FLIGHT_PER_CONNECTION, DEFAULT_MAX_QUEUED_PER_CONNECTION, KeylessClient, type KeylessClientOptions } from '../../../src/keyless/client.js';
import { KeylessFormatError, KeylessOverloadedError, KeylessTimeoutError, KeylessUnavailableError } from '../../../src/keyless/errors.js';
import { Opcode, PAD_TO } from '../../../src/keyless/protocol.js';
import { DEFAULT_MAX_QUEUED_BYTES_PER_CONNECTION, startKeyServer, type KeyServer } from '../../../src/keyless/server.js';
import { classifyKeylessFailure } from '../../../src/sidecar/keyless-fallback.js';
import { makeKeylessPki, type KeylessPki } from './pki.js';
import { Relay, settled, timers, until } from './relay.js';

async function metric(registry: Registry, name: string): Promise<number> {
  const m = registry.getSingleMetric(name);
  assert.ok(m, `metric ${name}`);
  return (await m.get()).values.reduce((sum, v) => sum + v.value, 0);
}

/** The TLS sockets this process opens as a client (the keyless client's connections), as node announces them. */
const clientSockets: TLSSocket[] = [];
const onClientSocket = (message: unknown): void => {
  const { socket } = message as { socket: Socket };
  if (socket.constructor.name === 'TLSSocket') clientSockets.push(socket as TLSSocket);
};

/** Listeners on a socket, by event: requests must add none that outlive them. */
function listeners(socket: TLSSocket): Record<string, number> {
  return Object.fromEntries(socket.eventNames().map((e) => [String(e), socket.listenerCount(e)]));
}

void describe('keyless client: requests in flight per connection', { timeout: 30_000 }, () => {
  let pki: KeylessPki;
  let ks: KeyServer;
  const relays: Relay[] = [];
  const clients: KeylessClient[] = [];

  before(async () => {
    subscribe('net.client.socket', onClientSocket);
    pki = makeKeylessPki(['p256']);
    ks = await startKeyServer({ keysDir: pki.keysDir, ca: pki.ca, cert: pki.server.cert, key: pki.server.key, host: '127.0.0.1', port: 0 });
  });
  after(async () => {
    unsubscribe('net.client.socket', onClientSocket);
    for (const c of clients) await c.close();
    for (const r of relays) await r.close();
    await ks.close();
    pki.cleanup();
  });

  async function rig(options: Partial<KeylessClientOptions>): Promise<{ relay: Relay; client: KeylessClient }> {
    const relay = new Relay();
    relays.push(relay);
    await relay.start(ks.port);
    const client = new KeylessClient({ address: `127.0.0.1:${relay.port}`, ca: pki.ca, cert: pki.client.cert, key: pki.client.key, ...options });
    clients.push(client);
    await client.ping(); // connected, and the key server answered once
    return { relay, client };
  }

  void it("cannot hold more on one connection than our key server's per-connection budgets let it read", () => {
    // The server reads a connection while it holds less than its byte budget: the client's cap of
    // requests padded to PAD_TO fits inside it, and inside the server's own in-flight default (1,024).
    assert.ok(DEFAULT_MAX_IN_FLIGHT_PER_CONNECTION * PAD_TO <= DEFAULT_MAX_QUEUED_BYTES_PER_CONNECTION);
    assert.ok(DEFAULT_MAX_IN_FLIGHT_PER_CONNECTION <= 1024);
    assert.ok(DEFAULT_MAX_QUEUED_PER_CONNECTION > 0);
  });

  void it('sends at most the cap while the key server is silent, queues the next ones, refuses beyond the queue with a clear error, and sends the queue once answers come back', async () => {
    const socketsBefore = clientSockets.length;
    const { relay, client } = await rig({ maxInFlightPerConnection: 4, maxQueuedPerConnection: 3, timeoutMs: 10_000 });
    assert.equal(clientSockets.length, socketsBefore + 1, 'one connection');
    const socket = clientSockets.at(-1)!;
    const listenersBefore = listeners(socket);
    assert.ok((listenersBefore['data'] ?? 0) >= 1 && (listenersBefore['close'] ?? 0) >= 1, JSON.stringify(listenersBefore));
    const baseline = timers();
    const answeredBefore = await metric(ks.registry, 'keyless_server_requests_total');
    relay.hold();
    const requests = Array.from({ length: 7 }, () => settled(client.ping()));
    await until('the requests to reach the connection', () => client.inFlight + client.queued === 7);
    assert.equal(client.inFlight, 4, 'the cap');
    assert.equal(client.queued, 3, 'the rest wait in the queue');
    // The key server answered exactly what was sent: the cap held on the wire, not only in our books.
    await until('the key server to answer the 4 sent', async () => (await metric(ks.registry, 'keyless_server_requests_total')) === answeredBefore + 4);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(await metric(ks.registry, 'keyless_server_requests_total'), answeredBefore + 4, 'nothing beyond the cap reached the key server');

    const refusal = await settled(client.ping());
    assert.ok('error' in refusal && refusal.error instanceof KeylessOverloadedError, 'refused at once');
    assert.ok(refusal.error instanceof KeylessUnavailableError);
    // The sidecar's keyless fallback fails that one handshake and reports the key server as unreachable.
    assert.equal(classifyKeylessFailure(new Error('handshake failed', { cause: refusal.error })).kind, 'keyserver-unreachable');
    assert.match(
      (refusal.error as Error).message,
      /^key server 127\.0\.0\.1:\d+: ping refused without sending it: 4 requests are waiting for answers on this connection \(the cap, maxInFlightPerConnection\) and 3 more are queued \(maxQueuedPerConnection\); the key server answers slower than requests arrive$/,
    );

    relay.release();
    const results = await Promise.all(requests);
    for (const [i, r] of results.entries()) assert.ok('ok' in r && typeof r.ok === 'number', `request ${i} answered: ${'error' in r ? String(r.error) : ''}`);
    assert.equal(await metric(ks.registry, 'keyless_server_requests_total'), answeredBefore + 7);
    assert.equal(client.inFlight, 0);
    assert.equal(client.queued, 0);
    assert.equal(timers(), baseline, 'no request timer outlives its request');
    assert.deepEqual(listeners(socket), listenersBefore, 'no listener outlives its request');
    assert.equal(clientSockets.length, socketsBefore + 1, 'no other connection was opened');
    assert.equal(client.state, 'connected', 'the same connection serves on');
    assert.equal(typeof (await client.ping()), 'number');
  });

  void it('a silent key server: the sent requests time out and drop the connection, the queued ones fail with them, no timer is left, and the next request reconnects', async () => {
    const { relay, client } = await rig({ maxInFlightPerConnection: 2, maxQueuedPerConnection: 2, timeoutMs: 400, minBackoffMs: 10 });
    const baseline = timers();
    // "Nothing received since it was sent" is judged in ms: the first ping's answer must be older.
    await new Promise((r) => setTimeout(r, 20));
    relay.hold();
    const started = Date.now();
    // The two that queue get a later deadline than the two that are sent: with four equal deadlines
    // a loaded machine may fire a queued one's timer first (it then fails on its own deadline,
    // correctly, but not through the drop this test is about).
    const requests = Array.from({ length: 4 }, (_, i) => settled(client.ping(i < 2 ? {} : { timeoutMs: 2000 })));
    await until('the requests to reach the connection', () => client.inFlight + client.queued === 4);
    assert.equal(client.inFlight, 2);
    assert.equal(client.queued, 2);
    const results = await Promise.all(requests);
    const elapsed = Date.now() - started;
    // Deadlines of 400 ms: a hang would be unbounded, so a generous bound (a loaded CI machine
    // overran 1.5 s running the whole suite) still tells one from the other.
    assert.ok(elapsed < 5000, `every request ended by its deadline (${elapsed} ms)`);
    // The first sent request to time out with nothing received drops the connection: the others
    // (sent or queued) fail with it, or, retried on a new connection the silent path does not let
    // finish, at their deadline, naming the drop.
    const messages = results.map((r) => {
      assert.ok('error' in r && r.error instanceof KeylessUnavailableError, String('error' in r ? r.error : r.ok));
      return (r.error as Error).message;
    });
    assert.equal(messages.filter((m) => /^key server 127\.0\.0\.1:\d+ did not answer ping in time$/.test(m)).length, 1, messages.join('\n'));
    assert.equal(messages.filter((m) => /stopped answering; connection dropped/.test(m)).length, 3, messages.join('\n'));
    assert.equal(client.inFlight, 0);
    assert.equal(client.queued, 0);

    relay.release();
    assert.equal(typeof (await client.ping({ timeoutMs: 5000 })), 'number', 'answers again on a new connection');
    await until('no timer left of the failed requests and connection attempts', () => timers() <= baseline, 2000);
  });

  void it('a queued request that reaches its deadline before room is made is refused then, never sent', async () => {
    const { relay, client } = await rig({ maxInFlightPerConnection: 1, maxQueuedPerConnection: 4, timeoutMs: 5000 });
    const answeredBefore = await metric(ks.registry, 'keyless_server_requests_total');
    relay.hold();
    const first = settled(client.ping({ timeoutMs: 5000 }));
    await until('the first request to be sent', () => client.inFlight === 1);
    const queued = await settled(client.ping({ timeoutMs: 150 }));
    assert.ok('error' in queued && queued.error instanceof KeylessTimeoutError);
    assert.match((queued.error as Error).message, /did not answer ping in time: it was never sent, queued behind 1 unanswered requests \(maxInFlightPerConnection\)$/);
    assert.equal(client.queued, 0);
    relay.release();
    assert.ok('ok' in (await first));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(await metric(ks.registry, 'keyless_server_requests_total'), answeredBefore + 1, 'the timed-out one never reached the key server');
  });

  void it('a request too large to encode fails at once with the encoding error, alone, whether it would be sent or queued: the queue and the connection serve on', async () => {
    const socketsBefore = clientSockets.length;
    const { relay, client } = await rig({ maxInFlightPerConnection: 1, maxQueuedPerConnection: 2, timeoutMs: 5000 });
    const ski = new Uint8Array(20);
    const oversized = new Uint8Array(70_000); // one item holds at most 65,535 bytes
    const tooLarge = (e: unknown): boolean => e instanceof KeylessFormatError && /of 70000 bytes exceeds 65535/.test((e as Error).message);
    // Room under the cap: refused before anything is sent.
    await assert.rejects(client.sign(ski, Opcode.ecdsaSignSha256, oversized), tooLarge);
    relay.hold();
    const first = settled(client.ping());
    await until('the first request to be sent', () => client.inFlight === 1);
    const queued = settled(client.ping());
    await until('the second request to queue', () => client.queued === 1);
    // At the cap: refused at once too, not queued (so it cannot fail later, when sent, and take the others with it).
    const started = Date.now();
    const refused = await Promise.race([settled(client.sign(ski, Opcode.ecdsaSignSha256, oversized)), new Promise<'pending'>((r) => setTimeout(() => r('pending'), 1000))]);
    assert.ok(refused !== 'pending', 'the oversized request settles at once, not at its deadline nor never');
    assert.ok('error' in refused && tooLarge(refused.error), String('error' in refused ? refused.error : refused));
    assert.ok(Date.now() - started < 500);
    assert.equal(client.queued, 1, 'it took no place in the queue');
    relay.release();
    assert.ok('ok' in (await first), 'the request in flight is answered');
    const second = await queued;
    assert.ok('ok' in second, `the queued request is sent and answered: ${'error' in second ? String(second.error) : ''}`);
    assert.equal(client.state, 'connected');
    assert.equal(clientSockets.length, socketsBefore + 1, 'the connection was never dropped');
  });

  void it('a pool spreads requests over its connections by in-flight plus queued: N x (cap + queue) are accepted before the first refusal', async () => {
    const { relay, client } = await rig({ poolSize: 2, maxInFlightPerConnection: 2, maxQueuedPerConnection: 2, timeoutMs: 10_000 });
    // Both connections up before the load, so the spread is all that decides: a request made
    // while another is in flight on the only connection opens the second.
    for (let i = 0; i < 20 && relay.connections < 2; i++) {
      const inFlight = client.ping();
      await new Promise((r) => setImmediate(r));
      await Promise.all([inFlight, client.ping()]);
    }
    assert.equal(relay.connections, 2, 'both connections open');
    relay.hold();
    const requests = Array.from({ length: 8 }, () => settled(client.ping()));
    await until('the requests to reach the connections', () => client.inFlight + client.queued === 8);
    assert.equal(client.inFlight, 4, '2 in flight on each connection');
    assert.equal(client.queued, 4, '2 queued on each connection');
    const ninth = await settled(client.ping());
    assert.ok('error' in ninth && ninth.error instanceof KeylessOverloadedError, 'the 9th is refused');
    relay.release();
    for (const [i, r] of (await Promise.all(requests)).entries()) assert.ok('ok' in r, `request ${i} answered: ${'error' in r ? String(r.error) : ''}`);
  });
});
