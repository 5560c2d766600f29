/**
 * Delegated credentials with real peers: NSS `tstclnt -B` against `dcctl serve --dc-dir`,
 * `dcctl probe` against it and against `openssl s_server`, clients without DC support against a
 * DC-enabled server, and NSS refusing deliberately broken credentials while our server stays up.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as nodeTls from 'node:tls';
import { KeyUsage, asIssuer, issueCertificate } from '../../src/cli/pki/dev-pki.js';
import { certificateNotBefore, pemToDers } from '../../src/tls/x509/index.js';
import { ExtensionType, SignatureScheme } from '../../src/tls/constants.js';
import { createKeySigner } from '../../src/tls/signer.js';
import type { CredentialChoice } from '../../src/tls/credentials.js';
import { delegatedCredentialSignedContent, encodeDelegatedCredential, generateDcKeyPair, type Credential } from '../../src/tls/delegated/index.js';
import { DCCTL, httpGet, killAll, makePki, run, start, startOpensslServer, startOurServer, type Pki, type Proc } from './support.js';

const T = { timeout: 90_000 };
const NODE = process.execPath;

interface Served {
  readonly proc: Proc;
  readonly port: number;
}

async function serve(pki: Pki, dcDirs: readonly string[]): Promise<Served> {
  const proc = start(NODE, [DCCTL, 'serve', '--cert', pki.serverCrt, '--key', pki.serverKey, '--port', '0', '--quiet', ...dcDirs.flatMap((d) => ['--dc-dir', d])]);
  const m = await proc.waitFor(/listening on https:\/\/127\.0\.0\.1:(\d+)/, 30_000);
  return { proc, port: Number(m[1]) };
}

/** tstclnt prints the response and then lingers; read until the body line, then stop it. */
async function tstclnt(nssDb: string, port: number, expectBody: RegExp | undefined): Promise<{ output: string; code: number }> {
  const p = start('tstclnt', ['-h', '127.0.0.1', '-p', String(port), '-a', 'localhost', '-d', nssDb, '-B', '-V', 'tls1.3:tls1.3']);
  p.write(httpGet());
  if (expectBody) {
    await p.waitFor(expectBody, 20_000);
    await p.stop();
    return { output: p.output(), code: 0 };
  }
  const timer = setTimeout(() => p.child.kill('SIGKILL'), 20_000);
  const code = await p.exited;
  clearTimeout(timer);
  return { output: p.output(), code };
}

void describe('delegated credentials with NSS tstclnt, dcctl serve and dcctl probe', () => {
  let pki: Pki;
  let nssDb: string;
  const dirs: Record<string, string> = {};
  const servers: Record<string, Served> = {};
  before(async () => {
    pki = await makePki();
    nssDb = join(pki.dir, 'nssdb');
    mkdirSync(nssDb);
    assert.equal((await run('certutil', ['-N', '--empty-password', '-d', nssDb])).code, 0);
    assert.equal((await run('certutil', ['-A', '-n', 'ca', '-t', 'C,,', '-i', pki.caCrt, '-d', nssDb])).code, 0);
    const algorithms = ['ecdsa_secp256r1_sha256', 'ecdsa_secp384r1_sha384', 'ed25519'];
    const issued = await Promise.all(
      algorithms.map((alg) => {
        dirs[alg] = join(pki.dir, `dc-${alg}`);
        return run(NODE, [DCCTL, 'dc', 'issue', '--cert', pki.serverCrt, '--key', pki.serverKey, '--algorithm', alg, '--validity', '12h', '--out', dirs[alg]!], { timeoutMs: 60_000 });
      }),
    );
    for (const r of issued) assert.equal(r.code, 0, r.output);
    const started = await Promise.all(algorithms.map((alg) => serve(pki, [dirs[alg]!])));
    algorithms.forEach((alg, i) => (servers[alg] = started[i]!));
  });
  after(() => {
    killAll();
    pki?.cleanup();
  });

  for (const alg of ['ecdsa_secp256r1_sha256', 'ecdsa_secp384r1_sha384']) {
    void it(`NSS tstclnt -B receives a ${alg} delegated credential from dcctl serve and completes a request`, T, async () => {
      const r = await tstclnt(nssDb, servers[alg]!.port, new RegExp(`delegated-credential ${alg}\\n`));
      assert.match(r.output, /Received a Delegated Credential/);
    });
  }

  void it('NSS, which offers no ed25519 credentials, gets the certificate from an ed25519-only server', T, async () => {
    const r = await tstclnt(nssDb, servers.ed25519!.port, /\ncertificate\n/);
    assert.doesNotMatch(r.output, /Received a Delegated Credential/);
  });

  void it('NSS tstclnt accepts an RSA leaf from dcctl cert create --key-type rsa-2048 (keyUsage digitalSignature + keyEncipherment)', T, async () => {
    // A CA directory for dcctl holding the CA that nssdb trusts.
    const caDir = join(pki.dir, 'ca-dir');
    mkdirSync(caDir);
    writeFileSync(join(caDir, 'ca.crt'), pki.caPem);
    writeFileSync(join(caDir, 'ca.key'), pki.ca.key.privateKeyPem, { mode: 0o600 });
    const rsaDir = join(pki.dir, 'rsa-leaf');
    const made = await run(NODE, [DCCTL, 'cert', 'create', '--ca-dir', caDir, '--key-type', 'rsa-2048', '--dns', 'localhost', '--ip', '127.0.0.1', '--out', rsaDir], { timeoutMs: 60_000 });
    assert.equal(made.code, 0, made.output);
    const proc = start(NODE, [DCCTL, 'serve', '--cert', join(rsaDir, 'tls.crt'), '--key', join(rsaDir, 'tls.key'), '--port', '0', '--quiet']);
    const port = Number((await proc.waitFor(/listening on https:\/\/127\.0\.0\.1:(\d+)/, 30_000))[1]);
    try {
      const r = await tstclnt(nssDb, port, /\ncertificate\n/);
      assert.doesNotMatch(r.output, /SEC_ERROR_INADEQUATE_KEY_USAGE/);
    } finally {
      await proc.stop();
    }

    // What the test guards against: the same leaf with digitalSignature alone, which NSS refuses outright.
    const bare = await issueCertificate(
      { commonName: 'localhost', dnsNames: ['localhost'], extendedKeyUsage: ['serverAuth'], keyUsage: KeyUsage.digitalSignature },
      'rsa-2048',
      asIssuer(pki.ca),
    );
    writeFileSync(join(pki.dir, 'rsa-bare.crt'), bare.pem);
    writeFileSync(join(pki.dir, 'rsa-bare.key'), bare.key.privateKeyPem, { mode: 0o600 });
    const old = start(NODE, [DCCTL, 'serve', '--cert', join(pki.dir, 'rsa-bare.crt'), '--key', join(pki.dir, 'rsa-bare.key'), '--port', '0', '--quiet']);
    const oldPort = Number((await old.waitFor(/listening on https:\/\/127\.0\.0\.1:(\d+)/, 30_000))[1]);
    try {
      const r = await tstclnt(nssDb, oldPort, undefined);
      assert.match(r.output, /SEC_ERROR_INADEQUATE_KEY_USAGE/);
    } finally {
      await old.stop();
    }
  });

  void it('dcctl probe exits 0 against dcctl serve --dc-dir for every algorithm and 1 against openssl s_server', T, async () => {
    for (const alg of ['ecdsa_secp256r1_sha256', 'ecdsa_secp384r1_sha384', 'ed25519']) {
      const r = await run(NODE, [DCCTL, 'probe', `127.0.0.1:${servers[alg]!.port}`, '--ca', pki.caCrt, '--servername', 'localhost', '--json'], { timeoutMs: 60_000 });
      assert.equal(r.code, 0, r.output);
      const j = JSON.parse(r.stdout) as { delegatedCredential: boolean; algorithm: string; remainingSeconds: number };
      assert.equal(j.delegatedCredential, true);
      assert.equal(j.algorithm, alg);
      assert.ok(j.remainingSeconds > 11 * 3600 && j.remainingSeconds <= 12 * 3600);
    }
    const ossl = await startOpensslServer(['-tls1_3', '-cert', pki.serverCrt, '-key', pki.serverKey, '-www']);
    const r = await run(NODE, [DCCTL, 'probe', `127.0.0.1:${ossl.port}`, '--ca', pki.caCrt, '--servername', 'localhost'], { timeoutMs: 60_000 });
    assert.equal(r.code, 1, r.output);
    assert.match(r.stdout, /delegated credential: no/);
    await ossl.proc.stop();
  });

  void it('clients without DC support (s_client, curl, node:tls) get the certificate from a DC-enabled server', T, async () => {
    const port = servers.ecdsa_secp256r1_sha256!.port;
    const s = await run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-CAfile', pki.caCrt, '-verify_return_error', '-ign_eof'], { input: httpGet() });
    assert.equal(s.code, 0, s.output);
    assert.match(s.stdout, /\r\n\r\ncertificate\n/);
    const c = await run('curl', ['-sS', '--tlsv1.3', '--cacert', pki.caCrt, `https://localhost:${port}/`]);
    assert.equal(c.stdout, 'certificate\n', c.output);
    const body = await new Promise<string>((resolve, reject) => {
      const n = nodeTls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: pki.caPem, minVersion: 'TLSv1.3' }, () => n.write(httpGet()));
      let text = '';
      n.setEncoding('latin1').on('data', (d: string) => (text += d));
      n.on('end', () => resolve(text));
      n.on('error', reject);
    });
    assert.match(body, /\r\n\r\ncertificate\n$/);
  });

  void it('NSS rejects broken credentials (expired, more than 7 days, bad signature, certificate without DelegationUsage) and our server stays up', T, async (t) => {
    // A certificate without DelegationUsage, from the same CA.
    const plain = await issueCertificate(
      { commonName: 'localhost', dnsNames: ['localhost'], extendedKeyUsage: ['serverAuth'], delegationUsage: 'none' },
      'ecdsa-p256',
      asIssuer(pki.ca),
    );
    const good = { der: pemToDers(pki.serverPem, 'CERTIFICATE')[0]!, key: createPrivateKey(pki.serverKeyPem) };
    const noExt = { der: plain.der, key: createPrivateKey(plain.key.privateKeyPem) };
    const scheme = SignatureScheme.ecdsa_secp256r1_sha256;
    type Broken = 'expired' | 'too-long' | 'bad-signature' | 'no-delegation-usage';
    const forge = async (kind: Broken): Promise<CredentialChoice> => {
      const cert = kind === 'no-delegation-usage' ? noExt : good;
      const notBefore = Math.floor(certificateNotBefore(cert.der).getTime() / 1000);
      const now = Math.floor(Date.now() / 1000);
      const { publicKey, privateKey } = await generateDcKeyPair(scheme);
      const validTime = kind === 'expired' ? now - notBefore - 60 : kind === 'too-long' ? now - notBefore + 7 * 86400 + 3600 : now - notBefore + 3600;
      const credential: Credential = { validTime, dcCertVerifyAlgorithm: scheme, spki: new Uint8Array(publicKey.export({ type: 'spki', format: 'der' })) };
      const signer = createKeySigner(cert.key);
      const signature = Uint8Array.from(await signer.sign(scheme, delegatedCredentialSignedContent('server', cert.der, credential, scheme)));
      if (kind === 'bad-signature') signature[signature.length - 5]! ^= 0x01;
      return {
        certificateChain: [cert.der],
        leafExtensions: [{ type: ExtensionType.delegated_credential, data: encodeDelegatedCredential({ credential, algorithm: scheme, signature }) }],
        signer: createKeySigner(privateKey),
        scheme,
        label: 'delegated-credential',
      };
    };
    const kinds: Broken[] = ['expired', 'too-long', 'bad-signature', 'no-delegation-usage'];
    const choices = new Map<Broken, CredentialChoice>();
    for (const k of kinds) choices.set(k, await forge(k));
    let current: Broken = 'expired';
    const server = await startOurServer({
      certificates: [{ cert: pki.serverPem, key: pki.serverKeyPem }],
      selectCredential: (hello, fallback) => (hello.extensions.delegatedCredential ? choices.get(current) : fallback()),
    });
    try {
      // NSS names the rule each credential breaks.
      const expected: Record<Broken, string> = {
        expired: 'SSL_ERROR_DC_EXPIRED',
        'too-long': 'SSL_ERROR_DC_INAPPROPRIATE_VALIDITY_PERIOD',
        'bad-signature': 'SSL_ERROR_DC_BAD_SIGNATURE',
        'no-delegation-usage': 'SSL_ERROR_DC_INVALID_KEY_USAGE',
      };
      const results: Record<string, string> = {};
      for (const k of kinds) {
        current = k;
        const r = await tstclnt(nssDb, server.port, undefined);
        const error = /(SSL|SEC)_ERROR_\w+/.exec(r.output)?.[0];
        results[k] = r.code !== 0 && !r.output.includes('HTTP/1.0 200') && error ? error : `accepted (exit ${r.code}): ${r.output.slice(-300)}`;
        t.diagnostic(`${k}: ${results[k]}`);
      }
      assert.deepEqual(results, expected);
      assert.equal(server.connections.length, 0, 'no broken credential got through');
      // Still serving: a client without DC support gets its page.
      const c = await run('curl', ['-sS', '--cacert', pki.caCrt, `https://localhost:${server.port}/`]);
      assert.equal(c.code, 0, c.output);
      assert.match(c.stdout, / auth=certificate\n$/);
    } finally {
      await server.close();
    }
  });
});
