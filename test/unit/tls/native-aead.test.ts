/**
 * The record path's two AEADs (src/tls/native): the native addon and node:crypto must produce
 * the same records and refuse the same ones, for TLS 1.3 and TLS 1.2, every suite. The addon's
 * own argument checks are driven with hostile offsets, lengths and types: it must throw before
 * reading or writing outside a buffer. `make build` builds the addon, so it must load here; the
 * node:crypto fallback runs in the same tests (aead = null) and in the whole suite under
 * DC_TLS_AEAD=node.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createCipheriv, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { ContentType } from '../../../src/tls/constants.js';
import { BadRecordMac, InternalError, RecordOverflow } from '../../../src/tls/errors.js';
import { RecordOpener, RecordSealer } from '../../../src/tls/record.js';
import { SUITES } from '../../../src/tls/suites.js';
import { Tls12RecordOpener, Tls12RecordSealer } from '../../../src/tls/tls12/record.js';
import { TLS12_SUITES } from '../../../src/tls/tls12/suites.js';
import { isSlabView, nativeAead, nativeAeadStatus, type NativeAead } from '../../../src/tls/native/aead.js';

const forcedPure = process.env['DC_TLS_AEAD'] === 'node' || process.env['DC_TLS_NATIVE'] === 'off';

function addon(): NativeAead {
  const a = nativeAead();
  assert.ok(a, `the native AEAD must load after make build: ${nativeAeadStatus()}`);
  return a;
}

/** Opens every record of a run of whole records; the content of each. */
function openAll(opener: { openIn(b: Uint8Array, s: number, e: number): { type: number; content: Uint8Array } }, wire: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0; at < wire.length; ) {
    const end = at + 5 + ((wire[at + 3]! << 8) | wire[at + 4]!);
    out.push(Buffer.from(opener.openIn(wire, at, end).content));
    at = end;
  }
  return out;
}

void describe('native AEAD: loading', () => {
  void test('it loads and agrees with node:crypto (the self-check), unless DC_TLS_AEAD=node forces the fallback', () => {
    if (forcedPure) {
      assert.equal(nativeAead(), undefined);
      assert.match(nativeAeadStatus(), /DC_TLS_AEAD=node|DC_TLS_NATIVE=off/);
    } else {
      addon();
      assert.equal(nativeAeadStatus(), 'native');
    }
  });

  void test('DC_TLS_AEAD=node in a fresh process: records go through node:crypto', () => {
    const script = `import('${new URL('../../../src/tls/native/aead.js', import.meta.url).href}').then((m) => console.log(m.nativeAead() === undefined, m.nativeAeadStatus()))`;
    const out = execFileSync(process.execPath, ['-e', script], { env: { ...process.env, DC_TLS_AEAD: 'node', DC_TLS_NATIVE: '' }, encoding: 'utf8' });
    assert.equal(out.trim(), 'true node:crypto (DC_TLS_AEAD=node)');
  });
});

void describe('native AEAD: TLS 1.3 records, native and node:crypto side by side', { skip: forcedPure && 'DC_TLS_AEAD=node' }, () => {
  for (const suite of SUITES.values()) {
    const secret = randomBytes(suite.hashLength);

    void test(`${suite.name}: the same bytes from both, each opens the other's, for sizes 0..2^14 and padding`, () => {
      const a = addon();
      const sn = new RecordSealer(suite, secret, a);
      const sp = new RecordSealer(suite, secret, null);
      const on = new RecordOpener(suite, secret, a);
      const op = new RecordOpener(suite, secret, null);
      assert.equal(sn.isNative, true);
      assert.equal(sp.isNative, false);
      for (const [size, padding] of [[0, 0], [1, 0], [15, 0], [16, 0], [17, 0], [1000, 0], [16384, 0], [100, 7], [16000, 384]] as const) {
        const content = randomBytes(size);
        const rn = sn.seal(ContentType.application_data, content, padding);
        const rp = sp.seal(ContentType.application_data, content, padding);
        assert.ok(rn.equals(rp), `record of ${size} bytes + ${padding} padding differs`);
        const a1 = on.openIn(rp, 0, rp.length);
        const a2 = op.openIn(rn, 0, rn.length);
        assert.equal(a1.type, ContentType.application_data);
        assert.ok(Buffer.from(a1.content).equals(content) && Buffer.from(a2.content).equals(content));
      }
      assert.equal(sn.sequence, 9);
      assert.equal(on.sequence, 9);
    });

    void test(`${suite.name}: a flipped bit anywhere (header, ciphertext, tag) is bad_record_mac and does not use up a sequence number`, () => {
      const a = addon();
      const sealer = new RecordSealer(suite, secret, a);
      const opener = new RecordOpener(suite, secret, a);
      const rec = sealer.seal(ContentType.application_data, Buffer.from('hello, world'));
      for (const at of [0, 2, 4, 5, 10, rec.length - 17, rec.length - 16, rec.length - 1]) {
        const bad = Buffer.from(rec);
        bad[at]! ^= 0x01;
        if (at === 1 || at === 3 || at === 4) continue; // version and length are checked by the record layer
        assert.throws(() => opener.openIn(bad, 0, bad.length), BadRecordMac, `bit flipped at ${at}`);
        assert.equal(opener.sequence, 0);
      }
      assert.equal(Buffer.from(opener.openIn(rec, 0, rec.length).content).toString(), 'hello, world');
      assert.equal(opener.sequence, 1);
    });

    void test(`${suite.name}: nonces follow the sequence: a replayed or reordered record is refused`, () => {
      const a = addon();
      const sealer = new RecordSealer(suite, secret, a);
      const opener = new RecordOpener(suite, secret, a);
      const r0 = sealer.seal(ContentType.application_data, Buffer.from('zero'));
      const r1 = sealer.seal(ContentType.application_data, Buffer.from('one'));
      assert.ok(!r0.subarray(5).equals(r1.subarray(5)));
      assert.throws(() => opener.openIn(r1, 0, r1.length), BadRecordMac);
      opener.openIn(r0, 0, r0.length);
      assert.throws(() => opener.openIn(r0, 0, r0.length), BadRecordMac, 'replay');
      assert.equal(Buffer.from(opener.openIn(r1, 0, r1.length).content).toString(), 'one');
    });

    void test(`${suite.name}: limits: over 2^14 + 256 is record_overflow, shorter than the tag bad_record_mac, an inner plaintext over 2^14 + 1 record_overflow, sealing over 2^14 refused`, () => {
      const a = addon();
      const opener = new RecordOpener(suite, secret, a);
      const big = Buffer.alloc(5 + 16384 + 257);
      big.set([23, 3, 3, (16384 + 257) >> 8, (16384 + 257) & 0xff]);
      assert.throws(() => opener.openIn(big, 0, big.length), RecordOverflow);
      const short = Buffer.from([23, 3, 3, 0, 16, ...new Uint8Array(16)]);
      assert.throws(() => opener.openIn(short, 0, short.length), BadRecordMac);
      // A peer that seals 2^14 bytes plus type plus one padding byte: authentic, but too long.
      const rogue = new RecordSealer(suite, secret, null).seal(ContentType.application_data, Buffer.alloc(16384, 1), 1);
      assert.throws(() => opener.openIn(rogue, 0, rogue.length), RecordOverflow);
      assert.throws(() => new RecordSealer(suite, secret, a).seal(ContentType.application_data, Buffer.alloc(16384 + 256)), InternalError);
    });
  }

  void test('records sealed one after another leave as one piece, and opened content is not overwritten by later records', () => {
    const a = addon();
    const suite = SUITES.values().next().value!;
    const secret = randomBytes(suite.hashLength);
    const sealer = new RecordSealer(suite, secret, a);
    const opener = new RecordOpener(suite, secret, a);
    const pieces: Uint8Array[] = [];
    const contents = [0, 1, 2, 3].map((i) => Buffer.alloc(5000, i));
    for (const c of contents) sealer.sealInto(pieces, ContentType.application_data, c);
    assert.ok(pieces.length === 1 || pieces.length === 2, `${pieces.length} pieces: one run, two if the slab ran out`);
    const held: Uint8Array[] = [];
    for (let at = 0, wire = Buffer.concat(pieces); at < wire.length; ) {
      const end = at + 5 + ((wire[at + 3]! << 8) | wire[at + 4]!);
      held.push(opener.openIn(wire, at, end).content); // views, kept
      at = end;
    }
    for (let i = 0; i < 50; i++) sealer.seal(ContentType.application_data, Buffer.alloc(16384, 0xee)); // more slab use
    held.forEach((h, i) => assert.ok(Buffer.from(h).equals(contents[i]!), `content ${i} intact`));
  });

  void test('opened application data is a view of the shared slab; handshake messages and alerts are copies (a kept ticket pins no slab)', () => {
    const a = addon();
    const suite = SUITES.values().next().value!;
    const secret = randomBytes(suite.hashLength);
    const sealer = new RecordSealer(suite, secret, a);
    const opener = new RecordOpener(suite, secret, a);
    const key12 = randomBytes(16);
    const iv12 = randomBytes(4);
    const suite12 = [...TLS12_SUITES.values()].find((s) => s.aead === 'aes-128-gcm')!;
    const sealer12 = new Tls12RecordSealer(suite12, key12, iv12, a);
    const opener12 = new Tls12RecordOpener(suite12, key12, iv12, a);
    for (const [type, slab] of [[ContentType.application_data, true], [ContentType.handshake, false], [ContentType.alert, false]] as const) {
      const r13 = sealer.seal(type, Buffer.from([1, 2, 3, 4]));
      const r12 = sealer12.seal(type, Buffer.from([1, 2, 3, 4]));
      for (const opened of [opener.openIn(r13, 0, r13.length), opener12.openIn(r12, 0, r12.length)]) {
        assert.equal(opened.type, type);
        assert.deepEqual([...opened.content], [1, 2, 3, 4]);
        assert.equal(isSlabView(opened.content), slab, `type ${type}: ${opened.content.buffer.byteLength}-byte backing store`);
      }
    }
  });

  void test('property: any content, any suite, native and node:crypto seal the same record and open each other', () => {
    const a = addon();
    const suites = [...SUITES.values()];
    fc.assert(
      fc.property(fc.integer({ min: 0, max: suites.length - 1 }), fc.uint8Array({ maxLength: 3000 }), fc.integer({ min: 0, max: 40 }), (i, content, padding) => {
        const suite = suites[i]!;
        const secret = Buffer.alloc(suite.hashLength, 9);
        const rn = new RecordSealer(suite, secret, a).seal(22, content, padding);
        const rp = new RecordSealer(suite, secret, null).seal(22, content, padding);
        assert.ok(rn.equals(rp));
        const o = new RecordOpener(suite, secret, a).openIn(rp, 0, rp.length);
        assert.equal(o.type, 22);
        assert.ok(Buffer.from(o.content).equals(content));
      }),
      { numRuns: 200 },
    );
  });
});

void describe('native AEAD: TLS 1.2 records', { skip: forcedPure && 'DC_TLS_AEAD=node' }, () => {
  for (const suite of TLS12_SUITES.values()) {
    if (suite.name.includes('RSA')) continue; // the record layer depends on the AEAD only
    const key = randomBytes(suite.keyLength);
    const iv = randomBytes(suite.fixedIvLength);

    void test(`${suite.name}: the same bytes from both, each opens the other's, a flipped bit is bad_record_mac`, () => {
      const a = addon();
      const sn = new Tls12RecordSealer(suite, key, iv, a);
      const sp = new Tls12RecordSealer(suite, key, iv, null);
      const on = new Tls12RecordOpener(suite, key, iv, a);
      const op = new Tls12RecordOpener(suite, key, iv, null);
      for (const size of [0, 1, 100, 16384]) {
        const content = randomBytes(size);
        const rn = sn.seal(ContentType.application_data, content);
        const rp = sp.seal(ContentType.application_data, content);
        assert.ok(rn.equals(rp), `record of ${size} bytes differs`);
        assert.deepEqual(openAll(on, rp), [content]);
        assert.deepEqual(openAll(op, rn), [content]);
      }
      const rec = sn.seal(ContentType.application_data, Buffer.from('tamper'));
      for (const at of [0, rec.length - 20, rec.length - 1]) {
        const bad = Buffer.from(rec);
        bad[at]! ^= 0x80;
        assert.throws(() => new Tls12RecordOpener(suite, key, iv, a).openIn(bad, 0, bad.length), BadRecordMac, `bit flipped at ${at}`);
      }
      assert.throws(() => sn.seal(ContentType.application_data, Buffer.alloc(16385)), InternalError);
    });

    if (suite.explicitNonceLength === 8) {
      void test(`${suite.name}: a peer's explicit nonce that is not its sequence number (random, above 2^53) opens`, () => {
        const a = addon();
        const opener = new Tls12RecordOpener(suite, key, iv, a);
        const explicit = Buffer.from('fedcba9876543210', 'hex');
        const content = Buffer.from('explicit nonce of the peer');
        const aad = Buffer.concat([Buffer.alloc(8), Buffer.from([23, 3, 3, 0, content.length])]);
        const c = createCipheriv(suite.aead as 'aes-128-gcm', key, Buffer.concat([iv, explicit]), { authTagLength: 16 }).setAAD(aad);
        const body = Buffer.concat([explicit, c.update(content), c.final(), c.getAuthTag()]);
        const rec = Buffer.concat([Buffer.from([23, 3, 3, body.length >> 8, body.length & 0xff]), body]);
        assert.deepEqual(openAll(opener, rec), [content]);
      });
    }
  }
});

void describe('native AEAD: the addon refuses hostile arguments before touching memory', { skip: forcedPure && 'DC_TLS_AEAD=node' }, () => {
  const key = Buffer.alloc(16, 1);
  const iv = Buffer.alloc(12, 2);
  const aad = Buffer.alloc(5, 3);

  void test('create: unknown algorithm, wrong key or IV length, non-Uint8Array key', () => {
    const a = addon();
    assert.throws(() => a.create(0 as 1, true, key, iv), /native AEAD/);
    assert.throws(() => a.create(4 as 1, true, key, iv), /native AEAD/);
    assert.throws(() => a.create(1, true, Buffer.alloc(32), iv), /native AEAD/);
    assert.throws(() => a.create(2, true, key, iv), /native AEAD/);
    assert.throws(() => a.create(1, true, key, Buffer.alloc(8)), /native AEAD/);
    assert.throws(() => a.create(1, true, new Uint16Array(8) as unknown as Uint8Array, iv), /native AEAD/);
    assert.throws(() => a.create(1, true, [1, 2] as unknown as Uint8Array, iv), /native AEAD/);
  });

  void test('seal: every out-of-range offset, length, sequence or type throws and leaves the output untouched', () => {
    const a = addon();
    const ctx = a.create(1, true, key, iv);
    const src = Buffer.alloc(100, 7);
    const guard = (): Buffer => Buffer.alloc(200, 0xaa);
    const cases: [string, (dst: Buffer) => unknown][] = [
      ['source past its end', (d) => a.seal(ctx, 0, aad, src, 1, 100, -1, d, 0)],
      ['source offset past its end', (d) => a.seal(ctx, 0, aad, src, 101, 0, -1, d, 0)],
      ['output one byte short', (d) => a.seal(ctx, 0, aad, src, 0, 100, -1, d, 200 - 115)],
      ['output one byte short with the trailer', (d) => a.seal(ctx, 0, aad, src, 0, 100, 23, d, 200 - 116)],
      ['negative offset', (d) => a.seal(ctx, 0, aad, src, -1, 10, -1, d, 0)],
      ['fractional length', (d) => a.seal(ctx, 0, aad, src, 0, 1.5, -1, d, 0)],
      ['NaN offset', (d) => a.seal(ctx, 0, aad, src, 0, 10, -1, d, NaN)],
      ['length over any record', (d) => a.seal(ctx, 0, aad, Buffer.alloc(40000), 0, 40000, -1, d, 0)],
      ['sequence 2^53', (d) => a.seal(ctx, 2 ** 53, aad, src, 0, 10, -1, d, 0)],
      ['negative sequence', (d) => a.seal(ctx, -1, aad, src, 0, 10, -1, d, 0)],
      ['explicit nonce of 7 bytes', (d) => a.seal(ctx, Buffer.alloc(7), aad, src, 0, 10, -1, d, 0)],
      ['nonce of 13 bytes', (d) => a.seal(ctx, Buffer.alloc(13), aad, src, 0, 10, -1, d, 0)],
      ['additional data over 64 bytes', (d) => a.seal(ctx, 0, Buffer.alloc(65), src, 0, 10, -1, d, 0)],
      ['not a context', (d) => a.seal({} as never, 0, aad, src, 0, 10, -1, d, 0)],
      ['an opening context', (d) => a.seal(a.create(1, false, key, iv), 0, aad, src, 0, 10, -1, d, 0)],
      ['a string for the source', (d) => a.seal(ctx, 0, aad, 'abc' as unknown as Uint8Array, 0, 3, -1, d, 0)],
      ['overlapping, not in place', (d) => a.seal(ctx, 0, aad, d, 0, 50, -1, d, 10)],
      ['output over the additional data', (d) => a.seal(ctx, 0, d.subarray(0, 5), src, 0, 10, -1, d, 0)],
    ];
    for (const [name, call] of cases) {
      const dst = guard();
      assert.throws(() => call(dst), /native AEAD/, name);
      assert.ok(dst.equals(guard()), `${name}: output written`);
    }
    // The exact fit works, in place too.
    const dst = guard();
    assert.equal(a.seal(ctx, 0, aad, src, 0, 100, 23, dst, 200 - 117), 117);
    const inPlace = Buffer.alloc(116, 7);
    assert.equal(a.seal(ctx, 0, aad, inPlace, 0, 100, -1, inPlace, 0), 116);
  });

  void test('a 12-byte seq is the whole nonce (the context\'s IV unused): node:crypto with that nonce gives the same bytes, and open takes it back', () => {
    const a = addon();
    const key32 = Buffer.alloc(32, 4);
    const sealer = a.create(2, true, key32, iv);
    const opener = a.create(2, false, key32, Buffer.alloc(12, 0x55));
    for (let i = 0; i < 3; i++) {
      const nonce = randomBytes(12);
      const plain = randomBytes(40 + i);
      const out = Buffer.alloc(plain.length + 16);
      assert.equal(a.seal(sealer, nonce, aad, plain, 0, plain.length, -1, out, 0), plain.length + 16);
      const c = createCipheriv('aes-256-gcm', key32, nonce).setAAD(aad);
      assert.deepEqual(out, Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]), `ticket ${i}: the same as node:crypto`);
      const back = Buffer.alloc(plain.length);
      assert.equal(a.open(opener, nonce, aad, out, 0, out.length, back, 0), true);
      assert.deepEqual(back, plain);
      nonce[0]! ^= 1;
      assert.equal(a.open(opener, nonce, aad, out, 0, out.length, back, 0), false, 'another nonce does not open it');
    }
  });

  void test('property: for any offsets and lengths, seal either throws having written nothing, or writes exactly its output range', () => {
    const a = addon();
    const ctx = a.create(1, true, key, iv);
    const src = Buffer.alloc(200, 7);
    const n = fc.integer({ min: 0, max: 260 });
    fc.assert(
      fc.property(n, n, n, fc.boolean(), (srcOff, srcLen, dstOff, trailer) => {
        const dst = Buffer.alloc(200, 0xaa);
        const t = trailer ? 23 : -1;
        let written: number;
        try {
          written = a.seal(ctx, 1, aad, src, srcOff, srcLen, t, dst, dstOff);
        } catch {
          assert.ok(dst.equals(Buffer.alloc(200, 0xaa)), 'a refused call wrote nothing');
          assert.ok(srcOff + srcLen > 200 || dstOff + srcLen + (trailer ? 1 : 0) + 16 > 200, 'a call that fits was refused');
          return;
        }
        assert.equal(written, srcLen + (trailer ? 1 : 0) + 16);
        assert.ok(dst.subarray(0, dstOff).equals(Buffer.alloc(dstOff, 0xaa)) && dst.subarray(dstOff + written).equals(Buffer.alloc(200 - dstOff - written, 0xaa)), 'nothing outside the output range');
      }),
      { numRuns: 500 },
    );
  });

  void test('open: too short for a tag, ranges past the buffers, an output one byte short: thrown; a wrong tag: false, nothing handed out', () => {
    const a = addon();
    const sealCtx = a.create(3, true, Buffer.alloc(32, 1), iv);
    const openCtx = a.create(3, false, Buffer.alloc(32, 1), iv);
    const rec = Buffer.alloc(64 + 16);
    a.seal(sealCtx, 4, aad, Buffer.alloc(64, 5), 0, 64, -1, rec, 0);
    const dst = Buffer.alloc(64);
    assert.throws(() => a.open(openCtx, 4, aad, rec, 0, 15, dst, 0), /native AEAD/, 'shorter than a tag');
    assert.throws(() => a.open(openCtx, 4, aad, rec, 1, 80, dst, 0), /native AEAD/, 'past the source');
    assert.throws(() => a.open(openCtx, 4, aad, rec, 0, 80, dst, 1), /native AEAD/, 'output one byte short');
    assert.throws(() => a.open(sealCtx, 4, aad, rec, 0, 80, dst, 0), /native AEAD/, 'a sealing context');
    assert.equal(a.open(openCtx, 5, aad, rec, 0, 80, dst, 0), false, 'wrong sequence number');
    assert.equal(a.open(openCtx, 4, Buffer.alloc(5), rec, 0, 80, dst, 0), false, 'wrong additional data');
    assert.equal(a.open(openCtx, 4, aad, rec, 0, 80, dst, 0), true);
    assert.ok(dst.equals(Buffer.alloc(64, 5)));
    // No additional data and no plaintext: the tag alone authenticates.
    const empty = Buffer.alloc(16);
    assert.equal(a.seal(sealCtx, 9, new Uint8Array(0), new Uint8Array(0), 0, 0, -1, empty, 0), 16);
    assert.equal(a.open(openCtx, 9, new Uint8Array(0), empty, 0, 16, new Uint8Array(0), 0), true);
    empty[0]! ^= 1;
    assert.equal(a.open(openCtx, 9, new Uint8Array(0), empty, 0, 16, new Uint8Array(0), 0), false);
    // In place: the plaintext over the ciphertext.
    assert.equal(a.open(openCtx, 4, aad, rec, 0, 80, rec, 0), true);
    assert.ok(rec.subarray(0, 64).equals(Buffer.alloc(64, 5)));
  });
});
