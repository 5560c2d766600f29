/**
 * Session resumption with tickets (RFC 8446 §4.6.1, §2.2).
 *
 * Server side: tickets are self-contained, sealed with AES-256-GCM under a server ticket key
 * (share the key between server processes to resume across them; rotate it to expire all
 * tickets). Client side: `TlsSession` is what a client keeps to resume.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { randomFillPooled } from './random.js';
import { Reader, Writer } from './codec.js';
import { InternalError } from './errors.js';
import { NATIVE_AEAD_MAX_INPUT, NATIVE_ALGORITHM, nativeAead, type NativeAeadContext } from './native/aead.js';
import type { AuthenticatedPeer } from './peer-auth.js';
import type { TrustStore } from './x509/trust-store.js';

/** What a client stores to resume a session. Treat `psk` as a secret. */
export interface TlsSession {
  readonly ticket: Uint8Array;
  readonly psk: Uint8Array;
  readonly cipherSuite: number;
  readonly ageAdd: number;
  readonly lifetimeSeconds: number;
  /** Milliseconds since the epoch when the ticket arrived. */
  readonly receivedAt: number;
  readonly servername: string | undefined;
  readonly alpnProtocol: string | undefined;
}

/** Whether a client session is still usable at `now`. */
export function sessionUsable(session: TlsSession, now = Date.now()): boolean {
  return now - session.receivedAt < session.lifetimeSeconds * 1000;
}

/**
 * Who the client proved to be in the handshake that issued a ticket, and under which client
 * authentication configuration. A resumed handshake carries no certificate, so a server accepts
 * a ticket only while both still stand (ClientAuthPolicy.accepts); TLS 1.3 and TLS 1.2 tickets
 * carry the same fields.
 */
export interface TicketClientAuth {
  /** ClientAuthPolicy.digest of the server that issued the ticket. */
  readonly clientAuthConfig: Uint8Array;
  /** The client's verified end-entity certificate (DER); empty when none was verified. */
  readonly clientCertificate: Uint8Array;
  /** Milliseconds since the epoch until which that verification holds (AuthenticatedPeer.validUntil); 0 without a certificate. */
  readonly clientValidUntil: number;
}

/** The state sealed inside a ticket. */
export interface TicketState extends TicketClientAuth {
  readonly cipherSuite: number;
  readonly psk: Uint8Array;
  /** Milliseconds since the epoch when the ticket was issued. */
  readonly issuedAt: number;
  readonly ageAdd: number;
  readonly lifetimeSeconds: number;
  readonly servername: string;
  readonly alpnProtocol: string;
}

/**
 * Ticket layout: version || nonce(12) || AES-256-GCM(plaintext) || tag(16). The version byte is
 * also the first plaintext byte, so it is authenticated without additional data (setAAD is a
 * native call of its own). Version 1 sealed the version as AAD, version 2 had no client
 * authentication configuration or validity; such tickets are not accepted (a full handshake).
 */
const TICKET_VERSION = 3;
const NONCE_LENGTH = 12;
const TAG_LENGTH = 16;
const NO_AAD = new Uint8Array(0);
/** The IV the ticket contexts are made with: every ticket gives its whole nonce instead. */
const UNUSED_IV = new Uint8Array(NONCE_LENGTH);

/** A session (ticket or cache) past its lifetime at `nowMs`, or issued more than 10 s in the future (the clock went back). */
export function sessionExpired(state: TicketState, nowMs: number): boolean {
  return nowMs - state.issuedAt > state.lifetimeSeconds * 1000 || nowMs < state.issuedAt - 10_000;
}

export class TicketKey {
  private readonly key: Uint8Array;
  /**
   * The native AEAD's contexts for this key, made on first use and kept: each ticket passes its
   * own random nonce whole, so the key is expanded once per TicketKey, not once per ticket.
   */
  private sealer: NativeAeadContext | undefined;
  private opener: NativeAeadContext | undefined;

  /** `key`: 32 bytes shared by the servers that should accept each other's tickets. */
  constructor(key?: Uint8Array) {
    if (key && key.length !== 32) throw new InternalError('ticket key must be 32 bytes');
    // A copy: the native contexts are keyed on first use, so a caller refilling or wiping its
    // array later must not leave the sealer, the opener and the node:crypto path disagreeing.
    this.key = key ? Uint8Array.from(key) : randomBytes(32);
  }

  seal(state: TicketState): Uint8Array {
    // Sized for the whole plaintext: a Writer that grows leaves its first buffer, PSK included,
    // in the codec pool unwiped.
    const w = new Writer(64 + state.psk.length + state.servername.length + state.alpnProtocol.length + state.clientAuthConfig.length + state.clientCertificate.length);
    w.u8(TICKET_VERSION).u16(state.cipherSuite).opaque8(state.psk);
    w.u32(Math.floor(state.issuedAt / 0x100000000)).u32(state.issuedAt % 0x100000000);
    w.u32(state.ageAdd).u32(state.lifetimeSeconds);
    w.opaque8(Buffer.from(state.servername, 'latin1')).opaque8(Buffer.from(state.alpnProtocol, 'latin1'));
    w.opaque8(state.clientAuthConfig).opaque24(state.clientCertificate);
    w.u32(Math.floor(state.clientValidUntil / 0x100000000)).u32(state.clientValidUntil % 0x100000000);
    const plain = w.finish();

    const ticket = Buffer.allocUnsafe(1 + NONCE_LENGTH + plain.length + TAG_LENGTH);
    ticket[0] = TICKET_VERSION;
    randomFillPooled(ticket, 1, NONCE_LENGTH);
    const nonce = ticket.subarray(1, 1 + NONCE_LENGTH);
    const native = nativeAead();
    // The addon seals at most one record's worth (NATIVE_AEAD_MAX_INPUT); a ticket carrying a
    // large client certificate goes through node:crypto instead.
    if (native && plain.length <= NATIVE_AEAD_MAX_INPUT) {
      // The same AES-256-GCM bytes through the native AEAD (record.ts), on this key's context
      // with the ticket's nonce: nothing per ticket but the call, where createCipheriv costs
      // ~3.8 KB of heap (bench/results/socket-path.md).
      this.sealer ??= native.create(NATIVE_ALGORITHM['aes-256-gcm'], true, this.key, UNUSED_IV);
      native.seal(this.sealer, nonce, NO_AAD, plain, 0, plain.length, -1, ticket, 1 + NONCE_LENGTH);
    } else {
      const c = createCipheriv('aes-256-gcm', this.key, nonce);
      c.update(plain).copy(ticket, 1 + NONCE_LENGTH);
      c.final();
      c.getAuthTag().copy(ticket, 1 + NONCE_LENGTH + plain.length);
    }
    // The plaintext holds the resumption secret (TLS 1.2: the master secret) and sits in the
    // codec's shared pool, whose later messages must not carry it.
    plain.fill(0);
    return ticket;
  }

  /** The state of a ticket we issued, or undefined for anything else (never throws). */
  open(ticket: Uint8Array): TicketState | undefined {
    if (ticket.length < 1 + NONCE_LENGTH + 1 + TAG_LENGTH || ticket[0] !== TICKET_VERSION) return undefined;
    const nonce = ticket.subarray(1, 1 + NONCE_LENGTH);
    const sealedLength = ticket.length - 1 - NONCE_LENGTH;
    // It holds the PSK: zeroed once read (the old path left it in node's buffer pool).
    const plain = Buffer.allocUnsafe(sealedLength - TAG_LENGTH);
    // The node:crypto path's own output buffer holds it too, zeroed likewise.
    let decrypted: Buffer | undefined;
    try {
      const native = nativeAead();
      if (native && sealedLength <= NATIVE_AEAD_MAX_INPUT) {
        // As in seal: this key's native context and one call in place of a node:crypto
        // Decipheriv (one per resumption attempt), the tag checked by the addon.
        this.opener ??= native.create(NATIVE_ALGORITHM['aes-256-gcm'], false, this.key, UNUSED_IV);
        if (!native.open(this.opener, nonce, NO_AAD, ticket, 1 + NONCE_LENGTH, sealedLength, plain, 0)) return undefined;
      } else {
        const d = createDecipheriv('aes-256-gcm', this.key, nonce);
        d.setAuthTag(ticket.subarray(ticket.length - TAG_LENGTH));
        decrypted = d.update(ticket.subarray(1 + NONCE_LENGTH, ticket.length - TAG_LENGTH));
        decrypted.copy(plain);
        d.final();
      }
      return decodeTicketState(plain);
    } catch {
      return undefined;
    } finally {
      plain.fill(0);
      decrypted?.fill(0);
    }
  }
}

/** The plaintext of a ticket, copied out (the caller zeroes `plain`); undefined for another version. */
function decodeTicketState(plain: Uint8Array): TicketState | undefined {
  const r = new Reader(plain);
  if (r.u8() !== TICKET_VERSION) return undefined;
  const cipherSuite = r.u16();
  const psk = Uint8Array.from(r.opaque8());
  const issuedAt = r.u32() * 0x100000000 + r.u32();
  const ageAdd = r.u32();
  const lifetimeSeconds = r.u32();
  const servername = Buffer.from(r.opaque8()).toString('latin1');
  const alpnProtocol = Buffer.from(r.opaque8()).toString('latin1');
  const clientAuthConfig = Uint8Array.from(r.opaque8());
  const clientCertificate = Uint8Array.from(r.opaque24());
  const clientValidUntil = r.u32() * 0x100000000 + r.u32();
  r.expectEnd();
  return { cipherSuite, psk, issuedAt, ageAdd, lifetimeSeconds, servername, alpnProtocol, clientAuthConfig, clientCertificate, clientValidUntil };
}

/** What decides whether a server authenticates clients, as ServerOptions spells it. */
export interface ClientAuthOptions {
  readonly requestCert?: boolean;
  readonly rejectUnauthorized?: boolean;
  /** The delegated credential schemes offered to clients (PeerCredentialHooks.offer). */
  readonly delegatedCredentialOffer?: readonly number[];
  /** What else tells this server's client authentication apart (hooks are functions): ServerOptions.sessionIdContext. */
  readonly sessionIdContext?: Uint8Array;
}

/**
 * A server's client authentication, as tickets record and check it (one way for TLS 1.3 and
 * TLS 1.2). A resumed handshake skips the client's certificate, so a ticket stands for the
 * verification done when it was issued; it resumes only
 * - under the same configuration: `digest` covers requestCert, rejectUnauthorized, the trust
 *   anchors (by fingerprint, in any order), the delegated credential offer and the session id
 *   context (OpenSSL's sid_ctx; it stands for the hooks, which no digest can cover), so a ticket
 *   issued under another CA set with the same ticket key is not taken as authenticated;
 * - while that verification holds: a certificate (or its chain, or a client delegated
 *   credential) that expired since does not resume;
 * - with a certificate when one is required.
 * Otherwise the server ignores the ticket and does a full handshake (§4.2.11: it may choose no
 * PSK), which verifies the client afresh. OpenSSL's session id context and Go's resumption checks
 * (client certificates required, NotAfter) do the same.
 */
export class ClientAuthPolicy {
  readonly digest: Uint8Array;
  /** A client must present a valid certificate (requestCert with rejectUnauthorized). */
  readonly requiresCertificate: boolean;
  /** What tickets of a handshake without a verified client certificate carry. */
  private readonly unauthenticated: TicketClientAuth;

  constructor(options: ClientAuthOptions, trustStore: TrustStore | undefined) {
    const requestCert = options.requestCert === true;
    const rejectUnauthorized = options.rejectUnauthorized ?? true;
    this.requiresCertificate = requestCert && rejectUnauthorized;
    const w = new Writer(256).u8(requestCert ? 1 : 0);
    // Without requestCert the other options are not used: every such server is the same.
    if (requestCert) {
      w.u8(rejectUnauthorized ? 1 : 0);
      const anchors = (trustStore?.anchors ?? []).map((a) => a.fingerprint).sort();
      w.u16(anchors.length);
      for (const f of anchors) w.opaque8(Buffer.from(f, 'latin1'));
      const offer = options.delegatedCredentialOffer ?? [];
      w.u16(offer.length);
      for (const scheme of offer) w.u16(scheme);
      w.opaque16(options.sessionIdContext ?? new Uint8Array(0));
    }
    const encoded = w.finish();
    this.digest = createHash('sha256').update(encoded).digest();
    this.unauthenticated = { clientAuthConfig: this.digest, clientCertificate: new Uint8Array(0), clientValidUntil: 0 };
  }

  /** What a ticket issued after a full handshake carries: `peer` counts only when it verified. */
  identity(peer: Pick<AuthenticatedPeer, 'authorized' | 'chain' | 'validUntil'> | undefined): TicketClientAuth {
    if (!peer?.authorized) return this.unauthenticated;
    return { clientAuthConfig: this.digest, clientCertificate: peer.chain[0]!, clientValidUntil: peer.validUntil };
  }

  /** Whether a ticket's client authentication stands here at `nowMs` (false: do a full handshake). */
  accepts(ticket: TicketClientAuth, nowMs: number): boolean {
    if (Buffer.compare(ticket.clientAuthConfig, this.digest) !== 0) return false;
    if (ticket.clientCertificate.length === 0) return !this.requiresCertificate;
    return nowMs <= ticket.clientValidUntil;
  }
}
