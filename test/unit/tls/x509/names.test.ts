import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { SignatureScheme } from '../../../../src/tls/constants.js';
import { defaultCredential, loadCertifiedKey, type CertifiedKey } from '../../../../src/tls/credentials.js';
import { ClientConnection } from '../../../../src/tls/client.js';
import { ServerConnection } from '../../../../src/tls/server.js';
import { CertificateError } from '../../../../src/tls/x509/errors.js';
import { matchesServerName, type SubjectAltNames } from '../../../../src/tls/x509/names.js';
import { verifyCertificateChain } from '../../../../src/tls/x509/verify-chain.js';
import { asIssuer, issueCertificate, type IssuedCertificate } from '../../../../src/cli/pki/dev-pki.js';
import { doHandshake } from '../pair.js';

function sans(dns: readonly string[], ips: readonly number[][] = []): SubjectAltNames {
  return { dnsNames: dns, ipAddressBytes: ips.map((b) => Uint8Array.from(b)) };
}

const V4 = [192, 0, 2, 1];
const V6_LOOPBACK = [...new Array<number>(15).fill(0), 1];
const V6_DOC = [0x20, 0x01, 0x0d, 0xb8, ...new Array<number>(11).fill(0), 0x01];
const V4_MAPPED = [...new Array<number>(10).fill(0), 0xff, 0xff, 192, 0, 2, 1];

// [rule, subjectAltName, host, matches]
const TABLE: ReadonlyArray<readonly [string, SubjectAltNames, string, boolean]> = [
  ['exact name', sans(['example.com']), 'example.com', true],
  ['another name', sans(['example.com']), 'example.org', false],
  ['case-insensitive host', sans(['example.com']), 'Example.COM', true],
  ['case-insensitive only for ASCII', sans(['exämple.com']), 'EXÄMPLE.com', false],
  ['trailing dot on the host', sans(['example.com']), 'example.com.', true],
  ['trailing dot in the certificate', sans(['example.com.']), 'example.com', true],
  ['trailing dot on both', sans(['example.com.']), 'example.com.', true],
  ['only one trailing dot is ignored', sans(['example.com']), 'example.com..', false],
  ['wildcard: one label', sans(['*.example.com']), 'a.example.com', true],
  ['wildcard: uppercase host', sans(['*.example.com']), 'A.EXAMPLE.com', true],
  ['wildcard: trailing dots', sans(['*.example.com.']), 'a.example.com.', true],
  ['wildcard: never two labels', sans(['*.example.com']), 'a.b.example.com', false],
  ['wildcard: never zero labels', sans(['*.example.com']), 'example.com', false],
  ['wildcard: never an empty label', sans(['*.example.com']), '.example.com', false],
  ['wildcard: never directly under a top-level label', sans(['*.com']), 'example.com', false],
  ['wildcard: two labels after it is enough', sans(['*.co.uk']), 'example.co.uk', true],
  ['wildcard: not inside a label', sans(['f*.example.com']), 'foo.example.com', false],
  ['wildcard: not in a later label', sans(['a.*.example.com']), 'a.b.example.com', false],
  ['wildcard: not twice', sans(['*.*.example.com']), 'a.b.example.com', false],
  ['a host with * matches nothing', sans(['*.example.com']), '*.example.com', false],
  ['an empty host matches nothing', sans(['']), '', false],
  ['IPv4 against iPAddress', sans([], [V4]), '192.0.2.1', true],
  ['IPv4 with a trailing dot', sans([], [V4]), '192.0.2.1.', true],
  ['another IPv4', sans([], [V4]), '192.0.2.2', false],
  ['IPv4 never against a dNSName', sans(['192.0.2.1']), '192.0.2.1', false],
  ['IPv4 never against a wildcard', sans(['*.0.2.1']), '192.0.2.1', false],
  ['IPv4 with leading zeros is not an address', sans([], [V4]), '192.000.2.1', false],
  ['IPv6 compressed', sans([], [V6_LOOPBACK]), '::1', true],
  ['IPv6 in full', sans([], [V6_LOOPBACK]), '0:0:0:0:0:0:0:1', true],
  ['IPv6 in brackets', sans([], [V6_LOOPBACK]), '[::1]', true],
  ['IPv6 uppercase, zeros written', sans([], [V6_DOC]), '2001:DB8:0:0::0001', true],
  ['IPv6 another address', sans([], [V6_DOC]), '2001:db8::2', false],
  ['IPv6 with an IPv4 tail', sans([], [V4_MAPPED]), '::ffff:192.0.2.1', true],
  ['IPv4-mapped IPv6 is not the IPv4 address', sans([], [V4]), '::ffff:192.0.2.1', false],
  ['IPv6 with a zone is not matched', sans([], [V6_LOOPBACK]), '::1%lo', false],
  ['IPv6 never against a dNSName', sans(['::1']), '::1', false],
  ['a DNS name never against an iPAddress', sans([], [[1, 2, 3, 4]]), 'one.example', false],
];

void describe('matchesServerName', () => {
  for (const [rule, names, host, want] of TABLE) {
    void it(`${rule}: ${JSON.stringify(host)} ${want ? 'matches' : 'does not match'} ${JSON.stringify(names.dnsNames)}${names.ipAddressBytes.length ? ' + IP' : ''}`, () => {
      assert.equal(matchesServerName(names, host), want);
    });
  }
});

/**
 * Before, SNI selection (credentials.ts) and chain verification (certificates.ts) each had a
 * matcher, and selection read subjectAltName from node's text form. These are inputs where they
 * disagreed, or agreed wrongly; `old` says what each did. Now both call matchesServerName on the
 * certificate's DER.
 */
const DISAGREED: ReadonlyArray<{ readonly san: { dns?: string[]; ip?: string[] }; readonly host: string; readonly covered: boolean; readonly old: string }> = [
  { san: { dns: ['*.test'] }, host: 'example.test', covered: false, old: 'selected (accepted *.<tld>), verification refused' },
  { san: { dns: ['API.Example.TEST.'] }, host: 'api.example.test', covered: true, old: 'not selected (kept the trailing dot), verification accepted' },
  { san: { dns: ['*.example.test'] }, host: '*.example.test', covered: false, old: 'selected and verified: a host name with * was matched' },
  { san: { ip: ['192.0.2.7'] }, host: '192.0.2.7', covered: true, old: 'not selected (ignored IP SANs), verification accepted' },
  { san: { dns: ['192.0.2.7'] }, host: '192.0.2.7', covered: false, old: 'selected (string equality), verification refused' },
];

void describe('SNI selection and chain verification agree', () => {
  let root: IssuedCertificate;
  let fallback: IssuedCertificate;
  const issue = (dns: readonly string[] = [], ip: readonly string[] = []) =>
    issueCertificate({ commonName: 'leaf', dnsNames: dns, ipAddresses: ip, extendedKeyUsage: ['serverAuth'] }, 'ecdsa-p256', asIssuer(root));
  const load = (c: IssuedCertificate): CertifiedKey => loadCertifiedKey({ cert: c.pem, key: c.key.privateKeyPem });

  before(async () => {
    root = await issueCertificate({ commonName: 'Names Test Root', isCA: true }, 'ecdsa-p256');
    fallback = await issue(['fallback.example.test']);
  });

  for (const { san, host, covered, old } of DISAGREED) {
    void it(`${JSON.stringify(san)} for ${JSON.stringify(host)}: ${covered ? 'selected and verified' : 'neither'} (before: ${old})`, async () => {
      const candidate = await issue(san.dns, san.ip);
      const keys = [load(fallback), load(candidate)];
      const chosen = defaultCredential(keys, host, [SignatureScheme.ecdsa_secp256r1_sha256]);
      const selected = chosen?.certificateChain === keys[1]!.chain;
      let verified = true;
      try {
        verifyCertificateChain([candidate.der], { ca: [root.pem], servername: host });
      } catch (e) {
        if (!(e instanceof CertificateError) || e.code !== 'hostname_mismatch') throw e;
        verified = false;
      }
      assert.equal(selected, verified, 'selection and verification disagree');
      assert.equal(selected, covered);
    });
  }

  void it('a server whose certificate writes its name with capitals and a trailing dot now serves it, and the client accepts it', async () => {
    // Before: the server fell back to its first certificate and the client refused it (bad_certificate).
    const dotted = await issue(['API.Example.TEST.']);
    const server = new ServerConnection({
      certificates: [
        { cert: fallback.pem, key: fallback.key.privateKeyPem },
        { cert: dotted.pem, key: dotted.key.privateKeyPem },
      ],
    });
    const client = new ClientConnection({ servername: 'api.example.test', ca: [root.pem] });
    const pair = await doHandshake(client, server);
    assert.equal(pair.client.error, undefined, String(pair.client.error?.error));
    assert.ok(Buffer.from(pair.client.ofType('handshake')[0]!.info.peerCertificates[0]!).equals(dotted.der), 'the server sent the dotted certificate');
  });
});
