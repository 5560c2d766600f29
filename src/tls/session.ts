/**
 * Session resumption with tickets (RFC 8446 §4.6.1, §2.2).
 *
 * Server side: tickets are self-contained, sealed with AES-256-GCM under a server ticket key
 * (share the key between server processes to resume across them; rotate it to expire all
 * tickets). Client side: `TlsSession` is what a client keeps to resume.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { randomFillPooled } from './random.js';
import { Writer } from './codec.js';
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
 * native call of its own). Tickets of an older version (1: the version sealed as AAD; 2: no
 * client authentication; 3: the same fields in TLS-style vectors, each length before its bytes)
 * are not accepted: the client gets a full handshake.
 *
 * Version 4's plaintext is one fixed header, then the variable fields back to back, so that
 * sealing writes straight into the ticket and opening reads with one bounds check (the sum of
 * the header's lengths must be the plaintext's length):
 *
 *     version u8, cipher suite u16, issued at u64 (ms), age_add u32, lifetime u32 (s),
 *     client valid until u64 (ms), PSK length u8, server name length u8, ALPN length u8,
 *     client auth config length u8, client certificate length u24        (HEADER_LENGTH bytes)
 *     PSK, server name (latin1), ALPN protocol (latin1), client auth config, client certificate
 */
const TICKET_VERSION = 4;
const NONCE_LENGTH = 12;
const TAG_LENGTH = 16;
/**
 * The longest server name a ticket carries (one length byte). A DNS name is at most 253; a client
 * may still send a longer host_name (RFC 6066 allows 2^16-1), and then gets no ticket: a full
 * handshake next time, not an error after its Finished.
 */
export const MAX_TICKET_SERVER_NAME = 0xff;

const HEADER_LENGTH = 1 + 2 + 8 + 4 + 4 + 8 + 1 + 1 + 1 + 1 + 3;
/** Where the plaintext starts in a ticket. */
const PLAIN_AT = 1 + NONCE_LENGTH;
const NO_AAD = new Uint8Array(0);
const NO_BYTES = new Uint8Array(0);
/** The IV the ticket contexts are made with: every ticket gives its whole nonce instead. */
const UNUSED_IV = new Uint8Array(NONCE_LENGTH);
/**
 * Where opened plaintexts are decoded, shared by every TicketKey of the process (opening is
 * synchronous) and zeroed after each use: it holds the PSK. A ticket carrying a client
 * certificate larger than this gets a buffer of its own, zeroed likewise.
 */
const OPEN_SCRATCH = Buffer.allocUnsafeSlow(1024).fill(0);

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
    const { psk, servername, alpnProtocol, clientAuthConfig, clientCertificate } = state;
    fieldFits(psk.length, 0xff, 'PSK');
    fieldFits(servername.length, MAX_TICKET_SERVER_NAME, 'server name');
    fieldFits(alpnProtocol.length, 0xff, 'ALPN protocol');
    fieldFits(clientAuthConfig.length, 0xff, 'client auth config');
    fieldFits(clientCertificate.length, 0xffffff, 'client certificate');
    const plainLength = HEADER_LENGTH + psk.length + servername.length + alpnProtocol.length + clientAuthConfig.length + clientCertificate.length;
    // The plaintext is written where its ciphertext goes and sealed in place: the PSK is in no
    // other buffer, and the ticket is the only allocation.
    const ticket = Buffer.allocUnsafe(PLAIN_AT + plainLength + TAG_LENGTH);
    ticket[0] = TICKET_VERSION;
    randomFillPooled(ticket, 1, NONCE_LENGTH);
    try {
      let at = PLAIN_AT;
      ticket[at++] = TICKET_VERSION;
      at = writeUint(ticket, at, state.cipherSuite, 2);
      at = writeU64(ticket, at, state.issuedAt);
      at = writeUint(ticket, at, state.ageAdd, 4);
      at = writeUint(ticket, at, state.lifetimeSeconds, 4);
      at = writeU64(ticket, at, state.clientValidUntil);
      ticket[at++] = psk.length;
      ticket[at++] = servername.length;
      ticket[at++] = alpnProtocol.length;
      ticket[at++] = clientAuthConfig.length;
      at = writeUint(ticket, at, clientCertificate.length, 3);
      ticket.set(psk, at);
      at += psk.length;
      at += ticket.write(servername, at, 'latin1');
      at += ticket.write(alpnProtocol, at, 'latin1');
      ticket.set(clientAuthConfig, at);
      ticket.set(clientCertificate, at + clientAuthConfig.length);
      const nonce = ticket.subarray(1, PLAIN_AT);
      const native = nativeAead();
      // The addon seals at most one record's worth (NATIVE_AEAD_MAX_INPUT); a ticket carrying a
      // large client certificate goes through node:crypto instead.
      if (native && plainLength <= NATIVE_AEAD_MAX_INPUT) {
        // The same AES-256-GCM bytes through the native AEAD (record.ts), on this key's context
        // with the ticket's nonce: nothing per ticket but the call, where createCipheriv costs
        // ~3.8 KB of heap (bench/results/socket-path.md).
        this.sealer ??= native.create(NATIVE_ALGORITHM['aes-256-gcm'], true, this.key, UNUSED_IV);
        native.seal(this.sealer, nonce, NO_AAD, ticket, PLAIN_AT, plainLength, -1, ticket, PLAIN_AT);
      } else {
        const c = createCipheriv('aes-256-gcm', this.key, nonce);
        c.update(ticket.subarray(PLAIN_AT, PLAIN_AT + plainLength)).copy(ticket, PLAIN_AT);
        c.final();
        c.getAuthTag().copy(ticket, PLAIN_AT + plainLength);
      }
    } catch (e) {
      // Whatever failed, the plaintext (PSK included) does not stay in node's Buffer pool.
      ticket.fill(0);
      throw e;
    }
    return ticket;
  }

  /** The state of a ticket we issued, or undefined for anything else (never throws). */
  open(ticket: Uint8Array): TicketState | undefined {
    if (ticket.length < PLAIN_AT + HEADER_LENGTH + TAG_LENGTH || ticket[0] !== TICKET_VERSION) return undefined;
    const nonce = ticket.subarray(1, PLAIN_AT);
    const sealedLength = ticket.length - PLAIN_AT;
    const plainLength = sealedLength - TAG_LENGTH;
    // It holds the PSK: zeroed once read.
    const plain = plainLength <= OPEN_SCRATCH.length ? OPEN_SCRATCH : Buffer.allocUnsafe(plainLength);
    // The node:crypto path's own output buffer holds it too, zeroed likewise.
    let decrypted: Buffer | undefined;
    try {
      const native = nativeAead();
      if (native && sealedLength <= NATIVE_AEAD_MAX_INPUT) {
        // As in seal: this key's native context and one call in place of a node:crypto
        // Decipheriv (one per resumption attempt), the tag checked by the addon.
        this.opener ??= native.create(NATIVE_ALGORITHM['aes-256-gcm'], false, this.key, UNUSED_IV);
        if (!native.open(this.opener, nonce, NO_AAD, ticket, PLAIN_AT, sealedLength, plain, 0)) return undefined;
      } else {
        const d = createDecipheriv('aes-256-gcm', this.key, nonce);
        d.setAuthTag(ticket.subarray(ticket.length - TAG_LENGTH));
        decrypted = d.update(ticket.subarray(PLAIN_AT, ticket.length - TAG_LENGTH));
        decrypted.copy(plain);
        d.final();
      }
      return decodeTicketState(plain, plainLength);
    } catch {
      return undefined;
    } finally {
      plain.fill(0, 0, plainLength);
      decrypted?.fill(0);
    }
  }
}

function fieldFits(length: number, max: number, what: string): void {
  if (length > max) throw new InternalError(`ticket ${what} of ${length} bytes exceeds ${max}`);
}

/** Writes `v` (an integer of at most `bytes` bytes) big-endian at `at`; returns the end. */
function writeUint(out: Uint8Array, at: number, v: number, bytes: number): number {
  if (!Number.isInteger(v) || v < 0 || v >= 2 ** (8 * bytes)) throw new InternalError(`ticket field out of range: ${v}`);
  for (let i = bytes - 1; i >= 0; i--) {
    out[at + i] = v & 0xff;
    v = Math.floor(v / 256);
  }
  return at + bytes;
}

/** A millisecond time (a non-negative integer below 2^53) as a u64. */
function writeU64(out: Uint8Array, at: number, v: number): number {
  if (!Number.isSafeInteger(v) || v < 0) throw new InternalError(`ticket time out of range: ${v}`);
  writeUint(out, at, Math.floor(v / 0x100000000), 4);
  return writeUint(out, at + 4, v % 0x100000000, 4);
}

/** A copy of `n` bytes of `b` at `at` (no intermediate view). */
function copyOut(b: Uint8Array, at: number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  if (n > 64) out.set(b.subarray(at, at + n));
  else for (let i = 0; i < n; i++) out[i] = b[at + i]!;
  return out;
}

function readUint(b: Uint8Array, at: number, bytes: number): number {
  let v = 0;
  for (let i = 0; i < bytes; i++) v = v * 256 + b[at + i]!;
  return v;
}

/**
 * The first `length` bytes of `plain` as a ticket state, the secret and the byte fields copied
 * out (the caller zeroes `plain`); undefined for another version or a length that does not add
 * up. Authenticated bytes only reach here, but it is bounded on its own all the same.
 */
function decodeTicketState(plain: Buffer, length: number): TicketState | undefined {
  if (length < HEADER_LENGTH || plain[0] !== TICKET_VERSION) return undefined;
  const pskLength = plain[27]!;
  const servernameLength = plain[28]!;
  const alpnLength = plain[29]!;
  const authLength = plain[30]!;
  const certificateLength = readUint(plain, 31, 3);
  if (HEADER_LENGTH + pskLength + servernameLength + alpnLength + authLength + certificateLength !== length) return undefined;
  let at = HEADER_LENGTH;
  const psk = copyOut(plain, at, pskLength);
  const servername = plain.toString('latin1', (at += pskLength), (at += servernameLength));
  const alpnProtocol = alpnLength === 0 ? '' : plain.toString('latin1', at, (at += alpnLength));
  const clientAuthConfig = copyOut(plain, at, authLength);
  at += authLength;
  return {
    cipherSuite: readUint(plain, 1, 2),
    psk,
    issuedAt: readUint(plain, 3, 4) * 0x100000000 + readUint(plain, 7, 4),
    ageAdd: readUint(plain, 11, 4),
    lifetimeSeconds: readUint(plain, 15, 4),
    servername,
    alpnProtocol,
    clientAuthConfig,
    clientCertificate: certificateLength === 0 ? NO_BYTES : copyOut(plain, at, certificateLength),
    clientValidUntil: readUint(plain, 19, 4) * 0x100000000 + readUint(plain, 23, 4),
  };
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
