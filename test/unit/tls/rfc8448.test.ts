import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey, createPublicKey, diffieHellman } from 'node:crypto';
import {
  EarlySecret,
  Transcript,
  finishedVerifyData,
  resumptionPsk,
  trafficKeys,
} from '../../../src/tls/key-schedule.js';
import { suiteParams } from '../../../src/tls/suites.js';
import { CipherSuite, NamedGroup, SignatureScheme } from '../../../src/tls/constants.js';
import {
  bindersLength,
  decodeCertificate,
  decodeCertificateVerify,
  decodeClientHello,
  decodeEncryptedExtensions,
  decodeNewSessionTicket,
  decodeServerHello,
  isHelloRetryRequestRandom,
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
