import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { parseAddress } from '../../../src/keyless/client.js';
import { Opcode } from '../../../src/keyless/protocol.js';
import { Semaphore } from '../../../src/keyless/semaphore.js';
import { computeSki, skiHex } from '../../../src/keyless/ski.js';
import { KeylessSigner, opcodeForScheme } from '../../../src/signer/keyless.js';
import { SignatureScheme as S } from '../../../src/tls/constants.js';
import { makeKeylessPki, type KeylessPki } from './pki.js';

// Credentials that load (the client loads them when made), for an endpoint never connected to.
let pki: KeylessPki;
before(() => {
  pki = makeKeylessPki([]);
});
after(() => pki.cleanup());
const unusedEndpoint = () => ({ address: '127.0.0.1:1', ca: pki.ca, clientCert: pki.client.cert, clientKey: pki.client.key });

void describe('key server address', () => {
  void it('reads host:port, [v6]:port, a bare host and a bare IPv6 address (port 2407)', () => {
    assert.deepEqual(parseAddress('keys.example:9000'), { host: 'keys.example', port: 9000 });
    assert.deepEqual(parseAddress('[::1]:2500'), { host: '::1', port: 2500 });
    assert.deepEqual(parseAddress('keys.example'), { host: 'keys.example', port: 2407 });
    assert.deepEqual(parseAddress('::1'), { host: '::1', port: 2407 });
  });

  void it('rejects a bad port and an empty host, naming the address', () => {
    assert.throws(() => parseAddress('keys:0'), /keys:0/);
    assert.throws(() => parseAddress('keys:http'), /bad port/);
    assert.throws(() => parseAddress(':2407'), /not host:port/);
  });
});

void describe('semaphore', () => {
  void it('lets at most `limit` holders in and hands permits out first come, first served', async () => {
    const sem = new Semaphore(2);
    const order: number[] = [];
    const a = await sem.acquire();
    const b = await sem.acquire();
    const waiting = [3, 4].map((n) => sem.acquire().then((release) => (order.push(n), release)));
    assert.equal(sem.inUse, 2);
    assert.equal(sem.waiting, 2);
    a();
    const third = await waiting[0]!;
    b();
    const fourth = await waiting[1]!;
    assert.deepEqual(order, [3, 4]);
    third();
    third(); // a second release of the same permit is ignored
    fourth();
    assert.equal(sem.inUse, 0);
  });
});

void describe('keyless signature schemes', () => {
  void it('maps every TLS 1.3 scheme to its keyless opcode and the hash the client computes', () => {
    assert.deepEqual(opcodeForScheme(S.ed25519), { opcode: Opcode.ed25519Sign, hash: null });
    assert.deepEqual(opcodeForScheme(S.ecdsa_secp256r1_sha256), { opcode: Opcode.ecdsaSignSha256, hash: 'sha256' });
    assert.deepEqual(opcodeForScheme(S.ecdsa_secp384r1_sha384), { opcode: Opcode.ecdsaSignSha384, hash: 'sha384' });
    assert.deepEqual(opcodeForScheme(S.ecdsa_secp521r1_sha512), { opcode: Opcode.ecdsaSignSha512, hash: 'sha512' });
    assert.deepEqual(opcodeForScheme(S.rsa_pss_rsae_sha256), { opcode: Opcode.rsaPssSignSha256, hash: 'sha256' });
    assert.deepEqual(opcodeForScheme(S.rsa_pss_rsae_sha384), { opcode: Opcode.rsaPssSignSha384, hash: 'sha384' });
    assert.deepEqual(opcodeForScheme(S.rsa_pss_rsae_sha512), { opcode: Opcode.rsaPssSignSha512, hash: 'sha512' });
    assert.deepEqual(opcodeForScheme(S.rsa_pkcs1_sha256), { opcode: Opcode.rsaSignSha256, hash: 'sha256' });
  });

  void it('has no opcode for RSASSA-PSS-keyed schemes and Ed448', () => {
    assert.equal(opcodeForScheme(S.rsa_pss_pss_sha256), undefined);
    assert.equal(opcodeForScheme(S.ed448), undefined);
  });
});

void describe('KeylessSigner construction', () => {
  void it('derives the SKI and the schemes from the public key without connecting', async () => {
    const pair = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
    const signer = new KeylessSigner({ ...unusedEndpoint(), publicKey: pair.publicKey });
    assert.equal(signer.skiHex, skiHex(computeSki(pair.publicKey)));
    assert.deepEqual(signer.schemes, [S.ecdsa_secp384r1_sha384]);
    assert.equal(signer.client.state, 'idle');
    await signer.close();
  });

  void it('accepts a public key as PEM and DER', async () => {
    const pair = generateKeyPairSync('ed25519');
    const pem = pair.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const der = new Uint8Array(pair.publicKey.export({ type: 'spki', format: 'der' }));
    const a = new KeylessSigner({ ...unusedEndpoint(), publicKey: pem });
    const b = new KeylessSigner({ ...unusedEndpoint(), publicKey: der });
    assert.equal(a.skiHex, b.skiHex);
    await Promise.all([a.close(), b.close()]);
  });

  void it('refuses an SKI that does not match the key, and an SKI without schemes', () => {
    const pair = generateKeyPairSync('ed25519');
    assert.throws(() => new KeylessSigner({ ...unusedEndpoint(), publicKey: pair.publicKey, ski: '00'.repeat(20) }), /does not match/);
    assert.throws(() => new KeylessSigner({ ...unusedEndpoint(), ski: '00'.repeat(20) }), /needs `schemes`/);
    assert.throws(() => new KeylessSigner(unusedEndpoint()), /certificate, a publicKey or an SKI/);
  });

  void it('refuses a scheme that does not fit the key', () => {
    const pair = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    assert.throws(() => new KeylessSigner({ ...unusedEndpoint(), publicKey: pair.publicKey, schemes: [S.ed25519] }), /does not fit/);
  });

  void it('works from an SKI and explicit schemes when the key is not known locally', async () => {
    const signer = new KeylessSigner({ ...unusedEndpoint(), ski: 'AB:'.repeat(19) + 'AB', schemes: [S.ecdsa_secp256r1_sha256] });
    assert.equal(signer.skiHex, 'ab'.repeat(20));
    assert.equal(signer.publicKey, undefined);
    await assert.rejects(signer.sign(S.ed25519, new Uint8Array(1)), /does not offer ed25519/);
    await signer.close();
  });
});
