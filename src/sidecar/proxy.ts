/**
 * The plaintext leg: bytes between a terminated client stream and the application on
 * 127.0.0.1:<upstream>.
 *
 * - Half-close both ways: when one side ends its writing, the other side's writable is ended
 *   and the reverse direction keeps flowing until it ends too. Nothing is destroyed on a
 *   half-close; both sockets are allowHalfOpen.
 * - Backpressure: the source is paused when the destination's buffer is full and resumed on
 *   'drain', so a slow reader never makes the sidecar buffer without bound.
 * - Idle timeout: no bytes either way for `idleTimeoutMs` closes both sides; after the
 *   application closed, a client that took none of what is still queued for it for that long is
 *   closed too.
 * - Errors on either side destroy both (a reset on one leg is passed on as a close on the other).
 *
 * This is the node:tls engine's relay (its client is a TLSSocket). Our engine's connections relay
 * in their connection object (connection.ts), by the same rules.
 *
 * The connection limits and the graceful drain on SIGTERM are src/net/connection-tracker.ts.
 */
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { unpinned } from '../tls/native/aead.js';

export interface UpstreamOptions {
  readonly host: string;
  readonly port: number;
  /** Deadline for the TCP connect to the application (default 5 s). */
  readonly connectTimeoutMs?: number;
  /** No traffic either way for this long closes the pair (default 5 min; 0 disables). */
  readonly idleTimeoutMs?: number;
}

export type ProxyEnd =
  | { readonly kind: 'closed' }
  | { readonly kind: 'idle-timeout' }
  | { readonly kind: 'upstream-unavailable'; readonly error: Error }
  | { readonly kind: 'error'; readonly side: 'client' | 'upstream'; readonly error: Error };

/**
 * Where every upstream read of our engine's connections lands (connection.ts): a read is sealed
 * and handed on before the next read of any socket can start, so one buffer serves the process.
 */
export const UPSTREAM_READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

/**
 * Opens a connection to the application; resolves once connected. The connect deadline is the
 * socket's own timeout, which the caller then sets to what it needs (splice: the idle timeout).
 */
export function connectUpstream(options: UpstreamOptions): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: options.host, port: options.port, allowHalfOpen: true });
    socket.setNoDelay(true);
    const ms = options.connectTimeoutMs ?? 5000;
    socket.setTimeout(ms);
    const timedOut = (): void => {
      socket.destroy(new Error(`connect to ${options.host}:${options.port} timed out after ${ms} ms`));
    };
    socket.once('timeout', timedOut);
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.removeListener('error', reject);
      socket.removeListener('timeout', timedOut);
      resolve(socket);
    });
  });
}

/** Ends of a pair that ended by itself (most pairs): shared, nothing allocated per connection. */
export const CLOSED: ProxyEnd = { kind: 'closed' };
export const IDLE: ProxyEnd = { kind: 'idle-timeout' };

/**
 * When `closed` is closed for good, nothing more can reach it: once `other` has flushed what it
 * still had to write (its 'finish'), close it too. Without this a client that half-closed and
 * left would keep an application connection open until the idle timeout. A side that closed
 * abruptly (its readable never ended: reset, destroyed) ends the pair now.
 */
function closeAfterFlush(closedEndedItsSide: boolean, other: Duplex): boolean {
  if (!closedEndedItsSide || other.writableFinished || other.destroyed) {
    other.destroy();
    return false;
  }
  other.once('finish', () => other.destroy());
  return true;
}

/**
 * The idle clock once the application's socket has closed while the client still flushes what
 * it was sent: that socket's timer is gone with it (node clears it on close), and a client that
 * stopped reading never lets its 'finish' come, which would hold the connection, its tracker slot
 * and its queued records forever. Every `idleTimeoutMs` the client must have handed some of its
 * output to the kernel (a write completed), so a slow but reading client is not cut; one that
 * made no progress for a whole period gets `onIdle` (within two periods of its last progress).
 * Armed only in this case: a pair whose client has flushed by the time the application's socket
 * closes (nearly every client that reads) allocates no timer.
 */
function flushDeadline(client: Duplex, idleTimeoutMs: number, onIdle: () => void): NodeJS.Timeout {
  let left = client.writableLength;
  const timer = setTimeout(() => {
    const now = client.writableLength;
    if (now >= left) return onIdle();
    left = now;
    timer.refresh();
  }, idleTimeoutMs);
  return timer.unref();
}

/**
 * Splices `client` and `upstream` together; resolves when both are closed. The streams must be
 * created allowHalfOpen so that one direction ending leaves the other open.
 *
 * The idle clock is the upstream socket's timeout: while that socket is open every byte either
 * way passes through it (a read from the application, or a write of the client's bytes to it),
 * and node restarts the socket's timer on each, so no timer of ours is touched per chunk. Once it
 * has closed, bytes still go to the client only: `flushDeadline` is the clock then.
 */
export function splice(client: Duplex, upstream: Socket, idleTimeoutMs = 300_000): Promise<ProxyEnd> {
  return new Promise((resolve) => {
    let end = CLOSED;
    let open = 2;
    const stop = (why: ProxyEnd): void => {
      if (end === CLOSED) end = why;
      client.destroy();
      upstream.destroy();
    };
    client.on('error', (error: Error) => stop({ kind: 'error', side: 'client', error }));
    upstream.on('error', (error: Error) => stop({ kind: 'error', side: 'upstream', error }));
    upstream.setTimeout(idleTimeoutMs); // 0 disables; replaces the connect deadline
    if (idleTimeoutMs > 0) upstream.on('timeout', () => stop(IDLE));
    forwardClient(client, upstream);
    // 'close' comes once per stream: plain listeners, not once() wrappers.
    let flushing: NodeJS.Timeout | undefined;
    const clientClosed = (): void => {
      if (flushing) clearTimeout(flushing);
      closeAfterFlush(client.readableEnded, upstream);
      if (--open === 0) resolve(end);
    };
    // A client gone while the application connection was being opened: its 'close' has been
    // emitted already, and waiting for it would hold the application connection until the idle timeout.
    if (client.closed) clientClosed();
    else client.on('close', clientClosed);
    upstream.on('close', () => {
      if (closeAfterFlush(upstream.readableEnded, client) && idleTimeoutMs > 0) flushing = flushDeadline(client, idleTimeoutMs, () => stop(IDLE));
      if (--open === 0) resolve(end);
    });
    upstream.pipe(client, { end: true });
  });
}

/**
 * The client's bytes to the application for a client stream of any kind (node:tls): one 'data'
 * listener rather than pipe() (pipe() sets up five more listeners per connection and its own
 * drain bookkeeping). Backpressure and the end are pipe()'s.
 */
function forwardClient(client: Duplex, upstream: Socket): void {
  let waitingForDrain = false;
  const resumeClient = (): void => {
    waitingForDrain = false;
    client.resume();
  };
  client.on('data', (chunk: Buffer) => {
    if (upstream.destroyed) return;
    // A chunk the application is not reading yet stays queued: not as a record-slab view.
    if (!upstream.write(upstream.writableLength > 0 ? unpinned(chunk) : chunk) && !waitingForDrain) {
      waitingForDrain = true;
      client.pause();
      upstream.once('drain', resumeClient);
    }
  });
  const ended = (): void => {
    if (!upstream.destroyed) upstream.end();
  };
  // The client may have ended already, while the application was being connected: a TLS 1.3
  // client's Finished and its FIN often come together, and 'end' was emitted with nobody
  // listening. Its half-close is passed on all the same.
  if (client.readableEnded) ended();
  else client.on('end', ended);
}

/** Connects to the application and splices; the client is closed when the application is down. */
export async function proxyToUpstream(client: Duplex, options: UpstreamOptions): Promise<ProxyEnd> {
  let upstream: Socket;
  try {
    upstream = await connectUpstream(options);
  } catch (error) {
    client.destroy();
    return { kind: 'upstream-unavailable', error: error instanceof Error ? error : new Error(String(error)) };
  }
  return splice(client, upstream, options.idleTimeoutMs);
}
