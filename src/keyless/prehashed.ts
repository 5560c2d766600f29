/**
 * Signing a digest that the client already computed, with a private key held by the key server.
 *
 * node:crypto signs messages, not digests, so each family uses the primitive underneath:
 * - RSA PKCS#1 v1.5: `privateEncrypt` with PKCS#1 type-1 padding over DigestInfo(hash) (RFC 8017
 *   §9.2; MD5SHA1 has no DigestInfo, as in TLS 1.0/1.1).
 * - RSA-PSS: EMSA-PSS encoding done here (RFC 8017 §9.1.1, MGF1 with the same hash, salt length =
 *   hash length as TLS 1.3 requires), then the raw RSA private operation (`privateEncrypt`,
 *   RSA_NO_PADDING).
 * - ECDSA: k·G by OpenSSL (an ECDH object computing the public point of the nonce: constant-time
 *   fixed-base multiplication), the rest in BigInt: r = x(kG) mod n, s = k⁻¹(z + r·d) mod n, with
 *   k⁻¹ computed for a batch of nonces at once and blinded by a random factor, so the variable
 *   timing of the BigInt inversion says nothing about any k. Several times faster than pure-JS
 *   ECDSA (@noble/curves); see bench/results/keyless.md.
 * - Ed25519 signs the whole payload (no pre-hash).
 */
import {
  constants,
  createECDH,
  createHash,
  privateEncrypt,
  randomBytes,
  sign as nodeSign,
  type ECDH,
  type KeyObject,
} from 'node:crypto';
import { DerTag, encodeTlv, encodeUnsignedInteger } from '../tls/x509/der.js';
import { KeylessError, KeylessFormatError } from './errors.js';
import { DIGEST_LENGTH, ErrorCode, type DigestAlgorithm, type SignOperation } from './protocol.js';

// --- RSA PKCS#1 v1.5 ------------------------------------------------------------------------

const DIGEST_INFO_PREFIX: Readonly<Record<DigestAlgorithm, Buffer>> = {
  'md5-sha1': Buffer.alloc(0),
  sha1: Buffer.from('3021300906052b0e03021a05000414', 'hex'),
  sha224: Buffer.from('302d300d06096086480165030402040500041c', 'hex'),
  sha256: Buffer.from('3031300d060960864801650304020105000420', 'hex'),
  sha384: Buffer.from('3041300d060960864801650304020205000430', 'hex'),
  sha512: Buffer.from('3051300d060960864801650304020305000440', 'hex'),
};

export function signRsaPkcs1(key: KeyObject, hash: DigestAlgorithm, digest: Uint8Array): Uint8Array {
  checkDigest(hash, digest);
  const input = Buffer.concat([DIGEST_INFO_PREFIX[hash], digest]);
  return new Uint8Array(privateEncrypt({ key, padding: constants.RSA_PKCS1_PADDING }, input));
}

// --- RSA-PSS --------------------------------------------------------------------------------

export function signRsaPss(
  key: KeyObject,
  modulusBits: number,
  hash: 'sha256' | 'sha384' | 'sha512',
  digest: Uint8Array,
): Uint8Array {
  checkDigest(hash, digest);
  const em = emsaPssEncode(hash, digest, modulusBits - 1);
  const k = Math.ceil(modulusBits / 8);
  const input = Buffer.alloc(k);
  input.set(em, k - em.length);
  return new Uint8Array(privateEncrypt({ key, padding: constants.RSA_NO_PADDING }, input));
}

/** RFC 8017 §9.1.1 with sLen = hLen. */
export function emsaPssEncode(hash: 'sha256' | 'sha384' | 'sha512', mHash: Uint8Array, emBits: number, salt?: Uint8Array): Uint8Array {
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

interface CurveParams {
  readonly opensslName: string;
  readonly n: bigint;
  readonly orderBits: number;
  readonly scalarBytes: number;
  /**
   * Nonces prepared per batch (one modular inversion shared by the batch). A refill blocks for
   * batch × (cost of k·G), so it is large only where k·G is cheap: OpenSSL has a fast P-256, while
   * P-384/P-521 k·G costs about a millisecond and a batch of 32 would add a 30 ms stall to the
   * request that triggers the refill.
   */
  readonly nonceBatch: number;
}

const CURVES: Readonly<Record<EcCurve, CurveParams>> = {
  'P-256': {
    opensslName: 'prime256v1',
    n: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
    orderBits: 256,
    scalarBytes: 32,
    nonceBatch: 32,
  },
  'P-384': {
    opensslName: 'secp384r1',
    n: 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n,
    orderBits: 384,
    scalarBytes: 48,
    nonceBatch: 2,
  },
  'P-521': {
    opensslName: 'secp521r1',
    n: 0x01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409n,
    orderBits: 521,
    scalarBytes: 66,
    nonceBatch: 2,
  },
};

/** A one-time ECDSA nonce k, prepared ahead: r = x(k·G) mod n and k⁻¹ mod n. */
interface Nonce {
  readonly r: bigint;
  readonly kInverse: bigint;
}


/**
 * An ECDSA private key prepared for signing digests.
 *
 * The expensive parts of ECDSA do not depend on the message: k·G, done by OpenSSL, and k⁻¹, an
 * inversion that costs more in BigInt than OpenSSL's whole signature. Nonces are therefore made
 * in batches with Montgomery's trick (invert the product of the batch once, blinded by a random
 * factor, then recover each k⁻¹ with three multiplications), and each nonce is used exactly once.
 */
export class EcdsaDigestSigner {
  private readonly params: CurveParams;
  private readonly d: bigint;
  private readonly nonceMultiplier: ECDH;
  private readonly nonces: Nonce[] = [];

  constructor(readonly curve: EcCurve, key: KeyObject) {
    this.params = CURVES[curve];
    const jwk = key.export({ format: 'jwk' });
    if (jwk.d === undefined) throw new Error('ECDSA signer needs a private key');
    this.d = bytesToBigInt(Buffer.from(jwk.d, 'base64url'));
    this.nonceMultiplier = createECDH(this.params.opensslName);
  }

  /** Returns the DER `Ecdsa-Sig-Value` (what TLS carries). */
  sign(hash: DigestAlgorithm, digest: Uint8Array): Uint8Array {
    checkDigest(hash, digest);
    const { n } = this.params;
    const z = this.bits2int(digest);
    for (;;) {
      const { r, kInverse } = this.nextNonce();
      const s = (kInverse * ((z + r * this.d) % n)) % n;
      if (s === 0n) continue;
      return derSignature(r, s);
    }
  }

  private nextNonce(): Nonce {
    if (this.nonces.length === 0) this.prepareNonces();
    return this.nonces.pop()!;
  }

  private prepareNonces(): void {
    const { n, scalarBytes, nonceBatch } = this.params;
    const ks: bigint[] = [];
    const rs: bigint[] = [];
    while (ks.length < nonceBatch) {
      const k = this.randomScalar();
      this.nonceMultiplier.setPrivateKey(bigIntToBytes(k, scalarBytes));
      const point = this.nonceMultiplier.getPublicKey();
      const r = bytesToBigInt(point.subarray(1, 1 + scalarBytes)) % n;
      if (r === 0n) continue;
      ks.push(k);
      rs.push(r);
    }
    // prefix[i] = k_0 · … · k_{i-1}
    const prefix: bigint[] = [];
    let product = 1n;
    for (const k of ks) {
      prefix.push(product);
      product = (product * k) % n;
    }
    const blind = this.randomScalar();
    let inverse = (modInverse((product * blind) % n, n) * blind) % n; // (k_0 · … · k_{B-1})⁻¹
    const prepared: Nonce[] = new Array<Nonce>(ks.length);
    for (let i = ks.length - 1; i >= 0; i--) {
      prepared[i] = { r: rs[i]!, kInverse: (inverse * prefix[i]!) % n };
      inverse = (inverse * ks[i]!) % n;
    }
    this.nonces.push(...prepared);
  }

  /** SEC 1 §4.1.3 step 5: the leftmost orderBits bits of the digest. */
  private bits2int(digest: Uint8Array): bigint {
    const value = bytesToBigInt(digest);
    const excess = digest.length * 8 - this.params.orderBits;
    return excess > 0 ? value >> BigInt(excess) : value;
  }

  /** Uniform in [1, n-1] by rejection sampling. */
  private randomScalar(): bigint {
    const { n, orderBits, scalarBytes } = this.params;
    const topMask = 0xff >>> (scalarBytes * 8 - orderBits);
    for (;;) {
      const bytes = randomBytes(scalarBytes);
      bytes[0] = bytes[0]! & topMask;
      const v = bytesToBigInt(bytes);
      if (v > 0n && v < n) return v;
    }
  }
}

/** Extended Euclid (plain assignments: about 30 % faster in V8 than destructuring swaps). */
function modInverse(a: bigint, m: bigint): bigint {
  let oldR = a;
  let r = m;
  let oldS = 1n;
  let s = 0n;
  while (r !== 0n) {
    const q = oldR / r;
    let t = r;
    r = oldR - q * r;
    oldR = t;
    t = s;
    s = oldS - q * s;
    oldS = t;
  }
  if (oldR !== 1n) throw new KeylessError(ErrorCode.cryptoFailed, 'nonce not invertible');
  return ((oldS % m) + m) % m;
}

function bytesToBigInt(bytes: Uint8Array): bigint {
  return bytes.length === 0 ? 0n : BigInt('0x' + Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex'));
}

function bigIntToBytes(v: bigint, length: number): Buffer {
  return Buffer.from(v.toString(16).padStart(length * 2, '0'), 'hex');
}

/** DER `Ecdsa-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }`. */
function derSignature(r: bigint, s: bigint): Uint8Array {
  return encodeTlv(DerTag.sequence, encodeUnsignedInteger(r), encodeUnsignedInteger(s));
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

/** The key families a SignOperation applies to, for error messages. */
export function describeOperation(op: SignOperation): string {
  return op.kind === 'ed25519' ? 'Ed25519' : `${op.kind.toUpperCase()} over ${op.hash.toUpperCase()}`;
}
