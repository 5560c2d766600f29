// The status a DelegatedCredential should have after a reconcile, computed purely from what the
// reconcile found; the reconciler writes it only when it differs from the current one.
import type { DelegatedCredential, DelegatedCredentialStatus } from './api/v1alpha1.js';
import type { Fallback } from './api/serving-bundle.js';
import { isoSeconds, setCondition, type DesiredCondition } from './conditions.js';
import type { StoredCredential } from './output-secret.js';
import type { IssueReason } from './triggers.js';

/** Reasons a person can act on; each comes with a message that says what to fix. */
export type FailureReason =
  | 'SecretNotFound'
  | 'CertificateInvalid'
  | 'CertificateMissingDelegationUsage'
  | 'CertificateExpired'
  | 'CertificateNotYetValid'
  | 'KeyMismatch'
  | 'KeyInvalid'
  | 'KeyNotFound'
  | 'SignerNotFound'
  | 'SignerNotAllowed'
  | 'SignerUnavailable'
  | 'KeylessNotImplemented'
  | 'InvalidSpec'
  | 'OutputSecretConflict'
  | 'IssuanceFailed';

/** Failures that say the signer cannot sign: they also set SignerReady=False. */
export const SIGNER_FAILURES: ReadonlySet<FailureReason> = new Set<FailureReason>([
  'KeyMismatch',
  'KeyInvalid',
  'KeyNotFound',
  'SignerNotFound',
  'SignerNotAllowed',
  'SignerUnavailable',
  'KeylessNotImplemented',
]);

export interface Failure {
  reason: FailureReason;
  message: string;
  /** Set when the failure is the signer's (e.g. its key Secret is missing), whatever the reason. */
  signer?: boolean;
}

/**
 * Something a person should fix although issuing succeeded. It becomes the reason of Ready=True
 * (shown by `kubectl get dc -o wide`), with the message appended, and a Warning event.
 */
export interface Advisory {
  reason: 'CertificateSecretHoldsPrivateKey';
  message: string;
}

export interface ReconcileOutcome {
  /** Why credentials were (or should have been) issued; null when they were already up to date. */
  trigger: IssueReason | null;
  /** What blocked issuing or validating; undefined on success. */
  failure?: Failure;
  /** On success: what to fix anyway. */
  advisory?: Advisory;
  /** Credentials in the output Secret after this reconcile (freshly issued or already there). */
  credentials: StoredCredential[];
  /** A description of the signer when it was resolved, e.g. "tls.key of Secret web-tls". */
  signer?: string;
  renewalTime?: Date;
  /** Set when this reconcile issued new credentials. */
  issuedAt?: Date;
  /** When the output Secret was last issued, from its annotation. */
  lastIssuedAt?: Date;
  /** The fallback the bundle is laid out for and whether it serves (undefined: the signer is not resolved). */
  fallback?: FallbackOutcome;
}

export interface FallbackOutcome {
  value: Fallback;
  condition: DesiredCondition;
  /** The key server the sidecar pulls from (fallback Keyless). */
  keyServer?: string;
}

export function desiredStatus(dc: DelegatedCredential, outcome: ReconcileOutcome, now: Date): DelegatedCredentialStatus {
  const current = dc.status ?? {};
  const generation = dc.metadata.generation;
  let conditions = current.conditions;
  for (const c of desiredConditions(outcome)) conditions = setCondition(conditions, c, generation, now);
  const status: DelegatedCredentialStatus = { ...current, conditions };
  if (generation !== undefined) status.observedGeneration = generation;
  const credentials = [...outcome.credentials].sort((a, b) => a.algorithm.localeCompare(b.algorithm));
  if (credentials.length > 0) {
    status.credentials = credentials.map((c) => ({
      algorithm: c.algorithm,
      notAfter: isoSeconds(c.notAfter),
      publicKeyFingerprint: c.publicKeyFingerprint,
    }));
    status.notAfter = isoSeconds(new Date(Math.min(...credentials.map((c) => c.notAfter.getTime()))));
  }
  if (outcome.renewalTime !== undefined) status.renewalTime = isoSeconds(outcome.renewalTime);
  const lastIssued = outcome.issuedAt ?? outcome.lastIssuedAt;
  if (lastIssued !== undefined) status.lastIssuedTime = isoSeconds(lastIssued);
  if (outcome.fallback !== undefined) {
    status.fallback = outcome.fallback.value;
    if (outcome.fallback.keyServer !== undefined) status.keyServer = outcome.fallback.keyServer;
    else delete status.keyServer;
  }
  return status;
}

function desiredConditions(o: ReconcileOutcome): DesiredCondition[] {
  const out: DesiredCondition[] = [];
  const fallback = o.fallback?.condition;
  // A fallback that does not serve leaves the credentials Ready (DC clients are served) but says so
  // in Ready's message; a key server that does not answer is named in SignerReady's too.
  const fallbackNote = fallback !== undefined && fallback.status !== 'True' ? `; fallback ${o.fallback?.value ?? ''} not ready (${fallback.reason}): ${fallback.message}` : '';
  if (o.failure && (o.failure.signer === true || SIGNER_FAILURES.has(o.failure.reason))) {
    out.push({ type: 'SignerReady', status: 'False', reason: o.failure.reason, message: o.failure.message });
  } else if (o.signer !== undefined) {
    const keyServerNote = fallback?.reason === 'KeyServerUnreachable' ? `; but sidecars cannot pull from the key server: ${fallback.message}` : '';
    out.push({ type: 'SignerReady', status: 'True', reason: 'SignerReady', message: `signing with ${o.signer}${keyServerNote}` });
  }
  if (fallback !== undefined) out.push(fallback);
  if (o.failure) {
    const kept = o.credentials.length > 0 ? ' The existing credentials were left in place.' : '';
    out.push({ type: 'Ready', status: 'False', reason: o.failure.reason, message: o.failure.message + kept });
    out.push(
      o.trigger
        ? { type: 'Issuing', status: 'True', reason: o.trigger.reason, message: `${o.trigger.message}; waiting: ${o.failure.message}` }
        : { type: 'Issuing', status: 'False', reason: 'Blocked', message: o.failure.message },
    );
    return out;
  }
  const until = o.credentials.length > 0 ? Math.min(...o.credentials.map((c) => c.notAfter.getTime())) : undefined;
  const validity = until === undefined ? '' : ` valid until ${isoSeconds(new Date(until))}`;
  const renewal = o.renewalTime === undefined ? '' : `, renewal at ${isoSeconds(o.renewalTime)}`;
  const names = o.credentials.map((c) => c.algorithm).sort().join(', ');
  // The same conditions whether this reconcile issued or found everything current, so the
  // reconcile that follows our own Secret write computes an identical status and writes nothing.
  const advice = o.advisory === undefined ? '' : `; but ${o.advisory.message}`;
  out.push({ type: 'Ready', status: 'True', reason: o.advisory?.reason ?? 'Issued', message: `credentials for ${names}${validity}${renewal}${advice}${fallbackNote}` });
  out.push({ type: 'Issuing', status: 'False', reason: 'UpToDate', message: 'the credentials are current' });
  return out;
}

/**
 * Deep equality of two statuses as JSON, independent of key order, a key holding undefined being
 * no key (what the apiserver would store): the "do not write" check. Compared in place, not by
 * building a canonical string of each side (2–3 % of the operator's CPU in a burst).
 */
export function statusEqual(a: DelegatedCredentialStatus | undefined, b: DelegatedCredentialStatus | undefined): boolean {
  return jsonEqual(a ?? {}, b ?? {});
}

function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i], b[i])) return false;
    return true;
  }
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  let keys = 0;
  for (const k of Object.keys(x)) {
    if (x[k] === undefined) continue;
    keys++;
    if (!Object.hasOwn(y, k) || !jsonEqual(x[k], y[k])) return false;
  }
  for (const k of Object.keys(y)) if (y[k] !== undefined) keys--;
  return keys === 0;
}
