/**
 * The servers the ClientHello → ServerHello target drives, shared with the corpus generator: a
 * P-256 certificate that allows delegation, with Ed25519 and P-256 delegated credentials served
 * to clients that offer them, a fixed session-ticket key and a fixed clock (so that the
 * resumption seeds stay resumable), and a second configuration with ALPN and client certificates.
 */
import { ServerConfig } from '../../../src/tls/server.js';
import { delegatedCredentialSelector, DelegatedCredentialSet, issueDelegatedCredential } from '../../../src/tls/delegated/index.js';
import { makeCertificate, type TestCertificate } from '../../unit/tls/delegated/fixtures.js';

export const SERVER_NAME = 'fuzz.example.test';
export const FIXED_NOW = new Date('2025-06-01T01:00:00Z');
export const TICKET_KEY = new Uint8Array(32).fill(0x5a);
export const ALPN = ['h2', 'http/1.1'];

export interface FuzzServers {
  readonly certificate: TestCertificate;
  /** Certificate and delegated credentials, no ALPN, tickets. */
  readonly plain: ServerConfig;
  /** ALPN required, CertificateRequest sent (client certificate optional), in TLS 1.3 and TLS 1.2. */
  readonly strict: ServerConfig;
}

let servers: Promise<FuzzServers> | undefined;

export function fuzzServers(): Promise<FuzzServers> {
  servers ??= (async () => {
    const certificate = await makeCertificate({
      keyType: 'p256',
      dnsNames: [SERVER_NAME],
      notBefore: new Date(FIXED_NOW.getTime() - 86400_000),
      notAfter: new Date(FIXED_NOW.getTime() + 90 * 86400_000),
    });
    const credentials = [];
    for (const dcAlgorithm of ['ed25519', 'ecdsa_secp256r1_sha256'] as const) {
      const issued = await issueDelegatedCredential({ certificate: certificate.der, signer: certificate.signer, dcAlgorithm, validitySeconds: 86400, now: FIXED_NOW });
      credentials.push({ delegatedCredential: issued.delegatedCredential, privateKey: issued.privateKey });
    }
    const set = DelegatedCredentialSet.build({ certificateChain: [certificate.der], credentials, now: FIXED_NOW });
    const common = {
      certificates: [{ cert: certificate.pem, key: certificate.privateKey }],
      ticketKey: TICKET_KEY,
      now: () => FIXED_NOW,
    };
    return {
      certificate,
      plain: new ServerConfig({ ...common, selectCredential: delegatedCredentialSelector(set, { now: () => FIXED_NOW }) }),
      strict: new ServerConfig({ ...common, alpnProtocols: ALPN, requestCert: true, rejectUnauthorized: false, ca: [certificate.pem] }),
    };
  })();
  return servers;
}
