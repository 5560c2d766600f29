/**
 * The ClientHello → ServerHello path: a sans-IO ServerConnection (src/tls/server.ts, and the
 * TLS 1.2 handshake of src/tls/tls12 for hellos that negotiate it) fed fuzzed bytes. Byte 0 picks the server (bit 0: plain with delegated credentials / ALPN and
 * CertificateRequest) and the framing (bit 1: the rest is the payload of handshake records we
 * frame, else whole records as they come); byte 1 how the bytes are cut into chunks.
 *
 * `feed` must never throw, and a failure must be one of the stack's typed errors: an
 * internal_error caused by anything else (TypeError, RangeError, ...) is a crash.
 */
import { InternalError, TlsError } from '../../../src/tls/errors.js';
import { ServerConnection } from '../../../src/tls/server.js';
import { check, chunked, type FuzzTarget } from '../target.js';
import { fuzzServers, type FuzzServers } from './server-setup.js';
import { TLS_DICTIONARY } from './tls-dictionary.js';

let servers: FuzzServers | undefined;

/** The payload as handshake records of at most 2^14 bytes. */
function frame(payload: Uint8Array): Uint8Array {
  const out: Uint8Array[] = [];
  for (let at = 0; at < payload.length; at += 16384) {
    const part = payload.subarray(at, at + 16384);
    out.push(Uint8Array.of(22, 3, 3, part.length >> 8, part.length & 0xff), part);
  }
  return Buffer.concat(out);
}

function checkFailure(conn: ServerConnection): void {
  const failure = conn.failure;
  if (failure instanceof InternalError && !(failure.cause instanceof TlsError)) {
    const cause = failure.cause instanceof Error ? (failure.cause.stack ?? failure.cause.message) : String(failure.cause ?? failure.message);
    check(false, `internal_error on peer input: ${cause}`);
  }
}

export const target: FuzzTarget = {
  description: 'mode byte + chunking byte + the client\'s bytes (whole records, or handshake payload we frame)',
  maxLength: 20000,
  dictionary: TLS_DICTIONARY,
  modules: ['src/tls/server', 'src/tls/connection', 'src/tls/record-layer', 'src/tls/messages/', 'src/tls/key-exchange', 'src/tls/session', 'src/tls/delegated/hooks', 'src/tls/version', 'src/tls/tls12/'],
  async setup() {
    servers = await fuzzServers();
  },
  async run(data) {
    if (data.length < 2) return;
    const mode = data[0]!;
    const conn = new ServerConnection(mode & 1 ? servers!.strict : servers!.plain);
    const rest = data.subarray(1);
    const stream = mode & 2 ? Buffer.concat([rest.subarray(0, 1), frame(rest.subarray(1))]) : rest;
    for (const chunk of chunked(stream)) {
      let progress = conn.feed(chunk);
      while (progress.waitFor) {
        await progress.waitFor;
        progress = conn.poll();
      }
      checkFailure(conn);
    }
  },
  expected: () => false,
};
