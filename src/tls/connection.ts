/**
 * What server and client connections share: the sans-IO surface (bytes in; bytes, events and
 * an optional "wait for" promise out), the post-handshake protocol (application data, alerts,
 * KeyUpdate, close_notify), and the single place where an error becomes an alert.
 *
 *   const progress = conn.feed(bytesFromSocket);
 *   socket.write(...progress.output); handle(progress.events);
 *   if (progress.waitFor) await progress.waitFor, then conn.poll() for the rest.
 *
 * Invariants: no method throws to the caller (every failure becomes an `error` event plus an
 * alert); the first error sticks and ends the connection; while `waitFor` is pending (an async
 * signer at work) received bytes are buffered, not processed.
 */
import { AlertDescription, AlertLevel, isClosureAlert } from './alerts.js';
import { ContentType, HandshakeType, KeyUpdateRequest, cipherSuiteName } from './constants.js';
import { AlertReceived, InternalError, asTlsError, fatalAlertFor, TlsError, PeerMisbehaved } from './errors.js';
import type { ApplicationKeys, HandshakeKeys } from './handshake-keys.js';
import { exportKeyingMaterial, nextTrafficSecret, type Transcript } from './key-schedule.js';
import { decodeKeyUpdate, encodeHandshake } from './messages/handshake.js';
import { encodeAlert } from './messages/alert.js';
import { RecordLayer, type InboundItem } from './record-layer.js';
import { RecordOpener, RecordSealer } from './record.js';
import type { SuiteParams } from './suites.js';
import type { TlsSession } from './session.js';
import type { TlsVersionName } from './version.js';

/** How the peer (or we) authenticated: for logs, metrics and the DC work. */
export interface HandshakeMode {
  /** 'certificate' (signature with the certificate key), 'psk' (resumption), or a label set by a credential hook, e.g. 'delegated-credential'. */
  readonly authentication: string;
  /** The CertificateVerify signature scheme, when there was one. */
  readonly signatureScheme?: number;
  /** Free-form details from the credential hook (e.g. DC algorithm and expiry). */
  readonly details?: unknown;
}

export interface HandshakeInfo {
  readonly version: TlsVersionName;
  readonly cipherSuite: number;
  readonly cipherSuiteName: string;
  /** The (EC)DHE group; 0 for a resumed TLS 1.2 session (no key exchange). */
  readonly group: number;
  readonly alpnProtocol: string | undefined;
  readonly servername: string | undefined;
  readonly resumed: boolean;
  readonly helloRetryRequest: boolean;
  /** The peer's certificate chain as sent (DER, leaf first); empty when none. */
  readonly peerCertificates: readonly Uint8Array[];
  /** True when the peer's chain was verified against the trust store. */
  readonly peerAuthorized: boolean;
  /** Why the peer's chain was not authorized, when it was not. */
  readonly peerAuthorizationError: string | undefined;
  /** How the server authenticated (on both sides). */
  readonly serverMode: HandshakeMode;
  /** How the client authenticated, when it did. */
  readonly clientMode: HandshakeMode | undefined;
}

export type TlsEvent =
  /** The handshake completed; application data may flow. */
  | { readonly type: 'handshake'; readonly info: HandshakeInfo }
  /** Decrypted application data. */
  | { readonly type: 'data'; readonly data: Uint8Array }
  /** The peer sent close_notify: no more data will arrive (we may still write). */
  | { readonly type: 'end' }
  /** A fatal error; the alert (if any) is in the output. The connection is dead. */
  | { readonly type: 'error'; readonly error: TlsError; readonly sentAlert: AlertDescription | undefined }
  /** Client only: the server issued a session ticket usable for resumption. */
  | { readonly type: 'session'; readonly session: TlsSession };

export interface Progress {
  /**
   * Bytes to send to the peer, in order: whole records in each element, or, when the
   * connection's `joinOutput` is false, pieces of records to be written together (writev).
   */
  readonly output: Uint8Array[];
  readonly events: TlsEvent[];
  /** Present while the handshake waits on async work (a remote signer); call `poll()` when it settles. It never rejects. */
  readonly waitFor: Promise<void> | undefined;
}

/**
 * SSLKEYLOGFILE line writer: receives one line without the trailing newline. An optional
 * `enabled()` lets an adapter say nobody listens now, so the lines (hex of every secret) are
 * not even built.
 */
export type KeyLogger = ((line: string) => void) & { readonly enabled?: () => boolean };

/** Post-handshake traffic state: the only thing KeyUpdate and data need. */
export interface TrafficState {
  readonly suite: SuiteParams;
  readSecret: Uint8Array;
  writeSecret: Uint8Array;
  /** Computed on first use: most connections never export keying material. */
  readonly exporterMasterSecret: () => Uint8Array;
  /**
   * TLS 1.2 only: its exporter (RFC 5705). Its presence also says there is no KeyUpdate: a
   * TLS 1.2 connection that reaches the AEAD record limit ends instead (2^24 records, 256 GiB).
   */
  readonly tls12Exporter?: (label: string, context: Uint8Array, length: number) => Uint8Array;
}

/**
 * What a handshake kept in a module of its own (TLS 1.2, `tls12/`) needs from its connection:
 * the record layer, the async pause, completion, key logging and events.
 */
export interface HandshakeHost {
  readonly records: RecordLayer;
  continueWith<T>(value: T | Promise<T>, then: (v: T) => void): void;
  completeHandshake(traffic: TrafficState, info: HandshakeInfo): void;
  logSecret(label: string, clientRandom: Uint8Array, secret: Uint8Array | (() => Uint8Array)): void;
  emit(event: TlsEvent): void;
  /** Sends a warning alert and carries on (TLS 1.2's no_renegotiation, RFC 5246 §7.2.2). */
  warn(description: AlertDescription): void;
}

/**
 * A handshake that a module of its own runs on a connection (TLS 1.2, `tls12/`) once version
 * negotiation chose it: the connection hands it every handshake message, ChangeCipherSpec and
 * post-handshake message from then on.
 */
export interface HostedHandshake {
  /** True once its handshake completed. */
  readonly connected: boolean;
  /** Whether a handshake message of `type` may arrive now (asked at the message header). */
  expectsHandshake(type: number): boolean;
  onHandshakeMessage(type: number, body: Uint8Array, raw: Uint8Array): void;
  onChangeCipherSpec(): void;
  /** A message after the handshake (expectsHandshake allowed it): handled or refused. */
  onPostHandshakeMessage(type: number, body: Uint8Array): void;
  /** The connection failed (a fatal alert sent or received), at any point: forget what it made resumable. */
  onFailed?(): void;
}

/**
 * A connection's handshake state: a discriminated union on `kind`, each variant holding only what
 * is valid at that point. 'Connected' is the state once the handshake completed.
 */
export interface HandshakeState {
  readonly kind: string;
}

/**
 * The handshake message types each state accepts; under 'Connected' the post-handshake ones.
 * The one table behind both the record layer's check at each message header and the dispatch.
 */
export type AcceptedMessages<State extends HandshakeState> = { readonly [K in State['kind']]: readonly number[] };

/** KeyUpdates received with no application data in between before we call it abuse. */
const MAX_KEY_UPDATES_WITHOUT_DATA = 32;

/**
 * The shared half of a connection. The subclass (server.ts, client.ts) holds the TLS 1.3
 * handshake state and one method per message or flight; the dispatch to them (which message a
 * state accepts, when messages are post-handshake ones, the TLS 1.2 hand-over) is here, once.
 */
export abstract class Connection<State extends HandshakeState = HandshakeState> {
  /** The record layer asks `expectsHandshake` at each handshake message header. */
  protected readonly records = new RecordLayer((type) => this.expectsHandshake(type));
  /** The TLS 1.3 handshake state (the subclass's union). */
  protected abstract state: State;
  /** Set once version negotiation chose TLS 1.2 (`handOver`); it gets every handshake message then. */
  private hosted: HostedHandshake | undefined;
  private readonly accepted: Readonly<Record<string, readonly number[]>>;
  private events: TlsEvent[] = [];
  private error: TlsError | undefined;
  private pending: Promise<void> | undefined;
  private appQueue: Uint8Array[] = [];
  private writeClosed = false;
  private readClosed = false;
  private owesKeyUpdate = false;
  private keyUpdatesWithoutData = 0;
  protected traffic: TrafficState | undefined;
  protected handshakeInfo: HandshakeInfo | undefined;
  /**
   * True (the default): each element of `Progress.output` holds whole records (pending records
   * are joined into one buffer). False: `output` lists the pieces as sealed (header,
   * ciphertext, tag per record), which an adapter writes in order in one go (a corked socket
   * does one writev) without the copy of the join.
   */
  joinOutput = true;

  constructor(accepted: AcceptedMessages<State>, protected readonly keylog?: KeyLogger) {
    this.accepted = accepted;
  }

  /** The state name, for diagnostics and tests. */
  get stateName(): State['kind'] {
    return this.state.kind;
  }

  /** Feeds received bytes and runs the protocol as far as possible. */
  feed(data: Uint8Array): Progress {
    if (!this.error && !this.readClosed) {
      this.records.push(data);
      this.drive();
    }
    return this.poll();
  }

  /** Collects output and events produced so far (after `waitFor` settled, or after `write`). */
  poll(): Progress {
    let output: Uint8Array[] = [];
    try {
      output = this.records.takeOutput(this.joinOutput);
    } catch (e) {
      this.fail(e);
      output = this.records.takeOutput(this.joinOutput);
    }
    const events = this.events;
    this.events = [];
    return { output, events, waitFor: this.pending };
  }

  /** True once the handshake completed and until a fatal error. */
  get isConnected(): boolean {
    return this.traffic !== undefined && !this.error;
  }

  /** Received bytes held back until a record or message is complete (the adapter's timeout covers a peer that stalls). */
  get bufferedBytes(): number {
    return this.records.bufferedInput;
  }

  get info(): HandshakeInfo | undefined {
    return this.handshakeInfo;
  }

  get failure(): TlsError | undefined {
    return this.error;
  }

  /** Queues application data (sent once the handshake completes). Call `poll()` for the bytes. */
  write(data: Uint8Array): void {
    if (this.error || this.writeClosed || data.length === 0) return;
    if (!this.traffic) {
      this.appQueue.push(data);
      return;
    }
    try {
      this.sendApplicationData(data);
    } catch (e) {
      this.fail(e);
    }
  }

  /** Sends close_notify (after any queued data). We may still receive until the peer closes. */
  close(): void {
    if (this.error || this.writeClosed) return;
    if (this.traffic) this.flushAppQueue();
    this.writeClosed = true;
    this.sendAlert(AlertLevel.warning, AlertDescription.close_notify);
  }

  /** Rekeys our sending direction; with `requestPeerUpdate` the peer rekeys too (§4.6.3). */
  keyUpdate(requestPeerUpdate = false): void {
    if (this.error || !this.traffic || this.writeClosed || this.traffic.tls12Exporter) return;
    try {
      this.sendKeyUpdate(requestPeerUpdate ? KeyUpdateRequest.update_requested : KeyUpdateRequest.update_not_requested);
    } catch (e) {
      this.fail(e);
    }
  }

  /** TLS-Exporter (RFC 8446 §7.5) once connected. */
  exportKeyingMaterial(label: string, length: number, context: Uint8Array = new Uint8Array(0)): Uint8Array {
    if (!this.traffic) throw new InternalError('exporter used before the handshake completed');
    if (this.traffic.tls12Exporter) return this.traffic.tls12Exporter(label, context, length);
    return exportKeyingMaterial(this.traffic.suite, this.traffic.exporterMasterSecret(), label, context, length);
  }

  // --- driving -------------------------------------------------------------------------------

  /** Processes buffered input until more bytes are needed, we pause, or we fail. */
  protected drive(): void {
    try {
      while (!this.pending && !this.error && !this.readClosed) {
        const item = this.records.next();
        if (!item) break;
        this.dispatch(item);
      }
      if (this.owesKeyUpdate && this.traffic && !this.error && !this.writeClosed) {
        this.owesKeyUpdate = false;
        this.sendKeyUpdate(KeyUpdateRequest.update_not_requested);
      }
    } catch (e) {
      this.fail(e);
    }
  }

  private dispatch(item: InboundItem): void {
    switch (item.kind) {
      case 'alert':
        return this.onAlert(item.alert.description);
      case 'change_cipher_spec':
        // TLS 1.3: middlebox compatibility, ignored (the record layer checked it is allowed);
        // TLS 1.2: the peer's keys change here.
        return this.hosted?.onChangeCipherSpec();
      case 'application_data':
        if (!this.traffic || !this.acceptsApplicationData()) throw new PeerMisbehaved('ApplicationDataBeforeHandshakeComplete', 'application data before the handshake completed');
        this.keyUpdatesWithoutData = 0;
        if (item.data.length > 0) this.emit({ type: 'data', data: item.data });
        return;
      case 'handshake':
        if (this.traffic && this.isPostHandshake()) return this.onPostHandshake(item.type, item.body);
        if (this.hosted) return this.hosted.onHandshakeMessage(item.type, item.body, item.raw);
        // The record layer asked at the header; asked again, as the subclass relies on it.
        if (!this.expectsHandshake(item.type)) {
          throw new PeerMisbehaved('UnexpectedHandshakeMessage', `handshake message ${item.type} in state ${this.state.kind}`);
        }
        return this.onHandshakeMessage(item.type, item.body, item.raw);
    }
  }

  /** Whether handshake messages are now post-handshake ones. */
  private isPostHandshake(): boolean {
    return this.hosted ? this.hosted.connected : this.state.kind === 'Connected';
  }

  /**
   * Whether a handshake message of `type` may arrive in the current state: asked at its header,
   * so that an unexpected message is refused (unexpected_message) before its body is buffered.
   */
  private expectsHandshake(type: number): boolean {
    if (this.hosted) return this.hosted.expectsHandshake(type);
    return this.accepted[this.state.kind]!.includes(type);
  }

  private onAlert(description: number): void {
    if (description === AlertDescription.close_notify) {
      this.readClosed = true;
      if (!this.traffic) throw new AlertReceived(AlertDescription.close_notify);
      this.emit({ type: 'end' });
      return;
    }
    if (isClosureAlert(description)) return; // user_canceled: a close_notify follows
    throw new AlertReceived(description as AlertDescription);
  }

  /** §4.6: messages after the handshake. KeyUpdate here; the subclass handles the rest. */
  private onPostHandshake(type: number, body: Uint8Array): void {
    if (this.hosted) return this.hosted.onPostHandshakeMessage(type, body);
    if (type !== HandshakeType.key_update) return this.onPostHandshakeMessage(type, body);
    const request = decodeKeyUpdate(body);
    if (++this.keyUpdatesWithoutData > MAX_KEY_UPDATES_WITHOUT_DATA) {
      throw new PeerMisbehaved('TooManyKeyUpdates', 'too many KeyUpdates without application data');
    }
    const t = this.traffic!;
    const old = t.readSecret;
    t.readSecret = nextTrafficSecret(t.suite, old);
    this.records.setReader(new RecordOpener(t.suite, t.readSecret));
    old.fill(0); // §7.2: the previous generation is deleted once the next is derived
    if (request === KeyUpdateRequest.update_requested) this.owesKeyUpdate = true;
  }

  private sendKeyUpdate(request: KeyUpdateRequest): void {
    const t = this.traffic!;
    this.records.queueHandshake(encodeHandshake(HandshakeType.key_update, (w) => w.u8(request), 8));
    const old = t.writeSecret;
    t.writeSecret = nextTrafficSecret(t.suite, old);
    this.records.setWriter(new RecordSealer(t.suite, t.writeSecret));
    old.fill(0);
  }

  private sendApplicationData(data: Uint8Array): void {
    if (this.owesKeyUpdate) {
      this.owesKeyUpdate = false;
      this.sendKeyUpdate(KeyUpdateRequest.update_not_requested);
    }
    // Rekey before the AEAD usage limit (RFC 8446 §5.5).
    const sealer = this.records.writeSealer;
    const records = Math.ceil(data.length / 16384);
    if (sealer && sealer.sequence + records >= sealer.suite.recordLimit) {
      if (this.traffic!.tls12Exporter) throw new InternalError('TLS 1.2 connection reached the AEAD record limit; it ends here (reconnect)');
      this.sendKeyUpdate(KeyUpdateRequest.update_not_requested);
    }
    this.records.writeFragments(ContentType.application_data, data);
  }

  private flushAppQueue(): void {
    const q = this.appQueue;
    this.appQueue = [];
    for (const d of q) this.sendApplicationData(d);
  }

  // --- for subclasses --------------------------------------------------------------------------

  /**
   * A message during the handshake, raw = header + body (for the transcript). Its type is one
   * the current state accepts (the subclass's `AcceptedMessages`).
   */
  protected abstract onHandshakeMessage(type: number, body: Uint8Array, raw: Uint8Array): void;

  /** A post-handshake message other than KeyUpdate that 'Connected' accepts (the client's NewSessionTicket). */
  protected onPostHandshakeMessage(type: number, _body: Uint8Array): void {
    throw new PeerMisbehaved('UnexpectedHandshakeMessage', `handshake message ${type} after the handshake`);
  }

  /** From now on `handshake` (TLS 1.2) runs on this connection; the subclass's state says 'Tls12'. */
  protected handOver(handshake: HostedHandshake): void {
    this.hosted = handshake;
  }

  /** This connection's primitives for a handshake module (`tls12/`). */
  protected host(): HandshakeHost {
    return {
      records: this.records,
      continueWith: (value, then) => this.continueWith(value, then),
      completeHandshake: (traffic, info) => this.completeHandshake(traffic, info),
      logSecret: (label, clientRandom, secret) => this.logSecret(label, clientRandom, secret),
      emit: (event) => this.emit(event),
      warn: (description) => {
        if (!this.writeClosed) this.sendAlert(AlertLevel.warning, description);
      },
    };
  }

  /** Whether application data may be received now. */
  protected acceptsApplicationData(): boolean {
    return true;
  }

  protected emit(event: TlsEvent): void {
    this.events.push(event);
  }

  /** Marks the handshake complete: traffic keys are in place; queued data goes out. */
  protected completeHandshake(traffic: TrafficState, info: HandshakeInfo): void {
    this.traffic = traffic;
    this.handshakeInfo = info;
    this.records.changeCipherSpecAllowance = 0;
    this.records.handshaking = false;
    this.emit({ type: 'handshake', info });
    this.flushAppQueue();
  }

  /**
   * Runs async work without blocking: input is buffered until `work` settles, then `then`
   * continues the handshake. Sync results continue immediately (the fast path).
   */
  protected continueWith<T>(value: T | Promise<T>, then: (v: T) => void): void {
    if (!(value instanceof Promise)) {
      then(value);
      return;
    }
    this.pending = value.then(
      (v) => {
        this.pending = undefined;
        try {
          then(v);
        } catch (e) {
          this.fail(e);
          return;
        }
        this.drive();
      },
      (e: unknown) => {
        this.pending = undefined;
        // A TLS verdict reached inside the chain (no common scheme after an async credential
        // lookup, say) keeps its own alert; anything else is our failure, internal_error.
        if (e instanceof TlsError) this.fail(e);
        else this.fail(new InternalError(`async credential operation failed: ${e instanceof Error ? e.message : String(e)}`, { cause: e }));
      },
    );
  }

  /** Queues a handshake message of ours and adds it to the transcript. */
  protected queueHandshake(transcript: Transcript, message: Uint8Array): void {
    transcript.add(message);
    this.records.queueHandshake(message);
  }

  /** SSLKEYLOGFILE lines of the handshake traffic secrets (both sides log the same). */
  protected logHandshakeKeys(clientRandom: Uint8Array, keys: HandshakeKeys): void {
    this.logSecret('CLIENT_HANDSHAKE_TRAFFIC_SECRET', clientRandom, keys.clientTrafficSecret);
    this.logSecret('SERVER_HANDSHAKE_TRAFFIC_SECRET', clientRandom, keys.serverTrafficSecret);
  }

  /** SSLKEYLOGFILE lines of the application traffic secrets and the exporter (derived only if logged). */
  protected logApplicationKeys(clientRandom: Uint8Array, keys: ApplicationKeys): void {
    if (!this.keylogging()) return;
    this.logSecret('CLIENT_TRAFFIC_SECRET_0', clientRandom, keys.clientTrafficSecret);
    this.logSecret('SERVER_TRAFFIC_SECRET_0', clientRandom, keys.serverTrafficSecret);
    this.logSecret('EXPORTER_SECRET', clientRandom, keys.exporterMasterSecret());
  }

  protected logSecret(label: string, clientRandom: Uint8Array, secret: Uint8Array | (() => Uint8Array)): void {
    if (!this.keylogging()) return;
    const value = typeof secret === 'function' ? secret() : secret;
    this.keylog!(`${label} ${Buffer.from(clientRandom).toString('hex')} ${Buffer.from(value).toString('hex')}`);
  }

  /** Whether someone listens for keylog lines now (otherwise they are not even built). */
  private keylogging(): boolean {
    return this.keylog !== undefined && this.keylog.enabled?.() !== false;
  }

  protected suiteName(id: number): string {
    return cipherSuiteName(id);
  }

  /**
   * The one place where a failure becomes an alert: the first error sticks, the
   * alert goes out (protected when we have write keys), and the connection ends.
   */
  protected fail(e: unknown): void {
    if (this.error) return;
    const error = asTlsError(e);
    this.error = error;
    this.pending = undefined;
    const alert = fatalAlertFor(error);
    if (alert !== undefined && !this.writeClosed) {
      try {
        this.sendAlert(AlertLevel.fatal, alert);
      } catch {
        // Nothing more can be sent; the error event still reports the cause.
      }
    }
    this.writeClosed = true;
    this.readClosed = true;
    this.hosted?.onFailed?.();
    this.emit({ type: 'error', error, sentAlert: alert });
  }

  private sendAlert(level: number, description: number): void {
    this.records.writeFragments(ContentType.alert, encodeAlert(level, description));
  }
}
