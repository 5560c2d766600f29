/**
 * Our TLS 1.3 stack (src/tls ServerConnection) as a terminating engine.
 *
 * The router has already read the ClientHello bytes off the socket, and the sans-IO connection
 * takes bytes directly, so they are fed in as they are — no unshift, no copy of the stream.
 * `TlsServerStream` is the Duplex the proxy sees: decrypted data out, plaintext in, with the
 * socket paused while the reader is behind (backpressure) and close_notify/FIN mapped to
 * end()/'end' both ways (half-close).
 *
 * One ServerConfig is shared by every connection (ticket key, suites); the credential hook reads
 * the MaterialStore when the handshake reaches its Certificate step, so a reload changes what
 * new handshakes get and never touches established connections.
 */
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import type { HandshakeInfo, Progress } from '../tls/connection.js';
import { unpinned } from '../tls/native/aead.js';
import { ServerConfig, ServerConnection } from '../tls/server.js';
import { writeRecordPieces } from '../tls/socket.js';
import type { Signer } from '../tls/signer.js';
import type { MaterialStore, ServingMaterial } from './material.js';
import type { HandshakeMode } from './metrics.js';
import { chooseCredential, type ChoiceDetails } from './router.js';
import type { DirectClient, PlaintextSink } from './proxy.js';
import { closeSoon, ignoreError, type OursEngine } from './terminator.js';
import { Deadline } from './deadline.js';

export interface OursEngineOptions {
  readonly store: MaterialStore;
  /** The keyless signer for a material's certificate, when keyless is configured. */
  readonly keylessFor: ((material: ServingMaterial) => Signer | undefined) | undefined;
  readonly alpnProtocols?: readonly string[];
  readonly keylog?: (line: string) => void;
  /** 'TLSv1.3': no TLS 1.2 (the warm-up of paths that TLS 1.2 clients never take). */
  readonly minVersion?: 'TLSv1.3';
}

export function createServerConfig(options: OursEngineOptions): ServerConfig {
  return new ServerConfig({
    selectCredential: (hello) => {
      const material = options.store.current; // once per handshake
      return chooseCredential(hello, material, material && options.keylessFor?.(material));
    },
    ...(options.alpnProtocols && options.alpnProtocols.length > 0 ? { alpnProtocols: options.alpnProtocols } : {}),
    ...(options.keylog ? { keylog: options.keylog } : {}),
    ...(options.minVersion ? { minVersion: options.minVersion } : {}),
  });
}

export function createOursEngine(options: OursEngineOptions): OursEngine {
  const config = createServerConfig(options);
  return async (socket, buffered, hello, _material, deadline) => {
    const stream = new TlsServerStream(socket, new ServerConnection(config, { clientHello: hello }));
    const info = await stream.handshake(buffered, deadline);
    return { stream, mode: modeOf(info) };
  };
}

export function modeOf(info: HandshakeInfo): HandshakeMode {
  const details = info.serverMode.details as ChoiceDetails | undefined;
  if (details?.mode) return details.mode;
  switch (info.serverMode.authentication) {
    case 'delegated-credential':
      return 'dc';
    case 'keyless':
      return 'keyless';
    case 'psk':
      return 'resumed';
    default:
      return 'certificate';
  }
}

/** `a` and `b` as one view when `b` starts where `a` ends in the same memory, else undefined. */
function adjacent(a: Uint8Array, b: Uint8Array): Buffer | undefined {
  if (a.buffer !== b.buffer || a.byteOffset + a.length !== b.byteOffset) return undefined;
  return Buffer.from(a.buffer, a.byteOffset, a.length + b.length);
}

/** A ServerConnection over a socket, as a Duplex of plaintext. */
export class TlsServerStream extends Duplex implements DirectClient {
  private handshakeDone: ((info: HandshakeInfo) => void) | undefined;
  private handshakeFailed: ((err: Error) => void) | undefined;
  private info: HandshakeInfo | undefined;
  private readingPaused = false;
  private ended = false;
  /** Set by the proxy (`relayTo`): the plaintext goes there, not through the Readable side. */
  private sink: PlaintextSink | undefined;

  constructor(
    private readonly socket: Socket,
    private readonly conn: ServerConnection,
  ) {
    super({ allowHalfOpen: true });
    // apply() writes a poll's output with writeRecordPieces (one write or one writev): no join here.
    conn.joinOutput = false;
    // Socket errors surface on process.nextTick, before the promise continuation that hands this
    // stream to the proxy (which attaches its own listener): never let one be unhandled. The
    // stream still closes, and listeners added later still receive errors.
    this.on('error', ignoreError);
    socket.on('data', (chunk: Buffer) => this.apply(this.conn.feed(chunk)));
    socket.on('end', () => {
      // FIN without close_notify: a truncated stream, still an end of input for the proxy.
      if (this.info) this.endInput();
      else this.fail(new Error('the client closed the connection during the handshake'));
    });
    // During the handshake a dead socket rejects handshake(); afterwards it destroys the stream.
    socket.on('close', () => {
      if (this.handshakeFailed) this.fail(new Error('the connection closed during the handshake'));
      else if (!this.destroyed) this.destroy();
    });
    socket.on('error', (err) => {
      if (this.handshakeFailed) this.fail(err);
      else this.destroy(err);
    });
  }

  /**
   * Feeds the already-read bytes, then reads the socket until the handshake completes, or fails
   * when `deadline` (the connection's, or a new one of that many ms) expires first.
   */
  handshake(buffered: Buffer, deadline: Deadline | number): Promise<HandshakeInfo> {
    const clock = typeof deadline === 'number' ? new Deadline(deadline) : deadline;
    return new Promise((resolve, reject) => {
      this.handshakeDone = (info) => {
        clock.clear();
        resolve(info);
      };
      this.handshakeFailed = (err) => {
        clock.clear();
        reject(err);
      };
      clock.onExpiry(() => this.fail(new Error(`handshake not complete after ${clock.ms} ms`)));
      this.apply(this.conn.feed(buffered));
      if (!this.info && !this.destroyed) this.socket.resume();
    });
  }

  get handshakeInfo(): HandshakeInfo | undefined {
    return this.info;
  }

  private apply(progress: Progress, writeCallback?: (err?: Error | null) => void): void {
    // A flight, or a large write cut into 16 KiB records, each in pieces (header, ciphertext, tag):
    // one write or one writev (src/tls/socket.ts).
    if (progress.output.length > 0 && !this.socket.destroyed) writeRecordPieces(this.socket, progress.output, writeCallback);
    else writeCallback?.();
    // The records of one socket read, opened one after another, lie end to end (the record layer
    // opens them in place and moves each next to the one before): they go on as one chunk, so
    // the application's socket gets one write per read, not one per record.
    let data: Uint8Array | undefined;
    for (const event of progress.events) {
      if (event.type === 'data') {
        const joined = data && adjacent(data, event.data);
        if (joined) data = joined;
        else {
          if (data) this.pushData(data);
          data = event.data;
        }
        continue;
      }
      if (data) this.pushData(data);
      data = undefined;
      switch (event.type) {
        case 'handshake':
          this.info = event.info;
          this.handshakeDone?.(event.info);
          this.handshakeDone = undefined;
          this.handshakeFailed = undefined;
          break;
        case 'end':
          this.endInput();
          break;
        case 'error':
          // The alert is already in `output`: let it go out before the socket closes.
          this.socket.end();
          this.fail(event.error);
          break;
        case 'session':
          break;
      }
    }
    if (data) this.pushData(data);
    if (progress.waitFor) {
      // An async signer (keyless) is at work: nothing is read meanwhile; continue when it settles.
      void progress.waitFor.then(() => this.apply(this.conn.poll()));
    }
  }

  private pushData(data: Uint8Array): void {
    if (this.sink) {
      if (!this.sink.write(data)) this.pauseInput();
      return;
    }
    if (!this.push(this.readableFlowing === true && this.readableLength === 0 ? data : unpinned(data)) && !this.readingPaused) {
      this.readingPaused = true;
      this.socket.pause();
    }
  }

  private endInput(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.sink) this.sink.end();
    else this.push(null);
  }

  get inputEnded(): boolean {
    return this.ended && this.sink !== undefined;
  }

  /**
   * The proxy's direct path: the plaintext to `sink` from now on. What came before (data sent
   * with the client's Finished, held while the application connection was opened) goes first.
   */
  relayTo(sink: PlaintextSink): void {
    let full = false;
    for (let held = this.read() as Buffer | null; held !== null; held = this.read() as Buffer | null) full = !sink.write(held);
    this.sink = sink;
    if (full) this.pauseInput();
    if (this.ended) sink.end();
  }

  resumeInput(): void {
    if (this.readingPaused) {
      this.readingPaused = false;
      this.socket.resume();
    }
  }

  private pauseInput(): void {
    if (!this.readingPaused) {
      this.readingPaused = true;
      this.socket.pause();
    }
  }

  private fail(err: Error): void {
    if (this.handshakeFailed) {
      const reject = this.handshakeFailed;
      this.handshakeFailed = undefined;
      this.handshakeDone = undefined;
      reject(err);
      this.destroy();
      return;
    }
    this.destroy(err);
  }

  override _read(): void {
    this.resumeInput();
  }

  /**
   * Seals `chunk` at once, bypassing the Writable's queue (the proxy uses one or the other for a
   * direction, never both): sealing copies it, so the caller may reuse it on return.
   */
  writeNow(chunk: Uint8Array, onDrain: () => void): boolean {
    // Before the handshake the connection queues data by reference: give it its own copy.
    this.conn.write(this.info ? chunk : Buffer.from(chunk));
    this.apply(this.conn.poll());
    if (this.socket.destroyed || !this.socket.writableNeedDrain) return true;
    this.socket.once('drain', onDrain);
    return false;
  }

  /** `writeNow` bypasses this stream's queue: what waits is in the socket's. */
  get pendingOutput(): number {
    return this.writableLength + this.socket.writableLength;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.conn.write(chunk);
    // The callback waits for the socket to accept the last record: the socket's buffer is the
    // proxy's backpressure signal.
    this.apply(this.conn.poll(), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.conn.close();
    this.apply(this.conn.poll());
    this.socket.end(callback);
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    closeSoon(this.socket);
    callback(err);
  }
}
