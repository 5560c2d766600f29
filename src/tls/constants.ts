/**
 * Protocol constants of TLS 1.3 (RFC 8446 §4, §B) and the extensions we use, including
 * delegated_credential (RFC 9345).
 */

export const ContentType = {
  change_cipher_spec: 20,
  alert: 21,
  handshake: 22,
  application_data: 23,
} as const;
export type ContentType = (typeof ContentType)[keyof typeof ContentType];

export const HandshakeType = {
  /** TLS 1.2 only (RFC 5246 §7.4.1.1): a renegotiation request, which we never send or honour. */
  hello_request: 0,
  client_hello: 1,
  server_hello: 2,
  new_session_ticket: 4,
  end_of_early_data: 5,
  encrypted_extensions: 8,
  certificate: 11,
  /** TLS 1.2 only (RFC 5246 §7.4.3, RFC 8422 §5.4). */
  server_key_exchange: 12,
  certificate_request: 13,
  /** TLS 1.2 only (RFC 5246 §7.4.5). */
  server_hello_done: 14,
  certificate_verify: 15,
  /** TLS 1.2 only (RFC 5246 §7.4.7, RFC 8422 §5.7). */
  client_key_exchange: 16,
  finished: 20,
  key_update: 24,
  message_hash: 254,
} as const;
export type HandshakeType = (typeof HandshakeType)[keyof typeof HandshakeType];

export const ExtensionType = {
  server_name: 0,
  max_fragment_length: 1,
  status_request: 5,
  supported_groups: 10,
  /** TLS 1.2 only (RFC 8422 §5.1.2). */
  ec_point_formats: 11,
  signature_algorithms: 13,
  use_srtp: 14,
  heartbeat: 15,
  application_layer_protocol_negotiation: 16,
  signed_certificate_timestamp: 18,
  client_certificate_type: 19,
  server_certificate_type: 20,
  padding: 21,
  /** TLS 1.2 only (RFC 7627): required by our TLS 1.2 server. */
  extended_master_secret: 23,
  /** RFC 9345 */
  delegated_credential: 34,
  /** TLS 1.2 only (RFC 5077). */
  session_ticket: 35,
  pre_shared_key: 41,
  early_data: 42,
  supported_versions: 43,
  cookie: 44,
  psk_key_exchange_modes: 45,
  certificate_authorities: 47,
  oid_filters: 48,
  post_handshake_auth: 49,
  signature_algorithms_cert: 50,
  key_share: 51,
  /** TLS 1.2 only (RFC 5746). */
  renegotiation_info: 0xff01,
} as const;
export type ExtensionType = (typeof ExtensionType)[keyof typeof ExtensionType];

export const SignatureScheme = {
  rsa_pkcs1_sha256: 0x0401,
  rsa_pkcs1_sha384: 0x0501,
  rsa_pkcs1_sha512: 0x0601,
  ecdsa_secp256r1_sha256: 0x0403,
  ecdsa_secp384r1_sha384: 0x0503,
  ecdsa_secp521r1_sha512: 0x0603,
  rsa_pss_rsae_sha256: 0x0804,
  rsa_pss_rsae_sha384: 0x0805,
  rsa_pss_rsae_sha512: 0x0806,
  ed25519: 0x0807,
  ed448: 0x0808,
  rsa_pss_pss_sha256: 0x0809,
  rsa_pss_pss_sha384: 0x080a,
  rsa_pss_pss_sha512: 0x080b,
  // ML-DSA (FIPS 204, pure, empty context; draft-ietf-tls-mldsa).
  mldsa44: 0x0904,
  mldsa65: 0x0905,
  mldsa87: 0x0906,
  rsa_pkcs1_sha1: 0x0201,
  ecdsa_sha1: 0x0203,
} as const;
/** A signature scheme code point. Unknown values from the wire are kept as plain numbers. */
export type SignatureScheme = number;

export const NamedGroup = {
  secp256r1: 0x0017,
  secp384r1: 0x0018,
  secp521r1: 0x0019,
  x25519: 0x001d,
  x448: 0x001e,
  // Hybrid post-quantum groups (draft-ietf-tls-ecdhe-mlkem).
  SecP256r1MLKEM768: 0x11eb,
  X25519MLKEM768: 0x11ec,
} as const;
/** A named group code point. Unknown values from the wire are kept as plain numbers. */
export type NamedGroup = number;

export const CipherSuite = {
  TLS_AES_128_GCM_SHA256: 0x1301,
  TLS_AES_256_GCM_SHA384: 0x1302,
  TLS_CHACHA20_POLY1305_SHA256: 0x1303,
  // TLS 1.2 (RFC 5289, RFC 7905): ECDHE with AEADs only.
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: 0xc02b,
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: 0xc02c,
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: 0xc02f,
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: 0xc030,
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: 0xcca8,
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: 0xcca9,
  /** RFC 5746 §3.3: signals secure renegotiation support in place of the extension. */
  TLS_EMPTY_RENEGOTIATION_INFO_SCSV: 0x00ff,
  /** RFC 7507: the client retried with a lower version than it supports. */
  TLS_FALLBACK_SCSV: 0x5600,
} as const;
/** A cipher suite code point. Unknown values from the wire are kept as plain numbers. */
export type CipherSuite = number;

export const ProtocolVersion = {
  TLS1_0: 0x0301,
  TLS1_1: 0x0302,
  TLS1_2: 0x0303,
  TLS1_3: 0x0304,
} as const;

export const PskKeyExchangeMode = {
  psk_ke: 0,
  psk_dhe_ke: 1,
} as const;

export const KeyUpdateRequest = {
  update_not_requested: 0,
  update_requested: 1,
} as const;
export type KeyUpdateRequest = (typeof KeyUpdateRequest)[keyof typeof KeyUpdateRequest];

/** The ServerHello.random value that marks a HelloRetryRequest (RFC 8446 §4.1.3). */
export const HELLO_RETRY_REQUEST_RANDOM: Uint8Array = Uint8Array.from(
  Buffer.from('cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c', 'hex'),
);

/** Record layer limits (RFC 8446 §5). */
export const MAX_PLAINTEXT = 1 << 14;
export const MAX_CIPHERTEXT = (1 << 14) + 256;
export const MAX_INNER_PLAINTEXT = (1 << 14) + 1;
export const RECORD_HEADER_LENGTH = 5;

const names = (table: Record<string, number>): Map<number, string> =>
  new Map(Object.entries(table).map(([k, v]) => [v, k]));
const suiteNames = names(CipherSuite);
const groupNames = names(NamedGroup);
const schemeNames = names(SignatureScheme);

export function cipherSuiteName(v: number): string {
  return suiteNames.get(v) ?? `0x${v.toString(16).padStart(4, '0')}`;
}
export function namedGroupName(v: number): string {
  return groupNames.get(v) ?? `0x${v.toString(16).padStart(4, '0')}`;
}
export function signatureSchemeName(v: number): string {
  return schemeNames.get(v) ?? `0x${v.toString(16).padStart(4, '0')}`;
}
