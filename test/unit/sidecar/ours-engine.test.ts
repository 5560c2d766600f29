/**
 * The sidecar's engine stream (TlsServerStream) over a scripted socket: what one socket read of
 * several records becomes on the plaintext side. The records of a read are handed to the proxy
 * as one chunk (one write to the application per read, not one per record) when the native
 * AEAD opened them end to end; byte for byte the same data either way.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { ClientConnection } from '../../../src/tls/client.js';
import { nativeAead } from '../../../src/tls/native/aead.js';
import { ServerConfig, ServerConnection } from '../../../src/tls/server.js';
import { TlsServerStream } from '../../../src/sidecar/ours-engine.js';
import { splitRecords } from '../tls/pair.js';
import { testPki } from '../tls/pki.js';

/** A socket whose reads the test makes (`read`) and whose writes it collects (`written`). */
class ScriptedSocket extends Duplex {
  readonly written: Buffer[] = [];
  override _read(): void {}
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.written.push(Buffer.from(chunk));
    callback();
  }
  /** One socket read of `chunk`. */
  read_(chunk: Buffer): void {
    this.emit('data', chunk);
  }
  /** Everything written since the last call. */
  takeWritten(): Buffer {
    const all = Buffer.concat(this.written);
    this.written.length = 0;
    return all;
  }
  destroySoon(): void {
    this.destroy();
  }
  setNoDelay(): this {
    return this;
  }
}

/** A socket whose writes complete only when the test says so (`complete`): a peer that is not reading. */
class StalledSocket extends ScriptedSocket {
  private readonly held: (() => void)[] = [];
  override _write(chunk: Buffer, encoding: BufferEncoding, callback: () => void): void {
    this.held.push(() => super._write(chunk, encoding, callback));
  }
  complete(): void {
    for (const done of this.held.splice(0)) done();
  }
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function connected<S extends ScriptedSocket = ScriptedSocket>(socket: S = new ScriptedSocket() as S): Promise<{ stream: TlsServerStream; socket: S; client: ClientConnection }> {
  const pki = await testPki();
  const leaf = await pki.leaf('p256');
  const config = new ServerConfig({ certificates: [{ cert: leaf.pem, key: leaf.key }] });
  const client = new ClientConnection({ servername: 'localhost', ca: [pki.ca.pem] });
  const stream = new TlsServerStream(socket as unknown as Socket, new ServerConnection(config));
  const done = stream.handshake(Buffer.concat(client.poll().output), 5000);
  if (socket instanceof StalledSocket) socket.complete();
  const flight = socket.takeWritten();
  const reply = client.feed(flight);
  const failed = reply.events.find((e) => e.type === 'error');
  assert.equal(failed?.type === 'error' ? failed.error.message : undefined, undefined);
  socket.read_(Buffer.concat(reply.output));
  await done;
  return { stream, socket, client };
}

/** A connected stream whose plaintext chunks are collected, and the client's records for `data`. */
async function sending(data: Buffer): Promise<{ stream: TlsServerStream; socket: ScriptedSocket; chunks: Buffer[]; wire: Buffer }> {
  const { stream, socket, client } = await connected();
  const chunks: Buffer[] = [];
  stream.on('data', (d: Buffer) => chunks.push(Buffer.from(d)));
  await tick();
  client.write(data);
  return { stream, socket, chunks, wire: Buffer.concat(client.poll().output) };
}

void describe('TlsServerStream: the records of one socket read', () => {
  void test('four full records read at once reach the proxy as one chunk (native AEAD) or one chunk per record (node:crypto), intact', async () => {
    const data = randomBytes(4 * 16384);
    const { stream, socket, chunks, wire } = await sending(data);
    assert.equal(splitRecords(wire).length, 4);
    socket.read_(Buffer.from(wire));
    await tick();
    assert.ok(Buffer.concat(chunks).equals(data));
    assert.equal(chunks.length, nativeAead() ? 1 : 4);
    stream.destroy();
  });

  void test('a read that ends inside a record: the rest of the record comes with the next read, and each read is at most two chunks', async () => {
    const data = randomBytes(8 * 16384);
    const { stream, socket, chunks, wire } = await sending(data);
    const cut = Math.floor(wire.length / 2) + 7;
    socket.read_(Buffer.from(wire.subarray(0, cut)));
    await tick();
    const afterFirst = chunks.length;
    socket.read_(Buffer.from(wire.subarray(cut)));
    await tick();
    assert.ok(Buffer.concat(chunks).equals(data));
    if (nativeAead()) {
      assert.equal(afterFirst, 1, 'the whole records of the first read, one chunk');
      assert.equal(chunks.length - afterFirst, 2, 'the record joined across the reads, then the whole ones after it');
    }
    stream.destroy();
  });

  void test('relayTo: held plaintext first, then each read straight to the sink; a full sink pauses the socket until resumeInput; the end after the data', async () => {
    const { stream, socket, client } = await connected();
    const send = (text: string): void => {
      client.write(Buffer.from(text));
      socket.read_(Buffer.concat(client.poll().output));
    };
    send('before the application connected');
    await tick();
    const got: string[] = [];
    let full = false;
    let ended = false;
    stream.relayTo({
      write: (chunk) => {
        got.push(Buffer.from(chunk).toString());
        return !full;
      },
      end: () => (ended = true),
    });
    assert.deepEqual(got, ['before the application connected']);
    assert.equal(stream.inputEnded, false);
    send('one');
    assert.deepEqual(got, ['before the application connected', 'one'], 'delivered in the same read, no tick');
    full = true;
    send('two');
    assert.equal(socket.isPaused(), true, 'a full sink pauses reading');
    stream.resumeInput();
    assert.equal(socket.isPaused(), false);
    client.close();
    socket.read_(Buffer.concat(client.poll().output));
    assert.deepEqual(got, ['before the application connected', 'one', 'two']);
    assert.equal(ended, true);
    assert.equal(stream.inputEnded, true);
    stream.destroy();
  });

  void test('pendingOutput: what writeNow sealed and the socket has not written yet (the proxy idle clock after the application closed)', async () => {
    const { stream, socket } = await connected(new StalledSocket());
    await tick();
    socket.complete();
    socket.takeWritten();
    assert.equal(stream.pendingOutput, 0);
    stream.writeNow(Buffer.alloc(1000, 0x61), () => {});
    assert.equal(stream.writableLength, 0, 'writeNow bypasses the stream queue');
    assert.ok(stream.pendingOutput > 1000, `the record waits in the socket: ${stream.pendingOutput} bytes`);
    socket.complete();
    assert.equal(stream.pendingOutput, 0);
    stream.destroy();
  });

  void test('relayTo after the client ended: the held data, then the end, at once', async () => {
    const { stream, socket, client } = await connected();
    client.write(Buffer.from('last words'));
    client.close();
    socket.read_(Buffer.concat(client.poll().output));
    await tick();
    const got: string[] = [];
    let ended = false;
    stream.relayTo({ write: (c) => got.push(Buffer.from(c).toString()) > 0, end: () => (ended = true) });
    assert.deepEqual(got, ['last words']);
    assert.equal(ended, true);
    stream.destroy();
  });
});
