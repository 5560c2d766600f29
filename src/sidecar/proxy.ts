/**
 * The plaintext leg: bytes between a terminated client stream and the application on
 * 127.0.0.1:<upstream>.
 *
 * - Half-close both ways: when one side ends its writing, the other side's writable is ended
 *   and the reverse direction keeps flowing until it ends too. Nothing is destroyed on a
 *   half-close; both sockets are allowHalfOpen.
 * - Backpressure: the source is paused when the destination's buffer is full and resumed on
 *   'drain', so a slow reader never makes the sidecar buffer without bound.
 * - Idle timeout: no bytes either way for `idleTimeoutMs` closes both sides.
 * - Errors on either side destroy both (a reset on one leg is passed on as a close on the other).
 *
 * - A client stream that seals what it is given before returning (`ImmediateWriter`: our engine)
 *   gets the application's bytes read into one process-wide buffer (net's `onread`) instead of a
 *   new Buffer per read: fewer external allocations, fewer garbage collections in bulk
 *   (bench/results/sidecar-perf.md).
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

/** A client stream that is done with a chunk when `writeNow` returns (it keeps no reference). */
export interface ImmediateWriter {
  /** Writes `chunk` now; false when the client is behind, and then `onDrain` runs once it caught up. */
  writeNow(chunk: Uint8Array, onDrain: () => void): boolean;
}

function immediateWriter(stream: Duplex): ImmediateWriter | undefined {
  return typeof (stream as Partial<ImmediateWriter>).writeNow === 'function' ? (stream as unknown as ImmediateWriter) : undefined;
}

/**
 * Where every upstream read of an ImmediateWriter's connection lands: a read is handed on and
 * consumed before the next read of any socket can start, so one buffer serves the process.
 */
const UPSTREAM_READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

/** The upstream's bytes straight to an ImmediateWriter, with backpressure and the idle clock. */
class DirectRelay {
  upstream: Socket | undefined;
  touch: () => void = () => {};
  readonly onread = { buffer: UPSTREAM_READ_BUFFER, callback: (n: number): boolean => this.relay(n) };

  constructor(private readonly client: ImmediateWriter) {}

  private relay(n: number): boolean {
    this.touch();
    // false pauses the upstream socket; the client's drain resumes it.
    return this.client.writeNow(UPSTREAM_READ_BUFFER.subarray(0, n), this.resume);
  }

  private readonly resume = (): void => {
    this.upstream?.resume();
  };
}

/** Opens a connection to the application; resolves once connected. */
export function connectUpstream(options: UpstreamOptions, relay?: DirectRelay): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: options.host, port: options.port, allowHalfOpen: true, ...(relay ? { onread: relay.onread } : {}) });
    socket.setNoDelay(true);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`connect to ${options.host}:${options.port} timed out after ${options.connectTimeoutMs ?? 5000} ms`));
    }, options.connectTimeoutMs ?? 5000);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeListener('error', reject);
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/**
 * Splices `client` and `upstream` together; resolves when both are closed. The streams must be
 * created allowHalfOpen so that one direction ending leaves the other open. With `relay`, the
 * upstream was connected with its `onread`: its bytes reach the client through the relay.
 */
export function splice(client: Duplex, upstream: Duplex, idleTimeoutMs = 300_000, relay?: DirectRelay): Promise<ProxyEnd> {
  return new Promise((resolve) => {
    let end: ProxyEnd = { kind: 'closed' };
    let open = 2;
    const onClose = (): void => {
      if (--open === 0) {
        clearTimeout(idle);
        resolve(end);
      }
    };
    const fail = (side: 'client' | 'upstream') => (error: Error) => {
      if (end.kind === 'closed') end = { kind: 'error', side, error };
      client.destroy();
      upstream.destroy();
    };
    const idle =
      idleTimeoutMs > 0
        ? setTimeout(() => {
            if (end.kind === 'closed') end = { kind: 'idle-timeout' };
            client.destroy();
            upstream.destroy();
          }, idleTimeoutMs).unref()
        : undefined;
    const touch = (): void => {
      idle?.refresh();
    };
    client.on('error', fail('client'));
    upstream.on('error', fail('upstream'));
    // The client's bytes to the application: one 'data' listener that also runs the idle clock,
    // rather than pipe() and a second listener (pipe() sets up five more listeners per
    // connection and its own drain bookkeeping). Backpressure and the end are pipe()'s.
    let waitingForDrain = false;
    const resumeClient = (): void => {
      waitingForDrain = false;
      client.resume();
    };
    client.on('data', (chunk: Buffer) => {
      touch();
      if (upstream.destroyed) return;
      // A chunk the application is not reading yet stays queued: not as a record-slab view.
      if (!upstream.write(upstream.writableLength > 0 ? unpinned(chunk) : chunk) && !waitingForDrain) {
        waitingForDrain = true;
        client.pause();
        upstream.once('drain', resumeClient);
      }
    });
    client.once('end', () => {
      if (!upstream.destroyed) upstream.end();
    });
    if (relay) relay.touch = touch;
    else upstream.on('data', touch);
    client.once('close', onClose);
    upstream.once('close', onClose);
    // When one side is closed for good, nothing more can reach it: once the other side has
    // flushed what it still had to write (its 'finish'), close it too. Without this a client that
    // half-closed and left would keep an application connection open until the idle timeout.
    // A side that closed abruptly (its readable never ended: reset, destroyed) ends the pair now.
    const closeAfterFlush = (closed: Duplex, other: Duplex): void => {
      if (!closed.readableEnded || other.writableFinished) other.destroy();
      else other.once('finish', () => other.destroy());
    };
    client.once('close', () => closeAfterFlush(client, upstream));
    upstream.once('close', () => closeAfterFlush(upstream, client));
    if (relay) {
      upstream.once('end', () => client.end());
      upstream.resume();
    } else {
      upstream.pipe(client, { end: true });
    }
  });
}

/** Connects to the application and splices; the client is closed when the application is down. */
export async function proxyToUpstream(client: Duplex, options: UpstreamOptions): Promise<ProxyEnd> {
  const writer = immediateWriter(client);
  const relay = writer ? new DirectRelay(writer) : undefined;
  let upstream: Socket;
  try {
    upstream = await connectUpstream(options, relay);
  } catch (error) {
    client.destroy();
    return { kind: 'upstream-unavailable', error: error instanceof Error ? error : new Error(String(error)) };
  }
  if (relay) relay.upstream = upstream;
  return splice(client, upstream, options.idleTimeoutMs, relay);
}
