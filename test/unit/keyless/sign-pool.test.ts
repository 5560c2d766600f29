/**
 * The key server's signing workers hold copies of private keys. After a key set reload they must
 * drop the ones that left the directory, and still sign with a key that comes back.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, verify } from 'node:crypto';
import { KeylessError } from '../../../src/keyless/errors.js';
import { SigningKey } from '../../../src/keyless/keystore.js';
import { ErrorCode, Opcode } from '../../../src/keyless/protocol.js';
import { encodeSignMessage } from '../../../src/keyless/sign-message.js';
import { SigningPool } from '../../../src/keyless/sign-pool.js';
import { SignatureScheme } from '../../../src/tls/constants.js';

void describe('SigningPool', () => {
  const pool = new SigningPool(2);
  after(() => pool.close());
  const keyA = new SigningKey(generateKeyPairSync('ed25519').privateKey, 'a.pem');
  const keyB = new SigningKey(generateKeyPairSync('ed25519').privateKey, 'b.pem');
  const message = Buffer.from('CertificateVerify content');
  const signsWith = async (key: SigningKey): Promise<void> => {
    const signature = await pool.sign(key, Opcode.ed25519Sign, message);
    assert.ok(verify(null, message, key.key, signature), `a valid signature by ${key.source}`);
  };

  void it('workers drop the keys a reload removed, and a returning key is sent again', async () => {
    // Concurrent jobs spread over both workers, so each ends up holding both keys.
    await Promise.all([signsWith(keyA), signsWith(keyB), signsWith(keyA), signsWith(keyB)]);
    const before = await pool.heldKeyCounts();
    assert.equal(before.reduce((a, b) => a + b, 0) >= 2, true, `held ${before.join(', ')}`);

    pool.retainOnly([keyA.skiHex]);
    const afterRetain = await pool.heldKeyCounts();
    assert.ok(afterRetain.every((n) => n <= 1), `after retaining one key the workers hold ${afterRetain.join(', ')}`);

    pool.retainOnly([]);
    assert.deepEqual(await pool.heldKeyCounts(), [0, 0]);

    await Promise.all([signsWith(keyB), signsWith(keyA)]);
    assert.ok((await pool.heldKeyCounts()).some((n) => n > 0));
  });

  void it('workers sign whole messages (0xC0) with node:crypto and digests with @noble/curves, both verified', async () => {
    const pair = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const key = new SigningKey(pair.privateKey, 'p256.pem');
    const whole = await pool.sign(key, Opcode.signMessage, encodeSignMessage({ scheme: SignatureScheme.ecdsa_secp256r1_sha256, message }));
    assert.ok(verify('sha256', message, { key: pair.publicKey, dsaEncoding: 'der' }, whole));
    const digest = createHash('sha256').update(message).digest();
    const fromDigest = await pool.sign(key, Opcode.ecdsaSignSha256, digest);
    assert.ok(verify('sha256', message, { key: pair.publicKey, dsaEncoding: 'der' }, fromDigest));
    await assert.rejects(
      pool.sign(key, Opcode.signMessage, encodeSignMessage({ scheme: SignatureScheme.ed25519, message })),
      (e: unknown) => e instanceof KeylessError && e.code === ErrorCode.cryptoFailed,
    );
  });
});
