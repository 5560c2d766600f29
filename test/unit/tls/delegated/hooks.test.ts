import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { ExtensionType, SignatureScheme } from '../../../../src/tls/constants.js';
import type { CredentialChoice } from '../../../../src/tls/credentials.js';
import { PeerMisbehaved } from '../../../../src/tls/errors.js';
import type { ClientHello } from '../../../../src/tls/messages/client-hello.js';
import type { CertificateRequest } from '../../../../src/tls/messages/handshake.js';
import {
  DEFAULT_DC_SCHEMES,
  DELEGATED_CREDENTIAL_LABEL,
  DelegatedCredentialSet,
  clientDelegatedCredentialSelector,
  delegatedCredentialPeerHooks,
  delegatedCredentialSelector,
  issueDelegatedCredential,
  type DelegationSide,
} from '../../../../src/tls/delegated/index.js';
import { makeCertificate, type TestCertificate } from './fixtures.js';

const S = SignatureScheme;

function hello(serverName: string | undefined, dc: readonly number[] | undefined): ClientHello {
  return {
    legacyVersion: 0x0303,
    random: new Uint8Array(32),
    legacySessionId: new Uint8Array(0),
    cipherSuites: [0x1301],
    legacyCompressionMethods: Uint8Array.of(0),
    extensions: {
      ...(serverName !== undefined ? { serverName } : {}),
      signatureAlgorithms: [S.ecdsa_secp256r1_sha256, S.ed25519],
      ...(dc ? { delegatedCredential: dc } : {}),
      unknown: [],
    },
  };
}

void describe('delegated credential hooks', () => {
  let cert: TestCertificate;
  const sets = new Map<DelegationSide, DelegatedCredentialSet>();
  const FALLBACK: CredentialChoice = { certificateChain: [], signer: { schemes: [], sign: () => new Uint8Array() }, scheme: S.ecdsa_secp256r1_sha256, label: 'certificate' };
  const fallback = (): CredentialChoice => FALLBACK;

  before(async () => {
    cert = await makeCertificate({ keyType: 'p256', dnsNames: ['*.example.test', 'example.test'] });
    for (const side of ['server', 'client'] as const) {
      const issued = await issueDelegatedCredential({ certificate: cert.der, signer: cert.signer, dcAlgorithm: 'ed25519', validitySeconds: 600, side });
      sets.set(side, DelegatedCredentialSet.build({ certificateChain: [cert.der], credentials: [issued], side }));
    }
  });

  void it('serves the credential in the end-entity extension 34 and signs CertificateVerify with its scheme', () => {
    const choice = delegatedCredentialSelector(sets.get('server')!)(hello('www.example.test', [S.ed25519]), fallback) as CredentialChoice;
    assert.equal(choice.label, DELEGATED_CREDENTIAL_LABEL);
    assert.equal(choice.scheme, S.ed25519);
    assert.deepEqual(choice.certificateChain, [cert.der]);
    assert.equal(choice.leafExtensions?.[0]?.type, ExtensionType.delegated_credential);
    assert.deepEqual(choice.leafExtensions?.[0]?.data, sets.get('server')!.entries[0]!.encoded);
  });

  void it('makes the choice for a credential once: the same frozen object for every handshake that serves it', () => {
    const set = sets.get('server')!;
    const select = delegatedCredentialSelector(set);
    const first = select(hello('www.example.test', [S.ed25519]), fallback) as CredentialChoice;
    const second = delegatedCredentialSelector(set)(hello(undefined, [S.ed25519]), fallback) as CredentialChoice;
    assert.equal(second, first);
    assert.ok(Object.isFrozen(first) && Object.isFrozen(first.leafExtensions) && Object.isFrozen(first.details));
    assert.equal(first.leafExtensions?.[0]?.data, set.entries[0]!.encoded);
  });

  void it('falls back for a server name the certificate does not cover, and serves for one it does', () => {
    const select = delegatedCredentialSelector(sets.get('server')!);
    assert.equal(select(hello('other.test', [S.ed25519]), fallback), FALLBACK);
    assert.equal((select(hello('EXAMPLE.test', [S.ed25519]), fallback) as CredentialChoice).label, DELEGATED_CREDENTIAL_LABEL);
    assert.equal((select(hello(undefined, [S.ed25519]), fallback) as CredentialChoice).label, DELEGATED_CREDENTIAL_LABEL);
  });

  void it('never serves a client-authentication credential as a server credential, nor the reverse', () => {
    assert.equal(delegatedCredentialSelector(sets.get('client')!)(hello(undefined, [S.ed25519]), fallback), FALLBACK);
    const request: CertificateRequest = { context: new Uint8Array(0), signatureAlgorithms: [S.ecdsa_secp256r1_sha256], delegatedCredential: [S.ed25519], unknown: [] };
    assert.equal(clientDelegatedCredentialSelector(sets.get('server')!)(request, fallback), FALLBACK);
    assert.equal((clientDelegatedCredentialSelector(sets.get('client')!)(request, fallback) as CredentialChoice).label, DELEGATED_CREDENTIAL_LABEL);
  });

  void it('falls back when there is no current set or the client did not offer extension 34', () => {
    assert.equal(delegatedCredentialSelector(() => undefined)(hello(undefined, [S.ed25519]), fallback), FALLBACK);
    assert.equal(delegatedCredentialSelector(sets.get('server')!)(hello(undefined, undefined), fallback), FALLBACK);
  });

  void it('offers the cheap schemes and never rsa_pss_rsae_* in extension 34', () => {
    const hooks = delegatedCredentialPeerHooks({ peer: 'server' });
    assert.deepEqual(hooks.offer, DEFAULT_DC_SCHEMES);
    assert.equal(hooks.offer?.[0], S.ed25519);
    assert.ok(!hooks.offer?.some((s) => s >= S.rsa_pss_rsae_sha256 && s <= S.rsa_pss_rsae_sha512));
  });

  void it('uses the certificate key when the entry has no credential and refuses two credentials in one entry', () => {
    const hooks = delegatedCredentialPeerHooks({ peer: 'server' });
    const base = {
      leaf: cert.der,
      certificateKey: cert.publicKey,
      offeredSignatureAlgorithms: [S.ecdsa_secp256r1_sha256],
      offeredDelegatedCredentialSchemes: [S.ed25519],
      now: new Date(),
    };
    assert.equal(hooks.acceptLeaf({ ...base, extensions: [] }), undefined);
    const data = sets.get('server')!.entries[0]!.encoded;
    const key = hooks.acceptLeaf({ ...base, extensions: [{ type: ExtensionType.delegated_credential, data }] });
    assert.deepEqual(key?.schemes, [S.ed25519]);
    assert.throws(
      () => hooks.acceptLeaf({ ...base, extensions: [{ type: 34, data }, { type: 34, data }] }),
      (e: unknown) => e instanceof PeerMisbehaved && e.fault === 'DuplicateExtension',
    );
  });
});
