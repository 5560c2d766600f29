/**
 * The record layer (src/tls/record-layer.ts), on its own: bytes in, items out until it needs
 * more. Byte 0 picks the mode, byte 1 how the stream is cut into chunks (see `chunked`).
 *
 * - Plaintext mode: the rest is the received stream, before any key.
 * - Protected mode: the rest is a list of [type u8][padding u8][length u16][content] that we seal
 *   with a fixed traffic key and feed to a layer reading under that key, so the fuzzer reaches
 *   what lies behind the AEAD: inner content types, padding, fragmented handshake messages.
 */
import { CipherSuite } from '../../../src/tls/constants.js';
import { RecordOpener, RecordSealer } from '../../../src/tls/record.js';
import { RecordLayer } from '../../../src/tls/record-layer.js';
import { suiteParams } from '../../../src/tls/suites.js';
import { check, chunked, isTlsError, type FuzzTarget } from '../target.js';
import { TLS_DICTIONARY } from './tls-dictionary.js';

const SUITE = suiteParams(CipherSuite.TLS_AES_128_GCM_SHA256)!;
const SECRET = new Uint8Array(32).fill(7);

function sealAll(spec: Uint8Array): Uint8Array {
  const sealer = new RecordSealer(SUITE, SECRET);
  const out: Uint8Array[] = [];
  for (let at = 0; at + 4 <= spec.length; ) {
    const type = spec[at]!;
    const padding = spec[at + 1]!;
    const length = Math.min((spec[at + 2]! << 8) | spec[at + 3]!, spec.length - at - 4);
    out.push(sealer.seal(type, spec.subarray(at + 4, at + 4 + length), padding));
    at += 4 + length;
  }
  return Buffer.concat(out);
}

export const target: FuzzTarget = {
  description: 'mode byte + chunking byte + a record stream (plaintext, or sealed under a known key)',
  maxLength: 20000,
  dictionary: TLS_DICTIONARY,
  modules: ['src/tls/record-layer', 'src/tls/record.', 'src/tls/messages/alert'],
  run(data) {
    if (data.length < 2) return;
    const mode = data[0]!;
    const layer = new RecordLayer((type) => type !== 0);
    layer.handshaking = (mode & 2) === 0;
    layer.changeCipherSpecAllowance = (mode >> 2) & 1;
    let stream = data.subarray(1);
    if (mode & 1) {
      layer.setReader(new RecordOpener(SUITE, SECRET));
      stream = Buffer.concat([stream.subarray(0, 1), sealAll(stream.subarray(1))]);
    }
    let items = 0;
    for (const chunk of chunked(stream)) {
      layer.push(chunk);
      while (layer.next() !== undefined) items++;
    }
    check(items <= stream.length, `${items} items out of ${stream.length} bytes`);
  },
  expected: isTlsError,
};
