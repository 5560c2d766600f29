/**
 * The sign-message extension's payload codec (src/keyless/sign-message.ts) and how a request
 * carrying it travels through the keyless codec, plus which requests count as legacy hashes.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { decodeMessage, encodeMessage } from '../../../src/keyless/codec.js';
import { KeylessError, KeylessFormatError } from '../../../src/keyless/errors.js';
import { ErrorCode, MAX_WIRE_BODY_LENGTH, Opcode, opcodeName, signOperationOf } from '../../../src/keyless/protocol.js';
import { decodeSignMessage, encodeSignMessage, MAX_SIGN_MESSAGE_LENGTH } from '../../../src/keyless/sign-message.js';
import { signRequestOf, usesLegacyHash } from '../../../src/keyless/sign-request.js';
import { SignatureScheme } from '../../../src/tls/constants.js';
import { certificateVerifyContent } from '../../../src/tls/signature-schemes.js';

const content = certificateVerifyContent('server', randomBytes(32));
const isFormatError = (e: unknown): boolean => e instanceof KeylessFormatError && e.code === ErrorCode.formatError;

void describe('sign-message payload codec', () => {
  void it('round-trips scheme and message, the scheme in network order first', () => {
    for (const scheme of [SignatureScheme.ecdsa_secp256r1_sha256, SignatureScheme.rsa_pss_rsae_sha512, 0x0000, 0xffff]) {
      const bytes = encodeSignMessage({ scheme, message: content });
      assert.equal(bytes.length, 2 + content.length);
      assert.equal((bytes[0]! << 8) | bytes[1]!, scheme);
      const back = decodeSignMessage(bytes);
      assert.equal(back.scheme, scheme);
      assert.deepEqual(Buffer.from(back.message), Buffer.from(content));
    }
  });

  void it('round-trips inside a whole keyless message, padded as the client sends it', () => {
    const ski = randomBytes(20);
    const payload = encodeSignMessage({ scheme: SignatureScheme.ecdsa_secp384r1_sha384, message: content });
    const wire = encodeMessage(7, { opcode: Opcode.signMessage, ski, payload }, { padTo: 1024 });
    assert.equal(wire.length, 1024);
    const { id, operation } = decodeMessage(wire);
    assert.equal(id, 7);
    assert.equal(operation.opcode, 0xc0);
    assert.equal(opcodeName(operation.opcode), 'signMessage');
    const request = signRequestOf(operation.opcode, operation.payload!);
    assert.deepEqual(request && request.kind === 'message' && [request.scheme, Buffer.from(request.message)], [
      SignatureScheme.ecdsa_secp384r1_sha384,
      Buffer.from(content),
    ]);
  });

  void it('rejects every truncation of the scheme, and a scheme without a message, as format errors', () => {
    const bytes = encodeSignMessage({ scheme: SignatureScheme.ed25519, message: content });
    for (const length of [0, 1, 2]) {
      assert.throws(() => decodeSignMessage(bytes.subarray(0, length)), isFormatError, `${length} bytes`);
    }
    // Every longer prefix is a shorter message, which is all the payload says about its length.
    for (let length = 3; length <= bytes.length; length++) {
      assert.equal(decodeSignMessage(bytes.subarray(0, length)).message.length, length - 2);
    }
  });

  void it('a truncated extension request on the wire is a format error, never another exception', () => {
    const payload = encodeSignMessage({ scheme: SignatureScheme.ecdsa_secp256r1_sha256, message: content });
    const wire = encodeMessage(1, { opcode: Opcode.signMessage, ski: randomBytes(20), payload });
    for (let length = 0; length < wire.length; length++) {
      assert.throws(() => decodeMessage(wire.subarray(0, length)), (e: unknown) => e instanceof KeylessError, `${length} bytes`);
    }
  });

  void it('encodes the longest message that fits one request and refuses one byte more', () => {
    const longest = new Uint8Array(MAX_SIGN_MESSAGE_LENGTH);
    const payload = encodeSignMessage({ scheme: SignatureScheme.ed25519, message: longest });
    const wire = encodeMessage(1, { opcode: Opcode.signMessage, ski: randomBytes(20), payload });
    assert.equal(wire.length, 8 + MAX_WIRE_BODY_LENGTH);
    assert.throws(() => encodeSignMessage({ scheme: SignatureScheme.ed25519, message: new Uint8Array(MAX_SIGN_MESSAGE_LENGTH + 1) }), isFormatError);
  });

  void it('refuses an empty message and a scheme that is not a u16', () => {
    assert.throws(() => encodeSignMessage({ scheme: SignatureScheme.ed25519, message: new Uint8Array(0) }), isFormatError);
    for (const scheme of [-1, 0x10000, 1.5]) {
      assert.throws(() => encodeSignMessage({ scheme, message: content }), isFormatError, String(scheme));
    }
  });

  void it('uses an opcode no documented operation has', () => {
    assert.equal(signOperationOf(Opcode.signMessage), undefined);
    const documented = Object.entries(Opcode).filter(([name]) => name !== 'signMessage').map(([, v]) => v);
    assert.ok(!documented.includes(Opcode.signMessage));
  });
});

void describe('legacy hashes in signing requests', () => {
  const message = (scheme: number) => signRequestOf(Opcode.signMessage, encodeSignMessage({ scheme, message: content }))!;
  const digest = (opcode: number) => signRequestOf(opcode, new Uint8Array(32))!;

  void it('counts MD5-SHA1 and SHA-1 opcodes and SHA-1 schemes as legacy, and nothing else', () => {
    for (const opcode of [Opcode.rsaSignMd5Sha1, Opcode.rsaSignSha1, Opcode.ecdsaSignMd5Sha1, Opcode.ecdsaSignSha1]) {
      assert.ok(usesLegacyHash(digest(opcode)), opcodeName(opcode));
    }
    for (const scheme of [SignatureScheme.rsa_pkcs1_sha1, SignatureScheme.ecdsa_sha1]) assert.ok(usesLegacyHash(message(scheme)));
    for (const opcode of [Opcode.rsaSignSha256, Opcode.ecdsaSignSha384, Opcode.rsaPssSignSha256, Opcode.ed25519Sign]) {
      assert.ok(!usesLegacyHash(digest(opcode)), opcodeName(opcode));
    }
    for (const scheme of [SignatureScheme.ecdsa_secp256r1_sha256, SignatureScheme.rsa_pss_rsae_sha256, SignatureScheme.ed25519]) {
      assert.ok(!usesLegacyHash(message(scheme)));
    }
  });
});
