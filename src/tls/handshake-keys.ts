/**
 * The TLS 1.3 key schedule of one handshake as server and client walk it (RFC 8446 §7.1): one
 * named object per point of the handshake, held by the handshake state in place of loose secrets.
 *
 *   ServerHello      -> HandshakeKeys:   handshake traffic secrets; Finished of both sides
 *   server Finished  -> ApplicationKeys: application traffic secrets, exporter master secret
 *   client Finished  -> ApplicationKeys.resumptionMasterSecret
 *
 * The derivations themselves are the stage classes of key-schedule.ts; this module says when
 * each is made. Both sides derive in the same order.
 */
import { InternalError } from './errors.js';
import { EarlySecret, SecretBlock, finishedVerifyData, type HandshakeSecret, type MasterSecret } from './key-schedule.js';
import type { SuiteParams } from './suites.js';

/**
 * Secrets a full handshake derives through these classes: handshake secret, two handshake
 * traffic secrets, two Finished keys and verify_data, "derived" and the master secret, two
 * application traffic secrets, the exporter and resumption master secrets: 13. A PSK handshake
 * takes two more (the early secret and "derived" from it) and is counted in, so that one block
 * holds every handshake's secrets (a resumed one took a second block when this was 12).
 */
const SECRETS_PER_HANDSHAKE = 15;
/** A server's resumption also keeps its binder's three (binder key, its finished key, the binder) in the block. */
const PSK_BINDER_SECRETS = 3;

/**
 * At the server's ClientHello, for one offered resumption PSK: its early secret and binder. When
 * the binder verifies, the handshake keys go on from this early secret (HandshakeKeys), in the
 * same block: the PSK is extracted once per handshake, not once for the binder and again after.
 */
export class PskEarlyKeys {
  /** Where every secret of the handshake is kept, from the early secret on. */
  readonly into: SecretBlock;
  readonly early: EarlySecret;

  constructor(
    readonly suite: SuiteParams,
    psk: Uint8Array,
  ) {
    this.into = new SecretBlock((SECRETS_PER_HANDSHAKE + PSK_BINDER_SECRETS) * suite.hashLength);
    this.early = new EarlySecret(suite, psk, this.into);
  }

  /** The binder for this PSK (§4.2.11.2): `truncatedHelloHash` covers the ClientHello up to its binders. */
  binder(truncatedHelloHash: Uint8Array): Uint8Array {
    const binderKey = this.early.binderKey('resumption');
    const binder = finishedVerifyData(this.suite, binderKey, truncatedHelloHash, this.into);
    binderKey.fill(0);
    return binder;
  }

  /**
   * A PSK not taken (its binder failed, or it is not used), or a handshake that ends before its
   * handshake keys are made from it: its secrets are zeroed.
   */
  discard(): void {
    this.into.wipeExcept([]);
    this.early.secret.fill(0);
  }
}

/** From ServerHello on: the handshake traffic secrets and what the handshake secret still yields. */
export class HandshakeKeys {
  /** client_handshake_traffic_secret: protects the client's flight, keys its Finished. */
  readonly clientTrafficSecret: Uint8Array;
  /** server_handshake_traffic_secret: protects the server's flight, keys its Finished. */
  readonly serverTrafficSecret: Uint8Array;
  private readonly secret: HandshakeSecret;
  /** Where every secret of this handshake is kept (key-schedule.ts, SecretBlock). */
  private readonly into: SecretBlock;

  /**
   * `psk`: the resumption PSK, if one was accepted (a server passes the PskEarlyKeys whose binder
   * it verified); `sharedSecret`: the (EC)DHE secret, zeroed here once the handshake secret is
   * extracted from it; `helloHash`: the transcript hash of ClientHello...ServerHello.
   */
  constructor(
    readonly suite: SuiteParams,
    psk: Uint8Array | PskEarlyKeys | undefined,
    sharedSecret: Uint8Array,
    helloHash: Uint8Array,
  ) {
    let early: EarlySecret;
    if (psk instanceof PskEarlyKeys) {
      this.into = psk.into;
      early = psk.early;
    } else {
      this.into = new SecretBlock(SECRETS_PER_HANDSHAKE * suite.hashLength);
      early = new EarlySecret(suite, psk, this.into);
    }
    this.secret = early.handshake(sharedSecret);
    sharedSecret.fill(0);
    // From here the handshake secret is all that the PSK's stage yields that is still needed (we
    // take no 0-RTT): its early secret is zeroed now, not when the handshake is retired, so a
    // handshake that ends on the way leaves none. Without a PSK it is a shared constant.
    if (psk !== undefined) early.secret.fill(0);
    [this.clientTrafficSecret, this.serverTrafficSecret] = this.secret.handshakeTrafficSecrets(helloHash);
  }

  /** verify_data of the server's Finished (§4.4.4), over ClientHello...server CertificateVerify. */
  serverFinished(transcriptHash: Uint8Array): Uint8Array {
    return finishedVerifyData(this.suite, this.serverTrafficSecret, transcriptHash, this.into);
  }

  /** verify_data of the client's Finished (§4.4.4), over ClientHello...client CertificateVerify. */
  clientFinished(transcriptHash: Uint8Array): Uint8Array {
    return finishedVerifyData(this.suite, this.clientTrafficSecret, transcriptHash, this.into);
  }

  /** The next stage, at the server's Finished: `transcriptHash` covers ClientHello...server Finished. */
  application(transcriptHash: Uint8Array): ApplicationKeys {
    return new ApplicationKeys(this.secret.master(), transcriptHash, this);
  }

  /** Zeroes what this stage holds outside the block (node:crypto's path gives each secret its own buffer). */
  wipe(keep: readonly Uint8Array[]): void {
    this.into.wipeExcept(keep);
    this.secret.secret.fill(0);
    this.clientTrafficSecret.fill(0);
    this.serverTrafficSecret.fill(0);
  }
}

/** From the server's Finished on: the application traffic secrets, the exporter, resumption. */
export class ApplicationKeys {
  /** client_application_traffic_secret_0. */
  readonly clientTrafficSecret: Uint8Array;
  /** server_application_traffic_secret_0. */
  readonly serverTrafficSecret: Uint8Array;
  private exporter: Uint8Array | undefined;
  private retired = false;

  constructor(
    private readonly master: MasterSecret,
    /** ClientHello...server Finished: also the context of the exporter master secret. */
    private readonly serverFinishedHash: Uint8Array,
    /** The stage before, whose secrets `retire` erases. */
    private readonly handshake: HandshakeKeys,
  ) {
    [this.clientTrafficSecret, this.serverTrafficSecret] = master.applicationTrafficSecrets(serverFinishedHash);
  }

  /** exporter_master_secret: derived on first use until `retire`, which derives it if no one had. */
  exporterMasterSecret(): Uint8Array {
    return (this.exporter ??= this.master.exporterMasterSecret(this.serverFinishedHash));
  }

  /** resumption_master_secret, at the client's Finished: `transcriptHash` covers ClientHello...client Finished. */
  resumptionMasterSecret(transcriptHash: Uint8Array): Uint8Array {
    if (this.retired) throw new InternalError('resumption_master_secret asked for after the handshake secrets were erased');
    return this.master.resumptionMasterSecret(transcriptHash);
  }

  /**
   * The handshake is over: every secret it derived is zeroed except the two application traffic
   * secrets (KeyUpdate derives from them), the exporter master secret (derived now, ~1 us) and
   * `keep` (the resumption master secret while tickets still need it). What a later memory
   * disclosure yields is then what the connection still uses, not the handshake and master
   * secrets behind every key of the connection (docs/architecture.md, "Secrets in memory").
   */
  retire(keep?: Uint8Array): void {
    if (this.retired) return;
    const exporter = this.exporterMasterSecret();
    const kept = keep === undefined ? [this.clientTrafficSecret, this.serverTrafficSecret, exporter] : [this.clientTrafficSecret, this.serverTrafficSecret, exporter, keep];
    this.handshake.wipe(kept);
    this.master.secret.fill(0);
    this.retired = true;
  }
}
