/**
 * One client connection through the sidecar, from accept to close, as one object:
 *
 *   admit (limit, per-source limit, draining) -> peek the ClientHello (deadline) -> route -> handshake
 *   on the chosen engine (deadline) -> connect to the application -> relay plaintext both ways -> close
 *
 * With our engine (`SidecarConnection`) the object is the whole path: it registers its listeners
 * on the client socket once, at admission, and on the application's socket once, at connect; it
 * drives the sans-IO ServerConnection directly and moves bytes between the two sockets itself.
 * Its state names what it waits for. No promise, Duplex or per-step listener is made per
 * connection, and the deadline is its only timer while all goes well (the reasons, measured:
 * docs/architecture.md "The sidecar's connection path"). node:tls connections leave the object
 * after routing (`handOffToNode`): node:tls brings its own TLSSocket and streams.
 *
 * What happens is the same whichever engine: the refusals, metrics, log lines, the half-close
 * both ways, backpressure both ways, the idle clock and the ends of proxy.ts (`splice`).
 * Every step's outcome is counted; nothing here throws to the listener.
 */
import { connect, type Socket } from 'node:net';
import { alertName } from '../tls/alerts.js';
import type { HandshakeInfo, Progress } from '../tls/connection.js';
import { unpinned } from '../tls/native/aead.js';
import type { ServerConnection } from '../tls/server.js';
import { writeRecordPieces } from '../tls/socket.js';
import { sourceAddress } from '../net/connection-tracker.js';
import type { LogLimiter } from '../net/log-limiter.js';
import { ClientHelloPeeker, plaintextAlert, type PeekResult } from './client-hello-peek.js';
import { Deadline } from './deadline.js';
import { classifyKeylessFailure } from './keyless-fallback.js';
import type { ServingMaterial } from './material.js';
import type { HandshakeMode, TlsEngine } from './metrics.js';
import { terminateWithNode } from './node-engine.js';
import { modeOf } from './ours-engine.js';
import { CLOSED, IDLE, proxyToUpstream, UPSTREAM_READ_BUFFER, type ProxyEnd } from './proxy.js';
import { route } from './router.js';
import type { TerminatorOptions } from './terminator.js';

/** One listener for every connection's socket errors (they surface as 'close'): no closure per connection. */
function ignoreError(): void {}

/** How long a closing socket may take to flush (an alert, the last records) before it is cut. */
const FLUSH_DEADLINE_MS = 2000;

/**
 * Ends `socket` after what was written (a fatal alert, the last records) has gone out, and cuts
 * it if the peer does not let that happen within FLUSH_DEADLINE_MS.
 */
function closeSoon(socket: Socket, last?: Uint8Array): void {
  if (socket.destroyed) return;
  if (last) socket.end(last);
  else socket.end();
  socket.destroySoon();
  setTimeout(() => socket.destroy(), FLUSH_DEADLINE_MS).unref();
}

/** Refusals whose reason names something an operator can fix: the summary line carries the first. */
const DETAILED_REFUSALS = new Set(['keyserver-unreachable', 'keyless-client-certificate', 'keyless-misconfigured']);

/** The count a LogLimiter left out since the key's last line, when there is one. */
function suppressedField(suppressed: number): { suppressedSinceLastLine?: number } {
  return suppressed > 0 ? { suppressedSinceLastLine: suppressed } : {};
}

/**
 * Plaintext held between the handshake and the application's connect (data sent with the
 * client's Finished) before the client is paused: a Readable's default highWaterMark in Node 24,
 * what the engine stream held before.
 */
const HOLD_AT_MOST = 64 * 1024;

/**
 * A new client socket: admitted (then served until it closes) or refused at once. `finished` is
 * called once when the connection is handled to its end (for a proxied connection: both sockets
 * closed), as the listener's `settled()` needs.
 *
 * `refusals` bounds the log lines about refused connections (one per listener). A connection
 * refused before routing (a cap reached, bytes that are not a ClientHello) is logged at info: an
 * operator asking "why was my client turned away" must not need debug logging on. A client
 * refused by routing (nothing to serve it with) is counted in the report's interval line instead.
 */
export function acceptConnection(socket: Socket, o: TerminatorOptions, refusals: LogLimiter, finished: () => void): void {
  socket.setNoDelay(true);
  const admitted = o.tracker.admit(socket, o.metrics.connectionClosed);
  if (admitted === 'admitted') {
    o.metrics.connectionOpened();
    new SidecarConnection(socket, o, refusals, finished).start();
    return;
  }
  socket.on('error', ignoreError);
  o.metrics.refused(admitted);
  // Refusing while draining is the plan; a limit reached is worth a (bounded) line.
  if (admitted !== 'draining') {
    const source = sourceAddress(socket);
    const why =
      admitted === 'source-limit'
        ? `${o.tracker.openFrom(source)} open from ${source}, the limit per source (--max-connections-per-source)`
        : `${o.tracker.size} open, the limit (--max-connections)`;
    refusals.log(admitted, (suppressed) => o.log.info(`refused a connection: ${why}`, { remote: source, reason: admitted, ...suppressedField(suppressed) }));
  }
  socket.destroy();
  finished();
}

/**
 * What the connection waits for:
 * - `peeking`: the rest of the ClientHello (the deadline runs);
 * - `handshaking`: the client's handshake records, or an async signer (the deadline runs);
 * - `connecting`: the application's connect (the client's plaintext is held meanwhile);
 * - `relaying`: bytes either way, until both sockets have closed;
 * - `node`: nothing: node:tls has the connection;
 * - `done`: nothing: refused, failed, or both sockets closed.
 */
type State = 'peeking' | 'handshaking' | 'connecting' | 'relaying' | 'node' | 'done';

/** `a` and `b` as one view when `b` starts where `a` ends in the same memory, else undefined. */
function adjacent(a: Uint8Array, b: Uint8Array): Buffer | undefined {
  if (a.buffer !== b.buffer || a.byteOffset + a.length !== b.byteOffset) return undefined;
  return Buffer.from(a.buffer, a.byteOffset, a.length + b.length);
}

export class SidecarConnection {
  private state: State = 'peeking';
  private readonly deadline: Deadline;
  private peeker: ClientHelloPeeker | undefined = new ClientHelloPeeker();
  private conn: ServerConnection | undefined;
  /** The route's mode until the handshake says how it authenticated. */
  private mode: HandshakeMode = 'certificate';
  private upstream: Socket | undefined;
  /** The client's plaintext while the application is being connected. */
  private held: Uint8Array[] | undefined;
  private heldBytes = 0;
  /** The client ended its side (close_notify, or FIN after the handshake). */
  private inputEnded = false;
  /** The client is paused: the application's socket (or the held plaintext) is full. */
  private readingPaused = false;
  private waitingForUpstreamDrain = false;
  private waitingForClientDrain = false;
  private clientDrainListening = false;
  /** The client's side of the relay is over (its socket closed, or it failed while connecting). */
  private clientSideClosed = false;
  private upstreamSideClosed = false;
  private end: ProxyEnd = CLOSED;
  /** The idle clock once the application's socket is gone and the client still flushes (proxy.ts `flushDeadline`). */
  private flushing: NodeJS.Timeout | undefined;
  private isFinished = false;

  constructor(
    private readonly socket: Socket,
    private readonly o: TerminatorOptions,
    private readonly refusals: LogLimiter,
    private readonly finished: () => void,
  ) {
    this.deadline = new Deadline(o.handshakeTimeoutMs);
  }

  start(): void {
    const socket = this.socket;
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onClose);
    socket.on('error', this.onError);
    this.deadline.onExpiry(this.onDeadline);
    socket.resume();
  }

  // --- the client socket's listeners, registered once ---

  private readonly onData = (chunk: Buffer): void => {
    if (this.state === 'peeking') {
      const result = this.peeker!.push(chunk);
      if (result.kind !== 'need-more') this.guarded(this.peeked, result);
    } else if (this.conn && this.state !== 'done') {
      this.apply(this.conn.feed(chunk));
    }
  };

  private readonly onEnd = (): void => {
    switch (this.state) {
      case 'peeking':
        return this.gone('closed');
      case 'handshaking':
        return this.handshakeFailed(new Error('the client closed the connection during the handshake'));
      case 'connecting':
      case 'relaying':
        // FIN without close_notify: a truncated stream, still an end of input for the application.
        return this.clientEnded();
    }
  };

  private readonly onClose = (): void => {
    switch (this.state) {
      case 'peeking':
        return this.gone('closed');
      case 'handshaking':
        return this.handshakeFailed(new Error('the connection closed during the handshake'));
      case 'connecting':
        this.clientSideClosed = true; // taken up once the application is connected
        return;
      case 'relaying':
        return this.clientClosed();
    }
  };

  private readonly onError = (err: Error): void => {
    switch (this.state) {
      case 'peeking':
        return this.gone('closed');
      case 'handshaking':
        return this.handshakeFailed(err);
      case 'relaying':
        return this.stop({ kind: 'error', side: 'client', error: err });
      // connecting: its 'close' follows, and the relay takes that up.
    }
  };

  private readonly onDeadline = (): void => {
    if (this.state === 'peeking') this.gone('timeout');
    else if (this.state === 'handshaking') this.handshakeFailed(new Error(`handshake not complete after ${this.deadline.ms} ms`));
  };

  private readonly onClientDrain = (): void => {
    if (!this.waitingForClientDrain) return;
    this.waitingForClientDrain = false;
    this.upstream?.resume();
  };

  // --- peek and route ---

  private readonly peeked = (peek: Exclude<PeekResult, { kind: 'need-more' }>): void => {
    const { socket, o } = this;
    socket.pause();
    const buffered = this.peeker!.buffered;
    this.peeker = undefined;
    if (peek.kind === 'not-tls') {
      this.deadline.clear();
      o.metrics.refused('bad-hello');
      this.refusals.log('bad-hello', (suppressed) =>
        o.log.info('refused a connection: not a TLS ClientHello', { remote: socket.remoteAddress, reason: peek.reason, ...suppressedField(suppressed) }),
      );
      this.state = 'done'; // the socket's later 'close' is not a second refusal
      closeSoon(socket, plaintextAlert(peek.alert));
      return this.finish();
    }
    const material = o.store.current;
    const decision = route(peek.hello, material, o.policy);
    if (decision.engine === 'refuse') {
      this.deadline.clear();
      o.metrics.refused(decision.metric);
      o.report?.refused(decision.metric, DETAILED_REFUSALS.has(decision.metric) ? decision.reason : undefined);
      o.log.debug('refused a client', { remote: socket.remoteAddress, alert: alertName(decision.alert), reason: decision.reason });
      this.state = 'done';
      closeSoon(socket, plaintextAlert(decision.alert, peek.recordVersion));
      return this.finish();
    }
    this.mode = decision.mode;
    if (decision.engine === 'node' || !o.ours) return this.handOffToNode(buffered, material!);
    const conn = o.ours.accept(peek);
    // apply() writes a poll's output with writeRecordPieces (one write or one writev): no join here.
    conn.joinOutput = false;
    this.conn = conn;
    this.state = 'handshaking';
    this.apply(conn.feed(buffered));
    if (this.state === 'handshaking') socket.resume();
  };

  /** A peek that ended without a ClientHello: the peer left, or the deadline came first. */
  private gone(why: 'closed' | 'timeout'): void {
    this.state = 'done'; // an 'end' is followed by 'close', an 'error' too: one refusal
    this.deadline.clear();
    this.socket.destroy();
    this.safely(() => this.o.metrics.refused(why));
    this.finish();
  }

  private handOffToNode(buffered: Buffer, material: ServingMaterial): void {
    const socket = this.socket;
    this.state = 'node';
    socket.removeListener('data', this.onData);
    socket.removeListener('end', this.onEnd);
    socket.removeListener('close', this.onClose);
    socket.removeListener('error', this.onError);
    socket.on('error', ignoreError); // errors surface as 'close'; the proxy reports its own
    this.deadline.clear(); // node:tls keeps its own timer for what is left
    serveWithNode(socket, buffered, material, this.o, this.refusals, this.mode, this.deadline.remainingMs())
      .catch((err: unknown) => this.crashed(err))
      .finally(() => this.finish());
  }

  // --- the handshake, and our engine's records both ways ---

  /**
   * A poll's outcome: its output to the client, its events in order. The records of one socket
   * read, opened one after another, lie end to end (the record layer opens them in place and
   * moves each next to the one before): they go on as one chunk, so the application's socket gets
   * one write per read, not one per record.
   */
  private apply(progress: Progress): void {
    // A flight, or a large write cut into 16 KiB records, each in pieces (header, ciphertext, tag):
    // one write or one writev (src/tls/socket.ts).
    if (progress.output.length > 0 && !this.socket.destroyed) writeRecordPieces(this.socket, progress.output);
    let data: Uint8Array | undefined;
    for (const event of progress.events) {
      if (event.type === 'data') {
        const joined = data && adjacent(data, event.data);
        if (joined) data = joined;
        else {
          if (data) this.plaintext(data);
          data = event.data;
        }
        continue;
      }
      if (data) this.plaintext(data);
      data = undefined;
      switch (event.type) {
        case 'handshake':
          this.guarded(this.handshakeDone, event.info);
          break;
        case 'end':
          this.clientEnded();
          break;
        case 'error':
          // The alert is already written: let it go out before the socket closes.
          this.socket.end();
          this.recordLayerFailed(event.error);
          break;
        case 'session':
          break;
      }
    }
    if (data) this.plaintext(data);
    if (progress.waitFor) {
      // An async signer (keyless) is at work: nothing is read meanwhile; continue when it settles.
      void progress.waitFor.then(() => this.apply(this.conn!.poll()));
    }
  }

  private readonly handshakeDone = (info: HandshakeInfo): void => {
    if (this.state !== 'handshaking') return;
    const o = this.o;
    this.deadline.clear();
    this.mode = modeOf(info);
    o.metrics.handshake(this.mode, 'ours', 'success');
    o.report?.served(this.mode);
    this.state = 'connecting';
    this.connectUpstream();
  };

  private handshakeFailed(err: Error): void {
    this.state = 'done';
    this.deadline.clear();
    closeSoon(this.socket); // let the engine's alert go out
    this.safely(() => reportHandshakeFailure(this.o, this.refusals, this.socket, this.mode, 'ours', err));
    this.finish();
  }

  /** The client's records failed (the alert is on its way): during the handshake, or after it. */
  private recordLayerFailed(err: Error): void {
    switch (this.state) {
      case 'handshaking':
        return this.handshakeFailed(err);
      case 'connecting':
        closeSoon(this.socket);
        this.clientSideClosed = true;
        return;
      case 'relaying':
        return this.stop({ kind: 'error', side: 'client', error: err });
    }
  }

  /** The client's plaintext: to the application, or held until it is connected. */
  private plaintext(data: Uint8Array): void {
    const upstream = this.upstream;
    if (this.state === 'relaying') {
      if (upstream!.destroyed) return; // the pair is closing: nothing more to deliver
      // A chunk the application is not reading yet stays queued: not as a record-slab view.
      if (!upstream!.write(upstream!.writableLength > 0 ? unpinned(data) : data)) this.waitForUpstreamDrain();
    } else if (this.state === 'handshaking' || this.state === 'connecting') {
      (this.held ??= []).push(unpinned(data));
      this.heldBytes += data.length;
      if (this.heldBytes >= HOLD_AT_MOST) this.pauseInput();
    }
  }

  private clientEnded(): void {
    if (this.inputEnded) return;
    this.inputEnded = true;
    if (this.state === 'relaying' && !this.upstream!.destroyed) this.upstream!.end();
  }

  private pauseInput(): void {
    if (!this.readingPaused) {
      this.readingPaused = true;
      this.socket.pause();
    }
  }

  private resumeInput(): void {
    if (this.readingPaused) {
      this.readingPaused = false;
      this.socket.resume();
    }
  }

  // --- the application's socket ---

  private connectUpstream(): void {
    const options = this.o.upstream;
    // The application's bytes are read into one process-wide buffer (net's `onread`) and sealed
    // straight from it: fewer allocations and collections in bulk (bench/results/sidecar-perf.md section 2).
    const upstream = connect({ host: options.host, port: options.port, allowHalfOpen: true, onread: { buffer: UPSTREAM_READ_BUFFER, callback: this.onUpstreamRead } });
    this.upstream = upstream;
    upstream.setNoDelay(true);
    // The connect deadline is the socket's own timeout; at connect it becomes the idle clock.
    upstream.setTimeout(options.connectTimeoutMs ?? 5000);
    upstream.on('connect', this.onUpstreamConnect);
    upstream.on('timeout', this.onUpstreamTimeout);
    upstream.on('error', this.onUpstreamError);
    upstream.on('end', this.onUpstreamEnd);
    upstream.on('close', this.onUpstreamClose);
  }

  private readonly onUpstreamConnect = (): void => {
    const upstream = this.upstream!;
    this.state = 'relaying';
    // Every byte either way passes through this socket while it is open, and node restarts its
    // timer on each: it is the idle clock, no timer of ours touched per chunk. 0 disables it.
    upstream.setTimeout(this.o.upstream.idleTimeoutMs ?? 300_000);
    const held = this.held;
    this.held = undefined;
    this.heldBytes = 0;
    let full = false;
    if (held) for (const chunk of held) full = !upstream.write(chunk);
    if (full) this.waitForUpstreamDrain();
    else this.resumeInput();
    if (this.inputEnded) upstream.end();
    // A client gone while the application connection was being opened: waiting for its 'close'
    // (already emitted) would hold the application connection until the idle timeout.
    if (this.clientSideClosed) {
      this.clientSideClosed = false;
      this.clientClosed();
    }
    upstream.resume();
  };

  private readonly onUpstreamTimeout = (): void => {
    if (this.state === 'connecting') {
      const options = this.o.upstream;
      this.upstream!.destroy(new Error(`connect to ${options.host}:${options.port} timed out after ${options.connectTimeoutMs ?? 5000} ms`));
    } else if (this.state === 'relaying') {
      this.stop(IDLE);
    }
  };

  private readonly onUpstreamError = (error: Error): void => {
    if (this.state === 'connecting') {
      this.state = 'done';
      closeSoon(this.socket);
      this.safely(() => reportProxyEnd(this.o, { kind: 'upstream-unavailable', error }));
      this.finish();
    } else if (this.state === 'relaying') {
      this.stop({ kind: 'error', side: 'upstream', error });
    }
  };

  /** The application's bytes (in the shared read buffer) sealed to the client at once; false pauses the application. */
  private readonly onUpstreamRead = (n: number): boolean => {
    const socket = this.socket;
    this.conn!.write(UPSTREAM_READ_BUFFER.subarray(0, n));
    this.apply(this.conn!.poll());
    if (socket.destroyed || !socket.writableNeedDrain) return true;
    this.waitingForClientDrain = true;
    if (!this.clientDrainListening) {
      this.clientDrainListening = true;
      socket.on('drain', this.onClientDrain);
    }
    return false;
  };

  /** The application ended its side: close_notify and FIN to the client, which may still send. */
  private readonly onUpstreamEnd = (): void => {
    const socket = this.socket;
    if (socket.destroyed || socket.writableEnded) return;
    this.conn!.close();
    this.apply(this.conn!.poll());
    socket.end();
  };

  private waitForUpstreamDrain(): void {
    this.pauseInput();
    if (!this.waitingForUpstreamDrain) {
      this.waitingForUpstreamDrain = true;
      this.upstream!.once('drain', this.onUpstreamDrain);
    }
  }

  private readonly onUpstreamDrain = (): void => {
    this.waitingForUpstreamDrain = false;
    this.resumeInput();
  };

  // --- the ends of the relay (proxy.ts `splice`, the same rules) ---

  /**
   * When one side is closed for good, nothing more can reach the other: once that one has flushed
   * what it still had to write, it is closed too. Without this a client that half-closed and left
   * would keep an application connection open until the idle timeout. A side that closed
   * abruptly (it never ended its side: reset, destroyed) ends the pair now.
   */
  private clientClosed(): void {
    if (this.clientSideClosed) return;
    this.clientSideClosed = true;
    if (this.flushing) clearTimeout(this.flushing);
    const upstream = this.upstream!;
    if (!this.inputEnded || upstream.writableFinished || upstream.destroyed) upstream.destroy();
    else upstream.once('finish', () => upstream.destroy());
    this.sideClosed();
  }

  private readonly onUpstreamClose = (): void => {
    if (this.state !== 'relaying' || this.upstreamSideClosed) return;
    this.upstreamSideClosed = true;
    const socket = this.socket;
    if (!this.upstream!.readableEnded || socket.destroyed) closeSoon(socket);
    else if (socket.writableFinished) socket.destroy();
    else {
      socket.once('finish', () => socket.destroy());
      const idleTimeoutMs = this.o.upstream.idleTimeoutMs ?? 300_000;
      if (idleTimeoutMs > 0) this.flushing = this.flushDeadline(idleTimeoutMs);
    }
    this.sideClosed();
  };

  /**
   * The idle clock once the application's socket has closed while the client still flushes what
   * it was sent: that socket's timer is gone with it, and a client that stopped reading never lets
   * its 'finish' come. Every `idleTimeoutMs` the client must have handed some of its output to the
   * kernel, so a slow but reading client is not cut (proxy.ts `flushDeadline`, the same rule).
   */
  private flushDeadline(idleTimeoutMs: number): NodeJS.Timeout {
    const socket = this.socket;
    let left = socket.writableLength;
    const timer = setTimeout(() => {
      const now = socket.writableLength;
      if (now >= left) return this.stop(IDLE);
      left = now;
      timer.refresh();
    }, idleTimeoutMs);
    return timer.unref();
  }

  /** Ends both sides now (an error on either, the idle timeout); the first reason is the pair's end. */
  private stop(why: ProxyEnd): void {
    if (this.end === CLOSED) this.end = why;
    closeSoon(this.socket);
    this.upstream!.destroy();
  }

  private sideClosed(): void {
    if (!this.clientSideClosed || !this.upstreamSideClosed) return;
    this.state = 'done';
    this.safely(() => reportProxyEnd(this.o, this.end));
    this.finish();
  }

  // --- bookkeeping ---

  private finish(): void {
    if (this.isFinished) return;
    this.isFinished = true;
    this.finished();
  }

  /** Runs a step that routes, counts and connects: a bug there is logged and ends this connection, never the process. */
  private guarded<T>(step: (arg: T) => void, arg: T): void {
    try {
      step(arg);
    } catch (err) {
      this.crashed(err);
    }
  }

  /**
   * Counting and logging at a connection's end run from socket and timer listeners, outside any
   * step guarded above: a bug there is logged, and the connection, which is ending anyway, still
   * releases its slot; it never reaches the process as an uncaught exception.
   */
  private safely(report: () => void): void {
    try {
      report();
    } catch (err) {
      this.logBug(err);
    }
  }

  private crashed(err: unknown): void {
    this.state = 'done';
    this.deadline.clear();
    this.logBug(err);
    this.socket.destroy();
    this.upstream?.destroy();
    this.finish();
  }

  private logBug(err: unknown): void {
    this.o.log.error('connection handler failed', { error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  }
}

function reportHandshakeFailure(o: TerminatorOptions, refusals: LogLimiter, socket: Socket, mode: HandshakeMode, engine: TlsEngine, err: unknown): void {
  o.metrics.handshake(mode, engine, 'failure');
  o.log.debug('handshake failed', { remote: socket.remoteAddress, mode, error: err instanceof Error ? err.message : String(err) });
  if (mode === 'keyless') {
    const failure = classifyKeylessFailure(err);
    o.report?.refused(failure.kind, failure.message);
    if (failure.kind === 'refused-by-keyserver') {
      // An in-band refusal (this identity may not use this key, or the key is not there): the
      // key server's own words, bounded like every per-connection line.
      refusals.log(failure.kind, (suppressed) =>
        o.log.warn('the key server refused to sign for a non-DC client', { error: failure.message, ...suppressedField(suppressed) }),
      );
    }
  } else {
    o.report?.refused('handshake-failed');
  }
}

function reportProxyEnd(o: TerminatorOptions, end: ProxyEnd): void {
  if (end.kind === 'upstream-unavailable') {
    o.metrics.upstreamError();
    o.log.warn('the application is not reachable', { upstream: `${o.upstream.host}:${o.upstream.port}`, error: end.error.message });
  } else if (end.kind === 'error' && end.side === 'upstream') {
    o.metrics.upstreamError();
    o.log.debug('upstream connection error', { error: end.error.message });
  }
}

/** A connection routed to node:tls: its TLSSocket, then proxy.ts with streams. */
async function serveWithNode(socket: Socket, buffered: Buffer, material: ServingMaterial, o: TerminatorOptions, refusals: LogLimiter, mode: HandshakeMode, timeoutMs: number): Promise<void> {
  let stream;
  try {
    stream = await terminateWithNode(socket, buffered, material, { timeoutMs, alpnProtocols: o.alpnProtocols });
  } catch (err) {
    reportHandshakeFailure(o, refusals, socket, mode, 'node', err);
    closeSoon(socket); // let the engine's alert go out
    return;
  }
  o.metrics.handshake(mode, 'node', 'success');
  o.report?.served(mode);
  reportProxyEnd(o, await proxyToUpstream(stream, o.upstream));
}
