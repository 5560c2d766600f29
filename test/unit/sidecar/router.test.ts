import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { validateServingMaterial, type ServingMaterial } from '../../../src/sidecar/material.js';
import { chooseCredential, route, type RoutingPolicy } from '../../../src/sidecar/router.js';
import { AlertDescription } from '../../../src/tls/alerts.js';
import { ExtensionType, ProtocolVersion, SignatureScheme as S } from '../../../src/tls/constants.js';
import type { ClientHello, ClientHelloExtensions } from '../../../src/tls/messages/client-hello.js';
import type { Signer } from '../../../src/tls/signer.js';
import { clientHello, credentialFiles, makePki } from './fixtures.js';

const hello = clientHello;

const tls13 = (ext: Partial<ClientHelloExtensions> = {}): ClientHello =>
  hello({ supportedVersions: [ProtocolVersion.TLS1_3, ProtocolVersion.TLS1_2], signatureAlgorithms: [S.ecdsa_secp256r1_sha256, S.ed25519, S.rsa_pss_rsae_sha256], ...ext });
const tls12 = hello({ signatureAlgorithms: [S.ecdsa_secp256r1_sha256] });

const fakeKeyless: Signer = { schemes: [S.ecdsa_secp256r1_sha256], sign: () => new Uint8Array(64) };
const ours: RoutingPolicy = { certificateEngine: 'ours', keylessFor: undefined };
const viaNode: RoutingPolicy = { certificateEngine: 'node', keylessFor: undefined };

function toFileMap(files: Record<string, string | Uint8Array>): Record<string, Uint8Array> {
  return Object.fromEntries(Object.entries(files).map(([k, v]) => [k, typeof v === 'string' ? new TextEncoder().encode(v) : v]));
}

void describe('routing by ClientHello', () => {
  let dcOnly: ServingMaterial;
  let dcAndKey: ServingMaterial;
  before(async () => {
    const pki = await makePki('ecdsa-p256');
    dcOnly = validateServingMaterial('/v', toFileMap(await credentialFiles(pki, { algorithms: ['ecdsa_secp256r1_sha256'] })));
    dcAndKey = validateServingMaterial('/v', toFileMap(await credentialFiles(pki, { algorithms: ['ecdsa_secp256r1_sha256'], certificateKey: true })));
  });

  void it('sends a TLS 1.3 client offering a DC algorithm we hold to our stack with the DC', () => {
    assert.deepEqual(route(tls13({ delegatedCredential: [S.ecdsa_secp256r1_sha256] }), dcOnly, viaNode), { engine: 'ours', mode: 'dc' });
  });

  void it('does not serve the DC when its signature algorithm is missing from signature_algorithms (two lists, two checks)', () => {
    const h = tls13({ delegatedCredential: [S.ecdsa_secp256r1_sha256], signatureAlgorithms: [S.ed25519] });
    assert.equal(route(h, dcOnly, ours).engine, 'refuse');
  });

  void it('serves other TLS 1.3 clients with the certificate key on the configured engine', () => {
    assert.deepEqual(route(tls13({ delegatedCredential: [S.ed25519] }), dcAndKey, viaNode), { engine: 'node', mode: 'certificate' });
    assert.deepEqual(route(tls13(), dcAndKey, ours), { engine: 'ours', mode: 'certificate' });
  });

  void it('serves other TLS 1.3 clients through the keyless signer when no key is mounted', () => {
    assert.deepEqual(route(tls13(), dcOnly, { certificateEngine: 'node', keylessFor: () => fakeKeyless }), { engine: 'ours', mode: 'keyless' });
  });

  void it('refuses a non-DC TLS 1.3 client with handshake_failure when neither key nor keyless is available', () => {
    const r = route(tls13(), dcOnly, ours);
    assert.equal(r.engine === 'refuse' && r.alert, AlertDescription.handshake_failure);
  });

  void it('hands TLS 1.2-only clients to node:tls when the key is mounted, to our stack when only keyless is configured, and refuses them with protocol_version otherwise', () => {
    assert.deepEqual(route(tls12, dcAndKey, ours), { engine: 'node', mode: 'certificate' });
    assert.deepEqual(route(tls12, dcOnly, { certificateEngine: 'ours', keylessFor: () => fakeKeyless }), { engine: 'ours', mode: 'keyless' });
    const r = route(tls12, dcOnly, { certificateEngine: 'ours', keylessFor: undefined });
    assert.equal(r.engine, 'refuse');
    assert.equal(r.engine === 'refuse' && r.alert, AlertDescription.protocol_version);
    assert.match(r.engine === 'refuse' ? r.reason : '', /TLS 1\.2 needs the certificate key \(tls\.key\) or a usable keyless signer/);
  });

  void it('refuses everyone before the first credentials are loaded', () => {
    assert.equal(route(tls13(), undefined, ours).engine, 'refuse');
  });

  void it("puts the DC into the end-entity certificate entry and signs CertificateVerify with the DC's scheme", () => {
    const choice = chooseCredential(tls13({ delegatedCredential: [S.ecdsa_secp256r1_sha256] }), dcAndKey, undefined);
    assert.ok(choice);
    assert.equal(choice.label, 'delegated-credential');
    assert.equal(choice.scheme, S.ecdsa_secp256r1_sha256);
    assert.deepEqual(choice.leafExtensions?.map((e) => e.type), [ExtensionType.delegated_credential]);
    assert.deepEqual(choice.leafExtensions?.[0]?.data, dcAndKey.credentials.entries[0]!.encoded);
    assert.equal(choice.signer, dcAndKey.credentials.entries[0]!.signer);
  });

  void it('falls back to the certificate key, then to keyless, in the credential hook', () => {
    assert.equal(chooseCredential(tls13(), dcAndKey, fakeKeyless)?.label, 'certificate');
    const viaKeyless = chooseCredential(tls13(), dcOnly, fakeKeyless);
    assert.equal(viaKeyless?.label, 'keyless');
    assert.equal(viaKeyless?.signer, fakeKeyless);
    assert.equal(chooseCredential(tls13(), dcOnly, undefined), undefined);
  });
});
