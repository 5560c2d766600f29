/** The in-cluster key server's policy: identity → the one key it may use, deny by default, rate limits. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, type X509Certificate } from 'node:crypto';
import { Registry } from 'prom-client';
import { SigningKey } from '../../../src/keyless/keystore.js';
import { ErrorCode, Opcode } from '../../../src/keyless/protocol.js';
import { LogLimiter } from '../../../src/net/log-limiter.js';
import { decide, IdentityAuthorizer, identityOf, UNIDENTIFIED } from '../../../src/keyserver/authorization.js';
import { signRequestOf, type SignRequest } from '../../../src/keyless/sign-request.js';
import { encodeSignMessage } from '../../../src/keyless/sign-message.js';
import { KeyGrants } from '../../../src/keyserver/grants.js';
import { RateLimiter } from '../../../src/keyserver/rate-limit.js';
import { signatureCost } from '../../../src/keyless/signature-cost.js';

const TD = 'cluster.local';
const A = 'spiffe://cluster.local/ns/team-a/dc/www';
const B = 'spiffe://cluster.local/ns/team-b/dc/www';
const CONTROLLER = 'spiffe://cluster.local/dc-operator/controller';

function key(): SigningKey {
  return new SigningKey(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, 'test');
}

function grantsOf(entries: Record<string, SigningKey>): KeyGrants {
  const grants = new KeyGrants();
  for (const [identity, k] of Object.entries(entries)) grants.set(identity, { key: k, source: 'test' });
  return grants;
}

/** The signed contents a sidecar's handshakes produce, and some it never does. */
const spaces = Buffer.alloc(64, 0x20);
const certificateVerify = (hashLength: number) => Buffer.concat([spaces, Buffer.from('TLS 1.3, server CertificateVerify\0', 'latin1'), Buffer.alloc(hashLength, 7)]);
const delegatedCredential = Buffer.concat([spaces, Buffer.from('TLS, server delegated credentials\0', 'latin1'), Buffer.alloc(400, 1)]);
const serverKeyExchange = (group: number, length: number, declared = length) => Buffer.concat([Buffer.alloc(64, 9), Buffer.from([3, group >> 8, group & 0xff, declared]), Buffer.alloc(length, 4)]);
const whole = (message: Uint8Array, scheme = 0x0403): SignRequest => signRequestOf(Opcode.signMessage, encodeSignMessage({ scheme, message }))!;

void describe('identityOf: the one URI SAN of a client certificate', () => {
  const cases: [string | undefined, string][] = [
    [`URI:${A}`, 'sidecar'],
    [`DNS:www.example, URI:${A}`, 'sidecar'],
    [`URI:${CONTROLLER}`, 'controller'],
    [undefined, 'none'],
    ['DNS:www.example', 'none'],
    [`URI:${A}, URI:${B}`, 'none'], // two identities: neither
    ['URI:spiffe://other.domain/ns/team-a/dc/www', 'none'], // another trust domain
    ['URI:spiffe://cluster.local/ns/team-a/sa/default', 'none'], // a SPIFFE ID that is not ours
    ['URI:spiffe://other.domain/dc-operator/controller', 'none'],
    [`URI:"${A}, URI:${B}"`, 'none'], // a quoted (comma-carrying) value
  ];
  for (const [san, kind] of cases) {
    void it(`${san ?? '(no SAN)'} → ${kind}`, () => assert.equal(identityOf(san, TD).kind, kind));
  }
  void it('says why a certificate names no identity', () => {
    const id = identityOf('URI:spiffe://other.domain/ns/team-a/dc/www', TD);
    assert.equal(id.kind, 'none');
    assert.match(id.kind === 'none' ? id.why : '', /trust domain other\.domain, not cluster\.local/);
  });
});

void describe('decide: identity → the SKIs it may use, deny by default', () => {
  const ka = key();
  const kb = key();
  const grants = grantsOf({ [A]: ka, [B]: kb });
  const sign = Opcode.signMessage;
  const handshake = whole(certificateVerify(32));
  const table: [string, string | undefined, number, string | undefined, boolean][] = [
    ['own key', `URI:${A}`, sign, ka.skiHex, true],
    ['namespace A asking for namespace B\'s key', `URI:${A}`, sign, kb.skiHex, false],
    ['namespace B asking for namespace A\'s key', `URI:${B}`, sign, ka.skiHex, false],
    ['an identity without a grant', 'URI:spiffe://cluster.local/ns/team-c/dc/www', sign, ka.skiHex, false],
    ['a request naming no key', `URI:${A}`, sign, undefined, false],
    ['an unknown SKI', `URI:${A}`, sign, '00'.repeat(20), false],
    ['a sidecar ping', `URI:${A}`, Opcode.ping, undefined, true],
    ['the controller ping', `URI:${CONTROLLER}`, Opcode.ping, undefined, true],
    ['the controller signing with any key', `URI:${CONTROLLER}`, sign, ka.skiHex, false],
    ['no identity: ping', 'DNS:x', Opcode.ping, undefined, false],
    ['no identity: sign', undefined, sign, ka.skiHex, false],
    ['another trust domain with a granted name', 'URI:spiffe://evil.example/ns/team-a/dc/www', sign, ka.skiHex, false],
  ];
  for (const [what, san, opcode, ski, allowed] of table) {
    void it(`${what}: ${allowed ? 'allowed' : 'refused as key not found'}`, () => {
      const d = decide(identityOf(san, TD), opcode, ski, grants, opcode === Opcode.ping ? undefined : handshake);
      assert.equal(d.allowed, allowed);
      if (!d.allowed) assert.equal(d.code, ErrorCode.keyNotFound);
    });
  }
  void it('a grant of a DelegatedCredential UID serves only client certificates issued for that UID (subject UID), not a deleted namesake\'s or one without', () => {
    const g = new KeyGrants();
    g.set(A, { key: ka, source: 'test', uid: 'uid-2' });
    const subject = (uid?: string): string => `O=dc-operator${uid === undefined ? '' : `\nUID=${uid}`}`;
    assert.equal(decide(identityOf(`URI:${A}`, TD, subject('uid-2')), sign, ka.skiHex, g, handshake).allowed, true);
    const old = decide(identityOf(`URI:${A}`, TD, subject('uid-1')), sign, ka.skiHex, g, handshake);
    assert.ok(!old.allowed && old.code === ErrorCode.keyNotFound && /issued for DelegatedCredential UID uid-1, deleted since; the current one is uid-2/.test(old.why), JSON.stringify(old));
    const none = decide(identityOf(`URI:${A}`, TD, subject()), sign, ka.skiHex, g, handshake);
    assert.ok(!none.allowed && /names no DelegatedCredential UID/.test(none.why), JSON.stringify(none));
    const two = decide(identityOf(`URI:${A}`, TD, `${subject('uid-2')}\nUID=uid-2`), sign, ka.skiHex, g, handshake);
    assert.equal(two.allowed, false, 'two UID attributes name no one UID');
    assert.equal(decide(identityOf(`URI:${A}`, TD, subject('uid-1')), Opcode.ping, undefined, g).allowed, true, 'pings touch no key');
  });

  // The upgrade bridge: a certificate from a controller before UIDs (no subject UID) is served only
  // if it was issued after the current DelegatedCredential of its name was created. Issued at =
  // notBefore + the 5-minute backdate; creationTimestamp has one-second resolution.
  const created = Date.parse('2026-12-05T12:00:00Z');
  const backdate = 5 * 60 * 1000;
  const bridge: Array<[string, number | undefined, boolean]> = [
    ['issued an hour after the current object was created', created + 3_600_000, true],
    ['issued 2 s after it was created', created + 2_000, true],
    ['issued within the second of its creation (cannot be told from just before)', created + 500, false],
    ['issued before it was created: a deleted namesake\'s', created - 60_000, false],
    ['no notBefore known', undefined, false],
  ];
  for (const [what, issuedAt, allowed] of bridge) {
    void it(`a certificate naming no UID, ${what}: ${allowed ? 'served' : 'refused'}`, () => {
      const g = new KeyGrants();
      g.set(A, { key: ka, source: 'test', uid: 'uid-2', createdAt: created });
      const notBefore = issuedAt === undefined ? undefined : new Date(issuedAt - backdate);
      const d = decide(identityOf(`URI:${A}`, TD, 'O=dc-operator', notBefore), sign, ka.skiHex, g, handshake);
      assert.equal(d.allowed, allowed, JSON.stringify(d));
      // A certificate naming another UID is never bridged, however late it was issued.
      const other = decide(identityOf(`URI:${A}`, TD, 'O=dc-operator\nUID=uid-1', new Date(created + 3_600_000)), sign, ka.skiHex, g, handshake);
      assert.equal(other.allowed, false);
    });
  }
  void it('a grant without a creation time bridges nothing', () => {
    const g = new KeyGrants();
    g.set(A, { key: ka, source: 'test', uid: 'uid-2' });
    assert.equal(decide(identityOf(`URI:${A}`, TD, 'O=dc-operator', new Date(created)), sign, ka.skiHex, g, handshake).allowed, false);
  });

  void it('a revoked grant refuses what it allowed', () => {
    const g = grantsOf({ [A]: ka });
    assert.equal(decide(identityOf(`URI:${A}`, TD), sign, ka.skiHex, g, handshake).allowed, true);
    g.delete(A);
    assert.equal(decide(identityOf(`URI:${A}`, TD), sign, ka.skiHex, g, handshake).allowed, false);
    assert.equal(g.get(ka.skiHex), undefined, 'the key left memory with its last grant');
  });
  void it('two identities granted the same key share one entry; it stays until the last is revoked', () => {
    const g = grantsOf({ [A]: ka, [B]: ka });
    assert.equal(g.size, 1);
    g.delete(A);
    assert.equal(g.get(ka.skiHex), ka);
    g.delete(B);
    assert.equal(g.size, 0);
  });
});

void describe('decide: a sidecar may have only TLS handshake signatures made, with its own key', () => {
  const ka = key();
  const kb = key();
  const grants = grantsOf({ [A]: ka, [B]: kb });
  const table: [string, number, string, SignRequest, true | RegExp][] = [
    ['TLS 1.3 CertificateVerify (SHA-256 transcript), own key, opcode 0xC0', Opcode.signMessage, ka.skiHex, whole(certificateVerify(32)), true],
    ['TLS 1.3 CertificateVerify (SHA-384 transcript)', Opcode.signMessage, ka.skiHex, whole(certificateVerify(48)), true],
    ["the same with namespace B's key (opcode 0xC0 is a use of a key like any other)", Opcode.signMessage, kb.skiHex, whole(certificateVerify(32)), /may sign only with key/],
    ['TLS 1.2 ServerKeyExchange, x25519', Opcode.signMessage, ka.skiHex, whole(serverKeyExchange(0x1d, 32)), true],
    ['TLS 1.2 ServerKeyExchange, P-256', Opcode.signMessage, ka.skiHex, whole(serverKeyExchange(0x17, 65)), true],
    ['Ed25519 opcode over a CertificateVerify', Opcode.ed25519Sign, ka.skiHex, signRequestOf(Opcode.ed25519Sign, certificateVerify(32))!, true],
    ['a delegated credential (a sidecar minting its own)', Opcode.signMessage, ka.skiHex, whole(delegatedCredential), /delegated credential: only the controller issues those/],
    ['a delegated credential through the Ed25519 opcode', Opcode.ed25519Sign, ka.skiHex, signRequestOf(Opcode.ed25519Sign, delegatedCredential)!, /delegated credential/],
    ['a digest (what was hashed is unknown)', Opcode.ecdsaSignSha256, ka.skiHex, signRequestOf(Opcode.ecdsaSignSha256, Buffer.alloc(32, 1))!, /digest opcode hides what was hashed/],
    ['a CertificateVerify with a 33-byte hash', Opcode.signMessage, ka.skiHex, whole(certificateVerify(33)), /neither a TLS 1\.3 server CertificateVerify nor/],
    ['a client CertificateVerify', Opcode.signMessage, ka.skiHex, whole(Buffer.concat([spaces, Buffer.from('TLS 1.3, client CertificateVerify\0', 'latin1'), Buffer.alloc(32)])), /neither/],
    ['a ServerKeyExchange whose point length lies', Opcode.signMessage, ka.skiHex, whole(serverKeyExchange(0x1d, 33, 32)), /neither/],
    ['a ServerKeyExchange with a group of the wrong length', Opcode.signMessage, ka.skiHex, whole(serverKeyExchange(0x17, 32)), /neither/],
    ['arbitrary bytes', Opcode.signMessage, ka.skiHex, whole(Buffer.from('pay 100 to mallory')), /the 18-byte message is neither/],
  ];
  void it('a signing request whose content the caller did not pass: refused, not waved through', () => {
    const d = decide(identityOf(`URI:${A}`, TD), Opcode.signMessage, ka.skiHex, grants);
    assert.equal(d.allowed, false);
    if (!d.allowed) assert.match(d.why, /did not say what is to be signed/);
  });
  for (const [what, opcode, ski, request, want] of table) {
    void it(`${what}: ${want === true ? 'allowed' : 'refused as key not found'}`, () => {
      const d = decide(identityOf(`URI:${A}`, TD), opcode, ski, grants, request);
      if (want === true) return assert.deepEqual(d, { allowed: true });
      assert.equal(d.allowed, false);
      if (!d.allowed) {
        assert.equal(d.code, ErrorCode.keyNotFound);
        assert.match(d.why, want);
      }
    });
  }
});

void describe('RateLimiter: a token bucket per identity', () => {
  void it('allows a burst, then refuses until tokens come back, per identity', () => {
    let now = 0;
    const r = new RateLimiter({ ratePerSecond: 10, now: () => now });
    for (let i = 0; i < 10; i++) assert.equal(r.take('a'), true, `request ${i}`);
    assert.equal(r.take('a'), false);
    assert.equal(r.take('b'), true, 'another identity has its own bucket');
    now += 100; // one token
    assert.equal(r.take('a'), true);
    assert.equal(r.take('a'), false);
    now += 10_000; // full again, but no more than the burst
    for (let i = 0; i < 10; i++) assert.equal(r.take('a'), true);
    assert.equal(r.take('a'), false);
  });
  void it('0 turns it off', () => {
    const r = new RateLimiter({ ratePerSecond: 0 });
    for (let i = 0; i < 10_000; i++) assert.equal(r.take('a'), true);
    assert.equal(r.size, 0);
  });
  void it('forgets identities whose bucket is full again, so the table stays small', () => {
    let now = 0;
    const r = new RateLimiter({ ratePerSecond: 100, now: () => now });
    for (let i = 0; i < 1100; i++) r.take(`id-${i}`);
    now += 60_000;
    r.take('late');
    assert.ok(r.size < 10, `${r.size} buckets kept`);
  });
});

void describe('IdentityAuthorizer: counts, logs and limits per identity', () => {
  const ka = key();
  const kb = key();
  const peer = (san: string): X509Certificate => ({ subjectAltName: san }) as unknown as X509Certificate;
  const setup = (rate: number) => {
    const registry = new Registry();
    const lines: { level: string; message: string; meta: Record<string, unknown> }[] = [];
    const line = (level: string) => (message: string, meta?: Record<string, unknown>) => void lines.push({ level, message, meta: meta ?? {} });
    const auth = new IdentityAuthorizer({
      trustDomain: TD,
      grants: grantsOf({ [A]: ka, [B]: kb }),
      registry,
      rateLimit: new RateLimiter({ ratePerSecond: rate, now: () => 0 }),
      log: { info: line('info'), warn: line('warn'), error: line('error') },
      logLimiter: new LogLimiter(3, 60_000, () => 0),
      perIdentityMetrics: true,
    });
    return { registry, lines, auth };
  };
  /** What the server does: admit, then report the answer. */
  /** As a sidecar asks: whole CertificateVerify content through 0xC0 (pings carry nothing to sign). */
  const ask = (p: ReturnType<IdentityAuthorizer['forPeer']>, opcode: number, ski: string | undefined): number | undefined => {
    const refused = p.admit(opcode, ski, opcode === Opcode.ping ? undefined : whole(certificateVerify(32)));
    p.answered(opcode, ski, refused, 0.0002);
    return refused;
  };
  const count = async (registry: Registry, labels: Record<string, string>): Promise<number> => {
    const metric = await registry.getSingleMetric('keyless_server_signatures_total')!.get();
    return metric.values.filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x)).reduce((n, v) => n + v.value, 0);
  };

  void it('a cross-namespace request is refused in-band, counted as denied and logged with why', async () => {
    const { registry, lines, auth } = setup(0);
    const p = auth.forPeer(peer(`URI:${A}`));
    assert.equal(ask(p, Opcode.signMessage, ka.skiHex), undefined);
    assert.equal(ask(p, Opcode.signMessage, kb.skiHex), ErrorCode.keyNotFound);
    assert.equal(await count(registry, { identity: A, opcode: 'signMessage', result: 'ok' }), 1);
    assert.equal(await count(registry, { identity: A, opcode: 'signMessage', result: 'denied' }), 1);
    const denied = lines.find((l) => l.meta['result'] === 'denied');
    assert.equal(denied?.level, 'warn');
    assert.equal(denied?.meta['ski'], kb.skiHex);
    assert.match(String(denied?.meta['why']), new RegExp(`may sign only with key ${ka.skiHex}`));
    const ok = lines.find((l) => l.meta['result'] === 'ok');
    assert.deepEqual({ ...ok?.meta, durationMs: undefined }, { identity: A, ski: ka.skiHex, opcode: 'signMessage', result: 'ok', durationMs: undefined });
    assert.equal(ok?.level, 'info');
  });

  void it('over the rate: refused with "rate limited", counted; every request counted, log lines bounded with the rest counted in', async () => {
    const { registry, lines, auth } = setup(5);
    const p = auth.forPeer(peer(`URI:${A}`));
    const results = Array.from({ length: 20 }, () => ask(p, Opcode.signMessage, ka.skiHex));
    assert.equal(results.filter((r) => r === undefined).length, 5);
    assert.equal(results.filter((r) => r === ErrorCode.rateLimited).length, 15);
    assert.equal(await count(registry, { identity: A, result: 'rate_limited' }), 15);
    assert.equal(await count(registry, { identity: A, result: 'ok' }), 5);
    // 3 lines a window per identity and result: 3 ok, 3 rate_limited.
    assert.equal(lines.length, 6);
    // B is not limited by A's use.
    assert.equal(ask(auth.forPeer(peer(`URI:${B}`)), Opcode.signMessage, kb.skiHex), undefined);
  });

  void it('opcode 0xC0 is authorized, rate limited and counted like the documented signing opcodes', async () => {
    const { registry, auth } = setup(2);
    const p = auth.forPeer(peer(`URI:${A}`));
    const cv = whole(certificateVerify(32));
    const askWhole = (ski: string) => {
      const refused = p.admit(Opcode.signMessage, ski, cv);
      p.answered(Opcode.signMessage, ski, refused, 0.0002);
      return refused;
    };
    assert.equal(askWhole(kb.skiHex), ErrorCode.keyNotFound, "namespace B's key");
    assert.equal(askWhole(ka.skiHex), undefined);
    assert.equal(askWhole(ka.skiHex), undefined);
    assert.equal(askWhole(ka.skiHex), ErrorCode.rateLimited, 'over the rate of 2');
    assert.equal(await count(registry, { identity: A, opcode: 'signMessage', result: 'denied' }), 1);
    assert.equal(await count(registry, { identity: A, opcode: 'signMessage', result: 'ok' }), 2);
    assert.equal(await count(registry, { identity: A, opcode: 'signMessage', result: 'rate_limited' }), 1);
  });

  void it('the controller may ping and nothing else; pings are not counted as signatures', async () => {
    const { registry, auth } = setup(0);
    const p = auth.forPeer(peer(`URI:${CONTROLLER}`));
    assert.equal(ask(p, Opcode.ping, undefined), undefined);
    assert.equal(ask(p, Opcode.signMessage, ka.skiHex), ErrorCode.keyNotFound);
    assert.equal(await count(registry, { identity: CONTROLLER }), 1);
  });

  void it('a revoked identity leaves no series behind; others keep theirs; it gets them back when it signs again', async () => {
    const grants = grantsOf({ [A]: ka, [B]: kb });
    const registry = new Registry();
    const auth = new IdentityAuthorizer({ trustDomain: TD, grants, registry, rateLimit: new RateLimiter({ ratePerSecond: 0, now: () => 0 }), perIdentityMetrics: true });
    const pa = auth.forPeer(peer(`URI:${A}`));
    ask(pa, Opcode.signMessage, ka.skiHex);
    ask(pa, Opcode.signMessage, kb.skiHex);
    ask(auth.forPeer(peer(`URI:${B}`)), Opcode.signMessage, kb.skiHex);
    ask(auth.forPeer(peer(`URI:${CONTROLLER}`)), Opcode.signMessage, ka.skiHex);
    const identities = async () => [...new Set((await registry.getSingleMetric('keyless_server_signatures_total')!.get()).values.map((v) => v.labels['identity']))].sort();
    auth.pruneRevoked();
    assert.deepEqual(await identities(), [A, B, CONTROLLER].sort(), 'nothing revoked: nothing removed');
    grants.delete(A);
    auth.pruneRevoked();
    assert.deepEqual(await identities(), [B, CONTROLLER].sort());
    // A's open connection is now denied; that is counted (and tracked) again.
    assert.equal(ask(pa, Opcode.signMessage, ka.skiHex), ErrorCode.keyNotFound);
    assert.equal(await count(registry, { identity: A, result: 'denied' }), 1);
    grants.set(A, { key: ka, source: 'test' });
    assert.equal(ask(pa, Opcode.signMessage, ka.skiHex), undefined);
    grants.delete(A);
    auth.pruneRevoked();
    assert.deepEqual(await identities(), [B, CONTROLLER].sort(), 'series made from a cached child after a prune are removed too');
  });

  void it('by default the metrics name tenants (namespaces), not DelegatedCredentials; a tenant leaves no series once none of its identities holds a grant', async () => {
    const A2 = 'spiffe://cluster.local/ns/team-a/dc/api';
    const grants = grantsOf({ [A]: ka, [A2]: ka, [B]: kb });
    const registry = new Registry();
    const auth = new IdentityAuthorizer({ trustDomain: TD, grants, registry, rateLimit: new RateLimiter({ ratePerSecond: 0, now: () => 0 }) });
    ask(auth.forPeer(peer(`URI:${A}`)), Opcode.signMessage, ka.skiHex);
    ask(auth.forPeer(peer(`URI:${A2}`)), Opcode.signMessage, ka.skiHex);
    ask(auth.forPeer(peer(`URI:${B}`)), Opcode.signMessage, ka.skiHex);
    const values = async () => (await registry.getSingleMetric('keyless_server_signatures_total')!.get()).values;
    const text = await registry.metrics();
    assert.ok(!text.includes('/dc/'), 'no DelegatedCredential name in /metrics');
    assert.deepEqual((await values()).map((v) => [v.labels['tenant'], v.labels['result'], v.value]).sort(), [['ns/team-a', 'ok', 2], ['ns/team-b', 'denied', 1]]);
    grants.delete(A);
    auth.pruneRevoked();
    assert.equal((await values()).length, 2, 'team-a still holds a grant (api)');
    grants.delete(A2);
    grants.delete(B);
    auth.pruneRevoked();
    assert.deepEqual(await values(), []);
  });

  void it('clients without an identity share one metrics label', async () => {
    const { registry, auth } = setup(0);
    ask(auth.forPeer(peer('DNS:a')), Opcode.signMessage, ka.skiHex);
    ask(auth.forPeer(peer('URI:spiffe://x/y')), Opcode.ping, undefined);
    assert.equal(await count(registry, { identity: UNIDENTIFIED, result: 'denied' }), 2);
  });
});

void describe('signing rate weighed by what a signature costs', () => {
  const peer = (san: string): X509Certificate => ({ subjectAltName: san }) as unknown as X509Certificate;
  /** A key of the given RSA size without generating one (RSA-8192 takes seconds): what signatureCost reads. */
  const rsaKey = (bits: number, ski: string): SigningKey =>
    ({ algorithm: 'rsa', detail: `RSA-${bits}`, skiHex: ski, key: { asymmetricKeyDetails: { modulusLength: bits } } }) as unknown as SigningKey;

  void it('signatureCost: RSA-2048, P-256 and Ed25519 count 1; bigger keys count what they cost, RSA-8192 tens', () => {
    const cv = whole(certificateVerify(32), 0x0804);
    const costs = [2048, 3072, 4096, 8192].map((bits) => signatureCost(rsaKey(bits, 'aa'), cv));
    assert.deepEqual(costs.slice(0, 3), [1, 3, 7]);
    assert.ok(costs[3]! >= 30 && costs[3]! <= 64, `RSA-8192 counts ${costs[3]}`);
    assert.equal(signatureCost(key(), whole(certificateVerify(32))), 1);
    assert.equal(signatureCost(new SigningKey(generateKeyPairSync('ed25519').privateKey, 'test'), whole(certificateVerify(32), 0x0807)), 1);
    const p384 = new SigningKey(generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey, 'test');
    assert.ok(signatureCost(p384, signRequestOf(Opcode.ecdsaSignSha384, Buffer.alloc(48))!) > signatureCost(p384, whole(certificateVerify(48), 0x0503)), 'a digest (pure JS) costs more than a whole message (OpenSSL)');
  });

  void it('RateLimiter: a request costing more than the burst passes from a full bucket and leaves it in debt', () => {
    let now = 0;
    const r = new RateLimiter({ ratePerSecond: 10, now: () => now });
    assert.equal(r.take('a', 37), true, 'from a full bucket of 10');
    assert.equal(r.take('a', 1), false);
    now += 2_600; // 26 tokens: the debt of 27 is not repaid yet
    assert.equal(r.take('a', 1), false);
    now += 200; // now 1 token
    assert.equal(r.take('a', 1), true);
  });

  void it('an identity flooding with an RSA-8192 key gets its CPU share, not the key server: the other identity is served every time', () => {
    let now = 0;
    const big = rsaKey(8192, 'bb'.repeat(20));
    const small = key();
    const grants = grantsOf({ [A]: big, [B]: small });
    const auth = new IdentityAuthorizer({ trustDomain: TD, grants, registry: new Registry(), rateLimit: new RateLimiter({ ratePerSecond: 1000, now: () => now }) });
    const flooder = auth.forPeer(peer(`URI:${A}`));
    const other = auth.forPeer(peer(`URI:${B}`));
    const cv = whole(certificateVerify(32), 0x0804);
    const cost = signatureCost(big, cv);
    let floodAdmitted = 0;
    let otherAdmitted = 0;
    let otherAsked = 0;
    // 10 simulated seconds: the flooder asks 1,000 times a second (every ms), the other 100 times.
    for (let ms = 0; ms < 10_000; ms++) {
      now = ms;
      if (flooder.admit(Opcode.signMessage, big.skiHex, cv) === undefined) floodAdmitted++;
      if (ms % 10 === 0) {
        otherAsked++;
        if (other.admit(Opcode.signMessage, small.skiHex, whole(certificateVerify(32))) === undefined) otherAdmitted++;
      }
    }
    assert.equal(otherAdmitted, otherAsked, 'every request of the other identity admitted');
    // The flooder's admitted work: its burst plus the rate, in RSA-2048 signatures, never 1,000 RSA-8192 signatures a second.
    assert.ok(floodAdmitted * cost <= 1000 + 10 * 1000 + cost, `${floodAdmitted} RSA-8192 signatures of cost ${cost} admitted in 10 s`);
    assert.ok(floodAdmitted >= Math.floor((10 * 1000) / cost), `${floodAdmitted}: the flooder is still served at its rate`);
  });
});
