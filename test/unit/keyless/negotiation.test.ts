/**
 * The sign-message extension end to end over mutual TLS: our client and our key server use it; a
 * key server that speaks only the documented opcodes (answers it "bad opcode", as gokeyless does)
 * still gets every signature, as a digest, asked for once per connection; our key server still
 * answers the documented digest opcodes of other clients. Every signature is verified with
 * node:crypto.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { decodeOperation, encodeMessage, FrameDecoder } from '../../../src/keyless/codec.js';
import { KeylessClient } from '../../../src/keyless/client.js';
import { KeylessError } from '../../../src/keyless/errors.js';
import { SigningKey } from '../../../src/keyless/keystore.js';
import { ErrorCode, Opcode, signOperationOf } from '../../../src/keyless/protocol.js';
import { startKeyServer, type KeyServer } from '../../../src/keyless/server.js';
import { skiHex } from '../../../src/keyless/ski.js';
import { KeylessSigner, opcodeForScheme } from '../../../src/signer/keyless.js';
import { SignatureScheme, signatureSchemeName } from '../../../src/tls/constants.js';
import { certificateVerifyContent, schemesForKey, verifySignature } from '../../../src/tls/signature-schemes.js';
import { makeKeylessPki, type KeylessPki, type SigningKeyName } from './pki.js';

const KEYS: readonly SigningKeyName[] = ['p256', 'p384', 'rsa2048', 'ed25519'];

/**
 * A key server that knows only the documented opcodes: digest signing with our SigningKey, "bad
 * opcode" for everything else. It records the opcodes it was asked, and can drop its connections.
 */
async function startDocumentedOnlyServer(pki: KeylessPki): Promise<{ port: number; seen: number[]; dropConnections(): void; close(): Promise<void> }> {
  const keys = new Map(KEYS.map((n) => new SigningKey(createPrivateKey(pki.keys[n].key), n)).map((k) => [k.skiHex, k]));
  const seen: number[] = [];
  const sockets = new Set<TLSSocket>();
  const server: Server = createServer({ cert: pki.server.cert, key: pki.server.key, ca: pki.ca, requestCert: true, rejectUnauthorized: true }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    const frames = new FrameDecoder();
    socket.on('data', (chunk: Buffer) => {
      for (const frame of frames.push(chunk)) {
        if (frame.kind !== 'message') continue;
        const op = decodeOperation(frame.body);
        seen.push(op.opcode);
        const operation = signOperationOf(op.opcode);
        const key = op.ski && keys.get(skiHex(op.ski));
        const answer =
          operation && key && op.payload
            ? { opcode: Opcode.response, payload: key.sign({ kind: 'digest', operation, payload: op.payload }) }
            : { opcode: Opcode.error, payload: Uint8Array.of(operation ? ErrorCode.keyNotFound : ErrorCode.badOpcode) };
        socket.write(encodeMessage(frame.header.id, answer));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    dropConnections: () => {
      for (const s of sockets) s.destroy();
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

void describe('sign-message extension negotiation', () => {
  let pki: KeylessPki;
  let ours: KeyServer;
  const closers: Array<() => Promise<void>> = [];
  const message = certificateVerifyContent('server', createHash('sha256').update('transcript').digest());

  before(async () => {
    pki = makeKeylessPki(KEYS);
    ours = await startKeyServer({ keysDir: pki.keysDir, ca: pki.ca, cert: pki.server.cert, key: pki.server.key, host: '127.0.0.1', port: 0 });
    closers.push(() => ours.close());
  });
  after(async () => {
    for (const close of closers.reverse()) await close();
    pki.cleanup();
  });

  const clientFor = (port: number): KeylessClient => {
    const client = new KeylessClient({ address: `127.0.0.1:${port}`, ca: pki.ca, cert: pki.client.cert, key: pki.client.key, timeoutMs: 5000 });
    closers.push(() => client.close());
    return client;
  };
  const signerFor = (client: KeylessClient, name: SigningKeyName): KeylessSigner =>
    new KeylessSigner({ address: client.server, ca: pki.ca, clientCert: pki.client.cert, clientKey: pki.client.key, certificate: pki.keys[name].cert, client });
  const publicKeyOf = (name: SigningKeyName): KeyObject => createPublicKey(createPrivateKey(pki.keys[name].key));
  const requests = async (opcode: string): Promise<number> => {
    const metric = await ours.registry.getSingleMetric('keyless_server_requests_total')!.get();
    return metric.values.filter((v) => v.labels.opcode === opcode && v.labels.result === 'ok').reduce((a, v) => a + v.value, 0);
  };

  void it('our client and our key server sign whole messages through the extension', async () => {
    const client = clientFor(ours.port);
    const before = await requests('signMessage');
    const signer = signerFor(client, 'p256');
    const sig = await signer.sign(SignatureScheme.ecdsa_secp256r1_sha256, message);
    assert.ok(verifySignature(SignatureScheme.ecdsa_secp256r1_sha256, publicKeyOf('p256'), message, sig));
    assert.equal((await requests('signMessage')) - before, 1);
    assert.equal(await requests('ecdsaSignSha256'), 0, 'no digest request was needed');
    assert.equal(client.messageSigning, 'supported');
  });

  void it('signs every algorithm on both paths (extension and documented digest opcode), all verified by node:crypto', async () => {
    const client = clientFor(ours.port);
    for (const name of KEYS) {
      const pub = publicKeyOf(name);
      const signer = signerFor(client, name);
      for (const scheme of schemesForKey(pub)) {
        const label = `${name} ${signatureSchemeName(scheme)}`;
        const whole = await signer.sign(scheme, message);
        assert.ok(verifySignature(scheme, pub, message, whole), `${label} through the extension`);
        const mapping = opcodeForScheme(scheme)!;
        const payload = mapping.hash === null ? message : createHash(mapping.hash).update(message).digest();
        const digestSig = await client.sign(signer.ski, mapping.opcode, payload);
        assert.ok(verifySignature(scheme, pub, message, digestSig), `${label} as a digest (opcode 0x${mapping.opcode.toString(16)})`);
      }
    }
    const rsaPkcs1 = await client.sign(signerFor(client, 'rsa2048').ski, Opcode.rsaSignSha256, createHash('sha256').update(message).digest());
    assert.ok(verifySignature(SignatureScheme.rsa_pkcs1_sha256, publicKeyOf('rsa2048'), message, rsaPkcs1), 'RSA PKCS#1 as a digest');
  });

  void it('falls back to the digest opcodes for a key server that answers the extension "bad opcode", probing once per connection', async () => {
    const legacy = await startDocumentedOnlyServer(pki);
    closers.push(() => legacy.close());
    const client = clientFor(legacy.port);
    const signer = signerFor(client, 'p256');
    for (let i = 0; i < 3; i++) {
      const sig = await signer.sign(SignatureScheme.ecdsa_secp256r1_sha256, message);
      assert.ok(verifySignature(SignatureScheme.ecdsa_secp256r1_sha256, publicKeyOf('p256'), message, sig), `signature ${i}`);
    }
    assert.deepEqual(legacy.seen, [Opcode.signMessage, Opcode.ecdsaSignSha256, Opcode.ecdsaSignSha256, Opcode.ecdsaSignSha256]);
    assert.equal(client.messageSigning, 'unsupported');

    // A new connection may reach another (perhaps upgraded) replica: it asks again.
    legacy.dropConnections();
    legacy.seen.length = 0;
    const rsa = signerFor(client, 'rsa2048');
    const sig = await rsa.sign(SignatureScheme.rsa_pss_rsae_sha256, message);
    assert.ok(verifySignature(SignatureScheme.rsa_pss_rsae_sha256, publicKeyOf('rsa2048'), message, sig));
    assert.deepEqual(legacy.seen, [Opcode.signMessage, Opcode.rsaPssSignSha256]);
  });

  void it('does not mistake another error for "extension unsupported"', async () => {
    const client = clientFor(ours.port);
    const stranger = new KeylessSigner({
      address: client.server, ca: pki.ca, clientCert: pki.client.cert, clientKey: pki.client.key, client,
      ski: '00'.repeat(20), schemes: [SignatureScheme.ecdsa_secp256r1_sha256],
    });
    await assert.rejects(stranger.sign(SignatureScheme.ecdsa_secp256r1_sha256, message), (e: unknown) => e instanceof KeylessError && e.code === ErrorCode.keyNotFound);
    assert.notEqual(client.messageSigning, 'unsupported');
  });
});
