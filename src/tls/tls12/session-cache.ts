/**
 * TLS 1.2 session-ID resumption (RFC 5246 §7.4.1.2, §7.3) for clients that do not take tickets
 * (`openssl s_client -no_ticket`, Java and .NET clients configured so): the server names the
 * session with a random 32-byte ID in ServerHello and keeps, in memory, what a ticket would
 * carry (the TicketState: suite, master secret, issue time, lifetime, name, ALPN and the client
 * authentication record of ../session.ts ClientAuthPolicy), never more. A ClientHello with that ID
 * resumes under exactly the checks a ticket gets (./server.ts usableSession).
 *
 * Bounded: at most `maxEntries` sessions and `maxBytes` of them (a session holding a large client
 * certificate counts its size), least recently used evicted first; a session older than its
 * lifetime is never returned and is dropped when met. One cache per ServerConfig, shared by its
 * connections; not shared between processes (tickets are, with a shared ticket key).
 */
import type { ServerConfig } from '../server.js';
import { sessionExpired, type TicketState } from '../session.js';

/** Sessions kept per server (OpenSSL's default cache holds 20480). */
export const SESSION_CACHE_MAX_ENTRIES = 20_480;
/** Bytes of sessions kept per server, client certificates included. */
export const SESSION_CACHE_MAX_BYTES = 16 * 1024 * 1024;
/** What a session costs besides its certificate: the master secret, names, the Map entry. */
const ENTRY_OVERHEAD = 256;
/** A ticket is opaque<0..2^16-1> (RFC 5077 §3.3): a session that would not fit in one is not kept either. */
const MAX_SESSION_BYTES = 0xffff;

export const SESSION_ID_LENGTH = 32;
/** Expired sessions looked at per put or get (bounded work per handshake). */
const SWEEP_PER_CALL = 4;


export interface SessionCacheLimits {
  readonly maxEntries: number;
  readonly maxBytes: number;
}

export class SessionCache {
  /** By ID (latin1 string of the 32 bytes); Map order is use order, least recent first. */
  private readonly sessions = new Map<string, { readonly state: TicketState; readonly bytes: number }>();
  private bytes = 0;

  constructor(private readonly limits: SessionCacheLimits = { maxEntries: SESSION_CACHE_MAX_ENTRIES, maxBytes: SESSION_CACHE_MAX_BYTES }) {}

  get size(): number {
    return this.sessions.size;
  }

  /** Keeps `state` under `id` (its own copy of the master secret); false when it is too large to keep. */
  put(id: Uint8Array, state: TicketState): boolean {
    const bytes = ENTRY_OVERHEAD + state.psk.length + state.servername.length + state.alpnProtocol.length + state.clientAuthConfig.length + state.clientCertificate.length;
    if (bytes > MAX_SESSION_BYTES || id.length !== SESSION_ID_LENGTH) return false;
    const key = Buffer.from(id).toString('latin1');
    this.remove(key);
    // Copies of the secret and of the certificate: the certificate the connection holds is a view
    // into what it received (a whole read or Certificate message, up to 256 KiB), which a cached
    // view would keep alive uncounted.
    this.sessions.set(key, { state: { ...state, psk: Uint8Array.from(state.psk), clientCertificate: Uint8Array.from(state.clientCertificate) }, bytes });
    this.bytes += bytes;
    this.sweep(state.issuedAt);
    for (const oldest of this.sessions.keys()) {
      if (this.sessions.size <= this.limits.maxEntries && this.bytes <= this.limits.maxBytes) break;
      this.remove(oldest);
    }
    return true;
  }

  /** A copy of the session named `id`, unless it expired at `nowMs` (then it is dropped); it becomes the most recent. */
  get(id: Uint8Array, nowMs: number): TicketState | undefined {
    if (id.length !== SESSION_ID_LENGTH) return undefined;
    const key = Buffer.from(id).toString('latin1');
    const entry = this.sessions.get(key);
    if (!entry) return undefined;
    const { state } = entry;
    if (sessionExpired(state, nowMs)) {
      this.remove(key);
      return undefined;
    }
    this.sessions.delete(key);
    this.sessions.set(key, entry);
    this.sweep(nowMs);
    // Copies: the cache wipes its own secret when the session leaves, and no connection can
    // change the certificate later resumptions report.
    return { ...state, psk: Uint8Array.from(state.psk), clientCertificate: Uint8Array.from(state.clientCertificate) };
  }

  /**
   * Drops expired sessions from the least recently used end, a few per call: their master
   * secrets are wiped soon after they expire on a server that keeps getting handshakes, not only
   * when a client happens to present their ID or the cache fills.
   */
  private sweep(nowMs: number): void {
    let checked = 0;
    for (const [key, entry] of this.sessions) {
      if (checked++ === SWEEP_PER_CALL || !sessionExpired(entry.state, nowMs)) break;
      this.remove(key);
    }
  }

  /** Forgets the session named `id` (its secret wiped): its connection failed (RFC 5246 §7.2.2). */
  delete(id: Uint8Array): void {
    if (id.length === SESSION_ID_LENGTH) this.remove(Buffer.from(id).toString('latin1'));
  }

  private remove(key: string): void {
    const entry = this.sessions.get(key);
    if (!entry) return;
    this.sessions.delete(key);
    this.bytes -= entry.bytes;
    entry.state.psk.fill(0);
  }
}

const caches = new WeakMap<ServerConfig, SessionCache>();

/**
 * The session cache of `config`, or undefined where session IDs do not resume: resumption off
 * (sessionTickets 0), or custom clientCredentialHooks without a sessionIdContext (the hooks
 * decide who a client is and cannot be compared; the ticket rule of ../server.ts sessionIdContext).
 */
export function sessionCacheOf(config: ServerConfig): SessionCache | undefined {
  if (config.sessionTickets === 0) return undefined;
  if (config.options.clientCredentialHooks && config.options.sessionIdContext === undefined) return undefined;
  let cache = caches.get(config);
  if (!cache) {
    cache = new SessionCache();
    caches.set(config, cache);
  }
  return cache;
}
