/**
 * TLS 1.2 client authentication on our server against real clients over loopback: openssl
 * s_client -tls1_2 -cert/-key, curl --tls-max 1.2 --cert/--key, node:tls with maxVersion TLSv1.2
 * and Go's crypto/tls (test/interop/go/tls12-client -cert/-key), with ECDSA P-256 and RSA client
 * certificates. A trusted certificate is authorized; an untrusted one or none is refused with
 * the alert each client reports, or let in unauthorized with rejectUnauthorized false; a resumed
 * session keeps the client's authentication. And our TLS 1.2 client against openssl s_server
 * -tls1_2 -verify/-Verify: without certificates it answers a CertificateRequest with an empty
 * Certificate; with one (ECDSA P-256, RSA, Ed25519) it presents it and signs CertificateVerify,
 * which s_server verifies; with none that fits the server's schemes, an empty Certificate again.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as nodeTls from 'node:tls';
import { asIssuer, issueCertificate, type IssuedCertificate } from '../../src/cli/pki/dev-pki.js';
import { SignatureScheme } from '../../src/tls/constants.js';
import { connect as connectOurs, type TLSSocket } from '../../src/tls/socket.js';
import { goProgram, httpGet, killAll, makePki, run, startOpensslServer, startOurServer, type OurServer, type Pki } from './support.js';

/** What our server saw of one connection. */
interface Seen {
  readonly version: string | null;
  readonly authorized: boolean;
  readonly authorizationError: string | undefined;
  readonly subject: string | undefined;
  readonly scheme: number | undefined;
  readonly resumed: boolean;
}

function watch(server: OurServer): Seen[] {
  const seen: Seen[] = [];
  server.server.on('secureConnection', (s: TLSSocket) => {
    seen.push({
      version: s.getProtocol(),
      authorized: s.authorized,
      authorizationError: s.authorizationError,
      subject: s.peerCertificate?.subject.replace(/^CN=/, ''),
      scheme: s.handshakeMode?.client?.signatureScheme,
      resumed: s.isSessionReused(),
    });
  });
  return seen;
}

function body(http: string): string {
  const i = http.indexOf('\r\n\r\n');
  return i < 0 ? '' : http.slice(i + 4);
}

interface ClientCert {
  readonly name: string;
  readonly crt: string;
  readonly key: string;
  readonly pem: string;
  readonly keyPem: string;
}

function nodeGet(port: number, ca: string, options: nodeTls.ConnectionOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = nodeTls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca, maxVersion: 'TLSv1.2', ...options }, () => {
      if (s.getProtocol() !== 'TLSv1.2') reject(new Error(`node:tls negotiated ${s.getProtocol()}`));
      s.write(httpGet());
    });
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.once('end', () => resolve(Buffer.concat(chunks).toString('latin1')));
    s.once('error', reject);
    s.setTimeout(10_000, () => s.destroy(new Error('node:tls client timed out')));
  });
}

void describe('TLS 1.2 client authentication on our server with openssl, curl, node:tls and Go crypto/tls', () => {
  let pki: Pki;
  let strict: OurServer;
  let lenient: OurServer;
  let strictSeen: Seen[];
  let lenientSeen: Seen[];
  let goClient: string;
  const clients: ClientCert[] = [];
  let untrusted: ClientCert;

  function write(name: string, c: IssuedCertificate): ClientCert {
    const crt = join(pki.dir, `${name}.crt`);
    const key = join(pki.dir, `${name}.key`);
    writeFileSync(crt, c.pem);
    writeFileSync(key, c.key.privateKeyPem, { mode: 0o600 });
    return { name, crt, key, pem: c.pem, keyPem: c.key.privateKeyPem };
  }

  before(async () => {
    pki = await makePki();
    goClient = await goProgram('tls12-client');
    const now = Date.now();
    const validity = { notBefore: new Date(now - 3600_000), notAfter: new Date(now + 20 * 86400_000) };
    clients.push({ name: 'interop-client', crt: pki.clientCrt, key: pki.clientKey, pem: pki.clientPem, keyPem: pki.clientKeyPem });
    const rsa = await issueCertificate({ commonName: 'interop-client-rsa', extendedKeyUsage: ['clientAuth'], ...validity }, 'rsa-2048', asIssuer(pki.ca));
    clients.push(write('interop-client-rsa', rsa));
    const otherCa = await issueCertificate({ commonName: 'a CA the server does not trust', isCA: true, ...validity }, 'ecdsa-p256');
    untrusted = write('untrusted-client', await issueCertificate({ commonName: 'untrusted-client', extendedKeyUsage: ['clientAuth'], ...validity }, 'ecdsa-p256', asIssuer(otherCa)));
    const cert = { cert: pki.serverPem, key: pki.serverKeyPem };
    strict = await startOurServer({ certificates: [cert], requestCert: true, ca: [pki.caPem] });
    lenient = await startOurServer({ certificates: [cert], requestCert: true, rejectUnauthorized: false, ca: [pki.caPem] });
    strictSeen = watch(strict);
    lenientSeen = watch(lenient);
  });

  after(async () => {
    killAll();
    await Promise.all([strict?.close(), lenient?.close()]);
    pki?.cleanup();
  });

  const openssl = (port: number, ...args: string[]) =>
    run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-tls1_2', '-CAfile', pki.caCrt, '-ign_eof', ...args], { input: httpGet() });
  const curl = (port: number, ...args: string[]) => run('curl', ['-sS', '--tlsv1.2', '--tls-max', '1.2', '--cacert', pki.caCrt, '--http1.1', ...args, `https://localhost:${port}/`]);
  const go = (port: number, ...args: string[]) => run(goClient, ['-addr', `127.0.0.1:${port}`, '-ca', pki.caCrt, ...args]);

  void it('a trusted ECDSA P-256 or RSA client certificate is authorized over TLS 1.2 by every client', { timeout: 90_000 }, async () => {
    const failures: string[] = [];
    for (const c of clients) {
      const want = `client=${c.name} `;
      const check = (who: string, ok: boolean, output: string): void => {
        const last = strictSeen.at(-1);
        if (!ok || last?.version !== 'TLSv1.2' || !last.authorized || last.subject !== c.name) failures.push(`${who} ${c.name}: ${JSON.stringify(last)}\n${output.slice(-1500)}`);
      };
      const o = await openssl(strict.port, '-cert', c.crt, '-key', c.key);
      check('s_client', o.code === 0 && /New, TLSv1\.2/.test(o.output) && body(o.stdout).includes(want), o.output);
      const u = await curl(strict.port, '--cert', c.crt, '--key', c.key);
      check('curl', u.code === 0 && u.stdout.includes(want), u.output);
      try {
        const n = await nodeGet(strict.port, pki.caPem, { cert: c.pem, key: c.keyPem });
        check('node:tls', body(n).includes(want), n);
      } catch (e) {
        failures.push(`node:tls ${c.name}: ${(e as Error).message}`);
      }
      const g = await go(strict.port, '-cert', c.crt, '-key', c.key);
      check('go', g.code === 0 && g.stdout.startsWith('version=TLS 1.2 ') && g.stdout.includes(want), g.output);
    }
    assert.deepEqual(failures, []);
    assert.deepEqual(strict.clientErrors.map((e) => e.message), []);
  });

  void it('RSA client certificates sign CertificateVerify with RSA-PSS by default and PKCS#1 v1.5 when that is all the client allows', { timeout: 30_000 }, async () => {
    const rsa = clients[1]!;
    const pss = await openssl(strict.port, '-cert', rsa.crt, '-key', rsa.key);
    assert.equal(pss.code, 0, pss.output);
    assert.equal(strictSeen.at(-1)?.scheme, SignatureScheme.rsa_pss_rsae_sha256);
    const pkcs1 = await openssl(strict.port, '-cert', rsa.crt, '-key', rsa.key, '-client_sigalgs', 'RSA+SHA384');
    assert.equal(pkcs1.code, 0, pkcs1.output);
    assert.match(body(pkcs1.stdout), /client=interop-client-rsa /);
    assert.equal(strictSeen.at(-1)?.scheme, SignatureScheme.rsa_pkcs1_sha384);
    assert.equal(strictSeen.at(-1)?.authorized, true);
  });

  void it('an untrusted client certificate is refused with unknown_ca, as each client reports it', { timeout: 60_000 }, async () => {
    const before = strictSeen.length;
    const o = await openssl(strict.port, '-cert', untrusted.crt, '-key', untrusted.key);
    assert.match(o.output, /alert unknown ca/, o.output);
    assert.doesNotMatch(o.stdout, /client=/);
    const u = await curl(strict.port, '--cert', untrusted.crt, '--key', untrusted.key);
    assert.notEqual(u.code, 0);
    assert.match(u.output, /unknown ca/i, u.output);
    await assert.rejects(nodeGet(strict.port, pki.caPem, { cert: untrusted.pem, key: untrusted.keyPem }), /unknown ca/i);
    const g = await go(strict.port, '-cert', untrusted.crt, '-key', untrusted.key);
    assert.notEqual(g.code, 0);
    assert.match(g.output, /unknown certificate authority/, g.output);
    assert.equal(strictSeen.length, before, 'no connection completed');
  });

  void it('no client certificate is refused with handshake_failure (certificate_required is TLS 1.3 only), as each client reports it', { timeout: 60_000 }, async () => {
    const before = strictSeen.length;
    const o = await openssl(strict.port);
    assert.match(o.output, /alert handshake failure/, o.output);
    assert.doesNotMatch(o.stdout, /client=/);
    const u = await curl(strict.port);
    assert.notEqual(u.code, 0);
    assert.match(u.output, /handshake failure/i, u.output);
    await assert.rejects(nodeGet(strict.port, pki.caPem, {}), /handshake failure/i);
    const g = await go(strict.port);
    assert.notEqual(g.code, 0);
    assert.match(g.output, /handshake failure/, g.output);
    assert.equal(strictSeen.length, before, 'no connection completed');
    assert.ok(strict.clientErrors.some((e) => /no certificate/.test(e.message)), strict.clientErrors.map((e) => e.message).join('\n'));
  });

  void it('with rejectUnauthorized false, no certificate or an untrusted one completes, not authorized (openssl, node:tls)', { timeout: 60_000 }, async () => {
    const none = await openssl(lenient.port);
    assert.equal(none.code, 0, none.output);
    assert.match(body(none.stdout), /client=- /);
    assert.deepEqual(lenientSeen.at(-1), { version: 'TLSv1.2', authorized: false, authorizationError: undefined, subject: undefined, scheme: undefined, resumed: false });

    const bad = await openssl(lenient.port, '-cert', untrusted.crt, '-key', untrusted.key);
    assert.equal(bad.code, 0, bad.output);
    const last = lenientSeen.at(-1)!;
    assert.equal(last.authorized, false);
    assert.equal(last.subject, 'untrusted-client');
    assert.ok(last.authorizationError, 'an authorization error');
    assert.equal(last.scheme, SignatureScheme.ecdsa_secp256r1_sha256, 'the key was still proven');

    const n = await nodeGet(lenient.port, pki.caPem, { cert: untrusted.pem, key: untrusted.keyPem });
    assert.match(body(n), /client=untrusted-client /);
    assert.equal(lenientSeen.at(-1)?.authorized, false);
    const good = await nodeGet(lenient.port, pki.caPem, { cert: clients[0]!.pem, key: clients[0]!.keyPem });
    assert.match(body(good), /client=interop-client /);
    assert.equal(lenientSeen.at(-1)?.authorized, true);
  });

  void it('a resumed TLS 1.2 session keeps the client authentication (openssl -sess_in, Go session cache)', { timeout: 60_000 }, async () => {
    const c = clients[0]!;
    const sess = join(pki.dir, 'sess-client-auth');
    const first = await openssl(strict.port, '-cert', c.crt, '-key', c.key, '-sess_out', sess);
    assert.match(first.output, /New, TLSv1\.2/, first.output);
    const again = await openssl(strict.port, '-cert', c.crt, '-key', c.key, '-sess_in', sess);
    assert.match(again.output, /Reused, TLSv1\.2/, again.output.slice(-1500));
    assert.deepEqual(strictSeen.at(-1), { version: 'TLSv1.2', authorized: true, authorizationError: undefined, subject: c.name, scheme: undefined, resumed: true });

    const g = await go(strict.port, '-cert', c.crt, '-key', c.key, '-resume');
    assert.equal(g.code, 0, g.output);
    assert.match(g.stdout, /resumed=false\n[^\n]*\nversion=TLS 1\.2 suite=\S+ resumed=true\n/, g.stdout);
    assert.equal(strictSeen.at(-1)?.resumed, true);
    assert.equal(strictSeen.at(-1)?.authorized, true);
    assert.equal(strictSeen.at(-1)?.subject, c.name);
  });

  void it('a session resumed by session ID (openssl -cert -no_ticket -reconnect) keeps the client authentication', { timeout: 60_000 }, async () => {
    const from = strictSeen.length;
    const o = await openssl(strict.port, '-cert', clients[0]!.crt, '-key', clients[0]!.key, '-no_ticket', '-reconnect');
    const lines = o.output.split('\n').filter((l) => /^(New|Reused), TLSv1\.2/.test(l));
    assert.equal(lines.length, 6, o.output.slice(-1500));
    for (const l of lines.slice(1)) assert.match(l, /^Reused/);
    const seen = strictSeen.slice(from);
    assert.equal(seen.length, 6);
    assert.deepEqual(seen.map((x) => [x.version, x.authorized, x.subject, x.resumed]), [['TLSv1.2', true, 'interop-client', false], ...Array.from({ length: 5 }, () => ['TLSv1.2', true, 'interop-client', true])]);
  });
});

void describe('our TLS 1.2 client against openssl s_server -tls1_2 asking for a client certificate', () => {
  let pki: Pki;
  after(() => {
    killAll();
    pki?.cleanup();
  });

  /** Our client, TLS 1.2 only (with `certificates`, if given): the HTTP page s_server -www sends, or the error. */
  function get(port: number, certificates?: readonly { cert: string; key: string }[]): Promise<string> {
    return new Promise((resolve, reject) => {
      const s = connectOurs(
        { host: '127.0.0.1', port, servername: 'localhost', ca: [pki.caPem], minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ...(certificates ? { certificates } : {}) },
        () => s.write(httpGet()),
      );
      const timer = setTimeout(() => s.destroy(new Error('our client timed out')), 10_000);
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => chunks.push(c));
      s.once('end', () => {
        clearTimeout(timer);
        resolve(Buffer.concat(chunks).toString('latin1'));
      });
      s.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
  }

  void it('-verify (optional): connected with an empty Certificate; -Verify (required): refused with handshake_failure', { timeout: 60_000 }, async () => {
    pki = await makePki();
    const common = ['-tls1_2', '-cert', pki.serverCrt, '-key', pki.serverKey, '-CAfile', pki.caCrt, '-www'];
    const optional = await startOpensslServer([...common, '-verify', '1']);
    const required = await startOpensslServer([...common, '-Verify', '1']);
    const page = await get(optional.port);
    assert.match(page, /Protocol *: TLSv1\.2/, page.slice(0, 2000));
    assert.match(page, /no client certificate available/i, page.slice(0, 3000));
    await assert.rejects(get(required.port), /handshake failure|handshake_failure/i);
  });

  void it('-Verify (required) with our client certificate: ECDSA P-256, RSA and Ed25519 are presented, and s_server verifies the chain and the CertificateVerify', { timeout: 60_000 }, async () => {
    pki ??= await makePki();
    const now = Date.now();
    const validity = { notBefore: new Date(now - 3600_000), notAfter: new Date(now + 20 * 86400_000) };
    const issue = async (name: string, keyType: 'rsa-2048' | 'ed25519') => {
      const c = await issueCertificate({ commonName: name, extendedKeyUsage: ['clientAuth'], ...validity }, keyType, asIssuer(pki.ca));
      return { cert: c.pem, key: c.key.privateKeyPem };
    };
    const cases = [
      { name: 'interop-client', credential: { cert: pki.clientPem, key: pki.clientKeyPem }, type: 'ECDSA' },
      { name: 'interop-client-rsa', credential: await issue('interop-client-rsa', 'rsa-2048'), type: 'RSA-PSS' },
      { name: 'interop-client-ed25519', credential: await issue('interop-client-ed25519', 'ed25519'), type: 'ed25519' },
    ];
    const required = await startOpensslServer(['-tls1_2', '-cert', pki.serverCrt, '-key', pki.serverKey, '-CAfile', pki.caCrt, '-www', '-Verify', '1']);
    for (const c of cases) {
      const page = await get(required.port, [c.credential]);
      assert.match(page, /Protocol *: TLSv1\.2/, `${c.name}: ${page.slice(0, 2000)}`);
      assert.doesNotMatch(page, /no client certificate available/i, c.name);
      // s_server's view of our CertificateVerify, its verification of the chain, and the certificate it got.
      assert.match(page, new RegExp(`Peer signature type: ${c.type}\\b`), `${c.name}: ${page.slice(0, 4000)}`);
      assert.match(page, /Verify return code: 0 \(ok\)/, c.name);
      assert.match(page, new RegExp(`Client certificate[\\s\\S]*Subject: CN=${c.name}\\b`), c.name);
    }
  });

  void it('-Verify with -client_sigalgs our certificate cannot sign with: an empty Certificate, refused with handshake_failure', { timeout: 60_000 }, async () => {
    pki ??= await makePki();
    // RSA-PSS only: our ECDSA P-256 client certificate fits none of the server's schemes.
    const rsaOnly = await startOpensslServer(['-tls1_2', '-cert', pki.serverCrt, '-key', pki.serverKey, '-CAfile', pki.caCrt, '-www', '-Verify', '1', '-client_sigalgs', 'RSA-PSS+SHA256']);
    await assert.rejects(get(rsaOnly.port, [{ cert: pki.clientPem, key: pki.clientKeyPem }]), /handshake failure|handshake_failure/i);
    // The same server with a scheme that fits: presented and verified.
    const ecdsa = await startOpensslServer(['-tls1_2', '-cert', pki.serverCrt, '-key', pki.serverKey, '-CAfile', pki.caCrt, '-www', '-Verify', '1', '-client_sigalgs', 'ECDSA+SHA256']);
    assert.match(await get(ecdsa.port, [{ cert: pki.clientPem, key: pki.clientKeyPem }]), /Verify return code: 0 \(ok\)/);
  });
});
