/**
 * TLS 1.3 server handshake (RFC 8446 §2, §4), sans-IO. A ClientHello that version negotiation
 * (version.ts) answers with TLS 1.2 is handed to the TLS 1.2 handshake (tls12/server.ts), which
 * then runs on this connection's record layer.
 *
 *   ClientHello  -->  [HelloRetryRequest <-- ClientHello]
 *                <--  ServerHello, {EncryptedExtensions}, {CertificateRequest*},
 *                     {Certificate*}, {CertificateVerify*}, {Finished}
 *   {Certificate*}, {CertificateVerify*}, {Finished}  -->
 *                <--  [NewSessionTicket]
 *
 * `onClientHello` is the driver; each step below it is one message or decision with its §.
 * Before ServerHello it asks the `selectCredential` hook (delegated credentials plug in there)
 * for what authenticates a non-PSK handshake, so a client we cannot sign for is refused with a
 * plaintext alert; the CertificateVerify step may wait for an async Signer.
 */
import { randomBytesPooled, randomUint32 } from './random.js';
import { createTrustStore, type TrustAnchorInput, type TrustStore } from './x509/trust-store.js';
import { Connection, type AcceptedMessages, type HandshakeMode, type KeyLogger } from './connection.js';
import { ExtensionType, HELLO_RETRY_REQUEST_RANDOM, HandshakeType, ProtocolVersion, PskKeyExchangeMode, SignatureScheme } from './constants.js';
import {
  defaultCredential,
  loadCertifiedKey,
  type CertificateKeyInput,
  type CertifiedKey,
  type CredentialChoice,
  type PeerCredentialHooks,
  type SelectServerCredential,
} from './credentials.js';
import { CertificateRequired, InternalError, NoApplicationProtocol, PeerMisbehaved } from './errors.js';
import { HandshakeKeys, PskEarlyKeys, type ApplicationKeys } from './handshake-keys.js';
import { isPostQuantumGroup, respondToKeyShare, SUPPORTED_GROUPS } from './key-exchange.js';
import { Transcript, resumptionPsk, verifyDataEqual } from './key-schedule.js';
import { bindersLength, decodeClientHello, type ClientHello } from './messages/client-hello.js';
import type { KeyShareEntry, RawExtension } from './messages/extensions.js';
import { writeServerHello } from './messages/server-hello.js';
import {
  decodeCertificate,
  decodeCertificateVerify,
  decodeFinished,
  encodeHandshake,
  frameHandshake,
  MAX_HANDSHAKE_BODY,
  writeCertificate,
  writeCertificateVerify,
  writeCertificateRequest,
  writeEncryptedExtensions,
  writeNewSessionTicket,
} from './messages/handshake.js';
import { authenticatePeer, checkCertificateVerify, type AuthenticatedPeer } from './peer-auth.js';
import { RecordOpener, RecordSealer } from './record.js';
import { ClientAuthPolicy, MAX_TICKET_SERVER_NAME, sessionExpired, TicketKey, type TicketClientAuth, type TicketState } from './session.js';
import { certificateVerifyContent, isCertificateVerifyScheme } from './signature-schemes.js';
import { DEFAULT_CIPHER_SUITES, suiteParams, type SuiteParams } from './suites.js';
import { Tls12ServerHandshake } from './tls12/server.js';
import { DEFAULT_TLS12_CIPHER_SUITES, tls12SuiteParams, type Tls12SuiteParams } from './tls12/suites.js';
import { enabledVersions, negotiateServerVersion, type TlsVersionName } from './version.js';

export interface ServerOptions {
  /** Certificates with their keys (PEM/DER/KeyObject/Signer); selected by SNI and signature algorithms. */
  readonly certificates?: readonly CertificateKeyInput[];
  /** Hook to choose the credential per ClientHello (delegated credentials, keyless); `fallback()` gives the default. */
  readonly selectCredential?: SelectServerCredential;
  /** Suites in order of preference (default: AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305). */
  readonly cipherSuites?: readonly number[];
  /** TLS 1.2 suites in order of preference (default: ECDHE_ECDSA and ECDHE_RSA with AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305). */
  readonly tls12CipherSuites?: readonly number[];
  /** Lowest version served (default 'TLSv1.2'); 'TLSv1.3' refuses TLS 1.2 clients with protocol_version. */
  readonly minVersion?: TlsVersionName;
  /** Highest version served (default 'TLSv1.3'; 'TLSv1.2' for tests: no downgrade sentinel then). */
  readonly maxVersion?: TlsVersionName;
  /** Groups in order of preference (default: SUPPORTED_GROUPS, hybrids first). A post-quantum group the client lists is chosen even at the cost of a HelloRetryRequest. TLS 1.2 uses the ECDHE groups among them. */
  readonly groups?: readonly number[];
  /** ALPN protocols in order of preference; a client offering none of them is refused. */
  readonly alpnProtocols?: readonly string[];
  /**
   * Send a CertificateRequest, in TLS 1.3 and TLS 1.2 alike (tls12/client-auth.ts): the client's
   * chain is verified against `ca` by the same verifier either way (peer-auth.ts).
   */
  readonly requestCert?: boolean;
  /**
   * With requestCert: refuse clients without a valid certificate (default true); the alert is the
   * verdict's (unknown_ca, bad_certificate, ...), and for no certificate at all certificate_required
   * in TLS 1.3, handshake_failure in TLS 1.2. With false the handshake completes and the socket's
   * `authorized`/`authorizationError` say what the certificate was worth.
   */
  readonly rejectUnauthorized?: boolean;
  /** Trust anchors for client certificates. */
  readonly ca?: readonly TrustAnchorInput[];
  /**
   * Receiving-side credential hooks for client certificates (client delegated credentials);
   * `acceptLeaf` is asked for TLS 1.3 and TLS 1.2 clients alike and may refuse one.
   */
  readonly clientCredentialHooks?: PeerCredentialHooks;
  /**
   * With requestCert: what names this server's client authentication in its tickets (OpenSSL's
   * session id context), as a string (UTF-8) or bytes. A ticket resumes as client-authenticated
   * only where requestCert, rejectUnauthorized, the CAs, the delegated credential offer and this
   * value are the same; else the client is verified afresh by a full handshake. Set the same value
   * on servers that share a ticket key and whose clientCredentialHooks decide alike, another where
   * they decide differently. Default: with custom clientCredentialHooks, a random value per
   * ServerConfig (the hooks are functions, which the ticket cannot compare), so authenticated
   * tickets resume only on the config that issued them; without hooks, empty.
   */
  readonly sessionIdContext?: string | Uint8Array;
  /** 32-byte key for session tickets; share it between servers to resume across them. Default: random per config. */
  readonly ticketKey?: Uint8Array;
  /** Tickets sent after each full handshake (default 1; 0 disables resumption). */
  readonly sessionTickets?: number;
  /** Ticket lifetime in seconds (default 7200, at most 604800). */
  readonly ticketLifetimeSeconds?: number;
  /** Receives SSLKEYLOGFILE lines (without the newline). */
  readonly keylog?: KeyLogger;
  /** Clock, for tests. */
  readonly now?: () => Date;
}

/**
 * Everything parsed once per server (certificates, keys, trust store, ticket key) and shared
 * by all its connections: no PEM is parsed per handshake.
 */
export class ServerConfig {
  readonly keys: readonly CertifiedKey[];
  readonly suites: readonly SuiteParams[];
  readonly groups: readonly number[];
  readonly ticketKey: TicketKey;
  readonly trustStore: TrustStore | undefined;
  /** Client authentication as tickets record and check it (session.ts). */
  readonly clientAuth: ClientAuthPolicy;
  readonly sessionTickets: number;
  readonly ticketLifetimeSeconds: number;
  readonly verifySchemes: readonly number[];
  readonly tls12Suites: readonly Tls12SuiteParams[];
  /** Enabled versions, best first (version.ts). */
  readonly versions: readonly number[];

  constructor(readonly options: ServerOptions) {
    this.keys = (options.certificates ?? []).map(loadCertifiedKey);
    if (this.keys.length === 0 && !options.selectCredential) {
      throw new TypeError('a server needs certificates or a selectCredential hook');
    }
    this.suites = (options.cipherSuites ?? DEFAULT_CIPHER_SUITES).map((id) => {
      const s = suiteParams(id);
      if (!s) throw new TypeError(`unsupported cipher suite 0x${id.toString(16)}`);
      return s;
    });
    this.tls12Suites = (options.tls12CipherSuites ?? DEFAULT_TLS12_CIPHER_SUITES).map((id) => {
      const s = tls12SuiteParams(id);
      if (!s) throw new TypeError(`unsupported TLS 1.2 cipher suite 0x${id.toString(16)}`);
      return s;
    });
    this.versions = enabledVersions(options.minVersion, options.maxVersion);
    this.groups = options.groups ?? SUPPORTED_GROUPS;
    for (const g of this.groups) if (!SUPPORTED_GROUPS.includes(g)) throw new TypeError(`unsupported group 0x${g.toString(16)}`);
    this.ticketKey = new TicketKey(options.ticketKey);
    this.trustStore = options.ca ? createTrustStore(options.ca) : undefined;
    this.clientAuth = new ClientAuthPolicy(
      { ...options, delegatedCredentialOffer: options.clientCredentialHooks?.offer, sessionIdContext: sessionIdContext(options) },
      this.trustStore,
    );
    this.sessionTickets = options.sessionTickets ?? 1;
    this.ticketLifetimeSeconds = Math.min(options.ticketLifetimeSeconds ?? 7200, 604800);
    this.verifySchemes = DEFAULT_VERIFY_SCHEMES;
  }

  /**
   * Our EncryptedExtensions depend only on whether SNI is acknowledged and on the ALPN protocol
   * chosen (one of `alpnProtocols`), so each variant is encoded once per config and the bytes
   * shared by its connections (they are only read: transcript, record sealing). Bounded: at most
   * two per protocol we offer, and never more than MAX_ENCRYPTED_EXTENSIONS_VARIANTS.
   */
  encryptedExtensions(serverNameAck: boolean, alpn: string | undefined): Uint8Array {
    const variants = serverNameAck ? this.encryptedExtensionsWithSni : this.encryptedExtensionsWithoutSni;
    const key = alpn ?? '';
    const cached = variants.get(key);
    if (cached) return cached;
    const message = encodeHandshake(HandshakeType.encrypted_extensions, (w) => writeEncryptedExtensions(w, { serverNameAck, alpn, unknown: NO_EXTENSIONS }));
    if (variants.size < MAX_ENCRYPTED_EXTENSIONS_VARIANTS) variants.set(key, message);
    return message;
  }
  private readonly encryptedExtensionsWithSni = new Map<string, Uint8Array>();
  private readonly encryptedExtensionsWithoutSni = new Map<string, Uint8Array>();

  now(): Date {
    return this.options.now?.() ?? new Date();
  }

  /** `now()` in milliseconds since the epoch, without a Date when no clock was given. */
  nowMs(): number {
    return this.options.now ? this.options.now().getTime() : Date.now();
  }
}

/** Schemes we accept in a peer's CertificateVerify and advertise for chains. */
export const DEFAULT_VERIFY_SCHEMES: readonly number[] = [
  SignatureScheme.ed25519,
  SignatureScheme.ecdsa_secp256r1_sha256,
  SignatureScheme.ecdsa_secp384r1_sha384,
  SignatureScheme.ecdsa_secp521r1_sha512,
  SignatureScheme.rsa_pss_rsae_sha256,
  SignatureScheme.rsa_pss_rsae_sha384,
  SignatureScheme.rsa_pss_rsae_sha512,
  SignatureScheme.rsa_pss_pss_sha256,
  SignatureScheme.rsa_pss_pss_sha384,
  SignatureScheme.rsa_pss_pss_sha512,
  SignatureScheme.rsa_pkcs1_sha256,
  SignatureScheme.rsa_pkcs1_sha384,
  SignatureScheme.rsa_pkcs1_sha512,
  // ML-DSA CertificateVerify (a delegated credential's key; chains signed with ML-DSA are not verified).
  SignatureScheme.mldsa44,
  SignatureScheme.mldsa65,
  SignatureScheme.mldsa87,
];

/** What ServerHello settled that the rest of the handshake and the connection's info need. */
interface Negotiated {
  readonly suite: SuiteParams;
  readonly group: number;
  readonly alpn: string | undefined;
  readonly servername: string | undefined;
  /** The session resumed, when a PSK was accepted. */
  readonly resumed: TicketState | undefined;
  readonly helloRetry: boolean;
}

/**
 * From ServerHello to our Finished: the handshake data every step of the flight uses, created
 * once and passed on, never copied (the transcript runs on; the key schedule's next stage is a
 * new object).
 */
interface ServerHandshake extends Negotiated {
  readonly hello: ClientHello;
  readonly transcript: Transcript;
  readonly keys: HandshakeKeys;
}

/** With client authentication: the transcript and handshake keys that check the client's flight. */
interface ClientAuthCheck {
  readonly transcript: Transcript;
  readonly keys: HandshakeKeys;
}

/**
 * After our Finished, while the client's flight is awaited (a round trip: this is what every
 * handshake in flight keeps through the collections meanwhile). Without client authentication
 * the client's Finished is known in advance and our tickets went out with the flight (§4.6.1, see
 * sendFinished), so that is all of the handshake kept: the ClientHello (and the read it is a view
 * of), the transcript and the handshake keys are left to the collector.
 */
interface SentFlight<C extends ClientAuthCheck | KnownClientFinished = ClientAuthCheck | KnownClientFinished> extends Negotiated {
  readonly app: ApplicationKeys;
  readonly serverMode: HandshakeMode;
  readonly client: C;
}

interface KnownClientFinished {
  readonly finished: Uint8Array;
}

/**
 * PSK identities of one ClientHello we try to open (Go: maxClientPSKIdentities). Each try is
 * an AES-256-GCM open of a ticket, and a ClientHello may carry hundreds of identities; real
 * clients offer one or two (the newest tickets first), so later ones are ignored (§4.2.11: the
 * server may choose any identity, or none, and then does a full handshake).
 */
const MAX_CLIENT_PSK_IDENTITIES = 5;

interface AcceptedPsk {
  readonly state: TicketState;
  /** Index of the accepted identity in the client's list. */
  readonly index: number;
  /** Its early secret, from which the handshake keys go on. */
  readonly keys: PskEarlyKeys;
}

interface RetryState {
  readonly suite: SuiteParams;
  readonly group: number;
  readonly transcript: Transcript;
  readonly firstHello: ClientHello;
  readonly sentChangeCipherSpec: boolean;
}

/**
 * The server's states, a discriminated union: each holds only what is valid at that point, so an
 * impossible transition does not type-check.
 */
type ServerState =
  | { readonly kind: 'ExpectClientHello' }
  | { readonly kind: 'ExpectSecondClientHello'; readonly retry: RetryState }
  | { readonly kind: 'SendingFlight' }
  | { readonly kind: 'ExpectCertificate'; readonly flight: SentFlight<ClientAuthCheck> }
  | { readonly kind: 'ExpectCertificateVerify'; readonly flight: SentFlight<ClientAuthCheck>; readonly peer: AuthenticatedPeer }
  | {
      readonly kind: 'ExpectFinished';
      readonly flight: SentFlight;
      /** The client's certificate and how it signed, when it sent one. */
      readonly peer: AuthenticatedPeer | undefined;
      readonly clientMode: HandshakeMode | undefined;
    }
  | { readonly kind: 'Connected' }
  /** Version negotiation chose TLS 1.2: its handshake (handed over) runs on this connection from here on. */
  | { readonly kind: 'Tls12' };

/** The state of kind `K`, as its handler receives it. */
type StateOf<K extends ServerState['kind']> = Extract<ServerState, { readonly kind: K }>;

const ACCEPTED: AcceptedMessages<ServerState> = {
  ExpectClientHello: [HandshakeType.client_hello],
  ExpectSecondClientHello: [HandshakeType.client_hello],
  SendingFlight: [],
  ExpectCertificate: [HandshakeType.certificate],
  ExpectCertificateVerify: [HandshakeType.certificate_verify],
  ExpectFinished: [HandshakeType.finished],
  Connected: [HandshakeType.key_update],
  Tls12: [], // the TLS 1.2 handshake says what it accepts
};

/** A ClientHello body and its decoding, made by whoever read it first (a router peeking at it). */
export interface DecodedClientHello {
  readonly body: Uint8Array;
  readonly hello: ClientHello;
}

export class ServerConnection extends Connection<ServerState> {
  protected override state: ServerState = { kind: 'ExpectClientHello' };
  readonly config: ServerConfig;
  private predecoded: DecodedClientHello | undefined;

  /**
   * `keylog` overrides the config's logger for this connection (the socket adapter routes lines
   * per socket). `clientHello`: the first ClientHello already decoded, used when the first one
   * received is byte for byte its `body` (else decoded here as usual), so it is not decoded twice.
   */
  constructor(config: ServerConfig | ServerOptions, overrides: { readonly keylog?: KeyLogger; readonly clientHello?: DecodedClientHello } = {}) {
    const cfg = config instanceof ServerConfig ? config : new ServerConfig(config);
    super(ACCEPTED, overrides.keylog ?? cfg.options.keylog);
    this.config = cfg;
    this.predecoded = overrides.clientHello;
  }

  protected override onHandshakeMessage(type: number, body: Uint8Array, raw: Uint8Array): void {
    const s = this.state;
    switch (s.kind) {
      case 'ExpectClientHello':
        return this.onClientHello(body, raw, undefined);
      case 'ExpectSecondClientHello':
        return this.onClientHello(body, raw, s.retry);
      case 'ExpectCertificate':
        return this.onClientCertificate(s.flight, body, raw);
      case 'ExpectCertificateVerify':
        return this.onClientCertificateVerify(s.flight, s.peer, body, raw);
      case 'ExpectFinished':
        return this.onClientFinished(s, body, raw);
      case 'SendingFlight':
      case 'Connected':
      case 'Tls12':
        throw new InternalError(`handshake message ${type} dispatched in state ${s.kind}, which accepts none`);
    }
  }

  // --- §2 / §4.1: the driver ----------------------------------------------------------------------

  private onClientHello(body: Uint8Array, raw: Uint8Array, retry: RetryState | undefined): void {
    const pre = this.predecoded;
    this.predecoded = undefined;
    const hello = pre && !retry && Buffer.compare(pre.body, body) === 0 ? pre.hello : decodeClientHello(body);
    // §4.2.1: the version, for both versions in one place (version.ts). TLS 1.2 goes its own way.
    const version = negotiateServerVersion(hello, this.config.versions);
    if (version === ProtocolVersion.TLS1_2) {
      if (retry) throw new PeerMisbehaved('IllegalRetryClientHello', 'second ClientHello without TLS 1.3');
      return this.startTls12(hello, raw);
    }
    // One compatibility CCS may arrive from now on until the client's Finished (§D.4).
    if (!retry) this.records.changeCipherSpecAllowance = 1;
    // §4.2.10: after a HelloRetryRequest, early data is skipped only until the second
    // ClientHello (which may not offer it again); from here an undecryptable record is bad_record_mac.
    else this.records.skipEarlyDataBudget = 0;
    checkClientHello(hello);
    if (retry) checkSecondClientHello(retry, hello);
    const suite = retry?.suite ?? this.chooseCipherSuite(hello);
    const group = this.chooseKeyShareGroup(hello);
    if (group === undefined) {
      if (retry) throw new PeerMisbehaved('IllegalRetryClientHello', 'second ClientHello lacks the key share we asked for');
      return this.sendHelloRetryRequest(hello, raw, suite);
    }
    const transcript = retry?.transcript ?? new Transcript();
    transcript.start(suite.hash);
    const alpn = this.chooseAlpn(hello);
    // Adds the ClientHello to the transcript (with a PSK offer, in two parts around the binders).
    const resumed = this.acceptPreSharedKey(hello, raw, suite, transcript);
    this.state = { kind: 'SendingFlight' };
    if (resumed) {
      // A flight that fails (a refused key share, ...) zeroes the accepted PSK's early secret,
      // which HandshakeKeys would otherwise have zeroed once the handshake secret was extracted.
      try {
        return this.sendFlight(hello, suite, group, alpn, transcript, resumed, retry, undefined);
      } catch (e) {
        resumed.keys.discard();
        throw e;
      }
    }
    // The certificate and CertificateVerify scheme are chosen before ServerHello: a client we
    // cannot sign for gets a plaintext handshake_failure, and no key exchange is done for nothing.
    this.continueWith(this.chooseCredential(hello), (choice) =>
      this.sendFlight(hello, suite, group, alpn, transcript, undefined, retry, checkCredential(hello, choice)),
    );
  }

  /** TLS 1.2 (tls12/server.ts): ALPN and SNI as for TLS 1.3; one ChangeCipherSpec from the client. */
  private startTls12(hello: ClientHello, raw: Uint8Array): void {
    this.records.changeCipherSpecAllowance = 1;
    const tls12 = new Tls12ServerHandshake(this.config, this.host());
    this.state = { kind: 'Tls12' };
    this.handOver(tls12);
    tls12.onClientHello(hello, raw, this.chooseAlpn(hello));
  }

  /** ServerHello to Finished: with a PSK (`credential` undefined) or a certificate. */
  private sendFlight(
    hello: ClientHello,
    suite: SuiteParams,
    group: number,
    alpn: string | undefined,
    transcript: Transcript,
    resumed: AcceptedPsk | undefined,
    retry: RetryState | undefined,
    credential: CredentialChoice | undefined,
  ): void {
    const hs = this.sendServerHello(hello, suite, group, alpn, transcript, resumed, retry);
    this.sendEncryptedExtensions(hs);
    if (!credential) return this.sendFinished(hs, { authentication: 'psk' });
    if (this.config.options.requestCert) this.sendCertificateRequest(hs);
    this.sendCertificateAndVerify(hs, credential);
  }

  // --- §4.1.1 negotiation -------------------------------------------------------------------------

  private chooseCipherSuite(hello: ClientHello): SuiteParams {
    const suite = this.config.suites.find((s) => hello.cipherSuites.includes(s.id));
    if (!suite) throw new PeerMisbehaved('NoCipherSuitesInCommon', 'no cipher suite in common');
    return suite;
  }

  /**
   * The group whose share we answer; undefined means HelloRetryRequest for the group
   * `sendHelloRetryRequest` names. In order:
   * 1. a post-quantum group the client sent a share for (our most preferred of those): no retry,
   *    even when the client lists a hybrid we prefer without a share (a retry would buy nothing
   *    but a round trip: both are post-quantum);
   * 2. a post-quantum group both sides list but the client sent no hybrid share: a retry for it
   *    (a retry costs a round trip, a classical secret can be recorded now and broken later).
   *    Go 1.26's server makes the same choice (draft-ietf-tls-key-share-prediction §4); the cost
   *    is measured in bench/results/pq.md;
   * 3. otherwise our most preferred group the client sent a share for; a retry only when no
   *    share is for a group we accept.
   */
  private chooseKeyShareGroup(hello: ClientHello): number | undefined {
    // Index loops, not closures or iterators: this runs once per connection (allocation per
    // handshake is what the collector costs us, bench/results/socket-path.md).
    const shares = hello.extensions.keyShares;
    if (!shares) return undefined;
    let firstWithShare: number | undefined;
    const groups = this.config.groups;
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i]!;
      if (!hasShareFor(shares, g)) continue;
      if (isPostQuantumGroup(g)) return g;
      firstWithShare ??= g;
    }
    if (this.preferredPostQuantumGroup(hello) !== undefined) return undefined;
    return firstWithShare;
  }

  private preferredPostQuantumGroup(hello: ClientHello): number | undefined {
    const offered = hello.extensions.supportedGroups ?? [];
    return this.config.groups.find((g) => isPostQuantumGroup(g) && offered.includes(g));
  }

  /**
   * §4.4.2.2: what authenticates us, from the selectCredential hook (delegated credentials,
   * keyless) or the configured certificates by SNI and signature_algorithms.
   */
  private chooseCredential(hello: ClientHello): CredentialChoice | undefined | Promise<CredentialChoice | undefined> {
    const sigalgs = hello.extensions.signatureAlgorithms;
    // checkClientHello allows its absence only with a PSK offer, and we did not accept the PSK.
    if (!sigalgs) throw new PeerMisbehaved('MissingSignatureAlgorithms', 'signature_algorithms is required without an accepted PSK');
    const fallback = (): CredentialChoice | undefined => defaultCredential(this.config.keys, hello.extensions.serverName, sigalgs);
    const hook = this.config.options.selectCredential;
    return hook ? hook(hello, fallback) : fallback();
  }

  private chooseAlpn(hello: ClientHello): string | undefined {
    const ours = this.config.options.alpnProtocols;
    const theirs = hello.extensions.alpn;
    if (!ours || ours.length === 0 || !theirs) return undefined;
    const chosen = ours.find((p) => theirs.includes(p));
    if (chosen === undefined) throw new NoApplicationProtocol('no ALPN protocol in common');
    return chosen;
  }

  // --- §4.1.4 HelloRetryRequest ---------------------------------------------------------------------

  private sendHelloRetryRequest(hello: ClientHello, raw: Uint8Array, suite: SuiteParams): void {
    const offered = hello.extensions.supportedGroups ?? [];
    const group = this.preferredPostQuantumGroup(hello) ?? this.config.groups.find((g) => offered.includes(g));
    if (group === undefined) throw new PeerMisbehaved('NoKeyExchangeGroupsInCommon', 'no key exchange group in common');
    const transcript = new Transcript();
    transcript.start(suite.hash);
    transcript.add(raw);
    transcript.replaceWithMessageHash();
    const hrr = encodeHandshake(HandshakeType.server_hello, (w) =>
      writeServerHello(w, {
        legacyVersion: ProtocolVersion.TLS1_2,
        random: HELLO_RETRY_REQUEST_RANDOM,
        legacySessionIdEcho: hello.legacySessionId,
        cipherSuite: suite.id,
        legacyCompressionMethod: 0,
        extensions: { supportedVersion: ProtocolVersion.TLS1_3, selectedGroup: group },
      }),
    );
    transcript.add(hrr);
    this.records.queueHandshake(hrr);
    const compat = hello.legacySessionId.length > 0;
    if (compat) this.records.writeChangeCipherSpec();
    // 0-RTT records the client sent after ClientHello1 are skipped (§4.2.10).
    if (hello.extensions.earlyData) this.records.skipEarlyDataBudget = 1 << 16;
    this.state = {
      kind: 'ExpectSecondClientHello',
      retry: { suite, group, transcript, firstHello: hello, sentChangeCipherSpec: compat },
    };
  }

  // --- §4.2.11 pre_shared_key (resumption, psk_dhe_ke only) -----------------------------------------

  /**
   * Adds the ClientHello `raw` to the transcript and returns the PSK accepted, if any. §4.2.11.2:
   * binders cover the transcript up to the ClientHello truncated before its binders, so with an
   * offer that part is added first and its digest taken once for every identity tried, then the
   * binders: the ClientHello is hashed once.
   */
  private acceptPreSharedKey(hello: ClientHello, raw: Uint8Array, suite: SuiteParams, transcript: Transcript): AcceptedPsk | undefined {
    const offered = hello.extensions.preSharedKey;
    if (!offered) {
      transcript.add(raw);
      return undefined;
    }
    const truncatedLength = raw.length - bindersLength(offered.binders);
    transcript.add(raw.subarray(0, truncatedLength));
    const accepted = this.choosePreSharedKey(hello, offered, suite, transcript);
    try {
      transcript.add(raw.subarray(truncatedLength));
    } catch (e) {
      accepted?.keys.discard();
      throw e;
    }
    return accepted;
  }

  /** The first offered identity we can resume (binder checked), or none: a full handshake. */
  private choosePreSharedKey(hello: ClientHello, offered: NonNullable<ClientHello['extensions']['preSharedKey']>, suite: SuiteParams, transcript: Transcript): AcceptedPsk | undefined {
    const modes = hello.extensions.pskKeyExchangeModes;
    if (!modes) throw new PeerMisbehaved('MissingPskKeyExchangeModes', 'pre_shared_key without psk_key_exchange_modes');
    if (!modes.includes(PskKeyExchangeMode.psk_dhe_ke) || this.config.sessionTickets === 0) return undefined;
    const now = this.config.nowMs();
    // Only the first MAX_CLIENT_PSK_IDENTITIES are tried; the rest are ignored as unusable.
    const tried = Math.min(offered.identities.length, MAX_CLIENT_PSK_IDENTITIES);
    for (let i = 0; i < tried; i++) {
      const state = this.config.ticketKey.open(offered.identities[i]!.identity);
      if (!state) continue;
      if (!this.resumable(state, suite, hello, now)) {
        state.psk.fill(0);
        continue;
      }
      const keys = new PskEarlyKeys(suite, state.psk);
      // The early secret extracted from it is all the handshake needs: the PSK is not kept.
      state.psk.fill(0);
      if (!verifyDataEqual(keys.binder(transcript.current()), offered.binders[i]!)) {
        keys.discard();
        throw new PeerMisbehaved('IncorrectBinder', 'PSK binder does not verify');
      }
      return { state, index: i, keys };
    }
    return undefined;
  }

  /** A ticket's session resumes here: the same hash, within its lifetime, the same name, its client authentication still standing. */
  private resumable(state: TicketState, suite: SuiteParams, hello: ClientHello, now: number): boolean {
    const ticketSuite = suiteParams(state.cipherSuite);
    if (!ticketSuite || ticketSuite.hash !== suite.hash) return false;
    if (sessionExpired(state, now)) return false;
    if ((hello.extensions.serverName ?? '') !== state.servername) return false;
    // The client authentication the ticket records must still stand here, else a full handshake.
    return this.config.clientAuth.accepts(state, now);
  }

  // --- §4.1.3 ServerHello and the handshake key schedule (§7.1) ----------------------------------------

  private sendServerHello(
    hello: ClientHello,
    suite: SuiteParams,
    group: number,
    alpn: string | undefined,
    transcript: Transcript,
    resumed: AcceptedPsk | undefined,
    retry: RetryState | undefined,
  ): ServerHandshake {
    const peerShare = hello.extensions.keyShares!.find((s) => s.group === group)!;
    const share = respondToKeyShare(group, peerShare.keyExchange);
    if (!share) throw new InternalError(`no key share implementation for group ${group}`);
    const sh = encodeHandshake(HandshakeType.server_hello, (w) =>
      writeServerHello(w, {
        legacyVersion: ProtocolVersion.TLS1_2,
        random: randomBytesPooled(32),
        legacySessionIdEcho: hello.legacySessionId,
        cipherSuite: suite.id,
        legacyCompressionMethod: 0,
        extensions: {
          supportedVersion: ProtocolVersion.TLS1_3,
          keyShare: { group, keyExchange: share.publicKey },
          preSharedKey: resumed?.index,
        },
      }),
    );
    transcript.add(sh);
    this.records.queueHandshake(sh);
    // Appendix D.4: one dummy change_cipher_spec after the first server flight message.
    if (hello.legacySessionId.length > 0 && !retry?.sentChangeCipherSpec) this.records.writeChangeCipherSpec();

    const keys = new HandshakeKeys(suite, resumed?.keys, share.secret, transcript.current());
    this.logHandshakeKeys(hello.random, keys);
    this.records.setWriter(new RecordSealer(suite, keys.serverTrafficSecret));
    this.records.setReader(new RecordOpener(suite, keys.clientTrafficSecret));
    // We never accept 0-RTT; skip the client's early data records (§4.2.10).
    if (hello.extensions.earlyData) this.records.skipEarlyDataBudget = 1 << 16;
    const servername = hello.extensions.serverName;
    return { hello, suite, group, alpn, servername, resumed: resumed?.state, helloRetry: retry !== undefined, transcript, keys };
  }

  // --- §4.3.1 EncryptedExtensions ---------------------------------------------------------------------

  private sendEncryptedExtensions(hs: ServerHandshake): void {
    const serverNameAck = hs.servername !== undefined && !hs.resumed;
    this.queueHandshake(hs.transcript, this.config.encryptedExtensions(serverNameAck, hs.alpn));
  }

  // --- §4.3.2 CertificateRequest ------------------------------------------------------------------------

  private sendCertificateRequest(hs: ServerHandshake): void {
    const offer = this.config.options.clientCredentialHooks?.offer;
    const msg = encodeHandshake(HandshakeType.certificate_request, (w) =>
      writeCertificateRequest(w, {
        context: new Uint8Array(0),
        signatureAlgorithms: this.config.verifySchemes,
        ...(offer && offer.length > 0 ? { delegatedCredential: offer } : {}),
        unknown: [],
      }),
    );
    this.queueHandshake(hs.transcript, msg);
  }

  // --- §4.4.2 Certificate and §4.4.3 CertificateVerify (the credential step) -----------------------------

  private sendCertificateAndVerify(hs: ServerHandshake, choice: CredentialChoice): void {
    this.queueHandshake(hs.transcript, certificateMessage(choice));
    const content = certificateVerifyContent('server', hs.transcript.current());
    this.continueWith(choice.signer.sign(choice.scheme, content), (signature) => {
      this.queueHandshake(hs.transcript, encodeHandshake(HandshakeType.certificate_verify, (w) => writeCertificateVerify(w, { scheme: choice.scheme, signature }), 16 + signature.length));
      const mode: HandshakeMode = {
        authentication: choice.label ?? 'certificate',
        signatureScheme: choice.scheme,
        ...(choice.details !== undefined ? { details: choice.details } : {}),
      };
      this.sendFinished(hs, mode);
    });
  }

  // --- §4.4.4 Finished, then the application traffic secrets ---------------------------------------------

  private sendFinished(hs: ServerHandshake, serverMode: HandshakeMode): void {
    this.queueHandshake(hs.transcript, frameHandshake(HandshakeType.finished, hs.keys.serverFinished(hs.transcript.current())));
    const th = hs.transcript.current();
    const app = hs.keys.application(th);
    this.logApplicationKeys(hs.hello.random, app);
    this.records.setWriter(new RecordSealer(hs.suite, app.serverTrafficSecret));
    const { suite, group, alpn, servername, resumed, helloRetry } = hs;
    if (this.config.options.requestCert === true && !resumed) {
      const client = { transcript: hs.transcript, keys: hs.keys };
      this.state = { kind: 'ExpectCertificate', flight: { suite, group, alpn, servername, resumed, helloRetry, app, serverMode, client } };
      return;
    }
    const finished = hs.keys.clientFinished(th);
    // §4.6.1: a server that does not authenticate the client MAY compute the rest of the
    // transcript (the client's Finished is determined) and send its tickets right after its
    // Finished: they leave in the same write as the flight instead of one of their own.
    if (this.config.sessionTickets > 0) {
      const clientFinished = frameHandshake(HandshakeType.finished, finished);
      const resumptionMasterSecret = app.resumptionMasterSecret(hs.transcript.currentWith(clientFinished));
      this.sendTickets(hs, undefined, resumptionMasterSecret);
      resumptionMasterSecret.fill(0);
    }
    const flight: SentFlight = { suite, group, alpn, servername, resumed, helloRetry, app, serverMode, client: { finished } };
    this.state = { kind: 'ExpectFinished', flight, peer: undefined, clientMode: undefined };
  }

  // --- client authentication: §4.4.2, §4.4.3 ----------------------------------------------------------------

  private onClientCertificate(flight: SentFlight<ClientAuthCheck>, body: Uint8Array, raw: Uint8Array): void {
    const msg = decodeCertificate(body);
    if (msg.context.length !== 0) throw new PeerMisbehaved('CertificateRequestContextMismatch', 'certificate_request_context mismatch');
    flight.client.transcript.add(raw);
    const rejectUnauthorized = this.config.options.rejectUnauthorized ?? true;
    if (msg.entries.length === 0) {
      if (rejectUnauthorized) throw new CertificateRequired('client sent no certificate');
      this.state = { kind: 'ExpectFinished', flight, peer: undefined, clientMode: undefined };
      return;
    }
    const peer = authenticatePeer(msg, {
      ca: this.config.trustStore,
      rejectUnauthorized,
      servername: undefined,
      purpose: 'client',
      now: this.config.now(),
      hooks: this.config.options.clientCredentialHooks,
      offeredSchemes: this.config.verifySchemes,
    });
    this.state = { kind: 'ExpectCertificateVerify', flight, peer };
  }

  private onClientCertificateVerify(flight: SentFlight<ClientAuthCheck>, peer: AuthenticatedPeer, body: Uint8Array, raw: Uint8Array): void {
    const cv = decodeCertificateVerify(body);
    const clientMode = checkCertificateVerify(cv, peer.key, 'client', flight.client.transcript.current());
    flight.client.transcript.add(raw);
    this.state = { kind: 'ExpectFinished', flight, peer, clientMode };
  }

  // --- §4.4.4 the client's Finished; §4.6.1 tickets ----------------------------------------------------------

  private onClientFinished(st: StateOf<'ExpectFinished'>, body: Uint8Array, raw: Uint8Array): void {
    const { flight, peer, clientMode } = st;
    const { app, client } = flight;
    const received = decodeFinished(body, flight.suite.hashLength);
    const known = 'finished' in client;
    const expected = known ? client.finished : client.keys.clientFinished(client.transcript.current());
    if (!verifyDataEqual(expected, received)) throw new PeerMisbehaved('IncorrectFinished', 'client Finished does not verify');
    // Known in advance: the tickets went out with our flight (or none are sent).
    let resumptionMasterSecret: Uint8Array | undefined;
    if (!known && this.config.sessionTickets > 0) {
      client.transcript.add(raw);
      resumptionMasterSecret = app.resumptionMasterSecret(client.transcript.current());
    }
    this.records.setReader(new RecordOpener(flight.suite, app.clientTrafficSecret));
    app.retire(resumptionMasterSecret);
    this.state = { kind: 'Connected' };
    // A resumed session carries the client certificate that was verified in the original handshake.
    const resumedCert = flight.resumed && flight.resumed.clientCertificate.length > 0 ? flight.resumed.clientCertificate : undefined;
    const peerChain = peer?.chain ?? (resumedCert ? [resumedCert] : []);
    this.completeHandshake(
      {
        suite: flight.suite,
        readSecret: app.clientTrafficSecret,
        writeSecret: app.serverTrafficSecret,
        exporterMasterSecret: () => app.exporterMasterSecret(),
      },
      {
        version: 'TLSv1.3',
        cipherSuite: flight.suite.id,
        cipherSuiteName: flight.suite.name,
        group: flight.group,
        alpnProtocol: flight.alpn,
        servername: flight.servername,
        resumed: flight.resumed !== undefined,
        helloRetryRequest: flight.helloRetry,
        peerCertificates: peerChain,
        peerAuthorized: peer?.authorized ?? resumedCert !== undefined,
        peerAuthorizationError: peer ? peer.authorizationError : undefined,
        serverMode: flight.serverMode,
        clientMode,
      },
    );
    if (resumptionMasterSecret) {
      this.sendTickets(flight, peer, resumptionMasterSecret);
      resumptionMasterSecret.fill(0);
    }
  }

  /**
   * `peer`: the client's certificate, carried into the tickets when it verified. A resumed
   * connection gets fresh tickets too (clients use each ticket once, RFC 8446 Appendix C.4), but
   * only for what is left of the resumed ticket's lifetime: the keying material of the one
   * handshake that authenticated us never outlives the lifetime given then (§4.6.1 recommends a
   * limit on that total), and the client certificate it verified is carried along.
   */
  private sendTickets(hs: Negotiated, peer: AuthenticatedPeer | undefined, resumptionMasterSecret: Uint8Array): void {
    const now = this.config.nowMs();
    const lifetimeSeconds = hs.resumed
      ? Math.min(this.config.ticketLifetimeSeconds, Math.floor((hs.resumed.issuedAt + hs.resumed.lifetimeSeconds * 1000 - now) / 1000))
      : this.config.ticketLifetimeSeconds;
    if (lifetimeSeconds <= 0) return;
    if ((hs.servername ?? '').length > MAX_TICKET_SERVER_NAME) return;
    // Only a verified client certificate is carried over to resumed sessions, with its validity.
    const clientAuth: TicketClientAuth = hs.resumed ?? this.config.clientAuth.identity(peer);
    for (let i = 0; i < this.config.sessionTickets; i++) {
      const nonce = Uint8Array.of(i);
      const ageAdd = randomUint32();
      const psk = resumptionPsk(hs.suite, resumptionMasterSecret, nonce);
      const ticket = this.config.ticketKey.seal({
        cipherSuite: hs.suite.id,
        psk,
        issuedAt: now,
        ageAdd,
        lifetimeSeconds,
        servername: hs.servername ?? '',
        alpnProtocol: hs.alpn ?? '',
        clientAuthConfig: clientAuth.clientAuthConfig,
        clientCertificate: clientAuth.clientCertificate,
        clientValidUntil: clientAuth.clientValidUntil,
      });
      psk.fill(0);
      // The whole NewSessionTicket must fit what clients take: its ticket<1..2^16-1> (RFC 8446
      // §4.6.1), and a body of at most MAX_HANDSHAKE_BODY (Go's crypto/tls refuses any handshake
      // message over 64 KiB, as our client did): lifetime 4, age_add 4, nonce 1 + n, ticket 2 + t,
      // no extensions 2. A ticket carrying a very large client certificate does not fit; the client
      // then resumes with a full handshake.
      if (4 + 4 + 1 + nonce.length + 2 + ticket.length + 2 > MAX_HANDSHAKE_BODY) return;
      const nst = { lifetime: lifetimeSeconds, ageAdd, nonce, ticket, unknown: NO_EXTENSIONS };
      this.records.queueHandshake(encodeHandshake(HandshakeType.new_session_ticket, (w) => writeNewSessionTicket(w, nst), 32 + ticket.length));
    }
  }
}

/** ServerOptions.sessionIdContext as bytes; with hooks and none given, random (see there). */
function sessionIdContext(options: ServerOptions): Uint8Array | undefined {
  const given = options.sessionIdContext;
  if (given !== undefined) return typeof given === 'string' ? Buffer.from(given, 'utf8') : given;
  return options.clientCredentialHooks ? randomBytesPooled(32) : undefined;
}

function hasShareFor(shares: readonly KeyShareEntry[], group: number): boolean {
  for (let i = 0; i < shares.length; i++) if (shares[i]!.group === group) return true;
  return false;
}

/** §4.1.2 / §4.2: what every ClientHello must satisfy for TLS 1.3 (the version aside). */
function checkClientHello(hello: ClientHello): void {
  const e = hello.extensions;
  // The version was negotiated before (negotiateServerVersion).
  if (hello.legacyCompressionMethods.length !== 1 || hello.legacyCompressionMethods[0] !== 0) {
    throw new PeerMisbehaved('UnsupportedCompression', 'legacy_compression_methods must be exactly [null]');
  }
  if (e.keyShares && !e.supportedGroups) throw new PeerMisbehaved('MissingSupportedGroups', 'key_share without supported_groups');
  if (!e.keyShares && e.supportedGroups) throw new PeerMisbehaved('MissingKeyShare', 'supported_groups without key_share');
  if (!e.keyShares && !e.preSharedKey) throw new PeerMisbehaved('MissingKeyShare', 'no key_share');
  if (e.keyShares && e.keyShares.length > 0) {
    // One Set, not a search per share: both lists can be tens of thousands long in a 128 KiB hello.
    const offered = new Set(e.supportedGroups);
    for (const s of e.keyShares) {
      if (!offered.has(s.group)) throw new PeerMisbehaved('KeyShareGroupNotInSupportedGroups', `key share for group ${s.group} not in supported_groups`);
    }
  }
  if (!e.signatureAlgorithms && !e.preSharedKey) throw new PeerMisbehaved('MissingSignatureAlgorithms', 'signature_algorithms is required');
}

/** §4.1.2: ClientHello2 may change only the key share, cookie, early_data, padding and the PSK. */
function checkSecondClientHello(retry: RetryState, hello: ClientHello): void {
  const a = retry.firstHello;
  const same = (x: readonly unknown[] | undefined, y: readonly unknown[] | undefined): boolean =>
    (x === undefined && y === undefined) || (x !== undefined && y !== undefined && x.length === y.length && x.every((v, i) => v === y[i]));
  const ok =
    Buffer.from(a.legacySessionId).equals(hello.legacySessionId) &&
    Buffer.from(a.random).equals(hello.random) &&
    same(a.cipherSuites, hello.cipherSuites) &&
    same(a.extensions.supportedGroups, hello.extensions.supportedGroups) &&
    same(a.extensions.signatureAlgorithms, hello.extensions.signatureAlgorithms) &&
    same(a.extensions.supportedVersions, hello.extensions.supportedVersions) &&
    same(a.extensions.alpn, hello.extensions.alpn) &&
    same(a.extensions.pskKeyExchangeModes, hello.extensions.pskKeyExchangeModes) &&
    same(a.extensions.delegatedCredential, hello.extensions.delegatedCredential) &&
    same(a.extensions.signatureAlgorithmsCert, hello.extensions.signatureAlgorithmsCert) &&
    a.extensions.serverName === hello.extensions.serverName &&
    same(retainedExtensions(a), retainedExtensions(hello)) &&
    sameUnknownExtensions(a.extensions.unknown, hello.extensions.unknown);
  if (!ok) throw new PeerMisbehaved('IllegalRetryClientHello', 'second ClientHello differs from the first beyond what HelloRetryRequest allows');
  if (!hello.cipherSuites.includes(retry.suite.id)) throw new PeerMisbehaved('IllegalRetryClientHello', 'second ClientHello drops the selected suite');
  const shares = hello.extensions.keyShares ?? [];
  if (shares.length !== 1 || shares[0]!.group !== retry.group) {
    throw new PeerMisbehaved('IllegalRetryClientHello', 'second ClientHello must carry exactly one key share, for the group we selected');
  }
  if (hello.extensions.earlyData) throw new PeerMisbehaved('IllegalRetryClientHello', 'early_data after HelloRetryRequest');
}

/**
 * §4.1.2: the extension types that ClientHello2 must repeat, in the same order: all but those it
 * may drop (early_data), add (cookie), resize (padding) or update (pre_shared_key, which stays last).
 */
function retainedExtensions(hello: ClientHello): number[] {
  return (hello.extensions.order ?? []).filter((t) => !RETRY_MAY_CHANGE.has(t));
}
const RETRY_MAY_CHANGE: ReadonlySet<number> = new Set([
  ExtensionType.early_data, ExtensionType.cookie, ExtensionType.padding, ExtensionType.pre_shared_key,
]);

/** Extensions we do not parse are repeated byte for byte (padding aside, which may change length). */
function sameUnknownExtensions(a: readonly RawExtension[], b: readonly RawExtension[]): boolean {
  const kept = (list: readonly RawExtension[]) => list.filter((e) => e.type !== ExtensionType.padding);
  const x = kept(a);
  const y = kept(b);
  return x.length === y.length && x.every((e, i) => e.type === y[i]!.type && Buffer.from(e.data).equals(y[i]!.data));
}

/** The credential a hook (or the fallback) chose: there must be one, with a scheme the client offered. */
function checkCredential(hello: ClientHello, choice: CredentialChoice | undefined): CredentialChoice {
  if (!choice) throw new PeerMisbehaved('NoSignatureSchemesInCommon', 'no certificate matches the client\'s signature algorithms');
  const sigalgs = hello.extensions.signatureAlgorithms ?? [];
  const dcSchemes = hello.extensions.delegatedCredential ?? [];
  if (!isCertificateVerifyScheme(choice.scheme) || !(sigalgs.includes(choice.scheme) || dcSchemes.includes(choice.scheme))) {
    throw new InternalError(`credential hook chose scheme 0x${choice.scheme.toString(16)} the client did not offer`);
  }
  return choice;
}

const NO_EXTENSIONS: readonly RawExtension[] = [];
/** ServerConfig.encryptedExtensions: more ALPN protocols than this are encoded per handshake. */
const MAX_ENCRYPTED_EXTENSIONS_VARIANTS = 16;

/**
 * Certificate messages of frozen chains (the parsed certificates of a ServerConfig, delegated
 * credential sets), encoded once per chain and leaf extension list: the chain is static, and
 * encoding it is the largest copy of the first flight. A chain that is not frozen may change
 * between handshakes and is encoded each time.
 */
const certificateMessages = new WeakMap<readonly Uint8Array[], { readonly leafExtensions: readonly RawExtension[]; readonly message: Uint8Array }[]>();
const MAX_CACHED_VARIANTS = 8;

function certificateMessage(choice: CredentialChoice): Uint8Array {
  const chain = choice.certificateChain;
  const leafExtensions = choice.leafExtensions ?? [];
  const cacheable = Object.isFrozen(chain);
  const variants = cacheable ? certificateMessages.get(chain) : undefined;
  const hit = variants?.find((v) => sameExtensions(v.leafExtensions, leafExtensions));
  if (hit) return hit.message;
  const message = encodeHandshake(
    HandshakeType.certificate,
    (w) => writeCertificate(w, { context: new Uint8Array(0), entries: chain.map((data, i) => ({ data, extensions: i === 0 ? leafExtensions : [] })) }),
    64 + chain.reduce((n, c) => n + c.length + 5, 0),
  );
  if (cacheable) {
    // Extensions are compared by the identity of their data (a DC's encoded bytes are kept by its set).
    const entry = { leafExtensions: leafExtensions.map((e) => ({ type: e.type, data: e.data })), message };
    if (!variants) certificateMessages.set(chain, [entry]);
    else {
      if (variants.length >= MAX_CACHED_VARIANTS) variants.shift();
      variants.push(entry);
    }
  }
  return message;
}

function sameExtensions(a: readonly RawExtension[], b: readonly RawExtension[]): boolean {
  return a.length === b.length && a.every((e, i) => e.type === b[i]!.type && e.data === b[i]!.data);
}
