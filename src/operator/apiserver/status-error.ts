// A request the apiserver refused, as a typed error. The apiserver answers a failed request with
// a metav1.Status body ({kind: "Status", code, reason, message}); `code` and `statusCode` are the
// HTTP status, which is what statusCodeOf() (informer.ts) and every caller's 404/409/410 test read.

/** The fields of a metav1.Status the operator reads. */
export interface ApiStatus {
  kind?: string;
  code?: number;
  reason?: string;
  message?: string;
  details?: unknown;
}

export class ApiStatusError extends Error {
  override readonly name = 'ApiStatusError';
  /** The HTTP status (the Status body's `code` when it has one). */
  readonly code: number;
  /** Alias of `code`, as client-node's and node's errors spell it. */
  readonly statusCode: number;
  /** The Status reason: NotFound, Conflict, AlreadyExists, Gone, Forbidden, ... ('' when the body was not a Status). */
  readonly reason: string;
  constructor(
    readonly method: string,
    readonly path: string,
    httpStatus: number,
    readonly status: ApiStatus | undefined,
  ) {
    const code = typeof status?.code === 'number' && status.code > 0 ? status.code : httpStatus;
    const reason = typeof status?.reason === 'string' ? status.reason : '';
    const message = typeof status?.message === 'string' ? status.message : '(no Status in the response)';
    super(`${method} ${path}: ${code}${reason ? ` ${reason}` : ''}: ${message}`);
    this.code = code;
    this.statusCode = code;
    this.reason = reason;
  }
}

/** Reads a response body as a Status, or undefined when it is not one (a proxy's HTML page, garbage). */
export function parseStatus(body: Buffer | string): ApiStatus | undefined {
  try {
    const parsed = JSON.parse(typeof body === 'string' ? body : body.toString('utf8')) as unknown;
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return undefined;
    const s = parsed as Record<string, unknown>;
    if (s['kind'] !== 'Status') return undefined;
    return {
      kind: 'Status',
      ...(typeof s['code'] === 'number' ? { code: s['code'] } : {}),
      ...(typeof s['reason'] === 'string' ? { reason: s['reason'] } : {}),
      ...(typeof s['message'] === 'string' ? { message: s['message'] } : {}),
      ...(s['details'] !== undefined ? { details: s['details'] } : {}),
    };
  } catch {
    return undefined;
  }
}
