/**
 * The three TLS 1.3 cipher suites: AEAD and hash parameters in node:crypto terms.
 */
import { CipherSuite } from './constants.js';

export type HashName = 'sha256' | 'sha384';
export type AeadName = 'aes-128-gcm' | 'aes-256-gcm' | 'chacha20-poly1305';

export interface SuiteParams {
  readonly id: number;
  readonly name: string;
  readonly aead: AeadName;
  readonly keyLength: number;
  readonly ivLength: 12;
  readonly tagLength: 16;
  readonly hash: HashName;
  readonly hashLength: number;
  /**
   * Records to protect under one key before we rekey with KeyUpdate. RFC 8446 §5.5 says 2^24.5
   * full-size records for AES-GCM; we stay comfortably below. ChaCha20-Poly1305 has no practical
   * limit in TLS, but rekeying as well costs nothing.
   */
  readonly recordLimit: number;
}

export const SUITES: ReadonlyMap<number, SuiteParams> = new Map<number, SuiteParams>([
  [
    CipherSuite.TLS_AES_128_GCM_SHA256,
    { id: CipherSuite.TLS_AES_128_GCM_SHA256, name: 'TLS_AES_128_GCM_SHA256', aead: 'aes-128-gcm', keyLength: 16, ivLength: 12, tagLength: 16, hash: 'sha256', hashLength: 32, recordLimit: 1 << 24 },
  ],
  [
    CipherSuite.TLS_AES_256_GCM_SHA384,
    { id: CipherSuite.TLS_AES_256_GCM_SHA384, name: 'TLS_AES_256_GCM_SHA384', aead: 'aes-256-gcm', keyLength: 32, ivLength: 12, tagLength: 16, hash: 'sha384', hashLength: 48, recordLimit: 1 << 24 },
  ],
  [
    CipherSuite.TLS_CHACHA20_POLY1305_SHA256,
    { id: CipherSuite.TLS_CHACHA20_POLY1305_SHA256, name: 'TLS_CHACHA20_POLY1305_SHA256', aead: 'chacha20-poly1305', keyLength: 32, ivLength: 12, tagLength: 16, hash: 'sha256', hashLength: 32, recordLimit: 2 ** 31 },
  ],
]);

/** Our default preference: AES-128-GCM (fast with AES-NI), AES-256-GCM, ChaCha20-Poly1305. */
export const DEFAULT_CIPHER_SUITES: readonly number[] = [
  CipherSuite.TLS_AES_128_GCM_SHA256,
  CipherSuite.TLS_AES_256_GCM_SHA384,
  CipherSuite.TLS_CHACHA20_POLY1305_SHA256,
];

export function suiteParams(id: number): SuiteParams | undefined {
  return SUITES.get(id);
}
