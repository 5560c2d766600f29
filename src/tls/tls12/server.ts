/**
 * TLS 1.2 server handshake (RFC 5246 §7.3, RFC 8422 for ECDHE, RFC 7627, RFC 5746, RFC 5077),
 * sans-IO, run by `ServerConnection` once version negotiation (../version.ts) chose TLS 1.2.
 *
 *   Full:     ClientHello  -->
 *                          <--  ServerHello, Certificate, ServerKeyExchange,
 *                               CertificateRequest*, ServerHelloDone
 *             Certificate*, ClientKeyExchange, CertificateVerify*, [ChangeCipherSpec], Finished  -->
 *                          <--  [NewSessionTicket], [ChangeCipherSpec], Finished
 *   Resumed:  ClientHello (session_ticket, or a session ID)  -->
 *                          <--  ServerHello, [ChangeCipherSpec], Finished
 *             [ChangeCipherSpec], Finished  -->
 *
 * A client that takes tickets gets one (RFC 5077); one that does not gets a session ID in
 * ServerHello, kept in the config's session cache (./session-cache.ts) with what a ticket would
 * carry. Either resumes under the same checks (usableSession).
 *
 * One method per flight, as Go's handshake_server.go. What we insist on: ECDHE with an AEAD,
 * the extended master secret (a client without it is refused), no renegotiation (a ClientHello
 * after the handshake gets a warning no_renegotiation, ./renegotiation.ts). Delegated credentials are TLS 1.3 only (RFC 9345
 * §4): extension 34 is hidden from the credential hook, which then gives the certificate.
 * The ServerKeyExchange is signed through the `Signer` (a keyless one may answer later).
 * With requestCert (client authentication, ./client-auth.ts): the client's Certificate is
 * verified as in TLS 1.3 (../peer-auth.ts), and its CertificateVerify over the messages so far.
 */
import type { HandshakeHost, HandshakeInfo, HandshakeMode } from '../connection.js';
import { CipherSuite, HandshakeType, NamedGroup, ProtocolVersion, SignatureScheme } from '../constants.js';
import { defaultCredential, type CertifiedKey, type CredentialChoice } from '../credentials.js';
import { InternalError, PeerMisbehaved } from '../errors.js';
import { generateKeyShare, type KeyShare } from '../key-exchange.js';
import { Transcript, verifyDataEqual } from '../key-schedule.js';
import type { ClientHello } from '../messages/client-hello.js';
import { encodeHandshake, frameHandshake } from '../messages/handshake.js';
import type { AuthenticatedPeer } from '../peer-auth.js';
import { randomBytesPooled } from '../random.js';
import type { ServerConfig } from '../server.js';
import { MAX_TICKET_SERVER_NAME, sessionExpired, type TicketState } from '../session.js';
import { schemeParams } from '../signature-schemes.js';
import type { Signer } from '../signer.js';
import { markDowngrade } from '../version.js';
import {
  decodeClientKeyExchange,
  decodeFinished12,
  encodeEcdheParams,
  serverKeyExchangeContent,
  writeCertificate12,
  writeNewSessionTicket12,
  writeServerHello12,
  writeServerKeyExchange,
} from './messages.js';
import {
  authenticateClient12,
  certificateRequest12,
  checkCertificateVerify12,
  resumedClientIdentity,
  tls12ClientSchemes,
  type ClientIdentity,
} from './client-auth.js';
import { extendedMasterSecret, finishedVerifyData12, keyBlock, type Tls12TrafficKeys } from './prf.js';
import { tls12TrafficState, type Negotiated } from './negotiated.js';
import { Tls12RecordOpener, Tls12RecordSealer } from './record.js';
import { RenegotiationRefusal } from './renegotiation.js';
import { sessionCacheOf, SESSION_ID_LENGTH } from './session-cache.js';
import { TLS12_GROUPS, tls12SuiteParams, type Tls12SuiteParams } from './suites.js';

/** After ServerHelloDone: our ephemeral key waits for the client's. */
interface AwaitingKeyExchange extends Negotiated {
  readonly share: KeyShare;
  readonly serverMode: HandshakeMode;
  /** With requestCert; undefined otherwise (nothing of it is kept then). */
  readonly clientAuth: ClientAuthProgress | undefined;
}

/**
 * Client authentication under way: every handshake message so far, raw, in order (CertificateVerify
 * signs them all with the hash of the scheme the client picks, RFC 5246 §7.4.8, so no running
 * hash can stand in for them), and the client's Certificate once it came.
 */
interface ClientAuthProgress {
  readonly messages: Uint8Array[];
  /** The client's chain; undefined until its Certificate, and after an empty one. */
  readonly peer: AuthenticatedPeer | undefined;
}

/** After the master secret: keys known, Finished messages to check and send. */
interface Keyed extends Negotiated {
  readonly group: number;
  readonly masterSecret: Uint8Array;
  readonly keys: Tls12TrafficKeys;
  readonly serverMode: HandshakeMode;
  /** Resumed: our Finished went first and the client's comes last. */
  readonly resumed: boolean;
  /** The client's certificate (this handshake's, or the resumed session's); undefined without one. */
  readonly client: ClientIdentity | undefined;
}

type Tls12ServerState =
  | { readonly kind: 'ExpectClientCertificate'; readonly hs: AwaitingKeyExchange & { readonly clientAuth: ClientAuthProgress } }
  | { readonly kind: 'ExpectClientKeyExchange'; readonly hs: AwaitingKeyExchange }
  | { readonly kind: 'ExpectCertificateVerify'; readonly hs: Keyed; readonly peer: AuthenticatedPeer; readonly messages: readonly Uint8Array[] }
  | { readonly kind: 'ExpectChangeCipherSpec'; readonly hs: Keyed }
  | { readonly kind: 'ExpectFinished'; readonly hs: Keyed }
  | { readonly kind: 'SendingFlight' }
  | { readonly kind: 'Connected' };

export class Tls12ServerHandshake {
  private state: Tls12ServerState = { kind: 'SendingFlight' };
  private readonly renegotiation: RenegotiationRefusal;
  /** The session ID our ServerHello gave a full handshake (a client without tickets); kept in the cache once it completes. */
  private newSessionId: Uint8Array | undefined;
  /** The ID of the cached session this connection resumed or put in the cache (forgotten if it fails). */
  private cachedSessionId: Uint8Array | undefined;

  constructor(
    private readonly config: ServerConfig,
    private readonly host: HandshakeHost,
  ) {
    this.renegotiation = new RenegotiationRefusal(host);
  }

  get stateName(): Tls12ServerState['kind'] {
    return this.state.kind;
  }

  get connected(): boolean {
    return this.state.kind === 'Connected';
  }

  /** Which handshake messages may arrive now (asked at each message header). */
  expectsHandshake(type: number): boolean {
    switch (this.state.kind) {
      // RFC 5246 §7.4.6: asked for one, the client sends a Certificate (maybe empty) first.
      case 'ExpectClientCertificate':
        return type === HandshakeType.certificate;
      case 'ExpectClientKeyExchange':
        return type === HandshakeType.client_key_exchange;
      case 'ExpectCertificateVerify':
        return type === HandshakeType.certificate_verify;
      case 'ExpectFinished':
        return type === HandshakeType.finished;
      case 'Connected':
        // Let a renegotiation attempt reach onPostHandshakeMessage for its warning.
        return type === HandshakeType.client_hello;
      case 'ExpectChangeCipherSpec':
      case 'SendingFlight':
        return false;
    }
  }

  onHandshakeMessage(type: number, body: Uint8Array, raw: Uint8Array): void {
    const s = this.state;
    if (s.kind === 'ExpectClientCertificate' && type === HandshakeType.certificate) return this.onClientCertificate(s.hs, body, raw);
    if (s.kind === 'ExpectClientKeyExchange' && type === HandshakeType.client_key_exchange) return this.onClientKeyExchange(s.hs, body, raw);
    if (s.kind === 'ExpectCertificateVerify' && type === HandshakeType.certificate_verify) return this.onClientCertificateVerify(s, body, raw);
    if (s.kind === 'ExpectFinished' && type === HandshakeType.finished) return this.onClientFinished(s.hs, body, raw);
    throw new PeerMisbehaved('UnexpectedHandshakeMessage', `TLS 1.2: handshake message ${type} in state ${s.kind}`);
  }

  onChangeCipherSpec(): void {
    const s = this.state;
    if (s.kind !== 'ExpectChangeCipherSpec') throw new PeerMisbehaved('UnexpectedChangeCipherSpec', `TLS 1.2: change_cipher_spec in state ${s.kind}`);
    // RFC 5246 §7.1: from here the client's records are protected under the new keys.
    this.host.records.setReader(new Tls12RecordOpener(s.hs.suite, s.hs.keys.clientKey, s.hs.keys.clientIv));
    this.state = { kind: 'ExpectFinished', hs: s.hs };
  }

  /**
   * After the handshake only a ClientHello can arrive (expectsHandshake): a renegotiation,
   * refused with a warning; it is not even decoded, as nothing of it is used.
   */
  onPostHandshakeMessage(type: number): void {
    if (type === HandshakeType.client_hello) return this.renegotiation.refuse('ClientHello');
    throw new PeerMisbehaved('UnexpectedHandshakeMessage', `TLS 1.2: handshake message ${type} after the handshake`);
  }

  // --- ClientHello: checks, resumption or the full handshake --------------------------------------

  onClientHello(hello: ClientHello, raw: Uint8Array, alpn: string | undefined): void {
    checkClientHello12(hello);
    const offered = this.config.tls12Suites.filter((s) => hello.cipherSuites.includes(s.id));
    if (offered.length === 0) {
      throw new PeerMisbehaved('NoCipherSuitesInCommon', 'TLS 1.2: no ECDHE suite with AES-GCM or ChaCha20-Poly1305 offered (CBC, RSA key transport and static DH are not supported)');
    }
    const transcript = new Transcript();
    transcript.add(raw);
    const resumed = this.acceptTicket(hello, offered) ?? this.acceptSessionId(hello, offered);
    if (resumed) return this.doResumeHandshake(hello, transcript, alpn, resumed.state, resumed.suite);
    // With requestCert the messages are kept for the client's CertificateVerify, from this one on.
    const clientAuth: ClientAuthProgress | undefined = this.config.options.requestCert === true ? { messages: [raw], peer: undefined } : undefined;
    this.host.continueWith(this.chooseCredential(hello), (choice) => this.doFullHandshake(hello, transcript, alpn, offered, choice, clientAuth));
  }

  /** RFC 5077 §3.4: a ticket we sealed, for a suite the client still offers, for the same name. */
  private acceptTicket(hello: ClientHello, offered: readonly Tls12SuiteParams[]): { state: TicketState; suite: Tls12SuiteParams } | undefined {
    const ticket = hello.extensions.sessionTicket;
    if (!ticket || ticket.length === 0 || this.config.sessionTickets === 0) return undefined;
    const state = this.config.ticketKey.open(ticket);
    if (!state) return undefined;
    const usable = this.usableSession(state, hello, offered);
    if (!usable) state.psk.fill(0); // opened but not resumed: its master secret goes now (as TLS 1.3)
    return usable;
  }

  /** RFC 5246 §7.4.1.2: the ID of a session in our cache, under the checks a ticket gets. */
  private acceptSessionId(hello: ClientHello, offered: readonly Tls12SuiteParams[]): { state: TicketState; suite: Tls12SuiteParams } | undefined {
    if (hello.legacySessionId.length !== SESSION_ID_LENGTH) return undefined;
    const state = sessionCacheOf(this.config)?.get(hello.legacySessionId, this.config.nowMs());
    const usable = state && this.usableSession(state, hello, offered);
    // A copy: the hello may be a view into a buffer the record layer reuses.
    if (usable) this.cachedSessionId = Uint8Array.from(hello.legacySessionId);
    return usable;
  }

  /**
   * RFC 5246 §7.2.2: a connection ended by a fatal alert (sent or received) must not be resumed:
   * the session it resumed, or the one it put in the cache, leaves the cache. (A ticket cannot be
   * taken back; neither RFC 5077 nor RFC 8446 asks it.)
   */
  onFailed(): void {
    if (this.cachedSessionId) sessionCacheOf(this.config)?.delete(this.cachedSessionId);
  }

  /** A session (from a ticket or the cache) resumes here: its suite still offered, within its lifetime, the same name, its client authentication still standing. */
  private usableSession(state: TicketState, hello: ClientHello, offered: readonly Tls12SuiteParams[]): { state: TicketState; suite: Tls12SuiteParams } | undefined {
    // A TLS 1.3 ticket names a TLS 1.3 suite and is not found here, and the other way round.
    const suite = offered.find((s) => s.id === state.cipherSuite);
    if (!suite || state.psk.length !== 48) return undefined;
    const now = this.config.nowMs();
    if (sessionExpired(state, now)) return undefined;
    if ((hello.extensions.serverName ?? '') !== state.servername) return undefined;
    // The client authentication the session records must still stand here (session.ts ClientAuthPolicy).
    if (!this.config.clientAuth.accepts(state, now)) return undefined;
    return { state, suite };
  }

  /**
   * The credential: the selectCredential hook (keyless, and DCs for TLS 1.3) sees the hello
   * without extension 34, so it answers with the certificate; then the TLS 1.2 scheme for it.
   */
  private chooseCredential(hello: ClientHello): Tls12Credential | Promise<Tls12Credential> {
    const sigalgs = hello.extensions.signatureAlgorithms;
    // RFC 5246 §7.4.1.4.1: without the extension the client means SHA-1, which we never sign with.
    if (!sigalgs) throw new PeerMisbehaved('NoSignatureSchemesInCommon', 'TLS 1.2 client without signature_algorithms (SHA-1 only)');
    const groups = hello.extensions.supportedGroups;
    const fallback = (): Tls12Credential | undefined => defaultCredential12(this.config.keys, hello.extensions.serverName, sigalgs, groups);
    const hook = this.config.options.selectCredential;
    if (!hook) return orRefuse(fallback());
    const withoutDc: ClientHello = hello.extensions.delegatedCredential
      ? { ...hello, extensions: { ...hello.extensions, delegatedCredential: undefined } }
      : hello;
    const fromHook = (choice: CredentialChoice | undefined): Tls12Credential => {
      const usable = choice && choice.label !== 'delegated-credential' ? tls12Credential(choice, sigalgs, groups) : undefined;
      return orRefuse(usable ?? fallback());
    };
    const choice = hook(withoutDc, () => defaultCredential(this.config.keys, hello.extensions.serverName, sigalgs));
    return choice instanceof Promise ? choice.then(fromHook) : fromHook(choice);
  }

  // --- the full handshake's first flight --------------------------------------------------------------

  private doFullHandshake(
    hello: ClientHello,
    transcript: Transcript,
    alpn: string | undefined,
    offered: readonly Tls12SuiteParams[],
    credential: Tls12Credential,
    clientAuth: ClientAuthProgress | undefined,
  ): void {
    const suite = offered.find((s) => s.auth === credential.auth);
    if (!suite) throw new PeerMisbehaved('NoCipherSuitesInCommon', `TLS 1.2: the client offers no ECDHE_${credential.auth.toUpperCase()} suite for our ${credential.auth} certificate`);
    const group = this.chooseGroup(hello);
    const share = generateKeyShare(group);
    if (!share) throw new InternalError(`no key share implementation for group ${group}`);
    transcript.start(suite.hash);
    const serverRandom = this.serverRandom();
    const sendTicket = hello.extensions.sessionTicket !== undefined && this.config.sessionTickets > 0;
    // A client that takes no ticket can resume by session ID, where the cache is on.
    this.newSessionId = !sendTicket && sessionCacheOf(this.config) ? randomBytesPooled(SESSION_ID_LENGTH) : undefined;
    this.queue(transcript, this.serverHello(hello, suite, serverRandom, this.newSessionId ?? NO_SESSION_ID, alpn, sendTicket, true), clientAuth);
    this.queue(transcript, certificateMessage12(credential.chain), clientAuth);
    const params = encodeEcdheParams(group, share.publicKey);
    const content = serverKeyExchangeContent(hello.random, serverRandom, params);
    const { signer, scheme } = credential;
    this.host.continueWith(signer.sign(scheme, content), (signature) => {
      this.queue(transcript, encodeHandshake(HandshakeType.server_key_exchange, (w) => writeServerKeyExchange(w, params, scheme, signature), 16 + params.length + signature.length), clientAuth);
      // RFC 5246 §7.4.4: CertificateRequest follows ServerKeyExchange.
      if (clientAuth) this.queue(transcript, certificateRequest12(this.config.verifySchemes), clientAuth);
      this.queue(transcript, frameHandshake(HandshakeType.server_hello_done, new Uint8Array(0)), clientAuth);
      const serverMode: HandshakeMode = {
        authentication: credential.label,
        signatureScheme: scheme,
        ...(credential.details !== undefined ? { details: credential.details } : {}),
      };
      const hs = { hello, suite, transcript, serverRandom, alpn, share, serverMode, clientAuth };
      this.state = clientAuth ? { kind: 'ExpectClientCertificate', hs: { ...hs, clientAuth } } : { kind: 'ExpectClientKeyExchange', hs };
    });
  }

  /**
   * RFC 8422 §5.1.1: our most preferred group the client lists; without the list, P-256 (§4).
   * Only the ECDHE groups of TLS12_GROUPS: a hybrid or post-quantum group enabled for TLS 1.3
   * has no ServerECDHParams encoding.
   */
  private chooseGroup(hello: ClientHello): number {
    const theirs = hello.extensions.supportedGroups ?? [NamedGroup.secp256r1];
    const group = this.config.groups.find((g) => TLS12_GROUPS.includes(g) && theirs.includes(g));
    if (group === undefined) throw new PeerMisbehaved('NoKeyExchangeGroupsInCommon', 'TLS 1.2: no ECDHE group in common (x25519, P-256, P-384)');
    return group;
  }

  // --- client authentication: the client's Certificate (RFC 5246 §7.4.6) ----------------------------

  private onClientCertificate(hs: AwaitingKeyExchange & { readonly clientAuth: ClientAuthProgress }, body: Uint8Array, raw: Uint8Array): void {
    const peer = authenticateClient12(body, this.config);
    hs.transcript.add(raw);
    hs.clientAuth.messages.push(raw);
    this.state = {
      kind: 'ExpectClientKeyExchange',
      hs: { hello: hs.hello, suite: hs.suite, transcript: hs.transcript, serverRandom: hs.serverRandom, alpn: hs.alpn, share: hs.share, serverMode: hs.serverMode, clientAuth: { messages: hs.clientAuth.messages, peer } },
    };
  }

  // --- ClientKeyExchange: the extended master secret and the keys ---------------------------------------

  private onClientKeyExchange(hs: AwaitingKeyExchange, body: Uint8Array, raw: Uint8Array): void {
    const point = decodeClientKeyExchange(body);
    const preMasterSecret = hs.share.computeSecret(point);
    hs.transcript.add(raw);
    hs.clientAuth?.messages.push(raw);
    // RFC 7627 §4: the session hash covers ClientHello through ClientKeyExchange.
    const masterSecret = extendedMasterSecret(hs.suite, preMasterSecret, hs.transcript.current());
    preMasterSecret.fill(0);
    this.host.logSecret('CLIENT_RANDOM', hs.hello.random, masterSecret);
    const keys = keyBlock(hs.suite, masterSecret, hs.hello.random, hs.serverRandom);
    // Field by field, no spread (see the performance notes in ../README.md).
    const keyed: Keyed = { hello: hs.hello, suite: hs.suite, transcript: hs.transcript, serverRandom: hs.serverRandom, alpn: hs.alpn, group: hs.share.group, masterSecret, keys, serverMode: hs.serverMode, resumed: false, client: undefined };
    // RFC 5246 §7.4.8: a client that sent a certificate proves it holds the key, next.
    const peer = hs.clientAuth?.peer;
    this.state = peer ? { kind: 'ExpectCertificateVerify', hs: keyed, peer, messages: hs.clientAuth!.messages } : { kind: 'ExpectChangeCipherSpec', hs: keyed };
  }

  // --- client authentication: CertificateVerify (RFC 5246 §7.4.8) --------------------------------------

  private onClientCertificateVerify(s: Extract<Tls12ServerState, { kind: 'ExpectCertificateVerify' }>, body: Uint8Array, raw: Uint8Array): void {
    const { hs, peer } = s;
    const mode = checkCertificateVerify12(body, peer, tls12ClientSchemes(this.config.verifySchemes), s.messages);
    hs.transcript.add(raw);
    const client: ClientIdentity = { chain: peer.chain, authorized: peer.authorized, authorizationError: peer.authorizationError, validUntil: peer.validUntil, mode };
    this.state = {
      kind: 'ExpectChangeCipherSpec',
      hs: { hello: hs.hello, suite: hs.suite, transcript: hs.transcript, serverRandom: hs.serverRandom, alpn: hs.alpn, group: hs.group, masterSecret: hs.masterSecret, keys: hs.keys, serverMode: hs.serverMode, resumed: false, client },
    };
  }

  // --- the client's Finished; our tickets, ChangeCipherSpec and Finished ------------------------------------

  private onClientFinished(hs: Keyed, body: Uint8Array, raw: Uint8Array): void {
    const received = decodeFinished12(body);
    const expected = finishedVerifyData12(hs.suite, hs.masterSecret, 'client', hs.transcript.current());
    if (!verifyDataEqual(expected, received)) throw new PeerMisbehaved('IncorrectFinished', 'client Finished does not verify');
    hs.transcript.add(raw);
    if (!hs.resumed) {
      if (hs.hello.extensions.sessionTicket !== undefined && this.config.sessionTickets > 0) this.sendTicket(hs);
      else if (this.newSessionId && sessionCacheOf(this.config)?.put(this.newSessionId, this.sessionState(hs))) this.cachedSessionId = this.newSessionId;
      this.sendChangeCipherSpecAndFinished(hs);
    }
    this.state = { kind: 'Connected' };
    this.complete(hs);
  }

  /** What a session resumes from, in a ticket or in the session cache alike. */
  private sessionState(hs: Keyed): TicketState {
    return {
      cipherSuite: hs.suite.id,
      psk: hs.masterSecret,
      issuedAt: this.config.nowMs(),
      ageAdd: 0,
      lifetimeSeconds: this.config.ticketLifetimeSeconds,
      servername: hs.hello.extensions.serverName ?? '',
      alpnProtocol: hs.alpn ?? '',
      // Only a verified client certificate is carried over to resumed sessions, with its validity (as TLS 1.3).
      ...this.config.clientAuth.identity(hs.client),
    };
  }

  /** RFC 5077 §3.3: one ticket, sealed like TLS 1.3 tickets (same key, same rotation). */
  private sendTicket(hs: Keyed): void {
    const state = this.sessionState(hs);
    const ticket = state.servername.length <= MAX_TICKET_SERVER_NAME ? this.config.ticketKey.seal(state) : new Uint8Array(0);
    const lifetime = this.config.ticketLifetimeSeconds;
    // The ticket is opaque<0..2^16-1>: one carrying a very large client certificate does not fit,
    // nor does a server name over MAX_TICKET_SERVER_NAME. ServerHello already promised a
    // NewSessionTicket, so it still comes, with an empty ticket, which RFC 5077 §3.3 allows ("no
    // ticket"): the client resumes with a full handshake.
    const sent = ticket.length <= 0xffff ? ticket : new Uint8Array(0);
    this.queue(hs.transcript, encodeHandshake(HandshakeType.new_session_ticket, (w) => writeNewSessionTicket12(w, lifetime, sent), 16 + sent.length));
  }

  private sendChangeCipherSpecAndFinished(hs: Keyed): void {
    this.host.records.writeChangeCipherSpec();
    this.host.records.setWriter(new Tls12RecordSealer(hs.suite, hs.keys.serverKey, hs.keys.serverIv));
    const verifyData = finishedVerifyData12(hs.suite, hs.masterSecret, 'server', hs.transcript.current());
    this.queue(hs.transcript, frameHandshake(HandshakeType.finished, verifyData));
  }

  // --- resumption: ServerHello, ChangeCipherSpec, Finished --------------------------------------------

  private doResumeHandshake(hello: ClientHello, transcript: Transcript, alpn: string | undefined, ticket: TicketState, suite: Tls12SuiteParams): void {
    transcript.start(suite.hash);
    const serverRandom = this.serverRandom();
    // RFC 5077 §3.4 / RFC 5246 §7.4.1.3: the session ID the client sent (with its ticket, or ours) is echoed to say "resumed".
    this.queue(transcript, this.serverHello(hello, suite, serverRandom, hello.legacySessionId, alpn, false, false));
    const masterSecret = ticket.psk;
    this.host.logSecret('CLIENT_RANDOM', hello.random, masterSecret);
    const keys = keyBlock(suite, masterSecret, hello.random, serverRandom);
    const hs: Keyed = { hello, suite, transcript, serverRandom, alpn, group: 0, masterSecret, keys, serverMode: { authentication: 'psk' }, resumed: true, client: resumedClientIdentity(ticket) };
    this.sendChangeCipherSpecAndFinished(hs);
    this.state = { kind: 'ExpectChangeCipherSpec', hs };
  }

  // --- pieces ------------------------------------------------------------------------------------------

  private serverHello(
    hello: ClientHello,
    suite: Tls12SuiteParams,
    serverRandom: Uint8Array,
    sessionId: Uint8Array,
    alpn: string | undefined,
    sessionTicket: boolean,
    full: boolean,
  ): Uint8Array {
    const e = hello.extensions;
    const secureRenegotiation = e.renegotiationInfo !== undefined || hello.cipherSuites.includes(CipherSuite.TLS_EMPTY_RENEGOTIATION_INFO_SCSV);
    return encodeHandshake(HandshakeType.server_hello, (w) =>
      writeServerHello12(w, {
        random: serverRandom,
        sessionId,
        cipherSuite: suite.id,
        // RFC 5746 §3.6: an empty renegotiation_info to a client that signalled support.
        ...(secureRenegotiation ? { renegotiationInfo: new Uint8Array(0) } : {}),
        extendedMasterSecret: true,
        sessionTicket,
        ...(e.ecPointFormats ? { ecPointFormats: [0] } : {}),
        ...(alpn !== undefined ? { alpn } : {}),
        serverNameAck: full && e.serverName !== undefined,
      }),
    );
  }

  /** Our random; with TLS 1.3 enabled, its last 8 bytes are the downgrade sentinel (RFC 8446 §4.1.3). */
  private serverRandom(): Uint8Array {
    const random = randomBytesPooled(32);
    if (this.config.versions.includes(ProtocolVersion.TLS1_3)) markDowngrade(random);
    return random;
  }

  /** Sends a handshake message; with client authentication under way, keeps it for CertificateVerify too. */
  private queue(transcript: Transcript, msg: Uint8Array, clientAuth?: ClientAuthProgress): void {
    transcript.add(msg);
    clientAuth?.messages.push(msg);
    this.host.records.queueHandshake(msg);
  }

  private complete(hs: Keyed): void {
    const { suite, hello } = hs;
    const info: HandshakeInfo = {
      version: 'TLSv1.2',
      cipherSuite: suite.id,
      cipherSuiteName: suite.name,
      group: hs.group,
      alpnProtocol: hs.alpn,
      servername: hello.extensions.serverName,
      resumed: hs.resumed,
      helloRetryRequest: false,
      peerCertificates: hs.client?.chain ?? [],
      peerAuthorized: hs.client?.authorized ?? false,
      peerAuthorizationError: hs.client?.authorizationError,
      serverMode: hs.serverMode,
      clientMode: hs.client?.mode,
    };
    this.host.completeHandshake(
      tls12TrafficState(hs, hs.masterSecret),
      info,
    );
  }
}

const NO_SESSION_ID = new Uint8Array(0);

/** RFC 5246 / 7627 / 5746 / 8422: what every TLS 1.2 ClientHello must satisfy here. */
function checkClientHello12(hello: ClientHello): void {
  const e = hello.extensions;
  if (!hello.legacyCompressionMethods.includes(0)) throw new PeerMisbehaved('UnsupportedCompression', 'TLS 1.2 ClientHello without the null compression method');
  if (!e.extendedMasterSecret) {
    throw new PeerMisbehaved('MissingExtendedMasterSecret', 'TLS 1.2 needs the extended master secret (RFC 7627); the client did not offer it');
  }
  if (e.renegotiationInfo && e.renegotiationInfo.length > 0) throw new PeerMisbehaved('RenegotiationInfoNotEmpty', 'renegotiation_info not empty in an initial handshake');
  if (e.ecPointFormats && !e.ecPointFormats.includes(0)) throw new PeerMisbehaved('NoPointFormatsInCommon', 'the client does not take uncompressed points');
}

/** The certificate and how it signs ServerKeyExchange in TLS 1.2. */
interface Tls12Credential {
  readonly chain: readonly Uint8Array[];
  readonly signer: Signer;
  readonly scheme: number;
  readonly auth: 'ecdsa' | 'rsa';
  readonly label: string;
  readonly details?: unknown;
}

function orRefuse(credential: Tls12Credential | undefined): Tls12Credential {
  if (!credential) throw new PeerMisbehaved('NoSignatureSchemesInCommon', 'TLS 1.2: no certificate signs with a scheme the client offers');
  return credential;
}

/**
 * The TLS 1.2 scheme for a chosen credential: its signer's TLS 1.2 list in order, first offered.
 * An ECDSA certificate's curve must also be in the client's supported_groups (RFC 8422 §5.1:
 * in TLS 1.2 the list names the curves it can verify with too; OpenSSL refuses others).
 */
function tls12Credential(choice: CredentialChoice, offered: readonly number[], groups: readonly number[] | undefined): Tls12Credential | undefined {
  const schemes = choice.signer.tls12Schemes ?? choice.signer.schemes;
  for (const scheme of schemes) {
    const auth = authOf(scheme);
    const curve = ECDSA_CURVE_GROUP.get(scheme);
    if (auth && offered.includes(scheme) && (!groups || curve === undefined || groups.includes(curve))) {
      return {
        chain: choice.certificateChain,
        signer: choice.signer,
        scheme,
        auth,
        label: choice.label ?? 'certificate',
        ...(choice.details !== undefined ? { details: choice.details } : {}),
      };
    }
  }
  return undefined;
}

/** The named group of the curve an ECDSA scheme's key is on (the curve's own hash, as in TLS 1.3). */
const ECDSA_CURVE_GROUP = new Map<number, number>([
  [SignatureScheme.ecdsa_secp256r1_sha256, NamedGroup.secp256r1],
  [SignatureScheme.ecdsa_secp384r1_sha384, NamedGroup.secp384r1],
  [SignatureScheme.ecdsa_secp521r1_sha512, NamedGroup.secp521r1],
]);

/** ECDHE_ECDSA for ECDSA schemes, ECDHE_RSA for RSA ones (rsaEncryption keys); nothing else in TLS 1.2 here. */
function authOf(scheme: number): 'ecdsa' | 'rsa' | undefined {
  const p = schemeParams(scheme);
  if (p?.kind === 'ecdsa') return 'ecdsa';
  if (p && p.keyType === 'rsa') return 'rsa';
  return undefined;
}

/** The configured certificates, by SNI, with a TLS 1.2 scheme the client offers. */
function defaultCredential12(
  keys: readonly CertifiedKey[],
  servername: string | undefined,
  offered: readonly number[],
  groups: readonly number[] | undefined,
): Tls12Credential | undefined {
  // The SNI match first, then every certificate in order (no array built: most handshakes stop at the first).
  const first = defaultCredential(keys, servername, offered);
  const fromFirst = first && tls12Credential(first, offered, groups);
  if (fromFirst) return fromFirst;
  for (const k of keys) {
    const credential = tls12Credential(asChoice(k), offered, groups);
    if (credential) return credential;
  }
  return undefined;
}

function asChoice(k: CertifiedKey): CredentialChoice {
  return { certificateChain: k.chain, signer: k.signer, scheme: k.signer.schemes[0]!, label: 'certificate' };
}

/** TLS 1.2 Certificate messages of frozen chains, encoded once (as server.ts does for TLS 1.3). */
const certificateMessages = new WeakMap<readonly Uint8Array[], Uint8Array>();

function certificateMessage12(chain: readonly Uint8Array[]): Uint8Array {
  const cached = certificateMessages.get(chain);
  if (cached) return cached;
  const message = encodeHandshake(HandshakeType.certificate, (w) => writeCertificate12(w, chain), 16 + chain.reduce((n, c) => n + c.length + 3, 0));
  if (Object.isFrozen(chain)) certificateMessages.set(chain, message);
  return message;
}

/** Whether a suite id is one of our TLS 1.2 suites (for routing and tests). */
export function isTls12Suite(id: number): boolean {
  return tls12SuiteParams(id) !== undefined;
}
