/**
 * The record layer as a sans-IO object (RFC 8446 §5): splits the incoming byte stream into
 * records, removes protection, reassembles handshake messages across records and yields one
 * item at a time; on the way out it coalesces handshake messages, fragments to 2^14 bytes and
 * protects records. It owns the current read/write protection and enforces:
 *
 * - TLSPlaintext <= 2^14, TLSCiphertext <= 2^14 + 256, inner plaintext <= 2^14 + 1;
 * - no zero-length handshake or alert fragments, no interleaving of other content inside a
 *   fragmented handshake message;
 * - a handshake message's type and size are checked at its 4-byte header, before its body is
 *   buffered: a type the state machine does not expect now, or a body over its type's limit
 *   (`maxHandshakeBody`), ends the connection at once; a message may span at most
 *   MAX_HANDSHAKE_FRAGMENTS records, and its fragments are joined once, when it is complete;
 * - a handshake message that precedes a key change ends on a record boundary (`setReader`
 *   refuses to switch keys while a partial message or a further message is buffered);
 * - unprotected change_cipher_spec (exactly 0x01) only while the handshake allows it.
 */
import { ContentType, HandshakeType, MAX_PLAINTEXT, RECORD_HEADER_LENGTH } from './constants.js';
import { BadRecordMac, DecodeError, RecordOverflow, PeerMisbehaved } from './errors.js';
import { maxHandshakeBody } from './messages/handshake.js';
import type { RecordProtector, RecordUnprotector } from './record.js';
import { decodeAlert, type Alert } from './messages/alert.js';

/** One complete message handed to the state machine. */
export type InboundItem =
  | { readonly kind: 'handshake'; readonly type: number; readonly body: Uint8Array; readonly raw: Uint8Array }
  | { readonly kind: 'alert'; readonly alert: Alert }
  | { readonly kind: 'application_data'; readonly data: Uint8Array }
  | { readonly kind: 'change_cipher_spec' };

const EMPTY = new Uint8Array(0);

/** Bytes of the largest protected record, header included: the size of the join scratch buffer. */
const MAX_RECORD = RECORD_HEADER_LENGTH + MAX_PLAINTEXT + 256;

/**
 * Records one handshake message may span. Records carry up to 2^14 bytes, so the largest
 * Certificate we accept (256 KiB) needs 16 and a ClientHello at most 5; 1024 leaves room for
 * peers that fragment finely (a classical ClientHello in one-byte records still works; a
 * post-quantum one, ~1.4 KB, needs records of two bytes or more) while a
 * peer sending one-byte records is cut off after 1024 of them, not 2^18, and a message in
 * progress holds at most 1024 fragment views.
 */
export const MAX_HANDSHAKE_FRAGMENTS = 1024;

/** An HTTP/1 request or response line starts with one of these; HTTP/2 prior knowledge with "PRI ". */
const PLAIN_HTTP_START = /^(GET|HEAD|POST|PUT|DELETE|OPTIONS|PATCH|CONNECT|TRACE|PRI|HTTP\/)[ /.0-9]/;

/**
 * What a peer that spoke plain HTTP where TLS was expected should be told, or undefined. Its first
 * bytes read as a record header give a baffling "record version 69.84" ("GET /"), so an operator
 * reading the log gets the likely cause instead. Looks at no more than 8 bytes.
 */
export function plainHttpStart(data: Uint8Array, at = 0): string | undefined {
  const end = Math.min(data.length, at + 8);
  let text = '';
  for (let i = at; i < end; i++) {
    const b = data[i]!;
    if (b < 0x20 || b > 0x7e) break;
    text += String.fromCharCode(b);
  }
  if (!PLAIN_HTTP_START.test(text)) return undefined;
  return text.startsWith('HTTP/')
    ? `the peer answered in plain HTTP ("${text}..."), not TLS: is this its HTTP port?`
    : `the peer spoke plain HTTP ("${text}..."), not TLS, to a TLS port: use https://`;
}

export class RecordLayer {
  /**
   * Unconsumed received bytes: `input[inputPos..]` is parsed from; later chunks wait in `queued`
   * (uncopied). Parsing advances `inputPos` instead of slicing the chunk once per record.
   */
  private input: Uint8Array = EMPTY;
  private inputPos = 0;
  private queued: Uint8Array[] = [];
  private queuedLength = 0;
  /**
   * Reused for joining a protected record split across chunks: its plaintext comes out of the
   * decipher in a new buffer, so nothing keeps referring to the joined ciphertext.
   */
  private joinScratch: Buffer | undefined;
  /**
   * The received chunk whose last protected record was opened in place as application data, and
   * where that record's content ends in it: the next such record of the same chunk has its
   * content moved there (`compact`), so one chunk's records come out as one contiguous run.
   */
  private compactChunk: Uint8Array | undefined;
  private compactEnd = 0;
  /**
   * Handshake bytes of the current record not yet handed out (a view of the record): whole
   * messages are cut from it without copying.
   */
  private hsBuffer: Uint8Array = EMPTY;
  /**
   * A handshake message spread over several records: its fragments (views, not copies), joined
   * once when the last one arrives. `hsMessageLength` (header included) is 0 until the 4-byte
   * header is complete; the header may itself be split.
   */
  private hsParts: Uint8Array[] = [];
  private hsPartsLength = 0;
  private hsMessageLength = 0;
  private reader: RecordUnprotector | undefined;
  private writer: RecordProtector | undefined;
  private pendingHandshake: Uint8Array[] = [];
  private pendingHandshakeLength = 0;
  /** Pending output pieces; joined into one buffer by `takeOutput`. */
  private output: Uint8Array[] = [];
  private outputLength = 0;
  /**
   * How many more unprotected change_cipher_spec records are acceptable (middlebox
   * compatibility, RFC 8446 §5): one, between the first ClientHello and the peer's Finished.
   * The state machine sets it; a flood of CCS records is refused.
   */
  changeCipherSpecAllowance = 0;
  /**
   * Cleared by the connection when the handshake completes. Until then unprotected alerts are
   * acceptable and an empty application_data record is not.
   */
  handshaking = true;
  /**
   * Bytes of undecryptable records to drop silently: a server that rejects 0-RTT skips the
   * client's early data this way (RFC 8446 §4.2.10). Zero disables skipping.
   */
  skipEarlyDataBudget = 0;

  /**
   * @param expectsHandshake whether the state machine accepts a handshake message of this type
   *   now; asked at the message's header, so an unexpected one is refused before its body is
   *   buffered.
   */
  constructor(private readonly expectsHandshake: (type: number) => boolean = () => true) {}

  /**
   * Appends received bytes. Nothing is copied here: a chunk is parsed in place, and only a
   * record split across chunks is joined (by `fill`), copying just that record's bytes.
   */
  push(data: Uint8Array): void {
    if (data.length === 0) return;
    if (this.inputPos === this.input.length && this.queuedLength === 0) {
      this.input = data;
      this.inputPos = 0;
    } else {
      this.queued.push(data);
      this.queuedLength += data.length;
    }
  }

  /**
   * Makes `input[inputPos..]` hold at least `n` bytes (moving bytes from `queued`); false if
   * fewer arrived. A join goes into the reused `joinScratch` when `intoScratch` (`n` at most
   * MAX_RECORD), made only when a join is needed: most connections never split a record.
   */
  private fill(n: number, intoScratch = false): boolean {
    let have = this.input.length - this.inputPos;
    if (have >= n) return true;
    if (have + this.queuedLength < n) return false;
    if (have === 0) {
      this.input = this.queued.shift()!;
      this.inputPos = 0;
      this.compactChunk = undefined; // the chunk compacted into is no longer read: not pinned here
      this.queuedLength -= this.input.length;
      have = this.input.length;
      if (have >= n) return true;
    }
    const joined = intoScratch ? (this.joinScratch ??= Buffer.allocUnsafe(MAX_RECORD)) : Buffer.allocUnsafe(n);
    joined.set(this.inputPos === 0 ? this.input : this.input.subarray(this.inputPos), 0);
    let off = have;
    while (off < n) {
      const chunk = this.queued[0]!;
      const take = Math.min(chunk.length, n - off);
      joined.set(take === chunk.length ? chunk : chunk.subarray(0, take), off);
      off += take;
      this.queuedLength -= take;
      if (take === chunk.length) this.queued.shift();
      else this.queued[0] = chunk.subarray(take);
    }
    this.input = joined.length === n ? joined : joined.subarray(0, n);
    this.inputPos = 0;
    this.compactChunk = undefined;
    return true;
  }

  /** Bytes received and not yet consumed (for diagnostics and the no-hang checks). */
  get bufferedInput(): number {
    return this.input.length - this.inputPos + this.queuedLength + this.hsBuffer.length + this.hsPartsLength;
  }

  /** Whether handshake bytes are held: the rest of a record, or part of a message. */
  private get handshakeBuffered(): boolean {
    return this.hsBuffer.length > 0 || this.hsPartsLength > 0;
  }

  get hasReadProtection(): boolean {
    return this.reader !== undefined;
  }

  get hasWriteProtection(): boolean {
    return this.writer !== undefined;
  }

  get writeSealer(): RecordProtector | undefined {
    return this.writer;
  }

  /**
   * The next complete item, or undefined when more bytes are needed. Throws a TlsError on any
   * violation; the connection maps it to an alert.
   */
  next(): InboundItem | undefined {
    for (;;) {
      const msg = this.takeHandshakeMessage();
      if (msg) return msg;
      const record = this.takeRecord();
      if (!record) return undefined;
      const item = this.dispatchRecord(record.type, record.content);
      if (item) return item;
    }
  }

  private takeRecord(): { readonly type: number; readonly content: Uint8Array } | undefined {
    if (!this.fill(RECORD_HEADER_LENGTH)) return undefined;
    let buf = this.input;
    let start = this.inputPos;
    const type = buf[start]!;
    const length = (buf[start + 3]! << 8) | buf[start + 4]!;
    // legacy_record_version is ignored except that it must look like TLS (major version 3).
    if (buf[start + 1] !== 0x03) {
      const http = plainHttpStart(buf, start);
      throw new DecodeError(`record version ${buf[start + 1]}.${buf[start + 2]} is not TLS${http ? `: ${http}` : ''}`);
    }
    if (length === 0 && type === ContentType.application_data && this.handshaking) {
      // §5: application data before the handshake completes is unexpected_message, and an empty
      // record is never the early data we skip (0-RTT records are AEAD output, at least a tag
      // long). Skipped, it would cost nothing and nothing would end the handshake but its timeout.
      throw new PeerMisbehaved('EmptyApplicationDataDuringHandshake', 'empty application_data record during the handshake');
    }
    // TLS 1.3 protects records as application_data; TLS 1.2 protects every type once keys are set.
    const protectedRecord = this.reader !== undefined && (type === ContentType.application_data || !this.reader.hidesContentType);
    if (length > (protectedRecord ? MAX_PLAINTEXT + 256 : MAX_PLAINTEXT)) {
      throw new RecordOverflow(`record of ${length} bytes`);
    }
    const end = RECORD_HEADER_LENGTH + length;
    if (!this.fill(end, protectedRecord)) return undefined;
    buf = this.input;
    start = this.inputPos;
    if (start + end === buf.length) {
      // Chunk used up: drop it now (an idle connection should not pin its last 64 KiB read).
      this.input = EMPTY;
      this.inputPos = 0;
    } else {
      this.inputPos = start + end;
    }

    if (protectedRecord) {
      const reader = this.reader!;
      if (this.skipEarlyDataBudget > 0) {
        try {
          const opened = reader.openIn(buf, start, start + end);
          this.skipEarlyDataBudget = 0; // the first record that opens ends the skipping
          if (opened.type === ContentType.change_cipher_spec) throw new PeerMisbehaved('ProtectedChangeCipherSpec', 'protected change_cipher_spec');
          return opened;
        } catch (e) {
          if (!(e instanceof BadRecordMac) || length > this.skipEarlyDataBudget) throw e;
          this.skipEarlyDataBudget -= length;
          return this.takeRecord();
        }
      }
      // A record that lies whole in a received chunk is opened over its own ciphertext: the
      // chunk is ours (`push`), and no slab space is taken. A joined one is in the scratch buffer,
      // which the next join overwrites: it goes to the slab.
      const inPlace = buf.buffer !== this.joinScratch?.buffer;
      const opened = reader.openIn(buf, start, start + end, inPlace);
      if (opened.type === ContentType.change_cipher_spec) throw new PeerMisbehaved('ProtectedChangeCipherSpec', 'protected change_cipher_spec');
      if (inPlace && opened.type === ContentType.application_data && within(opened.content, buf)) {
        return { type: opened.type, content: this.compact(buf, opened.content) };
      }
      // A used-up chunk is not kept for compaction by a record that was not compacted into it.
      if (this.input !== buf) this.compactChunk = undefined;
      return opened;
    }
    const payload = buf.subarray(start + RECORD_HEADER_LENGTH, start + end);
    if (type === ContentType.change_cipher_spec) {
      // §5: an unprotected CCS of exactly 0x01, only while the handshake is in progress.
      if (this.changeCipherSpecAllowance <= 0 || length !== 1 || payload[0] !== 0x01 || this.handshakeBuffered) {
        throw new PeerMisbehaved('UnexpectedChangeCipherSpec', 'unexpected change_cipher_spec');
      }
      this.changeCipherSpecAllowance--;
      return { type, content: payload };
    }
    if (this.reader) {
      if (type === ContentType.alert && this.handshaking) return { type, content: payload };
      throw new PeerMisbehaved('UnprotectedRecordAfterKeyChange', `unprotected record of type ${type} after keys were set`);
    }
    if (type === ContentType.application_data) {
      // After a HelloRetryRequest the client's 0-RTT records arrive before ClientHello2 (§4.2.10).
      if (this.skipEarlyDataBudget >= length) {
        this.skipEarlyDataBudget -= length;
        return this.takeRecord();
      }
      throw new PeerMisbehaved('ApplicationDataBeforeHandshakeComplete', 'application data before keys');
    }
    if (type !== ContentType.handshake && type !== ContentType.alert) {
      throw new PeerMisbehaved('UnknownRecordType', `record of unknown type ${type}`);
    }
    return { type, content: payload };
  }

  /**
   * Moves `content` (opened in place in `chunk`) to where the previous application data opened
   * in the same chunk ends, and returns it there. Everything between is consumed: that record's
   * tag and content type, the records in between (whose content was copied out), this record's
   * header. The reader of the previous content (an adapter merging adjacent views, e.g. the
   * sidecar's) gets one contiguous view per chunk; the move is one memmove of the content.
   */
  private compact(chunk: Uint8Array, content: Buffer): Buffer {
    let at = content.byteOffset - chunk.byteOffset;
    if (this.compactChunk === chunk && this.compactEnd < at) {
      chunk.copyWithin(this.compactEnd, at, at + content.length);
      at = this.compactEnd;
      content = Buffer.from(chunk.buffer, chunk.byteOffset + at, content.length);
    }
    // A used-up chunk (takeRecord dropped it from `input`) is not kept referenced here.
    this.compactChunk = this.input === chunk ? chunk : undefined;
    this.compactEnd = at + content.length;
    return content;
  }

  private dispatchRecord(type: number, content: Uint8Array): InboundItem | undefined {
    if (type !== ContentType.handshake && this.handshakeBuffered) {
      throw new PeerMisbehaved('InterleavedHandshakeMessage', 'record interleaved within a fragmented handshake message');
    }
    switch (type) {
      case ContentType.handshake:
        if (content.length === 0) throw new PeerMisbehaved('EmptyHandshakeFragment', 'zero-length handshake fragment');
        // hsBuffer is empty here: takeHandshakeMessage used it up or moved it into hsParts.
        this.hsBuffer = content;
        return undefined;
      case ContentType.alert:
        if (content.length === 0) throw new PeerMisbehaved('EmptyAlertFragment', 'zero-length alert fragment');
        return { kind: 'alert', alert: decodeAlert(content) };
      case ContentType.application_data:
        return { kind: 'application_data', data: content };
      case ContentType.change_cipher_spec:
        return { kind: 'change_cipher_spec' };
      default:
        throw new PeerMisbehaved('UnknownRecordType', `record of unknown type ${type}`);
    }
  }

  /**
   * The next complete handshake message from `hsBuffer`, or undefined after moving what is
   * left of it into `hsParts`. Each received byte is looked at once: a message split across
   * records is collected fragment by fragment and joined once (the old concat per record made
   * 250,000 one-byte records cost seconds of CPU).
   */
  private takeHandshakeMessage(): InboundItem | undefined {
    let buf = this.hsBuffer;
    if (buf.length === 0) return undefined;
    if (this.hsParts.length === 0) {
      if (buf.length >= 4) {
        const end = 4 + this.checkHandshakeHeader(buf[0]!, (buf[1]! << 16) | (buf[2]! << 8) | buf[3]!);
        if (buf.length >= end) {
          // The common case, a whole message inside the record: handed out as a view, no copy.
          const raw = buf.length === end ? buf : buf.subarray(0, end);
          this.hsBuffer = buf.length === end ? EMPTY : buf.subarray(end);
          return { kind: 'handshake', type: buf[0]!, body: raw.subarray(4), raw };
        }
        this.hsMessageLength = end;
      }
      // The message goes on in later records.
      this.hsParts.push(buf);
      this.hsPartsLength = buf.length;
      this.hsBuffer = EMPTY;
      return undefined;
    }
    if (this.hsParts.length >= MAX_HANDSHAKE_FRAGMENTS) {
      throw new PeerMisbehaved('TooManyHandshakeFragments', `handshake message spread over more than ${MAX_HANDSHAKE_FRAGMENTS} records`);
    }
    if (this.hsMessageLength === 0) {
      if (this.hsPartsLength + buf.length < 4) {
        this.hsParts.push(buf);
        this.hsPartsLength += buf.length;
        this.hsBuffer = EMPTY;
        return undefined;
      }
      const at = (i: number): number => this.headerByte(i, buf);
      this.hsMessageLength = 4 + this.checkHandshakeHeader(at(0), (at(1) << 16) | (at(2) << 8) | at(3));
    }
    const take = Math.min(this.hsMessageLength - this.hsPartsLength, buf.length);
    this.hsParts.push(take === buf.length ? buf : buf.subarray(0, take));
    this.hsPartsLength += take;
    buf = take === buf.length ? EMPTY : buf.subarray(take);
    this.hsBuffer = buf;
    if (this.hsPartsLength < this.hsMessageLength) return undefined;
    const raw = Buffer.concat(this.hsParts, this.hsPartsLength);
    this.hsParts = [];
    this.hsPartsLength = 0;
    this.hsMessageLength = 0;
    return { kind: 'handshake', type: raw[0]!, body: raw.subarray(4), raw };
  }

  /** Byte `i` (< 4) of the message in `hsParts`, continued by `next`: for a split header only. */
  private headerByte(i: number, next: Uint8Array): number {
    for (const part of this.hsParts) {
      if (i < part.length) return part[i]!;
      i -= part.length;
    }
    return next[i]!;
  }

  /** Refuses a message at its header: a type not expected now, or a body over its type's limit. Returns the body length. */
  private checkHandshakeHeader(type: number, length: number): number {
    const max = maxHandshakeBody(type);
    if (max === 0 || !this.expectsHandshake(type)) throw new PeerMisbehaved('UnexpectedHandshakeMessage', `unexpected handshake message of type ${type}`);
    if (length > max && type === HandshakeType.client_hello) throw new PeerMisbehaved('OversizedClientHello', `ClientHello declares ${length} bytes, more than a well-formed one can hold (${max})`);
    if (length > max) throw new RecordOverflow(`handshake message of type ${type} declares ${length} bytes, over its limit of ${max}`);
    return length;
  }

  /**
   * Switches read protection. A handshake message before a key change must end on a record
   * boundary (RFC 8446 §5.1), so any buffered handshake bytes are an error.
   */
  setReader(opener: RecordUnprotector): void {
    if (this.handshakeBuffered) throw new PeerMisbehaved('KeyChangeNotOnRecordBoundary', 'handshake data not aligned with a key change');
    this.reader = opener;
  }

  /** Switches write protection after flushing handshake messages queued under the old one. */
  setWriter(sealer: RecordProtector): void {
    this.flushHandshake();
    this.writer = sealer;
  }

  /** Queues a handshake message; messages are coalesced into as few records as possible. */
  queueHandshake(message: Uint8Array): void {
    this.pendingHandshake.push(message);
    this.pendingHandshakeLength += message.length;
  }

  /** Emits queued handshake messages as records under the current write protection. */
  flushHandshake(): void {
    if (this.pendingHandshakeLength === 0) return;
    const all =
      this.pendingHandshake.length === 1 ? this.pendingHandshake[0]! : Buffer.concat(this.pendingHandshake, this.pendingHandshakeLength);
    this.pendingHandshake = [];
    this.pendingHandshakeLength = 0;
    this.writeFragments(ContentType.handshake, all);
  }

  /** Writes content of one type, fragmented into records of at most 2^14 bytes. */
  writeFragments(type: number, data: Uint8Array): void {
    if (type !== ContentType.handshake) this.flushHandshake();
    for (let off = 0; off < data.length; off += MAX_PLAINTEXT) {
      const chunk = data.subarray(off, Math.min(off + MAX_PLAINTEXT, data.length));
      this.writeRecord(type, chunk);
    }
  }

  private writeRecord(type: number, content: Uint8Array): void {
    if (this.writer) {
      this.outputLength += this.writer.sealInto(this.output, type, content);
      return;
    }
    // Unprotected records are rare (hellos, early alerts): one buffer per record keeps every
    // output chunk a whole number of records.
    const rec = Buffer.allocUnsafe(RECORD_HEADER_LENGTH + content.length);
    rec[0] = type;
    rec[1] = 0x03;
    rec[2] = 0x03;
    rec[3] = content.length >>> 8;
    rec[4] = content.length & 0xff;
    rec.set(content, RECORD_HEADER_LENGTH);
    this.pushOutput(rec);
  }

  private pushOutput(chunk: Uint8Array): void {
    this.output.push(chunk);
    this.outputLength += chunk.length;
  }

  /** The dummy change_cipher_spec of middlebox compatibility mode (§D.4): always unprotected. */
  writeChangeCipherSpec(): void {
    this.flushHandshake();
    this.pushOutput(Uint8Array.of(ContentType.change_cipher_spec, 0x03, 0x03, 0, 1, 1));
  }

  /** Writes a ClientHello record with legacy_record_version 0x0301 for compatibility (§5.1). */
  writeInitialClientHello(message: Uint8Array): void {
    if (message.length > MAX_PLAINTEXT) {
      this.queueHandshake(message);
      this.flushHandshake();
      return;
    }
    const rec = Buffer.allocUnsafe(RECORD_HEADER_LENGTH + message.length);
    rec[0] = ContentType.handshake;
    rec[1] = 0x03;
    rec[2] = 0x01;
    rec[3] = message.length >>> 8;
    rec[4] = message.length & 0xff;
    rec.set(message, RECORD_HEADER_LENGTH);
    this.pushOutput(rec);
  }

  /**
   * Bytes to send, in order; empty array when there is nothing to send. Joined (the default):
   * one buffer of whole records. Not joined: the pieces as sealed (header, ciphertext, tag of
   * each record), whose concatenation is whole records, for a writev without the copy.
   */
  takeOutput(join = true): Uint8Array[] {
    this.flushHandshake();
    const out = this.output;
    const n = this.outputLength;
    this.output = [];
    this.outputLength = 0;
    if (out.length <= 1 || !join) return out;
    return [Buffer.concat(out, n)];
  }
}

/**
 * Whether `content` lies inside `chunk`, i.e. was opened over its own ciphertext. The same
 * ArrayBuffer is not enough: an opener that ignores `inPlace` writes into a slab, and a chunk fed
 * from that slab (an in-process peer's sealed output) shares its ArrayBuffer.
 */
function within(content: Uint8Array, chunk: Uint8Array): boolean {
  return content.buffer === chunk.buffer && content.byteOffset >= chunk.byteOffset && content.byteOffset + content.length <= chunk.byteOffset + chunk.length;
}
