// The operator against a real kube-apiserver + etcd (test/support): the CRDs from crds/ with
// their CEL rules, and runController issuing real delegated credentials into Secrets.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import { CustomObjectsApi, type CoreV1Api, type KubeConfig, type V1Secret } from '@kubernetes/client-node';
import { loadDelegatedCredentialSet, validateDelegatedCredential } from '../../src/tls/delegated/index.js';
import type { ControllerHandle } from '../../src/operator/main.js';
import { issueCertificate, KeyUsage } from '../../src/cli/pki/dev-pki.js';
import type { TestNamespace } from '../support/cluster.js';
import {
  DC,
  createDelegatedCredential,
  dcctlCertificate,
  getDelegatedCredential,
  namespacedControllerHooks,
  putSecret,
  secretData,
  tlsSecret,
  waitFor,
  waitForCondition,
} from './operator-fixtures.js';

let kc: KubeConfig;
let core: CoreV1Api;
let custom: CustomObjectsApi;
let ns: TestNamespace;
let controller: ControllerHandle;

namespacedControllerHooks('operator', (c) => {
  ({ kc, core, ns, controller } = c);
  custom = kc.makeApiClient(CustomObjectsApi);
});

async function outputSecret(name: string): Promise<V1Secret | undefined> {
  try {
    return await core.readNamespacedSecret({ namespace: ns.name, name });
  } catch (err) {
    if ((err as { code?: number }).code === 404) return undefined;
    throw err;
  }
}

/** The message of the apiserver's Status in a rejected request. */
function statusMessage(err: unknown): string {
  const body = (err as { body?: unknown }).body;
  try {
    return String((JSON.parse(String(body)) as { message?: string }).message);
  } catch {
    return String(body ?? err);
  }
}

/** Asserts every credential in the Secret verifies against its tls.crt; returns the leaf. */
function assertCredentialsVerify(secret: V1Secret | undefined, algorithms: string[]): X509Certificate {
  const leaf = new X509Certificate(secretData(secret, 'tls.crt'));
  for (const algorithm of algorithms) {
    const verified = validateDelegatedCredential(secretData(secret, `${algorithm}.cred`), { certificate: leaf });
    assert.ok(verified.expiresAt.getTime() > Date.now(), `${algorithm} credential is valid now`);
    assert.match(secretData(secret, `${algorithm}.key`).toString(), /BEGIN PRIVATE KEY/);
  }
  return leaf;
}

void describe('the CRDs reject invalid specs with the CEL and schema messages', () => {
  const invalid: [string, Record<string, unknown>, RegExp][] = [
    ['validity over 7 days', { validity: '192h' }, /validity must be at most 168h \(7 days, RFC 9345\)/],
    ['validity in days, which is no Go duration', { validity: '8d' }, /spec\.validity.*should match/],
    ['renewBefore not shorter than validity', { validity: '2h', renewBefore: '2h' }, /renewBefore must be shorter than validity/],
    ['two renewal modes', { renewBefore: '1h', rotationSchedule: '0 * * * *' }, /at most one of renewBefore, renewBeforePercentage and rotationSchedule may be set/],
    ['an unknown algorithm', { algorithms: ['rsa_pkcs1_sha1'] }, /Unsupported value: "rsa_pkcs1_sha1"/],
    ['a cron schedule with a seconds field', { rotationSchedule: '* * * * * *' }, /rotationSchedule must be 5-field cron/],
    ['a cron schedule by the second', { rotationSchedule: '@secondly' }, /rotationSchedule must be 5-field cron/],
    ['a macro cron-parser does not read', { rotationSchedule: '@midnight' }, /rotationSchedule must be 5-field cron .* or one of the macros @yearly/],
    ['a macro in upper case', { rotationSchedule: '@DAILY' }, /rotationSchedule must be 5-field cron/],
    ['a percentage of 100', { renewBeforePercentage: 100 }, /should be less than or equal to 99/],
    ['the certificate Secret as output', { secretName: 'cert' }, /secretName must differ from certificateSecretRef\.name/],
  ];
  for (const [what, extra, message] of invalid) {
    void it(`rejects ${what}`, async () => {
      await assert.rejects(
        createDelegatedCredential(kc, ns.name, `bad-${Math.random().toString(36).slice(2, 8)}`, { certificateSecretRef: { name: 'cert' }, secretName: 'out', ...extra }),
        (err: unknown) => {
          assert.match(statusMessage(err), message);
          return true;
        },
      );
    });
  }

  void it('rejects a signer that is both in-cluster and keyless', async () => {
    await assert.rejects(
      custom.createNamespacedCustomObject({
        group: 'dc-operator.io',
        version: 'v1alpha1',
        namespace: ns.name,
        plural: 'delegationsigners',
        body: {
          apiVersion: 'dc-operator.io/v1alpha1',
          kind: 'DelegationSigner',
          metadata: { name: 'both' },
          spec: {
            inCluster: { keySecretRef: { name: 'k' } },
            keyless: { address: 'keys.example.test:2407', caBundleSecretRef: { name: 'ca' }, clientCertificateSecretRef: { name: 'c' } },
          },
        },
      }),
      (err: unknown) => /exactly one of inCluster and keyless must be set/.test(statusMessage(err)),
    );
  });

  void it('rejects keySecretRef.namespace on a namespaced DelegationSigner, saying what to do, and accepts it on a ClusterDelegationSigner', async () => {
    const signer = (kind: string, name: string): Record<string, unknown> => ({
      apiVersion: 'dc-operator.io/v1alpha1', kind, metadata: { name }, spec: { inCluster: { keySecretRef: { name: 'k', namespace: 'elsewhere' } } },
    });
    await assert.rejects(
      custom.createNamespacedCustomObject({ group: 'dc-operator.io', version: 'v1alpha1', namespace: ns.name, plural: 'delegationsigners', body: signer('DelegationSigner', 'other-ns-key') }),
      (err: unknown) => /inCluster\.keySecretRef\.namespace is only for a ClusterDelegationSigner.*remove the field/.test(statusMessage(err)),
    );
    const name = `other-ns-key-${Math.random().toString(36).slice(2, 8)}`;
    await custom.createClusterCustomObject({ group: 'dc-operator.io', version: 'v1alpha1', plural: 'clusterdelegationsigners', body: signer('ClusterDelegationSigner', name) });
    await custom.deleteClusterCustomObject({ group: 'dc-operator.io', version: 'v1alpha1', plural: 'clusterdelegationsigners', name });
  });

  void it('accepts 5-field cron schedules and macros', async () => {
    for (const rotationSchedule of ['0 */6 * * *', '*/15 * * * 1-5', '@daily', '@weekdays', '0\t3 * * *']) {
      const dc = await createDelegatedCredential(kc, ns.name, `cron-${Math.random().toString(36).slice(2, 8)}`, { certificateSecretRef: { name: 'cert' }, secretName: 'out', rotationSchedule });
      assert.equal(dc.spec.rotationSchedule, rotationSchedule);
    }
  });

  void it('fills in the defaults: one P-256 credential valid for 24h', async () => {
    const dc = await createDelegatedCredential(kc, ns.name, 'defaults', { certificateSecretRef: { name: 'missing' }, secretName: 'defaults-out' });
    assert.deepEqual(dc.spec.algorithms, ['ecdsa_secp256r1_sha256']);
    assert.equal(dc.spec.validity, '24h');
  });
});

void describe('issuing with the in-cluster signer', () => {
  // mldsa65: a post-quantum credential key (1952-byte public key) signed by the P-256 certificate.
  const algorithms = ['ed25519', 'ecdsa_secp256r1_sha256', 'ecdsa_secp384r1_sha384', 'mldsa65'];

  void it('writes verifying credentials for a dcctl certificate and reports Ready with the credentials', async () => {
    const cert = dcctlCertificate();
    await putSecret(core, tlsSecret(ns.name, 'web-tls', cert.crt, cert.key));
    await createDelegatedCredential(kc, ns.name, 'web', { certificateSecretRef: { name: 'web-tls' }, secretName: 'web-dc', algorithms: algorithms as never });
    const dc = await waitForCondition(kc, ns.name, 'web', 'Ready', 'True');
    const secret = await outputSecret('web-dc');
    assert.equal(secret?.type, 'dc-operator.io/delegated-credential');
    assert.equal(secret?.metadata?.ownerReferences?.[0]?.kind, 'DelegatedCredential');
    assert.equal(secret?.metadata?.labels?.['app.kubernetes.io/managed-by'], 'dc-operator');
    assert.ok(!Object.keys(secret?.data ?? {}).includes('tls.key'), 'the certificate key is never copied');
    assertCredentialsVerify(secret, algorithms);
    // The contract with the sidecar: its loader takes the Secret's data as it is mounted.
    const files = Object.fromEntries(Object.entries(secret?.data ?? {}).map(([k, v]) => [k, new Uint8Array(Buffer.from(v, 'base64'))]));
    const set = loadDelegatedCredentialSet([{ label: `${ns.name}/web-dc`, files }]);
    assert.equal(set.entries.length, algorithms.length);
    assert.deepEqual(dc.status?.credentials?.map((c) => c.algorithm), [...algorithms].sort());
    assert.equal(dc.status?.observedGeneration, 1);
    assert.equal(dc.status?.conditions?.find((c) => c.type === 'SignerReady')?.status, 'True');
    assert.ok(dc.status?.renewalTime && dc.status.lastIssuedTime && dc.status.notAfter);
    const events = await core.listNamespacedEvent({ namespace: ns.name, fieldSelector: 'involvedObject.name=web' });
    assert.ok(events.items.some((e) => e.reason === 'Issued' && e.type === 'Normal'), 'an Issued event');
  });

  void it('re-issues within seconds when the certificate is replaced', async () => {
    const before = await outputSecret('web-dc');
    const next = dcctlCertificate();
    const replacedAt = Date.now();
    await putSecret(core, tlsSecret(ns.name, 'web-tls', next.crt, next.key));
    const secret = await waitFor('credentials for the new certificate', 20_000, async () => {
      const s = await outputSecret('web-dc');
      return s && secretData(s, 'tls.crt').toString() === next.crt ? s : undefined;
    });
    const latency = Date.now() - replacedAt;
    assert.ok(latency < 10_000, `re-issued ${latency} ms after the certificate changed`);
    assert.notEqual(secret.data?.['ed25519.cred'], before?.data?.['ed25519.cred']);
    assertCredentialsVerify(secret, algorithms);
  });

  void it('copies only the certificates of a combined PEM (certificate then key in tls.crt), and says to move the key', async () => {
    const cert = dcctlCertificate();
    await putSecret(core, tlsSecret(ns.name, 'combined-tls', cert.crt + cert.key, cert.key));
    await createDelegatedCredential(kc, ns.name, 'combined', { certificateSecretRef: { name: 'combined-tls' }, secretName: 'combined-dc' });
    const dc = await waitForCondition(kc, ns.name, 'combined', 'Ready', 'True', 'CertificateSecretHoldsPrivateKey');
    assert.match(dc.status?.conditions?.find((c) => c.type === 'Ready')?.message ?? '', new RegExp(`tls\\.crt of Secret ${ns.name}/combined-tls holds a PRIVATE KEY block .*move the key to tls\\.key`));
    const secret = await outputSecret('combined-dc');
    const chain = secretData(secret, 'tls.crt').toString();
    assert.doesNotMatch(chain, /PRIVATE KEY/);
    assert.equal(chain, cert.crt, 'the certificate, nothing else');
    assertCredentialsVerify(secret, ['ecdsa_secp256r1_sha256']);
    const events = await core.listNamespacedEvent({ namespace: ns.name, fieldSelector: 'involvedObject.name=combined' });
    assert.ok(events.items.some((e) => e.type === 'Warning' && e.reason === 'CertificateSecretHoldsPrivateKey'));
  });

  void it('restores a deleted output Secret', async () => {
    await core.deleteNamespacedSecret({ namespace: ns.name, name: 'web-dc' });
    const secret = await waitFor('the output Secret restored', 10_000, () => outputSecret('web-dc'));
    assertCredentialsVerify(secret, algorithms);
  });

  void it('repairs an edited output Secret', async () => {
    const secret = await outputSecret('web-dc');
    assert.ok(secret?.data);
    secret.data['ed25519.cred'] = Buffer.from('tampered').toString('base64');
    await core.replaceNamespacedSecret({ namespace: ns.name, name: 'web-dc', body: secret });
    const repaired = await waitFor('the edited Secret repaired', 10_000, async () => {
      const s = await outputSecret('web-dc');
      return s && secretData(s, 'ed25519.cred').toString() !== 'tampered' ? s : undefined;
    });
    assertCredentialsVerify(repaired, algorithms);
  });

  // Its controller reference carries the DelegatedCredential's uid: the Secret is ours whatever
  // its labels say. Before, a changed owner label left it to "someone-else" (OutputSecretConflict,
  // no more renewals) and a removed managed-by label made the re-create fail with 409.
  for (const [what, edit] of [
    ['its owner label changed', (l: Record<string, string>) => void (l['dc-operator.io/delegated-credential'] = 'someone-else')],
    ['its managed-by label removed', (l: Record<string, string>) => void delete l['app.kubernetes.io/managed-by']],
  ] as const) {
    void it(`puts the labels back on an output Secret with ${what}`, async () => {
      const secret = await outputSecret('web-dc');
      assert.ok(secret?.metadata);
      const labels = { ...secret.metadata.labels };
      edit(labels);
      await core.replaceNamespacedSecret({ namespace: ns.name, name: 'web-dc', body: { ...secret, metadata: { ...secret.metadata, labels } } });
      const relabelled = await waitFor('the labels put back', 15_000, async () => {
        const s = await outputSecret('web-dc');
        const l = s?.metadata?.labels ?? {};
        return l['dc-operator.io/delegated-credential'] === 'web' && l['app.kubernetes.io/managed-by'] === 'dc-operator' ? s : undefined;
      });
      assertCredentialsVerify(relabelled, algorithms);
      const dc = await waitForCondition(kc, ns.name, 'web', 'Ready', 'True');
      assert.notEqual(dc.status?.conditions?.find((c) => c.type === 'Ready')?.reason, 'OutputSecretConflict');
    });
  }

  void it('rotates a short-lived credential on time with a new key', async () => {
    const cert = dcctlCertificate({ keyType: 'ed25519' });
    await putSecret(core, tlsSecret(ns.name, 'rotate-tls', cert.crt, cert.key));
    // validity 1m, renewBefore 55s asks for a renewal 5 s after issue; the floor between two
    // issuances (half the lifetime for a credential shorter than 2m) makes it 30 s.
    await createDelegatedCredential(kc, ns.name, 'rotate', { certificateSecretRef: { name: 'rotate-tls' }, secretName: 'rotate-dc', validity: '1m', renewBefore: '55s' });
    const first = await waitForCondition(kc, ns.name, 'rotate', 'Ready', 'True');
    const firstKey = first.status?.credentials?.[0]?.publicKeyFingerprint;
    const renewalAt = Date.parse(first.status?.renewalTime ?? '');
    const issuedAt = Date.parse(first.status?.lastIssuedTime ?? '');
    // Both times are in whole seconds in the status.
    assert.ok(renewalAt - issuedAt <= 31_000 && renewalAt - issuedAt >= 29_000, `renewal ${renewalAt - issuedAt} ms after issue`);
    const second = await waitFor('a rotated credential', 45_000, async () => {
      const dc = await getDelegatedCredential(kc, ns.name, 'rotate');
      const fp = dc.status?.credentials?.[0]?.publicKeyFingerprint;
      return fp !== undefined && fp !== firstKey ? dc : undefined;
    }, 250);
    const rotatedAt = Date.parse(second.status?.lastIssuedTime ?? '');
    // On time: not before the renewal time (second precision in status), and promptly after it
    // (the bound leaves room for a loaded 2-core CI machine).
    assert.ok(rotatedAt >= renewalAt - 1000 && rotatedAt <= renewalAt + 5000, `rotated ${rotatedAt - renewalAt} ms after the renewal time`);
    assertCredentialsVerify(await outputSecret('rotate-dc'), ['ecdsa_secp256r1_sha256']);
  });

  void it('exports expiration and renewal timestamps on /metrics', async () => {
    const text = await (await fetch(`http://127.0.0.1:${controller.port}/metrics`)).text();
    assert.match(text, new RegExp(`dc_operator_credential_expiration_timestamp_seconds\\{namespace="${ns.name}",name="web",algorithm="ed25519"\\} \\d+`));
    assert.match(text, new RegExp(`dc_operator_credential_renewal_timestamp_seconds\\{namespace="${ns.name}",name="web"\\}`));
    assert.match(text, new RegExp(`dc_operator_credential_ready_status\\{namespace="${ns.name}",name="web",condition="True"\\} 1`));
    assert.match(text, /dc_operator_sign_duration_seconds_bucket/);
    assert.equal((await fetch(`http://127.0.0.1:${controller.port}/readyz`)).status, 200);
  });
});

void describe('bad input: Ready=False with a reason to act on, nothing written, others still served', () => {
  void it('a certificate without DelegationUsage', async () => {
    const cert = dcctlCertificate({ noDelegationUsage: true });
    await putSecret(core, tlsSecret(ns.name, 'plain-tls', cert.crt, cert.key));
    await createDelegatedCredential(kc, ns.name, 'plain', { certificateSecretRef: { name: 'plain-tls' }, secretName: 'plain-dc' });
    const dc = await waitForCondition(kc, ns.name, 'plain', 'Ready', 'False', 'CertificateMissingDelegationUsage');
    assert.match(dc.status?.conditions?.find((c) => c.type === 'Ready')?.message ?? '', /1\.3\.6\.1\.4\.1\.44363\.44/);
    assert.equal(await outputSecret('plain-dc'), undefined);
    const events = await core.listNamespacedEvent({ namespace: ns.name, fieldSelector: 'involvedObject.name=plain' });
    assert.ok(events.items.some((e) => e.type === 'Warning' && e.reason === 'CertificateMissingDelegationUsage'));
  });

  void it('an expired certificate', async () => {
    const expired = await issueCertificate(
      { commonName: 'old.example.test', keyUsage: KeyUsage.digitalSignature, delegationUsage: 'non-critical', notBefore: new Date(Date.now() - 30 * 86400_000), notAfter: new Date(Date.now() - 86400_000) },
      'ecdsa-p256',
    );
    await putSecret(core, tlsSecret(ns.name, 'expired-tls', expired.pem, expired.key.privateKeyPem));
    await createDelegatedCredential(kc, ns.name, 'expired', { certificateSecretRef: { name: 'expired-tls' }, secretName: 'expired-dc' });
    const dc = await waitForCondition(kc, ns.name, 'expired', 'Ready', 'False', 'CertificateExpired');
    assert.match(dc.status?.conditions?.find((c) => c.type === 'Ready')?.message ?? '', /expired at .*renew it/);
    assert.equal(await outputSecret('expired-dc'), undefined);
  });

  void it('an output Secret name that is taken by a Secret the operator does not manage', async () => {
    const cert = dcctlCertificate();
    await putSecret(core, tlsSecret(ns.name, 'taken-tls', cert.crt, cert.key));
    await core.createNamespacedSecret({ namespace: ns.name, body: { metadata: { name: 'taken' }, stringData: { precious: 'yes' } } });
    await createDelegatedCredential(kc, ns.name, 'taken', { certificateSecretRef: { name: 'taken-tls' }, secretName: 'taken' });
    await waitForCondition(kc, ns.name, 'taken', 'Ready', 'False', 'OutputSecretConflict');
    assert.equal(secretData(await outputSecret('taken'), 'precious').toString(), 'yes');
  });

  void it('a signer that fails on re-issue leaves the working credentials in place', async () => {
    const cert = dcctlCertificate();
    await putSecret(core, tlsSecret(ns.name, 'keep-tls', cert.crt, cert.key));
    await createDelegatedCredential(kc, ns.name, 'keep', { certificateSecretRef: { name: 'keep-tls' }, secretName: 'keep-dc' });
    await waitForCondition(kc, ns.name, 'keep', 'Ready', 'True');
    const before = await outputSecret('keep-dc');
    // The key leaves the certificate Secret, then a spec change asks for new credentials.
    await putSecret(core, tlsSecret(ns.name, 'keep-tls', cert.crt));
    const dc = await getDelegatedCredential(kc, ns.name, 'keep');
    await custom.replaceNamespacedCustomObject({ ...DC, namespace: ns.name, name: 'keep', body: { ...dc, spec: { ...dc.spec, algorithms: ['ecdsa_secp256r1_sha256', 'ed25519'] } } });
    const failed = await waitForCondition(kc, ns.name, 'keep', 'SignerReady', 'False', 'KeyNotFound');
    const ready = failed.status?.conditions?.find((c) => c.type === 'Ready');
    assert.equal(ready?.status, 'False');
    assert.match(ready?.message ?? '', /has no tls\.key.*left in place/);
    assert.equal(failed.status?.conditions?.find((c) => c.type === 'Issuing')?.reason, 'SecretMissingKeys', 'ed25519 is wanted and missing');
    const after = await outputSecret('keep-dc');
    assert.equal(after?.metadata?.resourceVersion, before?.metadata?.resourceVersion, 'the output Secret was not touched');
    assertCredentialsVerify(after, ['ecdsa_secp256r1_sha256']);
  });

  void it('a missing certificate Secret', async () => {
    await createDelegatedCredential(kc, ns.name, 'nosecret', { certificateSecretRef: { name: 'does-not-exist' }, secretName: 'nosecret-dc' });
    await waitForCondition(kc, ns.name, 'nosecret', 'Ready', 'False', 'SecretNotFound');
    assert.equal(await outputSecret('nosecret-dc'), undefined);
  });

  void it('a key that does not belong to the certificate', async () => {
    const cert = dcctlCertificate();
    const other = dcctlCertificate();
    await putSecret(core, tlsSecret(ns.name, 'mismatch-tls', cert.crt, other.key));
    await createDelegatedCredential(kc, ns.name, 'mismatch', { certificateSecretRef: { name: 'mismatch-tls' }, secretName: 'mismatch-dc' });
    const dc = await waitForCondition(kc, ns.name, 'mismatch', 'Ready', 'False', 'KeyMismatch');
    assert.equal(dc.status?.conditions?.find((c) => c.type === 'SignerReady')?.status, 'False');
    assert.equal(await outputSecret('mismatch-dc'), undefined);
  });

  void it('a keyless signer whose CA bundle Secret is missing', async () => {
    const cert = dcctlCertificate();
    await putSecret(core, tlsSecret(ns.name, 'keyless-tls', cert.crt));
    await custom.createNamespacedCustomObject({
      group: 'dc-operator.io',
      version: 'v1alpha1',
      namespace: ns.name,
      plural: 'delegationsigners',
      body: {
        apiVersion: 'dc-operator.io/v1alpha1',
        kind: 'DelegationSigner',
        metadata: { name: 'edge' },
        spec: { keyless: { address: 'keys.example.test:2407', caBundleSecretRef: { name: 'ca' }, clientCertificateSecretRef: { name: 'client' } } },
      },
    });
    await createDelegatedCredential(kc, ns.name, 'keyless', {
      certificateSecretRef: { name: 'keyless-tls' },
      secretName: 'keyless-dc',
      signerRef: { kind: 'DelegationSigner', name: 'edge' },
    });
    const dc = await waitForCondition(kc, ns.name, 'keyless', 'SignerReady', 'False', 'SecretNotFound');
    assert.match(dc.status?.conditions?.find((c) => c.type === 'SignerReady')?.message ?? '', new RegExp(`the CA bundle Secret ${ns.name}/ca of DelegationSigner ${ns.name}/edge \\(keyless keys\\.example\\.test:2407\\) does not exist`));
    assert.equal(await outputSecret('keyless-dc'), undefined);
  });

  void it('the healthy DelegatedCredential is still Ready', async () => {
    const dc = await getDelegatedCredential(kc, ns.name, 'web');
    assert.equal(dc.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'True');
  });
});
