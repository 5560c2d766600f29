import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import fc from 'fast-check';
import {
  DerDecodeError,
  DerTag,
  children,
  decodeOid,
  encodeLength,
  encodeTlv,
  encodeUnsignedInteger,
  expectTag,
  isMinimalDer,
  readTlv,
} from '../../../../src/tls/x509/der.js';
import { parseCertificate } from '../../../../src/tls/x509/certificate.js';
import { CertificateError } from '../../../../src/tls/x509/errors.js';
import { subjectPublicKeyBits } from '../../../../src/keyless/ski.js';

const bytes = (...b: number[]) => Uint8Array.from(b);

function decodeError(fn: () => unknown, message?: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof DerDecodeError && (!message || message.test(e.message)));
}

void describe('DER reader', () => {
  void it('reads short and long definite lengths', () => {
    assert.deepEqual(readTlv(bytes(0x04, 0x02, 1, 2), 0, 4), { tag: 0x04, headerStart: 0, start: 2, end: 4 });
    const long = new Uint8Array(3 + 200);
    long.set([0x04, 0x81, 200]);
    assert.deepEqual(readTlv(long, 0, long.length), { tag: 0x04, headerStart: 0, start: 3, end: 203 });
    const longer = new Uint8Array(4 + 300);
    longer.set([0x30, 0x82, 0x01, 0x2c]);
    assert.deepEqual(readTlv(longer, 0, longer.length), { tag: 0x30, headerStart: 0, start: 4, end: 304 });
  });

  void it('refuses indefinite lengths, lengths of more than four bytes and high tag numbers', () => {
    decodeError(() => readTlv(bytes(0x30, 0x80, 0, 0), 0, 4), /indefinite/);
    decodeError(() => readTlv(bytes(0x04, 0x85, 0, 0, 0, 0, 1, 0), 0, 8), /length encoding/);
    decodeError(() => readTlv(bytes(0x1f, 0x01, 0x00), 0, 3), /high tag/);
  });

  void it('stays within the limit it is given, not the end of the buffer', () => {
    // SEQUENCE of 4 whose child claims 3 bytes: the buffer has them, the SEQUENCE does not.
    const buf = bytes(0x30, 0x03, 0x04, 0x03, 0xaa, 0xbb, 0xcc);
    const seq = readTlv(buf, 0, buf.length);
    decodeError(() => children(buf, seq), /past the end/);
    // A limit beyond the buffer is the buffer's end.
    decodeError(() => readTlv(bytes(0x04, 0x05, 0x01), 0, 1000), /past the end/);
  });

  void it('raises only DerDecodeError on every truncation and on random bytes', () => {
    const spki = new Uint8Array(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' }));
    const walk = (buf: Uint8Array): void => {
      const visit = (t: ReturnType<typeof readTlv>): void => {
        if (t.tag & 0x20) for (const c of children(buf, t)) visit(c);
      };
      visit(readTlv(buf, 0, buf.length));
    };
    walk(spki);
    for (let n = 0; n < spki.length; n++) {
      const cut = spki.subarray(0, n);
      try {
        walk(cut);
        assert.fail(`a truncation to ${n} bytes was accepted`);
      } catch (e) {
        assert.ok(e instanceof DerDecodeError, `${n}: ${String(e)}`);
      }
    }
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (b) => {
        try {
          walk(b);
        } catch (e) {
          if (!(e instanceof DerDecodeError)) throw e;
        }
      }),
    );
  });

  void it('names what it expected when a tag is wrong', () => {
    decodeError(() => expectTag(readTlv(bytes(0x04, 0x00), 0, 2), DerTag.sequence, 'SubjectPublicKeyInfo'), /expected SubjectPublicKeyInfo/);
    decodeError(() => expectTag(undefined, DerTag.sequence, 'AlgorithmIdentifier'), /expected AlgorithmIdentifier/);
  });

  void it('decodes object identifiers', () => {
    const der = bytes(0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07);
    assert.equal(decodeOid(der, readTlv(der, 0, der.length)), '1.2.840.10045.3.1.7');
    decodeError(() => decodeOid(bytes(0x06, 0x00), readTlv(bytes(0x06, 0x00), 0, 2)));
  });
});

void describe('DER writer', () => {
  void it('writes the shortest length encoding', () => {
    const cases: Array<[number, number[]]> = [
      [0, [0x00]],
      [127, [0x7f]],
      [128, [0x81, 0x80]],
      [255, [0x81, 0xff]],
      [256, [0x82, 0x01, 0x00]],
      [65535, [0x82, 0xff, 0xff]],
      [65536, [0x83, 0x01, 0x00, 0x00]],
    ];
    for (const [n, want] of cases) assert.deepEqual([...encodeLength(n)], want, String(n));
    assert.throws(() => encodeLength(-1), RangeError);
  });

  void it('round-trips through the reader', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0x1e }), fc.uint8Array({ maxLength: 70_000 }), (tag, body) => {
        const der = encodeTlv(tag, body.subarray(0, body.length >> 1), body.subarray(body.length >> 1));
        const t = readTlv(der, 0, der.length);
        assert.equal(t.tag, tag);
        assert.equal(t.end, der.length);
        assert.deepEqual(der.subarray(t.start), body);
      }),
      { numRuns: 50 },
    );
  });

  void it('writes non-negative INTEGERs minimally, with a 0x00 only before a set top bit', () => {
    assert.deepEqual([...encodeUnsignedInteger(0n)], [0x02, 0x01, 0x00]);
    assert.deepEqual([...encodeUnsignedInteger(0x7fn)], [0x02, 0x01, 0x7f]);
    assert.deepEqual([...encodeUnsignedInteger(0x80n)], [0x02, 0x02, 0x00, 0x80]);
    assert.deepEqual([...encodeUnsignedInteger(0x0100n)], [0x02, 0x02, 0x01, 0x00]);
    assert.throws(() => encodeUnsignedInteger(-1n), RangeError);
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 600n) - 1n }), (v) => {
        const der = encodeUnsignedInteger(v);
        const t = expectTag(readTlv(der, 0, der.length), DerTag.integer, 'INTEGER');
        const body = der.subarray(t.start, t.end);
        assert.equal(BigInt('0x' + (Buffer.from(body).toString('hex') || '0')), v);
        assert.equal(body[0]! & 0x80, 0, 'never negative');
        if (body.length > 1) assert.ok(body[0] !== 0 || (body[1]! & 0x80) !== 0, 'no superfluous leading zero');
      }),
    );
  });

  void it('writes Ecdsa-Sig-Value exactly as the keyless signer wrote it before (reference encoder)', () => {
    // The encoder prehashed.ts had before it used this module, kept here as the reference.
    const derLength = (length: number): Buffer =>
      length < 0x80 ? Buffer.of(length) : length < 0x100 ? Buffer.of(0x81, length) : Buffer.of(0x82, length >> 8, length & 0xff);
    const integer = (v: bigint): Buffer => {
      let h = v.toString(16);
      if (h.length % 2) h = '0' + h;
      let body = Buffer.from(h, 'hex');
      if (body[0]! & 0x80) body = Buffer.concat([Buffer.of(0), body]);
      return Buffer.concat([Buffer.of(0x02), derLength(body.length), body]);
    };
    const reference = (r: bigint, s: bigint): Uint8Array => {
      const content = Buffer.concat([integer(r), integer(s)]);
      return new Uint8Array(Buffer.concat([Buffer.of(0x30), derLength(content.length), content]));
    };
    const scalar = fc.bigInt({ min: 1n, max: (1n << 521n) - 1n });
    fc.assert(
      fc.property(scalar, scalar, (r, s) => {
        assert.deepEqual(encodeTlv(DerTag.sequence, encodeUnsignedInteger(r), encodeUnsignedInteger(s)), reference(r, s));
      }),
    );
  });
});

void describe('DER users', () => {
  void it('subjectPublicKeyBits (keyless SKI) reads an SPKI and raises DerDecodeError on anything else', () => {
    const spki = new Uint8Array(generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'der' }));
    assert.equal(subjectPublicKeyBits(spki).length, 32);
    decodeError(() => subjectPublicKeyBits(spki.subarray(0, spki.length - 1)));
    decodeError(() => subjectPublicKeyBits(bytes(0x31, 0x00)), /SubjectPublicKeyInfo/);
    const withUnusedBits = Uint8Array.from(spki);
    withUnusedBits[spki.length - 33] = 1;
    decodeError(() => subjectPublicKeyBits(withUnusedBits), /unused bits/);
  });

  void it('certificate parsing reports DER failures as a malformed certificate', () => {
    assert.throws(
      () => parseCertificate(bytes(0x30, 0x80, 0x00, 0x00)),
      (e: unknown) => e instanceof CertificateError && e.code === 'malformed' && /indefinite/.test(e.message),
    );
  });
});

void describe('isMinimalDer', () => {
  const spkis = (['ed25519', 'ec', 'rsa'] as const).map((type) => {
    const { publicKey } = type === 'ec' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : type === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 1024 }) : generateKeyPairSync('ed25519');
    return new Uint8Array(publicKey.export({ type: 'spki', format: 'der' }));
  });

  void it("accepts node's own SubjectPublicKeyInfo encodings", () => {
    for (const spki of spkis) assert.equal(isMinimalDer(spki), true);
  });

  void it('refuses trailing bytes, a truncation and a needlessly long length', () => {
    const ed = spkis[0]!;
    assert.equal(isMinimalDer(Uint8Array.from([...ed, 0])), false);
    assert.equal(isMinimalDer(ed.subarray(0, ed.length - 1)), false);
    assert.equal(isMinimalDer(Uint8Array.from([0x30, 0x81, ed[1]!, ...ed.subarray(2)])), false);
    assert.equal(isMinimalDer(Uint8Array.from([0x04, 0x82, 0x00, 0x01, 0xff])), false);
  });

  void it('refuses nesting deeper than any key structure, without recursing into it', () => {
    const nest = (levels: number): Uint8Array => {
      let inner: Uint8Array = Uint8Array.from([0x05, 0x00]);
      for (let i = 0; i < levels; i++) inner = encodeTlv(DerTag.sequence, inner);
      return inner;
    };
    assert.equal(isMinimalDer(nest(8)), true);
    assert.equal(isMinimalDer(nest(40)), false);
  });

  void it('never throws on arbitrary bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => typeof isMinimalDer(bytes) === 'boolean'));
  });
});

