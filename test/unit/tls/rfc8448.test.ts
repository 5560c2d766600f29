import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createECDH, createPrivateKey, createPublicKey, diffieHellman } from 'node:crypto';
import { HandshakeKeys, PskEarlyKeys } from '../../../src/tls/handshake-keys.js';
import { nativeHandshake } from '../../../src/tls/native/handshake.js';
import {
  EarlySecret,
  SecretBlock,
  Transcript,
  finishedVerifyData,
  resumptionPsk,
  trafficKeys,
} from '../../../src/tls/key-schedule.js';
import { suiteParams } from '../../../src/tls/suites.js';
import { ContentType, CipherSuite, HandshakeType, NamedGroup, SignatureScheme } from '../../../src/tls/constants.js';
import { AlertDescription, AlertLevel } from '../../../src/tls/alerts.js';
import { RecordOpener, RecordSealer } from '../../../src/tls/record.js';
import {
  bindersLength,
  decodeCertificate,
  decodeCertificateVerify,
  decodeClientHello,
  decodeEncryptedExtensions,
  decodeNewSessionTicket,
  decodeServerHello,
  encodeAlert,
  frameHandshake,
  isHelloRetryRequestRandom,
  encodeHandshake,
  writeCertificate,
  writeCertificateVerify,
  writeEncryptedExtensions,
} from '../../../src/tls/messages/index.js';
import { certificateVerifyContent, verifySignature } from '../../../src/tls/signature-schemes.js';
import { hrr, resumed, simple } from './rfc8448-vectors.js';

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const body = (msg: string): Uint8Array => hex(msg).subarray(4);
const suite = suiteParams(CipherSuite.TLS_AES_128_GCM_SHA256)!;

function x25519Private(d: string, x: string) {
  return createPrivateKey({
    key: { kty: 'OKP', crv: 'X25519', d: Buffer.from(d, 'hex').toString('base64url'), x: Buffer.from(x, 'hex').toString('base64url') },
    format: 'jwk',
  });
}
function x25519Public(x: string) {
  return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(x, 'hex').toString('base64url') }, format: 'jwk' });
}

void test('RFC 8448 §3: x25519 shared secret matches', () => {
  const shared = diffieHellman({
    privateKey: x25519Private(simple.serverPrivate, simple.serverPublic),
    publicKey: x25519Public(simple.clientPublic),
  });
  assert.equal(toHex(shared), simple.sharedSecret);
});

void test('RFC 8448 §3: the simple 1-RTT key schedule, transcript hashes and Finished reproduce byte for byte', () => {
  const early = new EarlySecret(suite);
  assert.equal(toHex(early.secret), simple.earlySecret);
  const hs = early.handshake(hex(simple.sharedSecret));
  assert.equal(toHex(hs.secret), simple.handshakeSecret);

  const t = new Transcript();
  t.add(hex(simple.clientHello));
  t.start(suite.hash);
  t.add(hex(simple.serverHello));
  const helloHash = t.current();
  assert.equal(toHex(helloHash), simple.helloHash);

  const cHs = hs.clientHandshakeTrafficSecret(helloHash);
  const sHs = hs.serverHandshakeTrafficSecret(helloHash);
  assert.equal(toHex(cHs), simple.clientHandshakeTrafficSecret);
  assert.equal(toHex(sHs), simple.serverHandshakeTrafficSecret);
  assert.equal(toHex(trafficKeys(suite, sHs).key), simple.serverHandshakeKey);
  assert.equal(toHex(trafficKeys(suite, sHs).iv), simple.serverHandshakeIv);
  assert.equal(toHex(trafficKeys(suite, cHs).key), simple.clientHandshakeKey);
  assert.equal(toHex(trafficKeys(suite, cHs).iv), simple.clientHandshakeIv);

  const master = hs.master();
  assert.equal(toHex(master.secret), simple.masterSecret);

  t.add(hex(simple.encryptedExtensions));
  t.add(hex(simple.certificate));
  t.add(hex(simple.certificateVerify));
  assert.equal(toHex(finishedVerifyData(suite, sHs, t.current())), simple.serverFinishedVerifyData);
  t.add(hex(simple.serverFinished));

  const serverFinishedHash = t.current();
  const cAp = master.clientApplicationTrafficSecret(serverFinishedHash);
  const sAp = master.serverApplicationTrafficSecret(serverFinishedHash);
  assert.equal(toHex(cAp), simple.clientApplicationTrafficSecret);
  assert.equal(toHex(sAp), simple.serverApplicationTrafficSecret);
  assert.equal(toHex(master.exporterMasterSecret(serverFinishedHash)), simple.exporterMasterSecret);
  assert.equal(toHex(trafficKeys(suite, sAp).key), simple.serverApplicationKey);
  assert.equal(toHex(trafficKeys(suite, sAp).iv), simple.serverApplicationIv);
  assert.equal(toHex(trafficKeys(suite, cAp).key), simple.clientApplicationKey);
  assert.equal(toHex(trafficKeys(suite, cAp).iv), simple.clientApplicationIv);

  assert.equal(toHex(finishedVerifyData(suite, cHs, serverFinishedHash)), simple.clientFinishedVerifyData);
  t.add(hex(simple.clientFinished));
  const rms = master.resumptionMasterSecret(t.current());
  assert.equal(toHex(rms), simple.resumptionMasterSecret);
  const ticket = decodeNewSessionTicket(body(simple.newSessionTicket));
  assert.equal(toHex(resumptionPsk(suite, rms, ticket.nonce)), simple.resumptionPsk);
});

void test('RFC 8448 §3: HandshakeKeys and ApplicationKeys (secrets kept in one SecretBlock) give the trace\'s secrets, none overwriting another', () => {
  const t = new Transcript();
  t.start(suite.hash);
  t.add(hex(simple.clientHello));
  t.add(hex(simple.serverHello));
  const helloHash = t.current();
  const keys = new HandshakeKeys(suite, undefined, hex(simple.sharedSecret), helloHash);
  t.add(hex(simple.encryptedExtensions));
  t.add(hex(simple.certificate));
  t.add(hex(simple.certificateVerify));
  const serverFinished = keys.serverFinished(t.current());
  t.add(hex(simple.serverFinished));
  const serverFinishedHash = t.current();
  const app = keys.application(serverFinishedHash);
  const clientFinished = keys.clientFinished(serverFinishedHash);
  t.add(hex(simple.clientFinished));
  const rms = app.resumptionMasterSecret(t.current());
  // Checked after all were derived: a later output written over an earlier one would show here.
  assert.equal(toHex(helloHash), simple.helloHash);
  assert.equal(toHex(keys.clientTrafficSecret), simple.clientHandshakeTrafficSecret);
  assert.equal(toHex(keys.serverTrafficSecret), simple.serverHandshakeTrafficSecret);
  assert.equal(toHex(serverFinished), simple.serverFinishedVerifyData);
  assert.equal(toHex(app.clientTrafficSecret), simple.clientApplicationTrafficSecret);
  assert.equal(toHex(app.serverTrafficSecret), simple.serverApplicationTrafficSecret);
  assert.equal(toHex(app.exporterMasterSecret()), simple.exporterMasterSecret);
  assert.equal(toHex(clientFinished), simple.clientFinishedVerifyData);
  assert.equal(toHex(rms), simple.resumptionMasterSecret);
});

void test('RFC 8448 §3: ApplicationKeys.retire keeps the traffic secrets, the exporter and `keep`, and zeroes every other secret of the handshake', () => {
  const t = new Transcript();
  t.start(suite.hash);
  t.add(hex(simple.clientHello));
  t.add(hex(simple.serverHello));
  const shared = hex(simple.sharedSecret);
  const keys = new HandshakeKeys(suite, undefined, shared, t.current());
  assert.ok(shared.every((b) => b === 0), 'the (EC)DHE secret is zeroed once extracted');
  const clientHs = keys.clientTrafficSecret;
  const serverHs = keys.serverTrafficSecret;
  t.add(hex(simple.encryptedExtensions));
  t.add(hex(simple.certificate));
  t.add(hex(simple.certificateVerify));
  keys.serverFinished(t.current());
  t.add(hex(simple.serverFinished));
  const app = keys.application(t.current());
  keys.clientFinished(t.current());
  t.add(hex(simple.clientFinished));
  const rms = app.resumptionMasterSecret(t.current());

  app.retire(rms);

  assert.equal(toHex(app.clientTrafficSecret), simple.clientApplicationTrafficSecret);
  assert.equal(toHex(app.serverTrafficSecret), simple.serverApplicationTrafficSecret);
  assert.equal(toHex(app.exporterMasterSecret()), simple.exporterMasterSecret, 'derived before the master secret was erased');
  assert.equal(toHex(rms), simple.resumptionMasterSecret);
  assert.ok(clientHs.every((b) => b === 0) && serverHs.every((b) => b === 0), 'handshake traffic secrets zeroed');
  assert.throws(() => app.resumptionMasterSecret(t.current()), /after the handshake secrets were erased/);
  // Whatever else the secrets' memory holds (the handshake, master and Finished secrets, on the
  // native path all in one block) is zero: only the four kept secrets remain non-zero.
  const kept = [app.clientTrafficSecret, app.serverTrafficSecret, app.exporterMasterSecret(), rms];
  for (const buffer of new Set(kept.map((v) => v.buffer))) {
    const all = new Uint8Array(buffer);
    const inKept = (i: number): boolean => kept.some((v) => v.buffer === buffer && i >= v.byteOffset && i < v.byteOffset + v.length);
    for (let i = 0; i < all.length; i++) if (all[i] !== 0) assert.ok(inKept(i), `byte ${i} of a secret block survived retire`);
  }
  app.retire(rms); // a second call changes nothing
  assert.equal(toHex(app.clientTrafficSecret), simple.clientApplicationTrafficSecret);
});

void test('SecretBlock.wipeExcept zeroes all but the kept views: in any order, zero-length and foreign views ignored, across blocks', () => {
  const cases: { name: string; takes: number[]; keep: number[] }[] = [
    { name: 'nothing kept', takes: [32, 32, 32], keep: [] },
    { name: 'first and last kept', takes: [32, 16, 32], keep: [0, 2] },
    { name: 'kept given out of order', takes: [8, 8, 8, 8], keep: [3, 1] },
    { name: 'adjacent kept', takes: [8, 8, 8], keep: [0, 1] },
    { name: 'a second block', takes: [48, 48, 8], keep: [1, 2] },
    { name: 'a zero-length view', takes: [0, 8, 8], keep: [0, 2] },
  ];
  for (const c of cases) {
    const block = new SecretBlock(64);
    const views = c.takes.map((n, i) => block.take(n).fill(i + 1));
    const foreign = new Uint8Array(8).fill(9);
    block.wipeExcept([...c.keep.map((i) => views[i]!), foreign]);
    views.forEach((v, i) => {
      const expected = c.keep.includes(i) ? i + 1 : 0;
      assert.ok(v.every((b) => b === expected), `${c.name}: view ${i}`);
    });
    assert.ok(foreign.every((b) => b === 9), `${c.name}: a view of another buffer is left alone`);
    for (const buffer of new Set(views.map((v) => v.buffer))) {
      const rest = new Uint8Array(buffer);
      const owned = (i: number): boolean => c.keep.some((k) => views[k]!.buffer === buffer && i >= views[k]!.byteOffset && i < views[k]!.byteOffset + views[k]!.length);
      for (let i = 0; i < rest.length; i++) if (!owned(i)) assert.equal(rest[i], 0, `${c.name}: byte ${i}`);
    }
  }
});

void test('SecretBlock: views of `length` fresh bytes, disjoint, a new block when one is full', () => {
  const block = new SecretBlock(64);
  const a = block.take(32);
  const b = block.take(32);
  const c = block.take(48);
  assert.deepEqual([a.length, b.length, c.length], [32, 32, 48]);
  assert.equal(a.buffer, b.buffer);
  assert.notEqual(c.buffer, a.buffer);
  a.fill(1);
  b.fill(2);
  c.fill(3);
  assert.ok(a.every((x) => x === 1) && b.every((x) => x === 2) && c.every((x) => x === 3));
  // Larger than a block: a block of its own.
  assert.equal(block.take(100).length, 100);
  // Another handshake's block never shares a buffer with this one.
  assert.notEqual(new SecretBlock(64).take(32).buffer, a.buffer);
});

void test('RFC 8448 §3: every message of the trace decodes, and the CertificateVerify verifies', () => {
  const ch = decodeClientHello(body(simple.clientHello));
  assert.equal(ch.extensions.serverName, 'server');
  assert.deepEqual(ch.extensions.supportedVersions, [0x0304]);
  assert.equal(ch.extensions.keyShares?.[0]?.group, NamedGroup.x25519);
  const sh = decodeServerHello(body(simple.serverHello));
  assert.equal(sh.cipherSuite, CipherSuite.TLS_AES_128_GCM_SHA256);
  assert.equal(toHex(sh.extensions.keyShare!.keyExchange), simple.serverPublic);
  const ee = decodeEncryptedExtensions(body(simple.encryptedExtensions));
  assert.equal(ee.serverNameAck, true);
  const cert = decodeCertificate(body(simple.certificate));
  assert.equal(cert.entries.length, 1);
  const cv = decodeCertificateVerify(body(simple.certificateVerify));
  assert.equal(cv.scheme, SignatureScheme.rsa_pss_rsae_sha256);

  const t = new Transcript();
  t.start(suite.hash);
  for (const m of [simple.clientHello, simple.serverHello, simple.encryptedExtensions, simple.certificate]) t.add(hex(m));
  const publicKey = new X509Certificate(cert.entries[0]!.data).publicKey;
  const content = certificateVerifyContent('server', t.current());
  assert.ok(verifySignature(cv.scheme, publicKey, content, cv.signature));
  assert.ok(!verifySignature(cv.scheme, publicKey, certificateVerifyContent('client', t.current()), cv.signature));
});

void test('RFC 8448 §4: the resumption PSK binder reproduces byte for byte', () => {
  const early = new EarlySecret(suite, hex(simple.resumptionPsk));
  assert.equal(toHex(early.secret), resumed.earlySecret);
  const binderKey = early.binderKey('resumption');
  assert.equal(toHex(binderKey), resumed.binderKey);
  const t = new Transcript();
  t.start(suite.hash);
  const truncated = hex(resumed.truncatedClientHello);
  assert.equal(toHex(t.currentWith(truncated)), resumed.binderHash);
  const binder = finishedVerifyData(suite, binderKey, t.currentWith(truncated));
  assert.equal(toHex(binder), resumed.binder);
  // The full ClientHello decodes and its binders sit exactly at the end.
  const full = new Uint8Array([...truncated, 0x00, 0x21, 0x20, ...binder]);
  const ch = decodeClientHello(full.subarray(4));
  const psk = ch.extensions.preSharedKey!;
  assert.equal(psk.identities.length, 1);
  assert.equal(full.length - bindersLength(psk.binders), truncated.length);
});

void test('RFC 8448 §4: a server\'s PskEarlyKeys gives the binder, and the handshake keys go on from its early secret in its one block', () => {
  const truncated = hex(resumed.truncatedClientHello);
  const t = new Transcript();
  t.start(suite.hash);
  t.add(truncated);
  const keys = new PskEarlyKeys(suite, hex(simple.resumptionPsk));
  assert.equal(toHex(keys.early.secret), resumed.earlySecret);
  assert.equal(toHex(keys.binder(t.current())), resumed.binder);
  // The same secrets as from the PSK itself (no second extract), and no block beyond the first.
  const shared = new Uint8Array(32).fill(9);
  const helloHash = new Uint8Array(32).fill(4);
  const fromPsk = new HandshakeKeys(suite, hex(simple.resumptionPsk), Uint8Array.from(shared), helloHash);
  const fromEarly = new HandshakeKeys(suite, keys, Uint8Array.from(shared), helloHash);
  assert.deepEqual(fromEarly.serverTrafficSecret, fromPsk.serverTrafficSecret);
  assert.deepEqual(fromEarly.clientFinished(helloHash), fromPsk.clientFinished(helloHash));
  const app = fromEarly.application(helloHash);
  assert.deepEqual(app.serverTrafficSecret, fromPsk.application(helloHash).serverTrafficSecret);
  app.resumptionMasterSecret(helloHash);
  app.exporterMasterSecret();
  fromEarly.serverFinished(helloHash);
  // On the addon the secrets are views of blocks (node:crypto's fallback gives each its own buffer).
  if (nativeHandshake()) assert.equal(app.serverTrafficSecret.buffer, keys.early.secret.buffer, 'one block for the whole resumed handshake');
});

void test('RFC 8448 §5: the HelloRetryRequest transcript (message_hash) and handshake secrets reproduce', () => {
  const first = decodeServerHello(body(hrr.helloRetryRequest));
  assert.ok(isHelloRetryRequestRandom(first.random));
  assert.equal(first.extensions.selectedGroup, NamedGroup.secp256r1);
  assert.ok(first.extensions.cookie && first.extensions.cookie.length > 0);
  const ch2 = decodeClientHello(body(hrr.clientHello2));
  assert.equal(ch2.extensions.keyShares?.[0]?.group, NamedGroup.secp256r1);

  const t = new Transcript();
  t.add(hex(hrr.clientHello1));
  t.start(suite.hash);
  t.replaceWithMessageHash();
  t.add(hex(hrr.helloRetryRequest));
  t.add(hex(hrr.clientHello2));
  t.add(hex(hrr.serverHello));
  const helloHash = t.current();
  assert.equal(toHex(helloHash), hrr.helloHash);

  const hs = new EarlySecret(suite).handshake(hex(hrr.sharedSecret));
  assert.equal(toHex(hs.secret), hrr.handshakeSecret);
  assert.equal(toHex(hs.clientHandshakeTrafficSecret(helloHash)), hrr.clientHandshakeTrafficSecret);
  assert.equal(toHex(hs.serverHandshakeTrafficSecret(helloHash)), hrr.serverHandshakeTrafficSecret);
});

// --- §5 after the ServerHello: the encrypted flight, Finished, application secrets, records ------

/** §5 transcript through the ServerHello, with ClientHello1 replaced by message_hash. */
function hrrTranscript(): Transcript {
  const t = new Transcript();
  t.add(hex(hrr.clientHello1));
  t.start(suite.hash);
  t.replaceWithMessageHash();
  for (const m of [hrr.helloRetryRequest, hrr.clientHello2, hrr.serverHello]) t.add(hex(m));
  return t;
}

/** The §5 handshake secrets from our key schedule, and the transcript through the ServerHello. */
function hrrHandshake() {
  const t = hrrTranscript();
  const hs = new EarlySecret(suite).handshake(hex(hrr.sharedSecret));
  const helloHash = t.current();
  return { t, hs, cHs: hs.clientHandshakeTrafficSecret(helloHash), sHs: hs.serverHandshakeTrafficSecret(helloHash) };
}

/** The extensions of an EncryptedExtensions message, each as the hex of its type, length and body. */
function extensionBlocks(message: Uint8Array): string[] {
  const blocks: string[] = [];
  const list = Buffer.from(message.subarray(6));
  assert.equal(list.length, Buffer.from(message).readUInt16BE(4));
  for (let i = 0; i < list.length; i += 4 + list.readUInt16BE(i + 2)) {
    blocks.push(list.subarray(i, i + 4 + list.readUInt16BE(i + 2)).toString('hex'));
  }
  return blocks;
}

const serverFlight = hrr.encryptedExtensions + hrr.certificate + hrr.certificateVerify + hrr.serverFinished;
const openRecord = (opener: RecordOpener, record: string) => {
  const r = hex(record);
  return opener.open(r.subarray(0, 5), r.subarray(5));
};

void test('RFC 8448 §5: the P-256 shared secret of the retried key share matches from either side', () => {
  const clientPublic = decodeClientHello(body(hrr.clientHello2)).extensions.keyShares![0]!.keyExchange;
  const serverPublic = decodeServerHello(body(hrr.serverHello)).extensions.keyShare!.keyExchange;
  assert.equal(toHex(serverPublic), hrr.serverP256Public);

  const client = createECDH('prime256v1');
  client.setPrivateKey(Buffer.from(hrr.clientP256Private, 'hex'));
  assert.equal(toHex(client.getPublicKey()), toHex(clientPublic));
  const server = createECDH('prime256v1');
  server.setPrivateKey(Buffer.from(hrr.serverP256Private, 'hex'));
  assert.equal(toHex(server.getPublicKey()), hrr.serverP256Public);

  assert.equal(toHex(client.computeSecret(serverPublic)), hrr.sharedSecret);
  assert.equal(toHex(server.computeSecret(clientPublic)), hrr.sharedSecret);
});

void test("RFC 8448 §5: the server's encrypted flight opens under our server handshake key and seals back to the same record", () => {
  const { sHs } = hrrHandshake();
  assert.equal(toHex(trafficKeys(suite, sHs).key), hrr.serverHandshakeKey);
  assert.equal(toHex(trafficKeys(suite, sHs).iv), hrr.serverHandshakeIv);

  const opened = openRecord(new RecordOpener(suite, sHs), hrr.serverHandshakeRecord);
  assert.equal(opened.type, ContentType.handshake);
  assert.equal(toHex(opened.content), serverFlight);

  const sealed = new RecordSealer(suite, sHs).seal(ContentType.handshake, hex(serverFlight));
  assert.equal(toHex(sealed), hrr.serverHandshakeRecord);
});

void test('RFC 8448 §5: after a HelloRetryRequest the Finished messages, master, application and resumption secrets reproduce byte for byte', () => {
  const { t, hs, cHs, sHs } = hrrHandshake();
  assert.equal(toHex(trafficKeys(suite, cHs).key), hrr.clientHandshakeKey);
  assert.equal(toHex(trafficKeys(suite, cHs).iv), hrr.clientHandshakeIv);
  const master = hs.master();
  assert.equal(toHex(master.secret), hrr.masterSecret);

  for (const m of [hrr.encryptedExtensions, hrr.certificate, hrr.certificateVerify]) t.add(hex(m));
  const serverVerifyData = finishedVerifyData(suite, sHs, t.current());
  assert.equal(toHex(frameHandshake(HandshakeType.finished, serverVerifyData)), hrr.serverFinished);
  t.add(hex(hrr.serverFinished));

  const serverFinishedHash = t.current();
  assert.equal(toHex(serverFinishedHash), hrr.serverFinishedHash);
  const cAp = master.clientApplicationTrafficSecret(serverFinishedHash);
  const sAp = master.serverApplicationTrafficSecret(serverFinishedHash);
  assert.equal(toHex(cAp), hrr.clientApplicationTrafficSecret);
  assert.equal(toHex(sAp), hrr.serverApplicationTrafficSecret);
  assert.equal(toHex(master.exporterMasterSecret(serverFinishedHash)), hrr.exporterMasterSecret);
  assert.equal(toHex(trafficKeys(suite, sAp).key), hrr.serverApplicationKey);
  assert.equal(toHex(trafficKeys(suite, sAp).iv), hrr.serverApplicationIv);
  assert.equal(toHex(trafficKeys(suite, cAp).key), hrr.clientApplicationKey);
  assert.equal(toHex(trafficKeys(suite, cAp).iv), hrr.clientApplicationIv);

  // The RFC prints the client Finished only protected; the transcript hash over our Finished
  // (and the next test, which seals it) pins it byte for byte.
  t.add(frameHandshake(HandshakeType.finished, finishedVerifyData(suite, cHs, serverFinishedHash)));
  const clientFinishedHash = t.current();
  assert.equal(toHex(clientFinishedHash), hrr.clientFinishedHash);
  assert.equal(toHex(master.resumptionMasterSecret(clientFinishedHash)), hrr.resumptionMasterSecret);
});

void test('RFC 8448 §5: the client Finished we compute seals to the protected record of the trace', () => {
  const { t, cHs } = hrrHandshake();
  t.add(hex(serverFlight));
  const clientFinished = frameHandshake(HandshakeType.finished, finishedVerifyData(suite, cHs, t.current()));

  const sealed = new RecordSealer(suite, cHs).seal(ContentType.handshake, clientFinished);
  assert.equal(toHex(sealed), hrr.clientFinishedRecord);
  const opened = openRecord(new RecordOpener(suite, cHs), hrr.clientFinishedRecord);
  assert.equal(opened.type, ContentType.handshake);
  assert.equal(toHex(opened.content), toHex(clientFinished));
});

void test("RFC 8448 §5: each side's close_notify, its first record under the application keys, reproduces byte for byte", () => {
  const { t, hs } = hrrHandshake();
  t.add(hex(serverFlight));
  const master = hs.master();
  const closeNotify = encodeAlert(AlertLevel.warning, AlertDescription.close_notify);
  const sides = [
    { secret: master.clientApplicationTrafficSecret(t.current()), record: hrr.clientCloseNotifyRecord },
    { secret: master.serverApplicationTrafficSecret(t.current()), record: hrr.serverCloseNotifyRecord },
  ];
  for (const { secret, record } of sides) {
    assert.equal(toHex(new RecordSealer(suite, secret).seal(ContentType.alert, closeNotify)), record);
    const opened = openRecord(new RecordOpener(suite, secret), record);
    assert.equal(opened.type, ContentType.alert);
    assert.equal(toHex(opened.content), toHex(closeNotify));
  }
});

void test("RFC 8448 §5: the server's EncryptedExtensions, Certificate and CertificateVerify decode and re-encode, and the signature verifies over the retried transcript", () => {
  const ee = decodeEncryptedExtensions(body(hrr.encryptedExtensions));
  assert.equal(ee.serverNameAck, true);
  assert.deepEqual(ee.supportedGroups, [NamedGroup.secp256r1, NamedGroup.secp384r1, NamedGroup.x25519]);
  assert.deepEqual(
    ee.unknown.map((e) => [e.type, toHex(e.data)]),
    [[0x1c, '4001']], // record_size_limit
  );
  const cert = decodeCertificate(body(hrr.certificate));
  assert.equal(cert.context.length, 0);
  assert.equal(cert.entries.length, 1);
  const cv = decodeCertificateVerify(body(hrr.certificateVerify));
  assert.equal(cv.scheme, SignatureScheme.rsa_pss_rsae_sha256);

  // Our EncryptedExtensions model keeps no extension order and writes server_name first; the
  // trace has supported_groups, record_size_limit, server_name. Same extensions, same bytes each.
  const eeAgain = encodeHandshake(HandshakeType.encrypted_extensions, (w) => writeEncryptedExtensions(w, ee));
  assert.deepEqual(decodeEncryptedExtensions(eeAgain.subarray(4)), ee);
  assert.deepEqual(extensionBlocks(eeAgain).sort(), extensionBlocks(hex(hrr.encryptedExtensions)).sort());
  assert.equal(toHex(encodeHandshake(HandshakeType.certificate, (w) => writeCertificate(w, cert))), hrr.certificate);
  assert.equal(toHex(encodeHandshake(HandshakeType.certificate_verify, (w) => writeCertificateVerify(w, cv))), hrr.certificateVerify);

  const t = hrrTranscript();
  t.add(hex(hrr.encryptedExtensions));
  t.add(hex(hrr.certificate));
  const publicKey = new X509Certificate(cert.entries[0]!.data).publicKey;
  assert.ok(verifySignature(cv.scheme, publicKey, certificateVerifyContent('server', t.current()), cv.signature));
  // The same signature does not verify over the §3 transcript: the HelloRetryRequest is signed over.
  const t3 = new Transcript();
  t3.start(suite.hash);
  for (const m of [simple.clientHello, simple.serverHello, simple.encryptedExtensions, simple.certificate]) t3.add(hex(m));
  assert.ok(!verifySignature(cv.scheme, publicKey, certificateVerifyContent('server', t3.current()), cv.signature));
});
