/**
 * Session resumption with tickets (RFC 8446 §4.6.1, §2.2).
 *
 * Server side: tickets are self-contained, sealed with AES-256-GCM under a server ticket key
 * (share the key between server processes to resume across them; rotate it to expire all
 * tickets). Client side: `TlsSession` is what a client keeps to resume.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { randomBytesPooled } from './random.js';
import { Reader, Writer } from './codec.js';
import { InternalError } from './errors.js';

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

const TICKET_VERSION = 1;

export class TicketKey {
  private readonly key: Uint8Array;

  /** `key`: 32 bytes shared by the servers that should accept each other's tickets. */
  constructor(key?: Uint8Array) {
    if (key && key.length !== 32) throw new InternalError('ticket key must be 32 bytes');
    this.key = key ?? randomBytes(32);
  }

  seal(state: TicketState): Uint8Array {
    const w = new Writer(128);
    w.u16(state.cipherSuite).opaque8(state.psk);
    w.u32(Math.floor(state.issuedAt / 0x100000000)).u32(state.issuedAt % 0x100000000);
    w.u32(state.ageAdd).u32(state.lifetimeSeconds);
    w.opaque8(Buffer.from(state.servername, 'latin1')).opaque8(Buffer.from(state.alpnProtocol, 'latin1'));
    w.opaque24(state.clientCertificate);
    const nonce = randomBytesPooled(12);
    const c = createCipheriv('aes-256-gcm', this.key, nonce);
    const head = Uint8Array.of(TICKET_VERSION);
    c.setAAD(head);
    const body = Buffer.concat([c.update(w.finish()), c.final()]);
    return Buffer.concat([head, nonce, body, c.getAuthTag()]);
  }

  /** The state of a ticket we issued, or undefined for anything else (never throws). */
  open(ticket: Uint8Array): TicketState | undefined {
    if (ticket.length < 1 + 12 + 16 || ticket[0] !== TICKET_VERSION) return undefined;
    try {
      const d = createDecipheriv('aes-256-gcm', this.key, ticket.subarray(1, 13));
      d.setAAD(ticket.subarray(0, 1));
      d.setAuthTag(ticket.subarray(ticket.length - 16));
      const plain = Buffer.concat([d.update(ticket.subarray(13, ticket.length - 16)), d.final()]);
      const r = new Reader(plain);
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
