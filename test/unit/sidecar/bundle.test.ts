/**
 * The serving bundle's fallback parts: parsing (bundle.ts, material.ts), the keyless client's
 * validate-then-swap against a real loopback key server (keyless-fallback.ts), routing by the
 * declared fallback (router.ts), the interval summary (serving-report.ts) and what is said at
 * startup (fallback.ts).
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { asIssuer, issueCertificate, type IssuedCertificate } from '../../../src/cli/pki/dev-pki.js';
import { startKeyServer, type KeyServer } from '../../../src/keyless/server.js';
import { BUNDLE_KEYS, sidecarIdentityUri } from '../../../src/operator/api/serving-bundle.js';
import { clientCertificateProblem, readBundle, readKeylessPart } from '../../../src/sidecar/bundle.js';
import { fallbackStatement, fallbackSummary } from '../../../src/sidecar/fallback.js';
import { KeylessFallback } from '../../../src/sidecar/keyless-fallback.js';
import { MaterialError, validateServingMaterial, type ServingMaterial } from '../../../src/sidecar/material.js';
import { route, type RoutingPolicy } from '../../../src/sidecar/router.js';
import { ServingReport } from '../../../src/sidecar/serving-report.js';
import type { ClientHello } from '../../../src/tls/messages/client-hello.js';
import { ProtocolVersion, SignatureScheme } from '../../../src/tls/constants.js';
import type { FileMap } from '../../../src/tls/delegated/index.js';
import { AlertDescription } from '../../../src/tls/alerts.js';
import { ecKeyWithForeignScalar } from '../../support/mismatched-keys.js';
import { clientHello, credentialFiles, makePki, type TestPki } from './fixtures.js';

const IDENTITY = sidecarIdentityUri({ trustDomain: 'cluster.local', namespace: 'shop', name: 'web' });

function fileMap(files: Record<string, string | Uint8Array>): FileMap {
  return Object.fromEntries(Object.entries(files).map(([k, v]) => [k, typeof v === 'string' ? new Uint8Array(Buffer.from(v)) : v]));
}

const quiet = { info: (_m: string, _meta?: Record<string, unknown>): void => {}, warn: (_m: string, _meta?: Record<string, unknown>): void => {}, error: (_m: string, _meta?: Record<string, unknown>): void => {} };

interface Recorded {
  level: string;
  message: string;
  meta: Record<string, unknown> | undefined;
}

function recorder(): { log: typeof quiet; lines: Recorded[] } {
  const lines: Recorded[] = [];
  const at = (level: string) => (message: string, meta?: Record<string, unknown>): void => void lines.push({ level, message, meta });
  return { log: { info: at('info'), warn: at('warn'), error: at('error') }, lines };
}

let pki: TestPki;
let ksCa: IssuedCertificate;
let otherCa: IssuedCertificate;
let client: IssuedCertificate;
let keyServer: KeyServer;
let work: string;

async function clientCert(ca: IssuedCertificate, validity: { notBefore?: Date; notAfter?: Date } = {}): Promise<IssuedCertificate> {
  return issueCertificate({ commonName: 'web sidecar', uris: [IDENTITY], extendedKeyUsage: ['clientAuth'], ...validity }, 'ecdsa-p256', asIssuer(ca));
}

function keylessFiles(address: string, c: IssuedCertificate = client, ca: IssuedCertificate = ksCa): Record<string, string> {
  return {
    [BUNDLE_KEYS.keylessAddress]: address,
    [BUNDLE_KEYS.keylessCA]: ca.pem,
    [BUNDLE_KEYS.keylessClientCertificate]: c.pem,
    [BUNDLE_KEYS.keylessClientKey]: c.key.privateKeyPem,
  };
}

async function material(extra: Record<string, string | Uint8Array>, options: { certificateKey?: boolean; dcs?: boolean } = {}): Promise<ServingMaterial> {
  const base = await credentialFiles(pki, { certificateKey: options.certificateKey ?? false, algorithms: options.dcs === false ? [] : ['ecdsa_secp256r1_sha256'] });
  return validateServingMaterial('/bundle', fileMap({ ...base, ...extra }));
}

before(async () => {
  pki = await makePki('ecdsa-p256');
  ksCa = await issueCertificate({ commonName: 'key server CA', isCA: true }, 'ecdsa-p256');
  otherCa = await issueCertificate({ commonName: 'another CA', isCA: true }, 'ecdsa-p256');
  client = await clientCert(ksCa);
  const server = await issueCertificate({ commonName: 'key server', ipAddresses: ['127.0.0.1'], extendedKeyUsage: ['serverAuth'] }, 'ecdsa-p256', asIssuer(ksCa));
  work = await mkdtemp(join(tmpdir(), 'dc-bundle-unit-'));
  await writeFile(join(work, 'web.pem'), pki.leaf.key.privateKeyPem);
  keyServer = await startKeyServer({ keysDir: work, ca: ksCa.pem, cert: server.pem, key: server.key.privateKeyPem, host: '127.0.0.1', port: 0 });
});

after(async () => {
  await keyServer?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

void describe('bundle parsing', () => {
  test('a complete keyless part parses with the key server address, the identity and the client certificate validity', () => {
    const part = readKeylessPart(fileMap(keylessFiles('127.0.0.1:2407')));
    assert.equal(part.kind, 'valid');
    if (part.kind !== 'valid') return;
    assert.equal(part.config.address, '127.0.0.1:2407');
    assert.deepEqual(part.config.identities, [IDENTITY]);
    assert.ok(part.config.clientNotAfter.getTime() > Date.now());
  });

  test('keyless files that do not go together are named: a missing file, a bad address, a key of another certificate', () => {
    const files = keylessFiles('127.0.0.1:2407');
    const withoutCa = Object.fromEntries(Object.entries(files).filter(([k]) => k !== BUNDLE_KEYS.keylessCA));
    const m = readKeylessPart(fileMap(withoutCa));
    assert.equal(m.kind, 'invalid');
    assert.equal(m.kind === 'invalid' && m.problem.file, BUNDLE_KEYS.keylessCA);
    assert.match(m.kind === 'invalid' ? m.problem.reason : '', /the keyless files go together/);
    const address = readKeylessPart(fileMap({ ...files, [BUNDLE_KEYS.keylessAddress]: 'not an address:x:y' }));
    assert.equal(address.kind === 'invalid' && address.problem.file, BUNDLE_KEYS.keylessAddress);
    const mismatch = readKeylessPart(fileMap({ ...files, [BUNDLE_KEYS.keylessClientKey]: pki.leaf.key.privateKeyPem }));
    assert.equal(mismatch.kind === 'invalid' && mismatch.problem.file, BUNDLE_KEYS.keylessClientKey);
    assert.match(mismatch.kind === 'invalid' ? mismatch.problem.reason : '', /^keyless-client\.key does not belong to keyless-client\.crt: its public key is not keyless-client\.crt's/);
  });

  test("a keyless client key carrying its certificate's public key beside another private scalar is named, and the DCs still load", async () => {
    const swapped = ecKeyWithForeignScalar(client.key.privateKeyPem, 'pkcs8').pem;
    const part = readKeylessPart(fileMap({ ...keylessFiles('127.0.0.1:2407'), [BUNDLE_KEYS.keylessClientKey]: swapped }));
    assert.equal(part.kind === 'invalid' && part.problem.file, BUNDLE_KEYS.keylessClientKey);
    assert.match(
      part.kind === 'invalid' ? part.problem.reason : '',
      /^keyless-client\.key does not belong to keyless-client\.crt: its private part does not produce signatures keyless-client\.crt's public key verifies/,
    );
    const m = await material({ ...keylessFiles('127.0.0.1:2407'), [BUNDLE_KEYS.keylessClientKey]: swapped, [BUNDLE_KEYS.fallback]: 'Keyless' });
    assert.equal(m.credentials.entries.length, 1);
    assert.equal(m.fallback.keyless.kind, 'invalid');
  });

  test('keyless-client.key is not taken for a delegated credential key, and a broken keyless part leaves the DCs loadable', async () => {
    const m = await material({ ...keylessFiles('127.0.0.1:2407'), [BUNDLE_KEYS.fallback]: 'Keyless' });
    assert.equal(m.credentials.entries.length, 1);
    assert.equal(m.fallback.declared, 'Keyless');
    assert.equal(m.fallback.keyless.kind, 'valid');
    const broken = await material({ ...keylessFiles('127.0.0.1:2407'), [BUNDLE_KEYS.keylessCA]: 'garbage', [BUNDLE_KEYS.fallback]: 'Keyless' });
    assert.equal(broken.credentials.entries.length, 1);
    assert.equal(broken.fallback.keyless.kind, 'invalid');
  });

  test('a declared fallback that contradicts the files is an error naming the file; an unknown fallback is named too', async () => {
    await assert.rejects(material({ [BUNDLE_KEYS.fallback]: 'Keyless' }, { certificateKey: true }), (e: unknown) => e instanceof MaterialError && /tls\.key$/.test(e.file) && /only with fallback CertificateKey/.test(e.reason));
    await assert.rejects(material({ [BUNDLE_KEYS.fallback]: 'CertificateKey' }), (e: unknown) => e instanceof MaterialError && /declares fallback CertificateKey/.test(e.reason));
    await assert.rejects(material({ [BUNDLE_KEYS.fallback]: 'Sometimes' }), (e: unknown) => e instanceof MaterialError && /fallback$/.test(e.file) && /not one of Keyless, None, CertificateKey/.test(e.reason));
    assert.equal(readBundle(fileMap({ [BUNDLE_KEYS.fallback]: 'None\n' })).declared, 'None');
  });

  test('an expired or not yet valid client certificate is said with what to do', () => {
    const notAfter = new Date('2026-01-01T00:00:00Z');
    const text = clientCertificateProblem({ clientNotBefore: new Date('2025-12-01T00:00:00Z'), clientNotAfter: notAfter }, new Date('2026-01-02T00:00:00Z'));
    assert.match(text ?? '', /^keyless client certificate expired at 2026-01-01T00:00:00\.000Z .*: the operator renews it with the DCs; check the DelegatedCredential's status$/);
    assert.match(clientCertificateProblem({ clientNotBefore: notAfter, clientNotAfter: new Date('2026-02-01T00:00:00Z') }, new Date('2025-12-31T00:00:00Z')) ?? '', /not valid before 2026-01-01/);
    assert.equal(clientCertificateProblem({ clientNotBefore: new Date(0), clientNotAfter: notAfter }, new Date('2025-06-01T00:00:00Z')), undefined);
  });
});

void describe('keyless client: validate, then swap', () => {
  test('a working configuration is installed; invalid, expired and unreachable new ones never replace it; a valid new one does, and the old client is closed', async () => {
    const { log, lines } = recorder();
    const reloads: string[] = [];
    const k = new KeylessFallback({ timeoutMs: 1000, log, onReload: (r) => reloads.push(r) });
    const address = `127.0.0.1:${keyServer.port}`;
    try {
      const first = await material({ ...keylessFiles(address), [BUNDLE_KEYS.fallback]: 'Keyless' });
      await k.update(first);
      assert.equal(k.config?.address, address);
      assert.deepEqual(k.ready(), { ready: true, reason: `keyless pull from ${address}` });
      const signer = k.signerFor(first);
      assert.ok(signer, 'signer for the certificate');
      const installed = k.config;

      // Invalid: a CA that is not PEM.
      await k.update(await material({ ...keylessFiles(address), [BUNDLE_KEYS.keylessCA]: 'garbage', [BUNDLE_KEYS.fallback]: 'Keyless' }));
      assert.equal(k.config, installed);
      // Expired client certificate.
      const expired = await clientCert(ksCa, { notBefore: new Date(Date.now() - 7200_000), notAfter: new Date(Date.now() - 3600_000) });
      await k.update(await material({ ...keylessFiles(address, expired), [BUNDLE_KEYS.fallback]: 'Keyless' }));
      assert.equal(k.config, installed);
      // A key server nobody listens on, while the installed one works.
      await k.update(await material({ ...keylessFiles('127.0.0.1:1'), [BUNDLE_KEYS.fallback]: 'Keyless' }));
      assert.equal(k.config, installed);
      // A client certificate of a CA the key server does not trust: the ping fails.
      const stranger = await clientCert(otherCa);
      await k.update(await material({ ...keylessFiles(address, stranger), [BUNDLE_KEYS.fallback]: 'Keyless' }));
      assert.equal(k.config, installed);
      assert.deepEqual(reloads, ['success', 'failure', 'failure', 'failure', 'failure']);
      const refusals = lines.filter((l) => l.message === 'keyless configuration not used').map((l) => `${l.meta?.['file'] ? `${String(l.meta['file'])}: ` : ''}${String(l.meta?.['reason'] ?? '')}`);
      assert.equal(refusals.length, 4);
      assert.match(refusals[0]!, /keyless-ca\.crt: no PEM certificate found/);
      assert.match(refusals[1]!, /keyless client certificate expired at/);
      assert.match(refusals[2]!, /could not reach key server 127\.0\.0\.1:1/);
      assert.ok(k.ready().ready, 'still working');

      // A renewed client certificate: swapped in, the old client drains and closes.
      const renewed = await clientCert(ksCa);
      const oldClient = (signer as unknown as { inner: { client: { state: string } } }).inner.client;
      const next = await material({ ...keylessFiles(address, renewed), [BUNDLE_KEYS.fallback]: 'Keyless' });
      await k.update(next);
      assert.notEqual(k.config, installed);
      assert.equal(k.config?.clientNotAfter.toISOString(), new Date(new X509Certificate(renewed.pem).validTo).toISOString());
      assert.equal(reloads.at(-1), 'success');
      const deadline = Date.now() + 5000;
      while (oldClient.state !== 'closed' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.equal(oldClient.state, 'closed');
      const s = k.signerFor(next);
      assert.ok(s);
      const sig = await s.sign(s.schemes[0]!, new Uint8Array(32));
      assert.ok(sig.length > 0, 'signs through the new client');
    } finally {
      await k.close();
    }
  });

  test('with nothing installed, an expired client certificate makes keyless unavailable with that reason', async () => {
    const k = new KeylessFallback({ timeoutMs: 500, log: quiet });
    try {
      const expired = await clientCert(ksCa, { notBefore: new Date(Date.now() - 7200_000), notAfter: new Date(Date.now() - 3600_000) });
      const m = await material({ ...keylessFiles(`127.0.0.1:${keyServer.port}`, expired), [BUNDLE_KEYS.fallback]: 'Keyless' });
      await k.update(m);
      assert.equal(k.signerFor(m), undefined);
      assert.equal(k.unavailable()?.kind, 'keyless-client-certificate');
      assert.match(k.unavailable()?.reason ?? '', /keyless client certificate expired at/);
      const summary = fallbackSummary(m, k);
      assert.equal(summary.ready, false);
      assert.match(summary.reason, /expired at/);
    } finally {
      await k.close();
    }
  });
});

void describe('routing by the declared fallback', () => {
  const policy = (extra: Partial<RoutingPolicy> = {}): RoutingPolicy => ({ certificateEngine: 'node', keylessFor: undefined, ...extra });

  test('fallback None: a non-DC TLS 1.3 client gets handshake_failure with reason fallback-none', async () => {
    const m = await material({ [BUNDLE_KEYS.fallback]: 'None' });
    const r = route(tls13HelloWithoutDc(), m, policy());
    assert.deepEqual(r.engine === 'refuse' && [r.alert, r.metric], [AlertDescription.handshake_failure, 'fallback-none']);
    assert.match(r.engine === 'refuse' ? r.reason : '', /fallback None/);
  });

  test('no fallback in the bundle: handshake_failure, no-fallback; keyless configured but unusable: its kind and reason', async () => {
    const m = await material({});
    const r = route(tls13HelloWithoutDc(), m, policy());
    assert.equal(r.engine === 'refuse' && r.metric, 'no-fallback');
    const k = route(tls13HelloWithoutDc(), m, policy({ keylessUnavailable: () => ({ kind: 'keyserver-unreachable', reason: 'key server 10.0.0.1:2407 unreachable' }) }));
    assert.equal(k.engine === 'refuse' && k.metric, 'keyserver-unreachable');
    assert.match(k.engine === 'refuse' ? k.reason : '', /10\.0\.0\.1:2407 unreachable/);
  });
});

void describe('interval summary and startup statements', () => {
  test('counts per interval, then starts over; silent without connections unless the fallback has a problem', () => {
    const report = new ServingReport();
    report.served('dc');
    report.served('dc');
    report.served('keyless');
    report.refused('keyserver-unreachable', 'key server 10.0.0.1:2407 unreachable: ECONNREFUSED');
    report.refused('keyserver-unreachable', 'second detail is not kept');
    report.refused('refused-by-keyserver', 'key server 10.0.0.1:2407 answered ecdsaSignSha256 with error: keyNotFound');
    const line = report.flush(30_000, { fallback: 'Keyless', ready: false, reason: 'key server 10.0.0.1:2407 unreachable' });
    assert.ok(line);
    assert.equal(
      line.message,
      'last 30s: served 2 via DC, 1 via keyless, 0 via certificate key, 0 resumed; refused 3 (key server unreachable: 2 [key server 10.0.0.1:2407 unreachable: ECONNREFUSED]; refused by the key server: 1 [key server 10.0.0.1:2407 answered ecdsaSignSha256 with error: keyNotFound]); fallback Keyless not ready: key server 10.0.0.1:2407 unreachable',
    );
    assert.deepEqual(line.meta['served'], { dc: 2, keyless: 1 });
    assert.deepEqual(line.meta['refused'], { 'keyserver-unreachable': 2, 'refused-by-keyserver': 1 });
    assert.equal(report.flush(30_000, { fallback: 'Keyless', ready: true, reason: 'ok' }), undefined, 'nothing happened, nothing wrong');
    const expired = report.flush(30_000, { fallback: 'Keyless', ready: false, reason: 'keyless client certificate expired at 2026-01-01T00:00:00.000Z' });
    assert.match(expired?.message ?? '', /^last 30s: served 0 via DC, .*refused 0; fallback Keyless not ready: keyless client certificate expired at/);
  });

  test('a bundle with neither a fallback configuration nor fallback None warns that non-DC clients will be refused; None is stated', async () => {
    const unset = fallbackStatement(await material({}), undefined, 'node');
    assert.equal(unset.level, 'warn');
    assert.match(unset.message, /non-DC clients will be refused/);
    const none = fallbackStatement(await material({ [BUNDLE_KEYS.fallback]: 'None' }), undefined, 'node');
    assert.equal(none.level, 'info');
    assert.match(none.message, /^fallback None: only clients that support delegated credentials are served; other clients get handshake_failure/);
    const local = fallbackStatement(await material({}, { certificateKey: true }), undefined, 'node');
    assert.match(local.message, /^fallback CertificateKey/);
  });
});

/** A TLS 1.3 ClientHello without delegated_credential, ECDSA P-256 SHA-256 offered. */
function tls13HelloWithoutDc(): ClientHello {
  return clientHello({ supportedVersions: [ProtocolVersion.TLS1_3], signatureAlgorithms: [SignatureScheme.ecdsa_secp256r1_sha256] });
}
