/**
 * The socket adapter: a `TLSSocket` Duplex over a net.Socket driving a sans-IO connection, and
 * `createServer` / `connect` in the spirit of node:tls. The adapter owns the socket and timers;
 * the protocol lives in ServerConnection / ClientConnection.
 *
 * - Backpressure: reads pause the socket when our readable buffer is full; writes complete
 *   when the socket accepted the records.
 * - close_notify from the peer ends our readable side ('end'); ending our writable side sends
 *   close_notify and then FIN. A TCP FIN without close_notify after the handshake also ends
 *   the readable side (as node:tls does); before the handshake it is an error.
 * - Events: 'secureConnect' (client) / 'secure' (both), 'session' (client, a resumable
 *   TlsSession), 'keylog' (a Buffer line ending in "\n", as node:tls).
 */
import { X509Certificate } from 'node:crypto';
import * as net from 'node:net';
import { Duplex } from 'node:stream';
import { ClientConfig, ClientConnection, type ClientOptions } from './client.js';
import type { Connection, HandshakeInfo, HandshakeMode, KeyLogger, Progress } from './connection.js';
import type { CertificateKeyInput } from './credentials.js';
import { ServerConfig, ServerConnection, type ServerOptions } from './server.js';
import type { TlsVersionName } from './version.js';
import type { TlsSession } from './session.js';
import type { TlsError } from './errors.js';
import { unpinned } from './native/aead.js';

const same = (bytes: Uint8Array): Uint8Array => bytes;

/**
 * Output up to this many bytes (a handshake flight, an alert, a small write's record: header,
 * ciphertext and tag) leaves as one joined buffer in one write: copying a few KiB costs less
 * than the corked writev of its pieces (bench/results/socket-path.md). Larger output (bulk
 * records of 16 KiB) keeps the writev of pieces, where a copy would cost more.
 */
const JOIN_OUTPUT_UP_TO = 16 * 1024;

/**
 * Writes a connection's output (record pieces, `Progress.output`) to `socket` in order: joined
 * into one write up to JOIN_OUTPUT_UP_TO bytes, else corked, as one writev. `done` goes with the
 * last byte's write. Behind a peer that is not reading, what we write is kept: then not as views
 * of the record slab, which would pin a whole slab each (`unpinned`, src/tls/native/aead.ts).
 */
export function writeRecordPieces(socket: net.Socket, output: readonly Uint8Array[], done?: (error?: Error | null) => void): void {
  const n = output.length;
  if (n === 1) {
    socket.write(socket.writableLength > 0 ? unpinned(output[0]!) : output[0]!, done);
    return;
  }
  let total = 0;
  for (let i = 0; i < n; i++) total += output[i]!.length;
  if (total <= JOIN_OUTPUT_UP_TO) {
    // The joined copy refers to no slab, so it may be kept as it is.
    socket.write(Buffer.concat(output, total), done);
    return;
  }
  const keep = socket.writableLength > 0 ? unpinned : same;
  socket.cork();
  for (let i = 0; i < n - 1; i++) socket.write(keep(output[i]!));
  socket.write(keep(output[n - 1]!), done);
  socket.uncork();
}

export interface TLSSocketOptions {
  /** Destroy the socket if the handshake has not completed after this many ms (default 30000; 0 disables). */
  readonly handshakeTimeout?: number;
}

export class TLSSocket extends Duplex {
  readonly encrypted = true;
  private handshake: HandshakeInfo | undefined;
  private lastSession: TlsSession | undefined;
  private timer: NodeJS.Timeout | undefined;
  private failing = false;
  private readonly conn: Connection;
  /** The server that accepted this socket: it hears our keylog lines too (set by TLSServer before any byte is read). */
  private server: TLSServer | undefined;

  /**
   * `connect` and `createServer` build these; use the constructor to wrap a socket yourself.
   * `makeConnection` gets this socket's key logger: it emits 'keylog' (here and on the server)
   * and says, through `enabled`, whether anyone listens.
   */
  constructor(
    readonly socket: net.Socket,
    makeConnection: (keylog: KeyLogger) => Connection,
    readonly isServer: boolean,
    options: TLSSocketOptions = {},
  ) {
    super({ allowHalfOpen: false });
    this.conn = makeConnection(Object.assign((line: string) => this.logKey(line), { enabled: () => this.keylogWanted() }));
    // Records leave as sealed pieces in one writev (see `send`), not joined by a copy.
    this.conn.joinOutput = false;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.handle(this.conn.feed(chunk)));
    socket.on('end', () => this.onSocketEnd());
    socket.on('error', (err) => this.destroy(err));
    socket.on('close', () => {
      if (!this.destroyed) this.destroy();
    });
    const timeout = options.handshakeTimeout ?? 30000;
    if (timeout > 0) {
      this.timer = setTimeout(() => this.destroy(new Error('TLS handshake timed out')), timeout);
      this.timer.unref();
    }
    this.handle(this.conn.poll());
  }

  /** TLSServer: the server to tell of keylog lines, 'secureConnection' and 'tlsClientError'. */
  acceptedBy(server: TLSServer): void {
    this.server = server;
    this.on('error', TLSSocket.reportClientError);
  }

  /** A TLSServer's socket failed: before its handshake completed that is the server's 'tlsClientError'. */
  private static reportClientError(this: TLSSocket, err: Error): void {
    if (!this.handshake) this.server?.emit('tlsClientError', err, this);
  }

  private logKey(line: string): void {
    const buf = Buffer.from(`${line}\n`, 'latin1');
    this.emit('keylog', buf);
    this.server?.emit('keylog', buf, this);
  }

  /** Hex lines are built only while someone listens (socket or server 'keylog'). */
  private keylogWanted(): boolean {
    return this.listenerCount('keylog') > 0 || (this.server?.listenerCount('keylog') ?? 0) > 0;
  }

  // --- information ---------------------------------------------------------------------------------

  /** Everything the handshake established, once 'secure' fired. */
  get handshakeInfo(): HandshakeInfo | undefined {
    return this.handshake;
  }

  get alpnProtocol(): string | false {
    return this.handshake?.alpnProtocol ?? false;
  }

  get servername(): string | undefined {
    return this.handshake?.servername;
  }

  /** As node:tls getCipher(). */
  getCipher(): { name: string; standardName: string; version: TlsVersionName } | undefined {
    const h = this.handshake;
    return h && { name: h.cipherSuiteName, standardName: h.cipherSuiteName, version: h.version };
  }

  getProtocol(): TlsVersionName | null {
    return this.handshake?.version ?? null;
  }

  /** True when the peer's certificate chain verified. */
  get authorized(): boolean {
    return this.handshake?.peerAuthorized ?? false;
  }

  get authorizationError(): string | undefined {
    return this.handshake?.peerAuthorizationError;
  }

  /** The peer's end-entity certificate, if it sent one. */
  get peerCertificate(): X509Certificate | undefined {
    const der = this.handshake?.peerCertificates[0];
    return der ? new X509Certificate(der) : undefined;
  }

  /** How the server (and the client, when it authenticated) proved its identity. */
  get handshakeMode(): { readonly server: HandshakeMode; readonly client: HandshakeMode | undefined } | undefined {
    const h = this.handshake;
    return h && { server: h.serverMode, client: h.clientMode };
  }

  /** Client: the latest session ticket, usable as `session` in `connect`. */
  getSession(): TlsSession | undefined {
    return this.lastSession;
  }

  isSessionReused(): boolean {
    return this.handshake?.resumed ?? false;
  }

  exportKeyingMaterial(length: number, label: string, context?: Uint8Array): Uint8Array {
    return this.conn.exportKeyingMaterial(label, length, context);
  }

  /** Sends a KeyUpdate; with `requestPeer` the peer updates its keys too. */
  keyUpdate(requestPeer = false): void {
    this.conn.keyUpdate(requestPeer);
    this.handle(this.conn.poll());
  }

  // --- driving the connection -----------------------------------------------------------------------

  /**
   * Writes record pieces (`writeRecordPieces`). `onWritten`, if given, runs once the socket has
   * written them; returns false (and drops `onWritten`) when nothing was written.
   */
  private send(output: Uint8Array[], onWritten?: () => void): boolean {
    if (output.length === 0 || !this.socket.writable) return false;
    // Socket write errors reach us through the socket's 'error' event (destroy), not here.
    writeRecordPieces(this.socket, output, onWritten && ((): void => onWritten()));
    return true;
  }

  /** Sends the output and handles the events of `p`; see `send` for `onWritten`. */
  private handle(p: Progress, onWritten?: () => void): boolean {
    const sent = this.send(p.output, onWritten);
    for (const e of p.events) {
      switch (e.type) {
        case 'handshake':
          this.handshake = e.info;
          if (this.timer) clearTimeout(this.timer);
          this.emit('secure');
          if (!this.isServer) this.emit('secureConnect');
          this.server?.emit('secureConnection', this);
          break;
        case 'data':
          // Not read at once (paused, or behind earlier data): the stream keeps it.
          if (!this.push(this.readableFlowing === true && this.readableLength === 0 ? e.data : unpinned(e.data))) this.socket.pause();
          break;
        case 'end':
          this.push(null);
          break;
        case 'session':
          this.lastSession = e.session;
          this.emit('session', e.session);
          break;
        case 'error':
          this.fail(e.error);
          return sent;
      }
    }
    if (p.waitFor) {
      // While a signer works the connection buffers input: stop reading so a peer cannot
      // make that buffer grow without bound.
      this.socket.pause();
      p.waitFor.then(
        () => {
          this.socket.resume();
          this.handle(this.conn.poll());
        },
        () => undefined,
      );
    }
    return sent;
  }

  private fail(error: TlsError): void {
    // Let the alert reach the peer, then tear down.
    const err = Object.assign(new Error(error.message, { cause: error }), { code: `ERR_TLS_${error.name}`, tlsError: error });
    this.failing = true;
    this.destroy(err);
  }

  private onSocketEnd(): void {
    if (!this.handshake) {
      this.destroy(Object.assign(new Error('socket closed before the TLS handshake completed'), { code: 'ECONNRESET' }));
      return;
    }
    this.push(null);
  }

  // --- Duplex ---------------------------------------------------------------------------------------

  override _read(): void {
    if (this.socket.isPaused()) this.socket.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.conn.write(chunk);
    this.flushWrites(callback);
  }

  override _writev(chunks: { chunk: Buffer }[], callback: (error?: Error | null) => void): void {
    this.conn.write(chunks.length === 1 ? chunks[0]!.chunk : Buffer.concat(chunks.map((c) => c.chunk)));
    this.flushWrites(callback);
  }

  /**
   * A write completes when the socket has written its records (as in node:tls), not at once:
   * writes made meanwhile wait in this stream's buffer and come back together through
   * `_writev`, so many small writes become full 16 KiB records and one socket write instead of
   * a record and a syscall each. This is also the backpressure towards the socket.
   */
  private flushWrites(callback: (error?: Error | null) => void): void {
    if (!this.handle(this.conn.poll(), callback)) callback();
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.conn.close();
    this.handle(this.conn.poll());
    this.socket.end(() => callback());
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.timer) clearTimeout(this.timer);
    // After a fatal error the alert is still queued on the socket: let it drain, then close.
    if (this.failing) this.socket.destroySoon();
    else this.socket.destroy();
    callback(error);
  }
}

// --- server ---------------------------------------------------------------------------------------

export interface CreateServerOptions extends ServerOptions, TLSSocketOptions {
  /** node:tls-style single certificate (PEM/DER); with `key`. */
  readonly cert?: CertificateKeyInput['cert'];
  readonly key?: CertificateKeyInput['key'];
}

/** A net.Server emitting 'secureConnection' (TLSSocket) and 'tlsClientError' (err, TLSSocket). */
export class TLSServer extends net.Server {
  readonly config: ServerConfig;

  constructor(options: CreateServerOptions, secureListener?: (socket: TLSSocket) => void) {
    // Half-open TCP: after the peer's FIN we must still be able to send our close_notify; the
    // TLSSocket ends the TCP side itself once its writable side is done.
    super({ allowHalfOpen: true });
    const certificates = [...(options.certificates ?? []), ...(options.cert !== undefined && options.key !== undefined ? [{ cert: options.cert, key: options.key }] : [])];
    this.config = new ServerConfig({ ...options, certificates });
    if (secureListener) this.on('secureConnection', secureListener);
    // Built once per server, not per connection: what a connection needs of the server it gets
    // through `acceptedBy` (fewer closures per connection, bench/results/socket-path.md).
    const makeConnection = (keylog: KeyLogger): ServerConnection => new ServerConnection(this.config, { keylog });
    this.on('connection', (raw: net.Socket) => new TLSSocket(raw, makeConnection, true, options).acceptedBy(this));
  }
}

export function createServer(options: CreateServerOptions, secureListener?: (socket: TLSSocket) => void): TLSServer {
  return new TLSServer(options, secureListener);
}

// --- client ---------------------------------------------------------------------------------------

export interface ConnectOptions extends ClientOptions, TLSSocketOptions {
  readonly host?: string;
  readonly port?: number;
  /** An already connected socket to run TLS over (host/port are then ignored). */
  readonly socket?: net.Socket;
  /** A ClientConfig to share parsed trust stores and client keys between connections. */
  readonly config?: ClientConfig;
}

/** Connects and starts the handshake; `secureConnectListener` runs on 'secureConnect'. */
export function connect(options: ConnectOptions, secureConnectListener?: () => void): TLSSocket {
  const host = options.host ?? 'localhost';
  const config = options.config ?? new ClientConfig({ ...options, servername: options.servername ?? (net.isIP(host) ? undefined : host) });
  const raw = options.socket ?? net.connect({ host, port: options.port ?? 443, allowHalfOpen: true });
  const servername = options.servername ?? (net.isIP(host) ? undefined : host);
  const make = (keylog: (line: string) => void): Connection =>
    new ClientConnection(config, {
      ...(servername !== undefined ? { servername } : {}),
      ...(options.session ? { session: options.session } : {}),
      keylog: Object.assign(
        (l: string) => {
          options.keylog?.(l);
          keylog(l);
        },
        // Before the socket exists (constructor) nobody can listen on it yet.
        { enabled: () => options.keylog !== undefined || (ref.socket?.listenerCount('keylog') ?? 0) > 0 },
      ),
    });
  const ref: { socket?: TLSSocket } = {};
  const tls = new TLSSocket(raw, make, false, options);
  ref.socket = tls;
  if (secureConnectListener) tls.once('secureConnect', secureConnectListener);
  return tls;
}
