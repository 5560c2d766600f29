/**
 * TLS 1.2 client handshake, sans-IO: full handshakes only (no resumption), with ECDHE, the AEAD
 * suites, extended master secret and secure renegotiation indication required of the server. Run
 * by `ClientConnection` when the ServerHello selects TLS 1.2 (after the downgrade check of
 * ../version.ts).
 *
 *   ClientHello  -->
 *                <--  ServerHello, Certificate, ServerKeyExchange, [CertificateRequest], ServerHelloDone
 *   [Certificate], ClientKeyExchange, [CertificateVerify], [ChangeCipherSpec], Finished  -->
 *                <--  [ChangeCipherSpec], Finished
 *
 * A CertificateRequest is answered with the configured certificate that fits it
 * (./client-certificate.ts: the TLS 1.3 client's choice) and a CertificateVerify signed over every
 * handshake message before it, ClientHello to ClientKeyExchange (RFC 5246 §7.4.8), with the hash of
 * the chosen scheme; with none that fits, with an empty Certificate (§7.4.6), which a server that
 * only asks lets in and one that requires a certificate refuses. The messages are kept for that
 * signature only when the client has certificates to give (or a hook to choose them).
 *
 * A HelloRequest after the handshake gets a warning no_renegotiation (./renegotiation.ts).
 */
import type { HandshakeHost, HandshakeMode } from '../connection.js';
import type { CredentialChoice } from '../credentials.js';
import { HandshakeType } from '../constants.js';
import { DecodeError, InternalError, PeerMisbehaved } from '../errors.js';
import { generateKeyShare } from '../key-exchange.js';
import { verifyDataEqual, type Transcript } from '../key-schedule.js';
import type { ClientHello } from '../messages/client-hello.js';
import { encodeHandshake, frameHandshake, writeCertificateVerify } from '../messages/handshake.js';
import { authenticatePeer, type AuthenticatedPeer } from '../peer-auth.js';
import type { ClientConfig } from '../client.js';
import { schemeParams, verifyTls12Signature } from '../signature-schemes.js';
import { chooseClientCredential12 } from './client-certificate.js';
import {
  decodeCertificate12,
  decodeCertificateRequest12,
  decodeFinished12,
  decodeServerHello12,
  decodeServerHelloDone,
  decodeServerKeyExchange,
  serverKeyExchangeContent,
  writeCertificate12,
  writeClientKeyExchange,
  type CertificateRequest12,
  type ServerKeyExchange,
} from './messages.js';
import { extendedMasterSecret, finishedVerifyData12, keyBlock } from './prf.js';
import { tls12TrafficState, type Negotiated } from './negotiated.js';
import { Tls12RecordOpener, Tls12RecordSealer } from './record.js';
import { RenegotiationRefusal } from './renegotiation.js';
import { TLS12_GROUPS } from './suites.js';

interface Keyed extends Negotiated {
  readonly group: number;
  readonly masterSecret: Uint8Array;
  readonly peer: AuthenticatedPeer;
  readonly serverMode: HandshakeMode;
  readonly serverReadKeys: { readonly key: Uint8Array; readonly iv: Uint8Array };
  /** How we signed our CertificateVerify; undefined when we sent no certificate. */
  readonly clientMode: HandshakeMode | undefined;
}

type Tls12ClientState =
  | { readonly kind: 'ExpectCertificate'; readonly hs: Negotiated }
  | { readonly kind: 'ExpectServerKeyExchange'; readonly hs: Negotiated; readonly peer: AuthenticatedPeer }
  | {
      readonly kind: 'ExpectServerHelloDone';
      readonly hs: Negotiated;
      readonly peer: AuthenticatedPeer;
      readonly ske: ServerKeyExchange;
      /** The server's CertificateRequest (at most one, before ServerHelloDone). */
      readonly request: CertificateRequest12 | undefined;
    }
  | { readonly kind: 'ExpectChangeCipherSpec'; readonly hs: Keyed }
  | { readonly kind: 'ExpectFinished'; readonly hs: Keyed }
  | { readonly kind: 'Connected' };

const EXPECTED: Record<Tls12ClientState['kind'], number | undefined> = {
  ExpectCertificate: HandshakeType.certificate,
  ExpectServerKeyExchange: HandshakeType.server_key_exchange,
  ExpectServerHelloDone: HandshakeType.server_hello_done,
  ExpectChangeCipherSpec: undefined,
  ExpectFinished: HandshakeType.finished,
  Connected: undefined,
};

export class Tls12ClientHandshake {
  private state: Tls12ClientState;
  private readonly renegotiation: RenegotiationRefusal;
  /**
   * The handshake messages so far, raw, for our CertificateVerify (RFC 5246 §7.4.8 signs the
   * messages, not a hash of them): kept only by a client that may present a certificate.
   */
  private signedMessages: Uint8Array[] | undefined;

  /** `transcript` holds our ClientHello (not started); `serverHelloRaw` is the ServerHello that chose TLS 1.2. */
  constructor(
    private readonly config: ClientConfig,
    private readonly host: HandshakeHost,
    private readonly servername: string | undefined,
    hello: ClientHello,
    helloRaw: Uint8Array,
    transcript: Transcript,
    serverHelloBody: Uint8Array,
    serverHelloRaw: Uint8Array,
  ) {
    this.renegotiation = new RenegotiationRefusal(host);
    const sh = decodeServerHello12(serverHelloBody);
    const suite = config.tls12Suites.find((s) => s.id === sh.cipherSuite);
    if (!suite) throw new PeerMisbehaved('SelectedUnofferedCipherSuite', 'server selected a TLS 1.2 suite we did not offer');
    if (sh.compression !== 0) throw new PeerMisbehaved('UnsupportedCompression', 'non-null compression method');
    if (!sh.extendedMasterSecret) throw new PeerMisbehaved('MissingExtendedMasterSecret', 'TLS 1.2 server without the extended master secret (RFC 7627)');
    if (!sh.renegotiationInfo) throw new PeerMisbehaved('MissingRenegotiationInfo', 'TLS 1.2 server without renegotiation_info (RFC 5746)');
    if (sh.renegotiationInfo.length !== 0) throw new PeerMisbehaved('RenegotiationInfoNotEmpty', 'renegotiation_info not empty in an initial handshake');
    if (sh.sessionTicket) throw new PeerMisbehaved('UnsolicitedExtension', 'session_ticket we did not offer');
    if (sh.serverNameAck && hello.extensions.serverName === undefined) throw new PeerMisbehaved('UnsolicitedExtension', 'server_name we did not send');
    if (sh.alpn !== undefined && !hello.extensions.alpn?.includes(sh.alpn)) {
      throw new PeerMisbehaved('SelectedUnofferedAlpnProtocol', 'server selected an ALPN protocol we did not offer');
    }
    transcript.start(suite.hash);
    transcript.add(serverHelloRaw);
    if (config.keys.length > 0 || config.options.selectClientCredential) this.signedMessages = [helloRaw, serverHelloRaw];
    this.state = { kind: 'ExpectCertificate', hs: { hello, suite, transcript, serverRandom: sh.random, alpn: sh.alpn } };
  }

  get stateName(): Tls12ClientState['kind'] {
    return this.state.kind;
  }

  get connected(): boolean {
    return this.state.kind === 'Connected';
  }

  expectsHandshake(type: number): boolean {
    // A HelloRequest may come "at any time" (RFC 5246 §7.4.1.1): after the handshake for its
    // warning, during it to be ignored.
    if (type === HandshakeType.hello_request) return true;
    if (this.state.kind === 'Connected') return false;
    // RFC 5246 §7.4.4: a CertificateRequest may come between ServerKeyExchange and ServerHelloDone, once.
    if (type === HandshakeType.certificate_request) return this.state.kind === 'ExpectServerHelloDone' && !this.state.request;
    return EXPECTED[this.state.kind] === type;
  }

  onHandshakeMessage(type: number, body: Uint8Array, raw: Uint8Array): void {
    const s = this.state;
    if (type === HandshakeType.hello_request) {
      // RFC 5246 §7.4.1.1: ignored while negotiating, and never part of the handshake hashes.
      if (body.length !== 0) throw new DecodeError(`HelloRequest of ${body.length} bytes (it is empty)`);
      return;
    }
    if (type === HandshakeType.certificate_request && s.kind === 'ExpectServerHelloDone' && !s.request) return this.onCertificateRequest(s, body, raw);
    if (EXPECTED[s.kind] !== type) throw new PeerMisbehaved('UnexpectedHandshakeMessage', `TLS 1.2: handshake message ${type} in state ${s.kind}`);
    switch (s.kind) {
      case 'ExpectCertificate':
        return this.onCertificate(s.hs, body, raw);
      case 'ExpectServerKeyExchange':
        return this.onServerKeyExchange(s.hs, s.peer, body, raw);
      case 'ExpectServerHelloDone':
        return this.onServerHelloDone(s.hs, s.peer, s.ske, s.request, body, raw);
      case 'ExpectFinished':
        return this.onServerFinished(s.hs, body, raw);
      default:
        throw new InternalError(`TLS 1.2 client: no handler in state ${s.kind}`);
    }
  }

  onChangeCipherSpec(): void {
    const s = this.state;
    if (s.kind !== 'ExpectChangeCipherSpec') throw new PeerMisbehaved('UnexpectedChangeCipherSpec', `TLS 1.2: change_cipher_spec in state ${s.kind}`);
    this.host.records.setReader(new Tls12RecordOpener(s.hs.suite, s.hs.serverReadKeys.key, s.hs.serverReadKeys.iv));
    this.state = { kind: 'ExpectFinished', hs: s.hs };
  }

  /** After the handshake only a HelloRequest can arrive (expectsHandshake): we never renegotiate. */
  onPostHandshakeMessage(type: number, body: Uint8Array): void {
    if (type !== HandshakeType.hello_request) throw new PeerMisbehaved('UnexpectedHandshakeMessage', `TLS 1.2: handshake message ${type} after the handshake`);
    if (body.length !== 0) throw new DecodeError(`HelloRequest of ${body.length} bytes (it is empty)`);
    this.renegotiation.refuse('HelloRequest');
  }

  private onCertificate(hs: Negotiated, body: Uint8Array, raw: Uint8Array): void {
    const chain = decodeCertificate12(body);
    if (chain.length === 0) throw new DecodeError('server sent an empty Certificate');
    const peer = authenticatePeer(
      { context: new Uint8Array(0), entries: chain.map((data) => ({ data, extensions: [] })) },
      {
        ca: this.config.trustStore,
        rejectUnauthorized: this.config.options.rejectUnauthorized ?? true,
        servername: this.servername,
        purpose: 'server',
        now: this.config.now(),
        // Delegated credentials are TLS 1.3 only (RFC 9345).
        hooks: undefined,
        offeredSchemes: this.config.signatureAlgorithms,
      },
    );
    this.add(hs, raw);
    this.state = { kind: 'ExpectServerKeyExchange', hs, peer };
  }

  /** RFC 8422 §5.4: a group we offered, a scheme we offered that fits the suite, a valid signature. */
  private onServerKeyExchange(hs: Negotiated, peer: AuthenticatedPeer, body: Uint8Array, raw: Uint8Array): void {
    const ske = decodeServerKeyExchange(body);
    // Our supported_groups may list hybrids for TLS 1.3; for TLS 1.2 we offered only its ECDHE groups.
    if (!this.config.groups.includes(ske.group) || !TLS12_GROUPS.includes(ske.group)) {
      throw new PeerMisbehaved('SelectedUnofferedGroup', `server chose group 0x${ske.group.toString(16)} for TLS 1.2 ECDHE, which we did not offer (x25519, P-256, P-384 only)`);
    }
    const kind = schemeParams(ske.scheme)?.kind;
    const fits = hs.suite.auth === 'ecdsa' ? kind === 'ecdsa' : kind === 'rsa-pss' || kind === 'rsa-pkcs1';
    if (!this.config.signatureAlgorithms.includes(ske.scheme) || !fits) {
      throw new PeerMisbehaved('UnofferedSignatureScheme', `ServerKeyExchange signed with scheme 0x${ske.scheme.toString(16)}, which we did not offer for ${hs.suite.name}`);
    }
    const content = serverKeyExchangeContent(hs.hello.random, hs.serverRandom, ske.params);
    if (!verifyTls12Signature(ske.scheme, peer.key.publicKey, content, ske.signature)) {
      throw new PeerMisbehaved('BadServerKeyExchangeSignature', 'ServerKeyExchange signature does not verify with the certificate key');
    }
    this.add(hs, raw);
    this.state = { kind: 'ExpectServerHelloDone', hs, peer, ske, request: undefined };
  }

  /** RFC 5246 §7.4.4: kept for ServerHelloDone, where our certificate is chosen for it. */
  private onCertificateRequest(s: Extract<Tls12ClientState, { kind: 'ExpectServerHelloDone' }>, body: Uint8Array, raw: Uint8Array): void {
    const request = decodeCertificateRequest12(body);
    this.add(s.hs, raw);
    this.state = { kind: 'ExpectServerHelloDone', hs: s.hs, peer: s.peer, ske: s.ske, request };
  }

  /** ServerHelloDone: our flight, [Certificate,] ClientKeyExchange, [CertificateVerify,] ChangeCipherSpec, Finished. */
  private onServerHelloDone(hs: Negotiated, peer: AuthenticatedPeer, ske: ServerKeyExchange, request: CertificateRequest12 | undefined, body: Uint8Array, raw: Uint8Array): void {
    decodeServerHelloDone(body);
    this.add(hs, raw);
    if (!request) return this.sendFlight(hs, peer, ske, undefined);
    // RFC 5246 §7.4.6: asked for a certificate, the client sends a Certificate, empty if it has none that fits.
    const choice = this.signedMessages ? chooseClientCredential12(this.config, request) : undefined;
    this.host.continueWith(choice, (chosen) => {
      this.queue(hs, encodeHandshake(HandshakeType.certificate, (w) => writeCertificate12(w, chosen?.certificateChain ?? []), 2048));
      this.sendFlight(hs, peer, ske, chosen);
    });
  }

  /** ClientKeyExchange, our CertificateVerify when we sent a certificate, then ChangeCipherSpec and Finished. */
  private sendFlight(hs: Negotiated, peer: AuthenticatedPeer, ske: ServerKeyExchange, chosen: CredentialChoice | undefined): void {
    const share = generateKeyShare(ske.group);
    if (!share) throw new InternalError(`no key share implementation for group ${ske.group}`);
    const preMasterSecret = share.computeSecret(ske.publicKey);
    this.queue(hs, encodeHandshake(HandshakeType.client_key_exchange, (w) => writeClientKeyExchange(w, share.publicKey), 8 + share.publicKey.length));
    // RFC 7627 §3: the session hash covers the messages up to and including ClientKeyExchange.
    const masterSecret = extendedMasterSecret(hs.suite, preMasterSecret, hs.transcript.current());
    preMasterSecret.fill(0);
    const signed = this.signedMessages;
    this.signedMessages = undefined;
    const finish = (clientMode: HandshakeMode | undefined): void => {
      this.host.logSecret('CLIENT_RANDOM', hs.hello.random, masterSecret);
      const keys = keyBlock(hs.suite, masterSecret, hs.hello.random, hs.serverRandom);
      this.host.records.writeChangeCipherSpec();
      this.host.records.setWriter(new Tls12RecordSealer(hs.suite, keys.clientKey, keys.clientIv));
      this.queue(hs, frameHandshake(HandshakeType.finished, finishedVerifyData12(hs.suite, masterSecret, 'client', hs.transcript.current())));
      // The server's one ChangeCipherSpec.
      this.host.records.changeCipherSpecAllowance = 1;
      const serverMode: HandshakeMode = { authentication: 'certificate', signatureScheme: ske.scheme };
      this.state = {
        kind: 'ExpectChangeCipherSpec',
        hs: { ...hs, group: ske.group, masterSecret, peer, serverMode, serverReadKeys: { key: keys.serverKey, iv: keys.serverIv }, clientMode },
      };
    };
    if (!chosen || !signed) return finish(undefined);
    // RFC 5246 §7.4.8: every handshake message so far, ClientHello through ClientKeyExchange.
    this.host.continueWith(chosen.signer.sign(chosen.scheme, Buffer.concat(signed)), (signature) => {
      this.queue(hs, encodeHandshake(HandshakeType.certificate_verify, (w) => writeCertificateVerify(w, { scheme: chosen.scheme, signature })));
      finish({
        authentication: chosen.label ?? 'certificate',
        signatureScheme: chosen.scheme,
        ...(chosen.details !== undefined ? { details: chosen.details } : {}),
      });
    });
  }

  private onServerFinished(hs: Keyed, body: Uint8Array, raw: Uint8Array): void {
    const received = decodeFinished12(body);
    const expected = finishedVerifyData12(hs.suite, hs.masterSecret, 'server', hs.transcript.current());
    if (!verifyDataEqual(expected, received)) throw new PeerMisbehaved('IncorrectFinished', 'server Finished does not verify');
    hs.transcript.add(raw);
    this.state = { kind: 'Connected' };
    const { suite } = hs;
    this.host.completeHandshake(
      tls12TrafficState(hs, hs.masterSecret),
      {
        version: 'TLSv1.2',
        cipherSuite: suite.id,
        cipherSuiteName: suite.name,
        group: hs.group,
        alpnProtocol: hs.alpn,
        servername: this.servername,
        resumed: false,
        helloRetryRequest: false,
        peerCertificates: hs.peer.chain,
        peerAuthorized: hs.peer.authorized,
        peerAuthorizationError: hs.peer.authorizationError,
        serverMode: hs.serverMode,
        clientMode: hs.clientMode,
      },
    );
  }

  private queue(hs: Negotiated, msg: Uint8Array): void {
    this.add(hs, msg);
    this.host.records.queueHandshake(msg);
  }

  /** A handshake message to the transcript and, while a CertificateVerify may follow, to the messages it signs. */
  private add(hs: Negotiated, msg: Uint8Array): void {
    hs.transcript.add(msg);
    this.signedMessages?.push(msg);
  }
}
