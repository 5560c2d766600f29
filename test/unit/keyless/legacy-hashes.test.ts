/**
 * MD5-SHA1 and SHA-1 signing opcodes are refused by the key server unless it is started with
 * allowLegacyHashes (`dc-operator keyserver --allow-legacy-hashes`).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createPrivateKey, createPublicKey, verify } from 'node:crypto';
import { KeylessClient } from '../../../src/keyless/client.js';
import { KeylessError } from '../../../src/keyless/errors.js';
import { ErrorCode, Opcode } from '../../../src/keyless/protocol.js';
import { startKeyServer, type KeyServer } from '../../../src/keyless/server.js';
import { encodeSignMessage } from '../../../src/keyless/sign-message.js';
import { computeSki } from '../../../src/keyless/ski.js';
import { SignatureScheme } from '../../../src/tls/constants.js';
import { makeKeylessPki, type KeylessPki } from './pki.js';

void describe('legacy hash opcodes at the key server', () => {
  let pki: KeylessPki;
  const servers: KeyServer[] = [];
  const clients: KeylessClient[] = [];
  before(() => {
    pki = makeKeylessPki(['p256']);
  });
  after(async () => {
    for (const c of clients) await c.close();
    for (const s of servers) await s.close();
    pki.cleanup();
  });

  async function clientOf(allowLegacyHashes: boolean | undefined): Promise<KeylessClient> {
    const ks = await startKeyServer({ keysDir: pki.keysDir, ca: pki.ca, cert: pki.server.cert, key: pki.server.key, host: '127.0.0.1', port: 0, ...(allowLegacyHashes === undefined ? {} : { allowLegacyHashes }) });
    servers.push(ks);
    const client = new KeylessClient({ address: `127.0.0.1:${ks.port}`, ca: pki.ca, cert: pki.client.cert, key: pki.client.key, timeoutMs: 5000 });
    clients.push(client);
    return client;
  }

  const key = () => createPrivateKey(pki.keys.p256.key);
  const signed = Buffer.from('ServerKeyExchange params');
  const digest = (hash: string) => createHash(hash).update(signed).digest();

  void it('refuses ECDSA with SHA-1 and MD5-SHA1 by default with bad_opcode, and still signs SHA-256', async () => {
    const client = await clientOf(undefined);
    const ski = computeSki(key());
    for (const opcode of [Opcode.ecdsaSignSha1, Opcode.ecdsaSignMd5Sha1, Opcode.rsaSignSha1, Opcode.rsaSignMd5Sha1]) {
      await assert.rejects(client.sign(ski, opcode, opcode === Opcode.ecdsaSignMd5Sha1 || opcode === Opcode.rsaSignMd5Sha1 ? new Uint8Array(36) : digest('sha1')), (e: unknown) => e instanceof KeylessError && e.code === ErrorCode.badOpcode, `opcode 0x${opcode.toString(16)}`);
    }
    const sig = await client.sign(ski, Opcode.ecdsaSignSha256, digest('sha256'));
    assert.ok(verify('sha256', signed, createPublicKey(key()), sig), 'a valid ECDSA P-256/SHA-256 signature');
  });

  void it('refuses SHA-1 schemes in the sign-message extension by default, as a crypto failure (bad opcode would read as "extension unsupported")', async () => {
    const client = await clientOf(undefined);
    const ski = computeSki(key());
    for (const scheme of [SignatureScheme.ecdsa_sha1, SignatureScheme.rsa_pkcs1_sha1]) {
      await assert.rejects(
        client.sign(ski, Opcode.signMessage, encodeSignMessage({ scheme, message: signed })),
        (e: unknown) => e instanceof KeylessError && e.code === ErrorCode.cryptoFailed,
        `scheme 0x${scheme.toString(16)}`,
      );
    }
    const sig = await client.sign(ski, Opcode.signMessage, encodeSignMessage({ scheme: SignatureScheme.ecdsa_secp256r1_sha256, message: signed }));
    assert.ok(verify('sha256', signed, createPublicKey(key()), sig), 'a valid ECDSA P-256/SHA-256 signature of the whole message');
  });

  void it('signs SHA-1 when allowLegacyHashes is set', async () => {
    const client = await clientOf(true);
    const sig = await client.sign(computeSki(key()), Opcode.ecdsaSignSha1, digest('sha1'));
    assert.ok(verify('sha1', signed, createPublicKey(key()), sig), 'a valid ECDSA P-256/SHA-1 signature');
  });
});
