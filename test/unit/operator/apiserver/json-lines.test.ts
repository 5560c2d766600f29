// The watch body splitter: lines are whole however the bytes are cut, an event over the cap is
// refused (without having been buffered whole), and nothing else is lost.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { JsonLineSplitter, LineTooLong } from '../../../../src/operator/apiserver/json-lines.js';

function split(chunks: readonly (string | Buffer)[], max = 64): { lines: string[]; held: number } {
  const lines: string[] = [];
  const s = new JsonLineSplitter((l) => lines.push(l.toString('utf8')), max);
  for (const c of chunks) s.push(typeof c === 'string' ? Buffer.from(c) : c);
  return { lines, held: s.held };
}

void describe('JsonLineSplitter', () => {
  const cases: { name: string; chunks: string[]; lines: string[]; held?: number }[] = [
    { name: 'one event, one chunk', chunks: ['{"a":1}\n'], lines: ['{"a":1}'] },
    { name: 'two events in one chunk', chunks: ['{"a":1}\n{"b":2}\n'], lines: ['{"a":1}', '{"b":2}'] },
    { name: 'an event split across chunks', chunks: ['{"type":"ADD', 'ED","obj', 'ect":{}}\n'], lines: ['{"type":"ADDED","object":{}}'] },
    { name: 'the end of one and the start of the next in a chunk', chunks: ['{"a":', '1}\n{"b"', ':2}\n'], lines: ['{"a":1}', '{"b":2}'] },
    { name: 'CRLF and empty lines are not events', chunks: ['{"a":1}\r\n\n\r\n'], lines: ['{"a":1}\r'] },
    { name: 'an unfinished line is held, not delivered', chunks: ['{"a":1}\n{"b"'], lines: ['{"a":1}'], held: 4 },
  ];
  for (const c of cases) {
    void it(c.name, () => {
      const { lines, held } = split(c.chunks);
      assert.deepEqual(lines, c.lines);
      assert.equal(held, c.held ?? 0);
    });
  }

  void it('every cut of a byte stream gives the same lines (each byte its own chunk)', () => {
    const text = '{"type":"ADDED","object":{"x":"é"}}\n{"type":"BOOKMARK","object":{}}\n';
    const bytes = Buffer.from(text);
    const { lines } = split([...bytes].map((b) => Buffer.from([b])), 1024);
    assert.deepEqual(lines, ['{"type":"ADDED","object":{"x":"é"}}', '{"type":"BOOKMARK","object":{}}']);
  });

  void it('refuses a line over the cap as soon as it is over, across chunks and within one', () => {
    assert.throws(() => split(['x'.repeat(40), 'y'.repeat(40)], 64), LineTooLong);
    assert.throws(() => split(['x'.repeat(65) + '\n'], 64), /more than 64 bytes/);
    // At the cap exactly: delivered.
    assert.deepEqual(split(['x'.repeat(30), 'x'.repeat(34) + '\n'], 64).lines, ['x'.repeat(64)]);
  });

  void it('a long line in many small chunks is joined once (linear), not regrown per chunk', () => {
    const joins: number[] = [];
    const original = Buffer.concat;
    Buffer.concat = ((list: readonly Uint8Array[], total?: number) => (joins.push(list.length), original(list, total))) as typeof Buffer.concat;
    try {
      const { lines } = split([...Array.from({ length: 10_000 }, () => 'a'), '\n'], 20_000);
      assert.equal(lines[0]?.length, 10_000);
    } finally {
      Buffer.concat = original;
    }
    assert.deepEqual(joins, [10_001], 'one join of every chunk of the line');
  });
});
