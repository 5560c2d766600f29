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
