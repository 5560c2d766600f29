/** Mutation tokens for TLS inputs: every code point we know, as 2 big-endian bytes, and record headers. */
import { CipherSuite, ExtensionType, NamedGroup, SignatureScheme } from '../../../src/tls/constants.js';
import { u16Tokens } from '../mutate.js';

export const TLS_DICTIONARY: readonly Uint8Array[] = [
  ...u16Tokens(Object.values(ExtensionType)),
  ...u16Tokens(Object.values(SignatureScheme)),
  ...u16Tokens(Object.values(NamedGroup)),
  ...u16Tokens(Object.values(CipherSuite)),
  ...u16Tokens([0x0304, 0x0303, 0x0302, 0x0301, 0x7f1c]),
  Uint8Array.of(0x16, 0x03, 0x01),
  Uint8Array.of(0x16, 0x03, 0x03),
  Uint8Array.of(0x17, 0x03, 0x03),
  Uint8Array.of(0x14, 0x03, 0x03, 0x00, 0x01, 0x01),
  Uint8Array.of(0x15, 0x03, 0x03, 0x00, 0x02),
];
