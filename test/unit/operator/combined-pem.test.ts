// A tls.crt holding the certificate followed by its private key (a "combined PEM") must not carry
// the key any further: not into the certificate cache, not into the output Secret.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { certificatesOfPem } from '../../../src/tls/x509/index.js';
import { projectCertificateSecret } from '../../../src/operator/certificate-secrets.js';
import { delegationCertificate } from './fakes.js';

const cert = await delegationCertificate();
const ca = await delegationCertificate();
const key = cert.key.privateKeyPem;
const keyBody = key.split('\n')[1] ?? 'unreachable';

void test('certificatesOfPem keeps the certificates, re-encoded, and names the key blocks it dropped', () => {
  const table: [string, string, string, string[]][] = [
    ['certificate only', cert.pem, cert.pem, []],
    ['certificate then PKCS#8 key', cert.pem + key, cert.pem, ['PRIVATE KEY']],
    ['key first, then a chain', key + cert.pem + ca.pem, cert.pem + ca.pem, ['PRIVATE KEY']],
    ['SEC1 key between certificates', cert.pem + key.replace(/PRIVATE KEY/g, 'EC PRIVATE KEY') + ca.pem, cert.pem + ca.pem, ['EC PRIVATE KEY']],
    ['CRLF, comments and a key whose END line is damaged', `# web\r\n${cert.pem.replace(/\n/g, '\r\n')}${key.replace('-----END PRIVATE KEY-----', '')}`, cert.pem, ['PRIVATE KEY']],
  ];
  for (const [what, input, pem, labels] of table) {
    const out = certificatesOfPem(input);
    assert.equal(out.pem, pem, what);
    assert.deepEqual(out.privateKeyLabels, labels, what);
    assert.ok(!out.pem.includes(keyBody), `${what}: no key material`);
  }
  assert.throws(() => certificatesOfPem('-----BEGIN CERTIFICATE-----\n*not base64*\n-----END CERTIFICATE-----\n'), /invalid base64/);
});

void test('the certificate cache keeps the certificates of a combined PEM, never its key', () => {
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  const secret = { type: 'kubernetes.io/tls', metadata: { name: 'web-tls', namespace: 'web', resourceVersion: '7' }, data: { 'tls.crt': b64(cert.pem + key), 'tls.key': b64(key) } };
  const projected = projectCertificateSecret(secret);
  assert.deepEqual(projected, { namespace: 'web', name: 'web-tls', resourceVersion: '7', hasKey: true, chainPem: cert.pem, privateKeyLabels: ['PRIVATE KEY'] });
  assert.ok(!JSON.stringify(projected).includes(keyBody));
  const broken = projectCertificateSecret({ ...secret, data: { 'tls.crt': b64('-----BEGIN CERTIFICATE-----\n*\n-----END CERTIFICATE-----\n') } });
  assert.equal(broken.chainPem, undefined);
  assert.match(broken.invalid ?? '', /PEM CERTIFICATE block #0 has an invalid base64 body/);
});
