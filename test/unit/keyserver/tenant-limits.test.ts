/**
 * One tenant cannot take the key server from the others: identities are free to make (one per
 * DelegatedCredential), so connections, the signing rate and the signing queue are shared per
 * tenant (namespace), not per identity; connections still in their handshake have a cap of their
 * own (silent TCP cannot hold every slot); an identity with no key is closed after a grace however
 * often it pings. Real sockets on loopback (127.0.0.2 is another source), limits scaled down.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import { createPrivateKey, type X509Certificate } from 'node:crypto';
import { Registry } from 'prom-client';
import { KeylessClient } from '../../../src/keyless/client.js';
import { SigningKey } from '../../../src/keyless/keystore.js';
import { Opcode } from '../../../src/keyless/protocol.js';
import { encodeSignMessage } from '../../../src/keyless/sign-message.js';
import { signRequestOf } from '../../../src/keyless/sign-request.js';
import { startKeyServer, type KeyServer, type KeyServerOptions } from '../../../src/keyless/server.js';
import { IdentityAuthorizer } from '../../../src/keyserver/authorization.js';
import { FileGrantAuthorizer } from '../../../src/keyserver/file-grants.js';
import { KeyGrants } from '../../../src/keyserver/grants.js';
import { RateLimiter } from '../../../src/keyserver/rate-limit.js';
import { metricSum } from '../keyless/metrics.js';
import { until } from '../keyless/relay.js';
import { makeIdentityPki, type IdentityPki, type Pair } from './pki.js';

const UID = '0a1b2c3d-0000-4000-8000-000000000001';
const uri = (ns: string, name: string): string => `spiffe://cluster.local/ns/${ns}/dc/${name}`;
const cv = Buffer.concat([Buffer.alloc(64, 0x20), Buffer.from('TLS 1.3, server CertificateVerify\0', 'latin1'), Buffer.alloc(32, 7)]);

let pki: IdentityPki;
let victimKey: SigningKey;
let victim: Pair;
const evil: Pair[] = [];
let evilGranted: Pair;
let controller: Pair;
const servers: KeyServer[] = [];
const clients: KeylessClient[] = [];
const sockets: Socket[] = [];

before(() => {
  pki = makeIdentityPki();
  const cert = pki.certificate('victim-www');
  victimKey = new SigningKey(createPrivateKey(cert.key), 'victim');
  victim = pki.sidecar('victim', uri('victim', 'www'), UID);
  for (let i = 0; i < 4; i++) evil.push(pki.sidecar(`evil${i}`, uri('evil', `dc${i}`), UID));
  evilGranted = pki.sidecar('evil-granted', uri('evil', 'granted'), UID);
  controller = pki.client('controller', 'spiffe://cluster.local/dc-operator/controller');
});
after(async () => {
  for (const c of clients) await c.close();
  for (const s of sockets) s.destroy();
  await Promise.all(servers.map((s) => s.close()));
  pki.cleanup();
});

async function start(options: Partial<KeyServerOptions>, rate = 0): Promise<{ ks: KeyServer; grants: KeyGrants }> {
  const grants = new KeyGrants();
  grants.set(uri('victim', 'www'), { key: victimKey, source: 'victim', uid: UID, createdAt: 0 });
  const authorizer = new IdentityAuthorizer({ trustDomain: 'cluster.local', grants, registry: new Registry(), rateLimit: new RateLimiter({ ratePerSecond: rate }) });
  const ks = await startKeyServer({ keys: grants, authorizer, ca: pki.ca.cert, cert: pki.server.cert, key: pki.server.key, host: '127.0.0.1', port: 0, ...options });
  servers.push(ks);
  return { ks, grants };
}

function client(ks: KeyServer, who: Pair): KeylessClient {
  const c = new KeylessClient({ address: `127.0.0.1:${ks.port}`, ca: pki.ca.cert, cert: who.cert, key: who.key, maxBackoffMs: 100 });
  clients.push(c);
  return c;
}

const sign = (c: KeylessClient): Promise<Uint8Array> => c.signMessage(victimKey.ski, 0x0403, cv, () => {
    throw new Error('no digest path');
  }, { timeoutMs: 3000 });

const metric = (ks: KeyServer, name: string, labels: Record<string, string>): Promise<number> => metricSum(ks.registry, name, labels);

void describe('key server: shares per tenant, not per identity', () => {
  void it('one tenant with many identities holds no more than the per-tenant cap; another tenant still signs', { timeout: 20_000 }, async () => {
    // Total 8, per identity 2: four identities of one namespace would take all 8 slots.
    const { ks } = await start({ maxConnections: 8, maxConnectionsPerSource: 0, maxConnectionsPerIdentity: 2, maxConnectionsPerTenant: 4 });
    for (const who of evil) {
      for (let i = 0; i < 2; i++) await client(ks, who).ping({ timeoutMs: 2000 }).catch(() => undefined);
    }
    // Every evil connection attempt has been admitted or refused.
    await until('the evil connections settled', async () => (await metric(ks, 'keyless_server_connections', {})) + (await metric(ks, 'keyless_server_refused_connections_total', {})) >= 8);
    assert.ok((await sign(client(ks, victim))).length > 0, 'the other tenant is served');
    assert.equal(await metric(ks, 'keyless_server_refused_connections_total', { reason: 'tenant-limit' }) >= 4, true);
    assert.equal(await metric(ks, 'keyless_server_connections', {}), 5, 'the tenant holds its cap (4), no more; and the victim');
  });

  void it('silent TCP connections hold at most the handshake slots; authenticated clients still connect', { timeout: 20_000 }, async () => {
    const { ks } = await start({ maxConnections: 8, maxConnectionsPerSource: 0, maxHandshakingConnections: 4, maxHandshakingPerSource: 3, handshakeTimeoutMs: 10_000 });
    for (let i = 0; i < 8; i++) {
      const s = netConnect({ host: '127.0.0.1', port: ks.port, localAddress: '127.0.0.2' });
      s.on('error', () => undefined);
      sockets.push(s);
    }
    await Promise.all(sockets.map((s) => new Promise((r) => (s.connecting ? s.once('connect', r).once('close', r) : r(undefined)))));
    await new Promise((r) => setTimeout(r, 200));
    // Three silent ones from 127.0.0.2 hold three handshake slots; the victim from another address signs,
    // and its finished handshake frees its slot (a second and third client connect too).
    assert.ok((await sign(client(ks, victim))).length > 0);
    for (let i = 0; i < 2; i++) await client(ks, victim).ping({ timeoutMs: 2000 });
    assert.equal(await metric(ks, 'keyless_server_connections', {}), 3);
    assert.equal(await metric(ks, 'keyless_server_refused_connections_total', { reason: 'handshake-limit' }), 5, 'three silent ones held, five refused');
  });

  void it('when the handshake table is full the oldest handshake is closed for a new one: silent connections from any number of sources cannot keep a client out', { timeout: 20_000 }, async () => {
    const { ks } = await start({ maxConnections: 16, maxConnectionsPerSource: 0, maxHandshakingConnections: 4, maxHandshakingPerSource: 0, handshakeTimeoutMs: 10_000 });
    const silent: Socket[] = [];
    for (let i = 0; i < 8; i++) {
      const s = netConnect({ host: '127.0.0.1', port: ks.port });
      s.on('error', () => undefined);
      sockets.push(s);
      silent.push(s);
    }
    await until('four silent ones evicted', async () => (await metric(ks, 'keyless_server_refused_connections_total', { reason: 'handshake-evicted' })) >= 4 && silent.filter((s) => !s.destroyed).length === 4);
    assert.ok((await sign(client(ks, victim))).length > 0, 'the client from the same address got in');
  });

  void it('an identity with no key is closed after the grace, pings or not; granted ones and the controller stay', { timeout: 20_000 }, async () => {
    const { ks, grants } = await start({ ungrantedGraceMs: 300 });
    const none = client(ks, evil[0]!);
    const ok = client(ks, victim);
    const ctl = client(ks, controller);
    const late = client(ks, evilGranted);
    for (const c of [none, ok, ctl, late]) await c.ping({ timeoutMs: 2000 });
    // A grant that arrives within the grace keeps the connection.
    grants.set(uri('evil', 'granted'), { key: victimKey, source: 'victim', uid: UID, createdAt: 0 });
    const until1s = Date.now() + 1000;
    while (Date.now() < until1s) {
      for (const c of [none, ok, ctl, late]) await c.ping({ timeoutMs: 2000 }).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok((await metric(ks, 'keyless_server_refused_connections_total', { reason: 'no-grant' })) >= 1, 'the ungranted connection was closed');
    // Each reconnect of the ungranted client is closed again; the others kept their one connection.
    const closedBefore = await metric(ks, 'keyless_server_refused_connections_total', { reason: 'no-grant' });
    assert.ok(closedBefore <= 3, `only the ungranted identity was closed (${closedBefore})`);
    assert.ok((await sign(ok)).length > 0);
    await ctl.ping({ timeoutMs: 2000 });
  });
});

void describe('IdentityAuthorizer: the signing rate is per tenant', () => {
  void it('two identities of one namespace share one bucket; another namespace has its own', () => {
    const grants = new KeyGrants();
    for (const name of ['a', 'b']) grants.set(uri('team', name), { key: victimKey, source: 'k' });
    grants.set(uri('other', 'a'), { key: victimKey, source: 'k' });
    const auth = new IdentityAuthorizer({ trustDomain: 'cluster.local', grants, registry: new Registry(), rateLimit: new RateLimiter({ ratePerSecond: 2, burst: 2, now: () => 0 }) });
    const peer = (u: string) => auth.forPeer({ subjectAltName: `URI:${u}` } as unknown as X509Certificate);
    const request = signRequestOf(Opcode.signMessage, encodeSignMessage({ scheme: 0x0403, message: cv }))!;
    const a = peer(uri('team', 'a'));
    const b = peer(uri('team', 'b'));
    assert.equal(a.tenant, 'ns/team');
    assert.equal(a.admit(Opcode.signMessage, victimKey.skiHex, request), undefined);
    assert.equal(b.admit(Opcode.signMessage, victimKey.skiHex, request), undefined);
    assert.notEqual(b.admit(Opcode.signMessage, victimKey.skiHex, request), undefined, "the tenant's bucket is empty");
    assert.equal(peer(uri('other', 'a')).admit(Opcode.signMessage, victimKey.skiHex, request), undefined);
  });
});

void describe('FileGrantAuthorizer (--grant): tenants', () => {
  void it("are per trust domain and namespace: one key server trusting two clusters' CAs keeps their namespaces of one name apart", () => {
    const auth = new FileGrantAuthorizer([], () => undefined);
    const peer = (u: string) => auth.forPeer({ subjectAltName: `URI:${u}` } as unknown as X509Certificate);
    const a = peer('spiffe://cluster-a.example/ns/prod/dc/web');
    const b = peer('spiffe://cluster-b.example/ns/prod/dc/web');
    assert.equal(a.tenant, 'cluster-a.example/ns/prod');
    assert.notEqual(a.tenant, b.tenant);
    assert.equal(peer('spiffe://cluster-a.example/ns/prod/dc/api').tenant, a.tenant);
  });
});
