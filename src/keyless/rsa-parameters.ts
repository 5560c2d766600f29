/**
 * Consistency of an RSA private key's parameters, checked once when a key is loaded.
 *
 * OpenSSL signs with the CRT parameters (p, q, dP, dQ, qInv) and checks the result with e; when
 * that check fails it signs again with d alone, 10-20x slower, and the signature still verifies.
 * A key whose CRT values do not belong to its n and d (one flipped bit of dP is enough) keeps its
 * public key and SKI, so it matches its certificate, passes every other check, and turns each of
 * its signatures into a long, uninterruptible stall of the key server's signing, which every
 * tenant shares. The same goes for a huge public exponent. So a key is refused unless n = p·q,
 * dP = d mod (p-1), dQ = d mod (q-1), qInv·q ≡ 1 (mod p), d < n and 3 ≤ e < 2^31 (Go's bound).
 *
 * This is arithmetic on a private key, but not a cryptographic operation with it: no signature
 * or secret depends on it, it runs once per load (never per request), on values the key's owner
 * supplied, and it only compares. node:crypto has no RSA key check to call instead.
 */
import type { KeyObject } from 'node:crypto';

const MAX_PUBLIC_EXPONENT = 2n ** 31n;
const STALLS = ": its signatures would stall the key server's signing for every client; export the key again (openssl pkey -in KEY -out KEY.new) or issue a new one";

function int(b64url: string | undefined): bigint | undefined {
  if (b64url === undefined || b64url.length === 0) return undefined;
  const hex = Buffer.from(b64url, 'base64url').toString('hex');
  return hex.length === 0 ? 0n : BigInt(`0x${hex}`);
}

/** Why this RSA private key must not be used for signing (a whole sentence), or undefined when its parameters agree. */
export function rsaParameterProblem(key: KeyObject): string | undefined {
  const jwk = key.export({ format: 'jwk' }) as Record<string, unknown>;
  if (jwk['oth'] !== undefined) return 'a multi-prime RSA key (more than two primes) is not supported here: use a two-prime key';
  const get = (name: string): bigint | undefined => int(typeof jwk[name] === 'string' ? (jwk[name] as string) : undefined);
  const [n, e, d, p, q, dp, dq, qi] = ['n', 'e', 'd', 'p', 'q', 'dp', 'dq', 'qi'].map(get);
  if (n === undefined || e === undefined || d === undefined) return 'the RSA key lacks its modulus or exponents';
  if (p === undefined || q === undefined || dp === undefined || dq === undefined || qi === undefined) {
    return `the RSA key has no CRT parameters (p, q, dP, dQ, qInv)${STALLS}`;
  }
  if (e < 3n || e >= MAX_PUBLIC_EXPONENT || e % 2n === 0n) return `the RSA public exponent ${e} is outside 3..2^31-1 or even${STALLS}`;
  if (p < 2n || q < 2n || p * q !== n) return `the RSA key's primes do not multiply to its modulus${STALLS}`;
  if (d <= 0n || d >= n) return `the RSA private exponent is not below the modulus${STALLS}`;
  if (dp !== d % (p - 1n) || dq !== d % (q - 1n) || (qi * q) % p !== 1n) {
    return `the RSA key's CRT parameters (dP, dQ, qInv) do not belong to its private exponent and primes${STALLS}`;
  }
  return undefined;
}
