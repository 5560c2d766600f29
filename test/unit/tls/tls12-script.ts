/**
 * A scripted TLS 1.2 client, message by message, for what our own client never sends: any
 * ClientHello, a client Certificate and CertificateVerify of our choosing (or none, or in the
 * wrong order), tickets offered back. Shared by tls12.test.ts and tls12-client-auth.test.ts.
 */
import assert from 'node:assert/strict';
import { createHash, sign, type KeyObject } from 'node:crypto';
import type { ServerConnection } from '../../../src/tls/server.js';
import { CipherSuite, ContentType, HandshakeType, NamedGroup, SignatureScheme } from '../../../src/tls/constants.js';
import type { HandshakeInfo, TlsEvent } from '../../../src/tls/connection.js';
import { PeerMisbehaved, type PeerFault } from '../../../src/tls/errors.js';
import { generateKeyShare } from '../../../src/tls/key-exchange.js';
import { encodeHandshake, frameHandshake, writeClientHello, type ClientHello, type ClientHelloExtensions } from '../../../src/tls/messages/index.js';
import { cryptoOptions } from '../../../src/tls/signature-schemes.js';
import { decodeServerKeyExchange, writeCertificate12 } from '../../../src/tls/tls12/messages.js';
import { extendedMasterSecret, finishedVerifyData12, keyBlock } from '../../../src/tls/tls12/prf.js';
import { Tls12RecordSealer } from '../../../src/tls/tls12/record.js';
import { tls12SuiteParams, type Tls12SuiteParams } from '../../../src/tls/tls12/suites.js';
import { splitRecords } from './pair.js';

export const SUITE = tls12SuiteParams(CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)!;
export const CLIENT_RANDOM = new Uint8Array(32).fill(5);

export function record(type: number, body: Uint8Array): Uint8Array {
  return Buffer.concat([Uint8Array.of(type, 3, 3, body.length >> 8, body.length & 0xff), body]);
}

export const CHANGE_CIPHER_SPEC = Uint8Array.of(ContentType.change_cipher_spec, 3, 3, 0, 1, 1);

export function hello12(ext: Partial<ClientHelloExtensions> = {}, over: Partial<ClientHello> = {}): Uint8Array {
  const hello: ClientHello = {
    legacyVersion: 0x0303,
    random: CLIENT_RANDOM,
    legacySessionId: new Uint8Array(0),
    cipherSuites: [CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256],
    legacyCompressionMethods: Uint8Array.of(0),
    ...over,
    extensions: {
      supportedGroups: [NamedGroup.x25519, NamedGroup.secp256r1],
      signatureAlgorithms: [SignatureScheme.ecdsa_secp256r1_sha256],
      extendedMasterSecret: true,
      renegotiationInfo: new Uint8Array(0),
      ecPointFormats: [0],
      unknown: [],
      ...ext,
    },
  };
  return encodeHandshake(HandshakeType.client_hello, (w) => writeClientHello(w, hello));
}

/** Handshake messages (raw, header included) in a run of records, up to the first ChangeCipherSpec (then they are protected). */
export function handshakeMessages(output: readonly Uint8Array[]): Uint8Array[] {
  const records = splitRecords(Buffer.concat(output));
  const ccs = records.findIndex((r) => r[0] === ContentType.change_cipher_spec);
  const plaintext = ccs < 0 ? records : records.slice(0, ccs);
  const payload = Buffer.concat(plaintext.filter((r) => r[0] === ContentType.handshake).map((r) => r.subarray(5)));
  const out: Uint8Array[] = [];
  for (let off = 0; off + 4 <= payload.length; ) {
    const len = (payload[off + 1]! << 16) | (payload[off + 2]! << 8) | payload[off + 3]!;
    out.push(payload.subarray(off, off + 4 + len));
    off += 4 + len;
  }
  return out;
}

/** The handshake info of `events`, asserting it completed without an error. */
export function completed(events: readonly TlsEvent[]): HandshakeInfo {
  const err = events.find((e) => e.type === 'error');
  assert.equal(err, undefined, err && String(err.error));
  const hs = events.find((e): e is Extract<TlsEvent, { type: 'handshake' }> => e.type === 'handshake');
  assert.ok(hs, 'the handshake did not complete');
  return hs.info;
}

/** The first error event among `events`: the alert we sent and the fault, when it is a PeerMisbehaved. */
export function refusalIn(events: readonly TlsEvent[]): { alert: number | undefined; fault: PeerFault | undefined } {
  const e = events.find((x): x is Extract<TlsEvent, { type: 'error' }> => x.type === 'error');
  return { alert: e?.sentAlert, fault: e?.error instanceof PeerMisbehaved ? e.error.fault : undefined };
}

export function refusalAfter(conn: ServerConnection, ...chunks: Uint8Array[]): { alert: number | undefined; fault: PeerFault | undefined } {
  const events: TlsEvent[] = [];
  for (const c of chunks) events.push(...conn.feed(c).events);
  return refusalIn(events);
}

/** Feeds `chunks` to `conn` one by one and returns its events and output, waiting for a pending signer. */
export async function feedAll(conn: ServerConnection, ...chunks: Uint8Array[]): Promise<{ events: TlsEvent[]; output: Uint8Array[] }> {
  const events: TlsEvent[] = [];
  const output: Uint8Array[] = [];
  for (const c of chunks) {
    const p = conn.feed(c);
    events.push(...p.events);
    output.push(...p.output);
    if (p.waitFor) {
      await p.waitFor;
      const q = conn.poll();
      events.push(...q.events);
      output.push(...q.output);
    }
  }
  return { events, output };
}

/**
 * One scripted TLS 1.2 handshake with `conn`: `hello()` sends the ClientHello and reads the first
 * flight, then each method returns the record of one client message (and records it in the
 * handshake log, as the server does) for the test to feed in any order it likes.
 */
export class ScriptedClient12 {
  /** Every handshake message so far, both sides, raw: what CertificateVerify signs and Finished hashes. */
  readonly log: Uint8Array[] = [];
  serverMessages: Uint8Array[] = [];
  firstFlightEvents: TlsEvent[] = [];
  private serverRandom: Uint8Array | undefined;
  private ske: ReturnType<typeof decodeServerKeyExchange> | undefined;
  private master: Uint8Array | undefined;
  private sealer: Tls12RecordSealer | undefined;

  constructor(
    readonly conn: ServerConnection,
    readonly suite: Tls12SuiteParams = SUITE,
  ) {}

  /** Sends `hello`; resolves with the types of the server's first flight. */
  async hello(hello = hello12()): Promise<number[]> {
    const { events, output } = await feedAll(this.conn, record(ContentType.handshake, hello));
    this.firstFlightEvents = events;
    this.log.push(hello);
    this.serverMessages = handshakeMessages(output);
    this.log.push(...this.serverMessages);
    const ske = this.serverMessages.find((m) => m[0] === HandshakeType.server_key_exchange);
    this.serverRandom = this.serverMessages[0]?.subarray(6, 38);
    this.ske = ske && decodeServerKeyExchange(ske.subarray(4));
    return this.serverMessages.map((m) => m[0]!);
  }

  /** The server's message of `type` in its first flight (body only). */
  serverMessage(type: number): Uint8Array | undefined {
    return this.serverMessages.find((m) => m[0] === type)?.subarray(4);
  }

  /** A Certificate of `chain` (maybe empty). */
  certificate(chain: readonly Uint8Array[]): Uint8Array {
    return this.handshake(encodeHandshake(HandshakeType.certificate, (w) => writeCertificate12(w, chain), 16 + chain.reduce((n, c) => n + c.length + 3, 0)));
  }

  /** ClientKeyExchange; the master secret (RFC 7627) over the log up to it. */
  keyExchange(): Uint8Array {
    assert.ok(this.ske && this.serverRandom, 'no ServerKeyExchange to answer');
    const share = generateKeyShare(this.ske.group)!;
    const msg = this.handshake(encodeHandshake(HandshakeType.client_key_exchange, (w) => w.opaque8(share.publicKey)));
    this.master = extendedMasterSecret(this.suite, share.computeSecret(this.ske.publicKey), this.hashOfLog());
    const keys = keyBlock(this.suite, this.master, CLIENT_RANDOM, this.serverRandom);
    this.sealer = new Tls12RecordSealer(this.suite, keys.clientKey, keys.clientIv);
    return msg;
  }

  /** CertificateVerify: `key` signs the log so far under `scheme` (or `signature` is sent as given). */
  certificateVerify(key: KeyObject, scheme: number, tamper: (signature: Buffer) => Buffer = (s) => s): Uint8Array {
    const { algorithm, ...opts } = cryptoOptions(scheme, key);
    const signature = tamper(sign(algorithm, Buffer.concat(this.log), opts));
    return this.handshake(encodeHandshake(HandshakeType.certificate_verify, (w) => w.u16(scheme).opaque16(signature)));
  }

  /** Any handshake message, as given: logged, in plaintext records of at most 2^14 bytes (RFC 5246 §6.2.1). */
  handshake(message: Uint8Array): Uint8Array {
    this.log.push(message);
    const records: Uint8Array[] = [];
    for (let i = 0; i < message.length || i === 0; i += 16384) records.push(record(ContentType.handshake, message.subarray(i, i + 16384)));
    return Buffer.concat(records);
  }

  /** Our Finished over the log, sealed (send CHANGE_CIPHER_SPEC before it). */
  finished(): Uint8Array {
    assert.ok(this.master && this.sealer, 'no keys yet');
    const msg = frameHandshake(HandshakeType.finished, finishedVerifyData12(this.suite, this.master, 'client', this.hashOfLog()));
    this.log.push(msg);
    return this.sealer.seal(ContentType.handshake, msg);
  }

  /**
   * After `hello()` offered a ticket of a session with `master` and the server resumed it
   * (ServerHello, ChangeCipherSpec, Finished): our keys, and its Finished in the log.
   */
  resumedWith(master: Uint8Array): void {
    assert.ok(this.serverRandom);
    this.master = master;
    const keys = keyBlock(this.suite, master, CLIENT_RANDOM, this.serverRandom);
    this.sealer = new Tls12RecordSealer(this.suite, keys.clientKey, keys.clientIv);
    this.log.push(frameHandshake(HandshakeType.finished, finishedVerifyData12(this.suite, master, 'server', this.hashOfLog())));
  }

  /** A record of `type` protected under our keys (after `finished()`: application data, a renegotiation hello). */
  seal(type: number, content: Uint8Array): Uint8Array {
    assert.ok(this.sealer, 'no keys yet');
    return this.sealer.seal(type, content);
  }

  /** The master secret of this handshake (a resumed one reuses it). */
  get masterSecret(): Uint8Array {
    assert.ok(this.master);
    return this.master;
  }

  private hashOfLog(): Uint8Array {
    return createHash(this.suite.hash).update(Buffer.concat(this.log)).digest();
  }
}
