/**
 * Error values of the TLS stack. Every failure is one of these classes, and each class names the
 * alert that reports it to the peer (RFC 8446 §6.2). The connection maps an error to its alert in
 * exactly one place (`fatalAlertFor` below); the first error sticks.
 *
 * Rule of thumb: the codec raises only DecodeError; a check of well-formed content that the peer
 * fails raises PeerMisbehaved with a named fault (PEER_FAULTS gives its alert).
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
 * What the peer did wrong, or which of its capabilities we cannot work with, by name, and the
 * alert each one gets: the one table from a peer's fault to the alert we send. Names say what
 * the peer did (as rustls' `PeerMisbehaved` and `PeerIncompatible` do), so tests and logs can
 * tell two illegal_parameter checks apart; the alert follows from the name. Syntax errors of
 * the codec stay DecodeError, certificate and delegated-credential verdicts keep their own
 * classes (InvalidDelegatedCredential names its RFC 9345 rule), and local failures are
 * InternalError.
 */
export const PEER_FAULTS = {
  // unexpected_message
  AllZeroInnerPlaintext: AlertDescription.unexpected_message,
  ApplicationDataBeforeHandshakeComplete: AlertDescription.unexpected_message,
  EmptyAlertFragment: AlertDescription.unexpected_message,
  EmptyApplicationDataDuringHandshake: AlertDescription.unexpected_message,
  EmptyHandshakeFragment: AlertDescription.unexpected_message,
  InterleavedHandshakeMessage: AlertDescription.unexpected_message,
  KeyChangeNotOnRecordBoundary: AlertDescription.unexpected_message,
  ProtectedChangeCipherSpec: AlertDescription.unexpected_message,
  SecondHelloRetryRequest: AlertDescription.unexpected_message,
  TooManyHandshakeFragments: AlertDescription.unexpected_message,
  TooManyKeyUpdates: AlertDescription.unexpected_message,
  UnexpectedChangeCipherSpec: AlertDescription.unexpected_message,
  UnexpectedHandshakeMessage: AlertDescription.unexpected_message,
  UnknownRecordType: AlertDescription.unexpected_message,
  UnprotectedRecordAfterKeyChange: AlertDescription.unexpected_message,
  /** RFC 9345 §4.1.1 and §4.1.2: a delegated credential we did not offer to accept. */
  UnsolicitedDelegatedCredential: AlertDescription.unexpected_message,
  // illegal_parameter
  BinderCountMismatch: AlertDescription.illegal_parameter,
  CertificateRequestContextMismatch: AlertDescription.illegal_parameter,
  DelegatedCredentialNotAccepted: AlertDescription.illegal_parameter,
  DuplicateExtension: AlertDescription.illegal_parameter,
  DuplicateKeyShareGroup: AlertDescription.illegal_parameter,
  DuplicateServerName: AlertDescription.illegal_parameter,
  ExtensionNotAllowedHere: AlertDescription.illegal_parameter,
  IllegalHelloRetryRequest: AlertDescription.illegal_parameter,
  IllegalKeyUpdateRequest: AlertDescription.illegal_parameter,
  IllegalRetryClientHello: AlertDescription.illegal_parameter,
  InvalidKeyShare: AlertDescription.illegal_parameter,
  KeyShareGroupNotInSupportedGroups: AlertDescription.illegal_parameter,
  PreSharedKeyNotLast: AlertDescription.illegal_parameter,
  PskHashMismatch: AlertDescription.illegal_parameter,
  SelectedUnofferedAlpnProtocol: AlertDescription.illegal_parameter,
  SelectedUnofferedCipherSuite: AlertDescription.illegal_parameter,
  SelectedUnofferedKeyShareGroup: AlertDescription.illegal_parameter,
  SelectedUnofferedPsk: AlertDescription.illegal_parameter,
  SelectedUnofferedVersion: AlertDescription.illegal_parameter,
  ServerNameNotAscii: AlertDescription.illegal_parameter,
  SessionIdEchoMismatch: AlertDescription.illegal_parameter,
  SuiteChangedAfterRetry: AlertDescription.illegal_parameter,
  TicketLifetimeTooLong: AlertDescription.illegal_parameter,
  UnofferedSignatureScheme: AlertDescription.illegal_parameter,
  UnsupportedCompression: AlertDescription.illegal_parameter,
  ZeroSharedSecret: AlertDescription.illegal_parameter,
  /** RFC 8446 §4.1.3: a TLS 1.3 server answered our TLS 1.3 offer with TLS 1.2 (a downgrade). */
  DowngradeDetected: AlertDescription.illegal_parameter,
  /** TLS 1.2: the server chose a named group or curve type we did not offer. */
  SelectedUnofferedGroup: AlertDescription.illegal_parameter,
  // decode_error
  /** A ClientHello header declaring more than a well-formed ClientHello can hold (MAX_CLIENT_HELLO_BODY). */
  OversizedClientHello: AlertDescription.decode_error,
  // decrypt_error
  BadCertificateVerifySignature: AlertDescription.decrypt_error,
  IncorrectBinder: AlertDescription.decrypt_error,
  IncorrectFinished: AlertDescription.decrypt_error,
  BadServerKeyExchangeSignature: AlertDescription.decrypt_error,
  // missing_extension
  MissingKeyShare: AlertDescription.missing_extension,
  MissingPskKeyExchangeModes: AlertDescription.missing_extension,
  MissingSignatureAlgorithms: AlertDescription.missing_extension,
  MissingSupportedGroups: AlertDescription.missing_extension,
  // unsupported_extension
  UnsolicitedExtension: AlertDescription.unsupported_extension,
  // handshake_failure
  NoCipherSuitesInCommon: AlertDescription.handshake_failure,
  NoKeyExchangeGroupsInCommon: AlertDescription.handshake_failure,
  NoSignatureSchemesInCommon: AlertDescription.handshake_failure,
  /** RFC 7627 §5.2 lets a server refuse a client without extended_master_secret; we do. */
  MissingExtendedMasterSecret: AlertDescription.handshake_failure,
  /** RFC 5746 §3.6: an initial handshake whose renegotiation_info is not empty. */
  RenegotiationInfoNotEmpty: AlertDescription.handshake_failure,
  /** RFC 5746 §3.4: the server did not indicate secure renegotiation. */
  MissingRenegotiationInfo: AlertDescription.handshake_failure,
  /** RFC 8422 §5.1.2: the client cannot take uncompressed points. */
  NoPointFormatsInCommon: AlertDescription.handshake_failure,
  /**
   * We never renegotiate: each TLS 1.2 request gets a warning no_renegotiation (always a warning,
   * RFC 5246 §7.2.2); a peer that asks again after MAX_REFUSED_RENEGOTIATIONS refusals is ended.
   */
  TooManyRenegotiationRequests: AlertDescription.handshake_failure,
  // inappropriate_fallback
  /** RFC 7507: TLS_FALLBACK_SCSV in a hello below the highest version we speak. */
  InappropriateFallback: AlertDescription.inappropriate_fallback,
  // protocol_version
  LegacyVersionTooOld: AlertDescription.protocol_version,
  Tls13NotOffered: AlertDescription.protocol_version,
  /** The client offers neither TLS 1.3 nor TLS 1.2 (TLS 1.0/1.1, SSL 3.0), or not one we enabled. */
  NoSupportedVersionInCommon: AlertDescription.protocol_version,
  Tls13NotSelected: AlertDescription.protocol_version,
} as const satisfies Record<string, AlertDescription>;

export type PeerFault = keyof typeof PEER_FAULTS;

/** The peer misbehaved (or cannot meet us): `fault` names what it did; the alert is PEER_FAULTS[fault]. */
export class PeerMisbehaved extends TlsError {
  readonly alert: AlertDescription;
  constructor(
    readonly fault: PeerFault,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`${fault}: ${detail}`, options);
    this.alert = PEER_FAULTS[fault];
  }
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
