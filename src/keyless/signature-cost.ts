/**
 * What one signature costs the key server's CPU, in RSA-2048 signatures: the unit a per-identity
 * rate limit counts in, so that a tenant's share of the key server does not depend on the key its
 * certificate happens to have. Counting signatures alone, one tenant whose certificate has an
 * RSA-8192 key took ~100 times the CPU of one with RSA-2048 at the same rate, enough to starve
 * every other tenant of a replica at the default rate.
 *
 * Why RSA-2048 as the unit: it is cert-manager's default key and the cheapest RSA key it issues, so
 * the default rate means what it said for most certificates. Keys cheaper than that (P-256,
 * Ed25519) still count 1: the limit is also a count of requests, and one of them costs more than
 * its signature (TLS, framing, authorization). Keys are never refused for their size: cert-manager
 * issues RSA 2048, 3072, 4096 and 8192, and an 8192-bit key is served, at its price (larger ones
 * are refused where keys are loaded: MAX_RSA_KEY_BITS in keystore.ts).
 *
 * The table is measured, node:crypto (OpenSSL 3) on x86-64, µs per signature with the median of
 * 3 to 5 rounds (bench/results/keyless-signing.md for the digest paths): RSA-2048 ~510, RSA-3072
 * ~1,470, RSA-4096 ~2,950, RSA-8192 ~24,000 to 52,000 depending on load; P-256 and Ed25519 ~45,
 * P-384 ~1,530, P-521 ~2,570 (OpenSSL has no assembly for either); ML-DSA-44/65/87 ~730, ~1,350,
 * ~1,850. ECDSA digests from other clients are signed by @noble/curves (pure JS): P-256 ~1.6,
 * P-384 ~3.2 RSA-2048 signatures. The ratios move less than the absolute numbers from machine to
 * machine; a cost is rounded up, never down.
 */
import type { SigningKey } from './keystore.js';
import type { SignRequest } from './sign-request.js';

/** RSA private-key operations grow with about the 2.6th power of the modulus size (the measured ratios above). */
const RSA_COST_EXPONENT = 2.6;

/** In RSA-2048 signatures; at least 1. */
export function signatureCost(key: SigningKey, request: SignRequest): number {
  switch (key.algorithm) {
    case 'rsa': {
      const bits = key.key.asymmetricKeyDetails?.modulusLength ?? 2048;
      return Math.max(1, Math.ceil((bits / 2048) ** RSA_COST_EXPONENT - 0.05));
    }
    case 'ecdsa': {
      // Whole messages (our sidecars, 0xC0) through OpenSSL; digests through @noble/curves.
      const digest = request.kind === 'digest';
      if (key.detail === 'P-384') return digest ? 4 : 3;
      if (key.detail === 'P-521') return digest ? 8 : 5;
      return digest ? 2 : 1;
    }
    case 'ml-dsa':
      return key.detail === 'ML-DSA-87' ? 4 : key.detail === 'ML-DSA-65' ? 3 : 2;
    case 'ed25519':
      return 1;
  }
}
