/**
 * Error values of the keyless protocol. Every failure that a key server must answer carries the
 * one-byte error code it answers with, so the server chooses the response in one place
 * (`errorCodeFor` in server.ts) and never drops a connection over a bad request.
 */
import { ErrorCode, errorCodeName } from './protocol.js';

/** Base class: a failure with the protocol error code that reports it. */
export class KeylessError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Malformed bytes: bad lengths, truncated items, duplicate or ill-sized items (format error). */
export class KeylessFormatError extends KeylessError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.formatError, message, options);
  }
}

/** A header whose major version is not 1 (version mismatch). */
export class KeylessVersionError extends KeylessError {
  constructor(readonly major: number, readonly minor: number) {
    super(ErrorCode.versionMismatch, `unsupported protocol version ${major}.${minor}`);
  }
}

/** A message longer than the configured body limit; the connection can still skip it. */
export class KeylessOversizedError extends KeylessError {
  constructor(readonly length: number, readonly limit: number) {
    super(ErrorCode.formatError, `message body of ${length} bytes exceeds the limit of ${limit}`);
  }
}

/**
 * An error response from a key server, seen by the client. `ski` (hex) names the key the request
 * was for, so "key not found" says which key is missing.
 */
export class KeylessRemoteError extends KeylessError {
  constructor(
    code: ErrorCode,
    readonly ski: string | undefined,
    readonly server: string,
    readonly opcode: string,
  ) {
    super(code, KeylessRemoteError.describe(code, ski, server, opcode));
  }

  private static describe(code: number, ski: string | undefined, server: string, opcode: string): string {
    if (code === ErrorCode.keyNotFound) {
      return `key server ${server} has no key with SKI ${ski ?? '(none sent)'} (key not found)`;
    }
    const key = ski === undefined ? '' : ` for key SKI ${ski}`;
    return `key server ${server} answered ${opcode}${key} with error: ${errorCodeName(code)}`;
  }
}

/** No answer in time, or the connection to the key server is not available. */
export class KeylessUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KeylessUnavailableError';
  }
}

/** A request that did not get its answer before its deadline. */
export class KeylessTimeoutError extends KeylessUnavailableError {
  constructor(message: string) {
    super(message);
    this.name = 'KeylessTimeoutError';
  }
}

/**
 * Refused without being sent: the connection already had its cap of requests waiting for answers
 * and its queue behind them was full (KeylessClientOptions.maxInFlightPerConnection,
 * maxQueuedPerConnection). The key server answers slower than requests arrive.
 */
export class KeylessOverloadedError extends KeylessUnavailableError {
  constructor(message: string) {
    super(message);
    this.name = 'KeylessOverloadedError';
  }
}

/**
 * The client was closed (KeylessClient.close) while the request waited for a connection or an
 * answer, or before it was made. An unavailable key server to callers that know only that.
 */
export class KeylessClosedError extends KeylessUnavailableError {
  constructor(server: string) {
    super(`keyless client for key server ${server} was closed`);
    this.name = 'KeylessClosedError';
  }
}

/**
 * The client's own configuration cannot work (KeylessClientOptions): a client certificate, key or
 * CA that node:tls cannot load, or a key that does not match the certificate. Thrown when the
 * client is made, never retried as if the key server were unreachable: nothing but new options fixes it.
 */
export class KeylessConfigError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KeylessConfigError';
  }
}
