/**
 * Record-slab views must not be what a stalled peer makes us keep: a view pins its whole 256 KiB
 * slab, so bytes queued behind a client that does not read (or in a stream nobody drains) are
 * copies (`unpinned`), and a few hundred stalled connections cost their own bytes, not slabs.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo, Socket } from 'node:net';
import { RECORD_SLAB, isSlabView, nativeAead, unpinned } from '../../../src/tls/native/aead.js';
import { randomBytes } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { ContentType } from '../../../src/tls/constants.js';
import { RecordLayer } from '../../../src/tls/record-layer.js';
import { RecordOpener, RecordSealer } from '../../../src/tls/record.js';
import { SUITES } from '../../../src/tls/suites.js';
import { Tls12RecordOpener, Tls12RecordSealer } from '../../../src/tls/tls12/record.js';
import { TLS12_SUITES } from '../../../src/tls/tls12/suites.js';
import { connect, createServer, type TLSSocket } from '../../../src/tls/socket.js';
import { testPki } from './pki.js';

void describe('unpinned', () => {
  void test('copies a slab view (same bytes, a buffer of its own) and passes a buffer of its own through', () => {
    const slab = RECORD_SLAB.reserve(5);
    slab.set([1, 2, 3, 4, 5], RECORD_SLAB.offset);
    const view = RECORD_SLAB.commit(5);
    assert.ok(isSlabView(view));
    const copy = unpinned(view);
    assert.notEqual(copy.buffer, view.buffer);
    assert.equal(isSlabView(copy), false);
    assert.deepEqual([...copy], [1, 2, 3, 4, 5]);
    const own = Buffer.alloc(100, 7);
    assert.equal(unpinned(own), own);
  });

  void test('copies a view of less than half of its memory (a socket read of tiny records opened in place) and passes a view of most of it through', () => {
    const read = Buffer.alloc(64 * 1024, 1);
    const most = read.subarray(100, 60_000);
    assert.equal(unpinned(most), most);
    const little = read.subarray(100, 200);
    const copy = unpinned(little);
    assert.notEqual(copy.buffer, read.buffer);
    assert.ok(Buffer.from(copy).equals(little));
  });
});

void describe('a peer that stops reading', { skip: nativeAead() === undefined && 'the native AEAD is not loaded: records are not slab views' }, () => {
  void test('a stalled connection keeps at most one slab view queued', async () => {
    const pki = await testPki();
    const leaf = await pki.leaf('p256');
    let serverSide: TLSSocket | undefined;
    const server = createServer({ cert: leaf.pem, key: leaf.keyPem }, (s) => {
      s.on('error', () => undefined);
      serverSide = s;
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const client = connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, servername: 'localhost', ca: [pki.ca.pem] });
    client.on('error', () => undefined);
    await once(client, 'secureConnect');
    client.pause();
    for (let i = 0; i < 50 && !serverSide; i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(serverSide, 'the server accepted the connection');
    // Small writes until the stream pushes back (the kernel's buffers are full), bounded.
    const raw = (serverSide as unknown as { socket: Socket }).socket;
    let written = 0;
    for (let i = 0; i < 20_000 && !serverSide.writableNeedDrain; i++, written++) serverSide.write(Buffer.alloc(512, i & 0xff));
    assert.ok(serverSide.writableNeedDrain, `the client stalled the server after ${written} writes`);
    await new Promise((r) => setTimeout(r, 50));
    // What the stalled connection keeps of ours: at most one batch of records in the socket (the
    // stream waits for it before sealing more), and of those at most the one handed on at once a
    // slab view. So a stalled connection pins at most one slab (SLAB_SIZE), never one per record.
    const queued = (raw as unknown as { writableBuffer: { chunk: Uint8Array }[] }).writableBuffer.map((e) => e.chunk);
    const views = queued.filter((c) => c instanceof Uint8Array && isSlabView(c)).length;
    assert.ok(views <= 1, `${views} of ${queued.length} queued chunks are slab views`);
    client.destroy();
    serverSide.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
});

void describe('records opened in place', { skip: nativeAead() === undefined && 'the native AEAD is not loaded: records are not opened in place' }, () => {
  void test('an idle connection keeps no read it has delivered: not the chunk of a record split across two reads (review finding)', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const suite = [...SUITES.values()][0]!;
    const secret = randomBytes(suite.hashLength);
    const sealer = new RecordSealer(suite, secret);
    const layer = new RecordLayer();
    layer.handshaking = false;
    layer.setReader(new RecordOpener(suite, secret));
    // Four records, the last split across two reads; the application takes every view and drops it.
    const first = ((): WeakRef<ArrayBufferLike> => {
      const pieces: Uint8Array[] = [];
      for (let i = 0; i < 4; i++) sealer.sealInto(pieces, ContentType.application_data, randomBytes(16_000));
      const wire = Buffer.concat(pieces);
      const cut = wire.length - 5000;
      const read = new Uint8Array(65_536).subarray(0, cut);
      read.set(wire.subarray(0, cut));
      layer.push(read);
      let delivered = 0;
      for (let item; (item = layer.next()); ) if (item.kind === 'application_data') delivered += item.data.length;
      layer.push(new Uint8Array(wire.subarray(cut)));
      for (let item; (item = layer.next()); ) if (item.kind === 'application_data') delivered += item.data.length;
      assert.equal(delivered, 64_000);
      return new WeakRef(read.buffer);
    })();
    await new Promise((resolve) => setImmediate(resolve));
    gc();
    assert.equal(first.deref(), undefined, 'the first 64 KiB read is still reachable from the record layer');
  });
});

void describe('records from a slab view', { skip: nativeAead() === undefined && 'the native AEAD is not loaded: no slab' }, () => {
  void test('a chunk cut from the record slab (an in-process peer\'s sealed output) opens to the right bytes with an opener that ignores in-place (review finding)', () => {
    // TLS 1.2's opener writes into the slab whatever `inPlace` says, so a plaintext in the same
    // ArrayBuffer as the chunk is not proof it was opened over its own ciphertext.
    const suite = [...TLS12_SUITES.values()].find((s) => s.aead === 'aes-128-gcm')!;
    const key = Buffer.alloc(suite.keyLength, 7);
    const iv = Buffer.alloc(suite.fixedIvLength, 3);
    const sealer = new Tls12RecordSealer(suite, key, iv);
    const pieces: Uint8Array[] = [];
    sealer.sealInto(pieces, ContentType.application_data, Buffer.from('A'.repeat(40)));
    sealer.sealInto(pieces, ContentType.alert, Buffer.from([1, 0]));
    sealer.sealInto(pieces, ContentType.application_data, Buffer.from('B'.repeat(40)));
    const layer = new RecordLayer();
    layer.handshaking = false;
    layer.setReader(new Tls12RecordOpener(suite, key, iv));
    for (const piece of pieces) layer.push(piece);
    const seen: string[] = [];
    for (let item; (item = layer.next()); ) seen.push(item.kind === 'application_data' ? Buffer.from(item.data).toString('latin1') : item.kind);
    assert.deepEqual(seen, ['A'.repeat(40), 'alert', 'B'.repeat(40)]);
  });
});
