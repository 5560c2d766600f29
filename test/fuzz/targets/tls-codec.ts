/**
 * The TLS message codec (src/tls/messages over src/tls/codec.ts's Reader): the first byte picks
 * a decoder, the rest is the message body. A message that decodes must survive write → decode
 * unchanged (the writers are the ones our own endpoints use).
 */
import { encode, type Writer } from '../../../src/tls/codec.js';
import {
  decodeAlert,
  decodeCertificate,
  decodeCertificateRequest,
  decodeCertificateVerify,
  decodeClientHello,
  decodeEncryptedExtensions,
  decodeFinished,
  decodeKeyUpdate,
  decodeNewSessionTicket,
  decodeServerHello,
  writeCertificate,
  writeCertificateRequest,
  writeCertificateVerify,
  writeClientHello,
  writeEncryptedExtensions,
  writeNewSessionTicket,
  writeServerHello,
  type ClientHello,
} from '../../../src/tls/messages/index.js';
import { canonical, check, isTlsError, type FuzzTarget } from '../target.js';
import { TLS_DICTIONARY } from './tls-dictionary.js';

interface Codec {
  readonly name: string;
  readonly decode: (body: Uint8Array) => unknown;
  readonly write?: (w: Writer, value: never) => void;
}

/**
 * decodeClientHello less the order in which the extensions arrived (which decode records for
 * the HelloRetryRequest check and the writer does not take: it writes its own order).
 */
export function decodeClientHelloAsWritten(body: Uint8Array): ClientHello {
  const hello = decodeClientHello(body);
  const { order, ...extensions } = hello.extensions;
  check(order === undefined || order.length === new Set(order).size, 'ClientHello: an extension type recorded twice in its order');
  return { ...hello, extensions };
}

/** Index = the input's first byte modulo the length. */
export const CODECS: readonly Codec[] = [
  { name: 'ClientHello', decode: decodeClientHelloAsWritten, write: writeClientHello },
  { name: 'ServerHello', decode: decodeServerHello, write: writeServerHello },
  { name: 'EncryptedExtensions', decode: decodeEncryptedExtensions, write: writeEncryptedExtensions },
  { name: 'Certificate', decode: decodeCertificate, write: writeCertificate },
  { name: 'CertificateRequest', decode: decodeCertificateRequest, write: writeCertificateRequest },
  { name: 'CertificateVerify', decode: decodeCertificateVerify, write: writeCertificateVerify },
  { name: 'NewSessionTicket', decode: decodeNewSessionTicket, write: writeNewSessionTicket },
  { name: 'KeyUpdate', decode: decodeKeyUpdate },
  { name: 'Alert', decode: decodeAlert },
  { name: 'Finished', decode: (b) => decodeFinished(b, 32) },
];

export const target: FuzzTarget = {
  description: 'selector byte + handshake message body → decode; decoded messages round-trip through their writer',
  maxLength: 4096,
  dictionary: TLS_DICTIONARY,
  modules: ['src/tls/codec', 'src/tls/messages/'],
  run(data) {
    if (data.length === 0) return;
    const codec = CODECS[data[0]! % CODECS.length]!;
    const decoded = codec.decode(data.subarray(1));
    if (!codec.write) return;
    const write = codec.write;
    const rewritten = encode((w) => write(w, decoded as never));
    let again: unknown;
    try {
      again = codec.decode(rewritten);
    } catch (e) {
      check(false, `${codec.name}: our own encoding of a decoded message does not decode: ${String(e)}`);
    }
    check(canonical(again) === canonical(decoded), `${codec.name}: decode(write(decode(x))) differs from decode(x)`);
  },
  expected: isTlsError,
};
