/**
 * The TLS 1.2 cipher suites we speak: ECDHE key exchange, ECDSA or RSA signatures, and the three
 * AEADs of TLS 1.3 (RFC 5289 AES-GCM, RFC 7905 ChaCha20-Poly1305). No CBC, no RSA key transport,
 * no static (EC)DH: a client that offers only those gets handshake_failure.
 */
import { CipherSuite, NamedGroup } from '../constants.js';
import type { SuiteParams } from '../suites.js';

export interface Tls12SuiteParams extends SuiteParams {
  /** The certificate key type the suite needs: ECDHE_ECDSA or ECDHE_RSA. */
  readonly auth: 'ecdsa' | 'rsa';
  /** Bytes of the IV taken from the key block: 4 (GCM salt, RFC 5288) or 12 (ChaCha20, RFC 7905). */
  readonly fixedIvLength: 4 | 12;
  /** Bytes of nonce sent in each record: 8 for GCM, none for ChaCha20-Poly1305. */
  readonly explicitNonceLength: 8 | 0;
}

const C = CipherSuite;

function suite(id: number, name: string, auth: 'ecdsa' | 'rsa', aead: SuiteParams['aead']): Tls12SuiteParams {
  const gcm = aead !== 'chacha20-poly1305';
  const sha384 = aead === 'aes-256-gcm';
  return {
    id,
    name,
    aead,
    keyLength: aead === 'aes-128-gcm' ? 16 : 32,
    ivLength: 12,
    tagLength: 16,
    hash: sha384 ? 'sha384' : 'sha256',
    hashLength: sha384 ? 48 : 32,
    // No KeyUpdate in TLS 1.2: at the limit the connection ends (connection.ts). 2^24 full
    // records is 256 GiB, well inside GCM's 2^24.5 of RFC 8446 §5.5.
    recordLimit: gcm ? 1 << 24 : 2 ** 31,
    auth,
    fixedIvLength: gcm ? 4 : 12,
    explicitNonceLength: gcm ? 8 : 0,
  };
}

export const TLS12_SUITES: ReadonlyMap<number, Tls12SuiteParams> = new Map(
  [
    suite(C.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256', 'ecdsa', 'aes-128-gcm'),
    suite(C.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, 'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256', 'rsa', 'aes-128-gcm'),
    suite(C.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, 'TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384', 'ecdsa', 'aes-256-gcm'),
    suite(C.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, 'TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384', 'rsa', 'aes-256-gcm'),
    suite(C.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, 'TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256', 'ecdsa', 'chacha20-poly1305'),
    suite(C.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, 'TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256', 'rsa', 'chacha20-poly1305'),
  ].map((s) => [s.id, s]),
);

/** Our order of preference, as for TLS 1.3: AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305. */
export const DEFAULT_TLS12_CIPHER_SUITES: readonly number[] = [...TLS12_SUITES.keys()];

export function tls12SuiteParams(id: number): Tls12SuiteParams | undefined {
  return TLS12_SUITES.get(id);
}

/**
 * The groups TLS 1.2 ECDHE runs on here (RFC 8422 §5.1.1 named curves and x25519). The hybrid
 * post-quantum groups are TLS 1.3 only (draft-ietf-tls-ecdhe-mlkem defines them for TLS 1.3's
 * key_share; a KEM has no ServerECDHParams/ClientKeyExchange form): a TLS 1.2 server never picks
 * one, and our TLS 1.2 client refuses a ServerKeyExchange that names one (illegal_parameter).
 */
export const TLS12_GROUPS: readonly number[] = [NamedGroup.x25519, NamedGroup.secp256r1, NamedGroup.secp384r1];
