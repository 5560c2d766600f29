/**
 * The keyless codec (src/keyless/codec.ts): byte 0 says how the rest is cut into chunks for the
 * stream FrameDecoder (with a 1 KiB body limit, so oversized frames are skipped too); each frame's
 * body is decoded, and the whole rest as one message. Decoded operations must survive
 * encodeMessage → decodeMessage unchanged, and a sign-message extension payload (opcode 0xC0)
 * decode → encode. Only KeylessError (with its wire error code) may be thrown.
 */
import { decodeItems, decodeMessage, decodeOperation, encodeMessage, FrameDecoder, type Operation } from '../../../src/keyless/codec.js';
import { KeylessError } from '../../../src/keyless/errors.js';
import { Opcode, Tag } from '../../../src/keyless/protocol.js';
import { encodeSignMessage } from '../../../src/keyless/sign-message.js';
import { signRequestOf } from '../../../src/keyless/sign-request.js';
import { canonical, check, chunked, type FuzzTarget } from '../target.js';

function isKeylessError(e: unknown): boolean {
  return e instanceof KeylessError;
}

const TEXT_ITEMS: ReadonlyMap<number, keyof Operation> = new Map([
  [Tag.serverName, 'serverName'],
  [Tag.certificateId, 'certificateId'],
  [Tag.customFuncName, 'customFuncName'],
] as const);

/** Text items decode losslessly: the string encodes back to the bytes on the wire. */
function textIsExact(body: Uint8Array, op: Operation): void {
  for (const { tag, value } of decodeItems(body)) {
    const field = TEXT_ITEMS.get(tag);
    if (field === undefined) continue;
    const text = op[field] as string;
    check(Buffer.from(text, 'utf8').equals(value), `${field} ${JSON.stringify(text)} is not the ${value.length} bytes on the wire (${Buffer.from(value).toString('hex').slice(0, 64)})`);
  }
}

/**
 * A decoded operation's payload through the sign-message extension's codec: it decodes as a
 * request or throws a KeylessError, and what decodes encodes back to the same bytes.
 */
function signRequestRoundTrip(op: Operation): void {
  if (op.opcode !== Opcode.signMessage) return;
  const payload = op.payload ?? new Uint8Array(0);
  const request = signRequestOf(op.opcode, payload);
  check(request?.kind === 'message', 'the sign-message opcode did not make a message request');
  const again = encodeSignMessage({ scheme: request.scheme, message: request.message });
  check(Buffer.from(again).equals(payload), `sign-message payload changed through decode/encode: ${Buffer.from(payload).toString('hex').slice(0, 64)}`);
}

function roundTrip(id: number, op: Operation): void {
  let again: Operation;
  try {
    again = decodeMessage(encodeMessage(id, op)).operation;
  } catch (e) {
    check(false, `a decoded operation does not encode and decode again: ${String(e)}`);
  }
  check(canonical(again) === canonical(op), `operation changed through encode/decode: ${canonical(op).slice(0, 300)} → ${canonical(again).slice(0, 300)}`);
}

export const target: FuzzTarget = {
  description: 'chunking byte + a keyless byte stream → frames, operations; decoded operations round-trip',
  maxLength: 4096,
  // Tags, opcodes, the version, and UTF-8 edge cases for the text items (a BOM, an overlong
  // NUL, a surrogate, a code point past U+10FFFF).
  dictionary: [
    ...[...Object.values(Tag), ...Object.values(Opcode)].map((v) => Uint8Array.of(v)),
    Uint8Array.of(1, 0),
    Uint8Array.of(0xef, 0xbb, 0xbf),
    Uint8Array.of(0xc0, 0x80),
    Uint8Array.of(0xed, 0xa0, 0x80),
    Uint8Array.of(0xf4, 0x90, 0x80, 0x80),
  ],
  modules: ['src/keyless/codec', 'src/keyless/protocol', 'src/keyless/errors', 'src/keyless/sign-message', 'src/keyless/sign-request'],
  run(data) {
    const frames = new FrameDecoder(1024);
    for (const chunk of chunked(data)) {
      for (const frame of frames.push(chunk)) {
        if (frame.kind !== 'message') continue;
        try {
          const op = decodeOperation(frame.body);
          textIsExact(frame.body, op);
          roundTrip(frame.header.id, op);
          signRequestRoundTrip(op);
        } catch (e) {
          if (!isKeylessError(e)) throw e;
        }
      }
    }
    const message = decodeMessage(data.subarray(1));
    textIsExact(data.subarray(9), message.operation);
    roundTrip(message.id, message.operation);
    signRequestRoundTrip(message.operation);
  },
  expected: isKeylessError,
};
