/**
 * Keyless client: a small pool of persistent mutual-TLS connections to one key server.
 *
 * Many requests share a connection and are matched to their responses by id. Each request has a
 * deadline that covers waiting for a connection, sending and the answer. A lost connection fails
 * the requests in flight on it and is re-established on demand, with exponential backoff between
 * failed attempts (so a restarted key server is picked up again without anyone's help). Sockets
 * are unref'd while idle, and connection attempts always (requests waiting for one keep the
 * process alive by their own deadlines), so an idle client does not keep a process alive.
 *
 * Requests waiting for an answer are capped per connection (maxInFlightPerConnection); more wait
 * in a bounded queue of that connection, in order and each within its own deadline, and are sent
 * as answers come back; beyond the queue a request is refused at once (KeylessOverloadedError).
 * So a key server that stops answering costs this process at most cap + queue requests per
 * connection, each gone at its deadline, and a handshake waiting on it fails instead of piling up.
 *
 * A request that finds no connection with room waits in the pool's one queue, in order, for the
 * first connection that can take it: a burst made before any connection is up opens as many
 * connections as it fills and spreads over them as they come up, and the pool refuses at once
 * beyond what its connections hold (slots x (cap + queue)). A failed connection attempt, or a
 * lost connection's requests not yet written, go to a healthy connection instead of waiting out
 * the failed slot's backoff.
 */
import { connect as tlsConnect, type SecureContext, type TLSSocket } from 'node:tls';
import { isIP } from 'node:net';
import { randomBytes } from 'node:crypto';
import { clientSecureContext } from './client-context.js';
import { checkEncodable, decodeOperation, encodeMessage, FrameDecoder, type Operation } from './codec.js';
import { KeylessClosedError, KeylessError, KeylessOverloadedError, KeylessRemoteError, KeylessTimeoutError, KeylessUnavailableError } from './errors.js';
import { DEFAULT_PORT, ErrorCode, Opcode, opcodeName, PAD_TO, VERSION_MAJOR } from './protocol.js';
import { encodeSignMessage, MAX_SIGN_MESSAGE_LENGTH } from './sign-message.js';
import { skiHex } from './ski.js';

type Pem = string | Uint8Array;

export interface KeylessClientOptions {
  /** `host:port`, `[v6]:port` or `host` (port 2407). */
  readonly address: string;
  /** CA certificate(s) that the key server's certificate must chain to (PEM). */
  readonly ca: Pem | readonly Pem[];
  /**
   * Client certificate (chain) and key presented to the key server (PEM). Loaded when the client is
   * made: one node:tls cannot load (or a key of another certificate) throws KeylessConfigError.
   */
  readonly cert: Pem;
  readonly key: Pem;
  /** Name checked against the server certificate (default: the host of `address`). */
  readonly servername?: string;
  /** Default per-request deadline in ms (default 5000). */
  readonly timeoutMs?: number;
  /** Connections in the pool (default 1). */
  readonly poolSize?: number;
  /** Backoff between failed connection attempts: first and largest delay (default 100 ms, 10 s). */
  readonly minBackoffMs?: number;
  readonly maxBackoffMs?: number;
  /** Pad requests to this many bytes (default 1024, as kssl does; 0 = no padding). */
  readonly padTo?: number;
  /** Requests sent on one connection and not yet answered, at most (default DEFAULT_MAX_IN_FLIGHT_PER_CONNECTION). */
  readonly maxInFlightPerConnection?: number;
  /**
   * Requests waiting on one connection for one of those to be answered, at most (default
   * DEFAULT_MAX_QUEUED_PER_CONNECTION; 0: refuse at once beyond the in-flight cap).
   */
  readonly maxQueuedPerConnection?: number;
}

/**
 * Requests in flight per connection. Our key server reads a connection only while it holds less
 * than DEFAULT_MAX_QUEUED_BYTES_PER_CONNECTION (128 KiB) of requests and unread answers, and at most
 * 1,024 requests (its maxInFlightPerConnection): 128 requests padded to 1,024 bytes (PAD_TO) are
 * that budget. More in flight would not be answered sooner, only wait unread in TCP buffers, where
 * a deadline can no longer take them back; here they wait in our queue instead, where it can.
 * (A unit test checks this against the server's constants.)
 */
export const DEFAULT_MAX_IN_FLIGHT_PER_CONNECTION = 128;

/**
 * Requests queued per connection behind the in-flight cap. A queue longer than the key server
 * answers before the deadline only turns a fast refusal into a timeout 5 s later: 1,024 is about a
 * second of RSA-2048 signatures on one core. Each costs a closure and a timer, no bytes: requests
 * are encoded when sent.
 */
export const DEFAULT_MAX_QUEUED_PER_CONNECTION = 1024;

interface ConnectionLimits {
  readonly maxInFlight: number;
  readonly maxQueued: number;
}

export interface RequestOptions {
  /** Deadline for this request in ms (default: the client's timeoutMs). */
  readonly timeoutMs?: number;
  /**
   * Called with the serial of the connection that answered (serials count the connections this
   * client has made, from 1): a new serial means a new key server connection, e.g. after a
   * reconnect (the keyless signer verifies the first signature on each).
   */
  readonly answeredOn?: (connection: number) => void;
}

export type ConnectionState = 'idle' | 'connecting' | 'connected' | 'backoff' | 'closed';

interface ParsedAddress {
  readonly host: string;
  readonly port: number;
}

export function parseAddress(address: string): ParsedAddress {
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(address);
  if (v6) return { host: v6[1]!, port: v6[2] ? portNumber(v6[2], address) : DEFAULT_PORT };
  const parts = address.split(':');
  if (parts.length === 1 && parts[0]) return { host: parts[0], port: DEFAULT_PORT };
  if (parts.length === 2 && parts[0]) return { host: parts[0], port: portNumber(parts[1]!, address) };
  if (isIP(address) === 6) return { host: address, port: DEFAULT_PORT };
  throw new Error(`key server address "${address}" is not host:port`);
}

function portNumber(text: string, address: string): number {
  const port = Number(text);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`key server address "${address}" has a bad port`);
  return port;
}

interface Pending {
  readonly resolve: (op: Operation) => void;
  readonly reject: (err: Error) => void;
  readonly timer: NodeJS.Timeout;
}

/** A request waiting for room under the in-flight cap: not encoded yet, its deadline running. */
interface Queued {
  readonly op: Operation;
  readonly deadline: number;
  readonly padTo: number;
  readonly resolve: (op: Operation) => void;
  readonly reject: (err: Error) => void;
  timer: NodeJS.Timeout | undefined;
}

/**
 * A queued request whose connection failed before it was written: the key server never saw it, so
 * it goes on another connection as if it were new (KeylessClient.onConnection), without using the
 * one retry that a request lost after it was written gets.
 */
class NotSent extends KeylessUnavailableError {
  constructor(readonly reason: Error) {
    super(reason.message, { cause: reason });
  }
}

/**
 * Times a request is placed again because its connection failed before writing it: each needs a
 * connection of the pool to fail under it, and its deadline bounds them too; this bounds the loop
 * by count as well.
 */
const MAX_PLACEMENTS = 8;

/** One TLS connection with its in-flight requests. */
class Connection {
  private readonly pending = new Map<number, Pending>();
  /** Requests beyond the in-flight cap, oldest first (a Set: a timed-out one leaves in O(1)). */
  private readonly queue = new Set<Queued>();
  private readonly decoder = new FrameDecoder();
  private nextId = randomBytes(4).readUInt32BE(0);
  private closedError: Error | undefined;
  /** Responses received; a connection closed before its first answer counts as a failed attempt. */
  answered = 0;
  /**
   * Whether the key server at the other end of this connection knows our sign-message extension.
   * Learnt per connection, because that is the unit of change: behind a Kubernetes Service each
   * connection goes to one replica, and during a rolling upgrade replicas old and new differ; a
   * replica's software changes only by restarting it, which closes the connection. So a new
   * connection asks again (one extra round trip on its first signature if the answer is no) and an
   * open one never needs to.
   */
  messageSigning: 'unknown' | 'supported' | 'unsupported' = 'unknown';
  private lastReceivedAt = 0;

  constructor(
    private readonly socket: TLSSocket,
    private readonly server: string,
    /** Which of the client's connections this is, counting from 1. */
    readonly serial: number,
    private readonly limits: ConnectionLimits,
    private readonly onClose: (conn: Connection, err: Error) => void,
    /** Called when answers or timeouts made room under the cap that this connection's own queue left. */
    private readonly onRoom: () => void,
  ) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.fail(new KeylessUnavailableError(`connection to key server ${server} failed: ${err.message}`, { cause: err })));
    socket.on('close', () => {
      // With TLS 1.3 the server checks our certificate after our handshake is done, and Node's
      // server closes without an alert we can read: say so instead of a bare "closed".
      const hint =
        this.answered === 0
          ? ' before answering anything (does the key server trust the CA of our client certificate?)'
          : '';
      this.fail(new KeylessUnavailableError(`connection to key server ${server} closed${hint}`));
    });
    socket.setKeepAlive(true, 15_000);
    socket.unref();
  }

  get usable(): boolean {
    return this.closedError === undefined && !this.socket.destroyed;
  }

  get inFlight(): number {
    return this.pending.size;
  }

  get queued(): number {
    return this.queue.size;
  }

  /** Sends now under the in-flight cap, else queues within the deadline, else refuses. */
  send(op: Operation, deadline: number, padTo: number): Promise<Operation> {
    if (this.closedError) return Promise.reject(this.closedError);
    if (this.pending.size < this.limits.maxInFlight) return this.dispatch(op, deadline, padTo);
    if (this.queue.size >= this.limits.maxQueued) {
      return Promise.reject(
        new KeylessOverloadedError(
          `key server ${this.server}: ${opcodeName(op.opcode)} refused without sending it: ${this.pending.size} requests are waiting for answers on this connection (the cap, maxInFlightPerConnection) and ${this.queue.size} more are queued (maxQueuedPerConnection); the key server answers slower than requests arrive`,
        ),
      );
    }
    // Encoded only when sent, but refused now if it cannot be: later, it would fail alone in the
    // middle of moving the queue.
    try {
      checkEncodable(op, { padTo });
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return new Promise<Operation>((resolve, reject) => {
      const waiter: Queued = { op, deadline, padTo, resolve, reject, timer: undefined };
      waiter.timer = setTimeout(() => {
        this.queue.delete(waiter);
        reject(this.queuedTooLong(op));
      }, Math.max(0, deadline - Date.now()));
      this.queue.add(waiter);
    });
  }

  /** Sends now. Never throws: a request that cannot be encoded is its own promise's rejection, no one else's. */
  private dispatch(op: Operation, deadline: number, padTo: number): Promise<Operation> {
    const id = this.allocateId();
    let bytes: Uint8Array;
    try {
      bytes = encodeMessage(id, op, { padTo });
    } catch (err) {
      return Promise.reject(err as Error);
    }
    const sentAt = Date.now();
    return new Promise<Operation>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new KeylessTimeoutError(`key server ${this.server} did not answer ${opcodeName(op.opcode)} in time`));
        // Nothing at all arrived since this request went out: the peer may be gone without a
        // FIN/RST (host down, network partition). Drop the connection so the next request
        // reconnects instead of queueing behind a dead socket.
        if (this.lastReceivedAt < sentAt) {
          this.fail(new KeylessUnavailableError(`key server ${this.server} stopped answering; connection dropped`));
        } else {
          this.sendQueued();
        }
      }, Math.max(0, deadline - sentAt));
      this.pending.set(id, { resolve, reject, timer });
      this.updateRef();
      this.socket.write(bytes);
    });
  }

  private queuedTooLong(op: Operation): KeylessTimeoutError {
    return new KeylessTimeoutError(
      `key server ${this.server} did not answer ${opcodeName(op.opcode)} in time: it was never sent, queued behind ${this.pending.size} unanswered requests (maxInFlightPerConnection)`,
    );
  }

  /** Moves queued requests, oldest first, into the room answers and timeouts made. */
  private sendQueued(): void {
    const now = Date.now();
    for (const waiter of this.queue) {
      if (this.closedError || this.pending.size >= this.limits.maxInFlight) break;
      this.queue.delete(waiter);
      clearTimeout(waiter.timer);
      // Its timer is due: sent now, it would time out at once and, with nothing received since,
      // drop a connection that is answering.
      if (waiter.deadline <= now) waiter.reject(this.queuedTooLong(waiter.op));
      else this.dispatch(waiter.op, waiter.deadline, waiter.padTo).then(waiter.resolve, waiter.reject);
    }
    this.updateRef();
    if (!this.closedError && this.pending.size < this.limits.maxInFlight) this.onRoom();
  }

  close(): void {
    this.fail(new KeylessClosedError(this.server));
  }

  private allocateId(): number {
    for (;;) {
      this.nextId = (this.nextId + 1) >>> 0;
      if (!this.pending.has(this.nextId)) return this.nextId;
    }
  }

  private updateRef(): void {
    if (this.pending.size > 0 || this.queue.size > 0) this.socket.ref();
    else this.socket.unref();
  }

  private onData(chunk: Buffer): void {
    this.lastReceivedAt = Date.now();
    try {
      for (const frame of this.decoder.push(chunk)) {
        if (frame.kind !== 'message') throw new KeylessError(ErrorCode.formatError, 'oversized response');
        if (frame.header.major !== VERSION_MAJOR) {
          throw new KeylessError(ErrorCode.versionMismatch, `response with protocol version ${frame.header.major}`);
        }
        const op = decodeOperation(frame.body);
        const waiter = this.pending.get(frame.header.id);
        if (!waiter) continue; // answer to a request that already timed out
        this.pending.delete(frame.header.id);
        this.answered++;
        clearTimeout(waiter.timer);
        waiter.resolve(op);
      }
      this.sendQueued();
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      this.fail(new KeylessUnavailableError(`key server ${this.server} sent a malformed response: ${reason}`, { cause: err }));
    }
  }

  private fail(err: Error): void {
    if (this.closedError) return;
    this.closedError = err;
    for (const [, waiter] of this.pending) {
      clearTimeout(waiter.timer);
      waiter.reject(err);
    }
    this.pending.clear();
    // Never written: the pool may place them on another connection as if they were new.
    const notSent = new NotSent(err);
    for (const waiter of this.queue) {
      clearTimeout(waiter.timer);
      waiter.reject(notSent);
    }
    this.queue.clear();
    this.socket.destroy();
    this.onClose(this, err);
  }
}

/** One pool slot: a connection, or the attempt to make one, with its backoff state. */
class Slot {
  conn: Connection | undefined;
  /** A connection attempt is under way. */
  connecting = false;
  /** Ends the attempt under way: its socket and its timer (KeylessClient.close). */
  abort: (() => void) | undefined;
  backoffMs = 0;
  retryAt = 0;
  lastError: Error | undefined;
}

/**
 * A request waiting for a connection: none is up (a cold start, or all were lost), or every one is
 * at its in-flight cap while another connection is on its way.
 */
interface Waiter {
  readonly deadline: number;
  /** Puts the request on `conn` at once: the next choice sees it in that connection's load. */
  readonly place: (conn: Connection) => void;
  readonly reject: (err: Error) => void;
  timer: NodeJS.Timeout | undefined;
}

export class KeylessClient {
  readonly server: string;
  private readonly host: string;
  private readonly port: number;
  private readonly slots: Slot[];
  private readonly timeoutMs: number;
  private readonly minBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly padTo: number;
  private readonly limits: ConnectionLimits;
  private closed = false;
  /** Requests waiting for a connection, oldest first; a new request waits behind them. */
  private readonly waiters = new Set<Waiter>();
  /** Set while every slot is backing off and requests wait: the end of the first backoff. */
  private retryTimer: NodeJS.Timeout | undefined;
  /** Connections established so far (each one's serial). */
  private established = 0;

  /** CA, client certificate and key, loaded once for every connection (./client-context.ts). */
  private readonly secureContext: SecureContext;

  /** Throws on an address that is not host:port, and KeylessConfigError on credentials node:tls cannot load. */
  constructor(private readonly options: KeylessClientOptions) {
    const { host, port } = parseAddress(options.address);
    this.host = host;
    this.port = port;
    this.server = options.address;
    this.secureContext = clientSecureContext(options, options.address);
    this.slots = Array.from({ length: Math.max(1, options.poolSize ?? 1) }, () => new Slot());
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.minBackoffMs = options.minBackoffMs ?? 100;
    this.maxBackoffMs = options.maxBackoffMs ?? 10_000;
    this.padTo = options.padTo ?? PAD_TO;
    this.limits = {
      maxInFlight: Math.max(1, options.maxInFlightPerConnection ?? DEFAULT_MAX_IN_FLIGHT_PER_CONNECTION),
      maxQueued: Math.max(0, options.maxQueuedPerConnection ?? DEFAULT_MAX_QUEUED_PER_CONNECTION),
    };
  }

  /** Requests sent and not yet answered, over all connections. */
  get inFlight(): number {
    return this.slots.reduce((n, s) => n + (s.conn?.inFlight ?? 0), 0);
  }

  /** Requests queued behind the in-flight caps, over all connections. */
  get queued(): number {
    return this.slots.reduce((n, s) => n + (s.conn?.queued ?? 0), 0);
  }

  /** State of the pool: connected if any connection is up. */
  get state(): ConnectionState {
    if (this.closed) return 'closed';
    if (this.slots.some((s) => s.conn?.usable)) return 'connected';
    if (this.slots.some((s) => s.connecting)) return 'connecting';
    if (this.slots.some((s) => s.retryAt > Date.now())) return 'backoff';
    return 'idle';
  }

  /** The last connection error, if the pool is not connected. */
  get lastError(): Error | undefined {
    return this.slots.find((s) => s.lastError)?.lastError;
  }

  /**
   * Sends one request and returns the response operation (opcode response or pong). An error
   * response throws KeylessRemoteError; no answer in time throws KeylessTimeoutError.
   */
  async request(op: Operation, options: RequestOptions = {}): Promise<Operation> {
    const deadline = Date.now() + (options.timeoutMs ?? this.timeoutMs);
    const response = await this.onConnection(op.opcode, deadline, (conn) => conn.send(op, deadline, this.padTo), options.answeredOn);
    return this.checked(op, response);
  }

  /** Asks the key server to sign `payload` (a digest, or the message for Ed25519) with key `ski`. */
  async sign(ski: Uint8Array, opcode: number, payload: Uint8Array, options: RequestOptions = {}): Promise<Uint8Array> {
    return this.signatureOf(opcode, await this.request({ opcode, ski, payload }, options));
  }

  /**
   * Has the key server sign the whole `message` with TLS signature scheme `scheme` (our extension,
   * Opcode.signMessage), or, on a connection whose server answered the extension "bad opcode", the
   * documented digest request that `digestRequest` makes. Messages too long for one request take
   * the digest way too.
   */
  async signMessage(
    ski: Uint8Array,
    scheme: number,
    message: Uint8Array,
    digestRequest: () => { readonly opcode: number; readonly payload: Uint8Array },
    options: RequestOptions = {},
  ): Promise<Uint8Array> {
    const deadline = Date.now() + (options.timeoutMs ?? this.timeoutMs);
    const viaDigest = async (conn: Connection): Promise<[Operation, Operation]> => {
      const { opcode, payload } = digestRequest();
      const op: Operation = { opcode, ski, payload };
      return [op, await conn.send(op, deadline, this.padTo)];
    };
    const [op, response] = await this.onConnection(Opcode.signMessage, deadline, async (conn): Promise<[Operation, Operation]> => {
      if (conn.messageSigning === 'unsupported' || message.length === 0 || message.length > MAX_SIGN_MESSAGE_LENGTH) {
        return viaDigest(conn);
      }
      const op: Operation = { opcode: Opcode.signMessage, ski, payload: encodeSignMessage({ scheme, message }) };
      const response = await conn.send(op, deadline, this.padTo);
      // Only an unprobed connection learns "unsupported": a server that has signed a message on
      // this connection does not forget the opcode, and its bad opcode then is a real error.
      if (conn.messageSigning === 'unknown' && response.opcode === Opcode.error && response.payload?.[0] === ErrorCode.badOpcode) {
        conn.messageSigning = 'unsupported';
        return viaDigest(conn);
      }
      if (response.opcode === Opcode.response) conn.messageSigning = 'supported';
      return [op, response];
    }, options.answeredOn);
    return this.signatureOf(op.opcode, this.checked(op, response));
  }

  /**
   * Whether the connections now open speak the sign-message extension (tests, diagnostics):
   * 'unknown' until a signature has been asked for on one.
   */
  get messageSigning(): 'unknown' | 'supported' | 'unsupported' {
    const states = this.slots.flatMap((s) => (s.conn?.usable ? [s.conn.messageSigning] : []));
    return states.find((s) => s !== 'unknown') ?? 'unknown';
  }

  /**
   * Runs `send` on a connection. A request queued on a connection that failed before writing it
   * is placed again as if new. A request lost with its connection after it was written is sent
   * once more, on a healthy connection or a fresh one, while the deadline allows: the key server
   * may have signed it already, but signing (and ping) changes nothing at the key server, so a
   * second signature of the same content costs it one operation and harms no one, and the first
   * answer is lost with the connection anyway. Once only: a request that breaks connections (or
   * a key server that crashes on it) must not take the pool down one connection after another.
   */
  private async onConnection<T>(
    opcode: number,
    deadline: number,
    send: (conn: Connection) => Promise<T>,
    answeredOn?: (connection: number) => void,
  ): Promise<T> {
    const run = async (conn: Connection): Promise<T> => {
      const result = await send(conn);
      answeredOn?.(conn.serial);
      return result;
    };
    // A connection with room comes back at once and the request is on it in the same tick (send
    // puts it there before its first await), so the requests of one burst each see those before
    // them and spread over the pool; a waiting request is put on its connection the same way.
    const attempt = (): Promise<T> => {
      const conn = this.choose();
      return conn ? run(conn) : this.whenPlaced(opcode, deadline, run);
    };
    let retried = false;
    for (let placed = 1; ; placed++) {
      try {
        return await attempt();
      } catch (err) {
        if (err instanceof NotSent) {
          if (this.closed || Date.now() >= deadline || placed >= MAX_PLACEMENTS) throw err.reason;
          continue;
        }
        if (!(err instanceof KeylessUnavailableError) || err instanceof KeylessTimeoutError || err instanceof KeylessOverloadedError || this.closed) throw err;
        if (retried || Date.now() >= deadline) throw err;
        retried = true;
      }
    }
  }

  private checked(op: Operation, response: Operation): Operation {
    if (response.opcode === Opcode.error) {
      const code = response.payload?.[0] ?? ErrorCode.internalError;
      throw new KeylessRemoteError(code, op.ski ? skiHex(op.ski) : undefined, this.server, opcodeName(op.opcode));
    }
    return response;
  }

  private signatureOf(opcode: number, response: Operation): Uint8Array {
    if (response.opcode !== Opcode.response || response.payload === undefined) {
      throw new KeylessUnavailableError(`key server ${this.server} answered ${opcodeName(opcode)} with ${opcodeName(response.opcode)}`);
    }
    return response.payload;
  }

  /** Health check: a ping echoed as pong. Resolves with the round-trip time in ms. */
  async ping(options: RequestOptions = {}): Promise<number> {
    const payload = randomBytes(8);
    const started = performance.now();
    const response = await this.request({ opcode: Opcode.ping, payload }, options);
    if (response.opcode !== Opcode.pong || !response.payload || !Buffer.from(response.payload).equals(payload)) {
      throw new KeylessUnavailableError(`key server ${this.server} did not echo the ping`);
    }
    return performance.now() - started;
  }

  /**
   * Closes the pool: connection attempts end (their sockets and timers with them), and every
   * request not answered yet, waiting for a connection, queued or in flight, fails at once with
   * KeylessClosedError, as does any request made afterwards.
   */
  async close(): Promise<void> {
    this.closed = true;
    this.stopRetryTimer();
    for (const slot of this.slots) {
      slot.abort?.();
      slot.conn?.close();
      slot.conn = undefined;
    }
    const closed = new KeylessClosedError(this.server);
    for (const waiter of this.waiters) {
      clearTimeout(waiter.timer);
      waiter.reject(closed);
    }
    this.waiters.clear();
    await Promise.resolve();
  }

  /**
   * The connection a new request goes on now, or none: it waits for one (whenPlaced). Requests
   * already waiting go first, so a new one never overtakes them.
   */
  private choose(): Connection | undefined {
    if (this.closed || this.waiters.size > 0) return undefined;
    const conn = this.pick();
    // Busy: open another connection for the requests to come (they spread over more of the key
    // server's connections, and replicas behind a Service). This one goes on the busy connection
    // while it has room, rather than waiting for a handshake.
    if (conn && this.slots.length > 1 && load(conn) > 0) this.grow();
    return conn;
  }

  /**
   * The least busy connection while it has room under its in-flight cap. At the cap it still
   * takes the request into its queue, unless another connection is on its way (connecting, or a
   * slot free to connect): then the request waits for whichever has room first. Busy counts the
   * queued requests too: by in-flight alone, once every connection is at its cap all would queue
   * on the first one (and be refused beyond its queue while the others have room).
   */
  private pick(): Connection | undefined {
    const best = this.leastBusy();
    if (!best || best.inFlight < this.limits.maxInFlight) return best;
    const now = Date.now();
    return this.slots.some((s) => s.connecting || this.canConnect(s, now)) ? undefined : best;
  }

  /** The usable connection with the fewest requests in flight and queued. */
  private leastBusy(): Connection | undefined {
    let best: Connection | undefined;
    for (const slot of this.slots) {
      const c = slot.conn;
      if (c?.usable && (!best || load(c) < load(best))) best = c;
    }
    return best;
  }

  private canConnect(slot: Slot, now: number): boolean {
    return !slot.connecting && !slot.conn?.usable && slot.retryAt <= now;
  }

  /**
   * Waits for a connection that can take the request, within its deadline. The pool holds at most
   * what its connections would (slots x (in-flight cap + queue)): beyond, refused at once.
   */
  private whenPlaced<T>(opcode: number, deadline: number, run: (conn: Connection) => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new KeylessClosedError(this.server));
    const { maxInFlight, maxQueued } = this.limits;
    if (this.inFlight + this.queued + this.waiters.size >= this.slots.length * (maxInFlight + maxQueued)) {
      return Promise.reject(
        new KeylessOverloadedError(
          `key server ${this.server}: ${opcodeName(opcode)} refused without sending it: ${this.inFlight} requests are waiting for answers, ${this.queued} are queued and ${this.waiters.size} wait for a connection, all that the pool's ${this.slots.length} connections hold (${maxInFlight} in flight and ${maxQueued} queued each: maxInFlightPerConnection, maxQueuedPerConnection); the key server answers slower than requests arrive`,
        ),
      );
    }
    return new Promise<T>((resolve, reject) => {
      const waiter: Waiter = {
        deadline,
        place: (conn) => void run(conn).then(resolve, reject),
        reject,
        timer: undefined,
      };
      waiter.timer = setTimeout(() => {
        this.waiters.delete(waiter);
        if (this.waiters.size === 0) this.stopRetryTimer();
        // Connections up, all at their caps, while another was on its way: it was never sent.
        if (this.leastBusy()) reject(new KeylessTimeoutError(`key server ${this.server} did not answer ${opcodeName(opcode)} in time: it was never sent, waiting with ${this.waiters.size} others for room under the pool's in-flight caps (${this.inFlight} requests unanswered, ${this.queued} queued)`));
        else reject(this.unavailable(deadline));
      }, Math.max(0, deadline - Date.now()));
      this.waiters.add(waiter);
      this.drain();
    });
  }

  /**
   * Places the waiting requests, oldest first, on connections that can take them now, and opens
   * connections for the rest. Called whenever that may have changed: a connection up, an attempt
   * failed, a connection lost, room under a cap, a backoff over.
   */
  private drain(): void {
    for (const waiter of this.waiters) {
      const conn = this.pick();
      if (!conn) break;
      this.waiters.delete(waiter);
      clearTimeout(waiter.timer);
      waiter.place(conn);
    }
    if (this.waiters.size === 0 || this.closed) {
      this.stopRetryTimer();
      return;
    }
    this.grow();
    if (this.slots.some((s) => s.connecting || s.conn?.usable)) return;
    // Every slot is backing off: those whose deadline comes first fail now, saying why; the others
    // wait for the first backoff to end.
    const retryAt = Math.min(...this.slots.map((s) => s.retryAt));
    for (const waiter of this.waiters) {
      if (waiter.deadline > retryAt) continue;
      this.waiters.delete(waiter);
      clearTimeout(waiter.timer);
      waiter.reject(this.unavailable(waiter.deadline));
    }
    if (this.waiters.size > 0 && !this.retryTimer) {
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        this.drain();
      }, retryAt - Date.now());
    }
  }

  /** No request waits for the end of a backoff any more: nothing keeps the process alive for it. */
  private stopRetryTimer(): void {
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }

  /**
   * Opens the connections the requests need: enough for those waiting and those on connections at
   * the in-flight cap each (a burst before any connection is up opens as many as it fills, not
   * one), and one more while every connection is busy and none is on its way.
   */
  private grow(): void {
    if (this.closed) return;
    let open = 0;
    let requests = this.waiters.size;
    let idle = false;
    let connecting = false;
    for (const s of this.slots) {
      if (s.conn?.usable) {
        open++;
        requests += load(s.conn);
        if (load(s.conn) === 0) idle = true;
      } else if (s.connecting) {
        open++;
        connecting = true;
      }
    }
    let wanted = Math.ceil(requests / this.limits.maxInFlight);
    if (!idle && !connecting && requests > 0) wanted = Math.max(wanted, open + 1);
    const now = Date.now();
    for (const s of this.slots) {
      if (open >= wanted) break;
      if (!this.canConnect(s, now)) continue;
      this.connect(s);
      open++;
    }
  }

  private unavailable(deadline: number): KeylessTimeoutError {
    const reason = this.lastError ? `: ${this.lastError.message}` : '';
    const late = Date.now() >= deadline ? 'no connection before the deadline' : 'not reachable before the deadline';
    return new KeylessTimeoutError(`key server ${this.server} ${late}${reason}`);
  }

  /** Starts a connection attempt on `slot`; its end, either way, places waiting requests. */
  private connect(slot: Slot): void {
    const servername = this.options.servername ?? (isIP(this.host) ? undefined : this.host);
    let socket: TLSSocket;
    try {
      socket = tlsConnect({ host: this.host, port: this.port, secureContext: this.secureContext, ...(servername !== undefined ? { servername } : {}) });
    } catch (err) {
      // The credentials were loaded when the client was made; whatever else throws here is a
      // failed attempt like any other (backoff; the requests that cannot wait for it fail saying
      // why), never an exception out of whatever callback asked for the connection.
      this.recordFailure(slot, err instanceof Error ? err : new Error(String(err)));
      return;
    }
    slot.connecting = true;
    socket.setNoDelay(true);
    const connectTimer = setTimeout(() => socket.destroy(new Error('TLS connect timed out')), 10_000);
    // The attempt alone keeps no process alive (an idle client does not): the requests waiting
    // for it do, by their deadline timers, and once they are gone (timed out against a key server
    // that accepts TCP but never completes TLS) the attempt ends by itself or with the process.
    socket.unref();
    connectTimer.unref();
    const ended = (): void => {
      clearTimeout(connectTimer);
      slot.connecting = false;
      slot.abort = undefined;
    };
    // destroy() without an error emits no 'error': the attempt just ends, nothing is recorded.
    slot.abort = () => {
      ended();
      socket.destroy();
    };
    const onError = (err: Error): void => {
      ended();
      this.recordFailure(slot, err);
      this.drain();
    };
    socket.once('error', onError);
    socket.once('secureConnect', () => {
      socket.off('error', onError);
      ended();
      const onClose = (c: Connection, err: Error): void => {
        if (slot.conn === c) slot.conn = undefined;
        // Closed before answering anything (e.g. our certificate was refused after a TLS 1.3
        // handshake): back off as for a failed connect, instead of reconnecting in a loop.
        if (c.answered === 0 && !this.closed) this.recordFailure(slot, err);
        else slot.lastError = err;
        this.drain();
      };
      const onRoom = (): void => {
        if (this.waiters.size > 0) this.drain();
      };
      const conn = new Connection(socket, this.server, ++this.established, this.limits, onClose, onRoom);
      slot.conn = conn;
      slot.backoffMs = 0;
      slot.retryAt = 0;
      slot.lastError = undefined;
      if (this.closed) conn.close();
      this.drain();
    });
  }

  private recordFailure(slot: Slot, err: Error): void {
    slot.lastError = err;
    slot.backoffMs = slot.backoffMs === 0 ? this.minBackoffMs : Math.min(this.maxBackoffMs, slot.backoffMs * 2);
    // Jitter (50–100 %) so a fleet of clients does not reconnect in lockstep.
    slot.retryAt = Date.now() + Math.round(slot.backoffMs * (0.5 + Math.random() / 2));
  }
}

function load(c: Connection): number {
  return c.inFlight + c.queued;
}
