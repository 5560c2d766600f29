/**
 * TLS 1.2 renegotiation, refused on both sides: we never renegotiate (RFC 5746 secures it, but
 * no one we serve needs it, and it is a handshake's CPU on demand for the peer).
 *
 * The refusal is the no_renegotiation alert, which "is always a warning" (RFC 5246 §7.2.2; RFC
 * 5746 §4.2 repeats it): the server answers a ClientHello after the handshake with it, the client
 * a HelloRequest, and the connection carries on (OpenSSL's server does the same). The peer
 * decides whether to go on without renegotiating (OpenSSL ends the connection with
 * handshake_failure). A peer that keeps asking after MAX_REFUSED_RENEGOTIATIONS refusals is not
 * going to stop: the next request ends the connection with a fatal handshake_failure, so a peer
 * cannot keep us answering (each request costs it a message; nothing is buffered between them).
 */
import { AlertDescription } from '../alerts.js';
import type { HandshakeHost } from '../connection.js';
import { PeerMisbehaved } from '../errors.js';

/**
 * Renegotiation requests one connection gets a warning for. A legitimate peer asks once and
 * accepts the refusal (or ends the connection itself); 3 leaves room for one that asks again on
 * a schedule (a server re-requesting a client certificate), and stops a loop within a few
 * messages.
 */
export const MAX_REFUSED_RENEGOTIATIONS = 3;

/** Counts one connection's refused renegotiation requests and answers each. */
export class RenegotiationRefusal {
  private refused = 0;

  constructor(private readonly host: HandshakeHost) {}

  /** `request` names what arrived, for the error once the peer asked too often. */
  refuse(request: string): void {
    if (++this.refused > MAX_REFUSED_RENEGOTIATIONS) {
      throw new PeerMisbehaved('TooManyRenegotiationRequests', `${request} after ${MAX_REFUSED_RENEGOTIATIONS} refused renegotiations (TLS 1.2 renegotiation is not supported)`);
    }
    this.host.warn(AlertDescription.no_renegotiation);
  }
}
