/**
 * Where a delegated_credential extension may appear in a peer's Certificate message (RFC 9345
 * §4.1.1 and §4.1.2): not at all unless we offered (unexpected_message, a MUST), and only on the
 * end-entity entry, one on another entry being ignored (a SHOULD).
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { AlertDescription } from '../../../../src/tls/alerts.js';
import { ExtensionType, SignatureScheme } from '../../../../src/tls/constants.js';
import { PeerMisbehaved } from '../../../../src/tls/errors.js';
import type { CertificateMessage } from '../../../../src/tls/messages/handshake.js';
import { authenticatePeer, type PeerVerification } from '../../../../src/tls/peer-auth.js';
import { makeCertificate, type TestCertificate } from './fixtures.js';

const S = SignatureScheme;
const DC_EXTENSION = { type: ExtensionType.delegated_credential, data: new Uint8Array([1, 2, 3]) };

void describe('delegated_credential in CertificateEntry extensions', () => {
  let cert: TestCertificate;
  before(async () => {
    cert = await makeCertificate({ keyType: 'p256', dnsNames: ['dc.example.test'] });
  });

  function verification(offer: readonly number[]): PeerVerification {
    return {
      ca: [cert.pem],
      rejectUnauthorized: false,
      servername: 'dc.example.test',
      purpose: 'server',
      now: new Date(),
      hooks: { offer, acceptLeaf: () => undefined },
      offeredSchemes: [S.ecdsa_secp256r1_sha256],
    };
  }

  function message(leafExtensions: boolean, issuerExtensions: boolean): CertificateMessage {
    return {
      context: new Uint8Array(0),
      entries: [
        { data: cert.der, extensions: leafExtensions ? [DC_EXTENSION] : [] },
        { data: cert.der, extensions: issuerExtensions ? [DC_EXTENSION] : [] },
      ],
    };
  }

  for (const [where, leaf, issuer] of [['the end-entity entry', true, false], ['another entry', false, true]] as const) {
    void it(`refuses one on ${where} when we did not offer, with unexpected_message`, () => {
      assert.throws(
        () => authenticatePeer(message(leaf, issuer), verification([])),
        (e: unknown) => e instanceof PeerMisbehaved && e.fault === 'UnsolicitedDelegatedCredential' && e.alert === AlertDescription.unexpected_message,
      );
    });
  }

  void it('ignores one on an entry other than the end-entity when we offered', () => {
    const peer = authenticatePeer(message(false, true), verification([S.ecdsa_secp256r1_sha256]));
    assert.equal(peer.key.label, 'certificate');
  });
});
