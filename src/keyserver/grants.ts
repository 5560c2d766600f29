// Who may sign with which key: each sidecar identity is granted exactly the key of the
// certificate its DelegatedCredential references, and nothing else. The table is also the key
// server's key store (KeyLookup): a key is held only while some identity is granted it, so a
// revoked grant drops the key from memory with its last user.
import type { KeyLookup, SigningKey } from '../keyless/keystore.js';

export interface Grant {
  /** The key (its skiHex names it). */
  readonly key: SigningKey;
  /** Where it came from, for the log: `tls.key of Secret shop/www-tls`; never the key. */
  readonly source: string;
  /** The UID of the DelegatedCredential granted it: a client certificate must name it (undefined: not checked). */
  readonly uid?: string;
  /** Its `metadata.creationTimestamp` (ms): a certificate naming no UID is served only if issued after it. */
  readonly createdAt?: number;
}

export class KeyGrants implements KeyLookup {
  private readonly byIdentity = new Map<string, Grant>();
  /** SKI → how many identities hold it, and one SigningKey for it. */
  private readonly bySki = new Map<string, { key: SigningKey; users: number }>();

  /** Grants `identity` exactly `grant.key`, replacing what it had. */
  set(identity: string, grant: Grant): void {
    this.delete(identity);
    this.byIdentity.set(identity, grant);
    const entry = this.bySki.get(grant.key.skiHex);
    if (entry) entry.users++;
    else this.bySki.set(grant.key.skiHex, { key: grant.key, users: 1 });
  }

  /** Revokes whatever `identity` had; true when it had something. */
  delete(identity: string): boolean {
    const old = this.byIdentity.get(identity);
    if (old === undefined) return false;
    this.byIdentity.delete(identity);
    const entry = this.bySki.get(old.key.skiHex);
    if (entry && --entry.users <= 0) this.bySki.delete(old.key.skiHex);
    return true;
  }

  grantOf(identity: string): Grant | undefined {
    return this.byIdentity.get(identity);
  }

  /** Whether `identity` may sign with the key `skiHex`: deny unless granted exactly that key. */
  allows(identity: string, skiHex: string | undefined): boolean {
    return skiHex !== undefined && this.byIdentity.get(identity)?.key.skiHex === skiHex;
  }

  identities(): string[] {
    return [...this.byIdentity.keys()];
  }

  // ---- KeyLookup

  get(skiHex: string): SigningKey | undefined {
    return this.bySki.get(skiHex)?.key;
  }

  get size(): number {
    return this.bySki.size;
  }

  /** The SKIs held (tests, the signing workers' retainOnly). */
  skis(): string[] {
    return [...this.bySki.keys()];
  }
}
