/**
 * Delegated credentials in real TLS 1.3 handshakes between our client and our server, connected
 * in memory: the server hook serves a DC the client offered, the client validates it and checks
 * CertificateVerify with the DC key, both report it; bad credentials end in illegal_parameter.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { AlertDescription } from '../../../../src/tls/alerts.js';
import { ClientConnection, type ClientOptions } from '../../../../src/tls/client.js';
import type { Connection, HandshakeInfo, TlsEvent } from '../../../../src/tls/connection.js';
import { generateKeyPairSync } from 'node:crypto';
import { ExtensionType, SignatureScheme } from '../../../../src/tls/constants.js';
import { createKeySigner } from '../../../../src/tls/signer.js';
import { ServerConnection, type ServerOptions } from '../../../../src/tls/server.js';
import {
  CredentialStore,
  DELEGATED_CREDENTIAL_LABEL,
  DelegatedCredentialSet,
  InvalidDelegatedCredential,
  clientDelegatedCredentialSelector,
  delegatedCredentialPeerHooks,
  delegatedCredentialSelector,
  delegatedCredentialSignedContent,
  encodeDelegatedCredential,
  issueDelegatedCredential,
  type DcAlgorithmName,
  type DelegatedCredentialDetails,
  type DelegationSide,
} from '../../../../src/tls/delegated/index.js';
import { makeCertificate, type TestCertificate } from './fixtures.js';
import { ml_dsa44, ml_dsa65, ml_dsa87 } from '@noble/post-quantum/ml-dsa.js';
import type { Signer } from '../../../../src/tls/signer.js';

const S = SignatureScheme;
const HOST = 'dc.example.test';

interface Outcome {
  readonly client: TlsEvent[];
  readonly server: TlsEvent[];
  readonly clientConnection: ClientConnection;
  readonly serverConnection: ServerConnection;
}

/** Shuttles bytes between the two until neither has anything to say, awaiting async signers. */
async function handshake(clientOptions: ClientOptions, serverOptions: ServerOptions): Promise<Outcome> {
  const server = new ServerConnection(serverOptions);
  const client = new ClientConnection(clientOptions);
  const events = { client: [] as TlsEvent[], server: [] as TlsEvent[] };
  let toServer: Uint8Array[] = [];
  let toClient: Uint8Array[] = [];
  const collect = (side: 'client' | 'server', c: Connection, progress = c.poll()): Promise<void> | undefined => {
    events[side].push(...progress.events);
    if (side === 'client') toServer.push(...progress.output);
    else toClient.push(...progress.output);
    return progress.waitFor;
  };
  await collect('client', client);
  for (let round = 0; round < 50 && (toServer.length > 0 || toClient.length > 0); round++) {
    const forServer = toServer;
    toServer = [];
    for (const chunk of forServer) {
      const wait = collect('server', server, server.feed(chunk));
      if (wait) {
        await wait;
        await collect('server', server);
      }
    }
    const forClient = toClient;
    toClient = [];
    for (const chunk of forClient) {
      const wait = collect('client', client, client.feed(chunk));
      if (wait) {
        await wait;
        await collect('client', client);
      }
    }
  }
  return { ...events, clientConnection: client, serverConnection: server };
}

function infoOf(events: readonly TlsEvent[]): HandshakeInfo {
  const done = events.find((e) => e.type === 'handshake');
  const failure = events.find((e) => e.type === 'error');
  assert.ok(done && done.type === 'handshake', `no handshake: ${failure && failure.type === 'error' ? failure.error.message : 'no events'}`);
  return done.info;
}

function errorOf(events: readonly TlsEvent[]): Extract<TlsEvent, { type: 'error' }> {
  const failure = events.find((e) => e.type === 'error');
  assert.ok(failure && failure.type === 'error', 'expected the connection to fail');
  return failure;
}

void describe('delegated credentials in the handshake', () => {
  let cert: TestCertificate;
  let serverSet: DelegatedCredentialSet;
  const now = new Date();

  async function setFor(c: TestCertificate, algorithms: readonly DcAlgorithmName[], side: DelegationSide = 'server', validitySeconds = 3600): Promise<DelegatedCredentialSet> {
    const credentials = [];
    for (const dcAlgorithm of algorithms) {
      const issued = await issueDelegatedCredential({ certificate: c.der, signer: c.signer, dcAlgorithm, validitySeconds, now, side });
      credentials.push({ delegatedCredential: issued.delegatedCredential, privateKey: issued.privateKey });
    }
    return DelegatedCredentialSet.build({ certificateChain: [c.der], credentials, now, side });
  }

  const serverOptions = (set: DelegatedCredentialSet | CredentialStore = serverSet): ServerOptions => ({
    certificates: [{ cert: cert.pem, key: cert.privateKey }],
    selectCredential: delegatedCredentialSelector(set),
    now: () => now,
  });
  const clientOptions = (offer?: readonly number[]): ClientOptions => ({
    servername: HOST,
    ca: [cert.pem],
    now: () => now,
    serverCredentialHooks: delegatedCredentialPeerHooks({ peer: 'server', ...(offer ? { offer } : {}) }),
  });

  before(async () => {
    cert = await makeCertificate({ keyType: 'p256', dnsNames: [HOST] });
    serverSet = await setFor(cert, ['ecdsa_secp256r1_sha256', 'ed25519']);
  });

  void it('serves the Ed25519 credential to a client that accepts it, and both sides report it', async () => {
    const out = await handshake(clientOptions(), serverOptions());
    for (const info of [infoOf(out.client), infoOf(out.server)]) {
      assert.equal(info.serverMode.authentication, DELEGATED_CREDENTIAL_LABEL);
      assert.equal(info.serverMode.signatureScheme, S.ed25519);
      const details = info.serverMode.details as DelegatedCredentialDetails;
      assert.equal(details.algorithm, 'ed25519');
      assert.deepEqual(details.expiresAt, serverSet.entries[0]!.expiresAt);
    }
    assert.equal(infoOf(out.client).peerAuthorized, true);
  });

  void it("serves the P-256 credential when that is all the client's extension 34 lists", async () => {
    const out = await handshake(clientOptions([S.ecdsa_secp256r1_sha256]), serverOptions());
    assert.equal(infoOf(out.client).serverMode.signatureScheme, S.ecdsa_secp256r1_sha256);
    assert.equal((infoOf(out.client).serverMode.details as DelegatedCredentialDetails).algorithm, 'ecdsa_secp256r1_sha256');
  });

  void it('uses the certificate key for a client that does not offer delegated credentials', async () => {
    const { serverCredentialHooks: _ignored, ...plain } = clientOptions();
    const out = await handshake(plain, serverOptions());
    assert.equal(infoOf(out.client).serverMode.authentication, 'certificate');
    assert.equal(infoOf(out.server).serverMode.authentication, 'certificate');
  });

  void it('uses the certificate key when no credential fits the client list', async () => {
    const out = await handshake(clientOptions([S.ecdsa_secp384r1_sha384]), serverOptions());
    assert.equal(infoOf(out.client).serverMode.authentication, 'certificate');
  });

  void it('serves the set current when the handshake starts, and the new one after a swap', async () => {
    const store = new CredentialStore(serverSet);
    const first = await handshake(clientOptions([S.ed25519]), serverOptions(store));
    assert.equal(infoOf(first.client).serverMode.authentication, DELEGATED_CREDENTIAL_LABEL);
    store.replace(DelegatedCredentialSet.empty([cert.der]));
    const second = await handshake(clientOptions([S.ed25519]), serverOptions(store));
    assert.equal(infoOf(second.client).serverMode.authentication, 'certificate');
  });

  void it('fails with illegal_parameter when the client finds the credential expired', async () => {
    const later = new Date(now.getTime() + 2 * 3600_000);
    const out = await handshake({ ...clientOptions(), now: () => later }, serverOptions());
    const failure = errorOf(out.client);
    assert.ok(failure.error instanceof InvalidDelegatedCredential);
    assert.equal(failure.error.rule, 'expired');
    assert.equal(failure.sentAlert, AlertDescription.illegal_parameter);
    assert.equal(errorOf(out.server).error.alert, AlertDescription.illegal_parameter);
  });

  void it('fails with illegal_parameter when the credential is signed for another certificate', async () => {
    const other = await makeCertificate({ keyType: 'p256', dnsNames: [HOST] });
    const foreign = await setFor(other, ['ed25519']);
    // A broken server: it staples another certificate's credential to its own certificate.
    const broken: ServerOptions = {
      certificates: [{ cert: cert.pem, key: cert.privateKey }],
      selectCredential: (hello, fallback) => {
        const choice = delegatedCredentialSelector(foreign)(hello, fallback) as ReturnType<typeof fallback>;
        return choice && { ...choice, certificateChain: [cert.der] };
      },
      now: () => now,
    };
    const out = await handshake(clientOptions(), broken);
    const failure = errorOf(out.client);
    assert.ok(failure.error instanceof InvalidDelegatedCredential);
    assert.equal(failure.error.rule, 'bad-signature');
    assert.equal(failure.sentAlert, AlertDescription.illegal_parameter);
  });

  void it('rejects a credential the client never asked for', async () => {
    const pushy: ServerOptions = {
      certificates: [{ cert: cert.pem, key: cert.privateKey }],
      selectCredential: (_hello, fallback) => {
        const base = fallback()!;
        const entry = serverSet.entries.find((e) => e.dcCertVerifyAlgorithm === S.ecdsa_secp256r1_sha256)!;
        return { ...base, leafExtensions: [{ type: ExtensionType.delegated_credential, data: entry.encoded }] };
      },
      now: () => now,
    };
    const { serverCredentialHooks: _ignored, ...plain } = clientOptions();
    const out = await handshake(plain, pushy);
    assert.equal(errorOf(out.client).sentAlert, AlertDescription.unexpected_message); // RFC 9345 §4.1.1
  });

  void it("falls back to the certificate when the credential's signature algorithm is not in the client's signature_algorithms", async () => {
    const rsaCert = await makeCertificate({ keyType: 'rsa', dnsNames: [HOST] });
    const rsaSet = await setFor(rsaCert, ['ed25519']); // signed with rsa_pss_rsae_sha256
    const sigalgs = [S.ed25519, S.ecdsa_secp256r1_sha256, S.rsa_pss_rsae_sha384];
    const client: ClientOptions = { ...clientOptions(), ca: [rsaCert.pem], signatureAlgorithms: sigalgs };
    const server: ServerOptions = { certificates: [{ cert: rsaCert.pem, key: rsaCert.privateKey }], selectCredential: delegatedCredentialSelector(rsaSet), now: () => now };
    const out = await handshake(client, server);
    assert.equal(infoOf(out.client).serverMode.authentication, 'certificate');
    assert.equal(infoOf(out.client).serverMode.signatureScheme, S.rsa_pss_rsae_sha384);

    // A server that ignores that rule is refused by the client (two lists, two checks).
    const entry = rsaSet.entries[0]!;
    const careless: ServerOptions = {
      ...server,
      selectCredential: (_hello, fallback) => ({
        ...fallback()!,
        leafExtensions: [{ type: ExtensionType.delegated_credential, data: entry.encoded }],
        signer: entry.signer,
        scheme: S.ed25519,
      }),
    };
    const refused = await handshake(client, careless);
    const failure = errorOf(refused.client);
    assert.ok(failure.error instanceof InvalidDelegatedCredential);
    assert.equal(failure.error.rule, 'signature-scheme-not-offered');
    assert.equal(failure.sentAlert, AlertDescription.illegal_parameter);
  });

  void it('refuses a CertificateVerify whose scheme differs from dc_cert_verify_algorithm', async () => {
    // An RSASSA-PSS credential key without hash restriction could sign with any rsa_pss_pss_* scheme.
    const { publicKey, privateKey } = generateKeyPairSync('rsa-pss', { modulusLength: 2048 });
    const credential = {
      validTime: Math.floor(now.getTime() / 1000) - Math.floor(cert.notBefore.getTime() / 1000) + 3600,
      dcCertVerifyAlgorithm: S.rsa_pss_pss_sha256,
      spki: new Uint8Array(publicKey.export({ type: 'spki', format: 'der' })),
    };
    const algorithm = S.ecdsa_secp256r1_sha256;
    const signature = await cert.signer.sign(algorithm, delegatedCredentialSignedContent('server', cert.der, credential, algorithm));
    const encoded = encodeDelegatedCredential({ credential, algorithm, signature });
    const serverSigningWith = (scheme: number): ServerOptions => ({
      certificates: [{ cert: cert.pem, key: cert.privateKey }],
      selectCredential: (_hello, fallback) => ({
        ...fallback()!,
        leafExtensions: [{ type: ExtensionType.delegated_credential, data: encoded }],
        signer: createKeySigner(privateKey),
        scheme,
      }),
      now: () => now,
    });
    const offer = [S.rsa_pss_pss_sha256, S.rsa_pss_pss_sha384];
    const out = await handshake(clientOptions(offer), serverSigningWith(S.rsa_pss_pss_sha384));
    const failure = errorOf(out.client);
    assert.equal(failure.sentAlert, AlertDescription.illegal_parameter);
    assert.match(failure.error.message, /CertificateVerify/);

    // The same credential with the right scheme is accepted.
    const ok = await handshake(clientOptions(offer), serverSigningWith(S.rsa_pss_pss_sha256));
    assert.equal(infoOf(ok.client).serverMode.signatureScheme, S.rsa_pss_pss_sha256);
    assert.equal(infoOf(ok.client).serverMode.authentication, DELEGATED_CREDENTIAL_LABEL);
  });

  void it('authenticates a client with its own delegated credential when the server asks for one', async () => {
    const clientCert = await makeCertificate({ keyType: 'ed25519', dnsNames: ['client.example.test'] });
    const clientSet = await setFor(clientCert, ['ecdsa_secp256r1_sha256'], 'client');
    const out = await handshake(
      {
        ...clientOptions(),
        certificates: [{ cert: clientCert.pem, key: clientCert.privateKey }],
        selectClientCredential: clientDelegatedCredentialSelector(clientSet),
      },
      {
        ...serverOptions(),
        requestCert: true,
        ca: [clientCert.pem],
        clientCredentialHooks: delegatedCredentialPeerHooks({ peer: 'client' }),
      },
    );
    const serverInfo = infoOf(out.server);
    assert.equal(serverInfo.clientMode?.authentication, DELEGATED_CREDENTIAL_LABEL);
    assert.equal(serverInfo.clientMode?.signatureScheme, S.ecdsa_secp256r1_sha256);
    assert.equal(infoOf(out.client).clientMode?.authentication, DELEGATED_CREDENTIAL_LABEL);
  });
});

/**
 * ML-DSA delegated credentials (draft-ietf-tls-mldsa code points as dc_cert_verify_algorithm;
 * the certificate keeps its P-256 key and signs the credential). No outside TLS peer verifies
 * these yet, so besides our own client each CertificateVerify signature is checked by an
 * independent FIPS 204 implementation (@noble/post-quantum), not only by node:crypto's.
 */
void describe('ML-DSA delegated credentials in the handshake', () => {
  let cert: TestCertificate;
  const now = new Date();
  const noble = { [S.mldsa44]: ml_dsa44, [S.mldsa65]: ml_dsa65, [S.mldsa87]: ml_dsa87 } as const;

  before(async () => {
    cert = await makeCertificate({ keyType: 'p256', dnsNames: [HOST] });
  });

  async function issue(dcAlgorithm: DcAlgorithmName) {
    return issueDelegatedCredential({ certificate: cert.der, signer: cert.signer, dcAlgorithm, validitySeconds: 3600, now });
  }

  async function setOf(...algorithms: DcAlgorithmName[]): Promise<DelegatedCredentialSet> {
    const credentials = [];
    for (const a of algorithms) {
      const issued = await issue(a);
      credentials.push({ delegatedCredential: issued.delegatedCredential, privateKey: issued.privateKey });
    }
    return DelegatedCredentialSet.build({ certificateChain: [cert.der], credentials, now });
  }

  /** Our server, with every CertificateVerify signature it makes recorded with what it signed. */
  function recordingServer(set: DelegatedCredentialSet, mangle: (signature: Uint8Array) => Uint8Array = (x) => x) {
    const signed: { scheme: number; message: Uint8Array; signature: Uint8Array }[] = [];
    const options: ServerOptions = {
      certificates: [{ cert: cert.pem, key: cert.privateKey }],
      selectCredential: (hello, fallback) => {
        const choice = delegatedCredentialSelector(set)(hello, fallback) as ReturnType<typeof fallback>;
        if (!choice) return choice;
        const inner = choice.signer;
        const signer: Signer = {
          schemes: inner.schemes,
          sign: async (scheme, message) => {
            const signature = mangle(await inner.sign(scheme, message));
            signed.push({ scheme, message, signature });
            return signature;
          },
        };
        return { ...choice, signer };
      },
      now: () => now,
    };
    return { options, signed };
  }

  const clientOptions = (offer?: readonly number[], signatureAlgorithms?: readonly number[]): ClientOptions => ({
    servername: HOST,
    ca: [cert.pem],
    now: () => now,
    serverCredentialHooks: delegatedCredentialPeerHooks({ peer: 'server', ...(offer ? { offer } : {}) }),
    ...(signatureAlgorithms ? { signatureAlgorithms } : {}),
  });

  for (const [name, scheme, keyBytes, signatureBytes] of [
    ['mldsa44', S.mldsa44, 1312, 2420],
    ['mldsa65', S.mldsa65, 1952, 3309],
    ['mldsa87', S.mldsa87, 2592, 4627],
  ] as const) {
    void it(`serves a ${name} credential that our client accepts and an independent ML-DSA verifies`, async () => {
      const set = await setOf(name);
      const server = recordingServer(set);
      const out = await handshake(clientOptions(), server.options);
      for (const info of [infoOf(out.client), infoOf(out.server)]) {
        assert.equal(info.serverMode.authentication, DELEGATED_CREDENTIAL_LABEL);
        assert.equal(info.serverMode.signatureScheme, scheme);
      }
      assert.equal(server.signed.length, 1);
      const { message, signature } = server.signed[0]!;
      assert.equal(signature.length, signatureBytes);
      const publicKey = set.entries[0]!.publicKey.export({ format: 'raw-public' } as never) as unknown as Buffer;
      assert.equal(publicKey.length, keyBytes);
      // The signed content is the TLS 1.3 server CertificateVerify content (RFC 8446 §4.4.3).
      assert.equal(Buffer.from(message.subarray(0, 98)).toString('latin1'), ' '.repeat(64) + 'TLS 1.3, server CertificateVerify\0');
      assert.equal(noble[scheme].verify(signature, message, publicKey), true);
      const flipped = Uint8Array.from(signature);
      flipped[100] = flipped[100]! ^ 1;
      assert.equal(noble[scheme].verify(flipped, message, publicKey), false);
    });
  }

  void it('a signature made by the independent ML-DSA passes our verification', async () => {
    const { verifySignature } = await import('../../../../src/tls/signature-schemes.js');
    const { createPublicKey } = await import('node:crypto');
    const keys = ml_dsa65.keygen(new Uint8Array(32).fill(3));
    const message = Buffer.from('TLS 1.3 CertificateVerify content stand-in');
    const signature = ml_dsa65.sign(message, keys.secretKey);
    const key = createPublicKey({ key: Buffer.from(keys.publicKey), format: 'raw-public', asymmetricKeyType: 'ml-dsa-65' } as never);
    assert.equal(verifySignature(S.mldsa65, key, message, signature), true);
    assert.equal(verifySignature(S.mldsa65, key, Buffer.from('another message'), signature), false);
    assert.equal(verifySignature(S.mldsa44, key, message, signature), false);
  });

  void it('prefers the ML-DSA credential when the client lists it in both lists, and P-256 otherwise', async () => {
    const set = await setOf('ecdsa_secp256r1_sha256', 'mldsa65');
    const both = await handshake(clientOptions(), recordingServer(set).options);
    assert.equal(infoOf(both.client).serverMode.signatureScheme, S.mldsa65);
    const classicDcOnly = await handshake(clientOptions([S.ecdsa_secp256r1_sha256]), recordingServer(set).options);
    assert.equal(infoOf(classicDcOnly.client).serverMode.signatureScheme, S.ecdsa_secp256r1_sha256);
  });

  void it('offers the ML-DSA credential only to clients that list the scheme in signature_algorithms and extension 34', async () => {
    const set = await setOf('mldsa65');
    // Extension 34 lists it, signature_algorithms does not: the certificate key signs.
    const sigalgs = [S.ecdsa_secp256r1_sha256, S.ed25519];
    const noSigalg = await handshake(clientOptions([S.mldsa65], sigalgs), recordingServer(set).options);
    assert.equal(infoOf(noSigalg.client).serverMode.authentication, 'certificate');
    // signature_algorithms lists it, extension 34 does not.
    const noDcScheme = await handshake(clientOptions([S.ecdsa_secp256r1_sha256]), recordingServer(set).options);
    assert.equal(infoOf(noDcScheme.client).serverMode.authentication, 'certificate');
  });

  void it('a client refuses an ML-DSA credential it did not offer in extension 34 (illegal_parameter)', async () => {
    const set = await setOf('mldsa65');
    const entry = set.entries[0]!;
    const careless: ServerOptions = {
      certificates: [{ cert: cert.pem, key: cert.privateKey }],
      selectCredential: (_hello, fallback) => ({
        ...fallback()!,
        leafExtensions: [{ type: ExtensionType.delegated_credential, data: entry.encoded }],
        signer: entry.signer,
        scheme: S.mldsa65,
      }),
      now: () => now,
    };
    const out = await handshake(clientOptions([S.ecdsa_secp256r1_sha256]), careless);
    const failure = errorOf(out.client);
    assert.ok(failure.error instanceof InvalidDelegatedCredential);
    assert.equal(failure.error.rule, 'dc-scheme-not-offered');
    assert.equal(failure.sentAlert, AlertDescription.illegal_parameter);
  });

  void it('a credential whose ML-DSA-65 key is one byte short is refused as a malformed SPKI (illegal_parameter)', async () => {
    const good = await issue('mldsa65');
    const spki = Buffer.from(good.decoded.credential.spki);
    // SEQUENCE(0x07b2) { AlgorithmIdentifier(13 bytes), BIT STRING(0x07a1) { 0x00, key(1952) } }
    assert.equal(spki.length, 1974);
    assert.deepEqual([...spki.subarray(0, 4)], [0x30, 0x82, 0x07, 0xb2]);
    assert.deepEqual([...spki.subarray(17, 21)], [0x03, 0x82, 0x07, 0xa1]);
    const short = Buffer.concat([Uint8Array.of(0x30, 0x82, 0x07, 0xb1), spki.subarray(4, 17), Uint8Array.of(0x03, 0x82, 0x07, 0xa0), spki.subarray(21, spki.length - 1)]);
    const credential = { ...good.decoded.credential, spki: new Uint8Array(short) };
    const algorithm = S.ecdsa_secp256r1_sha256;
    const signature = await cert.signer.sign(algorithm, delegatedCredentialSignedContent('server', cert.der, credential, algorithm));
    const encoded = encodeDelegatedCredential({ credential, algorithm, signature });
    const server: ServerOptions = {
      certificates: [{ cert: cert.pem, key: cert.privateKey }],
      selectCredential: (_hello, fallback) => ({
        ...fallback()!,
        leafExtensions: [{ type: ExtensionType.delegated_credential, data: encoded }],
        signer: createKeySigner(good.privateKey),
        scheme: S.mldsa65,
      }),
      now: () => now,
    };
    const out = await handshake(clientOptions(), server);
    const failure = errorOf(out.client);
    assert.ok(failure.error instanceof InvalidDelegatedCredential);
    assert.equal(failure.error.rule, 'malformed-spki');
    assert.equal(failure.sentAlert, AlertDescription.illegal_parameter);
  });

  for (const [what, mangle] of [
    ['one byte short', (sig: Uint8Array) => sig.subarray(0, sig.length - 1)],
    ['one byte long', (sig: Uint8Array) => Buffer.concat([sig, Uint8Array.of(0)])],
  ] as const) {
    void it(`an ML-DSA-65 CertificateVerify signature ${what} fails with decrypt_error`, async () => {
      const set = await setOf('mldsa65');
      const out = await handshake(clientOptions(), recordingServer(set, mangle).options);
      const failure = errorOf(out.client);
      assert.equal(failure.sentAlert, AlertDescription.decrypt_error);
      assert.match(failure.error.message, /CertificateVerify/);
    });
  }
});
