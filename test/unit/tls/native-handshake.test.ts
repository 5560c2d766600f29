/**
 * The handshake's native crypto (src/tls/native/handshake.c): known answers, agreement with
 * node:crypto, and hostile inputs (wrong lengths, low-order X25519 points, points off the curve,
 * wrong types), which must throw a clear error and never give a secret. `make build` builds the
 * addon, so it must load here; the node:crypto fallback of every piece runs in the suites rerun
 * under DC_TLS_NATIVE=off (record-path-node-crypto.test.ts).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createECDH, createHash, createHmac, createPublicKey, decapsulate, diffieHellman, generateKeyPairSync, hkdfSync, randomBytes } from 'node:crypto';
import { NamedGroup } from '../../../src/tls/constants.js';
import { PeerMisbehaved } from '../../../src/tls/errors.js';
import { generateKeyShare, respondToKeyShare } from '../../../src/tls/key-exchange.js';
import { NATIVE_GROUP, NATIVE_HYBRID, nativeHandshake, nativeHandshakeStatus, type NativeHandshake, type NativeHybrid } from '../../../src/tls/native/handshake.js';

const forcedPure = process.env['DC_TLS_NATIVE'] === 'off';

function addon(): NativeHandshake {
  const n = nativeHandshake();
  assert.ok(n, `the native handshake addon must load after make build: ${nativeHandshakeStatus()}`);
  return n;
}

const hex = (s: string): Buffer => Buffer.from(s, 'hex');

/** X25519 public values of small order: every scalar gives the all-zero secret (RFC 7748 §6.1). */
const LOW_ORDER = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
  '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
].map(hex);

const badShare = (e: unknown): boolean => (e as { code?: string }).code === 'ERR_TLS_NATIVE_BAD_SHARE';
const zeroSecret = (e: unknown): boolean => (e as { code?: string }).code === 'ERR_TLS_NATIVE_ZERO_SECRET';
const usage = (e: unknown): boolean => (e as { code?: string }).code === 'ERR_TLS_NATIVE_HANDSHAKE';

function x25519Raw(publicKey: ReturnType<typeof generateKeyPairSync>['publicKey']): Buffer {
  return Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url');
}

void describe('native handshake: loading', () => {
  void test('it loads and passes its self-check (RFC 7748, node:crypto), unless DC_TLS_NATIVE=off', () => {
    if (forcedPure) {
      assert.equal(nativeHandshake(), undefined);
      assert.match(nativeHandshakeStatus(), /DC_TLS_NATIVE=off/);
    } else {
      addon();
      assert.equal(nativeHandshakeStatus(), 'native');
    }
  });

  void test('DC_TLS_NATIVE=off in a fresh process: the handshake and the records use node:crypto', () => {
    const base = new URL('../../../src/tls/native/', import.meta.url).href;
    const script = `Promise.all([import('${base}handshake.js'), import('${base}aead.js')]).then(([h, a]) => console.log(h.nativeHandshake() === undefined, h.nativeHandshakeStatus(), a.nativeAead() === undefined))`;
    const out = execFileSync(process.execPath, ['-e', script], { env: { ...process.env, DC_TLS_NATIVE: 'off' }, encoding: 'utf8' });
    assert.equal(out.trim(), 'true node:crypto (DC_TLS_NATIVE=off) true');
  });
});

void describe('native handshake: (EC)DHE', { skip: forcedPure && 'DC_TLS_NATIVE=off' }, () => {
  void test('RFC 7748 §6.1: both directions of the known X25519 agreement', () => {
    const n = addon();
    const alice = hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
    const bob = hex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
    const alicePublic = hex('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
    const bobPublic = hex('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
    const shared = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';
    assert.equal(n.ecdhDeriveWithPrivateKey(NATIVE_GROUP.x25519, alice, bobPublic).toString('hex'), shared);
    assert.equal(n.ecdhDeriveWithPrivateKey(NATIVE_GROUP.x25519, bob, alicePublic).toString('hex'), shared);
  });

  void test('x25519, P-256 and P-384: our shares agree with node:crypto both ways, and every share is fresh', () => {
    const n = addon();
    const x = generateKeyPairSync('x25519');
    const ours = Buffer.alloc(32);
    const secret = n.ecdhRespond(NATIVE_GROUP.x25519, x25519Raw(x.publicKey), ours);
    const publicKey = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: ours.toString('base64url') }, format: 'jwk' });
    assert.deepEqual(secret, diffieHellman({ privateKey: x.privateKey, publicKey }));
    for (const [group, curve, size, secretSize] of [
      [NATIVE_GROUP.p256, 'prime256v1', 65, 32],
      [NATIVE_GROUP.p384, 'secp384r1', 97, 48],
    ] as const) {
      const theirs = createECDH(curve);
      const point = theirs.generateKeys();
      const a = Buffer.alloc(size);
      const b = Buffer.alloc(size);
      const s1 = n.ecdhRespond(group, point, a);
      const s2 = n.ecdhDerive(n.ecdhGenerate(group, b), point);
      assert.equal(a[0], 0x04);
      assert.equal(s1.length, secretSize);
      assert.deepEqual(s1, theirs.computeSecret(a));
      assert.deepEqual(s2, theirs.computeSecret(b));
      assert.notDeepEqual(a, b, 'two keys, two shares');
    }
  });

  void test('low-order X25519 points give no secret: ERR_TLS_NATIVE_ZERO_SECRET, from both entry points', () => {
    const n = addon();
    const key = n.ecdhGenerate(NATIVE_GROUP.x25519, Buffer.alloc(32));
    for (const point of LOW_ORDER) {
      assert.throws(() => n.ecdhRespond(NATIVE_GROUP.x25519, point, Buffer.alloc(32)), zeroSecret, point.toString('hex'));
      assert.throws(() => n.ecdhDerive(key, point), zeroSecret, point.toString('hex'));
    }
  });

  void test('through key-exchange.ts a low-order point is an InvalidKeyShare (illegal_parameter), like node:crypto says', () => {
    for (const point of LOW_ORDER) {
      assert.throws(
        () => respondToKeyShare(NamedGroup.x25519, point),
        (e: unknown) => e instanceof PeerMisbehaved && e.fault === 'InvalidKeyShare' && /invalid x25519 share/.test(e.message),
      );
      assert.throws(() => generateKeyShare(NamedGroup.x25519)!.computeSecret(point), (e: unknown) => e instanceof PeerMisbehaved && e.fault === 'InvalidKeyShare');
    }
  });

  void test('NIST shares: wrong length, compressed or hybrid form, the point at infinity, coordinates off the curve or above p are refused', () => {
    const n = addon();
    const good = createECDH('prime256v1').generateKeys();
    const offCurve = Buffer.from(good);
    offCurve[64] = offCurve[64]! ^ 1;
    const compressed = createECDH('prime256v1');
    compressed.generateKeys();
    const cases: [string, Uint8Array][] = [
      ['empty', new Uint8Array(0)],
      ['the point at infinity', Uint8Array.of(0)],
      ['compressed (33 bytes)', compressed.getPublicKey(undefined, 'compressed')],
      ['one byte short', good.subarray(0, 64)],
      ['one byte long', Buffer.concat([good, Uint8Array.of(0)])],
      ['hybrid form prefix 0x06', Buffer.concat([Uint8Array.of(6), good.subarray(1)])],
      ['prefix 0x02 at full length', Buffer.concat([Uint8Array.of(2), good.subarray(1)])],
      ['off the curve', offCurve],
      ['x and y above p', Buffer.concat([Uint8Array.of(4), Buffer.alloc(64, 0xff)])],
      ['all zeros after 0x04', Buffer.concat([Uint8Array.of(4), Buffer.alloc(64)])],
      ['a P-384 point', createECDH('secp384r1').generateKeys()],
    ];
    const key = n.ecdhGenerate(NATIVE_GROUP.p256, Buffer.alloc(65));
    for (const [name, share] of cases) {
      assert.throws(() => n.ecdhRespond(NATIVE_GROUP.p256, share, Buffer.alloc(65)), badShare, name);
      assert.throws(() => n.ecdhDerive(key, share), badShare, name);
      assert.throws(() => respondToKeyShare(NamedGroup.secp256r1, share), (e: unknown) => e instanceof PeerMisbehaved && e.fault === 'InvalidKeyShare', name);
    }
  });

  void test('X25519 shares of the wrong length are refused before any key is made', () => {
    const n = addon();
    for (const length of [0, 31, 33, 65]) {
      const pub = Buffer.alloc(32, 0xaa);
      assert.throws(() => n.ecdhRespond(NATIVE_GROUP.x25519, new Uint8Array(length).fill(9), pub), badShare, String(length));
      assert.ok(pub.equals(Buffer.alloc(32, 0xaa)), 'no share written');
    }
  });

  void test('programming errors: unknown groups, wrong output lengths, foreign objects and types are usage errors', () => {
    const n = addon();
    const share = createECDH('prime256v1').generateKeys();
    const cases: [string, () => unknown][] = [
      ['group 0', () => n.ecdhGenerate(0 as 1, Buffer.alloc(32))],
      ['group 4', () => n.ecdhGenerate(4 as 1, Buffer.alloc(32))],
      ['fractional group', () => n.ecdhGenerate(1.5 as 1, Buffer.alloc(32))],
      ['a string group', () => n.ecdhGenerate('1' as unknown as 1, Buffer.alloc(32))],
      ['output one byte short', () => n.ecdhGenerate(NATIVE_GROUP.p256, Buffer.alloc(64))],
      ['output one byte long', () => n.ecdhRespond(NATIVE_GROUP.p256, share, Buffer.alloc(66))],
      ['output a Uint16Array', () => n.ecdhGenerate(NATIVE_GROUP.x25519, new Uint16Array(16) as unknown as Uint8Array)],
      ['share an array', () => n.ecdhRespond(NATIVE_GROUP.x25519, [1, 2] as unknown as Uint8Array, Buffer.alloc(32))],
      ['not a key', () => n.ecdhDerive({} as never, Buffer.alloc(32))],
      ['a number for a key', () => n.ecdhDerive(1 as never, Buffer.alloc(32))],
      ['too few arguments', () => (n.ecdhRespond as (...a: unknown[]) => unknown)(NATIVE_GROUP.x25519, Buffer.alloc(32))],
      ['known answer on P-256', () => n.ecdhDeriveWithPrivateKey(NATIVE_GROUP.p256 as 1, Buffer.alloc(32, 1), share)],
      ['known answer with a 31-byte key', () => n.ecdhDeriveWithPrivateKey(NATIVE_GROUP.x25519, Buffer.alloc(31, 1), Buffer.alloc(32, 9))],
    ];
    for (const [name, call] of cases) assert.throws(call, (e: unknown) => usage(e) && /native handshake/.test((e as Error).message), name);
  });
});

void describe('native handshake: HMAC and HKDF', { skip: forcedPure && 'DC_TLS_NATIVE=off' }, () => {
  const range = (from: number, to: number): Buffer => Buffer.from(Array.from({ length: to - from + 1 }, (_, i) => from + i));
  const out = (n: number): Uint8Array => new Uint8Array(n);

  void test('RFC 5869 A.1-A.3 (SHA-256): HKDF-Extract as hmac(salt, ikm), then HKDF-Expand', () => {
    const n = addon();
    const cases = [
      { ikm: Buffer.alloc(22, 0x0b), salt: range(0x00, 0x0c), info: range(0xf0, 0xf9), length: 42, prk: '077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5', okm: '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865' },
      {
        ikm: range(0x00, 0x4f),
        salt: range(0x60, 0xaf),
        info: range(0xb0, 0xff),
        length: 82,
        prk: '06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244',
        okm: 'b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87',
      },
      { ikm: Buffer.alloc(22, 0x0b), salt: Buffer.alloc(0), info: Buffer.alloc(0), length: 42, prk: '19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04', okm: '8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8' },
    ];
    for (const c of cases) {
      const prk = out(32);
      n.hmac(1, c.salt, c.ikm, 32, prk);
      assert.equal(Buffer.from(prk).toString('hex'), c.prk);
      const okm = out(c.length);
      n.hkdfExpand(1, prk, c.info, c.length, okm);
      assert.equal(Buffer.from(okm).toString('hex'), c.okm);
      assert.deepEqual(Buffer.from(okm), Buffer.from(hkdfSync('sha256', c.ikm, c.salt, c.info, c.length)));
    }
  });

  void test('SHA-384: HKDF (extract + expand over several blocks) and truncated HMACs agree with node:crypto', () => {
    const n = addon();
    const ikm = randomBytes(48);
    const salt = randomBytes(48);
    const info = randomBytes(30);
    const prk = out(48);
    n.hmac(2, salt, ikm, 48, prk);
    const okm = out(300);
    n.hkdfExpand(2, prk, info, 300, okm);
    assert.deepEqual(Buffer.from(okm), Buffer.from(hkdfSync('sha384', ikm, salt, info, 300)));
    const short = out(12);
    n.hmac(2, salt, ikm, 12, short);
    assert.deepEqual(Buffer.from(short), createHmac('sha384', salt).update(ikm).digest().subarray(0, 12));
    // A key longer than a block is hashed first (RFC 2104), as node:crypto does.
    const longKey = randomBytes(200);
    n.hmac(2, longKey, ikm, 48, prk);
    assert.deepEqual(Buffer.from(prk), createHmac('sha384', longKey).update(ikm).digest());
  });

  void test('HKDF-Expand-Label equals HKDF-Expand over the RFC 8446 §7.1 HkdfLabel, for both hashes and long outputs', () => {
    const n = addon();
    for (const [hash, h] of [
      [1, 'sha256'],
      [2, 'sha384'],
    ] as const) {
      const secret = randomBytes(hash === 1 ? 32 : 48);
      for (const [label, context, length] of [
        ['key', Buffer.alloc(0), 16],
        ['c hs traffic', randomBytes(hash === 1 ? 32 : 48), hash === 1 ? 32 : 48],
        ['exporter', randomBytes(32), 500],
      ] as const) {
        const full = Buffer.from(`tls13 ${label}`, 'latin1');
        const info = Buffer.concat([Uint8Array.of(length >> 8, length & 0xff, full.length), full, Uint8Array.of(context.length), context]);
        const got = out(length);
        n.hkdfExpandLabel(hash, secret, full, context, length, got);
        const want = out(length);
        n.hkdfExpand(hash, secret, info, length, want);
        assert.deepEqual(got, want, `${h} ${label}`);
        // And HKDF-Expand itself against node:crypto's HMAC, one block.
        if (length <= (hash === 1 ? 32 : 48)) assert.deepEqual(Buffer.from(got), createHmac(h, secret).update(Buffer.concat([info, Uint8Array.of(1)])).digest().subarray(0, length));
      }
    }
  });

  void test('hkdfExpandLabelPair gives what two hkdfExpandLabel calls give, for both hashes, one- and multi-block outputs, empty and long contexts', () => {
    const n = addon();
    for (const hash of [1, 2] as const) {
      const h = hash === 1 ? 32 : 48;
      const secret = randomBytes(h);
      for (const [l1, l2, context, len1, len2] of [
        ['key', 'iv', Buffer.alloc(0), 16, 12],
        ['c hs traffic', 's hs traffic', randomBytes(h), h, h],
        ['c ap traffic', 'exporter', randomBytes(255), 2 * h + 5, 1],
      ] as const) {
        const labels = [Buffer.from(`tls13 ${l1}`, 'latin1'), Buffer.from(`tls13 ${l2}`, 'latin1')] as const;
        const got = [out(len1), out(len2)] as const;
        n.hkdfExpandLabelPair(hash, secret, labels[0], labels[1], context, len1, len2, got[0], got[1]);
        const want = [out(len1), out(len2)] as const;
        n.hkdfExpandLabel(hash, secret, labels[0], context, len1, want[0]);
        n.hkdfExpandLabel(hash, secret, labels[1], context, len2, want[1]);
        assert.deepEqual(got, want, `hash ${hash}: ${l1} / ${l2}`);
      }
      // The shared HMAC context is re-keyed after the pair: a plain HMAC next is unaffected.
      const mac = out(h);
      n.hmac(hash, Buffer.alloc(0), secret, h, mac);
      assert.deepEqual(Buffer.from(mac), createHmac(hash === 1 ? 'sha256' : 'sha384', Buffer.alloc(0)).update(secret).digest());
    }
  });

  void test('hostile arguments: every bad hash, length, size or type throws a usage error and writes nothing', () => {
    const n = addon();
    const key = Buffer.alloc(32, 1);
    const label = Buffer.from('tls13 key');
    const cases: [string, (o: Uint8Array) => unknown][] = [
      ['hash 0', (o) => n.hmac(0 as 1, key, key, 32, o)],
      ['hash 3', (o) => n.hmac(3 as 1, key, key, 32, o)],
      ['HMAC length 0', (o) => n.hmac(1, key, key, 0, o)],
      ['HMAC length over the hash', (o) => n.hmac(1, key, key, 33, o)],
      ['HMAC length fractional', (o) => n.hmac(1, key, key, 1.5, o)],
      ['HMAC output too short', (o) => n.hmac(1, key, key, 32, o.subarray(0, 31))],
      ['HMAC key over 1 KiB', (o) => n.hmac(1, Buffer.alloc(1025), key, 32, o)],
      ['HMAC data over 128 KiB (a TLS 1.2 exporter context is at most 64 KiB)', (o) => n.hmac(1, key, Buffer.alloc((1 << 17) + 1), 32, o)],
      ['HMAC key a string', (o) => n.hmac(1, 'key' as unknown as Uint8Array, key, 32, o)],
      ['expand length 0', (o) => n.hkdfExpand(1, key, key, 0, o)],
      ['expand length over 255 blocks', (o) => n.hkdfExpand(1, key, key, 255 * 32 + 1, o)],
      ['expand output too short', (o) => n.hkdfExpand(1, key, key, 100, o.subarray(0, 99))],
      ['expand output a Uint32Array', () => n.hkdfExpand(1, key, key, 4, new Uint32Array(4) as unknown as Uint8Array)],
      ['label over 255 bytes', (o) => n.hkdfExpandLabel(1, key, Buffer.alloc(256), Buffer.alloc(0), 16, o)],
      ['context over 255 bytes', (o) => n.hkdfExpandLabel(1, key, label, Buffer.alloc(256), 16, o)],
      ['label length negative', (o) => n.hkdfExpandLabel(1, key, label, Buffer.alloc(0), -1, o)],
      ['label output too short', (o) => n.hkdfExpandLabel(2, key, label, Buffer.alloc(0), 48, o.subarray(0, 47))],
      ['too many arguments', (o) => (n.hkdfExpandLabel as (...a: unknown[]) => unknown)(1, key, label, Buffer.alloc(0), 16, o, 1)],
      ['pair: first label over 255 bytes', (o) => n.hkdfExpandLabelPair(1, key, Buffer.alloc(256), label, Buffer.alloc(0), 16, 12, o, o.subarray(200))],
      ['pair: second label over 255 bytes', (o) => n.hkdfExpandLabelPair(1, key, label, Buffer.alloc(256), Buffer.alloc(0), 16, 12, o, o.subarray(200))],
      ['pair: context over 255 bytes', (o) => n.hkdfExpandLabelPair(1, key, label, label, Buffer.alloc(256), 16, 12, o, o.subarray(200))],
      ['pair: second length 0', (o) => n.hkdfExpandLabelPair(1, key, label, label, Buffer.alloc(0), 16, 0, o, o.subarray(200))],
      ['pair: first output too short', (o) => n.hkdfExpandLabelPair(1, key, label, label, Buffer.alloc(0), 16, 12, o.subarray(0, 15), o.subarray(200))],
      ['pair: second output too short', (o) => n.hkdfExpandLabelPair(1, key, label, label, Buffer.alloc(0), 16, 12, o, o.subarray(200, 211))],
      ['pair: hash 3', (o) => n.hkdfExpandLabelPair(3 as 1, key, label, label, Buffer.alloc(0), 16, 12, o, o.subarray(200))],
    ];
    for (const [name, call] of cases) {
      const o = new Uint8Array(400).fill(0xaa);
      assert.throws(() => call(o), (e: unknown) => usage(e) && /native handshake/.test((e as Error).message), name);
      assert.ok(o.every((b) => b === 0xaa), `${name}: output written`);
    }
  });
});

void describe('native handshake: transcript hash', { skip: forcedPure && 'DC_TLS_NATIVE=off' }, () => {
  void test('intermediate digests, with and without extra bytes, match node:crypto and leave the running hash as it was', () => {
    const n = addon();
    for (const [id, name, length] of [
      [1, 'sha256', 32],
      [2, 'sha384', 48],
    ] as const) {
      const t = n.transcriptCreate(id);
      const reference = createHash(name);
      const out = new Uint8Array(64);
      for (const size of [0, 1, 63, 64, 65, 1000, 20000]) {
        const m = randomBytes(size);
        n.transcriptUpdate(t, m);
        reference.update(m);
        assert.equal(n.transcriptDigest(t, new Uint8Array(0), out), length);
        assert.deepEqual(Buffer.from(out.subarray(0, length)), reference.copy().digest(), `${name} after ${size} bytes`);
        const extra = randomBytes(size % 100);
        n.transcriptDigest(t, extra, out);
        assert.deepEqual(Buffer.from(out.subarray(0, length)), reference.copy().update(extra).digest(), `${name} with extra`);
      }
    }
  });

  void test('hostile arguments: unknown hash, foreign objects, short outputs and wrong types are usage errors', () => {
    const n = addon();
    const t = n.transcriptCreate(1);
    const key = n.ecdhGenerate(NATIVE_GROUP.x25519, Buffer.alloc(32));
    const cases: [string, () => unknown][] = [
      ['hash 0', () => n.transcriptCreate(0 as 1)],
      ['hash 3', () => n.transcriptCreate(3 as 1)],
      ['update on a key', () => n.transcriptUpdate(key as never, Buffer.alloc(1))],
      ['update on an object', () => n.transcriptUpdate({} as never, Buffer.alloc(1))],
      ['update with a string', () => n.transcriptUpdate(t, 'abc' as unknown as Uint8Array)],
      ['digest into 31 bytes', () => n.transcriptDigest(t, new Uint8Array(0), new Uint8Array(31))],
      ['digest of a SHA-384 transcript into 47 bytes', () => n.transcriptDigest(n.transcriptCreate(2), new Uint8Array(0), new Uint8Array(47))],
      ['a key used as a transcript for a digest', () => n.transcriptDigest(key as never, new Uint8Array(0), new Uint8Array(64))],
      ['a transcript used as a key', () => n.ecdhDerive(t as never, Buffer.alloc(32, 9))],
    ];
    for (const [name, call] of cases) assert.throws(call, (e: unknown) => usage(e) && /native handshake/.test((e as Error).message), name);
  });
});

void describe('native handshake: ML-KEM-768 encapsulation', { skip: forcedPure && 'DC_TLS_NATIVE=off' }, () => {
  const keyPair = () => {
    const { publicKey, privateKey } = generateKeyPairSync('ml-kem-768' as 'x25519');
    return { raw: publicKey.export({ format: 'raw-public' } as never) as unknown as Buffer, privateKey };
  };

  void test('node:crypto decapsulates our ciphertext to our secret', () => {
    const n = addon();
    const { raw, privateKey } = keyPair();
    const ciphertext = Buffer.alloc(1088);
    const secret = n.mlkemEncapsulate(raw, ciphertext);
    assert.equal(secret.length, 32);
    assert.deepEqual(secret, decapsulate(privateKey, ciphertext));
  });

  void test('a key of the wrong length or failing the FIPS 203 modulus check is a bad share; wrong output sizes are usage errors; nothing is written', () => {
    const n = addon();
    const { raw } = keyPair();
    const aboveQ = Buffer.from(raw);
    aboveQ[0] = 0xff;
    aboveQ[1] = aboveQ[1]! | 0x0f; // the first 12-bit coefficient is 0xfff, above q = 3329
    for (const [name, key] of [
      ['1183 bytes', raw.subarray(0, 1183)],
      ['1185 bytes', Buffer.concat([raw, Uint8Array.of(0)])],
      ['empty', Buffer.alloc(0)],
      ['a coefficient above q', aboveQ],
    ] as const) {
      const ciphertext = Buffer.alloc(1088, 0xaa);
      assert.throws(() => n.mlkemEncapsulate(key, ciphertext), badShare, name);
      assert.ok(ciphertext.every((b) => b === 0xaa), `${name}: ciphertext written`);
    }
    for (const size of [0, 1087, 1089]) assert.throws(() => n.mlkemEncapsulate(raw, Buffer.alloc(size)), usage, `ciphertext buffer of ${size}`);
    assert.throws(() => n.mlkemEncapsulate('key' as unknown as Uint8Array, Buffer.alloc(1088)), usage);
  });
});

void describe('native handshake: the hybrid answer (hybridRespond)', { skip: forcedPure && 'DC_TLS_NATIVE=off' }, () => {
  const kemPair = () => {
    const { publicKey, privateKey } = generateKeyPairSync('ml-kem-768' as 'x25519');
    return { raw: publicKey.export({ format: 'raw-public' } as never) as unknown as Buffer, privateKey };
  };
  /** A client's share for each hybrid, with what node:crypto needs to check the server's answer. */
  const clientShare = (hybrid: NativeHybrid) => {
    const kem = kemPair();
    if (hybrid === NATIVE_HYBRID.X25519MLKEM768) {
      const x = generateKeyPairSync('x25519');
      const ecdhSecret = (ours: Uint8Array) =>
        diffieHellman({ privateKey: x.privateKey, publicKey: createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(ours).toString('base64url') }, format: 'jwk' }) });
      return { share: Buffer.concat([kem.raw, x25519Raw(x.publicKey)]), kem, kemAt: 0, ecdhLength: 32, ecdhSecret };
    }
    const ecdh = createECDH('prime256v1');
    return { share: Buffer.concat([ecdh.generateKeys(), kem.raw]), kem, kemAt: 65, ecdhLength: 65, ecdhSecret: (ours: Uint8Array) => ecdh.computeSecret(ours) };
  };
  const HYBRIDS = [
    ['X25519MLKEM768', NATIVE_HYBRID.X25519MLKEM768],
    ['SecP256r1MLKEM768', NATIVE_HYBRID.SecP256r1MLKEM768],
  ] as const;

  for (const [name, hybrid] of HYBRIDS) {
    void test(`${name}: node:crypto decapsulates our ciphertext and agrees on the ECDH half, each part where the draft puts it; every answer is fresh`, () => {
      const n = addon();
      const c = clientShare(hybrid);
      const kemFirst = hybrid === NATIVE_HYBRID.X25519MLKEM768;
      const answers = [0, 1].map(() => {
        const share = Buffer.alloc(1088 + c.ecdhLength);
        const secret = Buffer.alloc(64);
        assert.equal(n.hybridRespond(hybrid, c.share, share, secret), undefined);
        const ciphertext = kemFirst ? share.subarray(0, 1088) : share.subarray(c.ecdhLength);
        const ours = kemFirst ? share.subarray(1088) : share.subarray(0, c.ecdhLength);
        const kemSecret = decapsulate(c.kem.privateKey, ciphertext);
        const ecdhSecret = c.ecdhSecret(ours);
        assert.deepEqual(secret, kemFirst ? Buffer.concat([kemSecret, ecdhSecret]) : Buffer.concat([ecdhSecret, kemSecret]));
        if (!kemFirst) assert.equal(share[0], 0x04, 'an uncompressed P-256 point first');
        return share;
      });
      assert.notDeepEqual(answers[0], answers[1], 'a fresh ECDH key and encapsulation per answer');
    });

    void test(`${name}: a share of the wrong length, an encapsulation key above q, a bad ECDH half are bad shares; the secret output is left all zeros`, () => {
      const n = addon();
      const c = clientShare(hybrid);
      const aboveQ = Buffer.from(c.share);
      aboveQ[c.kemAt] = 0xff;
      aboveQ[c.kemAt + 1] = aboveQ[c.kemAt + 1]! | 0x0f; // the first 12-bit coefficient is 0xfff, above q = 3329
      const badEcdh = Buffer.from(c.share);
      if (hybrid === NATIVE_HYBRID.X25519MLKEM768) badEcdh.fill(0, 1184);
      else badEcdh[64] = badEcdh[64]! ^ 1; // y no longer matches x: off the curve
      const cases: [string, Uint8Array, (e: unknown) => boolean, boolean][] = [
        ['empty', new Uint8Array(0), badShare, false],
        ['one byte short', c.share.subarray(0, c.share.length - 1), badShare, false],
        ['one byte long', Buffer.concat([c.share, Uint8Array.of(0)]), badShare, false],
        ['the ML-KEM key alone', c.kem.raw, badShare, false],
        ['a coefficient above q', aboveQ, badShare, true],
        [hybrid === NATIVE_HYBRID.X25519MLKEM768 ? 'a low-order x25519 half' : 'a P-256 half off the curve', badEcdh, hybrid === NATIVE_HYBRID.X25519MLKEM768 ? zeroSecret : badShare, true],
      ];
      for (const [what, share, code, exchanged] of cases) {
        const out = Buffer.alloc(1088 + c.ecdhLength, 0xaa);
        const secret = Buffer.alloc(64, 0xaa);
        assert.throws(() => n.hybridRespond(hybrid, share, out, secret), code, what);
        const ciphertext = hybrid === NATIVE_HYBRID.X25519MLKEM768 ? out.subarray(0, 1088) : out.subarray(c.ecdhLength);
        assert.ok(ciphertext.every((b) => b === 0xaa), `${what}: no ciphertext written`);
        // Refused on its length: nothing written; refused in the key exchange: the secret output cleansed.
        assert.ok(secret.every((b) => b === (exchanged ? 0 : 0xaa)), `${what}: secret output ${secret.toString('hex')}`);
      }
    });
  }

  void test('wrong output sizes, outputs overlapping the share or each other, an unknown hybrid and wrong types are usage errors', () => {
    const n = addon();
    const c = clientShare(NATIVE_HYBRID.X25519MLKEM768);
    for (const [share, secret] of [
      [1119, 64],
      [1121, 64],
      [1153, 64],
      [1120, 63],
      [1120, 65],
      [1120, 0],
    ] as const) {
      assert.throws(() => n.hybridRespond(NATIVE_HYBRID.X25519MLKEM768, c.share, Buffer.alloc(share), Buffer.alloc(secret)), usage, `${share} / ${secret}`);
    }
    assert.throws(() => n.hybridRespond(NATIVE_HYBRID.SecP256r1MLKEM768, clientShare(NATIVE_HYBRID.SecP256r1MLKEM768).share, Buffer.alloc(1120), Buffer.alloc(64)), usage, 'an X25519MLKEM768-sized answer for SecP256r1MLKEM768');
    // Outputs inside the client's share (its read buffer), or the secret inside our share.
    const slab = Buffer.alloc(1216 + 1120 + 64);
    c.share.copy(slab);
    const share = slab.subarray(0, 1216);
    assert.throws(() => n.hybridRespond(NATIVE_HYBRID.X25519MLKEM768, share, slab.subarray(1000, 2120), slab.subarray(2336)), usage, 'share output over the client share');
    assert.throws(() => n.hybridRespond(NATIVE_HYBRID.X25519MLKEM768, share, slab.subarray(1216, 2336), slab.subarray(1200, 1264)), usage, 'secret output over the client share');
    assert.throws(() => n.hybridRespond(NATIVE_HYBRID.X25519MLKEM768, share, slab.subarray(1216, 2336), slab.subarray(2300, 2364)), usage, 'secret output over the share output');
    assert.ok(slab.subarray(0, 1216).equals(c.share), 'the client share is untouched');
    n.hybridRespond(NATIVE_HYBRID.X25519MLKEM768, share, slab.subarray(1216, 2336), slab.subarray(2336)); // adjacent views of one buffer are fine
    for (const id of [0, 3, 1.5, -1]) assert.throws(() => n.hybridRespond(id as NativeHybrid, c.share, Buffer.alloc(1120), Buffer.alloc(64)), usage, `hybrid ${id}`);
    assert.throws(() => n.hybridRespond(NATIVE_HYBRID.X25519MLKEM768, 'share' as unknown as Uint8Array, Buffer.alloc(1120), Buffer.alloc(64)), usage);
    assert.throws(() => (n.hybridRespond as unknown as (...a: unknown[]) => void)(NATIVE_HYBRID.X25519MLKEM768, c.share, Buffer.alloc(1120)), usage, 'three arguments');
  });
});
