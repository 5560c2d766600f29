import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ServerConfig } from '../../../src/tls/server.js';
import { warmUpServer } from '../../../src/tls/warm-up.js';
import { SignatureScheme } from '../../../src/tls/constants.js';
import { testPki } from './pki.js';

async function p256Certificate(): Promise<{ cert: string; key: string }> {
  const leaf = await (await testPki()).leaf('p256');
  return { cert: leaf.pem, key: leaf.keyPem };
}

test('warmUpServer completes the handshakes asked for, on every version and group the server has, and logs no secrets', async () => {
  const lines: string[] = [];
  const config = new ServerConfig({ certificates: [await p256Certificate()], keylog: (l) => lines.push(l) });
  assert.equal(warmUpServer(config, 12), 12);
  assert.deepEqual(lines, [], 'warm-up connections must not reach the keylog');
});

test('warmUpServer works on a TLS 1.3-only server and on a TLS 1.2-only one', async () => {
  const certificates = [await p256Certificate()];
  assert.equal(warmUpServer(new ServerConfig({ certificates, minVersion: 'TLSv1.3' }), 6), 6);
  assert.equal(warmUpServer(new ServerConfig({ certificates, maxVersion: 'TLSv1.2' }), 3), 3);
});

test('warmUpServer stops at the first handshake that would wait for an async signer, and at a failing one', async () => {
  const { cert, key } = await p256Certificate();
  const base = new ServerConfig({ certificates: [{ cert, key }] });
  let calls = 0;
  const asyncConfig = new ServerConfig({
    certificates: [{ cert, key }],
    selectCredential: () => ({
      certificateChain: base.keys[0]!.chain,
      signer: {
        schemes: [SignatureScheme.ecdsa_secp256r1_sha256],
        sign: async () => {
          calls++;
          return new Uint8Array(0);
        },
      },
      scheme: SignatureScheme.ecdsa_secp256r1_sha256,
    }),
    minVersion: 'TLSv1.3',
  });
  assert.equal(warmUpServer(asyncConfig, 10), 0);
  assert.ok(calls <= 1, `asked the async signer ${calls} times`);
  // A server that requires client certificates: our warm-up client has none.
  const strict = new ServerConfig({ certificates: [{ cert, key }], requestCert: true, ca: [(await testPki()).ca.pem] });
  assert.equal(warmUpServer(strict, 5), 0);
});
