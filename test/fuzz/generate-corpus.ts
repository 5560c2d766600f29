/**
 * Writes the seed corpora under test/fuzz/corpus/<target>/seed-* (and the DC certificate in
 * test/fuzz/fixtures/): ClientHellos from our own client in its main configurations, a
 * resumption hello with a ticket from the fuzz server, the server's ServerHello, handshake
 * messages from our writers, delegated credentials, keyless requests and responses.
 *
 *   make fuzz-corpus        (node dist/test/fuzz/generate-corpus.js)
 *
 * Old seed-* files are replaced; other files there (regression inputs) are kept. Keys are fresh
 * on every run, so the DC seeds and the certificate change together.
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeMessage } from '../../src/keyless/codec.js';
import { Opcode } from '../../src/keyless/protocol.js';
import { encodeSignMessage } from '../../src/keyless/sign-message.js';
import { ClientConnection, type ClientOptions } from '../../src/tls/client.js';
import { encode } from '../../src/tls/codec.js';
import type { TlsEvent } from '../../src/tls/connection.js';
import type { TlsSession } from '../../src/tls/session.js';
import { CipherSuite, ContentType, ExtensionType, NamedGroup, SignatureScheme } from '../../src/tls/constants.js';
import { delegatedCredentialPeerHooks, issueDelegatedCredential } from '../../src/tls/delegated/index.js';
import {
  writeCertificate,
  writeCertificateRequest,
  writeCertificateVerify,
  writeEncryptedExtensions,
  writeNewSessionTicket,
} from '../../src/tls/messages/index.js';
import { ServerConnection } from '../../src/tls/server.js';
import { makeCertificate } from '../unit/tls/delegated/fixtures.js';
import { CHANGE_CIPHER_SPEC, hello12, record, ScriptedClient12 } from '../unit/tls/tls12-script.js';
import { committedCorpus } from './protocol.js';
import { CODECS } from './targets/tls-codec.js';
import { DC_CERTIFICATE_FILE, FIXTURE_NOW } from './targets/dc-decoder.js';
import { ALPN, FIXED_NOW, fuzzServers, SERVER_NAME } from './targets/server-setup.js';

const corpora = new Map<string, Map<string, Uint8Array>>();
function seed(target: string, name: string, ...parts: Uint8Array[]): void {
  let m = corpora.get(target);
  if (!m) corpora.set(target, (m = new Map()));
  m.set(`seed-${name}`, Buffer.concat(parts));
}
const b = (...bytes: number[]): Uint8Array => Uint8Array.from(bytes);

/** The client's first flight (whole records) for `options`. */
function firstFlight(options: ClientOptions): Uint8Array {
  return Buffer.concat(new ClientConnection(options).poll().output);
}

/** Runs a handshake against `server` in memory; returns the client's flights, the server's first flight, and the session. */
async function handshake(options: ClientOptions, server: ServerConnection): Promise<{ client: Uint8Array[]; server: Uint8Array; session: TlsSession | undefined }> {
  const client = new ClientConnection(options);
  const flights: Uint8Array[] = [];
  let serverFirst: Uint8Array | undefined;
  let session: TlsSession | undefined;
  const collect = (events: readonly TlsEvent[]): void => {
    for (const e of events) if (e.type === 'session') session = e.session;
  };
  let toServer = Buffer.concat(client.poll().output);
  for (let round = 0; round < 10 && toServer.length > 0; round++) {
    flights.push(toServer);
    let p = server.feed(toServer);
    while (p.waitFor) {
      await p.waitFor;
      p = server.poll();
    }
    const toClient = Buffer.concat(p.output);
    serverFirst ??= toClient;
    const c = client.feed(toClient);
    collect(c.events);
    toServer = Buffer.concat(c.output);
  }
  return { client: flights, server: serverFirst ?? new Uint8Array(0), session };
}

async function main(): Promise<void> {
  const servers = await fuzzServers();
  const base: ClientOptions = { servername: SERVER_NAME, ca: [servers.certificate.pem], now: () => FIXED_NOW };
  const hellos: Record<string, ClientOptions> = {
    default: base,
    dc: { ...base, serverCredentialHooks: delegatedCredentialPeerHooks({ peer: 'server' }) },
    alpn: { ...base, alpnProtocols: ALPN },
    p256share: { ...base, keyShareGroups: [NamedGroup.secp256r1] },
    // A share for a group the server likes less than one the client also lists: maybe a HelloRetryRequest.
    hrr: { ...base, groups: [NamedGroup.x25519, NamedGroup.secp384r1], keyShareGroups: [NamedGroup.secp384r1] },
    chacha: { ...base, cipherSuites: [CipherSuite.TLS_CHACHA20_POLY1305_SHA256], middleboxCompat: false },
    nosni: { ca: [servers.certificate.pem], now: () => FIXED_NOW, signatureAlgorithms: [SignatureScheme.ecdsa_secp256r1_sha256] },
  };
  for (const [name, options] of Object.entries(hellos)) {
    const flight = firstFlight(options);
    seed('server-hello', name, b(name === 'alpn' ? 1 : 0, 0), flight);
    seed('client-hello-peek', name, b(0), flight);
    seed('record-layer', `plain-${name}`, b(0, 0), flight);
    // Handshake message body (after the 5-byte record and 4-byte handshake headers).
    seed('tls-codec', `client-hello-${name}`, b(0), flight.subarray(9));
  }
  // The ClientHello as handshake payload the target frames, and in one-byte chunks.
  const dcFlight = firstFlight(hellos.dc!);
  seed('server-hello', 'dc-framed', b(2, 0), dcFlight.subarray(5));
  seed('client-hello-peek', 'dc-bytewise', b(0x80), dcFlight);

  // A full handshake against the fuzz server: the client's second flight follows its hello (the
  // server's keys differ in each run, so the target sees a Finished that fails: the path after
  // ServerHello), and the session makes a resumption seed with a ticket the target's server takes.
  const full = await handshake(hellos.dc!, new ServerConnection(servers.plain));
  seed('server-hello', 'dc-two-flights', b(0, 0), ...full.client);
  seed('tls-codec', 'server-hello', b(1), full.server.subarray(9, 9 + ((full.server[3]! << 8) | full.server[4]!) - 4));
  if (!full.session) throw new Error('no session ticket from the fuzz server');
  const resumed = firstFlight({ ...base, session: full.session });
  seed('server-hello', 'resumption', b(0, 0), resumed);
  seed('client-hello-peek', 'resumption', b(0), resumed);
  seed('tls-codec', 'client-hello-resumption', b(0), resumed.subarray(9));
  const strict = await handshake({ ...base, alpnProtocols: ALPN }, new ServerConnection(servers.strict));
  seed('server-hello', 'strict-two-flights', b(1, 0), ...strict.client);

  // TLS 1.2 (src/tls/tls12): the hello of a TLS 1.2-only client, and its two flights.
  const tls12: ClientOptions = { ...base, minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' };
  seed('server-hello', 'tls12', b(0, 0), firstFlight(tls12));
  seed('client-hello-peek', 'tls12', b(0), firstFlight(tls12));
  const full12 = await handshake(tls12, new ServerConnection(servers.plain));
  seed('server-hello', 'tls12-two-flights', b(0, 0), ...full12.client);
  // TLS 1.2 with client authentication (the strict server sends a CertificateRequest): our client
  // does not authenticate in TLS 1.2, so a scripted one sends Certificate, ClientKeyExchange,
  // CertificateVerify, ChangeCipherSpec and Finished. The Certificate is parsed and verified as
  // sent (or as the fuzzer changes it); the server's random and key share differ in each run, so
  // the CertificateVerify then fails (decrypt_error), and without a certificate the Finished does.
  const scripted = new ScriptedClient12(new ServerConnection(servers.strict));
  const clientHello12 = hello12({ serverName: SERVER_NAME, alpn: ALPN, signatureAlgorithms: [SignatureScheme.ecdsa_secp256r1_sha256, SignatureScheme.rsa_pkcs1_sha256] });
  await scripted.hello(clientHello12);
  const authenticated12 = [
    scripted.certificate([servers.certificate.der]),
    scripted.keyExchange(),
    scripted.certificateVerify(servers.certificate.privateKey, SignatureScheme.ecdsa_secp256r1_sha256),
    CHANGE_CIPHER_SPEC,
    scripted.finished(),
  ];
  seed('server-hello', 'tls12-strict-client-certificate', b(1, 0), record(ContentType.handshake, clientHello12), ...authenticated12);
  const anonymous = new ScriptedClient12(new ServerConnection(servers.strict));
  await anonymous.hello(clientHello12);
  seed('server-hello', 'tls12-strict-no-certificate', b(1, 0), record(ContentType.handshake, clientHello12), anonymous.certificate([]), anonymous.keyExchange(), CHANGE_CIPHER_SPEC, anonymous.finished());

  // Handshake messages from our writers (selector byte = index in the codec table).
  const sel = (name: string): Uint8Array => b(CODECS.findIndex((c) => c.name === name));
  seed('tls-codec', 'encrypted-extensions', sel('EncryptedExtensions'), encode((w) => writeEncryptedExtensions(w, { serverNameAck: true, alpn: 'h2', supportedGroups: [NamedGroup.x25519], unknown: [] })));
  const dc = await issueDelegatedCredential({ certificate: servers.certificate.der, signer: servers.certificate.signer, dcAlgorithm: 'ed25519', validitySeconds: 3600, now: FIXED_NOW });
  seed('tls-codec', 'certificate', sel('Certificate'), encode((w) => writeCertificate(w, { context: new Uint8Array(0), entries: [{ data: servers.certificate.der, extensions: [{ type: ExtensionType.delegated_credential, data: dc.delegatedCredential }] }] })));
  seed('tls-codec', 'certificate-request', sel('CertificateRequest'), encode((w) => writeCertificateRequest(w, { context: new Uint8Array(0), signatureAlgorithms: [SignatureScheme.ed25519, SignatureScheme.ecdsa_secp256r1_sha256], delegatedCredential: [SignatureScheme.ed25519], certificateAuthorities: [b(0x30, 0x00)], unknown: [] })));
  seed('tls-codec', 'certificate-verify', sel('CertificateVerify'), encode((w) => writeCertificateVerify(w, { scheme: SignatureScheme.ecdsa_secp256r1_sha256, signature: new Uint8Array(72).fill(1) })));
  seed('tls-codec', 'new-session-ticket', sel('NewSessionTicket'), encode((w) => writeNewSessionTicket(w, { lifetime: 7200, ageAdd: 1234, nonce: b(0), ticket: new Uint8Array(64).fill(3), earlyDataMaxSize: 0, unknown: [] })));
  seed('tls-codec', 'key-update', sel('KeyUpdate'), b(1));
  seed('tls-codec', 'alert', sel('Alert'), b(2, 40));
  seed('tls-codec', 'finished', sel('Finished'), new Uint8Array(32).fill(9));

  // Protected records for the record layer: [type][padding][length u16][content] each.
  const item = (type: number, padding: number, content: Uint8Array): Uint8Array => Buffer.concat([b(type, padding, content.length >> 8, content.length & 0xff), content]);
  const finished = Buffer.concat([b(20, 0, 0, 32), new Uint8Array(32).fill(9)]);
  seed('record-layer', 'protected', b(1, 0), item(22, 0, finished), item(23, 16, b(1, 2, 3)), item(21, 0, b(1, 0)));
  seed('record-layer', 'protected-split-handshake', b(1, 0), item(22, 0, finished.subarray(0, 10)), item(22, 3, finished.subarray(10)));
  seed('record-layer', 'plain-ccs-alert', b(4, 0x81), b(20, 3, 3, 0, 1, 1, 21, 3, 3, 0, 2, 2, 40));

  // Delegated credentials signed by the fixture certificate.
  const dcCert = await makeCertificate({ keyType: 'p256', notBefore: new Date(FIXTURE_NOW.getTime() - 86400_000), notAfter: new Date(FIXTURE_NOW.getTime() + 90 * 86400_000) });
  mkdirSync(join(DC_CERTIFICATE_FILE, '..'), { recursive: true });
  writeFileSync(DC_CERTIFICATE_FILE, dcCert.der);
  for (const dcAlgorithm of ['ed25519', 'ecdsa_secp256r1_sha256', 'ecdsa_secp384r1_sha384', 'rsa_pss_pss_sha256'] as const) {
    const issued = await issueDelegatedCredential({ certificate: dcCert.der, signer: dcCert.signer, dcAlgorithm, validitySeconds: 86400, now: FIXTURE_NOW });
    seed('dc-decoder', dcAlgorithm, issued.delegatedCredential);
  }

  // Keyless requests and responses (byte 0: the chunking of the frame decoder).
  const ski = new Uint8Array(20).fill(0xab);
  const sign = encodeMessage(7, { opcode: Opcode.ecdsaSignSha256, ski, payload: new Uint8Array(32).fill(1), serverName: 'example.test', clientIp: b(127, 0, 0, 1) }, { padTo: 1024 });
  seed('keyless-codec', 'sign-request', b(0), sign);
  seed('keyless-codec', 'sign-response', b(0), encodeMessage(7, { opcode: Opcode.response, payload: new Uint8Array(72).fill(2) }));
  seed('keyless-codec', 'error-response', b(0), encodeMessage(8, { opcode: Opcode.error, payload: b(2) }));
  seed('keyless-codec', 'ping-pong-stream', b(0x83), encodeMessage(1, { opcode: Opcode.ping, payload: b(1, 2) }), encodeMessage(1, { opcode: Opcode.pong, payload: b(1, 2) }));
  const content = Buffer.concat([Buffer.alloc(64, 0x20), Buffer.from('TLS 1.3, server CertificateVerify\0'), new Uint8Array(32).fill(5)]);
  seed('keyless-codec', 'sign-message-request', b(0), encodeMessage(10, { opcode: Opcode.signMessage, ski, payload: encodeSignMessage({ scheme: 0x0403, message: content }) }, { padTo: 1024 }));
  seed('keyless-codec', 'rsa-pss-legacy', b(0), encodeMessage(9, { opcode: Opcode.rsaPssSignSha256, certificateDigest: new Uint8Array(32).fill(4), serverIp: new Uint8Array(16).fill(1), certificateId: 'cert-1', payload: new Uint8Array(32) }));

  let total = 0;
  for (const [target, files] of corpora) {
    const dir = committedCorpus(target);
    mkdirSync(dir, { recursive: true });
    for (const f of readdirSync(dir)) if (f.startsWith('seed-')) rmSync(join(dir, f));
    for (const [name, bytes] of files) {
      writeFileSync(join(dir, name), bytes);
      total += bytes.length;
    }
    console.log(`${target}: ${files.size} seeds`);
  }
  console.log(`wrote ${total} bytes of seeds`);
}

await main();
