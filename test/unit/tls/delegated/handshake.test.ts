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
    assert.equal(errorOf(out.client).sentAlert, AlertDescription.unsupported_extension);
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
