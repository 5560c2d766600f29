/**
 * The bulk record path: received records parsed in place, records split across chunks joined
 * (protected ones into a reused buffer), and sealed output handed out as pieces for a writev
 * (`joinOutput = false`) instead of one joined buffer. Data must arrive intact and in order
 * whatever the chunking, on both sides, for every suite.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { ClientConnection } from '../../../src/tls/client.js';
import { ServerConfig, ServerConnection } from '../../../src/tls/server.js';
import { CipherSuite, ContentType, HandshakeType } from '../../../src/tls/constants.js';
import type { Connection } from '../../../src/tls/connection.js';
import { frameHandshake } from '../../../src/tls/messages/handshake.js';
import { RecordLayer, plainHttpStart } from '../../../src/tls/record-layer.js';
import { nativeAead } from '../../../src/tls/native/aead.js';
import { connect, createServer, type TLSSocket } from '../../../src/tls/socket.js';
import { doHandshake, splitRecords, type Pair } from './pair.js';
import { testPki } from './pki.js';

let serverConfig: ServerConfig | undefined;
async function pair(cipherSuite: number = CipherSuite.TLS_AES_128_GCM_SHA256): Promise<Pair> {
  const pki = await testPki();
  if (!serverConfig) {
    const leaf = await pki.leaf('p256');
    serverConfig = new ServerConfig({ certificates: [{ cert: leaf.pem, key: leaf.key }] });
  }
  const p = await doHandshake(new ClientConnection({ servername: 'localhost', ca: [pki.ca.pem], cipherSuites: [cipherSuite] }), new ServerConnection(serverConfig));
  assert.equal(p.client.error, undefined);
  assert.equal(p.server.error, undefined);
  return p;
}

/** What `conn` sends for `data`, as one byte string. */
function sealed(conn: Connection, data: Uint8Array): Buffer {
  conn.write(data);
  return Buffer.concat(conn.poll().output);
}

/** Feeds `wire` to `conn` cut at `cuts` (sorted offsets) and returns the data it delivered. */
function feedCut(conn: Connection, wire: Uint8Array, cuts: readonly number[]): Buffer {
  const out: Uint8Array[] = [];
  let from = 0;
  for (const to of [...cuts, wire.length]) {
    for (const e of conn.feed(wire.subarray(from, to)).events) {
      if (e.type === 'error') throw e.error;
      if (e.type === 'data') out.push(e.data);
    }
    from = to;
  }
  return Buffer.concat(out);
}

void describe('handshake messages out of the record layer', () => {
  const header = (length: number): Buffer => Buffer.from([ContentType.handshake, 3, 3, length >> 8, length & 0xff]);

  void test('whole messages inside one record are handed out as views of the received chunk (no copy)', () => {
    const a = frameHandshake(HandshakeType.finished, new Uint8Array(32).fill(1));
    const b = frameHandshake(HandshakeType.key_update, Uint8Array.of(0));
    const chunk = Buffer.concat([header(a.length + b.length), a, b]);
    const layer = new RecordLayer();
    layer.push(chunk);
    const first = layer.next();
    const second = layer.next();
    assert.ok(first?.kind === 'handshake' && second?.kind === 'handshake');
    assert.equal(first.raw.buffer, chunk.buffer);
    assert.equal(first.raw.byteOffset, chunk.byteOffset + 5);
    assert.equal(second.raw.buffer, chunk.buffer);
    assert.deepEqual([first.type, first.body.length, second.type, second.body.length], [HandshakeType.finished, 32, HandshakeType.key_update, 1]);
    assert.equal(layer.next(), undefined);
  });

  void test('a message split over records, then one that ends its record, arrive intact in order', () => {
    const big = frameHandshake(HandshakeType.certificate, Uint8Array.from({ length: 40_000 }, (_, i) => i & 0xff));
    const next = frameHandshake(HandshakeType.finished, new Uint8Array(48).fill(5));
    // Cut so that the second message starts inside the last fragment of the first.
    const stream = Buffer.concat([big, next]);
    const cuts = [0, 3, 10, 16_387, 32_000, stream.length];
    const layer = new RecordLayer();
    for (let i = 1; i < cuts.length; i++) {
      const part = stream.subarray(cuts[i - 1], cuts[i]);
      layer.push(Buffer.concat([header(part.length), part]));
    }
    const first = layer.next();
    const second = layer.next();
    assert.ok(first?.kind === 'handshake' && second?.kind === 'handshake');
    assert.deepEqual(Buffer.from(first.raw), Buffer.from(big));
    assert.deepEqual(Buffer.from(second.raw), Buffer.from(next));
    assert.equal(layer.bufferedInput, 0);
  });
});

void describe('receiving records split across chunks', () => {
  void test('three records cut at every offset of the first two (header bytes included) arrive intact', async () => {
    const p = await pair();
    const data = randomBytes(3 * 16384 - 100);
    const wire = sealed(p.client.conn, data);
    const records = splitRecords(wire);
    assert.equal(records.length, 3);
    const server = p.server.conn;
    assert.ok(feedCut(server, wire, []).equals(data));
    // The same connection keeps reading: each round sends the same sizes again, cut once at
    // the next offset (every offset through the first headers, then every 97th byte).
    const step = 97;
    let received = 0;
    for (let offset = 1; offset < records[0]!.length + records[1]!.length; offset += offset < 8 ? 1 : step) {
      const w = sealed(p.client.conn, data);
      const got = feedCut(server, w, [offset]);
      assert.ok(got.equals(data), `cut at ${offset}`);
      received += got.length;
    }
    assert.ok(received > 0);
  });

  void test('a stream fed in random-sized chunks (down to one byte) delivers every byte in order', async () => {
    const p = await pair();
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 1, max: 40000 }), { minLength: 1, maxLength: 12 }), fc.integer({ min: 1, max: 70000 }), async (sizes, total) => {
        const data = randomBytes(total);
        const wire = sealed(p.client.conn, data);
        const cuts: number[] = [];
        let at = 0;
        for (let i = 0; at < wire.length; i++) {
          at += sizes[i % sizes.length]!;
          if (at < wire.length) cuts.push(at);
        }
        assert.ok(feedCut(p.server.conn, wire, cuts).equals(data));
      }),
      { numRuns: 40 },
    );
  });

  void test('data delivered from joined records stays intact after later records are joined', async () => {
    // Joined protected records share one scratch buffer; the plaintext handed out must not.
    const p = await pair();
    const data = randomBytes(20 * 16384);
    const wire = sealed(p.client.conn, data);
    const kept: Uint8Array[] = [];
    for (let off = 0; off < wire.length; off += 7001) {
      for (const e of p.server.conn.feed(wire.subarray(off, Math.min(off + 7001, wire.length))).events) if (e.type === 'data') kept.push(e.data);
    }
    assert.ok(Buffer.concat(kept).equals(data));
  });

  void test('the whole server flight fed one byte at a time completes the handshake, then data one byte at a time arrives', async () => {
    const pki = await testPki();
    const leaf = await pki.leaf('p256');
    const client = new ClientConnection({ servername: 'localhost', ca: [pki.ca.pem] });
    const server = new ServerConnection(new ServerConfig({ certificates: [{ cert: leaf.pem, key: leaf.key }] }));
    const hello = Buffer.concat(client.poll().output);
    const flight = Buffer.concat(server.feed(hello).output);
    let finished: Uint8Array[] = [];
    for (let i = 0; i < flight.length; i++) {
      const pr = client.feed(flight.subarray(i, i + 1));
      assert.ok(!pr.events.some((e) => e.type === 'error'));
      finished = finished.concat(pr.output);
    }
    assert.ok(client.isConnected);
    server.feed(Buffer.concat(finished));
    assert.ok(server.isConnected);
    const data = randomBytes(3000);
    const wire = sealed(client, data);
    assert.ok(feedCut(server, wire, Array.from({ length: wire.length - 1 }, (_, i) => i + 1)).equals(data));
  });

  for (const suite of [CipherSuite.TLS_AES_256_GCM_SHA384, CipherSuite.TLS_CHACHA20_POLY1305_SHA256]) {
    void test(`suite 0x${suite.toString(16)}: records cut in odd chunks arrive intact`, async () => {
      const p = await pair(suite);
      const data = randomBytes(5 * 16384 + 17);
      const wire = sealed(p.client.conn, data);
      const cuts = Array.from({ length: Math.floor(wire.length / 5003) }, (_, i) => (i + 1) * 5003);
      assert.ok(feedCut(p.server.conn, wire, cuts).equals(data));
    });
  }
});

void describe('records opened where they were received (native AEAD) and handed on end to end', () => {
  /** The data events of one feed. */
  function dataOf(conn: Connection, chunk: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (const e of conn.feed(chunk).events) {
      if (e.type === 'error') throw e.error;
      if (e.type === 'data') out.push(e.data);
    }
    return out;
  }
  const endsWhereStarts = (a: Uint8Array, b: Uint8Array): boolean => a.buffer === b.buffer && a.byteOffset + a.length === b.byteOffset;

  void test('the records whole in one chunk come out as views of that chunk, each starting where the one before ends', async () => {
    const p = await pair();
    const data = randomBytes(4 * 16384 - 1000);
    const wire = sealed(p.client.conn, data);
    const chunk = Buffer.from(wire); // a chunk of its own, as a socket read is
    const got = dataOf(p.server.conn, chunk);
    assert.equal(got.length, 4);
    assert.ok(Buffer.concat(got).equals(data));
    for (let i = 1; i < got.length; i++) {
      // Native: opened in place and moved end to end; node:crypto: a Buffer per record.
      assert.equal(endsWhereStarts(got[i - 1]!, got[i]!), nativeAead() !== undefined, `record ${i}`);
    }
    assert.equal(got[0]!.buffer === chunk.buffer, nativeAead() !== undefined);
  });

  void test('a record joined across chunks goes elsewhere; the records after it in the chunk still run end to end and nothing handed out changes later', async () => {
    const p = await pair();
    const data = randomBytes(6 * 16384);
    const wire = sealed(p.client.conn, data);
    const records = splitRecords(wire);
    const cut = records[0]!.length + 100; // record 1 spans the two chunks
    const first = Buffer.from(wire.subarray(0, cut));
    const second = Buffer.from(wire.subarray(cut));
    const a = dataOf(p.server.conn, first);
    const copyA = a.map((d) => Buffer.from(d));
    const b = dataOf(p.server.conn, second);
    assert.equal(a.length, 1);
    assert.equal(b.length, 5);
    assert.ok(Buffer.concat([...a, ...b]).equals(data));
    assert.ok(a.every((d, i) => Buffer.from(d).equals(copyA[i]!)), 'data handed out by the first feed unchanged by the second');
    assert.equal(b[0]!.buffer === second.buffer, false, 'the joined record is not a view of either chunk');
    for (let i = 2; i < b.length; i++) assert.equal(endsWhereStarts(b[i - 1]!, b[i]!), nativeAead() !== undefined, `record ${i}`);
  });

  void test('a tampered record in the middle of a chunk ends the connection with bad_record_mac; the records before it arrive intact, nothing after it', async () => {
    const p = await pair();
    const data = randomBytes(3 * 16384);
    const wire = Buffer.from(sealed(p.client.conn, data));
    const records = splitRecords(wire);
    wire[records[0]!.length + 5 + 100]! ^= 1; // a ciphertext byte of record 2
    const got: Uint8Array[] = [];
    let error: Error | undefined;
    for (const e of p.server.conn.feed(wire).events) {
      if (e.type === 'data') got.push(e.data);
      if (e.type === 'error') error = e.error;
    }
    assert.match(String(error?.name), /BadRecordMac/);
    assert.equal(got.length, 1);
    assert.ok(Buffer.from(got[0]!).equals(data.subarray(0, 16384)));
  });

  void test('random record sizes, random cuts: every byte in order, and within a feed the in-place records of one chunk are adjacent', async () => {
    const p = await pair();
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 1, max: 20000 }), { minLength: 1, maxLength: 8 }), fc.array(fc.integer({ min: 1, max: 70000 }), { minLength: 1, maxLength: 6 }), async (writes, cutSizes) => {
        const data = randomBytes(writes.reduce((a, b) => a + b, 0));
        let off = 0;
        const wire = Buffer.concat(writes.map((n) => sealed(p.client.conn, data.subarray(off, (off += n)))));
        const out: Uint8Array[] = [];
        for (let at = 0, i = 0; at < wire.length; i++) {
          const chunk = Buffer.from(wire.subarray(at, Math.min(wire.length, at + cutSizes[i % cutSizes.length]!)));
          at += chunk.length;
          const got = dataOf(p.server.conn, chunk);
          const inChunk = got.filter((d) => d.buffer === chunk.buffer);
          for (let k = 1; k < inChunk.length; k++) assert.ok(endsWhereStarts(inChunk[k - 1]!, inChunk[k]!));
          out.push(...got.map((d) => Buffer.from(d)));
        }
        assert.ok(Buffer.concat(out).equals(data));
      }),
      { numRuns: 40 },
    );
  });
});

void describe('sealed output as pieces (joinOutput = false)', () => {
  void test('the pieces of a poll are header, ciphertext and tag of each record (node:crypto) or one run of records (native AEAD) and concatenate to whole records', async () => {
    const p = await pair();
    const conn = p.server.conn;
    conn.joinOutput = false;
    conn.write(randomBytes(4 * 16384 + 5));
    const pieces = conn.poll().output;
    if (nativeAead()) {
      // Sealed one after another into the record slab: one piece, two if the slab ran out.
      assert.ok(pieces.length === 1 || pieces.length === 2, `${pieces.length} pieces for five records sealed natively`);
    } else {
      assert.equal(pieces.length, 15, 'header, ciphertext and tag of five records');
    }
    const wire = Buffer.concat(pieces);
    const records = splitRecords(wire);
    assert.equal(records.length, 5);
    assert.equal(
      records.reduce((n, r) => n + r.length, 0),
      wire.length,
      'no bytes outside whole records',
    );
    for (const r of records) assert.equal(r[0], ContentType.application_data);
  });

  void test('pieces fed to the peer one at a time deliver the data, and joined output still comes as one buffer', async () => {
    const p = await pair();
    p.server.conn.joinOutput = false;
    const data = randomBytes(100000);
    p.server.conn.write(data);
    const out: Uint8Array[] = [];
    for (const piece of p.server.conn.poll().output) for (const e of p.client.conn.feed(piece).events) if (e.type === 'data') out.push(e.data);
    assert.ok(Buffer.concat(out).equals(data));
    p.server.conn.joinOutput = true;
    p.server.conn.write(data);
    const joined = p.server.conn.poll().output;
    assert.equal(joined.length, 1);
    assert.equal(splitRecords(joined[0]!).length, 7);
  });
});

void describe('TLSSocket bulk path over loopback', () => {
  void test('a thousand small writes in one tick leave as a few full records, intact and in order', async () => {
    const pki = await testPki();
    const leaf = await pki.leaf('p256');
    const writes = Array.from({ length: 1000 }, (_, i) => Buffer.from(`${String(i).padStart(4, '0')}:${'x'.repeat(95)}\n`));
    const server = createServer({ cert: leaf.pem, key: leaf.keyPem }, (s) => {
      s.on('error', () => undefined);
      for (const w of writes) s.write(w);
      s.end();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    // Count the records on the wire after the handshake: parse record headers from the raw
    // TCP stream under our client.
    const raw = net.connect((server.address() as AddressInfo).port, '127.0.0.1');
    await once(raw, 'connect');
    let wire = Buffer.alloc(0);
    let counting = false;
    let records = 0;
    raw.on('data', (d: Buffer) => {
      if (!counting) return;
      wire = Buffer.concat([wire, d]);
      while (wire.length >= 5 && wire.length >= 5 + wire.readUInt16BE(3)) {
        records++;
        wire = wire.subarray(5 + wire.readUInt16BE(3));
      }
    });
    const client = connect({ socket: raw, servername: 'localhost', ca: [pki.ca.pem] });
    try {
      const chunks: Buffer[] = [];
      client.on('data', (d: Buffer) => chunks.push(d));
      client.once('secureConnect', () => {
        counting = true;
      });
      await once(client, 'end');
      assert.ok(Buffer.concat(chunks).equals(Buffer.concat(writes)));
      // 100 KB of data: 7 full records, plus the first write alone, session tickets and
      // close_notify; without coalescing it would be a thousand records.
      assert.ok(records < 20, `${records} records`);
    } finally {
      client.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  void test('32 MiB each way, in writes of assorted sizes, arrive byte for byte (digests match)', async () => {
    const pki = await testPki();
    const leaf = await pki.leaf('p256');
    const total = 32 << 20;
    const source = randomBytes(1 << 20);
    const sizes = [1, 100, 16384, 16385, 65536, 100000, 7];
    // Writes walk through `source` with the sizes above, wrapping around.
    async function send(s: TLSSocket): Promise<string> {
      const h = createHash('sha256');
      let sent = 0;
      for (let i = 0; sent < total; i++) {
        const n = Math.min(sizes[i % sizes.length]!, total - sent);
        const off = (sent * 7) % (source.length - n);
        const piece = source.subarray(off, off + n);
        h.update(piece);
        sent += n;
        if (!s.write(piece)) await once(s, 'drain');
      }
      return h.digest('hex');
    }
    function receive(s: TLSSocket): Promise<string> {
      const h = createHash('sha256');
      let got = 0;
      return new Promise((resolve) => {
        s.on('data', (d: Buffer) => {
          h.update(d);
          got += d.length;
          if (got === total) resolve(h.digest('hex'));
        });
      });
    }
    let serverResult: Promise<[string, string]> | undefined;
    const server = createServer({ cert: leaf.pem, key: leaf.keyPem }, (s) => {
      s.on('error', () => undefined);
      serverResult = Promise.all([receive(s), send(s)]);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const client = connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, servername: 'localhost', ca: [pki.ca.pem] });
    await once(client, 'secureConnect');
    const [clientGot, clientSent] = await Promise.all([receive(client), send(client)]);
    const [serverGot, serverSent] = await serverResult!;
    assert.equal(serverGot, clientSent);
    assert.equal(clientGot, serverSent);
    client.end();
    await once(client, 'close');
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
});

void describe('plainHttpStart: naming a plain-HTTP peer instead of a nonsense record header', () => {
  const cases: ReadonlyArray<[string, Uint8Array, RegExp | undefined]> = [
    ['a request line', Buffer.from('GET / HTTP/1.1\r\n'), /^the peer spoke plain HTTP \("GET \/ HT\.\.\."\), not TLS, to a TLS port/],
    ['POST', Buffer.from('POST /x HTTP/1.1'), /spoke plain HTTP \("POST \/x \.\.\."\)/],
    ['HTTP/2 prior knowledge', Buffer.from('PRI * HTTP/2.0'), /spoke plain HTTP \("PRI \* HT\.\.\."\)/],
    ['a response line', Buffer.from('HTTP/1.1 400 Bad Request'), /^the peer answered in plain HTTP \("HTTP\/1\.1\.\.\."\), not TLS: is this its HTTP port\?$/],
    ['a TLS record header', Uint8Array.of(22, 3, 1, 0, 5), undefined],
    ['a word that is not a method', Buffer.from('GETTING '), undefined],
    ['control bytes after a method', Buffer.from('GET\x00\x01'), undefined],
    ['too short to tell', Buffer.from('GE'), undefined],
    ['empty', new Uint8Array(0), undefined],
  ];
  for (const [name, bytes, want] of cases) {
    void test(name, () => {
      const got = plainHttpStart(bytes);
      if (want === undefined) assert.equal(got, undefined);
      else assert.match(got ?? '', want);
    });
  }

  void test('reads from an offset and never more than 8 bytes', () => {
    const bytes = Buffer.concat([Buffer.from([22, 3, 3]), Buffer.from('GET /' + 'a'.repeat(100))]);
    assert.match(plainHttpStart(bytes, 3) ?? '', /\("GET \/aaa\.\.\."\)/);
  });
});
