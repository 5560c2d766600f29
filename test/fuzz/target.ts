/**
 * What a fuzz target is: bytes in; the code under test must return, or throw one of the
 * project's own typed errors (`expected`). Anything else (TypeError, RangeError, an error of
 * the wrong class, a failed oracle assertion, an unhandled rejection, a hang) is a crash.
 */
import { TlsError } from '../../src/tls/errors.js';

export interface FuzzTarget {
  /** One line: what the bytes are and what is checked. */
  readonly description: string;
  /** Largest input the mutator makes. */
  readonly maxLength: number;
  /** Tokens the mutator inserts (TLS code points, keyless tags). */
  readonly dictionary?: readonly Uint8Array[];
  /** Path prefixes under src/ whose coverage the summary reports, e.g. 'src/tls/messages/'. */
  readonly modules: readonly string[];
  /** One-off preparation (keys, certificates), before the first input. */
  setup?(): Promise<void>;
  /** Runs one input. */
  run(data: Uint8Array): void | Promise<void>;
  /** Whether `error`, thrown by `run`, is an acceptable answer to bad input. */
  expected(error: unknown): boolean;
}

/** The TLS stack's own errors (src/tls/errors.ts); InvalidDelegatedCredential is one of them. */
export function isTlsError(error: unknown): boolean {
  return error instanceof TlsError;
}

/** An oracle failure: always a crash, whatever the target accepts. */
export class OracleFailure extends Error {
  override name = 'OracleFailure';
}

export function check(condition: boolean, message: string): asserts condition {
  if (!condition) throw new OracleFailure(message);
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/**
 * Cuts `data` into chunks at offsets drawn from its first byte, so that one input also tests the
 * reassembly of a stream split anywhere: returns [chunks of data[1..]].
 */
export function chunked(data: Uint8Array): Uint8Array[] {
  if (data.length === 0) return [];
  const plan = data[0]!;
  const rest = data.subarray(1);
  if (plan < 128) return [rest];
  const size = 1 + (plan & 0x3f);
  const out: Uint8Array[] = [];
  for (let at = 0; at < rest.length; at += size) out.push(rest.subarray(at, at + size));
  return out;
}

/**
 * JSON of a decoded value with byte arrays as hex and object keys sorted: compares decodings
 * whatever their buffer types and the order in which fields were set.
 */
export function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (ArrayBuffer.isView(v)) return `hex:${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex')}`;
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      const o = v as Record<string, unknown>;
      if (o.type === 'Buffer' && Array.isArray(o.data)) return `hex:${Buffer.from(o.data as number[]).toString('hex')}`;
      return Object.fromEntries(Object.keys(o).sort().map((k) => [k, o[k]]));
    }
    return v;
  });
}
