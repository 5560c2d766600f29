import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fc from 'fast-check';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CertificateError,
  MAX_CHAIN_LENGTH,
  certificateNotAfter,
  certificateNotBefore,
  createTrustStore,
  delegationUsageProblem,
  parseCertificate,
  publicKeyFromSpki,
  derToPem,
  hasDelegationUsage,
  hasDigitalSignatureKeyUsage,
  pemToDers,
  publicKeyMatchesPrivate,
  spkiOf,
  verifyCertificateChain,
  type CertificateErrorCode,
  type CertificateErrorKind,
} from '../../src/tls/x509/index.js';
import { schemesForKey as schemesForPublicKey } from '../../src/tls/signature-schemes.js';
import { KeyUsage, asIssuer, importSigningKey, issueCertificate, type IssuedCertificate, type Issuer, type KeyType } from '../../src/cli/pki/dev-pki.js';

const DAY = 86_400_000;

function assertCertError(fn: () => unknown, kind: CertificateErrorKind, code: CertificateErrorCode, messagePart?: RegExp): CertificateError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof CertificateError, `expected a CertificateError, got ${String(caught)}`);
  assert.equal(caught.kind, kind, caught.message);
  assert.equal(caught.code, code, caught.message);
  if (messagePart) assert.match(caught.message, messagePart);
  return caught;
}

async function makeCa(cn: string, keyType: KeyType = 'ecdsa-p256', extra: Partial<Parameters<typeof issueCertificate>[0]> = {}, parent?: IssuedCertificate) {
  return issueCertificate({ commonName: cn, isCA: true, ...extra }, keyType, parent ? asIssuer(parent) : undefined);
}

async function makeLeaf(issuer: IssuedCertificate, extra: Partial<Parameters<typeof issueCertificate>[0]> = {}, keyType: KeyType = 'ecdsa-p256') {
  return issueCertificate(
    { commonName: 'api.example.test', dnsNames: ['api.example.test'], extendedKeyUsage: ['serverAuth'], delegationUsage: 'non-critical', ...extra },
    keyType,
    asIssuer(issuer),
  );
}

void describe('verifyCertificateChain', () => {
  let root: IssuedCertificate;
  let leaf: IssuedCertificate;
  before(async () => {
    root = await makeCa('Test Root');
    leaf = await makeLeaf(root);
  });

  void it('accepts a leaf signed by a trusted CA and returns its public key and the path', () => {
    const v = verifyCertificateChain([leaf.der], { ca: [root.pem], servername: 'api.example.test' });
    assert.equal(v.path.length, 2);
    assert.equal(v.anchor.fingerprint256, new X509Certificate(root.der).fingerprint256);
    assert.deepEqual(
      v.publicKey.export({ type: 'spki', format: 'der' }),
      createPublicKey(leaf.key.privateKeyPem).export({ type: 'spki', format: 'der' }),
    );
    assert.deepEqual(new Uint8Array(v.leaf.raw), leaf.der);
  });

  void it('accepts trust anchors as PEM bundles, DER bytes, X509Certificate objects or a prebuilt store', async () => {
    const other = await makeCa('Other Root');
    const bundle = other.pem + root.pem;
    for (const ca of [[bundle], [root.der], [new X509Certificate(root.der)], createTrustStore([bundle])]) {
      assert.equal(verifyCertificateChain([leaf.der], { ca }).path.length, 2);
    }
  });

  void it('rejects a chain from a CA that is not trusted with unknown_ca', async () => {
    const stranger = await makeCa('Stranger CA');
    const strangersLeaf = await makeLeaf(stranger);
    assertCertError(() => verifyCertificateChain([strangersLeaf.der], { ca: [root.pem] }), 'unknown_ca', 'untrusted', /does not chain to a trusted CA.*Stranger CA/);
  });

  void it('rejects a leaf from a different CA that has the same name as the trusted one, and says so', async () => {
    const twin = await makeCa('Test Root');
    const twinsLeaf = await makeLeaf(twin);
    // Key identifiers differ, so path building rules the twin out before any signature check.
    assertCertError(() => verifyCertificateChain([twinsLeaf.der], { ca: [root.pem] }), 'unknown_ca', 'untrusted');
    // Without key identifiers the names match and the signature check tells them apart.
    const noAki = await makeLeaf(twin, { omitAuthorityKeyId: true });
    assertCertError(() => verifyCertificateChain([noAki.der], { ca: [root.pem] }), 'unknown_ca', 'untrusted', /different CA with the same name/);
  });

  void it('rejects an expired leaf with certificate_expired and names the expiry time', async () => {
    const notAfter = new Date(Date.now() - DAY);
    const old = await makeLeaf(root, { notBefore: new Date(Date.now() - 10 * DAY), notAfter });
    notAfter.setMilliseconds(0);
    assertCertError(() => verifyCertificateChain([old.der], { ca: [root.pem] }), 'certificate_expired', 'expired', new RegExp(`expired at ${notAfter.toISOString()}`));
  });

  void it('rejects a leaf that is not valid yet with certificate_expired', async () => {
    const future = await makeLeaf(root, { notBefore: new Date(Date.now() + DAY), notAfter: new Date(Date.now() + 10 * DAY) });
    assertCertError(() => verifyCertificateChain([future.der], { ca: [root.pem] }), 'certificate_expired', 'not_yet_valid');
  });

  void it('uses the given clock: a good chain is expired a year from now', () => {
    assertCertError(() => verifyCertificateChain([leaf.der], { ca: [root.pem], now: new Date(Date.now() + 365 * DAY) }), 'certificate_expired', 'expired');
  });

  void it('rejects an expired intermediate or trust anchor', async () => {
    const shortRoot = await makeCa('Short Root', 'ecdsa-p256', { notAfter: new Date(Date.now() + 2 * DAY) });
    const shortInter = await makeCa('Short Intermediate', 'ecdsa-p256', { notAfter: new Date(Date.now() + DAY) }, shortRoot);
    const longInter = await makeCa('Long Intermediate', 'ecdsa-p256', { notAfter: new Date(Date.now() + 5 * DAY) }, shortRoot);
    const l1 = await makeLeaf(shortInter, { notAfter: new Date(Date.now() + 5 * DAY) });
    const l2 = await makeLeaf(longInter, { notAfter: new Date(Date.now() + 5 * DAY) });
    const e = assertCertError(
      () => verifyCertificateChain([l1.der, shortInter.der], { ca: [shortRoot.pem], now: new Date(Date.now() + 1.5 * DAY) }),
      'certificate_expired',
      'expired',
      /intermediate certificate "CN=Short Intermediate"/,
    );
    assert.equal(e.certificateIndex, 1);
    verifyCertificateChain([l2.der, longInter.der], { ca: [shortRoot.pem], now: new Date(Date.now() + 1.5 * DAY) });
    assertCertError(
      () => verifyCertificateChain([l2.der, longInter.der], { ca: [shortRoot.pem], now: new Date(Date.now() + 2.5 * DAY) }),
      'certificate_expired',
      'expired',
      /trust anchor certificate "CN=Short Root"/,
    );
  });

  void it('rejects a host name the certificate does not cover with bad_certificate and lists what it covers', () => {
    assertCertError(
      () => verifyCertificateChain([leaf.der], { ca: [root.pem], servername: 'www.example.test' }),
      'bad_certificate',
      'hostname_mismatch',
      /not valid for "www\.example\.test".*DNS:api\.example\.test/,
    );
  });

  void it('matches host names case-insensitively and ignores a trailing dot', () => {
    verifyCertificateChain([leaf.der], { ca: [root.pem], servername: 'API.Example.TEST.' });
  });

  void it('matches a wildcard to exactly one leftmost label', async () => {
    const wild = await makeLeaf(root, { commonName: '*.svc.example.test', dnsNames: ['*.svc.example.test'] });
    verifyCertificateChain([wild.der], { ca: [root.pem], servername: 'a.svc.example.test' });
    for (const name of ['a.b.svc.example.test', 'svc.example.test', 'a.other.example.test']) {
      assertCertError(() => verifyCertificateChain([wild.der], { ca: [root.pem], servername: name }), 'bad_certificate', 'hostname_mismatch');
    }
  });

  void it('refuses wildcards directly under a top-level label and partial-label wildcards', async () => {
    const tooWide = await makeLeaf(root, { commonName: 'wide', dnsNames: ['*.test'] });
    assertCertError(() => verifyCertificateChain([tooWide.der], { ca: [root.pem], servername: 'example.test' }), 'bad_certificate', 'hostname_mismatch');
    const partial = await makeLeaf(root, { commonName: 'partial', dnsNames: ['api*.example.test', 'a.*.example.test'] });
    for (const name of ['api1.example.test', 'api.example.test', 'a.b.example.test']) {
      assertCertError(() => verifyCertificateChain([partial.der], { ca: [root.pem], servername: name }), 'bad_certificate', 'hostname_mismatch');
    }
  });

  void it('never falls back to the subject common name', async () => {
    const cnOnly = await makeLeaf(root, { commonName: 'cn.example.test', dnsNames: [] });
    assertCertError(() => verifyCertificateChain([cnOnly.der], { ca: [root.pem], servername: 'cn.example.test' }), 'bad_certificate', 'hostname_mismatch');
  });

  void it('checks IP addresses against IP subjectAltNames only', async () => {
    const ipLeaf = await makeLeaf(root, { commonName: '127.0.0.1', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'] });
    verifyCertificateChain([ipLeaf.der], { ca: [root.pem], servername: '127.0.0.1' });
    verifyCertificateChain([ipLeaf.der], { ca: [root.pem], servername: '::1' });
    verifyCertificateChain([ipLeaf.der], { ca: [root.pem], servername: '[::1]' });
    verifyCertificateChain([ipLeaf.der], { ca: [root.pem], servername: '0:0:0:0:0:0:0:1' });
    assertCertError(() => verifyCertificateChain([ipLeaf.der], { ca: [root.pem], servername: '::2' }), 'bad_certificate', 'hostname_mismatch', /IP Address:127\.0\.0\.1, IP Address:::1/);
    assertCertError(() => verifyCertificateChain([ipLeaf.der], { ca: [root.pem], servername: '10.0.0.1' }), 'bad_certificate', 'hostname_mismatch');
    assertCertError(() => verifyCertificateChain([leaf.der], { ca: [root.pem], servername: '127.0.0.1' }), 'bad_certificate', 'hostname_mismatch');
  });

  void describe('with intermediates', () => {
    let inter: IssuedCertificate;
    let interLeaf: IssuedCertificate;
    before(async () => {
      inter = await makeCa('Test Intermediate', 'ecdsa-p384', {}, root);
      interLeaf = await makeLeaf(inter);
    });

    void it('builds the path through a presented intermediate', () => {
      const v = verifyCertificateChain([interLeaf.der, inter.der], { ca: [root.pem], servername: 'api.example.test' });
      assert.deepEqual(v.path.map((c) => c.subject), ['CN=api.example.test', 'CN=Test Intermediate', 'CN=Test Root']);
    });

    void it('finds the intermediate among unrelated and out-of-order certificates', async () => {
      const unrelated = await makeCa('Unrelated');
      const v = verifyCertificateChain([interLeaf.der, unrelated.der, root.der, inter.der], { ca: [root.pem] });
      assert.equal(v.path.length, 3);
    });

    void it('rejects the chain with unknown_ca when the intermediate is missing', () => {
      assertCertError(() => verifyCertificateChain([interLeaf.der], { ca: [root.pem] }), 'unknown_ca', 'untrusted', /Test Intermediate/);
    });

    void it('accepts a chain that ends at a trusted intermediate', () => {
      assert.equal(verifyCertificateChain([interLeaf.der, inter.der], { ca: [inter.pem] }).path.length, 2);
    });

    void it('rejects a leaf whose signature was tampered with, with bad_certificate', () => {
      const bad = Uint8Array.from(interLeaf.der);
      bad[bad.length - 5] = bad[bad.length - 5]! ^ 0x01;
      assertCertError(() => verifyCertificateChain([bad, inter.der], { ca: [root.pem] }), 'bad_certificate', 'bad_signature', /does not verify/);
    });

    void it('rejects an issuer that is not a CA', async () => {
      const notCa = await issueCertificate({ commonName: 'Not A CA', isCA: false, keyUsage: KeyUsage.digitalSignature | KeyUsage.keyCertSign }, 'ecdsa-p256', asIssuer(root));
      const l = await makeLeaf(notCa);
      assertCertError(() => verifyCertificateChain([l.der, notCa.der], { ca: [root.pem] }), 'bad_certificate', 'issuer_not_ca', /Not A CA.*not a CA/);
    });

    void it('rejects an issuer whose keyUsage lacks keyCertSign', async () => {
      const noSign = await makeCa('No CertSign', 'ecdsa-p256', { keyUsage: KeyUsage.digitalSignature }, root);
      const l = await makeLeaf(noSign);
      assertCertError(() => verifyCertificateChain([l.der, noSign.der], { ca: [root.pem] }), 'bad_certificate', 'issuer_cannot_sign_certificates');
    });

    void it('enforces pathLenConstraint', async () => {
      const root0 = await makeCa('Root pathlen 0', 'ecdsa-p256', { pathLength: 0 });
      const i0 = await makeCa('Intermediate under pathlen 0', 'ecdsa-p256', {}, root0);
      const l0 = await makeLeaf(i0);
      assertCertError(() => verifyCertificateChain([l0.der, i0.der], { ca: [root0.pem] }), 'bad_certificate', 'path_length_exceeded', /allows 0 intermediate/);
      // A leaf directly under the pathlen-0 root is fine.
      verifyCertificateChain([(await makeLeaf(root0)).der], { ca: [root0.pem] });

      const root1 = await makeCa('Root pathlen 1', 'ecdsa-p256', { pathLength: 1 });
      const i1 = await makeCa('Intermediate under pathlen 1', 'ecdsa-p256', {}, root1);
      verifyCertificateChain([(await makeLeaf(i1)).der, i1.der], { ca: [root1.pem] });
    });

    void it('rejects an intermediate whose extendedKeyUsage excludes the purpose', async () => {
      const clientOnly = await makeCa('Client-only Intermediate', 'ecdsa-p256', { extendedKeyUsage: ['clientAuth'] }, root);
      const l = await makeLeaf(clientOnly);
      assertCertError(() => verifyCertificateChain([l.der, clientOnly.der], { ca: [root.pem] }), 'unsupported_certificate', 'wrong_purpose', /intermediate/);
    });
  });

  for (const issuerType of ['ecdsa-p256', 'ecdsa-p384', 'ed25519', 'rsa-2048'] as const) {
    void it(`verifies certificates signed by a ${issuerType} CA`, async () => {
      const ca = await makeCa(`${issuerType} root`, issuerType);
      const l = await makeLeaf(ca, {}, issuerType === 'rsa-2048' ? 'ed25519' : 'rsa-2048');
      verifyCertificateChain([l.der], { ca: [ca.pem], servername: 'api.example.test' });
    });
  }

  void it('verifies certificates signed with RSASSA-PSS', async () => {
    const ca = await makeCa('PSS root', 'rsa-2048');
    const l = await makeLeaf(ca, { rsaPssSignature: true });
    assert.match(new X509Certificate(l.der).toString(), /./);
    const text = execFileSync('openssl', ['x509', '-noout', '-text'], { input: l.pem }).toString();
    assert.match(text, /Signature Algorithm: rsassaPss/);
    verifyCertificateChain([l.der], { ca: [ca.pem] });
  });

  void it('enforces the purpose on the leaf: client-only certificates are refused for servers', async () => {
    const client = await makeLeaf(root, { extendedKeyUsage: ['clientAuth'] });
    assertCertError(() => verifyCertificateChain([client.der], { ca: [root.pem] }), 'unsupported_certificate', 'wrong_purpose', /serverAuth/);
    verifyCertificateChain([client.der], { ca: [root.pem], purpose: 'client' });
    assertCertError(() => verifyCertificateChain([leaf.der], { ca: [root.pem], purpose: 'client' }), 'unsupported_certificate', 'wrong_purpose', /clientAuth/);
  });

  void it('refuses a leaf whose keyUsage does not allow signing', async () => {
    const encOnly = await makeLeaf(root, { keyUsage: KeyUsage.keyEncipherment });
    assertCertError(() => verifyCertificateChain([encOnly.der], { ca: [root.pem] }), 'unsupported_certificate', 'key_usage_forbids_signing', /digitalSignature/);
  });

  void it('refuses a certificate with a critical extension it does not understand', async () => {
    const odd = await makeLeaf(root, { extraExtensions: [{ oid: '1.2.3.4.5', critical: true, value: new Uint8Array([0x05, 0x00]) }] });
    assertCertError(() => verifyCertificateChain([odd.der], { ca: [root.pem] }), 'unsupported_certificate', 'unhandled_critical_extension', /1\.2\.3\.4\.5/);
    const fine = await makeLeaf(root, { extraExtensions: [{ oid: '1.2.3.4.5', critical: false, value: new Uint8Array([0x05, 0x00]) }] });
    verifyCertificateChain([fine.der], { ca: [root.pem] });
  });

  void it('accepts a directly trusted self-signed leaf', async () => {
    const self = await issueCertificate({ commonName: 'self.example.test', dnsNames: ['self.example.test'] }, 'ed25519');
    const v = verifyCertificateChain([self.der], { ca: [self.pem], servername: 'self.example.test' });
    assert.equal(v.path.length, 1);
    assertCertError(() => verifyCertificateChain([self.der], { ca: [root.pem] }), 'unknown_ca', 'untrusted');
  });

  void it('rejects empty, oversized and malformed chains with bad_certificate', () => {
    assertCertError(() => verifyCertificateChain([], { ca: [root.pem] }), 'bad_certificate', 'empty_chain');
    const long = Array.from({ length: MAX_CHAIN_LENGTH + 1 }, () => leaf.der);
    assertCertError(() => verifyCertificateChain(long, { ca: [root.pem] }), 'bad_certificate', 'chain_too_long', /at most 10/);
    const e = assertCertError(() => verifyCertificateChain([leaf.der, new Uint8Array([0x30, 0x03, 1, 2])], { ca: [root.pem] }), 'bad_certificate', 'malformed', /#1/);
    assert.equal(e.certificateIndex, 1);
    assertCertError(() => verifyCertificateChain([leaf.der.subarray(0, leaf.der.length - 1)], { ca: [root.pem] }), 'bad_certificate', 'malformed');
  });

  void it('notices a trust anchor added to an array it has seen before', async () => {
    const other = await makeCa('Late Root');
    const otherLeaf = await makeLeaf(other);
    const ca: string[] = [root.pem];
    assertCertError(() => verifyCertificateChain([otherLeaf.der], { ca }), 'unknown_ca', 'untrusted');
    ca.push(other.pem);
    verifyCertificateChain([otherLeaf.der], { ca });
  });

  void it('rejects every truncation of a certificate and random bytes as malformed, without crashing', () => {
    for (let n = 0; n < leaf.der.length; n += 7) {
      assertCertError(() => parseCertificate(leaf.der.subarray(0, n)), 'bad_certificate', 'malformed');
    }
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        try {
          parseCertificate(bytes);
          return false; // random bytes are never a certificate
        } catch (e) {
          return e instanceof CertificateError && e.code === 'malformed';
        }
      }),
      { numRuns: 500 },
    );
    // Single-byte corruptions of a real certificate: either still parses or fails as malformed.
    fc.assert(
      fc.property(fc.nat({ max: leaf.der.length - 1 }), fc.integer({ min: 1, max: 255 }), (pos, x) => {
        const copy = Uint8Array.from(leaf.der);
        copy[pos] = copy[pos]! ^ x;
        try {
          parseCertificate(copy);
        } catch (e) {
          return e instanceof CertificateError && e.code === 'malformed';
        }
        return true;
      }),
      { numRuns: 500 },
    );
  });

  void it('rejects a trust store entry that is not a certificate, naming the entry', () => {
    assertCertError(() => createTrustStore([root.pem, 'not a pem']), 'certificate_unknown', 'invalid_trust_anchor', /#1/);
  });

  void it('terminates on a chain of certificates that issue each other in a loop', async () => {
    // Two CAs with the same subject name issued by that name: path building must not cycle.
    const a = await makeCa('Loop CA', 'ecdsa-p256');
    const b = await makeCa('Loop CA', 'ecdsa-p256', {}, a);
    const l = await makeLeaf(b);
    assertCertError(() => verifyCertificateChain([l.der, b.der, a.der, b.der, a.der], { ca: [root.pem] }), 'unknown_ca', 'untrusted');
  });

  void it('verifies a chain whose CA holds an RSASSA-PSS key (id-RSASSA-PSS SPKI), made by openssl', () => {
    const dir = mkdtempSync(join(tmpdir(), 'certs-pss-'));
    try {
      const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
      run(['genpkey', '-algorithm', 'RSA-PSS', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'ca.key']);
      run(['req', '-x509', '-new', '-key', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=PSS Key Root', '-days', '2',
        '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign']);
      run(['req', '-newkey', 'ed25519', '-nodes', '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=pss.example.test']);
      writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=DNS:pss.example.test\nkeyUsage=critical,digitalSignature\n');
      run(['x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'leaf.crt', '-days', '1', '-extfile', 'ext.cnf']);
      const caPem = readFileSync(join(dir, 'ca.crt'), 'latin1');
      assert.match(execFileSync('openssl', ['x509', '-noout', '-text'], { input: caPem }).toString(), /Public Key Algorithm: rsassaPss/);
      const leafDer = pemToDers(readFileSync(join(dir, 'leaf.crt'), 'latin1'), 'CERTIFICATE')[0]!;
      verifyCertificateChain([leafDer], { ca: [caPem], servername: 'pss.example.test' });
      assert.deepEqual(schemesForPublicKey(new X509Certificate(caPem).publicKey), [0x0809, 0x080a, 0x080b]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  void describe('name constraints (CA made by openssl)', () => {
    let dir: string;
    /** An openssl root with the given nameConstraints, as an issuer for our leaves. */
    async function constrainedRoot(name: string, constraints: string): Promise<{ pem: string; issuer: Issuer }> {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`,
        '-subj', `/CN=${name}`, '-days', '2', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign',
        '-addext', `nameConstraints=${constraints}`], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
      const pem = readFileSync(join(dir, `${name}.crt`), 'latin1');
      const { key } = await importSigningKey(readFileSync(join(dir, `${name}.key`), 'latin1'));
      return { pem, issuer: { certificateDer: pemToDers(pem, 'CERTIFICATE')[0]!, signingKey: key } };
    }
    const leafFor = async (issuer: Issuer, dnsNames: string[], ipAddresses: string[] = []) =>
      (await issueCertificate({ commonName: 'constrained', dnsNames, ipAddresses }, 'ecdsa-p256', issuer)).der;
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'certs-nc-'));
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    void it('accepts names inside permitted DNS subtrees and refuses names outside them', async () => {
      const { pem, issuer } = await constrainedRoot('dns-permitted', 'critical,permitted;DNS:example.test');
      verifyCertificateChain([await leafFor(issuer, ['example.test', 'api.example.test', '*.svc.example.test'])], { ca: [pem] });
      const der1 = await leafFor(issuer, ['api.example.test', 'api.other.test']);
      assertCertError(
        () => verifyCertificateChain([der1], { ca: [pem] }),
        'bad_certificate',
        'name_constraint_violation',
        /DNS:api\.other\.test, which the name constraints of trust anchor "CN=dns-permitted" do not permit/,
      );
    });

    void it('refuses names in excluded DNS subtrees, and a leading dot means subdomains only', async () => {
      const { pem, issuer } = await constrainedRoot('dns-excluded', 'critical,excluded;DNS:.secret.test');
      verifyCertificateChain([await leafFor(issuer, ['secret.test', 'public.test'])], { ca: [pem] });
      const der2 = await leafFor(issuer, ['db.secret.test']);
      assertCertError(() => verifyCertificateChain([der2], { ca: [pem] }), 'bad_certificate', 'name_constraint_violation', /exclude/);
    });

    void it('applies IP address subtrees to IP subjectAltNames', async () => {
      const { pem, issuer } = await constrainedRoot('ip-permitted', 'critical,permitted;IP:127.0.0.0/255.0.0.0,permitted;DNS:localhost');
      verifyCertificateChain([await leafFor(issuer, ['localhost'], ['127.0.0.1'])], { ca: [pem], servername: '127.0.0.1' });
      const der3 = await leafFor(issuer, ['localhost'], ['10.0.0.1']);
      assertCertError(() => verifyCertificateChain([der3], { ca: [pem] }), 'bad_certificate', 'name_constraint_violation', /IP:10\.0\.0\.1/);
      const der4 = await leafFor(issuer, ['localhost'], ['::1']);
      assertCertError(() => verifyCertificateChain([der4], { ca: [pem] }), 'bad_certificate', 'name_constraint_violation', /IP:::1/);
    });

    void it('refuses a CA that constrains name types it cannot evaluate', async () => {
      const { pem, issuer } = await constrainedRoot('dirname', 'critical,permitted;email:example.test');
      const der5 = await leafFor(issuer, ['example.test']);
      assertCertError(() => verifyCertificateChain([der5], { ca: [pem] }), 'unsupported_certificate', 'unsupported_name_constraint', /rfc822Name/);
    });
  });

  void it('verifies a chain made by openssl, not by our own generator', () => {
    const dir = mkdtempSync(join(tmpdir(), 'certs-'));
    try {
      const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
      run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=OpenSSL Root', '-days', '2',
        '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
      run(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=openssl.example.test']);
      writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=DNS:openssl.example.test\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n1.3.6.1.4.1.44363.44=DER:05:00\n');
      run(['x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'leaf.crt', '-days', '1', '-sigopt', 'rsa_padding_mode:pss', '-sha256', '-extfile', 'ext.cnf']);
      const leafDer = pemToDers(readFileSync(join(dir, 'leaf.crt'), 'latin1'), 'CERTIFICATE')[0]!;
      const v = verifyCertificateChain([leafDer], { ca: [readFileSync(join(dir, 'ca.crt'), 'latin1')], servername: 'openssl.example.test' });
      assert.equal(v.path.length, 2);
      assert.deepEqual(hasDelegationUsage(leafDer), { present: true, critical: false, valueIsNull: true });
      assert.equal(publicKeyMatchesPrivate(leafDer, createPrivateKey(readFileSync(join(dir, 'leaf.key')))), true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

void describe('certificate helpers', () => {
  let root: IssuedCertificate;
  before(async () => {
    root = await makeCa('Helper Root');
  });

  void it('detects a non-critical DelegationUsage extension with a NULL value', async () => {
    const l = await makeLeaf(root);
    assert.deepEqual(hasDelegationUsage(l.der), { present: true, critical: false, valueIsNull: true });
    assert.equal(delegationUsageProblem(l.pem), undefined);
  });

  void it('reports a missing DelegationUsage extension', async () => {
    const l = await makeLeaf(root, { delegationUsage: 'none' });
    assert.deepEqual(hasDelegationUsage(new X509Certificate(l.der)), { present: false, critical: false, valueIsNull: false });
    assert.match(delegationUsageProblem(l.der) ?? '', /lacks the DelegationUsage extension \(1\.3\.6\.1\.4\.1\.44363\.44\)/);
  });

  void it('reports a critical DelegationUsage extension as a problem', async () => {
    const l = await makeLeaf(root, { delegationUsage: 'critical' });
    assert.deepEqual(hasDelegationUsage(l.der), { present: true, critical: true, valueIsNull: true });
    assert.match(delegationUsageProblem(l.der) ?? '', /critical/);
  });

  void it('reports a DelegationUsage value that is not NULL', async () => {
    const l = await makeLeaf(root, { delegationUsage: 'non-null-value' });
    assert.equal(hasDelegationUsage(l.der).valueIsNull, false);
    assert.match(delegationUsageProblem(l.der) ?? '', /not ASN\.1 NULL/);
  });

  void it('requires an explicit digitalSignature key usage for delegation', async () => {
    const withDs = await makeLeaf(root);
    const noKu = await makeLeaf(root, { keyUsage: null });
    const encOnly = await makeLeaf(root, { keyUsage: KeyUsage.keyEncipherment });
    assert.equal(hasDigitalSignatureKeyUsage(withDs.der), true);
    assert.equal(hasDigitalSignatureKeyUsage(noKu.der), false);
    assert.equal(hasDigitalSignatureKeyUsage(encOnly.der), false);
    assert.match(delegationUsageProblem(noKu.der) ?? '', /digitalSignature/);
  });

  void it('reads the validity window exactly', async () => {
    const notBefore = new Date('2030-01-02T03:04:05Z');
    const notAfter = new Date('2051-06-07T08:09:10Z'); // past 2049: GeneralizedTime
    const l = await makeLeaf(root, { notBefore, notAfter });
    assert.equal(certificateNotBefore(l.der).toISOString(), notBefore.toISOString());
    assert.equal(certificateNotAfter(l.pem).toISOString(), notAfter.toISOString());
  });

  void it('returns the SubjectPublicKeyInfo DER of the certificate', async () => {
    const l = await makeLeaf(root, {}, 'ed25519');
    assert.deepEqual(Buffer.from(spkiOf(l.der)), new X509Certificate(l.der).publicKey.export({ type: 'spki', format: 'der' }));
  });

  void it('maps public key types to TLS 1.3 signature schemes', () => {
    const ec = (namedCurve: string) => generateKeyPairSync('ec', { namedCurve }).publicKey;
    assert.deepEqual(schemesForPublicKey(ec('prime256v1')), [0x0403]);
    assert.deepEqual(schemesForPublicKey(ec('secp384r1')), [0x0503]);
    assert.deepEqual(schemesForPublicKey(ec('secp521r1')), [0x0603]);
    assert.deepEqual(schemesForPublicKey(ec('secp256k1')), []);
    assert.deepEqual(schemesForPublicKey(generateKeyPairSync('ed25519').publicKey), [0x0807]);
    assert.deepEqual(schemesForPublicKey(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey), [0x0804, 0x0805, 0x0806]);
    assert.deepEqual(schemesForPublicKey(generateKeyPairSync('rsa-pss', { modulusLength: 1024, hashAlgorithm: 'sha384', mgf1HashAlgorithm: 'sha384' }).publicKey), [0x080a]);
    assert.deepEqual(schemesForPublicKey(generateKeyPairSync('x25519').publicKey), []);
  });

  void it('imports public keys from SPKI exactly as node does, for every key type', () => {
    const keys = [
      generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey,
      generateKeyPairSync('rsa', { modulusLength: 1024, publicExponent: 3 }).publicKey,
      generateKeyPairSync('rsa-pss', { modulusLength: 1024 }).publicKey,
      generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey,
      generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).publicKey,
      generateKeyPairSync('ec', { namedCurve: 'secp521r1' }).publicKey,
      generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey,
      generateKeyPairSync('ed25519').publicKey,
      generateKeyPairSync('ed448').publicKey,
    ];
    for (const key of keys) {
      const spki = new Uint8Array(key.export({ type: 'spki', format: 'der' }));
      const imported = publicKeyFromSpki(spki);
      assert.equal(imported.asymmetricKeyType, key.asymmetricKeyType);
      assert.ok(imported.equals(key), `${key.asymmetricKeyType} ${key.asymmetricKeyDetails?.namedCurve ?? ""}`);
    }
    // A compressed EC point takes the DER path and still works.
    const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey;
    const compressed = execFileSync('openssl', ['ec', '-pubin', '-inform', 'DER', '-outform', 'DER', '-conv_form', 'compressed'], {
      input: ec.export({ type: 'spki', format: 'der' }),
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    assert.ok(publicKeyFromSpki(new Uint8Array(compressed)).equals(ec));
    // A point that is not on the curve is refused.
    const bad = new Uint8Array(ec.export({ type: 'spki', format: 'der' }));
    bad[bad.length - 1] = bad[bad.length - 1]! ^ 1;
    assert.throws(() => publicKeyFromSpki(bad));
    assert.throws(() => publicKeyFromSpki(new Uint8Array([0x30, 0x00])));
  });

  void it('tells whether a private key belongs to the certificate', async () => {
    const a = await makeLeaf(root);
    const b = await makeLeaf(root);
    const ed = await makeLeaf(root, {}, 'ed25519');
    assert.equal(publicKeyMatchesPrivate(a.pem, createPrivateKey(a.key.privateKeyPem)), true);
    assert.equal(publicKeyMatchesPrivate(a.pem, createPrivateKey(b.key.privateKeyPem)), false);
    assert.equal(publicKeyMatchesPrivate(a.der, createPrivateKey(ed.key.privateKeyPem)), false);
    assert.equal(publicKeyMatchesPrivate(ed.der, createPrivateKey(ed.key.privateKeyPem)), true);
    assert.equal(publicKeyMatchesPrivate(a.der, createPublicKey(a.key.privateKeyPem)), false);
  });

  void it('converts PEM to DER and back, keeping only blocks with the asked label', async () => {
    const l = await makeLeaf(root);
    const mixed = `junk\n${l.pem}${l.key.privateKeyPem}${root.pem}`;
    const ders = pemToDers(mixed, 'CERTIFICATE');
    assert.equal(ders.length, 2);
    assert.deepEqual(ders[0], l.der);
    assert.deepEqual(ders[1], root.der);
    assert.equal(derToPem(l.der, 'CERTIFICATE'), l.pem);
    assert.equal(pemToDers(mixed, 'PRIVATE KEY').length, 1);
    assert.throws(() => pemToDers('-----BEGIN CERTIFICATE-----\n@@@@\n-----END CERTIFICATE-----\n', 'CERTIFICATE'), /invalid base64/);
  });
});
