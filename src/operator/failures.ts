// A failure a person can act on: a condition reason plus a message that says what to fix.
import { statusCodeOf } from './informer.js';
import type { FailureReason } from './status.js';

export class ReconcileFailure extends Error {
  /** The signer's failure (sets SignerReady=False). */
  readonly signer: boolean;
  constructor(
    readonly reason: FailureReason,
    message: string,
    options?: { cause?: unknown; signer?: boolean },
  ) {
    super(message, options);
    this.signer = options?.signer === true;
    this.name = 'ReconcileFailure';
  }
}

export function failureOf(err: unknown): { reason: FailureReason; message: string; signer?: boolean } {
  if (err instanceof ReconcileFailure) return { reason: err.reason, message: err.message, signer: err.signer };
  return { reason: 'IssuanceFailed', message: err instanceof Error ? err.message : String(err) };
}

/**
 * How many times in a row a write may fail transiently (isTransientApiError) before the failure
 * is shown (Ready=False, a Warning event); until then the key is only requeued with backoff (1 s,
 * 2 s, 4 s), as cert-manager and controller-runtime do with conflicts.
 */
export const QUIET_TRANSIENT_RETRIES = 3;

/**
 * A write the apiserver may well accept on the next try: a conflict (another writer changed the
 * object: kubectl annotate, Argo CD labels), throttling, a 5xx, a timeout or a dropped connection.
 * A ReconcileFailure (a verdict on the spec or the cluster's state) never is.
 */
export function isTransientApiError(err: unknown): boolean {
  if (err instanceof ReconcileFailure) return false;
  const code = statusCodeOf(err);
  if (code !== undefined) return code === 409 || code === 429 || code >= 500;
  if (!(err instanceof Error)) return false;
  // The apiserver client's network failures carry the socket error (ECONNRESET...) as their cause.
  const cause = err.cause as { code?: unknown } | undefined;
  return typeof cause?.code === 'string' || / no complete response within /.test(err.message);
}
