// The body of a watch: one JSON object per line, for as long as the watch lasts. Network bytes
// are hostile: a line is refused beyond a byte cap (a watch event is one object, and the
// apiserver refuses objects over ~1.5 MiB in etcd), and the work is linear: each byte is searched
// for a newline once, a partial line is kept as the list of chunks it arrived in and joined once
// when its newline comes (never a buffer regrown per chunk).

/** Above any object the apiserver stores (etcd's default request limit is 1.5 MiB) plus its envelope. */
export const MAX_WATCH_LINE_BYTES = 4 * 1024 * 1024;

export class LineTooLong extends Error {
  override readonly name = 'LineTooLong';
}

export class JsonLineSplitter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(
    private readonly onLine: (line: Buffer) => void,
    private readonly maxLineBytes = MAX_WATCH_LINE_BYTES,
  ) {}

  /** Feeds a chunk; calls onLine for every line it completes; throws LineTooLong past the cap. */
  push(chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl < 0) break;
      const length = this.pendingBytes + (nl - start);
      if (length > this.maxLineBytes) throw this.tooLong(length);
      const line = this.pendingBytes === 0 ? chunk.subarray(start, nl) : Buffer.concat([...this.pending, chunk.subarray(start, nl)], length);
      this.pending = [];
      this.pendingBytes = 0;
      start = nl + 1;
      if (line.length > 0 && !(line.length === 1 && line[0] === 0x0d)) this.onLine(line);
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      if (this.pendingBytes + rest.length > this.maxLineBytes) throw this.tooLong(this.pendingBytes + rest.length);
      this.pending.push(rest);
      this.pendingBytes += rest.length;
    }
  }

  /** Bytes of an unfinished line held (a watch that ends with one lost a truncated event). */
  get held(): number {
    return this.pendingBytes;
  }

  private tooLong(bytes: number): LineTooLong {
    this.pending = [];
    this.pendingBytes = 0;
    return new LineTooLong(`a watch event of more than ${this.maxLineBytes} bytes (${bytes} so far without a newline): refused`);
  }
}
