// A bearer token read from a file that is rewritten while we run: a pod's projected service
// account token is replaced by the kubelet well before it expires (1 h by default), and the
// apiserver refuses the old one once it has. Like client-go's cached file token source, the file
// is read again when the last read is older than a minute; a failed re-read keeps the last token
// (the kubelet writes by atomic rename, so a failure is a transient one) and is said once.
import { readFileSync } from 'node:fs';

export const TOKEN_REREAD_MS = 60_000;

export class TokenFile {
  private token: string | undefined;
  private readAt = -Infinity;
  private warned = false;

  constructor(
    readonly path: string,
    private readonly now: () => number = Date.now,
    private readonly warn: (message: string) => void = () => undefined,
    private readonly rereadMs = TOKEN_REREAD_MS,
  ) {}

  /** The current token; throws (saying which file) only when it was never readable. */
  get(): string {
    const now = this.now();
    if (this.token !== undefined && now - this.readAt < this.rereadMs) return this.token;
    try {
      const text = readFileSync(this.path, 'utf8').trim();
      if (text === '') throw new Error('the file is empty');
      this.token = text;
      this.readAt = now;
      this.warned = false;
    } catch (err) {
      if (this.token === undefined) throw new Error(`cannot read the bearer token file ${this.path}: ${(err as Error).message}`);
      if (!this.warned) this.warn(`cannot re-read the bearer token file ${this.path} (${(err as Error).message}); using the token read before`);
      this.warned = true;
      this.readAt = now; // try again in a minute, not on every request
    }
    return this.token;
  }
}
