/**
 * Signing a digest that the client already computed: the documented keyless opcodes, for clients
 * that are not ours (ours send the whole message, sign-message.ts, and the key server signs it
 * with node:crypto in one call). node:crypto signs messages, not digests, so each family uses an
 * audited primitive that accepts a digest:
 *
 * - ECDSA: @noble/curves with prehash disabled (the digest is the input) and hedged nonces
 *   (`extraEntropy: true`: RFC 6979 nonces mixed with fresh random bytes), so neither a repeated
 *   digest nor a cloned or snapshotted process reuses a nonce; DER output, as TLS carries it.
 * - RSA PKCS#1 v1.5: `privateEncrypt` with PKCS#1 type-1 padding over DigestInfo(hash), RFC 8017
 *   §9.2 (MD5-SHA1 has no DigestInfo, as in TLS 1.0/1.1). This is what an RSA PKCS#1 signature is.
 * - RSA-PSS: OpenSSL offers prehashed PSS only through EVP_PKEY_sign, which node does not expose
 *   (`crypto.sign(null, digest, …)` hashes again; checked). So the EMSA-PSS encoding (RFC 8017
 *   §9.1.1: hashes, MGF1, XOR with a fresh random salt; no secret goes into it) is done here, and
 *   the private-key operation is OpenSSL's (`privateEncrypt`, RSA_NO_PADDING, with its blinding).
 *   node:crypto `verify` checks the result in the tests.
 * - Ed25519 has no digest opcode: 0x18 carries the whole message, signed by node:crypto.
 */
import { constants, createHash, privateEncrypt, randomBytes, sign as nodeSign, type KeyObject } from 'node:crypto';
import { p256, p384, p521 } from '@noble/curves/nist.js';
import { KeylessError, KeylessFormatError } from './errors.js';
import { DIGEST_LENGTH, ErrorCode, type DigestAlgorithm } from './protocol.js';

// --- RSA PKCS#1 v1.5 ------------------------------------------------------------------------

const DIGEST_INFO_PREFIX: Readonly<Record<DigestAlgorithm, Buffer>> = {
  'md5-sha1': Buffer.alloc(0),
  sha1: Buffer.from('3021300906052b0e03021a05000414', 'hex'),
  sha224: Buffer.from('302d300d06096086480165030402040500041c', 'hex'),
  sha256: Buffer.from('3031300d060960864801650304020105000420', 'hex'),
  sha384: Buffer.from('3041300d060960864801650304020205000430', 'hex'),
  sha512: Buffer.from('3051300d060960864801650304020305000440', 'hex'),
};

export function signRsaPkcs1Digest(key: KeyObject, hash: DigestAlgorithm, digest: Uint8Array): Uint8Array {
  checkDigest(hash, digest);
  const input = Buffer.concat([DIGEST_INFO_PREFIX[hash], digest]);
  return new Uint8Array(privateEncrypt({ key, padding: constants.RSA_PKCS1_PADDING }, input));
}

// --- RSA-PSS --------------------------------------------------------------------------------

export type PssHash = 'sha256' | 'sha384' | 'sha512';

export function signRsaPssDigest(key: KeyObject, modulusBits: number, hash: PssHash, digest: Uint8Array): Uint8Array {
  checkDigest(hash, digest);
  const em = emsaPssEncode(hash, digest, modulusBits - 1);
  const k = Math.ceil(modulusBits / 8);
  const input = Buffer.alloc(k);
  input.set(em, k - em.length);
  return new Uint8Array(privateEncrypt({ key, padding: constants.RSA_NO_PADDING }, input));
}

/** RFC 8017 §9.1.1 with sLen = hLen (what TLS 1.3 requires). `salt` only for test vectors. */
export function emsaPssEncode(hash: PssHash, mHash: Uint8Array, emBits: number, salt?: Uint8Array): Uint8Array {
  const hLen = DIGEST_LENGTH[hash];
  const sLen = hLen;
  const emLen = Math.ceil(emBits / 8);
  if (emLen < hLen + sLen + 2) throw new KeylessError(ErrorCode.cryptoFailed, 'RSA key too small for PSS with this hash');
  const s = salt ?? randomBytes(sLen);
  const h = createHash(hash).update(Buffer.alloc(8)).update(mHash).update(s).digest();
  const db = Buffer.alloc(emLen - hLen - 1);
  db[emLen - sLen - hLen - 2] = 0x01;
  db.set(s, emLen - sLen - hLen - 1);
  const mask = mgf1(hash, h, db.length);
  for (let i = 0; i < db.length; i++) db[i] = db[i]! ^ mask[i]!;
  db[0] = db[0]! & (0xff >>> (8 * emLen - emBits));
  return Buffer.concat([db, h, Buffer.of(0xbc)]);
}

function mgf1(hash: string, seed: Uint8Array, length: number): Buffer {
  const chunks: Buffer[] = [];
  let produced = 0;
  for (let counter = 0; produced < length; counter++) {
    const c = Buffer.alloc(4);
    c.writeUInt32BE(counter);
    const block = createHash(hash).update(seed).update(c).digest();
    chunks.push(block);
    produced += block.length;
  }
  return Buffer.concat(chunks).subarray(0, length);
}

// --- ECDSA ----------------------------------------------------------------------------------

export type EcCurve = 'P-256' | 'P-384' | 'P-521';

const NOBLE_CURVES = { 'P-256': p256, 'P-384': p384, 'P-521': p521 } as const;

/**
 * ECDSA over a given digest with @noble/curves. Holds the private scalar as bytes (noble takes
 * its key that way): one copy per SigningKey, made when the key is loaded.
 */
export class EcdsaDigestSigner {
  private readonly scalar: Uint8Array;

  constructor(readonly curve: EcCurve, key: KeyObject) {
    const jwk = key.export({ format: 'jwk' });
    if (jwk.d === undefined) throw new Error('ECDSA signer needs a private key');
    this.scalar = new Uint8Array(Buffer.from(jwk.d, 'base64url'));
  }

  /** Returns the DER `Ecdsa-Sig-Value`. Two calls with the same digest give different signatures. */
  sign(hash: DigestAlgorithm, digest: Uint8Array): Uint8Array {
    checkDigest(hash, digest);
    return NOBLE_CURVES[this.curve].sign(digest, this.scalar, { prehash: false, extraEntropy: true, format: 'der' });
  }
}

// --- Ed25519 --------------------------------------------------------------------------------

export function signEd25519(key: KeyObject, message: Uint8Array): Uint8Array {
  return new Uint8Array(nodeSign(null, message, key));
}

// --- shared ---------------------------------------------------------------------------------

function checkDigest(hash: DigestAlgorithm, digest: Uint8Array): void {
  if (digest.length !== DIGEST_LENGTH[hash]) {
    throw new KeylessFormatError(`a ${hash} digest is ${DIGEST_LENGTH[hash]} bytes, the payload has ${digest.length}`);
  }
}
