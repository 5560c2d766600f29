import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ServerConfig } from '../../../src/tls/server.js';
import { describeWarmUp, ServerWarmUp, warmUpServer } from '../../../src/tls/warm-up.js';
import { CipherSuite, NamedGroup, SignatureScheme } from '../../../src/tls/constants.js';
import { testPki } from './pki.js';

async function p256Certificate(): Promise<{ cert: string; key: string }> {
  const leaf = await (await testPki()).leaf('p256');
  return { cert: leaf.pem, key: leaf.keyPem };
}

test('warmUpServer completes the handshakes asked for, on every version and group the server has, and logs no secrets', async () => {
  const lines: string[] = [];
  const config = new ServerConfig({ certificates: [await p256Certificate()], keylog: (l) => lines.push(l) });
  assert.equal(warmUpServer(config, 12).done, 12);
  assert.deepEqual(lines, [], 'warm-up connections must not reach the keylog');
});

test('warmUpServer works on a TLS 1.3-only server and on a TLS 1.2-only one', async () => {
  const certificates = [await p256Certificate()];
  assert.equal(warmUpServer(new ServerConfig({ certificates, minVersion: 'TLSv1.3' }), 6).done, 6);
  assert.equal(warmUpServer(new ServerConfig({ certificates, maxVersion: 'TLSv1.2' }), 3).done, 3);
  // Only the hybrid group: the browser-like client (both shares) is served with it.
  assert.equal(warmUpServer(new ServerConfig({ certificates, minVersion: 'TLSv1.3', groups: [NamedGroup.X25519MLKEM768] }), 4).done, 4);
});

test('warmUpServer stops at the first handshake that would wait for an async signer, and when every kind of client fails', async () => {
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
  const waited = warmUpServer(asyncConfig, 10);
  assert.equal(waited.done, 0);
  assert.equal(waited.waited, true);
  assert.ok(calls <= 1, `asked the async signer ${calls} times`);
  // A server that requires client certificates: our warm-up client has none. (TLS 1.3 only here;
  // its TLS 1.2 kinds would be refused the same way.)
  const strict = new ServerConfig({ certificates: [{ cert, key }], requestCert: true, ca: [(await testPki()).ca.pem], minVersion: 'TLSv1.3' });
  const refused = warmUpServer(strict, 5);
  assert.equal(refused.done, 0);
  assert.deepEqual(refused.failed.map((f) => f.kind).sort(), ['tls1.3-chacha20', 'tls1.3-secp256r1', 'tls1.3-x25519', 'tls1.3-x25519mlkem768'], 'each kind failed once, then the warm-up ended');
});

/** A self-signed RSA-PSS (id-RSASSA-PSS key) certificate, made by OpenSSL. */
function rsaPssCertificate(): { cert: string; key: string } {
  const dir = mkdtempSync(join(tmpdir(), 'warm-up-pss-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa-pss', '-pkeyopt', 'rsa_keygen_bits:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem')], { stdio: 'ignore' });
    return { cert: readFileSync(join(dir, 'c.pem'), 'utf8'), key: readFileSync(join(dir, 'k.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('warmUpServer leaves out a kind of client the certificate cannot serve and warms the others the whole count: Ed25519 and RSA-PSS over TLS 1.3 only, P-256 over TLS 1.2 too', async () => {
  const ed25519 = await (await testPki()).leaf('ed25519');
  for (const [name, certificate] of [
    ['Ed25519', { cert: ed25519.pem, key: ed25519.keyPem }],
    ['RSA-PSS', rsaPssCertificate()],
  ] as const) {
    const r = warmUpServer(new ServerConfig({ certificates: [certificate] }), 200);
    assert.equal(r.done, 200, `${name}: ${describeWarmUp(r)}`);
    assert.equal(r.waited, false);
    assert.deepEqual(r.failed.map((f) => f.kind), ['tls1.2'], `${name}: TLS 1.2 left out after one try`);
    assert.match(r.failed[0]!.error, /signature/i, name);
    assert.equal(r.byKind['tls1.2'], undefined, name);
    for (const kind of ['tls1.3-x25519mlkem768', 'tls1.3-x25519', 'tls1.3-secp256r1', 'tls1.3-chacha20'] as const) assert.ok((r.byKind[kind] ?? 0) > 30, `${name}, ${kind}: ${describeWarmUp(r)}`);
    assert.ok((r.byKind['tls1.3-resumed'] ?? 0) > 40, `${name}: ${describeWarmUp(r)}`);
  }
  const p256 = warmUpServer(new ServerConfig({ certificates: [await p256Certificate()] }), 200);
  assert.equal(p256.done, 200, describeWarmUp(p256));
  assert.deepEqual(p256.failed, []);
  assert.ok((p256.byKind['tls1.2'] ?? 0) >= 25, describeWarmUp(p256));
});

test('the warm-up plays what real clients send: each kind its own key share group, suite, SNI and ALPN, and in batches every kind takes its turn', async () => {
  const seen: Array<{ group: number | undefined; suites: string; sni: string | undefined; alpn: string | undefined}> = [];
  const { cert, key } = await p256Certificate();
  const config = new ServerConfig({
    certificates: [{ cert, key }],
    alpnProtocols: ['http/1.1'],
    selectCredential: (hello, fallback) => {
      const e = hello.extensions;
      seen.push({ group: e.keyShares?.length === 1 ? e.keyShares[0]!.group : undefined, suites: hello.cipherSuites.join(), sni: e.serverName, alpn: e.alpn?.join()});
      return fallback();
    },
  });
  const warmUp = new ServerWarmUp(config, { servername: 'warm.example' });
  const parts = Array.from({ length: 6 }, () => warmUp.run(4));
  assert.equal(parts.reduce((n, p) => n + p.done, 0), 24, parts.map(describeWarmUp).join(' / '));
  const byKind: Record<string, number> = {};
  for (const p of parts) for (const [k, n] of Object.entries(p.byKind)) byKind[k] = (byKind[k] ?? 0) + n;
  // 24 handshakes: every fourth resumed (no certificate chosen), the other 18 in turn over 5 kinds.
  assert.deepEqual(byKind, { 'tls1.3-x25519mlkem768': 4, 'tls1.3-x25519': 4, 'tls1.3-secp256r1': 4, 'tls1.3-chacha20': 3, 'tls1.2': 3, 'tls1.3-resumed': 6 });
  assert.equal(seen.length, 18, 'a resumed handshake chooses no certificate');
  assert.ok(seen.every((s) => s.sni === 'warm.example'), 'every client sends the server name');
  const AES128 = String(CipherSuite.TLS_AES_128_GCM_SHA256);
  const hybrid = seen.filter((s) => s.group === undefined && s.alpn === 'http/1.1' && s.suites.startsWith(AES128));
  assert.equal(hybrid.length, 4, 'the browser-like kind: two shares and the server\'s ALPN protocols');
  assert.equal(seen.filter((s) => s.group === NamedGroup.secp256r1 && s.suites === String(CipherSuite.TLS_AES_256_GCM_SHA384)).length, 4, 'P-256, AES-256-GCM only');
  assert.equal(seen.filter((s) => s.group === NamedGroup.x25519 && s.suites === String(CipherSuite.TLS_CHACHA20_POLY1305_SHA256)).length, 3, 'x25519, ChaCha20 only');
  assert.equal(seen.filter((s) => s.group === NamedGroup.x25519 && s.suites.startsWith(AES128) && s.alpn === undefined).length, 4, 'x25519, every suite, no ALPN');
});
