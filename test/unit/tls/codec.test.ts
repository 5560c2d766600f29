import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, createPublicKey } from 'node:crypto';
import { Reader, Writer, allocUnfilled, encode } from '../../../src/tls/codec.js';
import { DecodeError, InternalError } from '../../../src/tls/errors.js';
import { createKeySigner } from '../../../src/tls/signer.js';
import { SignatureScheme } from '../../../src/tls/constants.js';
import { verifySignature } from '../../../src/tls/signature-schemes.js';

void test('reads integers of every width in network order', () => {
  const r = new Reader(Uint8Array.from([1, 0, 2, 0, 0, 3, 0xff, 0, 0, 4]));
  assert.equal(r.u8(), 1);
  assert.equal(r.u16(), 2);
  assert.equal(r.u24(), 3);
  assert.equal(r.u32(), 0xff000004);
  r.expectEnd();
});

void test('open/close vectors encode exactly like the callback form, nested and across buffer growth', () => {
  const big = new Uint8Array(300).fill(9);
  const viaCallbacks = encode((w) => w.u24Prefixed((w) => w.u8(1).u16Prefixed((w) => w.bytes(big).u8Prefixed((w) => w.u16(0xabcd)))), 4);
  const w = new Writer(4);
  const outer = w.open(3);
  const middle = w.u8(1).open(2);
  const inner = w.bytes(big).open(1);
  w.u16(0xabcd).close(inner).close(middle).close(outer);
  assert.deepEqual([...w.finish()], [...viaCallbacks]);
});

void test('closing a vector longer than its prefix allows is an internal error', () => {
  const w = new Writer();
  const v = w.open(1);
  w.bytes(new Uint8Array(256));
  assert.throws(() => w.close(v), InternalError);
});

void test('back-patches nested length prefixes', () => {
  const out = encode((w) => w.u16Prefixed((w) => w.u8(7).u8Prefixed((w) => w.bytes(Uint8Array.of(1, 2)))));
  assert.deepEqual([...out], [0, 4, 7, 2, 1, 2]);
  const r = new Reader(out);
  const v = r.u16Prefixed(1, 10);
  assert.equal(v.u8(), 7);
  assert.deepEqual([...v.opaque8(1)], [1, 2]);
  v.expectEnd();
  r.expectEnd();
});

void test('rejects a vector shorter than its minimum with DecodeError', () => {
  assert.throws(() => new Reader(Uint8Array.of(0)).u8Prefixed(1), DecodeError);
});

void test('rejects a vector longer than its maximum with DecodeError', () => {
  assert.throws(() => new Reader(Uint8Array.of(3, 1, 2, 3)).u8Prefixed(0, 2), DecodeError);
});

void test('rejects a length prefix that runs past the end', () => {
  assert.throws(() => new Reader(Uint8Array.of(0, 5, 1)).u16Prefixed(), DecodeError);
});

void test('rejects trailing bytes', () => {
  const r = new Reader(Uint8Array.of(1, 2));
  r.u8();
  assert.throws(() => r.expectEnd(), DecodeError);
});

void test('a sub-reader cannot read past its own vector', () => {
  const r = new Reader(Uint8Array.of(1, 9, 9));
  const sub = r.u8Prefixed();
  sub.u8();
  assert.throws(() => sub.u8(), DecodeError);
});

void test('the writer grows past its initial capacity', () => {
  const w = new Writer(1);
  for (let i = 0; i < 1000; i++) w.u16(i);
  assert.equal(w.finish().length, 2000);
});

for (const [name, gen, scheme] of [
  ['ed25519', () => generateKeyPairSync('ed25519'), SignatureScheme.ed25519],
  ['P-256', () => generateKeyPairSync('ec', { namedCurve: 'P-256' }), SignatureScheme.ecdsa_secp256r1_sha256],
  ['P-384', () => generateKeyPairSync('ec', { namedCurve: 'P-384' }), SignatureScheme.ecdsa_secp384r1_sha384],
  ['RSA-PSS', () => generateKeyPairSync('rsa', { modulusLength: 2048 }), SignatureScheme.rsa_pss_rsae_sha256],
] as const) {
  void test(`a key signer for ${name} produces signatures that verify`, async () => {
    const { privateKey } = gen();
    const signer = createKeySigner(privateKey);
    assert.ok(signer.schemes.includes(scheme));
    const msg = new TextEncoder().encode('hello');
    const sig = await signer.sign(scheme, msg);
    assert.ok(verifySignature(scheme, createPublicKey(privateKey), msg, sig));
    assert.ok(!verifySignature(scheme, createPublicKey(privateKey), Uint8Array.of(1), sig));
  });
}

void test('allocUnfilled: Uint8Arrays (not Buffers) of the length asked, never overlapping, large ones on their own', () => {
  const a = allocUnfilled(5);
  const b = allocUnfilled(3);
  assert.equal(Object.getPrototypeOf(a), Uint8Array.prototype);
  assert.deepEqual([a.length, b.length], [5, 3]);
  a.fill(1);
  b.fill(2);
  assert.ok(a.every((x) => x === 1));
  // Many small arrays, spanning more than one pool: each keeps what was written to it.
  const many = Array.from({ length: 3000 }, (_, i) => allocUnfilled(40).fill(i & 0xff));
  assert.ok(many.every((m, i) => m.length === 40 && m.every((x) => x === (i & 0xff))));
  const large = allocUnfilled(100_000);
  assert.equal(large.length, 100_000);
  assert.equal(large.byteOffset, 0);
});
