/**
 * Reads the client's first flight far enough to see its ClientHello, without consuming it: the
 * bytes are kept so that whichever TLS engine the router picks gets the stream from byte 0.
 *
 * `ClientHelloPeeker` is sans-IO: push chunks, get `need-more`, the decoded ClientHello, or why
 * the bytes are not a TLS handshake. It reassembles a ClientHello split across records (large
 * post-quantum key shares) and is bounded: records of at most 2^14 bytes, a ClientHello of at
 * most MAX_CLIENT_HELLO bytes. Decoding uses src/tls's codec, so what the router sees is exactly
 * what our stack will see.
 *
 * `peekClientHello(socket)` is the socket adapter: it reads with a deadline, then pauses the
 * socket and returns the buffered bytes.
 */
import type { Socket } from 'node:net';
import { AlertDescription } from '../tls/alerts.js';
import { ContentType, HandshakeType, MAX_PLAINTEXT, RECORD_HEADER_LENGTH } from '../tls/constants.js';
import { TlsError } from '../tls/errors.js';
import { decodeClientHello, type ClientHello } from '../tls/messages/client-hello.js';

/** Far above any real ClientHello (a few KiB even with post-quantum shares). */
export const MAX_CLIENT_HELLO = 64 * 1024;

export type PeekResult =
  | { readonly kind: 'need-more' }
  | { readonly kind: 'client-hello'; readonly hello: ClientHello; readonly recordVersion: number }
  | { readonly kind: 'not-tls'; readonly reason: string; readonly alert: number };

export class ClientHelloPeeker {
  private chunks: Buffer[] = [];
  private length = 0;
  private settled: PeekResult | undefined;

  /** Everything received so far, to replay into the chosen engine. */
  get buffered(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks, this.length)];
    return this.chunks[0] ?? Buffer.alloc(0);
  }

  push(chunk: Uint8Array): PeekResult {
    if (this.settled) return this.settled;
    const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    this.chunks.push(b);
    this.length += b.length;
    const result = this.parse(this.buffered);
    if (result.kind !== 'need-more') this.settled = result;
    return result;
  }

  private parse(data: Buffer): PeekResult {
    let at = 0;
    let message: Buffer | undefined;
    const fragments: Buffer[] = [];
    let fragmentBytes = 0;
    let recordVersion = 0;
    for (;;) {
      if (data.length - at < RECORD_HEADER_LENGTH) return this.needMore(data.length);
      const type = data[at]!;
      const version = data.readUInt16BE(at + 1);
      const length = data.readUInt16BE(at + 3);
      if (type !== ContentType.handshake) {
        // An SSLv2-compatible hello (0x80 ...) or plain HTTP land here too.
        return notTls(`first record is not a handshake record (content type ${type})`, AlertDescription.unexpected_message);
      }
      if (version >> 8 !== 0x03) return notTls(`record version 0x${version.toString(16)} is not TLS`, AlertDescription.protocol_version);
      if (length === 0) return notTls('empty handshake record', AlertDescription.unexpected_message);
      if (length > MAX_PLAINTEXT) return notTls(`record of ${length} bytes exceeds 2^14`, AlertDescription.record_overflow);
      if (recordVersion === 0) recordVersion = version;
      if (data.length - at - RECORD_HEADER_LENGTH < length) return this.needMore(data.length);
      fragments.push(data.subarray(at + RECORD_HEADER_LENGTH, at + RECORD_HEADER_LENGTH + length));
      fragmentBytes += length;
      at += RECORD_HEADER_LENGTH + length;
      const hs = fragments.length === 1 ? fragments[0]! : Buffer.concat(fragments, fragmentBytes);
      if (hs.length < 4) continue;
      if (hs[0] !== HandshakeType.client_hello) {
        return notTls(`first handshake message is type ${hs[0]}, not ClientHello`, AlertDescription.unexpected_message);
      }
      const bodyLength = hs.readUIntBE(1, 3);
      if (bodyLength > MAX_CLIENT_HELLO) return notTls(`ClientHello of ${bodyLength} bytes is over the limit`, AlertDescription.record_overflow);
      if (hs.length < 4 + bodyLength) continue;
      message = hs.subarray(4, 4 + bodyLength);
      break;
    }
    try {
      return { kind: 'client-hello', hello: decodeClientHello(message), recordVersion };
    } catch (e) {
      const alert = e instanceof TlsError ? e.alert : AlertDescription.decode_error;
      return notTls(`ClientHello does not decode: ${e instanceof Error ? e.message : String(e)}`, alert);
    }
  }

  private needMore(total: number): PeekResult {
    // Records are at most 2^14 each and the message is bounded, so a bounded buffer suffices.
    if (total > MAX_CLIENT_HELLO + 8 * (RECORD_HEADER_LENGTH + 4)) {
      return notTls('no complete ClientHello within the size limit', AlertDescription.record_overflow);
    }
    return { kind: 'need-more' };
  }
}

function notTls(reason: string, alert: number): PeekResult {
  return { kind: 'not-tls', reason, alert };
}

export type SocketPeek =
  | { readonly kind: 'client-hello'; readonly hello: ClientHello; readonly recordVersion: number; readonly buffered: Buffer }
  | { readonly kind: 'not-tls'; readonly reason: string; readonly alert: number }
  | { readonly kind: 'timeout' }
  | { readonly kind: 'closed' };

/**
 * Reads from `socket` until a ClientHello is complete (or not TLS, or `timeoutMs` passes, or the
 * peer goes away). On success the socket is paused with nothing consumed beyond `buffered`.
 */
export function peekClientHello(socket: Socket, timeoutMs: number): Promise<SocketPeek> {
  const peeker = new ClientHelloPeeker();
  return new Promise((resolve) => {
    const done = (result: SocketPeek): void => {
      clearTimeout(timer);
      socket.pause();
      socket.removeListener('data', onData);
      socket.removeListener('end', onGone);
      socket.removeListener('close', onGone);
      socket.removeListener('error', onGone);
      resolve(result);
    };
    const onData = (chunk: Buffer): void => {
      const r = peeker.push(chunk);
      if (r.kind === 'client-hello') done({ ...r, buffered: peeker.buffered });
      else if (r.kind === 'not-tls') done(r);
    };
    const onGone = (): void => done({ kind: 'closed' });
    const timer = setTimeout(() => done({ kind: 'timeout' }), timeoutMs);
    socket.on('data', onData);
    socket.once('end', onGone);
    socket.once('close', onGone);
    socket.once('error', onGone);
    socket.resume();
  });
}

/** A plaintext fatal alert record, for refusing a client before any engine is involved. */
export function plaintextAlert(description: number, recordVersion = 0x0303): Buffer {
  const v = recordVersion >= 0x0301 && recordVersion <= 0x0303 ? recordVersion : 0x0303;
  return Buffer.from([ContentType.alert, v >> 8, v & 0xff, 0x00, 0x02, 2, description]);
}
