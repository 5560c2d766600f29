/**
 * Which key-server signatures a keyless signer verifies before returning them, when it is not
 * asked to verify every one (the sidecar; the operator, whose signatures become stored delegated
 * credentials, verifies all).
 *
 * The TLS client verifies the CertificateVerify (and the TLS 1.2 ServerKeyExchange) itself, so
 * the serving side's check protects no client: it exists to tell an operator that the key server
 * answers with the wrong key or broken signatures, instead of leaving only clients' alerts. Such a
 * fault is a property of the key server at the other end of a connection (its configuration, its
 * key store, the replica a Service sent the connection to), so it shows in the first signature on
 * that connection; a sample of the later ones catches a fault that comes later. Hence:
 *
 *   - the first signature on each key-server connection (every (re)connect) is verified;
 *   - the first one after the signer is made (each bundle swap makes a new signer) is verified;
 *   - the first one after any failed signature (timeout, refusal, unreachable) is verified;
 *   - after a signature that does not verify: every signature, for the next STRICT_AFTER_BAD;
 *   - otherwise one in `every` (1: all of them).
 */

/** Verified signatures in a row after a bad one, before sampling resumes. */
export const STRICT_AFTER_BAD = 1000;

/** Connections remembered as verified (a pool holds a few; old serials are dropped first). */
const REMEMBERED_CONNECTIONS = 64;

export class VerificationSampler {
  private readonly verifiedConnections = new Set<number>();
  private sinceVerified = 0;
  private strictLeft = 0;
  private afterFailure = false;

  /** `every`: verify one signature in this many (at least 1) besides the ones above. */
  constructor(readonly every: number) {
    if (!Number.isInteger(every) || every < 1) throw new RangeError(`verify one signature in N: N must be a whole number of at least 1, got ${every}`);
  }

  /** Whether to verify this signature, which came over key-server connection `connection` (its serial). */
  shouldVerify(connection: number): boolean {
    const verify =
      this.every === 1 ||
      this.strictLeft > 0 ||
      this.afterFailure ||
      !this.verifiedConnections.has(connection) ||
      this.sinceVerified + 1 >= this.every;
    if (verify) {
      this.sinceVerified = 0;
      this.afterFailure = false;
      if (this.strictLeft > 0) this.strictLeft--;
      this.verifiedConnections.add(connection);
      if (this.verifiedConnections.size > REMEMBERED_CONNECTIONS) {
        this.verifiedConnections.delete(this.verifiedConnections.values().next().value!);
      }
    } else {
      this.sinceVerified++;
    }
    return verify;
  }

  /** A signature did not verify: verify all for a while. */
  badSignature(): void {
    this.strictLeft = STRICT_AFTER_BAD;
  }

  /** A signature request failed (no signature to check): verify the next one. */
  failure(): void {
    this.afterFailure = true;
  }
}
