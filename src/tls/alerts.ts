/**
 * TLS alert protocol values (RFC 8446 §6).
 *
 * In TLS 1.3 every alert except close_notify and user_canceled is fatal, so the level byte
 * carries no information for the receiver; we still send the conventional level.
 */

export const AlertLevel = {
  warning: 1,
  fatal: 2,
} as const;
export type AlertLevel = (typeof AlertLevel)[keyof typeof AlertLevel];

export const AlertDescription = {
  close_notify: 0,
  unexpected_message: 10,
  bad_record_mac: 20,
  record_overflow: 22,
  handshake_failure: 40,
  bad_certificate: 42,
  unsupported_certificate: 43,
  certificate_revoked: 44,
  certificate_expired: 45,
  certificate_unknown: 46,
  illegal_parameter: 47,
  unknown_ca: 48,
  access_denied: 49,
  decode_error: 50,
  decrypt_error: 51,
  protocol_version: 70,
  insufficient_security: 71,
  internal_error: 80,
  inappropriate_fallback: 86,
  user_canceled: 90,
  /** TLS 1.2 (RFC 5246 §7.2.2): we refuse renegotiation. */
  no_renegotiation: 100,
  missing_extension: 109,
  unsupported_extension: 110,
  unrecognized_name: 112,
  bad_certificate_status_response: 113,
  unknown_psk_identity: 115,
  certificate_required: 116,
  no_application_protocol: 120,
} as const;
export type AlertDescription = (typeof AlertDescription)[keyof typeof AlertDescription];

const alertNames = new Map<number, string>(
  Object.entries(AlertDescription).map(([name, value]) => [value, name]),
);

/** The RFC name of an alert description, or `unknown(N)` for a value we do not know. */
export function alertName(description: number): string {
  return alertNames.get(description) ?? `unknown(${description})`;
}

/** True for the alerts that do not end the connection as an error (RFC 8446 §6.1). */
export function isClosureAlert(description: number): boolean {
  return description === AlertDescription.close_notify || description === AlertDescription.user_canceled;
}
