/**
 * An RSA key whose CRT parameters do not belong to it still signs correctly, 10-20x slower
 * (OpenSSL falls back to signing with d): refused at load, as a key over 8192 bits is.
 */
import assert from 'node:assert/strict';
import { createPrivateKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import { describe, it } from 'node:test';
import { SigningKey } from '../../../src/keyless/keystore.js';
import { rsaParameterProblem } from '../../../src/keyless/rsa-parameters.js';

void describe('RSA key parameters', () => {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });

  const tampered = (field: 'dp' | 'dq' | 'qi') => {
    const bytes = Buffer.from(jwk[field]!, 'base64url');
    bytes[bytes.length - 1]! ^= 0x02;
    return createPrivateKey({ key: { ...jwk, [field]: bytes.toString('base64url') }, format: 'jwk' });
  };

  void it('accepts a key as node generates it', () => {
    assert.equal(rsaParameterProblem(privateKey), undefined);
    assert.equal(new SigningKey(privateKey, 'good').detail, 'RSA-2048');
  });

  for (const field of ['dp', 'dq', 'qi'] as const) {
    void it(`refuses a key whose ${field} was changed, although it still makes valid signatures`, () => {
      const bad = tampered(field);
      const signature = sign('sha256', Buffer.from('m'), bad);
      assert.equal(verify('sha256', Buffer.from('m'), publicKey, signature), true, 'the slow path still signs correctly');
      assert.match(rsaParameterProblem(bad) ?? '', /CRT parameters/);
      assert.throws(() => new SigningKey(bad, 'bad'), /CRT parameters .*stall the key server's signing/);
    });
  }
});
