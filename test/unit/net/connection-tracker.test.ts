/** ConnectionTracker over real loopback sockets: the caps (total, per source) and the drain. */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { ConnectionTracker, sourceAddress } from '../../../src/net/connection-tracker.js';

const servers: Server[] = [];
const sockets: Socket[] = [];
after(() => {
  for (const s of servers) s.close();
  for (const s of sockets) s.destroy();
});

async function until(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const accepted: Socket[] = [];
let port = 0;

/** A connection to one shared listener, from `localAddress` (127.0.0.x are distinct sources on loopback). */
async function pair(localAddress = '127.0.0.1'): Promise<{ client: Socket; server: Socket }> {
  if (port === 0) {
    const server = createServer((s) => {
      sockets.push(s);
      accepted.push(s);
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  }
  const before = accepted.length;
  const client = connect({ port, host: '127.0.0.1', localAddress });
  sockets.push(client);
  client.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    client.once('connect', resolve);
    client.once('error', reject);
  });
  await until('accept', () => accepted.length > before);
  const server = accepted.find((s) => s.remotePort === client.localPort)!;
  assert.ok(server, 'the accepted side of this connection');
  return { client, server };
}

void describe('ConnectionTracker', () => {
  void it('refuses connections over the limit and admits again once one closed', async () => {
    const t = new ConnectionTracker(2);
    const a = await pair();
    const b = await pair();
    const c = await pair();
    assert.equal(t.admit(a.server), 'admitted');
    assert.equal(t.admit(b.server), 'admitted');
    assert.equal(t.admit(c.server), 'limit');
    a.server.destroy();
    await until('release', () => t.size === 1);
    assert.equal(t.admit(c.server), 'admitted');
  });

  void it('refuses a source over its own limit while admitting other sources, and counts it down on close', async () => {
    const t = new ConnectionTracker(100, 2);
    const a1 = await pair('127.0.0.2');
    const a2 = await pair('127.0.0.2');
    const a3 = await pair('127.0.0.2');
    const b1 = await pair('127.0.0.3');
    assert.equal(t.admit(a1.server), 'admitted');
    assert.equal(t.admit(a2.server), 'admitted');
    assert.equal(t.admit(a3.server), 'source-limit');
    assert.equal(t.admit(b1.server), 'admitted');
    assert.equal(t.openFrom('127.0.0.2'), 2);
    assert.equal(t.openFrom('127.0.0.3'), 1);
    a1.client.destroy();
    await until('release', () => t.openFrom('127.0.0.2') === 1);
    assert.equal(t.admit(a3.server), 'admitted');
    b1.server.destroy();
    await until('the last connection of a source to close', () => t.openFrom('127.0.0.3') === 0);
  });

  void it('has no per-source limit with 0', async () => {
    const t = new ConnectionTracker(3, 0);
    for (let i = 0; i < 3; i++) assert.equal(t.admit((await pair('127.0.0.4')).server), 'admitted');
    assert.equal(t.admit((await pair('127.0.0.4')).server), 'limit');
  });

  void it('counts an IPv4-mapped IPv6 peer as its IPv4 address', () => {
    assert.equal(sourceAddress({ remoteAddress: '::ffff:10.1.2.3' } as Socket), '10.1.2.3');
    assert.equal(sourceAddress({ remoteAddress: 'fd00::1' } as Socket), 'fd00::1');
    assert.equal(sourceAddress({ remoteAddress: undefined } as Socket), 'unknown');
  });

  void it('drains: stops admitting, lets connections that finish in time finish, cuts the rest at the deadline', async () => {
    const t = new ConnectionTracker(10);
    const finishing = await pair();
    const stuck = await pair();
    t.admit(finishing.server);
    t.admit(stuck.server);
    setTimeout(() => finishing.server.destroy(), 50);
    const started = Date.now();
    const result = await t.drain(new Date(Date.now() + 300));
    assert.deepEqual(result, { finished: 1, cut: 1 });
    assert.ok(Date.now() - started >= 250, 'waited for the deadline');
    assert.equal(t.admit((await pair()).server), 'draining');
    await until('the cut connection to close', () => stuck.server.destroyed);
  });

  void it('cutAll ends a drain under way at once: every open connection is destroyed', async () => {
    const t = new ConnectionTracker(10);
    const a = await pair();
    const b = await pair();
    t.admit(a.server);
    t.admit(b.server);
    const started = Date.now();
    const draining = t.drain(new Date(Date.now() + 10_000));
    setTimeout(() => assert.equal(t.cutAll(), 2), 50);
    assert.deepEqual(await draining, { finished: 0, cut: 2 });
    assert.ok(Date.now() - started < 2000, `the drain ended long before its deadline: ${Date.now() - started} ms`);
    assert.ok(a.server.destroyed && b.server.destroyed);
  });

  void it('drains at once when nothing is open', async () => {
    const t = new ConnectionTracker(10);
    const started = Date.now();
    assert.deepEqual(await t.drain(new Date(Date.now() + 10_000)), { finished: 0, cut: 0 });
    assert.ok(Date.now() - started < 1000);
  });

  void it('asks for no address while the per-source limit cannot be reached, and counts exactly from the moment it can', () => {
    // Fakes: a socket is an emitter of 'close' whose remoteAddress reads are counted.
    let reads = 0;
    const fake = (address: string): Socket => {
      const s = new EventEmitter() as Socket;
      Object.defineProperty(s, 'remoteAddress', {
        get: () => {
          reads++;
          return address;
        },
      });
      return s;
    };
    const t = new ConnectionTracker(100, 4);
    const first = [fake('10.0.0.1'), fake('10.0.0.1'), fake('10.0.0.1'), fake('10.0.0.2')];
    for (const s of first) assert.equal(t.admit(s), 'admitted');
    assert.equal(reads, 0, 'under four open in all, no source can have four: no address read');
    // With four open the limit is reachable: the open ones are counted, then the new one.
    const fifth = fake('10.0.0.1');
    assert.equal(t.admit(fifth), 'admitted');
    assert.ok(reads >= 5, `every open connection's address read once counting starts (${reads})`);
    assert.equal(t.openFrom('10.0.0.1'), 4);
    assert.equal(t.admit(fake('10.0.0.1')), 'source-limit');
    const other = fake('10.0.0.2');
    assert.equal(t.admit(other), 'admitted');
    assert.equal(t.openFrom('10.0.0.2'), 2);
    // Closing one from 10.0.0.1 frees a slot for that source.
    first[0]!.emit('close');
    assert.equal(t.openFrom('10.0.0.1'), 3);
    const again = fake('10.0.0.1');
    assert.equal(t.admit(again), 'admitted');
    assert.equal(t.admit(fake('10.0.0.1')), 'source-limit');
    // Down to one open (under half the limit): counting stops, and admissions read no address again.
    for (const s of [first[1]!, first[2]!, first[3]!, fifth, other]) s.emit('close');
    assert.equal(t.size, 1);
    assert.equal(t.openFrom('10.0.0.1'), 1, 'openFrom counts the open connections when nothing is kept');
    reads = 0;
    for (const s of [fake('10.0.0.3'), fake('10.0.0.3')]) assert.equal(t.admit(s), 'admitted');
    assert.equal(reads, 0);
    first[1]!.emit('close'); // a second 'close' of a released socket changes nothing
    fake('10.0.0.4').emit('close'); // nor does one of a socket never admitted
    assert.equal(t.size, 3);
  });
});
