// A failure a person can act on: a condition reason plus a message that says what to fix.
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
