/**
 * Error values of the TLS stack. Every failure is one of these classes, and each class names the
 * alert that reports it to the peer (RFC 8446 §6.2). The connection maps an error to its alert in
 * exactly one place (`fatalAlertFor` below); the first error sticks.
 *
 * Rule of thumb, from protocol-notes.md: the codec raises only DecodeError, validators of
 * well-formed content raise IllegalParameter, signature/Finished failures raise DecryptError.
 */
import { AlertDescription, alertName } from './alerts.js';

/** Base class: a TLS failure with the alert we send for it. */
export abstract class TlsError extends Error {
  abstract readonly alert: AlertDescription;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Syntax: bad lengths, trailing bytes, empty vectors, truncated messages. */
export class DecodeError extends TlsError {
  readonly alert = AlertDescription.decode_error;
}
/** Well-formed but wrong: duplicate extension, unoffered group, bad point, wrong extension. */
export class IllegalParameter extends TlsError {
  readonly alert = AlertDescription.illegal_parameter;
}
/** A message or record that is not allowed in the current state. */
export class UnexpectedMessage extends TlsError {
  readonly alert = AlertDescription.unexpected_message;
}
/** A bad Finished, CertificateVerify signature or PSK binder. */
export class DecryptError extends TlsError {
  readonly alert = AlertDescription.decrypt_error;
}
/** AEAD authentication failed on a record. */
export class BadRecordMac extends TlsError {
  readonly alert = AlertDescription.bad_record_mac;
}
/** No acceptable set of parameters (suite, group, signature scheme). */
export class HandshakeFailure extends TlsError {
  readonly alert = AlertDescription.handshake_failure;
}
/** A mandatory extension is absent (e.g. signature_algorithms with a certificate handshake). */
export class MissingExtension extends TlsError {
  readonly alert = AlertDescription.missing_extension;
}
/** An extension that the peer may not send in this message (we did not offer it). */
export class UnsupportedExtension extends TlsError {
  readonly alert = AlertDescription.unsupported_extension;
}
/** The peer does not speak TLS 1.3. */
export class ProtocolVersion extends TlsError {
  readonly alert = AlertDescription.protocol_version;
}
/** A record or handshake message larger than the limits. */
export class RecordOverflow extends TlsError {
  readonly alert = AlertDescription.record_overflow;
}
/** A certificate that is corrupt or whose signatures do not verify. */
export class BadCertificate extends TlsError {
  readonly alert = AlertDescription.bad_certificate;
}
/** A certificate we cannot accept for another reason (wrong name, unusable key). */
export class CertificateUnknown extends TlsError {
  readonly alert = AlertDescription.certificate_unknown;
}
/** A certificate of a type we do not support. */
export class UnsupportedCertificate extends TlsError {
  readonly alert = AlertDescription.unsupported_certificate;
}
/** A certificate outside its validity period. */
export class CertificateExpired extends TlsError {
  readonly alert = AlertDescription.certificate_expired;
}
/** A chain that does not lead to a trusted CA. */
export class UnknownCa extends TlsError {
  readonly alert = AlertDescription.unknown_ca;
}
/** The server requires a client certificate and got none. */
export class CertificateRequired extends TlsError {
  readonly alert = AlertDescription.certificate_required;
}
/** ALPN: no protocol in common while the server insists on one. */
export class NoApplicationProtocol extends TlsError {
  readonly alert = AlertDescription.no_application_protocol;
}
/** SNI: the server has no certificate for the name and refuses to continue. */
export class UnrecognizedName extends TlsError {
  readonly alert = AlertDescription.unrecognized_name;
}
/** A bug or a local failure (signer unavailable, invariant broken). */
export class InternalError extends TlsError {
  readonly alert = AlertDescription.internal_error;
}

/**
 * The peer sent us a fatal alert. We never answer an alert with an alert, so `alert` is the
 * received one and the connection sends nothing.
 */
export class AlertReceived extends TlsError {
  readonly alert: AlertDescription;
  constructor(readonly description: AlertDescription) {
    super(`peer sent fatal alert ${alertName(description)}`);
    this.alert = description;
  }
}

/**
 * The single mapping from an error to the alert we send, or `undefined` when nothing is sent
 * (the peer's own alert). Anything that is not one of our errors is a bug: internal_error.
 */
export function fatalAlertFor(error: unknown): AlertDescription | undefined {
  if (error instanceof AlertReceived) return undefined;
  if (error instanceof TlsError) return error.alert;
  return AlertDescription.internal_error;
}

/** Wraps an unknown thrown value into a TlsError (non-TLS errors become InternalError). */
export function asTlsError(error: unknown): TlsError {
  if (error instanceof TlsError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new InternalError(message, { cause: error });
}
