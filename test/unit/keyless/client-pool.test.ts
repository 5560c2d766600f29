/**
 * The keyless client's pool of connections, against a real key server on loopback (behind a relay
 * that can hold the key server's bytes, cut a connection and refuse new ones): how a burst made
 * before any connection is up spreads over the pool, where requests go when one connection fails
 * while another is healthy, and what close() does to requests still waiting for a connection.
 * Fakes would hide all three: each depends on when real TLS connections come up, fail and close.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { KeylessClient, type KeylessClientOptions } from '../../../src/keyless/client.js';
import { KeylessClosedError, KeylessConfigError, KeylessOverloadedError, KeylessUnavailableError } from '../../../src/keyless/errors.js';
import { startKeyServer, type KeyServer } from '../../../src/keyless/server.js';
import { makeKeylessPki, type KeylessPki } from './pki.js';
import { Relay, settled, timers, until } from './relay.js';

type Settled = { ok: number } | { error: unknown };

function failures(results: readonly Settled[]): string[] {
  return results.flatMap((r, i) => ('error' in r ? [`request ${i}: ${String(r.error)}`] : []));
}

void describe('keyless client: the pool of connections', { timeout: 60_000 }, () => {
  let pki: KeylessPki;
  let ks: KeyServer;
  const relays: Relay[] = [];
  const clients: KeylessClient[] = [];

  before(async () => {
    pki = makeKeylessPki(['p256']);
    ks = await startKeyServer({ keysDir: pki.keysDir, ca: pki.ca, cert: pki.server.cert, key: pki.server.key, host: '127.0.0.1', port: 0 });
  });
  after(async () => {
    for (const c of clients) await c.close();
    for (const r of relays) await r.close();
    await ks.close();
    pki.cleanup();
  });

  async function relayed(): Promise<Relay> {
    const relay = new Relay();
    relays.push(relay);
    await relay.start(ks.port);
    return relay;
  }

  function clientVia(relay: Relay, options: Partial<KeylessClientOptions>): KeylessClient {
    const client = new KeylessClient({ address: `127.0.0.1:${relay.port}`, ca: pki.ca, cert: pki.client.cert, key: pki.client.key, ...options });
    clients.push(client);
    return client;
  }

  /** Both connections of a pool of two up and answering (a request made while another is in flight opens the second). */
  async function bothConnected(relay: Relay, client: KeylessClient): Promise<void> {
    for (let i = 0; i < 20 && relay.connections < 2; i++) {
      const inFlight = client.ping();
      await new Promise((r) => setImmediate(r));
      await Promise.all([inFlight, client.ping()]);
    }
    assert.equal(relay.connections, 2, 'both connections open');
    // Each has answered: a later failure is a lost connection, not a refused attempt.
    await Promise.all(Array.from({ length: 8 }, () => client.ping()));
  }

  void it('a burst made before any connection is up, beyond one connection\'s cap and queue (default caps), spreads over the pool: every request is answered', async () => {
    const relay = await relayed();
    const client = clientVia(relay, { poolSize: 2, timeoutMs: 20_000 });
    const serials = new Set<number>();
    // 128 in flight + 1,024 queued is what one connection takes: 1,500 needs both.
    const results = await Promise.all(Array.from({ length: 1500 }, () => settled(client.ping({ answeredOn: (s) => serials.add(s) }))));
    assert.deepEqual(failures(results), [], 'no request refused or lost');
    assert.equal(serials.size, 2, 'both connections answered');
    assert.equal(relay.accepted, 2, 'one connection per slot, no more');
  });

  void it('a cold burst opens the connections it needs and is refused only beyond what the whole pool holds (slots x (cap + queue))', async () => {
    const relay = await relayed();
    const client = clientVia(relay, { poolSize: 4, maxInFlightPerConnection: 2, maxQueuedPerConnection: 2, timeoutMs: 10_000 });
    const requests = Array.from({ length: 17 }, () => settled(client.ping()));
    const results = await Promise.all(requests);
    const refused = results.filter((r) => 'error' in r);
    assert.equal(refused.length, 1, failures(results).join('\n'));
    const last = results.at(-1)!;
    assert.ok('error' in last && last.error instanceof KeylessOverloadedError, `the 17th is the one refused: ${failures(results).join('\n')}`);
    assert.match((last.error as Error).message, /4 connections/);
    assert.equal(relay.accepted, 4, 'every slot connected once');
    assert.equal(client.inFlight + client.queued, 0);
  });

  void it('requests waiting for a connection are sent in the order they were made', async () => {
    const relay = await relayed();
    const client = clientVia(relay, { poolSize: 1, maxInFlightPerConnection: 1, maxQueuedPerConnection: 8, timeoutMs: 10_000 });
    const order: number[] = [];
    await Promise.all(Array.from({ length: 9 }, (_, i) => client.ping().then(() => order.push(i))));
    assert.deepEqual(order, [0, 1, 2, 3, 4, 5, 6, 7, 8]);
  });

  void it('requests waiting for a second connection whose attempt fails go to the healthy first one, not to their deadline', async () => {
    const relay = await relayed();
    const client = clientVia(relay, { poolSize: 2, maxInFlightPerConnection: 1, maxQueuedPerConnection: 4, timeoutMs: 3000 });
    await client.ping();
    assert.equal(relay.connections, 1);
    relay.refuseNew = true; // the second connection's attempt fails
    const started = Date.now();
    const results = await Promise.all(Array.from({ length: 3 }, () => settled(client.ping())));
    const elapsed = Date.now() - started;
    assert.deepEqual(failures(results), []);
    assert.ok(elapsed < 2000, `answered on the first connection, not at the 3 s deadline (${elapsed} ms)`);
    assert.ok(relay.accepted >= 2, 'the second connection was tried');
    assert.equal(client.state, 'connected');
  });

  void it('a lost connection\'s requests, sent and queued, move to the healthy connection while the lost one cannot reconnect', async () => {
    const relay = await relayed();
    const client = clientVia(relay, { poolSize: 2, maxInFlightPerConnection: 1, maxQueuedPerConnection: 4, timeoutMs: 3000 });
    await bothConnected(relay, client);
    relay.hold();
    const started = Date.now();
    const requests = Array.from({ length: 4 }, () => settled(client.ping()));
    await until('the requests to reach both connections', () => client.inFlight === 2 && client.queued === 2);
    relay.refuseNew = true;
    relay.cut(1);
    await until('the lost connection to be noticed', () => relay.connections === 1);
    relay.release();
    const results = await Promise.all(requests);
    const elapsed = Date.now() - started;
    assert.deepEqual(failures(results), [], 'every request answered');
    assert.ok(elapsed < 2500, `answered on the healthy connection, not at the 3 s deadline (${elapsed} ms)`);
    assert.equal(relay.connections, 1);
  });

  void it('a request waiting for room while every connection is at its cap and another is still connecting times out saying it was never sent', async () => {
    const relay = await relayed();
    const client = clientVia(relay, { poolSize: 2, maxInFlightPerConnection: 1, maxQueuedPerConnection: 4, timeoutMs: 5000 });
    await client.ping();
    relay.hold(); // the first connection's answers and the second one's handshake stay in the relay
    const first = settled(client.ping());
    await until('the first request to be sent', () => client.inFlight === 1);
    const waiting = await settled(client.ping({ timeoutMs: 200 }));
    assert.ok('error' in waiting, 'timed out');
    assert.match(
      (waiting.error as Error).message,
      /^key server 127\.0\.0\.1:\d+ did not answer ping in time: it was never sent, waiting with 0 others for room under the pool's in-flight caps \(1 requests unanswered, 0 queued\)$/,
    );
    assert.equal(relay.connections, 2, 'the second connection was on its way');
    relay.release();
    assert.ok('ok' in (await first));
  });

  void it('client credentials node:tls cannot load: KeylessConfigError when the client is made, naming the option to fix, never a request retried with backoff', () => {
    const base = { address: `127.0.0.1:${ks.port}`, ca: pki.ca, cert: pki.client.cert, key: pki.client.key };
    const cases: [string, Partial<KeylessClientOptions>, RegExp][] = [
      ['a key that is no key', { key: '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n' }, /the client key \(KeylessClientOptions\.key\) cannot be loaded; give the PEM private key/],
      ['not PEM at all', { key: 'not a key' }, /the client key \(KeylessClientOptions\.key\) cannot be loaded/],
      ['a certificate that is no certificate', { cert: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' }, /the client certificate \(KeylessClientOptions\.cert\) cannot be loaded/],
      ['the key of another certificate', { key: pki.server.key }, /the client certificate and key \(KeylessClientOptions\.cert, \.key\) do not go together/],
    ];
    for (const [name, bad, message] of cases) {
      assert.throws(
        () => new KeylessClient({ ...base, ...bad }),
        (err: unknown) => err instanceof KeylessConfigError && !(err instanceof KeylessUnavailableError) && message.test(err.message) && err.message.startsWith(`keyless client for key server 127.0.0.1:${ks.port}: `),
        name,
      );
    }
  });

  void it('close() during a connection attempt ends the attempt and its timer, and fails the waiting requests at once with KeylessClosedError', async () => {
    const relay = await relayed();
    const baseline = timers();
    relay.hold(); // the key server's half of the handshake never arrives
    const client = clientVia(relay, { poolSize: 2, timeoutMs: 20_000 });
    const requests = [settled(client.ping()), settled(client.ping())];
    await until('the connection attempt to reach the relay', () => relay.connections >= 1);
    const closed = Date.now();
    await client.close();
    let guard: NodeJS.Timeout | undefined;
    const results = await Promise.race([Promise.all(requests), new Promise<'pending'>((r) => (guard = setTimeout(() => r('pending'), 2000)))]);
    clearTimeout(guard);
    assert.notEqual(results, 'pending', 'the waiting requests fail at once, not at their deadline');
    for (const r of results as Settled[]) {
      assert.ok('error' in r && r.error instanceof KeylessClosedError, String('error' in r ? r.error : r.ok));
      assert.ok(r.error instanceof KeylessUnavailableError, 'still an unavailable key server to callers that only know that');
      assert.match((r.error as Error).message, /^keyless client for key server 127\.0\.0\.1:\d+ was closed/);
    }
    assert.ok(Date.now() - closed < 1000);
    await until('the attempt\'s socket to be closed', () => relay.connections === 0, 2000);
    await until('no timer left of the attempt or the requests', () => timers() <= baseline, 2000);
    assert.equal(client.state, 'closed');
    await assert.rejects(client.ping(), KeylessClosedError, 'a request after close() fails at once too');
  });

  void it('a request that timed out against a key server that never completes TLS leaves nothing that keeps the process alive: the attempt is unref\'d once no request waits for it', async () => {
    const relay = await relayed();
    relay.hold(); // TCP accepted, the key server's half of the handshake never arrives
    // A process of its own: whether it exits is the point, and the connection attempt's own timer is 10 s.
    const client = new URL('../../../src/keyless/client.js', import.meta.url).href;
    const options = { address: `127.0.0.1:${relay.port}`, ca: pki.ca, cert: pki.client.cert, key: pki.client.key, servername: 'localhost', timeoutMs: 200 };
    const script = `const { KeylessClient } = await import(${JSON.stringify(client)});
const c = new KeylessClient(JSON.parse(process.argv[1]));
console.log(await c.ping().then(() => 'answered', (e) => e.name));`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, JSON.stringify(options)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const started = Date.now();
    let guard: NodeJS.Timeout | undefined;
    const exited = await Promise.race([
      new Promise<number | null>((r) => child.once('exit', (code) => r(code))),
      new Promise<'alive'>((r) => (guard = setTimeout(() => r('alive'), 5000))),
    ]);
    clearTimeout(guard);
    if (exited === 'alive') child.kill();
    assert.notEqual(exited, 'alive', `the process was still alive ${Date.now() - started} ms after its only request (timeout 200 ms) was made`);
    assert.equal(exited, 0);
    assert.equal(out.trim(), 'KeylessTimeoutError');
  });

  void it('close() while requests wait out a backoff fails them at once', async () => {
    const relay = await relayed();
    relay.refuseNew = true;
    const client = clientVia(relay, { minBackoffMs: 4000, maxBackoffMs: 4000, timeoutMs: 20_000 });
    const request = settled(client.ping());
    await until('the first attempt to fail', () => client.state === 'backoff');
    const closed = Date.now();
    await client.close();
    const result = await request;
    assert.ok('error' in result && result.error instanceof KeylessClosedError, String('error' in result ? result.error : result.ok));
    assert.ok(Date.now() - closed < 1000, `failed at once, not after the backoff (${Date.now() - closed} ms)`);
  });
});
