/**
 * Constants of the Keyless SSL wire protocol, as Cloudflare documents it:
 *
 * - gokeyless `protocol/protocol.md` (header, items, tags 0x01–0x17, opcodes, error codes 0x01–0x08);
 * - the `kssl.h` definitions that document links to (ping 0xF1 / pong 0xF2, padding tag 0x20,
 *   responses padded to 1024 bytes);
 * - Cloudflare's Keyless SSL metrics reference (Ed25519 sign 0x18, RSASSA-PSS SHA512 0x37 — the
 *   protocol.md table lists 0x36 twice —, seal/unseal/RPC/custom, and the names of the error codes
 *   after 0x08, whose numbers follow in the documented order).
 *
 * Written from those documents only; no code of the restrictively licensed implementations.
 */

/** Major and minor protocol version carried in every header. */
export const VERSION_MAJOR = 1;
export const VERSION_MINOR = 0;

/** Fixed header: major u8, minor u8, body length u16, request id u32 (network byte order). */
export const HEADER_LENGTH = 8;
/** Item header: tag u8, length u16. */
export const ITEM_HEADER_LENGTH = 3;
/** The largest body the u16 length can describe. */
export const MAX_WIRE_BODY_LENGTH = 0xffff;
/** kssl.h: messages are padded to this many bytes with a padding item. */
export const PAD_TO = 1024;
/** Default listening port of a key server. */
export const DEFAULT_PORT = 2407;

/** Item tags. */
export const Tag = {
  /** SHA-256 of the RSA modulus (legacy key lookup). */
  certificateDigest: 0x01,
  serverName: 0x02,
  clientIp: 0x03,
  /** Subject Key Identifier of the requested key: 20 bytes. */
  ski: 0x04,
  serverIp: 0x05,
  certificateId: 0x06,
  opcode: 0x11,
  payload: 0x12,
  customFuncName: 0x13,
  supplementalPayload: 0x14,
  jaegerSpan: 0x15,
  complianceRegion: 0x17,
  padding: 0x20,
} as const;
export type Tag = (typeof Tag)[keyof typeof Tag];

/** Opcodes of requests and responses. */
export const Opcode = {
  rsaDecrypt: 0x01,
  rsaSignMd5Sha1: 0x02,
  rsaSignSha1: 0x03,
  rsaSignSha224: 0x04,
  rsaSignSha256: 0x05,
  rsaSignSha384: 0x06,
  rsaSignSha512: 0x07,
  rsaDecryptRaw: 0x08,
  ecdsaSignMd5Sha1: 0x12,
  ecdsaSignSha1: 0x13,
  ecdsaSignSha224: 0x14,
  ecdsaSignSha256: 0x15,
  ecdsaSignSha384: 0x16,
  ecdsaSignSha512: 0x17,
  ed25519Sign: 0x18,
  seal: 0x21,
  unseal: 0x22,
  rpc: 0x23,
  custom: 0x24,
  rsaPssSignSha256: 0x35,
  rsaPssSignSha384: 0x36,
  rsaPssSignSha512: 0x37,
  /**
   * Our extension, not a gokeyless opcode: sign the whole message with a TLS SignatureScheme
   * (payload: scheme u16 | message; sign-message.ts). 0xC0 lies in 0x80–0xEF, which no documented
   * opcode uses: gokeyless numbers operations upwards from 0x01 in families (0x0_ RSA, 0x1_ ECDSA,
   * 0x2_ seal/RPC, 0x3_ PSS) and keeps 0xF_ for control messages, so the middle of the byte is the
   * range least likely to be taken by a future upstream opcode. A server without it answers
   * "bad opcode", which is what the client's fallback listens for (README.md).
   */
  signMessage: 0xc0,
  response: 0xf0,
  ping: 0xf1,
  pong: 0xf2,
  error: 0xff,
} as const;
/** An opcode value; unknown values from the wire stay plain numbers. */
export type Opcode = number;

/** The one-byte payload of an error response. */
export const ErrorCode = {
  cryptoFailed: 0x01,
  keyNotFound: 0x02,
  readError: 0x03,
  versionMismatch: 0x04,
  badOpcode: 0x05,
  unexpectedOpcode: 0x06,
  formatError: 0x07,
  internalError: 0x08,
  certNotFound: 0x09,
  expired: 0x0a,
  remoteConfiguration: 0x0b,
  /**
   * Ours, not in the documents: the client's identity used up its signing rate (the in-cluster
   * key server's per-identity token bucket); retry later. Far from the documented 0x01–0x0B so
   * a code the documents add later does not collide.
   */
  rateLimited: 0x80,
} as const;
export type ErrorCode = number;

const errorDescriptions: ReadonlyMap<number, string> = new Map([
  [ErrorCode.cryptoFailed, 'cryptography failure'],
  [ErrorCode.keyNotFound, 'key not found'],
  [ErrorCode.readError, 'read error'],
  [ErrorCode.versionMismatch, 'version mismatch'],
  [ErrorCode.badOpcode, 'bad opcode'],
  [ErrorCode.unexpectedOpcode, 'unexpected opcode'],
  [ErrorCode.formatError, 'format error'],
  [ErrorCode.internalError, 'internal error'],
  [ErrorCode.certNotFound, 'certificate not found'],
  [ErrorCode.expired, 'sealing key expired'],
  [ErrorCode.remoteConfiguration, 'remote configuration error'],
  [ErrorCode.rateLimited, 'rate limited'],
]);

export function errorCodeName(code: number): string {
  return errorDescriptions.get(code) ?? `error 0x${code.toString(16).padStart(2, '0')}`;
}

const opcodeNames: ReadonlyMap<number, string> = new Map(Object.entries(Opcode).map(([k, v]) => [v, k]));

/** A stable label for metrics and messages: the documented name, or `0x..` for unknown values. */
export function opcodeName(op: number): string {
  return opcodeNames.get(op) ?? `0x${op.toString(16).padStart(2, '0')}`;
}

/** Opcodes that only a server may send; a request carrying one is an "unexpected opcode". */
export function isResponseOpcode(op: number): boolean {
  return op === Opcode.response || op === Opcode.pong || op === Opcode.error;
}

/** Hash functions named by the signing opcodes. */
export type DigestAlgorithm = 'md5-sha1' | 'sha1' | 'sha224' | 'sha256' | 'sha384' | 'sha512';

/** What a signing opcode asks for: which key family, which padding, which pre-hash. */
export type SignOperation =
  | { readonly kind: 'rsa-pkcs1'; readonly hash: DigestAlgorithm }
  | { readonly kind: 'rsa-pss'; readonly hash: 'sha256' | 'sha384' | 'sha512' }
  | { readonly kind: 'ecdsa'; readonly hash: DigestAlgorithm }
  | { readonly kind: 'ed25519' };

const signOperations: ReadonlyMap<number, SignOperation> = new Map<number, SignOperation>([
  [Opcode.rsaSignMd5Sha1, { kind: 'rsa-pkcs1', hash: 'md5-sha1' }],
  [Opcode.rsaSignSha1, { kind: 'rsa-pkcs1', hash: 'sha1' }],
  [Opcode.rsaSignSha224, { kind: 'rsa-pkcs1', hash: 'sha224' }],
  [Opcode.rsaSignSha256, { kind: 'rsa-pkcs1', hash: 'sha256' }],
  [Opcode.rsaSignSha384, { kind: 'rsa-pkcs1', hash: 'sha384' }],
  [Opcode.rsaSignSha512, { kind: 'rsa-pkcs1', hash: 'sha512' }],
  [Opcode.ecdsaSignMd5Sha1, { kind: 'ecdsa', hash: 'md5-sha1' }],
  [Opcode.ecdsaSignSha1, { kind: 'ecdsa', hash: 'sha1' }],
  [Opcode.ecdsaSignSha224, { kind: 'ecdsa', hash: 'sha224' }],
  [Opcode.ecdsaSignSha256, { kind: 'ecdsa', hash: 'sha256' }],
  [Opcode.ecdsaSignSha384, { kind: 'ecdsa', hash: 'sha384' }],
  [Opcode.ecdsaSignSha512, { kind: 'ecdsa', hash: 'sha512' }],
  [Opcode.rsaPssSignSha256, { kind: 'rsa-pss', hash: 'sha256' }],
  [Opcode.rsaPssSignSha384, { kind: 'rsa-pss', hash: 'sha384' }],
  [Opcode.rsaPssSignSha512, { kind: 'rsa-pss', hash: 'sha512' }],
  [Opcode.ed25519Sign, { kind: 'ed25519' }],
]);

/** The signing operation an opcode names, or undefined when it is not a signing opcode. */
export function signOperationOf(op: number): SignOperation | undefined {
  return signOperations.get(op);
}

/**
 * Whether `op` asks for a signature with a key: a documented signing opcode, or our sign-message
 * extension (whose scheme travels in the payload, so signOperationOf does not name it). Every
 * authorization and rate limit keys on this, never on signOperationOf alone.
 */
export function isSigningOpcode(op: number): boolean {
  return op === Opcode.signMessage || signOperations.has(op);
}

/** Digest lengths in bytes; the payload of a hash-based opcode must have exactly this length. */
export const DIGEST_LENGTH: Readonly<Record<DigestAlgorithm, number>> = {
  'md5-sha1': 36,
  sha1: 20,
  sha224: 28,
  sha256: 32,
  sha384: 48,
  sha512: 64,
};
