/**
 * dc-operator's TLS stack (TLS 1.3, and TLS 1.2 for older clients): public API.
 *
 * Sans-IO core: `ServerConnection` / `ClientConnection` (feed bytes, get bytes and events).
 * Adapter: `createServer` / `connect` / `TLSSocket` over node:net.
 * Extension points for delegated credentials: `ServerOptions.selectCredential`,
 * `ClientOptions.serverCredentialHooks`, and their client-auth twins.
 */
export { AlertDescription, AlertLevel, alertName } from './alerts.js';
export * from './errors.js';
export {
  CipherSuite,
  ContentType,
  ExtensionType,
  HandshakeType,
  NamedGroup,
  SignatureScheme,
  cipherSuiteName,
  namedGroupName,
  signatureSchemeName,
} from './constants.js';
export { Reader, Writer, encode, decodeAll } from './codec.js';
export { createKeySigner, type Signer } from './signer.js';
export {
  certificateVerifyContent,
  isCertificateVerifyScheme,
  keyMatchesScheme,
  schemeParams,
  schemesForKey,
  verifySignature,
} from './signature-schemes.js';
export {
  certificateDers,
  defaultCredential,
  loadCertifiedKey,
  type CertificateKeyInput,
  type CertifiedKey,
  type CredentialChoice,
  type LeafContext,
  type PeerCredentialHooks,
  type PeerKey,
  type SelectClientCredential,
  type SelectServerCredential,
} from './credentials.js';
export { matchesServerName, type SubjectAltNames } from './x509/names.js';
export type { Connection, HandshakeInfo, HandshakeMode, KeyLogger, Progress, TlsEvent } from './connection.js';
export { ServerConfig, ServerConnection, DEFAULT_VERIFY_SCHEMES, type ServerOptions } from './server.js';
export { ClientConfig, ClientConnection, type ClientConnectionOverrides, type ClientOptions } from './client.js';
export { TicketKey, sessionUsable, type TlsSession } from './session.js';
export { DEFAULT_CIPHER_SUITES, SUITES, suiteParams, type SuiteParams } from './suites.js';
export { DEFAULT_TLS12_CIPHER_SUITES, TLS12_SUITES, tls12SuiteParams, type Tls12SuiteParams } from './tls12/suites.js';
export { hasDowngradeSentinel, type TlsVersionName } from './version.js';
export { SUPPORTED_GROUPS, generateKeyShare, type KeyShare } from './key-exchange.js';
export { describeWarmUp, warmUpServer, type WarmUpKind, type WarmUpReport } from './warm-up.js';
export * from './messages/index.js';
export {
  TLSServer,
  TLSSocket,
  connect,
  createServer,
  type ConnectOptions,
  type CreateServerOptions,
  type TLSSocketOptions,
} from './socket.js';
