import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AlertDescription } from '../../../src/tls/alerts.js';
import { PEER_FAULTS, PeerMisbehaved, fatalAlertFor, type PeerFault } from '../../../src/tls/errors.js';

void test('every named peer fault is sent as the alert PEER_FAULTS gives it, and the message starts with its name', () => {
  for (const fault of Object.keys(PEER_FAULTS) as PeerFault[]) {
    const error = new PeerMisbehaved(fault, 'detail');
    assert.equal(fatalAlertFor(error), PEER_FAULTS[fault], fault);
    assert.notEqual(PEER_FAULTS[fault], AlertDescription.internal_error, `${fault}: the peer's fault is never our internal_error`);
    assert.match(error.message, new RegExp(`^${fault}: detail$`));
  }
});

void test('the faults the RFC ties to decrypt_error are the signature (CertificateVerify, TLS 1.2 ServerKeyExchange), Finished and binder checks', () => {
  const decryptErrors = (Object.keys(PEER_FAULTS) as PeerFault[]).filter((f) => PEER_FAULTS[f] === AlertDescription.decrypt_error).sort();
  assert.deepEqual(decryptErrors, ['BadCertificateVerifySignature', 'BadServerKeyExchangeSignature', 'IncorrectBinder', 'IncorrectFinished']);
});
