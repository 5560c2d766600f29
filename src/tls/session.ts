/**
 * Session resumption with tickets (RFC 8446 §4.6.1, §2.2).
 *
 * Server side: tickets are self-contained, sealed with AES-256-GCM under a server ticket key
 * (share the key between server processes to resume across them; rotate it to expire all
 * tickets). Client side: `TlsSession` is what a client keeps to resume.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { randomFillPooled } from './random.js';
import { Reader, Writer } from './codec.js';
import { InternalError } from './errors.js';
import { NATIVE_AEAD_MAX_INPUT, NATIVE_ALGORITHM, nativeAead } from './native/aead.js';

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

/** The state sealed inside a ticket. */
export interface TicketState {
  readonly cipherSuite: number;
  readonly psk: Uint8Array;
  /** Milliseconds since the epoch when the ticket was issued. */
  readonly issuedAt: number;
  readonly ageAdd: number;
  readonly lifetimeSeconds: number;
  readonly servername: string;
  readonly alpnProtocol: string;
  /** The client's certificate chain when the original handshake authenticated one (leaf only). */
  readonly clientCertificate: Uint8Array;
}

/**
 * Ticket layout: version || nonce(12) || AES-256-GCM(plaintext) || tag(16). The version byte is
 * also the first plaintext byte, so it is authenticated without additional data (setAAD is a
 * native call of its own). Version 1 sealed the version as AAD; such tickets are not accepted.
 */
const TICKET_VERSION = 2;
const NONCE_LENGTH = 12;
const TAG_LENGTH = 16;
const NO_AAD = new Uint8Array(0);

export class TicketKey {
  private readonly key: Uint8Array;

  /** `key`: 32 bytes shared by the servers that should accept each other's tickets. */
  constructor(key?: Uint8Array) {
    if (key && key.length !== 32) throw new InternalError('ticket key must be 32 bytes');
    this.key = key ?? randomBytes(32);
  }

  seal(state: TicketState): Uint8Array {
    const w = new Writer(128);
    w.u8(TICKET_VERSION).u16(state.cipherSuite).opaque8(state.psk);
    w.u32(Math.floor(state.issuedAt / 0x100000000)).u32(state.issuedAt % 0x100000000);
    w.u32(state.ageAdd).u32(state.lifetimeSeconds);
    w.opaque8(Buffer.from(state.servername, 'latin1')).opaque8(Buffer.from(state.alpnProtocol, 'latin1'));
    w.opaque24(state.clientCertificate);
    const plain = w.finish();

    const ticket = Buffer.allocUnsafe(1 + NONCE_LENGTH + plain.length + TAG_LENGTH);
    ticket[0] = TICKET_VERSION;
    randomFillPooled(ticket, 1, NONCE_LENGTH);
    const nonce = ticket.subarray(1, 1 + NONCE_LENGTH);
    const native = nativeAead();
    // The addon seals at most one record's worth (NATIVE_AEAD_MAX_INPUT); a ticket carrying a
    // large client certificate goes through node:crypto instead.
    if (native && plain.length <= NATIVE_AEAD_MAX_INPUT) {
      // The same AES-256-GCM bytes through the native AEAD (record.ts): a context for this
      // ticket's nonce (sequence 0 leaves the IV as it is) costs ~0.3 KB of heap where
      // createCipheriv costs ~3.8 KB, one ticket per handshake (bench/results/socket-path.md).
      native.seal(native.create(NATIVE_ALGORITHM['aes-256-gcm'], true, this.key, nonce), 0, NO_AAD, plain, 0, plain.length, -1, ticket, 1 + NONCE_LENGTH);
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
    try {
      const d = createDecipheriv('aes-256-gcm', this.key, ticket.subarray(1, 1 + NONCE_LENGTH));
      d.setAuthTag(ticket.subarray(ticket.length - TAG_LENGTH));
      const plain = Buffer.concat([d.update(ticket.subarray(1 + NONCE_LENGTH, ticket.length - TAG_LENGTH)), d.final()]);
      const r = new Reader(plain);
      if (r.u8() !== TICKET_VERSION) return undefined;
      const cipherSuite = r.u16();
      const psk = Uint8Array.from(r.opaque8());
      const issuedAt = r.u32() * 0x100000000 + r.u32();
      const ageAdd = r.u32();
      const lifetimeSeconds = r.u32();
      const servername = Buffer.from(r.opaque8()).toString('latin1');
      const alpnProtocol = Buffer.from(r.opaque8()).toString('latin1');
      const clientCertificate = Uint8Array.from(r.opaque24());
      r.expectEnd();
      return { cipherSuite, psk, issuedAt, ageAdd, lifetimeSeconds, servername, alpnProtocol, clientCertificate };
    } catch {
      return undefined;
    }
  }
}
