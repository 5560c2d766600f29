/**
 * An in-memory client/server pair: connections exchange bytes through arrays,
 * async signers are awaited, and every event is recorded. `doHandshake` runs until both sides
 * are quiet; `transfer` moves application data and returns what arrived.
 */
import assert from 'node:assert/strict';
import type { Connection, Progress, TlsEvent } from '../../../src/tls/connection.js';

export class Endpoint {
  readonly events: TlsEvent[] = [];
  outbox: Uint8Array[] = [];
  private wait: Promise<void> | undefined;

  constructor(readonly conn: Connection) {
    this.take(conn.poll());
  }

  take(p: Progress): void {
    this.outbox.push(...p.output);
    this.events.push(...p.events);
    this.wait = p.waitFor;
  }

  async settle(): Promise<boolean> {
    if (!this.wait) return false;
    await this.wait;
    this.take(this.conn.poll());
    return true;
  }

  drain(): Uint8Array[] {
    const out = this.outbox;
    this.outbox = [];
    return out;
  }

  ofType<T extends TlsEvent['type']>(type: T): Extract<TlsEvent, { type: T }>[] {
    return this.events.filter((e): e is Extract<TlsEvent, { type: T }> => e.type === type);
  }

  get error(): Extract<TlsEvent, { type: 'error' }> | undefined {
    return this.ofType('error')[0];
  }

  get received(): Buffer {
    return Buffer.concat(this.ofType('data').map((e) => e.data));
  }
}

/** Splits a buffer of whole records into records. */
export function splitRecords(data: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let off = 0; off + 5 <= data.length; ) {
    const len = (data[off + 3]! << 8) | data[off + 4]!;
    out.push(data.subarray(off, off + 5 + len));
    off += 5 + len;
  }
  return out;
}

export interface Pair {
  readonly client: Endpoint;
  readonly server: Endpoint;
}

/** Moves bytes both ways (optionally through `tamper`) until neither side has anything to say. */
export async function pump(
  pair: Pair,
  tamper?: (from: 'client' | 'server', bytes: Uint8Array) => Uint8Array | Uint8Array[],
): Promise<void> {
  for (let round = 0; round < 1000; round++) {
    let moved = false;
    for (const [from, to, name] of [
      [pair.client, pair.server, 'client'],
      [pair.server, pair.client, 'server'],
    ] as const) {
      for (const chunk of from.drain()) {
        moved = true;
        const pieces = tamper ? tamper(name, chunk) : chunk;
        for (const piece of Array.isArray(pieces) ? pieces : [pieces]) to.take(to.conn.feed(piece));
      }
    }
    if (moved) continue;
    const a = await pair.client.settle();
    const b = await pair.server.settle();
    if (!a && !b) return;
  }
  throw new Error('pump did not converge');
}

export async function doHandshake(client: Connection, server: Connection): Promise<Pair> {
  const pair = { client: new Endpoint(client), server: new Endpoint(server) };
  await pump(pair);
  return pair;
}

/** Sends `data` from one side and returns what the other side received in this call. */
export async function transfer(pair: Pair, from: 'client' | 'server', data: Uint8Array): Promise<Buffer> {
  const receiver = from === 'client' ? pair.server : pair.client;
  const before = receiver.received.length;
  const sender = from === 'client' ? pair.client : pair.server;
  sender.conn.write(data);
  sender.take(sender.conn.poll());
  await pump(pair);
  return receiver.received.subarray(before);
}

/** Both sides completed one handshake and neither failed. */
export function assertConnected(pair: Pair): void {
  assert.equal(pair.client.error, undefined, `client: ${String(pair.client.error?.error)}`);
  assert.equal(pair.server.error, undefined, `server: ${String(pair.server.error?.error)}`);
  assert.equal(pair.client.ofType('handshake').length, 1);
  assert.equal(pair.server.ofType('handshake').length, 1);
}
