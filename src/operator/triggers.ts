// "Does this DelegatedCredential need new credentials, and why?" An ordered chain of small pure
// policies; the first that fires gives the reason (cert-manager's policies.go, for DCs).
import type { DelegatedCredential } from './api/v1alpha1.js';
import type { OutputView } from './output-secret.js';
import { issuanceSpecHash } from './output-secret.js';
import type { RenewalPolicy } from './renewal.js';
import { fallbackProblem, type WantedFallback } from './fallback.js';
import { credentialSetRenewalTime } from './renewal.js';

export type TriggerReason =
  | 'SecretMissing'
  | 'OutputHoldsPrivateKey'
  | 'SecretMissingKeys'
  | 'AlgorithmsChanged'
  | 'CertificateChanged'
  | 'SpecChanged'
  | 'InvalidCredential'
  | 'FallbackChanged'
  | 'Expiring';

export interface IssueReason {
  reason: TriggerReason;
  message: string;
}

export interface TriggerInput {
  dc: DelegatedCredential;
  output: OutputView;
  certificate: { fingerprint: string; chainPem: string };
  policy: RenewalPolicy;
  now: Date;
  /** What the fallback parts of the bundle must be; absent: they are not judged. */
  fallback?: WantedFallback;
}

type Present = Extract<OutputView, { exists: true }>;
type Policy = (input: TriggerInput, output: Present) => IssueReason | null;

const outputHoldsPrivateKey: Policy = (_, out) =>
  out.chainHoldsPrivateKey
    ? { reason: 'OutputHoldsPrivateKey', message: "the output Secret's tls.crt holds a private key (a combined PEM copied as it was): rewriting it with the certificates only" }
    : null;

const secretMissingKeys: Policy = (_, out) =>
  out.missingKeys.length === 0
    ? null
    : { reason: 'SecretMissingKeys', message: `the output Secret lacks ${out.missingKeys.join(', ')}` };

const algorithmsChanged: Policy = (_, out) =>
  out.extraAlgorithms.length === 0
    ? null
    : { reason: 'AlgorithmsChanged', message: `the output Secret holds credentials for ${out.extraAlgorithms.join(', ')}, no longer requested` };

const certificateChanged: Policy = (input, out) => {
  if (out.certificateFingerprint !== input.certificate.fingerprint) {
    return {
      reason: 'CertificateChanged',
      message: `the certificate changed (sha256 ${short(out.certificateFingerprint)} → ${short(input.certificate.fingerprint)})`,
    };
  }
  if ((out.chainPem ?? '').trim() !== input.certificate.chainPem.trim()) {
    return { reason: 'CertificateChanged', message: 'the certificate chain in the output Secret differs from the certificate Secret' };
  }
  return null;
};

const specChanged: Policy = (input, out) =>
  out.specHash === issuanceSpecHash(input.dc.spec)
    ? null
    : { reason: 'SpecChanged', message: 'algorithms, validity, signer or certificate reference changed since the last issuance' };

const invalidCredential: Policy = (_, out) =>
  out.problems.length === 0 ? null : { reason: 'InvalidCredential', message: `stored credentials are invalid: ${out.problems.join('; ')}` };

const fallbackChanged: Policy = (input, out) => {
  if (input.fallback === undefined) return null;
  const problem = fallbackProblem(out.fallback, input.fallback, input.now, credentialRenewalTime(input.dc, out, input.policy));
  return problem === null ? null : { reason: 'FallbackChanged', message: problem };
};

/**
 * How far ahead of our clock an issue time may be and still be one we wrote (another replica's
 * clock may run a little ahead). The issue time is an annotation anyone who may edit the Secret
 * can change: a forged or future one must not stop renewal.
 */
export const ISSUED_AT_MAX_SKEW_MS = 5 * 60_000;

const expiring: Policy = (input, out) => {
  const now = input.now.getTime();
  // Whatever the annotation says: an expired credential is replaced.
  const expired = out.credentials.find((c) => c.notAfter.getTime() <= now);
  if (expired) return { reason: 'Expiring', message: `the ${expired.algorithm} credential expired at ${expired.notAfter.toISOString()}` };
  const untrusted = untrustedIssueTime(out, now);
  if (untrusted !== null) return { reason: 'Expiring', message: untrusted };
  const at = credentialRenewalTime(input.dc, out, input.policy);
  if (at === undefined) return { reason: 'Expiring', message: 'the output Secret carries no issue time' };
  return input.now.getTime() >= at.getTime() ? { reason: 'Expiring', message: `renewal time ${at.toISOString()} reached` } : null;
};

/**
 * Evaluated in order. OutputHoldsPrivateKey first: a certificate key that every mounting pod can
 * read is the most urgent reason. InvalidCredential comes before Expiring because an invalid
 * credential has no trustworthy expiry. FallbackChanged (a key server, CA or client certificate to
 * replace) rewrites the whole bundle, credentials included: one write, never a partial bundle.
 */
export const POLICY_CHAIN: readonly Policy[] = [outputHoldsPrivateKey, secretMissingKeys, algorithmsChanged, certificateChanged, specChanged, invalidCredential, fallbackChanged, expiring];

export function needsIssuing(input: TriggerInput, chain: readonly Policy[] = POLICY_CHAIN): IssueReason | null {
  if (!input.output.exists) return { reason: 'SecretMissing', message: `the output Secret ${input.dc.spec.secretName} does not exist` };
  for (const policy of chain) {
    const result = policy(input, input.output);
    if (result) return result;
  }
  return null;
}

/** Why the stored issue time cannot be one we wrote (later than our clock allows, or not before the credentials' expiry), or null. */
function untrustedIssueTime(out: Present, now: number): string | null {
  if (out.issuedAt === undefined) return null;
  const at = out.issuedAt.getTime();
  if (at > now + ISSUED_AT_MAX_SKEW_MS) return `the output Secret's issue time ${out.issuedAt.toISOString()} is in the future: not trusted`;
  const first = out.credentials.reduce<Date | undefined>((min, c) => (min === undefined || c.notAfter < min ? c.notAfter : min), undefined);
  if (first !== undefined && at >= first.getTime()) return `the output Secret's issue time ${out.issuedAt.toISOString()} is not before its credentials' expiry (${first.toISOString()}): not trusted`;
  return null;
}

/** The earliest renewal time of the stored credentials, or undefined when they carry no issue time. */
export function credentialRenewalTime(dc: DelegatedCredential, out: Present, policy: RenewalPolicy): Date | undefined {
  if (out.issuedAt === undefined) return undefined;
  return credentialSetRenewalTime({ uid: dc.metadata.uid ?? '', issuedAt: out.issuedAt, notAfters: out.credentials.map((c) => c.notAfter), policy });
}

function short(fingerprint: string | undefined): string {
  return fingerprint === undefined ? 'none' : fingerprint.slice(0, 12);
}
