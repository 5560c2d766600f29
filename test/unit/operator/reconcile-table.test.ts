/**
 * The reconcile decisions as tables, in the manner of cert-manager's trigger_controller_test.go:
 * each row is the state of the objects (the DelegatedCredential's spec, its output Secret, the
 * certificate, the clock) and the action wanted (issue, with which reason, or wait until which
 * time), then the outcome of a reconcile and the conditions and status write wanted. Pure
 * functions only: the output Secret is built and read back by the operator's own
 * buildOutputSecret / viewOutputSecret, with an inspector that stands in for the crypto.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { V1Secret } from '@kubernetes/client-node';
import type { DelegatedCredential, DelegatedCredentialSpec } from '../../../src/operator/api/v1alpha1.js';
import { issueCertificate } from '../../../src/cli/pki/dev-pki.js';
import { ANNOTATIONS, buildOutputSecret, viewOutputSecret, type CredentialInspector } from '../../../src/operator/output-secret.js';
import { StringPool, cachedOutputSecret } from '../../../src/operator/cache-form.js';
import { renewalPolicyOf } from '../../../src/operator/renewal.js';
import { desiredStatus, statusEqual, type ReconcileOutcome } from '../../../src/operator/status.js';
import { credentialRenewalTime, needsIssuing, type TriggerReason } from '../../../src/operator/triggers.js';
import { certificatesOfPem } from '../../../src/tls/x509/index.js';

const H = 3_600_000;
const issuedAt = new Date('2026-03-01T00:00:00Z');
const spec: DelegatedCredentialSpec = {
  certificateSecretRef: { name: 'tls' },
  algorithms: ['ecdsa_secp256r1_sha256', 'ed25519'],
  validity: '24h',
  secretName: 'web-dc',
  fallback: 'None',
} as DelegatedCredentialSpec;
const dcWith = (s: Partial<DelegatedCredentialSpec> = {}): DelegatedCredential => ({
  apiVersion: 'dc-operator.io/v1alpha1',
  kind: 'DelegatedCredential',
  metadata: { name: 'web', namespace: 'shop', uid: 'uid-web', generation: 1 },
  spec: { ...spec, ...s },
});

/** Stands in for the DC parser: a credential's bytes are its notAfter, or "corrupt". */
const inspect: CredentialInspector = ({ algorithm, credential }) => {
  const text = Buffer.from(credential).toString('utf8');
  if (text === 'corrupt') throw new Error('the signature does not verify');
  return { notAfter: new Date(text), publicKeySpki: Buffer.from(algorithm) };
};
/** Stands in for the key parser: a private key "KEY <algorithm>" has the public key <algorithm>, as the inspector says. */
const cached = cachedOutputSecret(new StringPool(), (pem) => {
  if (!pem.startsWith('KEY ')) throw new Error('not a key');
  return Buffer.from(pem.slice('KEY '.length));
});
const credentialOf = (algorithm: 'ecdsa_secp256r1_sha256' | 'ed25519' | 'ecdsa_secp384r1_sha384', notAfter: Date) => ({
  algorithm, credential: Buffer.from(notAfter.toISOString()), privateKeyPem: `KEY ${algorithm}`, notAfter, publicKeySpki: Buffer.from(algorithm),
});

let chain: { pem: string; der: Uint8Array; fingerprint: string };
let rotated: { pem: string; der: Uint8Array; fingerprint: string };

async function certificate(cn: string): Promise<{ pem: string; der: Uint8Array; fingerprint: string }> {
  const c = await issueCertificate({ commonName: cn }, 'ecdsa-p256');
  return { pem: certificatesOfPem(c.pem).pem, der: c.der, fingerprint: `${cn}-fingerprint` };
}

/** The Secret the operator wrote at `issuedAt` for the baseline spec, then edited by `edit`. */
function outputSecret(edit: (s: V1Secret) => void = () => {}): V1Secret {
  const secret = buildOutputSecret({
    dc: dcWith(),
    fallback: { fallback: 'None' }, // the fallback parts have their own tables (fallback.test.ts)
    chainPem: chain.pem,
    certificateFingerprint: chain.fingerprint,
    credentials: [credentialOf('ecdsa_secp256r1_sha256', new Date(issuedAt.getTime() + 24 * H)), credentialOf('ed25519', new Date(issuedAt.getTime() + 24 * H))],
    issuedAt,
  });
  edit(secret);
  return secret;
}
const b64 = (s: string): string => Buffer.from(s).toString('base64');

interface Row {
  name: string;
  spec?: Partial<DelegatedCredentialSpec>;
  secret?: V1Secret | 'absent';
  certificate?: 'same' | 'rotated';
  hoursAfterIssue: number;
  /** The reason an issue is wanted for, or null: wait, until `requeueHoursAfterIssue` when set. */
  want: TriggerReason | null;
  requeueHoursAfterIssue?: number;
}

function decide(row: Row): { reason: TriggerReason | null; requeueAt: Date | undefined } {
  const dc = dcWith(row.spec);
  const cert = row.certificate === 'rotated' ? rotated : chain;
  const secret = row.secret === 'absent' ? undefined : (row.secret ?? outputSecret());
  const output = viewOutputSecret(secret === undefined ? undefined : cached(secret), dc, cert.der, inspect);
  const policy = renewalPolicyOf(dc.spec);
  const now = new Date(issuedAt.getTime() + row.hoursAfterIssue * H);
  const trigger = needsIssuing({ dc, output, certificate: { fingerprint: cert.fingerprint, chainPem: cert.pem }, policy, now });
  return { reason: trigger?.reason ?? null, requeueAt: output.exists ? credentialRenewalTime(dc, output, policy) : undefined };
}

void describe('reconcile decisions (table)', () => {
  before(async () => {
    [chain, rotated] = await Promise.all([certificate('web'), certificate('web-rotated')]);
  });

  void it('object states → issue (reason) or wait (until when)', () => {
    const rows: Row[] = [
      { name: 'fresh credentials: wait until two thirds of 24h (less jitter)', hoursAfterIssue: 1, want: null, requeueHoursAfterIssue: 16 },
      { name: 'no output Secret yet', secret: 'absent', hoursAfterIssue: 0, want: 'SecretMissing' },
      { name: 'renewal time passed', hoursAfterIssue: 16.01, want: 'Expiring' },
      { name: 'renewBefore set to 1h after issuing: no re-issue, 22h in it waits until 23h', spec: { renewBefore: '1h' }, hoursAfterIssue: 22, want: null, requeueHoursAfterIssue: 23 },
      { name: 'a certificate renewed in its Secret', certificate: 'rotated', hoursAfterIssue: 1, want: 'CertificateChanged' },
      { name: 'validity shortened in the spec', spec: { validity: '12h' }, hoursAfterIssue: 1, want: 'SpecChanged' },
      { name: 'an algorithm added to the spec', spec: { algorithms: ['ecdsa_secp256r1_sha256', 'ed25519', 'ecdsa_secp384r1_sha384'] }, hoursAfterIssue: 1, want: 'SecretMissingKeys' },
      { name: 'an algorithm removed from the spec', spec: { algorithms: ['ed25519'] }, hoursAfterIssue: 1, want: 'AlgorithmsChanged' },
      { name: 'a credential key deleted from the Secret', secret: outputSecret((s) => delete s.data!['ed25519.key']), hoursAfterIssue: 1, want: 'SecretMissingKeys' },
      { name: 'a credential edited in the Secret', secret: outputSecret((s) => (s.data!['ed25519.cred'] = b64('corrupt'))), hoursAfterIssue: 1, want: 'InvalidCredential' },
      { name: 'a private key appended to tls.crt', secret: outputSecret((s) => (s.data!['tls.crt'] = b64(`${chain.pem}-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n`))), hoursAfterIssue: 1, want: 'OutputHoldsPrivateKey' },
      { name: 'the issue-time annotation lost', secret: outputSecret((s) => delete s.metadata!.annotations![ANNOTATIONS.issuedAt]), hoursAfterIssue: 1, want: 'Expiring' },
      { name: 'several reasons: the first in chain order wins', certificate: 'rotated', spec: { validity: '12h' }, hoursAfterIssue: 20, want: 'CertificateChanged' },
    ];
    for (const row of rows) {
      const got = decide(row);
      assert.equal(got.reason, row.want, row.name);
      if (row.requeueHoursAfterIssue !== undefined) {
        const at = got.requeueAt!.getTime() - issuedAt.getTime();
        assert.ok(at <= row.requeueHoursAfterIssue * H && at >= row.requeueHoursAfterIssue * H - 5 * 60_000, `${row.name}: requeue ${at / H}h`);
      }
    }
  });

  void it('renewal policies → wait until, then issue (Expiring)', () => {
    // The jitter moves a renewal up to 5 minutes earlier; a schedule's occurrence, later (jitterAfter).
    const policies: Array<{ name: string; spec: Partial<DelegatedCredentialSpec>; renewAtHours: number; jitterAfter?: boolean }> = [
      { name: 'default', spec: {}, renewAtHours: 16 },
      { name: 'renewBefore 1h', spec: { renewBefore: '1h' }, renewAtHours: 23 },
      { name: 'renewBeforePercentage 50', spec: { renewBeforePercentage: 50 }, renewAtHours: 12 },
      { name: 'rotationSchedule every 6h', spec: { rotationSchedule: '0 */6 * * *' }, renewAtHours: 6, jitterAfter: true },
    ];
    for (const p of policies) {
      // The renewal policy is not part of the issuance spec hash: the same Secret serves every row.
      const secret = outputSecret();
      const renewAt = decide({ name: p.name, spec: p.spec, secret, hoursAfterIssue: 0, want: null }).requeueAt!;
      const hours = (renewAt.getTime() - issuedAt.getTime()) / H;
      const [earliest, latest] = p.jitterAfter === true ? [p.renewAtHours, p.renewAtHours + 5 / 60] : [p.renewAtHours - 5 / 60, p.renewAtHours];
      assert.ok(hours >= earliest && hours <= latest, `${p.name}: renews ${hours}h after issue`);
      const before = (renewAt.getTime() - 1 - issuedAt.getTime()) / H;
      const after = (renewAt.getTime() - issuedAt.getTime()) / H;
      assert.equal(decide({ name: p.name, spec: p.spec, secret, hoursAfterIssue: before, want: null }).reason, null, `${p.name}: 1 ms before`);
      assert.equal(decide({ name: p.name, spec: p.spec, secret, hoursAfterIssue: after, want: null }).reason, 'Expiring', `${p.name}: at the renewal time`);
    }
  });

  void it('reconcile outcomes → conditions, and whether the status is written', () => {
    const now = new Date(issuedAt.getTime() + H);
    const credentials = [{ algorithm: 'ed25519' as const, notAfter: new Date(issuedAt.getTime() + 24 * H), publicKeyFingerprint: 'aa' }];
    const renewalTime = new Date(issuedAt.getTime() + 16 * H);
    const issued: ReconcileOutcome = { trigger: { reason: 'SecretMissing', message: 'the output Secret web-dc does not exist' }, credentials, signer: 'tls.key of Secret tls', renewalTime, issuedAt };
    const upToDate: ReconcileOutcome = { trigger: null, credentials, signer: 'tls.key of Secret tls', renewalTime, lastIssuedAt: issuedAt };
    const signerDown: ReconcileOutcome = { trigger: null, credentials, failure: { reason: 'KeyNotFound', message: 'Secret tls has no tls.key' } };
    const blockedRenewal: ReconcileOutcome = { trigger: { reason: 'Expiring', message: 'renewal time reached' }, credentials, failure: { reason: 'CertificateExpired', message: 'the certificate expired; renew it' } };
    const advised: ReconcileOutcome = { ...upToDate, advisory: { reason: 'CertificateSecretHoldsPrivateKey', message: 'tls.crt holds a key' } };

    const rows: Array<{ name: string; before: ReconcileOutcome | undefined; outcome: ReconcileOutcome; conditions: Record<string, string>; write: boolean }> = [
      { name: 'first issue', before: undefined, outcome: issued, conditions: { SignerReady: 'True/SignerReady', Ready: 'True/Issued', Issuing: 'False/UpToDate' }, write: true },
      { name: 'the reconcile after our own write', before: issued, outcome: upToDate, conditions: { SignerReady: 'True/SignerReady', Ready: 'True/Issued', Issuing: 'False/UpToDate' }, write: false },
      { name: 'the signer key vanished: credentials kept', before: issued, outcome: signerDown, conditions: { SignerReady: 'False/KeyNotFound', Ready: 'False/KeyNotFound', Issuing: 'False/Blocked' }, write: true },
      { name: 'a renewal blocked by an expired certificate', before: issued, outcome: blockedRenewal, conditions: { SignerReady: 'True/SignerReady', Ready: 'False/CertificateExpired', Issuing: 'True/Expiring' }, write: true },
      { name: 'issued, with advice', before: issued, outcome: advised, conditions: { SignerReady: 'True/SignerReady', Ready: 'True/CertificateSecretHoldsPrivateKey', Issuing: 'False/UpToDate' }, write: true },
    ];
    for (const row of rows) {
      const dc = dcWith();
      if (row.before) dc.status = desiredStatus(dcWith(), row.before, issuedAt);
      const status = desiredStatus(dc, row.outcome, now);
      const got = Object.fromEntries((status.conditions ?? []).map((c) => [c.type, `${c.status}/${c.reason}`]));
      assert.deepEqual(got, row.conditions, row.name);
      assert.equal(!statusEqual(dc.status, status), row.write, `${row.name}: status written`);
    }
    const kept = desiredStatus(dcWith(), signerDown, now).conditions?.find((c) => c.type === 'Ready')?.message;
    assert.match(kept ?? '', /The existing credentials were left in place\.$/, 'a failure says the working credentials stay');
  });
});
