import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  decodeMessage,
  decodeOperation,
  encodeMessage,
  FrameDecoder,
  type Frame,
  type Operation,
} from '../../../src/keyless/codec.js';
import { KeylessError, KeylessFormatError, KeylessOversizedError, KeylessVersionError } from '../../../src/keyless/errors.js';
import { ErrorCode, Opcode, Tag } from '../../../src/keyless/protocol.js';

const knownTags = new Set<number>(Object.values(Tag));
const bytes = (min: number, max: number): fc.Arbitrary<Uint8Array> => fc.uint8Array({ minLength: min, maxLength: max });
const text = fc.string({ maxLength: 40 });

const operationArb: fc.Arbitrary<Operation> = fc
  .record(
    {
      opcode: fc.integer({ min: 0, max: 255 }),
      payload: bytes(0, 600),
      ski: bytes(20, 20),
      certificateDigest: bytes(32, 32),
      serverName: text,
      clientIp: fc.oneof(bytes(4, 4), bytes(16, 16)),
      serverIp: fc.oneof(bytes(4, 4), bytes(16, 16)),
      certificateId: text,
      customFuncName: text,
      supplementalPayload: bytes(0, 50),
      jaegerSpan: bytes(0, 50),
      complianceRegion: bytes(0, 8),
      unknown: fc.uniqueArray(
        fc.record({ tag: fc.integer({ min: 0, max: 255 }).filter((t) => !knownTags.has(t)), value: bytes(0, 30) }),
        { maxLength: 4, selector: (i) => i.tag },
      ),
    },
    { requiredKeys: ['opcode'] },
  )
  .map((op) => (op.unknown && op.unknown.length === 0 ? { ...op, unknown: undefined } : op))
  .map((op) => Object.fromEntries(Object.entries(op).filter(([, v]) => v !== undefined)) as unknown as Operation);

function normalize(op: Operation): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(op)) {
    if (v === undefined) continue;
    if (v instanceof Uint8Array) out[k] = Buffer.from(v).toString('hex');
    else if (Array.isArray(v)) out[k] = v.map((i: { tag: number; value: Uint8Array }) => [i.tag, Buffer.from(i.value).toString('hex')]);
    else out[k] = v;
  }
  return out;
}

function errorCodeOf(fn: () => unknown): number | 'none' {
  try {
    fn();
    return 'none';
  } catch (err) {
    if (err instanceof KeylessError) return err.code;
    throw err;
  }
}

function frame(id: number, body: number[], major = 1): Uint8Array {
  return Uint8Array.from([major, 0, body.length >> 8, body.length & 0xff, id >>> 24, (id >>> 16) & 0xff, (id >>> 8) & 0xff, id & 0xff, ...body]);
}

void describe('keyless codec', () => {
  void it('round-trips every operation through encode and decode', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), operationArb, fc.constantFrom(0, 1024), (id, op, padTo) => {
        const wire = encodeMessage(id, op, { padTo });
        const back = decodeMessage(wire);
        assert.equal(back.id, id);
        assert.deepEqual(normalize(back.operation), normalize(op));
        if (padTo > 0) assert.ok(wire.length >= padTo);
      }),
      { numRuns: 300 },
    );
  });

  void it('pads a small request to exactly 1024 bytes with a padding item the decoder ignores', () => {
    const op: Operation = { opcode: Opcode.ecdsaSignSha256, ski: new Uint8Array(20).fill(7), payload: new Uint8Array(32).fill(1) };
    const wire = encodeMessage(9, op, { padTo: 1024 });
    assert.equal(wire.length, 1024);
    assert.deepEqual(normalize(decodeMessage(wire).operation), normalize(op));
  });

  void it('writes the header as major 1, minor 0, body length and id in network byte order', () => {
    const wire = encodeMessage(0x01020304, { opcode: Opcode.ping, payload: Uint8Array.of(0xaa) });
    assert.deepEqual([...wire], [1, 0, 0, 8, 1, 2, 3, 4, Tag.opcode, 0, 1, Opcode.ping, Tag.payload, 0, 1, 0xaa]);
  });

  void it('rejects every strict prefix of a valid message with a format error', () => {
    fc.assert(
      fc.property(operationArb, (op) => {
        const wire = encodeMessage(1, op);
        for (let n = 0; n < wire.length; n++) {
          assert.equal(errorCodeOf(() => decodeMessage(wire.subarray(0, n))), ErrorCode.formatError, `prefix ${n}`);
        }
      }),
      { numRuns: 40 },
    );
  });

  void it('answers random bytes only with keyless errors, never another exception', () => {
    fc.assert(
      fc.property(bytes(0, 300), (body) => {
        const code = errorCodeOf(() => decodeOperation(body));
        assert.ok(code === 'none' || code === ErrorCode.formatError);
      }),
      { numRuns: 2000 },
    );
  });

  void it('rejects a body without an opcode item', () => {
    assert.throws(() => decodeOperation(Uint8Array.of(Tag.payload, 0, 1, 5)), KeylessFormatError);
  });

  void it('keeps a leading byte order mark in text items (found by the keyless-codec fuzz target)', () => {
    const bom = Uint8Array.of(0xef, 0xbb, 0xbf);
    const body = Buffer.concat([Uint8Array.of(Tag.opcode, 0, 1, Opcode.ping, Tag.serverName, 0, 4), bom, Uint8Array.of(0x61)]);
    const op = decodeOperation(body);
    assert.equal(op.serverName, '\ufeffa');
    assert.deepEqual(Buffer.from(op.serverName!, 'utf8'), Buffer.concat([bom, Uint8Array.of(0x61)]));
    assert.equal(decodeMessage(encodeMessage(1, op)).operation.serverName, '\ufeffa');
  });

  void it('rejects an opcode item that is not one byte', () => {
    assert.throws(() => decodeOperation(Uint8Array.of(Tag.opcode, 0, 2, 1, 2)), /opcode item must be 1 byte/);
  });

  void it('rejects two items with the same tag', () => {
    assert.throws(
      () => decodeOperation(Uint8Array.of(Tag.opcode, 0, 1, 0x15, Tag.opcode, 0, 1, 0x16)),
      /duplicate item 0x11/,
    );
  });

  void it('accepts several padding items', () => {
    const op = decodeOperation(Uint8Array.of(Tag.padding, 0, 0, Tag.opcode, 0, 1, 0xf1, Tag.padding, 0, 2, 9, 9));
    assert.equal(op.opcode, Opcode.ping);
  });

  void it('rejects an SKI that is not 20 bytes and an IP address that is neither 4 nor 16 bytes', () => {
    assert.throws(() => decodeOperation(Uint8Array.of(Tag.opcode, 0, 1, 0x15, Tag.ski, 0, 2, 1, 2)), /SKI must be 20 bytes/);
    assert.throws(() => decodeOperation(Uint8Array.of(Tag.opcode, 0, 1, 0x15, Tag.clientIp, 0, 3, 1, 2, 3)), /client IP/);
  });

  void it('rejects a server name that is not UTF-8', () => {
    assert.throws(() => decodeOperation(Uint8Array.of(Tag.opcode, 0, 1, 0x15, Tag.serverName, 0, 2, 0xc3, 0x28)), /not valid UTF-8/);
  });

  void it('keeps items with unknown tags in order and re-encodes them unchanged', () => {
    const body = [Tag.opcode, 0, 1, 0x15, 0x16, 0, 2, 0xab, 0xcd, 0x7e, 0, 0];
    const op = decodeOperation(Uint8Array.from(body));
    assert.deepEqual(op.unknown?.map((i) => [i.tag, [...i.value]]), [[0x16, [0xab, 0xcd]], [0x7e, []]]);
    const again = decodeMessage(encodeMessage(3, op)).operation;
    assert.deepEqual(normalize(again), normalize(op));
  });

  void it('reports a version other than 1 as a version mismatch', () => {
    const wire = frame(5, [Tag.opcode, 0, 1, 0xf1], 2);
    assert.throws(() => decodeMessage(wire), KeylessVersionError);
    assert.equal(errorCodeOf(() => decodeMessage(wire)), ErrorCode.versionMismatch);
  });

  void it('reports a body over the limit as oversized with the format error code', () => {
    const wire = encodeMessage(1, { opcode: 0x15, payload: new Uint8Array(2000) });
    assert.throws(() => decodeMessage(wire, 1000), KeylessOversizedError);
    assert.equal(errorCodeOf(() => decodeMessage(wire, 1000)), ErrorCode.formatError);
  });

  void it('refuses to encode values that cannot be represented', () => {
    assert.throws(() => encodeMessage(1, { opcode: 0x15, payload: new Uint8Array(70000) }), KeylessFormatError);
    assert.throws(() => encodeMessage(-1, { opcode: 0x15 }), KeylessFormatError);
    assert.throws(() => encodeMessage(1, { opcode: 256 }), KeylessFormatError);
    assert.throws(() => encodeMessage(1, { opcode: 0x15, ski: new Uint8Array(19) }), KeylessFormatError);
  });
});

void describe('keyless frame decoder', () => {
  const messages = [
    encodeMessage(1, { opcode: Opcode.ping, payload: Uint8Array.of(1, 2, 3) }),
    encodeMessage(2, { opcode: Opcode.ecdsaSignSha256, ski: new Uint8Array(20), payload: new Uint8Array(32) }, { padTo: 1024 }),
    encodeMessage(3, { opcode: Opcode.response, payload: new Uint8Array(0) }),
  ];
  const stream = Buffer.concat(messages);
  const ids = (frames: Frame[]): number[] => frames.map((f) => f.header.id);

  void it('cuts the same frames from a stream fed one byte at a time', () => {
    const decoder = new FrameDecoder();
    const frames: Frame[] = [];
    for (const b of stream) frames.push(...decoder.push(Uint8Array.of(b)));
    assert.deepEqual(ids(frames), [1, 2, 3]);
    assert.equal(decoder.buffered, 0);
    frames.forEach((f, i) => assert.equal(f.kind === 'message' && f.body.length, messages[i]!.length - 8));
  });

  void it('cuts the same frames from random chunkings', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 700 }), { maxLength: 20 }), (cuts) => {
        const decoder = new FrameDecoder();
        const frames: Frame[] = [];
        let at = 0;
        for (const c of cuts) {
          frames.push(...decoder.push(stream.subarray(at, at + c)));
          at += c;
        }
        frames.push(...decoder.push(stream.subarray(at)));
        assert.deepEqual(ids(frames), [1, 2, 3]);
      }),
    );
  });

  void it('holds memory that follows the bytes received, not the chunks they came in, for a largest frame fed one byte at a time', () => {
    // A client may send its bytes in 1-byte TLS records: one 'data' event each, and it may hold a
    // frame back by its last byte forever. Joining the held bytes on every event copied ~n²/2 bytes
    // (2 GB, ~0.9 s of a blocked event loop for 64 KiB); keeping the events as a list held a Buffer
    // object per byte (~7.6 MB of heap per 64 KiB frame). Checked at every step: the memory held is
    // at most twice the bytes held plus 4 KiB (a body buffer growing by doubling).
    const big = encodeMessage(9, { opcode: Opcode.ping, payload: new Uint8Array(65_000).fill(5) });
    const decoder = new FrameDecoder();
    const frames: Frame[] = [];
    let worst = 0;
    for (let at = 0; at < big.length; at++) {
      frames.push(...decoder.push(big.subarray(at, at + 1)));
      if (frames.length === 0) worst = Math.max(worst, decoder.reserved - (2 * decoder.buffered + 4096 + 8));
    }
    assert.ok(worst <= 0, `held ${worst} bytes over twice the bytes received plus 4 KiB`);
    assert.equal(frames.length, 1);
    const frame = frames[0]!;
    assert.ok(frame.kind === 'message' && Buffer.from(frame.body).equals(Buffer.from(big.subarray(8))), 'the frame is whole');
    assert.equal(decoder.buffered, 0);
  });

  void it('reserves 4 KiB, not the 64 KiB a header announces, for a peer that sends a header and stalls', () => {
    const decoder = new FrameDecoder();
    assert.deepEqual(decoder.push(Uint8Array.of(1, 0, 0xff, 0xff, 0, 0, 0, 1)), []);
    assert.ok(decoder.reserved <= 8 + 4096, `${decoder.reserved} bytes reserved`);
    assert.deepEqual(decoder.push(new Uint8Array(10)), []);
    assert.equal(decoder.buffered, 10);
  });

  void it('a frame is a copy of its own: the chunk it came in can be reused after push', () => {
    const one = encodeMessage(4, { opcode: Opcode.ping, payload: Uint8Array.of(7, 7, 7) });
    const chunk = Buffer.from(one);
    const [frame] = new FrameDecoder().push(chunk);
    chunk.fill(0);
    assert.ok(frame?.kind === 'message' && Buffer.from(frame.body).equals(Buffer.from(one.subarray(8))));
  });

  void it('skips the body of an oversized frame without buffering it and stays in sync', () => {
    const big = encodeMessage(7, { opcode: 0x15, payload: new Uint8Array(5000) });
    const decoder = new FrameDecoder(1024);
    const frames: Frame[] = [];
    const all = Buffer.concat([big, messages[0]!]);
    for (let at = 0; at < all.length; at += 100) {
      frames.push(...decoder.push(all.subarray(at, at + 100)));
      assert.ok(decoder.buffered <= 1024 + 8);
    }
    assert.deepEqual(frames.map((f) => [f.kind, f.header.id]), [['oversized', 7], ['message', 1]]);
  });
});
