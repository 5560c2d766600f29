/**
 * The keyless Signer backend: signatures come from a remote Keyless SSL key server over mutual TLS,
 * so the certificate's private key never enters the cluster.
 *
 * Hash-based schemes travel whole, with the scheme, in our sign-message extension (the key server
 * signs with node:crypto); a key server that answers it "bad opcode" (gokeyless and other
 * implementations of the documented protocol) gets the documented opcode with a digest hashed
 * here instead (KeylessClient.signMessage remembers that per connection). Ed25519 always travels
 * whole in its documented opcode; ML-DSA only through the extension (no documented opcode). When the
 * public key is known (from the certificate), signatures are verified before they are returned:
 * a key server that answers with a wrong key or a faulty signature fails loudly here instead of
 * producing a credential no client accepts. By default every one; a TLS terminator, whose
 * clients verify the signature themselves, may verify a sample (`verifyOneIn`, verify-sampling.ts).
 */
import { createHash, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { KeylessClient, type KeylessClientOptions, type RequestOptions } from '../keyless/client.js';
import { KeylessError } from '../keyless/errors.js';
import { ErrorCode, Opcode } from '../keyless/protocol.js';
import { MAX_SIGN_MESSAGE_LENGTH } from '../keyless/sign-message.js';
import { computeSki, parseSkiHex, skiHex } from '../keyless/ski.js';
import { signatureSchemeName, type SignatureScheme } from '../tls/constants.js';
import type { Signer } from '../tls/signer.js';
import { keyMatchesScheme, schemeParams, schemesForKey, verifySignature } from '../tls/signature-schemes.js';
import { VerificationSampler } from './verify-sampling.js';

type Pem = string | Uint8Array;

export interface KeylessSignerOptions {
  /** Key server `host:port` (port defaults to 2407). */
  readonly address: string;
  /** CA bundle (PEM) that the key server's certificate must chain to. */
  readonly ca: Pem;
  /** Our client certificate and its key (PEM), signed by a CA the key server trusts. */
  readonly clientCert: Pem;
  readonly clientKey: Pem;
  /**
   * The certificate (PEM or DER) whose private key the key server holds. Gives the SKI, the
   * schemes and signature verification. Alternatively give `publicKey`, or `ski` + `schemes`.
   */
  readonly certificate?: Pem;
  /** The public key (SPKI PEM/DER or a KeyObject) whose private key the key server holds. */
  readonly publicKey?: Pem | KeyObject;
  /** SKI of the key (hex, ':' allowed, or 20 bytes), when neither certificate nor publicKey is given. */
  readonly ski?: string | Uint8Array;
  /** Schemes to offer; required with `ski` alone, otherwise a subset of what the key supports. */
  readonly schemes?: readonly SignatureScheme[];
  /** Per-signature deadline in ms (default 5000). */
  readonly timeoutMs?: number;
  /** Name to check in the key server's certificate (default: the address host). */
  readonly servername?: string;
  /** Connections to keep (default 1). */
  readonly poolSize?: number;
  /** Share an existing client (pool) instead of creating one; address/ca/cert/key are then unused. */
  readonly client?: KeylessClient;
  /**
   * Verify every signature with the public key before returning it (default true when the public
   * key is known). Costs one local verification per signature.
   */
  readonly verify?: boolean;
  /**
   * With `verify`: check one signature in this many (default 1, every one), plus the first on each
   * key server connection, the first after a failure, and all for a while after a bad one
   * (verify-sampling.ts). Only for signatures someone else verifies anyway (TLS handshakes).
   */
  readonly verifyOneIn?: number;
  /** Told about each signature that did not verify (it is also thrown). */
  readonly onBadSignature?: (error: KeylessError) => void;
}

interface OpcodeForScheme {
  /** The documented opcode (a digest, or Ed25519's message); Opcode.signMessage when there is none. */
  readonly opcode: number;
  /** Digest the client computes; null = send the message itself (Ed25519, ML-DSA). */
  readonly hash: 'sha1' | 'sha256' | 'sha384' | 'sha512' | null;
}

/** Which keyless opcode produces a TLS signature scheme, or undefined when none does. */
export function opcodeForScheme(scheme: SignatureScheme): OpcodeForScheme | undefined {
  const p = schemeParams(scheme);
  if (!p) return undefined;
  switch (p.kind) {
    case 'ed25519':
      return { opcode: Opcode.ed25519Sign, hash: null };
    case 'ml-dsa':
      // No documented opcode: only our sign-message extension (the scheme travels in its payload).
      return { opcode: Opcode.signMessage, hash: null };
    case 'ecdsa': {
      const opcode = { sha1: Opcode.ecdsaSignSha1, sha256: Opcode.ecdsaSignSha256, sha384: Opcode.ecdsaSignSha384, sha512: Opcode.ecdsaSignSha512 }[p.hash ?? 'sha256'];
      return { opcode, hash: p.hash };
    }
    case 'rsa-pkcs1': {
      const opcode = { sha1: Opcode.rsaSignSha1, sha256: Opcode.rsaSignSha256, sha384: Opcode.rsaSignSha384, sha512: Opcode.rsaSignSha512 }[p.hash ?? 'sha256'];
      return { opcode, hash: p.hash };
    }
    case 'rsa-pss': {
      // rsa_pss_rsae_* only: the keyless PSS opcodes sign with an rsaEncryption key.
      if (p.keyType !== 'rsa' || p.hash === null || p.hash === 'sha1') return undefined;
      const opcode = { sha256: Opcode.rsaPssSignSha256, sha384: Opcode.rsaPssSignSha384, sha512: Opcode.rsaPssSignSha512 }[p.hash];
      return { opcode, hash: p.hash };
    }
  }
}

/** A Signer whose private key lives on a Keyless SSL key server. */
export class KeylessSigner implements Signer {
  readonly schemes: readonly SignatureScheme[];
  readonly ski: Uint8Array;
  readonly skiHex: string;
  /** The public key, when known; signatures are verified with it. */
  readonly publicKey: KeyObject | undefined;
  readonly client: KeylessClient;
  private readonly ownsClient: boolean;
  private readonly timeoutMs: number | undefined;
  private readonly sampler: VerificationSampler | undefined;
  private readonly onBadSignature: ((error: KeylessError) => void) | undefined;

  constructor(options: KeylessSignerOptions) {
    this.publicKey = publicKeyOf(options);
    if (this.publicKey) {
      this.ski = computeSki(this.publicKey);
      if (options.ski !== undefined && skiHex(toSki(options.ski)) !== skiHex(this.ski)) {
        throw new Error(`the given SKI ${skiHex(toSki(options.ski))} does not match the key's SKI ${skiHex(this.ski)}`);
      }
    } else if (options.ski !== undefined) {
      this.ski = toSki(options.ski);
    } else {
      throw new Error('KeylessSigner needs a certificate, a publicKey or an SKI');
    }
    this.skiHex = skiHex(this.ski);
    this.schemes = chooseSchemes(this.publicKey, options.schemes);
    if (this.schemes.length === 0) throw new Error(`no signature scheme usable with key ${this.skiHex} over keyless`);
    this.timeoutMs = options.timeoutMs;
    this.sampler = (options.verify ?? true) && this.publicKey ? new VerificationSampler(options.verifyOneIn ?? 1) : undefined;
    this.onBadSignature = options.onBadSignature;
    if (options.client) {
      this.client = options.client;
      this.ownsClient = false;
    } else {
      const clientOptions: KeylessClientOptions = {
        address: options.address,
        ca: options.ca,
        cert: options.clientCert,
        key: options.clientKey,
        ...(options.servername !== undefined ? { servername: options.servername } : {}),
        ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
        ...(options.poolSize !== undefined ? { poolSize: options.poolSize } : {}),
      };
      this.client = new KeylessClient(clientOptions);
      this.ownsClient = true;
    }
  }

  async sign(scheme: SignatureScheme, message: Uint8Array): Promise<Uint8Array> {
    if (!this.schemes.includes(scheme)) {
      throw new RangeError(`keyless key ${this.skiHex} does not offer ${signatureSchemeName(scheme)}`);
    }
    const mapping = opcodeForScheme(scheme);
    if (!mapping) throw new RangeError(`${signatureSchemeName(scheme)} has no keyless opcode`);
    // Which key server connection answered this request (per call: answers to concurrent
    // requests settle in any order).
    let connection = 0;
    const options: RequestOptions = {
      ...(this.timeoutMs !== undefined ? { timeoutMs: this.timeoutMs } : {}),
      answeredOn: (serial) => (connection = serial),
    };
    const hash = mapping.hash;
    let signature: Uint8Array;
    try {
      // Ed25519's documented opcode already carries the whole message. Every other scheme goes whole
      // through our extension (the key server signs with node:crypto), or as a digest to a key
      // server without it; ML-DSA only through the extension (it has no documented opcode).
      signature =
        mapping.opcode === Opcode.signMessage
          ? await this.client.signMessage(this.ski, scheme, message, () => {
              throw new KeylessError(
                ErrorCode.badOpcode,
                `key server ${this.client.server} does not speak the sign-message extension (0xC0), the only way to sign ${signatureSchemeName(scheme)} over keyless (a message of at most ${MAX_SIGN_MESSAGE_LENGTH} bytes)`,
              );
            }, options)
          : hash === null
            ? await this.client.sign(this.ski, mapping.opcode, message, options)
            : await this.client.signMessage(
                this.ski,
                scheme,
                message,
                () => ({ opcode: mapping.opcode, payload: new Uint8Array(createHash(hash).update(message).digest()) }),
                options,
              );
    } catch (err) {
      this.sampler?.failure();
      throw err;
    }
    if (this.sampler?.shouldVerify(connection) && !verifySignature(scheme, this.publicKey!, message, signature)) {
      this.sampler.badSignature();
      const error = new KeylessError(
        ErrorCode.cryptoFailed,
        `key server ${this.client.server} returned a ${signatureSchemeName(scheme)} signature that does not verify with key ${this.skiHex}`,
      );
      this.onBadSignature?.(error);
      throw error;
    }
    return signature;
  }

  /** Round trip to the key server in ms (health of the signer). */
  ping(): Promise<number> {
    return this.client.ping(this.timeoutMs !== undefined ? { timeoutMs: this.timeoutMs } : {});
  }

  async close(): Promise<void> {
    if (this.ownsClient) await this.client.close();
  }
}

function toSki(ski: string | Uint8Array): Uint8Array {
  if (typeof ski === 'string') return parseSkiHex(ski);
  if (ski.length !== 20) throw new Error(`SKI must be 20 bytes, got ${ski.length}`);
  return ski;
}

function publicKeyOf(options: KeylessSignerOptions): KeyObject | undefined {
  if (options.certificate !== undefined) {
    return new X509Certificate(typeof options.certificate === 'string' ? options.certificate : Buffer.from(options.certificate)).publicKey;
  }
  const pk = options.publicKey;
  if (pk === undefined) return undefined;
  if (typeof pk === 'string') return createPublicKey(pk);
  if (pk instanceof Uint8Array) {
    const bytes = Buffer.from(pk);
    return bytes.includes('-----BEGIN') ? createPublicKey(bytes) : createPublicKey({ key: bytes, format: 'der', type: 'spki' });
  }
  return pk.type === 'private' ? createPublicKey(pk) : pk;
}

function chooseSchemes(publicKey: KeyObject | undefined, wanted: readonly SignatureScheme[] | undefined): SignatureScheme[] {
  if (!publicKey) {
    if (!wanted || wanted.length === 0) throw new Error('KeylessSigner with only an SKI needs `schemes`');
    for (const s of wanted) {
      if (!opcodeForScheme(s)) throw new Error(`${signatureSchemeName(s)} has no keyless opcode`);
    }
    return [...wanted];
  }
  const supported = schemesForKey(publicKey).filter((s) => opcodeForScheme(s) !== undefined);
  if (!wanted) return supported;
  for (const s of wanted) {
    if (!keyMatchesScheme(publicKey, s) || !opcodeForScheme(s)) {
      throw new Error(`${signatureSchemeName(s)} does not fit the key (${publicKey.asymmetricKeyType ?? 'unknown'})`);
    }
  }
  return [...wanted];
}

