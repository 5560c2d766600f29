/**
 * TLS 1.3 client handshake (RFC 8446 §2, §4), sans-IO.
 *
 *   ClientHello  -->
 *                <--  [HelloRetryRequest -> ClientHello again]
 *                <--  ServerHello, {EncryptedExtensions}, {CertificateRequest*},
 *                     {Certificate*}, {CertificateVerify*}, {Finished}
 *   {Certificate*}, {CertificateVerify*}, {Finished}  -->
 *                <--  [NewSessionTicket] (emitted as `session` events)
 *
 * The server's chain is verified against the trust store and the servername; the
 * `serverCredentialHooks` offer delegated_credential (34) and decide which key must have signed
 * CertificateVerify (RFC 9345 plugs in there).
 */
import { createHash } from 'node:crypto';
import { randomBytesPooled } from './random.js';
import { isIP } from 'node:net';
import { createTrustStore, type TrustAnchorInput, type TrustStore } from './x509/trust-store.js';
import { Connection, type AcceptedMessages, type HandshakeMode, type KeyLogger } from './connection.js';
import { HandshakeType, NamedGroup, ProtocolVersion, PskKeyExchangeMode } from './constants.js';
import {
  defaultCredential,
  loadCertifiedKey,
  type CertificateKeyInput,
  type CertifiedKey,
  type CredentialChoice,
  type PeerCredentialHooks,
  type SelectClientCredential,
} from './credentials.js';
import { DecodeError, InternalError, PeerMisbehaved } from './errors.js';
import { HandshakeKeys } from './handshake-keys.js';
import { generateKeyShare, SUPPORTED_GROUPS, type KeyShare } from './key-exchange.js';
import { EarlySecret, Transcript, finishedVerifyData, resumptionPsk, verifyDataEqual } from './key-schedule.js';
import { bindersLength, writeClientHello, type ClientHello } from './messages/client-hello.js';
import { decodeServerHello, isHelloRetryRequestRandom, type ServerHello } from './messages/server-hello.js';
import {
  decodeCertificate,
  decodeCertificateRequest,
  decodeCertificateVerify,
  decodeEncryptedExtensions,
  decodeFinished,
  decodeNewSessionTicket,
  encodeHandshake,
  writeCertificate,
  writeCertificateVerify,
  type CertificateRequest,
} from './messages/handshake.js';
import { authenticatePeer, checkCertificateVerify, type AuthenticatedPeer } from './peer-auth.js';
import { RecordOpener, RecordSealer } from './record.js';
import { DEFAULT_VERIFY_SCHEMES } from './server.js';
import { sessionUsable, type TlsSession } from './session.js';
import { certificateVerifyContent } from './signature-schemes.js';
import { DEFAULT_CIPHER_SUITES, suiteParams, type SuiteParams } from './suites.js';
import { Tls12ClientHandshake } from './tls12/client.js';
import { DEFAULT_TLS12_CIPHER_SUITES, TLS12_GROUPS, tls12SuiteParams, type Tls12SuiteParams } from './tls12/suites.js';
import { checkServerVersion, enabledVersions, serverHelloVersion, type TlsVersionName } from './version.js';

export interface ClientOptions {
  /** Server name for SNI and for certificate name verification (not sent as SNI when it is an IP address). */
  readonly servername?: string;
  /** Trust anchors (PEM strings, DER, or a store from createTrustStore). */
  readonly ca?: readonly TrustAnchorInput[] | TrustStore;
  /** Refuse servers whose chain does not verify (default true). */
  readonly rejectUnauthorized?: boolean;
  /** Suites offered, in order of preference. */
  readonly cipherSuites?: readonly number[];
  /** TLS 1.2 suites offered when TLS 1.2 is enabled (default: all of tls12/suites.ts). */
  readonly tls12CipherSuites?: readonly number[];
  /** Lowest version offered (default 'TLSv1.3'; 'TLSv1.2' also offers TLS 1.2, full handshakes only). */
  readonly minVersion?: TlsVersionName;
  /** Highest version offered (default 'TLSv1.3'). */
  readonly maxVersion?: TlsVersionName;
  /** supported_groups offered (default X25519MLKEM768, x25519, SecP256r1MLKEM768, secp256r1, secp384r1). */
  readonly groups?: readonly number[];
  /**
   * Groups we send a key share for in the first ClientHello (default [X25519MLKEM768, x25519]
   * of those in `groups`: the hybrid for servers that have it, x25519 so the rest need no
   * HelloRetryRequest; the pair costs ~1.2 KB of ClientHello, as in browsers and Go).
   */
  readonly keyShareGroups?: readonly number[];
  /** signature_algorithms offered (default: all we can verify; rsa_pkcs1 only for chains). */
  readonly signatureAlgorithms?: readonly number[];
  readonly alpnProtocols?: readonly string[];
  /** Client certificates, used when the server sends a CertificateRequest (TLS 1.3 and TLS 1.2). */
  readonly certificates?: readonly CertificateKeyInput[];
  /** Hook to choose the client credential (client delegated credentials); `fallback()` gives the default. */
  readonly selectClientCredential?: SelectClientCredential;
  /** Receiving-side hooks for the server's credential (delegated credentials). */
  readonly serverCredentialHooks?: PeerCredentialHooks;
  /** A session from an earlier `session` event, to resume. */
  readonly session?: TlsSession;
  /** Middlebox compatibility mode (RFC 8446 §D.4): non-empty session id and a dummy CCS. Default true. */
  readonly middleboxCompat?: boolean;
  readonly keylog?: KeyLogger;
  readonly now?: () => Date;
}

/** Client settings parsed once (trust store, client certificates) and shared by connections. */
export class ClientConfig {
  readonly suites: readonly SuiteParams[];
  readonly trustStore: TrustStore | undefined;
  readonly keys: readonly CertifiedKey[];
  readonly groups: readonly number[];
  readonly keyShareGroups: readonly number[];
  readonly signatureAlgorithms: readonly number[];
  /** Versions offered, best first. */
  readonly versions: readonly number[];
  /** TLS 1.2 suites offered (empty when TLS 1.2 is not). */
  readonly tls12Suites: readonly Tls12SuiteParams[];

  constructor(readonly options: ClientOptions) {
    this.suites = (options.cipherSuites ?? DEFAULT_CIPHER_SUITES).map((id) => {
      const s = suiteParams(id);
      if (!s) throw new TypeError(`unsupported cipher suite 0x${id.toString(16)}`);
      return s;
    });
    const ca = options.ca;
    this.trustStore = ca === undefined ? undefined : Array.isArray(ca) ? createTrustStore(ca as readonly TrustAnchorInput[]) : (ca as TrustStore);
    this.keys = (options.certificates ?? []).map(loadCertifiedKey);
    this.groups = options.groups ?? SUPPORTED_GROUPS;
    this.keyShareGroups = options.keyShareGroups ?? defaultKeyShareGroups(this.groups);
    for (const g of [...this.groups, ...this.keyShareGroups]) {
      if (!SUPPORTED_GROUPS.includes(g)) throw new TypeError(`unsupported group 0x${g.toString(16)}`);
    }
    this.signatureAlgorithms = options.signatureAlgorithms ?? DEFAULT_VERIFY_SCHEMES;
    this.versions = enabledVersions(options.minVersion ?? 'TLSv1.3', options.maxVersion);
    this.tls12Suites = this.versions.includes(ProtocolVersion.TLS1_2)
      ? (options.tls12CipherSuites ?? DEFAULT_TLS12_CIPHER_SUITES).map((id) => {
          const s = tls12SuiteParams(id);
          if (!s) throw new TypeError(`unsupported TLS 1.2 cipher suite 0x${id.toString(16)}`);
          return s;
        })
      : [];
    if (!this.versions.includes(ProtocolVersion.TLS1_3) && !this.groups.some((g) => TLS12_GROUPS.includes(g))) {
      throw new TypeError('TLS 1.2 alone needs x25519, secp256r1 or secp384r1 in groups (the post-quantum hybrids are TLS 1.3 only)');
    }
  }

  now(): Date {
    return this.options.now?.() ?? new Date();
  }
}

function defaultKeyShareGroups(groups: readonly number[]): readonly number[] {
  const predicted = [NamedGroup.X25519MLKEM768, NamedGroup.x25519].filter((g) => groups.includes(g));
  return predicted.length > 0 ? predicted : [groups[0]!];
}

/** Per-connection settings that may differ from the shared config. */
export interface ClientConnectionOverrides {
  readonly servername?: string;
  readonly session?: TlsSession;
  readonly keylog?: KeyLogger;
}

interface Offer {
  readonly hello: ClientHello;
  /** The ClientHello as sent: a TLS 1.2 client CertificateVerify signs it with the messages after it. */
  readonly helloRaw: Uint8Array;
  readonly shares: readonly KeyShare[];
  readonly transcript: Transcript;
  readonly session: TlsSession | undefined;
  /** Set after a HelloRetryRequest: the suite the server must keep. */
  readonly retrySuite: SuiteParams | undefined;
  readonly sentChangeCipherSpec: boolean;
}

/**
 * What ServerHello settled: the handshake data every later state carries, created once and
 * passed on, never copied (the transcript runs on; the key schedule's next stage is a new object).
 */
interface ClientHandshake {
  readonly offer: Offer;
  readonly suite: SuiteParams;
  readonly group: number;
  /** The server accepted our PSK. */
  readonly resumed: boolean;
  readonly transcript: Transcript;
  readonly keys: HandshakeKeys;
}

/**
 * The client's states, a discriminated union: each holds only what is valid at that point, so an
 * impossible transition does not type-check.
 */
type ClientState =
  | { readonly kind: 'ExpectServerHello'; readonly offer: Offer }
  | { readonly kind: 'ExpectEncryptedExtensions'; readonly hs: ClientHandshake }
  | { readonly kind: 'ExpectCertificateOrRequest'; readonly hs: ClientHandshake; readonly alpn: string | undefined }
  | { readonly kind: 'ExpectCertificate'; readonly hs: ClientHandshake; readonly alpn: string | undefined; readonly request: CertificateRequest | undefined }
  | {
      readonly kind: 'ExpectCertificateVerify';
      readonly hs: ClientHandshake;
      readonly alpn: string | undefined;
      readonly request: CertificateRequest | undefined;
      readonly peer: AuthenticatedPeer;
    }
  | {
      readonly kind: 'ExpectFinished';
      readonly hs: ClientHandshake;
      readonly alpn: string | undefined;
      readonly request: CertificateRequest | undefined;
      /** The server's certificate; none when resumed. */
      readonly peer: AuthenticatedPeer | undefined;
      readonly serverMode: HandshakeMode;
    }
  | { readonly kind: 'SendingFlight' }
  | { readonly kind: 'Connected'; readonly suite: SuiteParams; readonly resumptionMasterSecret: Uint8Array; readonly alpn: string | undefined }
  /** The server chose TLS 1.2: its handshake (handed over) runs on this connection from here on. */
  | { readonly kind: 'Tls12' };

/** The state of kind `K`, as its handler receives it. */
type StateOf<K extends ClientState['kind']> = Extract<ClientState, { readonly kind: K }>;

const ACCEPTED: AcceptedMessages<ClientState> = {
  ExpectServerHello: [HandshakeType.server_hello],
  ExpectEncryptedExtensions: [HandshakeType.encrypted_extensions],
  ExpectCertificateOrRequest: [HandshakeType.certificate, HandshakeType.certificate_request],
  ExpectCertificate: [HandshakeType.certificate],
  ExpectCertificateVerify: [HandshakeType.certificate_verify],
  ExpectFinished: [HandshakeType.finished],
  SendingFlight: [],
  Connected: [HandshakeType.new_session_ticket, HandshakeType.key_update],
  Tls12: [], // the TLS 1.2 handshake says what it accepts
};

export class ClientConnection extends Connection<ClientState> {
  protected override state: ClientState;
  readonly config: ClientConfig;
  private readonly servername: string | undefined;

  constructor(config: ClientConfig | ClientOptions, overrides: ClientConnectionOverrides = {}) {
    const cfg = config instanceof ClientConfig ? config : new ClientConfig(config);
    super(ACCEPTED, overrides.keylog ?? cfg.options.keylog);
    this.config = cfg;
    this.servername = overrides.servername ?? cfg.options.servername;
    const session = overrides.session ?? cfg.options.session;
    this.state = { kind: 'ExpectServerHello', offer: this.sendClientHello(session) };
    // The server may send one compatibility CCS after its first flight message (§D.4).
    this.records.changeCipherSpecAllowance = 1;
  }

  protected override onHandshakeMessage(type: number, body: Uint8Array, raw: Uint8Array): void {
    const s = this.state;
    switch (s.kind) {
      case 'ExpectServerHello':
        return this.onServerHello(s.offer, body, raw);
      case 'ExpectEncryptedExtensions':
        return this.onEncryptedExtensions(s.hs, body, raw);
      case 'ExpectCertificateOrRequest':
        if (type === HandshakeType.certificate_request) return this.onCertificateRequest(s.hs, s.alpn, body, raw);
        return this.onCertificate(s.hs, s.alpn, undefined, body, raw);
      case 'ExpectCertificate':
        return this.onCertificate(s.hs, s.alpn, s.request, body, raw);
      case 'ExpectCertificateVerify':
        return this.onCertificateVerify(s, body, raw);
      case 'ExpectFinished':
        return this.onServerFinished(s, body, raw);
      case 'SendingFlight':
      case 'Connected':
      case 'Tls12':
        throw new InternalError(`handshake message ${type} dispatched in state ${s.kind}, which accepts none`);
    }
  }

  // --- §4.1.2 ClientHello -----------------------------------------------------------------------------

  private sendClientHello(session: TlsSession | undefined): Offer {
    const o = this.config.options;
    const tls13 = this.config.versions.includes(ProtocolVersion.TLS1_3);
    const tls12 = this.config.tls12Suites.length > 0;
    const shares = tls13 ? this.config.keyShareGroups.map((g) => generateKeyShare(g)!) : [];
    const sni = this.servername !== undefined && isIP(this.servername) === 0 ? this.servername : undefined;
    const offerDc = o.serverCredentialHooks?.offer;
    const hello: ClientHello = {
      legacyVersion: ProtocolVersion.TLS1_2,
      random: randomBytesPooled(32),
      legacySessionId: o.middleboxCompat === false ? new Uint8Array(0) : randomBytesPooled(32),
      cipherSuites: [...(tls13 ? this.config.suites.map((s) => s.id) : []), ...this.config.tls12Suites.map((s) => s.id)],
      legacyCompressionMethods: Uint8Array.of(0),
      extensions: {
        ...(sni !== undefined ? { serverName: sni } : {}),
        // TLS 1.2 alone: only its ECDHE groups (the hybrids are TLS 1.3 only).
        supportedGroups: tls13 ? this.config.groups : this.config.groups.filter((g) => TLS12_GROUPS.includes(g)),
        signatureAlgorithms: this.config.signatureAlgorithms,
        supportedVersions: this.config.versions,
        ...(tls13 ? { keyShares: shares.map((s) => ({ group: s.group, keyExchange: s.publicKey })), pskKeyExchangeModes: [PskKeyExchangeMode.psk_dhe_ke] } : {}),
        // TLS 1.2: the extended master secret, secure renegotiation indication, uncompressed points.
        ...(tls12 ? { extendedMasterSecret: true, renegotiationInfo: new Uint8Array(0), ecPointFormats: [0] } : {}),
        ...(o.alpnProtocols && o.alpnProtocols.length > 0 ? { alpn: o.alpnProtocols } : {}),
        ...(offerDc && offerDc.length > 0 ? { delegatedCredential: offerDc } : {}),
        unknown: [],
      },
    };
    const usableSuite = session && sessionUsable(session, this.config.now().getTime()) ? suiteParams(session.cipherSuite) : undefined;
    const usable = usableSuite && pskFits(hello, session!.ticket, usableSuite.hashLength) ? session : undefined;
    const transcript = new Transcript();
    const raw = this.encodeClientHello(hello, usable, undefined);
    transcript.add(raw);
    this.records.writeInitialClientHello(raw);
    return { hello, helloRaw: raw, shares, transcript, session: usable, retrySuite: undefined, sentChangeCipherSpec: false };
  }

  /**
   * Encodes a ClientHello; with a session, adds pre_shared_key (last) and fills in its binder
   * over the transcript so far plus the truncated ClientHello (§4.2.11.2).
   */
  private encodeClientHello(hello: ClientHello, session: TlsSession | undefined, retried: Transcript | undefined): Uint8Array {
    const suite = session ? suiteParams(session.cipherSuite)! : undefined;
    if (!session || !suite) return encodeHandshake(HandshakeType.client_hello, (w) => writeClientHello(w, hello), 512);
    const age = (this.config.now().getTime() - session.receivedAt + session.ageAdd) >>> 0;
    const withPsk: ClientHello = {
      ...hello,
      extensions: {
        ...hello.extensions,
        preSharedKey: { identities: [{ identity: session.ticket, obfuscatedTicketAge: age }], binders: [new Uint8Array(suite.hashLength)] },
      },
    };
    const raw = encodeHandshake(HandshakeType.client_hello, (w) => writeClientHello(w, withPsk), 512);
    const truncated = raw.subarray(0, raw.length - bindersLength([new Uint8Array(suite.hashLength)]));
    const hash = retried ? retried.currentWith(truncated) : createHash(suite.hash).update(truncated).digest();
    const binder = finishedVerifyData(suite, new EarlySecret(suite, session.psk).binderKey('resumption'), hash);
    raw.set(binder, raw.length - binder.length);
    return raw;
  }

  // --- §4.1.3 ServerHello / §4.1.4 HelloRetryRequest ------------------------------------------------------

  private onServerHello(offer: Offer, body: Uint8Array, raw: Uint8Array): void {
    // The version first (version.ts): TLS 1.2 and TLS 1.3 ServerHellos carry different extensions.
    const selected = serverHelloVersion(body);
    if (selected !== ProtocolVersion.TLS1_3) {
      checkServerVersion(selected, body.subarray(2, 34), this.config.versions);
      if (offer.retrySuite) throw new PeerMisbehaved('SelectedUnofferedVersion', 'TLS 1.2 after a HelloRetryRequest');
      const tls12 = new Tls12ClientHandshake(this.config, this.host(), this.servername, offer.hello, offer.helloRaw, offer.transcript, body, raw);
      this.state = { kind: 'Tls12' };
      this.handOver(tls12);
      return;
    }
    const sh = decodeServerHello(body);
    const suite = this.checkServerHello(offer, sh);
    if (isHelloRetryRequestRandom(sh.random)) return this.onHelloRetryRequest(offer, sh, suite, raw);
    const e = sh.extensions;
    if (!e.keyShare) throw new PeerMisbehaved('MissingKeyShare', 'ServerHello without key_share');
    const share = offer.shares.find((s) => s.group === e.keyShare!.group);
    if (!share) throw new PeerMisbehaved('SelectedUnofferedKeyShareGroup', 'server chose a group we sent no share for');
    const psk = this.acceptedPsk(offer, sh, suite);
    const transcript = offer.transcript;
    transcript.start(suite.hash);
    transcript.add(raw);
    const keys = new HandshakeKeys(suite, psk, share.computeSecret(e.keyShare.keyExchange), transcript.current());
    this.logHandshakeKeys(offer.hello.random, keys);
    this.records.setReader(new RecordOpener(suite, keys.serverTrafficSecret));
    this.records.setWriter(new RecordSealer(suite, keys.clientTrafficSecret));
    this.state = {
      kind: 'ExpectEncryptedExtensions',
      hs: { offer, suite, group: share.group, resumed: psk !== undefined, transcript, keys },
    };
  }

  /** Checks shared by ServerHello and HelloRetryRequest; returns the selected suite. */
  private checkServerHello(offer: Offer, sh: ServerHello): SuiteParams {
    if (sh.extensions.supportedVersion === undefined) throw new PeerMisbehaved('Tls13NotSelected', 'server did not select TLS 1.3');
    if (sh.extensions.supportedVersion !== ProtocolVersion.TLS1_3 || sh.legacyVersion !== ProtocolVersion.TLS1_2) {
      throw new PeerMisbehaved('SelectedUnofferedVersion', 'server selected a version we did not offer');
    }
    if (!Buffer.from(sh.legacySessionIdEcho).equals(offer.hello.legacySessionId)) {
      throw new PeerMisbehaved('SessionIdEchoMismatch', 'legacy_session_id_echo does not match');
    }
    if (sh.legacyCompressionMethod !== 0) throw new PeerMisbehaved('UnsupportedCompression', 'non-null compression method');
    const suite = this.config.suites.find((s) => s.id === sh.cipherSuite);
    if (!suite) throw new PeerMisbehaved('SelectedUnofferedCipherSuite', 'server selected a cipher suite we did not offer');
    if (offer.retrySuite && offer.retrySuite.id !== suite.id) {
      throw new PeerMisbehaved('SuiteChangedAfterRetry', 'ServerHello suite differs from the HelloRetryRequest suite');
    }
    return suite;
  }

  private acceptedPsk(offer: Offer, sh: ServerHello, suite: SuiteParams): Uint8Array | undefined {
    const index = sh.extensions.preSharedKey;
    if (index === undefined) return undefined;
    const session = offer.session;
    if (!session || index !== 0) throw new PeerMisbehaved('SelectedUnofferedPsk', 'server selected a PSK we did not offer');
    if (suiteParams(session.cipherSuite)!.hash !== suite.hash) throw new PeerMisbehaved('PskHashMismatch', 'PSK used with a suite of another hash');
    return session.psk;
  }

  private onHelloRetryRequest(offer: Offer, hrr: ServerHello, suite: SuiteParams, raw: Uint8Array): void {
    if (offer.retrySuite) throw new PeerMisbehaved('SecondHelloRetryRequest', 'second HelloRetryRequest');
    const group = hrr.extensions.selectedGroup;
    if (group === undefined && !hrr.extensions.cookie) throw new PeerMisbehaved('IllegalHelloRetryRequest', 'HelloRetryRequest that changes nothing');
    if (group !== undefined && (!this.config.groups.includes(group) || offer.shares.some((s) => s.group === group))) {
      throw new PeerMisbehaved('IllegalHelloRetryRequest', 'HelloRetryRequest selected a group we cannot or already did use');
    }
    const transcript = offer.transcript;
    transcript.start(suite.hash);
    transcript.replaceWithMessageHash();
    transcript.add(raw);
    const shares = group !== undefined ? [generateKeyShare(group)!] : offer.shares;
    const hello: ClientHello = {
      ...offer.hello,
      extensions: {
        ...offer.hello.extensions,
        keyShares: shares.map((s) => ({ group: s.group, keyExchange: s.publicKey })),
        ...(hrr.extensions.cookie ? { cookie: hrr.extensions.cookie } : {}),
      },
    };
    const session = offer.session && suiteParams(offer.session.cipherSuite)!.hash === suite.hash ? offer.session : undefined;
    const ch2 = this.encodeClientHello(hello, session, transcript);
    transcript.add(ch2);
    const compat = offer.hello.legacySessionId.length > 0;
    if (compat) this.records.writeChangeCipherSpec();
    this.records.queueHandshake(ch2);
    this.state = {
      kind: 'ExpectServerHello',
      offer: { hello, helloRaw: ch2, shares, transcript, session, retrySuite: suite, sentChangeCipherSpec: compat },
    };
  }

  // --- §4.3.1 EncryptedExtensions ----------------------------------------------------------------------

  private onEncryptedExtensions(hs: ClientHandshake, body: Uint8Array, raw: Uint8Array): void {
    const ee = decodeEncryptedExtensions(body);
    const offered = hs.offer.hello.extensions;
    if (ee.alpn !== undefined) {
      if (!offered.alpn) throw new PeerMisbehaved('UnsolicitedExtension', 'ALPN we did not offer');
      if (!offered.alpn.includes(ee.alpn)) throw new PeerMisbehaved('SelectedUnofferedAlpnProtocol', 'server selected an ALPN protocol we did not offer');
    }
    if (ee.serverNameAck && offered.serverName === undefined) throw new PeerMisbehaved('UnsolicitedExtension', 'server_name we did not send');
    if (ee.earlyData) throw new PeerMisbehaved('UnsolicitedExtension', 'early_data we did not offer');
    if (ee.unknown.length > 0) throw new PeerMisbehaved('UnsolicitedExtension', `unsolicited extension ${ee.unknown[0]!.type} in EncryptedExtensions`);
    hs.transcript.add(raw);
    const alpn = ee.alpn;
    this.state = hs.resumed
      ? { kind: 'ExpectFinished', hs, alpn, request: undefined, peer: undefined, serverMode: { authentication: 'psk' } }
      : { kind: 'ExpectCertificateOrRequest', hs, alpn };
  }

  // --- §4.3.2 CertificateRequest -------------------------------------------------------------------------

  private onCertificateRequest(hs: ClientHandshake, alpn: string | undefined, body: Uint8Array, raw: Uint8Array): void {
    const request = decodeCertificateRequest(body);
    if (request.context.length !== 0) throw new PeerMisbehaved('CertificateRequestContextMismatch', 'non-empty certificate_request_context in the handshake');
    if (!request.signatureAlgorithms) throw new PeerMisbehaved('MissingSignatureAlgorithms', 'CertificateRequest without signature_algorithms');
    hs.transcript.add(raw);
    this.state = { kind: 'ExpectCertificate', hs, alpn, request };
  }

  // --- §4.4.2 Certificate, §4.4.3 CertificateVerify (server authentication) --------------------------------

  private onCertificate(hs: ClientHandshake, alpn: string | undefined, request: CertificateRequest | undefined, body: Uint8Array, raw: Uint8Array): void {
    const msg = decodeCertificate(body);
    if (msg.context.length !== 0) throw new PeerMisbehaved('CertificateRequestContextMismatch', 'non-empty certificate_request_context from the server');
    if (msg.entries.length === 0) throw new DecodeError('server sent an empty Certificate');
    const peer = authenticatePeer(msg, {
      ca: this.config.trustStore,
      rejectUnauthorized: this.config.options.rejectUnauthorized ?? true,
      servername: this.servername,
      purpose: 'server',
      now: this.config.now(),
      hooks: this.config.options.serverCredentialHooks,
      offeredSchemes: this.config.signatureAlgorithms,
    });
    hs.transcript.add(raw);
    this.state = { kind: 'ExpectCertificateVerify', hs, alpn, request, peer };
  }

  private onCertificateVerify(st: StateOf<'ExpectCertificateVerify'>, body: Uint8Array, raw: Uint8Array): void {
    const { hs, alpn, request, peer } = st;
    const cv = decodeCertificateVerify(body);
    const serverMode = checkCertificateVerify(cv, peer.key, 'server', hs.transcript.current());
    hs.transcript.add(raw);
    this.state = { kind: 'ExpectFinished', hs, alpn, request, peer, serverMode };
  }

  // --- §4.4.4 the server's Finished, then our second flight ---------------------------------------------------

  private onServerFinished(st: StateOf<'ExpectFinished'>, body: Uint8Array, raw: Uint8Array): void {
    const { hs, alpn, request, peer } = st;
    const received = decodeFinished(body, hs.suite.hashLength);
    const expected = hs.keys.serverFinished(hs.transcript.current());
    if (!verifyDataEqual(expected, received)) throw new PeerMisbehaved('IncorrectFinished', 'server Finished does not verify');
    hs.transcript.add(raw);
    const app = hs.keys.application(hs.transcript.current());
    this.logApplicationKeys(hs.offer.hello.random, app);
    this.records.setReader(new RecordOpener(hs.suite, app.serverTrafficSecret));
    if (hs.offer.hello.legacySessionId.length > 0 && !hs.offer.sentChangeCipherSpec) this.records.writeChangeCipherSpec();
    this.state = { kind: 'SendingFlight' };

    const finish = (clientMode: HandshakeMode | undefined): void => {
      const verifyData = hs.keys.clientFinished(hs.transcript.current());
      this.queueHandshake(hs.transcript, encodeHandshake(HandshakeType.finished, (w) => w.bytes(verifyData), 4 + verifyData.length));
      this.records.setWriter(new RecordSealer(hs.suite, app.clientTrafficSecret));
      const resumptionMasterSecret = app.resumptionMasterSecret(hs.transcript.current());
      app.retire(resumptionMasterSecret); // kept: the server's NewSessionTickets are derived from it
      this.state = { kind: 'Connected', suite: hs.suite, resumptionMasterSecret, alpn };
      this.completeHandshake(
        {
          suite: hs.suite,
          readSecret: app.serverTrafficSecret,
          writeSecret: app.clientTrafficSecret,
          exporterMasterSecret: () => app.exporterMasterSecret(),
        },
        {
          version: 'TLSv1.3',
          cipherSuite: hs.suite.id,
          cipherSuiteName: hs.suite.name,
          group: hs.group,
          alpnProtocol: alpn,
          servername: this.servername,
          resumed: hs.resumed,
          helloRetryRequest: hs.offer.retrySuite !== undefined,
          peerCertificates: peer?.chain ?? [],
          peerAuthorized: hs.resumed || (peer?.authorized ?? false),
          peerAuthorizationError: peer?.authorizationError,
          serverMode: st.serverMode,
          clientMode,
        },
      );
    };
    if (!request) return finish(undefined);
    this.sendClientCertificate(hs, request, finish);
  }

  /** §4.4.2 client authentication: our Certificate (possibly empty) and CertificateVerify. */
  private sendClientCertificate(hs: ClientHandshake, request: CertificateRequest, finish: (mode: HandshakeMode | undefined) => void): void {
    const fallback = (): CredentialChoice | undefined => defaultCredential(this.config.keys, undefined, request.signatureAlgorithms ?? []);
    const hook = this.config.options.selectClientCredential;
    this.continueWith(hook ? hook(request, fallback) : fallback(), (choice) => {
      const entries = choice ? choice.certificateChain.map((data, i) => ({ data, extensions: i === 0 ? (choice.leafExtensions ?? []) : [] })) : [];
      this.queueHandshake(hs.transcript, encodeHandshake(HandshakeType.certificate, (w) => writeCertificate(w, { context: request.context, entries }), 2048));
      if (!choice) return finish(undefined);
      const allowed = [...(request.signatureAlgorithms ?? []), ...(request.delegatedCredential ?? [])];
      if (!allowed.includes(choice.scheme)) throw new InternalError('client credential scheme not offered by the server');
      const content = certificateVerifyContent('client', hs.transcript.current());
      this.continueWith(choice.signer.sign(choice.scheme, content), (signature) => {
        this.queueHandshake(hs.transcript, encodeHandshake(HandshakeType.certificate_verify, (w) => writeCertificateVerify(w, { scheme: choice.scheme, signature })));
        finish({
          authentication: choice.label ?? 'certificate',
          signatureScheme: choice.scheme,
          ...(choice.details !== undefined ? { details: choice.details } : {}),
        });
      });
    });
  }

  // --- §4.6.1 NewSessionTicket ------------------------------------------------------------------------------

  protected override onPostHandshakeMessage(type: number, body: Uint8Array): void {
    if (type !== HandshakeType.new_session_ticket) return super.onPostHandshakeMessage(type, body);
    const s = this.state;
    if (s.kind !== 'Connected') throw new PeerMisbehaved('UnexpectedHandshakeMessage', 'NewSessionTicket before the handshake completed');
    const t = decodeNewSessionTicket(body);
    if (t.lifetime === 0) return;
    this.emit({
      type: 'session',
      session: {
        ticket: Uint8Array.from(t.ticket),
        psk: resumptionPsk(s.suite, s.resumptionMasterSecret, t.nonce),
        cipherSuite: s.suite.id,
        ageAdd: t.ageAdd,
        lifetimeSeconds: t.lifetime,
        receivedAt: this.config.now().getTime(),
        servername: this.servername,
        alpnProtocol: s.alpn,
      },
    });
  }
}

/**
 * Whether `hello` can carry `ticket` as its pre_shared_key identity: a ClientHello's extensions are
 * extensions<8..2^16-1> (RFC 8446 §4.1.2), and a server may send a ticket of up to 2^16-1 bytes,
 * which with the rest does not fit. Such a ticket is kept but not offered: a full handshake.
 */
function pskFits(hello: ClientHello, ticket: Uint8Array, hashLength: number): boolean {
  // pre_shared_key: type 2, length 2, identities 2 + (identity 2 + ticket, age 4), binders 2 + (1 + hash).
  const psk = 4 + 2 + 2 + ticket.length + 4 + 2 + 1 + hashLength;
  // The rest of our ClientHello's extensions (a few KB) is not measured when even 32 KiB of them would fit.
  if (psk <= 0xffff - 0x8000) return true;
  const raw = encodeHandshake(HandshakeType.client_hello, (w) => writeClientHello(w, hello), 4096);
  const beforeExtensions = 4 + 2 + 32 + 1 + hello.legacySessionId.length + 2 + 2 * hello.cipherSuites.length + 1 + hello.legacyCompressionMethods.length;
  const others = raw.length - beforeExtensions - 2;
  return others + psk <= 0xffff;
}
