/**
 * Keyless SSL: wire codec, pooled mutual-TLS client and key server. The Signer backend built on
 * the client is src/signer/keyless.ts (KeylessSigner).
 */
export { KeylessClient, parseAddress, type KeylessClientOptions, type RequestOptions, type ConnectionState } from './client.js';
export { startKeyServer, type KeyServer, type KeyServerOptions, type PeerAuthorizer, type RequestAuthorizer } from './server.js';
export { KeyDirectory, SigningKey, StaticKeys, parseKeyFile, type KeyLookup, type KeyStoreLogger, type ReloadResult } from './keystore.js';
export { decodeMessage, decodeOperation, encodeMessage, FrameDecoder, type Frame, type Header, type Item, type Message, type Operation } from './codec.js';
export {
  KeylessClosedError,
  KeylessConfigError,
  KeylessError,
  KeylessFormatError,
  KeylessOversizedError,
  KeylessRemoteError,
  KeylessTimeoutError,
  KeylessUnavailableError,
  KeylessVersionError,
} from './errors.js';
export { DEFAULT_PORT, ErrorCode, Opcode, Tag, errorCodeName, opcodeName } from './protocol.js';
export { decodeSignMessage, encodeSignMessage, MAX_SIGN_MESSAGE_LENGTH, type SignMessageRequest } from './sign-message.js';
export { computeSki, parseSkiHex, skiHex } from './ski.js';
