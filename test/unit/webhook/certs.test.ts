import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CA_LIFETIME_MS,
  SERVING_LIFETIME_MS,
  createCa,
  createServingCert,
  pruneExpired,
  renewalTime,
  splitPemCertificates,
} from '../../../src/pki/certs.js';
import type { V1Secret } from '@kubernetes/client-node';
import { DirectoryCertificates, WEBHOOK_CA_LAYOUT, decideServing, parseCaSecret } from '../../../src/webhook/serving-certs.js';
import { decideCaAction, ensureCa, nextCa, readCaSecret } from '../../../src/pki/ca-secret.js';
import { keyPairFault } from '../../../src/tls/key-pair.js';
import { ecKeyWithForeignScalar } from '../../support/mismatched-keys.js';

const DAY = 24 * 60 * 60 * 1000;
const t0 = new Date('2026-01-01T00:00:00Z');

void test('the CA is a CA certificate valid for a year, self-signed, with its key', async () => {
  const ca = await createCa('test CA', t0);
  const cert = new X509Certificate(ca.certPem);
  assert.equal(cert.ca, true);
  assert.ok(cert.checkIssued(cert));
  assert.ok(cert.verify(cert.publicKey));
  assert.equal(ca.notAfter.getTime() - t0.getTime(), CA_LIFETIME_MS);
  assert.ok(cert.checkPrivateKey(createPrivateKey(ca.keyPem)));
});

void test('the serving certificate is signed by the CA, names the Service DNS names and 127.0.0.1, and lasts 90 days', async () => {
  const ca = await createCa('test CA', t0);
  const serving = await createServingCert(ca, { dnsNames: ['svc', 'svc.ns.svc'], ipAddresses: ['127.0.0.1'], now: t0 });
  const cert = new X509Certificate(serving.certPem);
  const caCert = new X509Certificate(ca.certPem);
  assert.equal(cert.ca, false);
  assert.ok(cert.checkIssued(caCert));
  assert.ok(cert.verify(caCert.publicKey));
  assert.equal(cert.subjectAltName, 'DNS:svc, DNS:svc.ns.svc, IP Address:127.0.0.1');
  assert.equal(cert.checkHost('svc.ns.svc'), 'svc.ns.svc');
  assert.equal(cert.checkIP('127.0.0.1'), '127.0.0.1');
  assert.equal(serving.notAfter.getTime() - t0.getTime(), SERVING_LIFETIME_MS);
  assert.ok(cert.checkPrivateKey(createPrivateKey(serving.keyPem)));
});

void test('a serving certificate never outlives its CA', async () => {
  const ca = await createCa('short CA', t0, 10 * DAY);
  const serving = await createServingCert(ca, { dnsNames: ['svc'], ipAddresses: [], now: t0 });
  assert.equal(serving.notAfter.getTime(), ca.notAfter.getTime());
});

void test('renewal is due two thirds of the way through the validity', () => {
  const notBefore = new Date(0);
  assert.equal(renewalTime({ notBefore, notAfter: new Date(90 * DAY) }).getTime(), 60 * DAY);
  assert.equal(renewalTime({ notBefore, notAfter: new Date(300) }, 0.5).getTime(), 150);
});

void test('the CA is created when absent, kept before 2/3 of its life and rotated after', async () => {
  const stored = await nextCa(undefined, t0);
  assert.equal(decideCaAction(undefined, t0), 'create');
  assert.equal(decideCaAction(stored, new Date(t0.getTime() + 200 * DAY)), 'keep');
  assert.equal(decideCaAction(stored, new Date(t0.getTime() + 244 * DAY)), 'rotate');
});

void test('a rotated CA bundle trusts the new CA first and the old one until it expires', async () => {
  const first = await nextCa(undefined, t0);
  const later = new Date(t0.getTime() + 250 * DAY);
  const second = await nextCa(first, later);
  assert.deepEqual(second.bundle, [second.ca.certPem, first.ca.certPem]);
  const afterOldExpiry = new Date(t0.getTime() + 366 * DAY);
  assert.deepEqual(pruneExpired(second.bundle, afterOldExpiry), [second.ca.certPem]);
  assert.equal(splitPemCertificates(second.bundle.join('')).length, 2);
});

void test('a serving certificate is issued when missing or 2/3 through its life, and kept otherwise', async () => {
  const ca = await createCa('test CA', t0);
  const cert = await createServingCert(ca, { dnsNames: ['svc'], ipAddresses: [], now: t0 });
  const serving = { cert, issuerPem: ca.certPem };
  assert.equal(decideServing(undefined, ca.certPem, t0, undefined), 'issue');
  assert.equal(decideServing(serving, ca.certPem, new Date(t0.getTime() + 59 * DAY), t0), 'keep');
  assert.equal(decideServing(serving, ca.certPem, new Date(t0.getTime() + 61 * DAY), t0), 'issue');
});

void test('after a CA rotation the new CA signs only once its bundle has been in the configuration for the propagation delay', async () => {
  const ca = await createCa('test CA', t0);
  const cert = await createServingCert(ca, { dnsNames: ['svc'], ipAddresses: [], now: t0 });
  const serving = { cert, issuerPem: ca.certPem };
  const written = new Date(t0.getTime() + DAY);
  assert.equal(decideServing(serving, 'new CA', written, undefined, 30_000), 'wait-for-trust');
  assert.equal(decideServing(serving, 'new CA', new Date(written.getTime() + 29_999), written, 30_000), 'wait-for-trust');
  assert.equal(decideServing(serving, 'new CA', new Date(written.getTime() + 30_000), written, 30_000), 'issue');
});

void test('a serving certificate due for renewal still waits for the new CA to be trusted, unless it has expired', async () => {
  const ca = await createCa('test CA', t0);
  const cert = await createServingCert(ca, { dnsNames: ['svc'], ipAddresses: [], now: t0 });
  const serving = { cert, issuerPem: ca.certPem };
  const due = new Date(t0.getTime() + 61 * DAY);
  assert.equal(decideServing(serving, 'new CA', due, due, 30_000), 'wait-for-trust');
  assert.equal(decideServing(serving, 'new CA', new Date(t0.getTime() + 91 * DAY), undefined, 30_000), 'issue');
});

void test('a CA Secret with a missing or garbled certificate is read as absent', async () => {
  const ca = await createCa('test CA', t0);
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  assert.equal(parseCaSecret({ data: { 'tls.key': b64(ca.keyPem) } }), undefined);
  assert.equal(parseCaSecret({ data: { 'tls.crt': b64('garbage'), 'tls.key': b64(ca.keyPem) } }), undefined);
  const parsed = parseCaSecret({ metadata: { resourceVersion: '7' }, data: { 'tls.crt': b64(ca.certPem), 'tls.key': b64(ca.keyPem) } });
  assert.equal(parsed?.ca.certPem, ca.certPem);
  assert.deepEqual(parsed?.bundle, [ca.certPem]);
  assert.equal(parsed?.resourceVersion, '7');
});

void test('a CA Secret whose key does not match its certificate is read as absent', async () => {
  const ca = await createCa('test CA', t0);
  const other = await createCa('other CA', t0);
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  assert.equal(parseCaSecret({ data: { 'tls.crt': b64(ca.certPem), 'tls.key': b64(other.keyPem) } }), undefined);
});

/** ensureCa over an existing CA Secret: what it warned, what it wrote in its place, and its result. */
async function ensureCaOver(secret: V1Secret): Promise<{ warnings: string[]; replaced: V1Secret[]; result: Awaited<ReturnType<typeof ensureCa>> }> {
  const warnings: string[] = [];
  const replaced: V1Secret[] = [];
  const result = await ensureCa({
    access: { read: async () => secret, create: async () => assert.fail('the Secret exists'), replace: async (body: V1Secret) => replaced.push(body) },
    name: 'ca',
    namespace: 'ns',
    layout: WEBHOOK_CA_LAYOUT,
    now: () => t0,
    log: { info: () => {}, warn: (message: string) => warnings.push(message) },
  });
  return { warnings, replaced, result };
}

void test('a CA Secret whose key carries the CA public key beside another private scalar is read as absent, and the warning says why', async () => {
  const ca = await createCa('test CA', t0);
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  const swapped = ecKeyWithForeignScalar(ca.keyPem, 'pkcs8');
  assert.ok(new X509Certificate(ca.certPem).checkPrivateKey(swapped.key), 'the public key it carries is the CA certificate\'s');
  const secret = { metadata: { resourceVersion: '3' }, data: { 'tls.crt': b64(ca.certPem), 'tls.key': b64(swapped.pem) } };
  assert.equal(parseCaSecret(secret), undefined);
  assert.deepEqual(readCaSecret(secret, WEBHOOK_CA_LAYOUT), {
    problem: "tls.key does not belong to tls.crt: its private part does not produce signatures tls.crt's public key verifies (the file carries tls.crt's public key beside another private key: corrupted or tampered); replace tls.key with the key tls.crt was issued for",
  });
  const { warnings, replaced, result } = await ensureCaOver(secret);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /^CA Secret is unreadable \(tls\.key does not belong to tls\.crt: its private part does not produce signatures .*\); replacing it$/);
  assert.equal(replaced.length, 1);
  assert.equal(keyPairFault(createPrivateKey(result.ca.keyPem), new X509Certificate(result.ca.certPem).publicKey), undefined, 'the new CA pairs');
});

void test('a CA Secret whose RSA-PSS key is restricted to a salt longer than TLS uses is replaced, and the warning says the key cannot sign, not that it is corrupted', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'webhook-pss-ca-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa-pss', '-pkeyopt', 'rsa_keygen_bits:2048', '-pkeyopt', 'rsa_pss_keygen_md:sha256', '-pkeyopt', 'rsa_pss_keygen_mgf1_md:sha256', '-pkeyopt', 'rsa_pss_keygen_saltlen:64', '-nodes', '-subj', '/CN=pss CA', '-days', '1', '-keyout', join(dir, 'ca.key'), '-out', join(dir, 'ca.crt')], { stdio: 'ignore' });
    const b64 = (s: string): string => Buffer.from(s).toString('base64');
    const secret = { data: { 'tls.crt': b64(readFileSync(join(dir, 'ca.crt'), 'utf8')), 'tls.key': b64(readFileSync(join(dir, 'ca.key'), 'utf8')) } };
    const read = readCaSecret(secret, WEBHOOK_CA_LAYOUT);
    assert.ok('problem' in read);
    assert.match(read.problem, /^tls\.key cannot be used with tls\.crt: OpenSSL refuses to make the signatures this check and TLS need with it \(.*salt.*\); the key is not corrupted/);
    assert.doesNotMatch(read.problem, /tampered/);
    const { warnings, replaced } = await ensureCaOver(secret);
    assert.equal(replaced.length, 1, 'still replaced');
    assert.match(warnings[0]!, /^CA Secret is unreadable \(tls\.key cannot be used with tls\.crt: OpenSSL refuses/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

void test('cert-manager mode serves tls.crt/tls.key from the directory and reports a change only when the files change', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'webhook-certs-'));
  try {
    const ca = await createCa('cm CA', t0);
    const a = await createServingCert(ca, { dnsNames: ['svc'], ipAddresses: [], now: t0 });
    const b = await createServingCert(ca, { dnsNames: ['svc'], ipAddresses: [], now: t0 });
    writeFileSync(join(dir, 'tls.crt'), a.certPem);
    writeFileSync(join(dir, 'tls.key'), a.keyPem);
    const source = new DirectoryCertificates(dir);
    const first = await source.refresh();
    assert.equal(first.changed, true);
    assert.equal(first.certPem, a.certPem);
    assert.equal((await source.refresh()).changed, false);
    writeFileSync(join(dir, 'tls.crt'), b.certPem);
    writeFileSync(join(dir, 'tls.key'), b.keyPem);
    const second = await source.refresh();
    assert.equal(second.changed, true);
    assert.equal(second.keyPem, b.keyPem);
    writeFileSync(join(dir, 'tls.crt'), a.certPem);
    await assert.rejects(source.refresh(), /tls\.key does not belong to tls\.crt/);
    writeFileSync(join(dir, 'tls.crt'), b.certPem);
    writeFileSync(join(dir, 'tls.key'), ecKeyWithForeignScalar(b.keyPem, 'sec1').pem);
    await assert.rejects(source.refresh(), /: tls\.key does not belong to tls\.crt: its private part does not produce signatures tls\.crt's public key verifies/);
    writeFileSync(join(dir, 'tls.key'), b.keyPem);
    writeFileSync(join(dir, 'tls.crt'), '');
    await assert.rejects(source.refresh(), /tls\.crt or tls\.key is not PEM/);
    writeFileSync(join(dir, 'tls.crt'), b.certPem);
    assert.equal((await source.refresh()).changed, false, 'the pair served before the bad files');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
