/**
 * Reads the client's first flight far enough to see its ClientHello, without consuming it: the
 * bytes are kept so that whichever TLS engine the router picks gets the stream from byte 0.
 *
 * `ClientHelloPeeker` is sans-IO: push chunks, get `need-more`, the decoded ClientHello, or why
 * the bytes are not a TLS handshake. It reassembles a ClientHello split across records (large
 * post-quantum key shares) with the limits of src/tls's record layer: records of at most 2^14
 * bytes, a ClientHello of at most MAX_CLIENT_HELLO bytes spread over at most
 * MAX_HANDSHAKE_FRAGMENTS records. Decoding uses src/tls's codec, so what the router sees is
 * exactly what our stack will see.
 *
 * The work is linear in the bytes received: each chunk is appended once, each record header is
 * parsed once it is complete, and the ClientHello's fragments are joined once. (Re-parsing from
 * byte 0 on every chunk, re-joining the fragments at every record, let six clients sending
 * one-byte records stall the event loop for seconds, /healthz included, and the handshake
 * deadline cannot fire during a synchronous loop.)
 *
 * The connection object (connection.ts) pushes each socket read and keeps the deadline.
 */
import { AlertDescription } from '../tls/alerts.js';
import { ContentType, HandshakeType, MAX_PLAINTEXT, RECORD_HEADER_LENGTH } from '../tls/constants.js';
import { TlsError } from '../tls/errors.js';
import { decodeClientHello, type ClientHello } from '../tls/messages/client-hello.js';
import { maxHandshakeBody } from '../tls/messages/handshake.js';
import { MAX_HANDSHAKE_FRAGMENTS, plainHttpStart } from '../tls/record-layer.js';

/** Our stack's ClientHello body limit (64 KiB, far above any real one): the router refuses no more than the stack would. */
export const MAX_CLIENT_HELLO = maxHandshakeBody(HandshakeType.client_hello);

export type PeekResult =
  | { readonly kind: 'need-more' }
  | { readonly kind: 'client-hello'; readonly hello: ClientHello; readonly body: Uint8Array; readonly recordVersion: number }
  | { readonly kind: 'not-tls'; readonly reason: string; readonly alert: number };

const NEED_MORE: PeekResult = { kind: 'need-more' };

export class ClientHelloPeeker {
  /**
   * Everything received, contiguous in `data[0, length)`. The first chunk is kept as it is;
   * later ones are copied into a buffer grown by doubling, so appending stays linear overall.
   */
  private data: Buffer = Buffer.alloc(0);
  private length = 0;
  /** Offset of the next record header in `data`. */
  private next = 0;
  /** The ClientHello's fragments as [start, end) offsets into `data` (offsets survive growth). */
  private readonly fragments: number[] = [];
  private messageBytes = 0;
  /** Header plus body length of the ClientHello, 0 until its 4-byte header is complete. */
  private messageLength = 0;
  private recordVersion = 0;
  private settled: PeekResult | undefined;

  /** Everything received so far, to replay into the chosen engine. */
  get buffered(): Buffer {
    return this.length === this.data.length ? this.data : this.data.subarray(0, this.length);
  }

  push(chunk: Uint8Array): PeekResult {
    if (this.settled) return this.settled;
    this.append(chunk);
    const result = this.parse();
    if (result.kind !== 'need-more') this.settled = result;
    return result;
  }

  private append(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    if (this.length === 0) {
      this.data = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      this.length = chunk.length;
      return;
    }
    // A kept first chunk is never written into: its length equals `length`, so it is replaced here.
    if (this.length + chunk.length > this.data.length) {
      const grown = Buffer.allocUnsafe(Math.max(2 * this.data.length, this.length + chunk.length));
      this.data.copy(grown, 0, 0, this.length);
      this.data = grown;
    }
    this.data.set(chunk, this.length);
    this.length += chunk.length;
  }

  /** Consumes the complete records after `next`; each is looked at once. */
  private parse(): PeekResult {
    const data = this.data;
    for (;;) {
      const at = this.next;
      if (this.length - at < RECORD_HEADER_LENGTH) return NEED_MORE;
      const type = data[at]!;
      const version = data.readUInt16BE(at + 1);
      const length = data.readUInt16BE(at + 3);
      if (type !== ContentType.handshake) {
        // An SSLv2-compatible hello (0x80 ...) or plain HTTP land here too.
        const http = at === 0 ? plainHttpStart(data, 0) : undefined;
        return notTls(http ?? `first record is not a handshake record (content type ${type})`, AlertDescription.unexpected_message);
      }
      if (version >> 8 !== 0x03) return notTls(`record version 0x${version.toString(16)} is not TLS`, AlertDescription.protocol_version);
      if (length === 0) return notTls('empty handshake record', AlertDescription.unexpected_message);
      if (length > MAX_PLAINTEXT) return notTls(`record of ${length} bytes exceeds 2^14`, AlertDescription.record_overflow);
      if (this.recordVersion === 0) this.recordVersion = version;
      if (this.length - at - RECORD_HEADER_LENGTH < length) return NEED_MORE;
      if (this.fragments.length / 2 >= MAX_HANDSHAKE_FRAGMENTS) {
        return notTls(`ClientHello spread over more than ${MAX_HANDSHAKE_FRAGMENTS} records`, AlertDescription.unexpected_message);
      }
      this.next = at + RECORD_HEADER_LENGTH + length;
      this.fragments.push(at + RECORD_HEADER_LENGTH, this.next);
      this.messageBytes += length;
      if (this.messageLength === 0) {
        if (this.messageBytes < 4) continue;
        const first = this.messageByte(0);
        if (first !== HandshakeType.client_hello) {
          return notTls(`first handshake message is type ${first}, not ClientHello`, AlertDescription.unexpected_message);
        }
        const bodyLength = (this.messageByte(1) << 16) | (this.messageByte(2) << 8) | this.messageByte(3);
        if (bodyLength > MAX_CLIENT_HELLO) return notTls(`ClientHello of ${bodyLength} bytes is over the limit`, AlertDescription.record_overflow);
        this.messageLength = 4 + bodyLength;
      }
      if (this.messageBytes >= this.messageLength) return this.decode(this.joinMessage());
    }
  }

  /** Byte `i` of the handshake stream (only for the 4-byte header: at most four fragments are walked). */
  private messageByte(i: number): number {
    const f = this.fragments;
    for (let k = 0; k < f.length; k += 2) {
      const size = f[k + 1]! - f[k]!;
      if (i < size) return this.data[f[k]! + i]!;
      i -= size;
    }
    return 0;
  }

  /** The ClientHello's bytes (header included): a view when it sits in one record, else one copy. */
  private joinMessage(): Buffer {
    const f = this.fragments;
    if (f[1]! - f[0]! >= this.messageLength) return this.data.subarray(f[0]!, f[0]! + this.messageLength);
    const out = Buffer.allocUnsafe(this.messageLength);
    let filled = 0;
    for (let k = 0; k < f.length && filled < out.length; k += 2) {
      const take = Math.min(f[k + 1]! - f[k]!, out.length - filled);
      this.data.copy(out, filled, f[k]!, f[k]! + take);
      filled += take;
    }
    return out;
  }

  private decode(message: Buffer): PeekResult {
    try {
      const body = message.subarray(4);
      return { kind: 'client-hello', hello: decodeClientHello(body), body, recordVersion: this.recordVersion };
    } catch (e) {
      const alert = e instanceof TlsError ? e.alert : AlertDescription.decode_error;
      return notTls(`ClientHello does not decode: ${e instanceof Error ? e.message : String(e)}`, alert);
    }
  }
}

function notTls(reason: string, alert: number): PeekResult {
  return { kind: 'not-tls', reason, alert };
}

/** A plaintext fatal alert record, for refusing a client before any engine is involved. */
export function plaintextAlert(description: number, recordVersion = 0x0303): Buffer {
  const v = recordVersion >= 0x0301 && recordVersion <= 0x0303 ? recordVersion : 0x0303;
  return Buffer.from([ContentType.alert, v >> 8, v & 0xff, 0x00, 0x02, 2, description]);
}
