/**
 * RSA keys over 8192 bits (cert-manager's largest) are refused wherever the key server loads keys:
 * one signature cannot be interrupted and holds the signing shared by every tenant for its length.
 * Generating a real 16384-bit key takes minutes, so the oversized keys here are RSA structures of
 * the right size whose numbers are random (rsaKeyOfSize: OpenSSL reads them; they are refused
 * before any use).
 */
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KeyDirectory, MAX_RSA_KEY_BITS, SigningKey } from '../../../src/keyless/keystore.js';
import { GrantProblem, signingKeyFor } from '../../../src/keyserver/key-material.js';
import { createCa } from '../../../src/pki/certs.js';
import { rsaKeyOfSize } from './pki.js';

void describe('RSA key size: at most 8192 bits', () => {
  void it('SigningKey takes 8192 bits and refuses 8200 and 16384, saying what to use instead', () => {
    assert.equal(MAX_RSA_KEY_BITS, 8192);
    // 8192 bits passes the size check; these random numbers then fail the parameter check
    // (rsa-parameters.ts), which a real 8192-bit key passes.
    assert.throws(() => new SigningKey(rsaKeyOfSize(8192), 'test'), (e: unknown) => e instanceof Error && !/maximum/.test(e.message) && /RSA key's primes/.test(e.message));
    for (const bits of [8200, 16384]) {
      assert.throws(() => new SigningKey(rsaKeyOfSize(bits), 'test'), new RegExp(`RSA key of ${bits} bits is over the 8192-bit maximum.*use RSA 8192 or smaller, or an ECDSA key`));
    }
  });

  void it('a key directory refuses to start with such a file, naming it; later it is refused alone', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keyserver-key-size-'));
    try {
      writeFileSync(join(dir, 'huge.pem'), rsaKeyOfSize(16384).export({ type: 'pkcs1', format: 'pem' }));
      await assert.rejects(KeyDirectory.open(dir, { watch: false, pollIntervalMs: 0 }), /huge\.pem: invalid RSA PRIVATE KEY: RSA key of 16384 bits is over the 8192-bit maximum/);
      rmSync(join(dir, 'huge.pem'));
      writeFileSync(join(dir, 'ok.pem'), generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs1', format: 'pem' }));
      const store = await KeyDirectory.open(dir, { watch: false, pollIntervalMs: 0 });
      try {
        writeFileSync(join(dir, 'huge.pem'), rsaKeyOfSize(16384).export({ type: 'pkcs1', format: 'pem' }));
        const result = await store.reload();
        assert.equal(result.ok, false);
        assert.match(result.ok ? '' : result.error.message, /huge\.pem.*16384 bits/);
        assert.equal(store.size, 1);
      } finally {
        store.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  void it('the in-cluster key server refuses such a key from a Secret (the grant problem names the Secret)', async () => {
    const certificate = await createCa('any certificate', new Date());
    const b64 = (s: string | Buffer): string => Buffer.from(s).toString('base64');
    const source = { certificate: { namespace: 'shop', name: 'www-tls' }, key: { namespace: 'shop', name: 'www-tls', key: 'tls.key' } };
    const secret = { type: 'kubernetes.io/tls', data: { 'tls.crt': b64(certificate.certPem), 'tls.key': b64(rsaKeyOfSize(16384).export({ type: 'pkcs8', format: 'pem' })) } };
    assert.throws(
      () => signingKeyFor(source, secret, secret),
      (err: unknown) => err instanceof GrantProblem && !err.revoke && /tls\.key of Secret shop\/www-tls cannot sign: RSA key of 16384 bits is over the 8192-bit maximum/.test(err.message),
    );
  });
});
