/**
 * ML-DSA-44/65/87 keys through keyless. No documented opcode signs with them, so only our
 * sign-message opcode (0xC0, the scheme in its payload) carries them: a real key server over
 * mutual TLS, from a key directory (on the main thread and in a signing worker) and with the
 * in-cluster policy for a sidecar identity (a TLS 1.3 CertificateVerify only), its key read from
 * a certificate Secret with an ML-DSA certificate as the cluster mode reads it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { KeylessClient } from '../../../src/keyless/client.js';
import { KeylessRemoteError } from '../../../src/keyless/errors.js';
import { ErrorCode, Opcode } from '../../../src/keyless/protocol.js';
import { startKeyServer, type KeyServer } from '../../../src/keyless/server.js';
import { computeSki } from '../../../src/keyless/ski.js';
import { IdentityAuthorizer } from '../../../src/keyserver/authorization.js';
import { KeyGrants } from '../../../src/keyserver/grants.js';
import { signingKeyFor } from '../../../src/keyserver/key-material.js';
import { RateLimiter } from '../../../src/keyserver/rate-limit.js';
import { KeylessSigner, opcodeForScheme } from '../../../src/signer/keyless.js';
import { SignatureScheme } from '../../../src/tls/constants.js';
import { certificateVerifyContent, verifySignature } from '../../../src/tls/signature-schemes.js';
import { mlDsaSelfSigned } from '../../support/ml-dsa-certificate.js';
import { makeIdentityPki, type IdentityPki } from '../keyserver/pki.js';
import { makeKeylessPki, type KeylessPki } from './pki.js';

const VARIANTS = [
  ['ml-dsa-44', SignatureScheme.mldsa44],
  ['ml-dsa-65', SignatureScheme.mldsa65],
  ['ml-dsa-87', SignatureScheme.mldsa87],
] as const;

const keyPairs = new Map(VARIANTS.map(([type]) => [type, generateKeyPairSync(type as 'ml-dsa-65')]));
const publicKeyOf = (type: string): KeyObject => keyPairs.get(type as 'ml-dsa-65')!.publicKey;
const content = (): Uint8Array => certificateVerifyContent('server', new Uint8Array(48).fill(3));

void describe('ML-DSA through keyless (sign-message opcode only)', () => {
  let pki: KeylessPki;
  const closers: Array<() => Promise<void>> = [];
  before(() => {
    pki = makeKeylessPki(['p256']);
    for (const [type] of VARIANTS) {
      writeFileSync(join(pki.keysDir, `${type}.pem`), keyPairs.get(type)!.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    }
  });
  after(async () => {
    for (const close of closers.reverse()) await close();
    pki.cleanup();
  });

  const serve = async (extra: Partial<Parameters<typeof startKeyServer>[0]> = {}): Promise<KeyServer> => {
    const ks = await startKeyServer({ keysDir: pki.keysDir, ca: pki.ca, cert: pki.server.cert, key: pki.server.key, host: '127.0.0.1', port: 0, ...extra });
    closers.push(() => ks.close());
    return ks;
  };
  const signerFor = (ks: KeyServer, type: string): KeylessSigner => {
    const signer = new KeylessSigner({ address: `127.0.0.1:${ks.port}`, ca: pki.ca, clientCert: pki.client.cert, clientKey: pki.client.key, publicKey: publicKeyOf(type), timeoutMs: 10_000 });
    closers.push(() => signer.close());
    return signer;
  };

  void it('maps each ML-DSA scheme to the sign-message opcode, with no digest', () => {
    for (const [, scheme] of VARIANTS) assert.deepEqual(opcodeForScheme(scheme), { opcode: Opcode.signMessage, hash: null });
  });

  for (const workers of [0, 1]) {
    void it(`a key server signs a CertificateVerify with each ML-DSA key, verified with its public key (${workers === 0 ? 'main thread' : 'a signing worker'})`, { timeout: 60_000 }, async () => {
      const ks = await serve({ signingWorkers: workers });
      for (const [type, scheme] of VARIANTS) {
        const signer = signerFor(ks, type);
        assert.deepEqual(signer.schemes, [scheme], type);
        const message = content();
        const signature = await signer.sign(scheme, message);
        assert.ok(verifySignature(scheme, publicKeyOf(type), message, signature), `${type} verifies`);
      }
    });
  }

  void it('a key server without the sign-message opcode: the error says ML-DSA needs it (no digest to fall back to)', { timeout: 30_000 }, async () => {
    // Our server with 0xC0 refused as a documented-only server answers it: "bad opcode".
    const ks = await serve({ authorizer: { forPeer: () => ({ admit: (op) => (op === Opcode.signMessage ? ErrorCode.badOpcode : undefined), answered: () => undefined }) } });
    await assert.rejects(signerFor(ks, 'ml-dsa-65').sign(SignatureScheme.mldsa65, content()), /does not speak the sign-message extension \(0xC0\), the only way to sign mldsa65 over keyless/);
  });

  void it('an ML-DSA key does not answer a documented digest opcode or another scheme (crypto failed)', { timeout: 30_000 }, async () => {
    const ks = await serve();
    const client = new KeylessClient({ address: `127.0.0.1:${ks.port}`, ca: pki.ca, cert: pki.client.cert, key: pki.client.key, timeoutMs: 5000 });
    closers.push(() => client.close());
    const ski = computeSki(publicKeyOf('ml-dsa-65'));
    const code = (p: Promise<unknown>) => p.then(() => 'signed', (e: unknown) => (e instanceof KeylessRemoteError ? e.code : e));
    assert.equal(await code(client.sign(ski, Opcode.ecdsaSignSha256, new Uint8Array(32))), ErrorCode.cryptoFailed);
    assert.equal(await code(client.signMessage(ski, SignatureScheme.mldsa44, content(), () => { throw new Error('no fallback'); })), ErrorCode.cryptoFailed);
  });
});

void describe('ML-DSA at the in-cluster key server: a sidecar identity has its TLS 1.3 CertificateVerify signed, nothing of TLS 1.2', () => {
  let pki: IdentityPki;
  let ks: KeyServer;
  let client: KeylessClient;
  const identity = 'spiffe://cluster.local/ns/team-a/dc/www';
  const certificate = mlDsaSelfSigned('ml-dsa-65', 'www.example');
  const publicKey = createPublicKey(certificate.keyPem);
  before(async () => {
    pki = makeIdentityPki();
    const grants = new KeyGrants();
    // Built as the cluster mode builds it: from a certificate Secret holding the ML-DSA tls.crt and tls.key.
    const b64 = (s: string): string => Buffer.from(s).toString('base64');
    const secret = { metadata: { namespace: 'team-a', name: 'www-tls' }, type: 'kubernetes.io/tls', data: { 'tls.crt': b64(certificate.certPem), 'tls.key': b64(certificate.keyPem) } };
    const where = { namespace: 'team-a', name: 'www-tls' };
    const key = signingKeyFor({ certificate: where, key: { ...where, key: 'tls.key' } }, secret, secret);
    assert.equal(key.detail, 'ML-DSA-65');
    grants.set(identity, { key, source: key.source });
    const authorizer = new IdentityAuthorizer({ trustDomain: 'cluster.local', grants, registry: new Registry(), rateLimit: new RateLimiter({ ratePerSecond: 0 }) });
    ks = await startKeyServer({ keys: grants, authorizer, ca: pki.ca.cert, cert: pki.server.cert, key: pki.server.key, host: '127.0.0.1', port: 0 });
    const pair = pki.client('sidecar', identity);
    client = new KeylessClient({ address: `127.0.0.1:${ks.port}`, ca: pki.ca.cert, cert: pair.cert, key: pair.key, timeoutMs: 10_000 });
  });
  after(async () => {
    await client?.close();
    await ks?.close();
    pki?.cleanup();
  });

  const sign = (message: Uint8Array) =>
    client.signMessage(computeSki(publicKey), SignatureScheme.mldsa65, message, () => { throw new Error('no fallback'); });

  void it('signs a TLS 1.3 server CertificateVerify with the granted ML-DSA key', async () => {
    const message = content();
    const signature = await sign(message);
    assert.ok(verifySignature(SignatureScheme.mldsa65, publicKey, message, signature));
  });

  void it('refuses a TLS 1.2 ServerKeyExchange content with ML-DSA (key not found, as every refusal)', async () => {
    const ske = Buffer.concat([Buffer.alloc(64, 9), Buffer.from([3, 0x00, 0x1d, 32]), Buffer.alloc(32, 4)]);
    await assert.rejects(sign(ske), (e: unknown) => e instanceof KeylessRemoteError && e.code === ErrorCode.keyNotFound);
  });
});
