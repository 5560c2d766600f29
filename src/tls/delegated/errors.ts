/**
 * Errors of delegated-credential handling.
 *
 * A receiver that rejects a peer's credential raises `InvalidDelegatedCredential`, an
 * IllegalParameter (alert illegal_parameter, as NSS and BoGo send), whose `rule` names the
 * RFC 9345 check that failed so tests, logs and metrics can tell the failures apart.
 *
 * Issuing and loading credentials are local operations (no alert involved): they raise
 * `DelegationError` with a `code` an operator can turn into a condition reason.
 */
import { IllegalParameter } from '../errors.js';

export type ReceiverRule =
  | 'expired'
  | 'validity-too-long'
  | 'dc-scheme-not-offered'
  | 'signature-scheme-not-offered'
  | 'signature-scheme-not-allowed'
  | 'signature-scheme-mismatches-certificate-key'
  | 'dc-scheme-not-allowed'
  | 'spki-mismatches-dc-scheme'
  | 'rsa-encryption-spki'
  | 'malformed-spki'
  | 'missing-delegation-usage'
  | 'critical-delegation-usage'
  | 'malformed-delegation-usage'
  | 'missing-digital-signature'
  | 'bad-signature';

export class InvalidDelegatedCredential extends IllegalParameter {
  constructor(
    readonly rule: ReceiverRule,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`delegated credential rejected (${rule}): ${message}`, options);
  }
}

export type DelegationErrorCode =
  | 'certificate-not-delegation-capable'
  | 'validity-out-of-range'
  | 'past-certificate-expiry'
  | 'certificate-not-yet-valid'
  | 'unsupported-dc-algorithm'
  | 'unsupported-signature-scheme'
  | 'signer-key-mismatch'
  | 'signer-failed'
  | 'invalid-file'
  | 'missing-file'
  | 'key-mismatch';

export class DelegationError extends Error {
  constructor(
    readonly code: DelegationErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'DelegationError';
  }
}
