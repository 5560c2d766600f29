// The operator's apiserver client: JSON over node:http(s), the handful of calls the operator makes
// (kube.ts, leader.ts), and nothing generated. Why not @kubernetes/client-node: importing it costs
// a process ~72 MiB of RSS and ~22 MiB of V8 heap before a single object is cached
// (bench/results/operator.md), more than the operator's caches of 10,000 objects.
//
// Rules (docs/architecture.md, "The operator's apiserver client"):
// - every response is bounded: a unary body by MAX_RESPONSE_BYTES, a watch event by
//   MAX_WATCH_LINE_BYTES (json-lines.ts); a unary request by a deadline, a watch by an idle limit;
// - a refusal is an ApiStatusError (status-error.ts) carrying the HTTP status as `code` and
//   `statusCode`, which statusCodeOf() reads;
// - unary requests share keep-alive connections; watches use their own (auth.ts).
import type { Agent as HttpAgent, ClientRequest, IncomingMessage } from 'node:http';
import { request as httpRequest } from '../node-http.js';
import { request as httpsRequest } from 'node:https';
import type { ApiAuth } from './auth.js';
import { JsonLineSplitter, MAX_WATCH_LINE_BYTES } from './json-lines.js';
import { ApiStatusError, parseStatus } from './status-error.js';

/** A list page of 500 Secrets is a few MiB; this only stops a runaway body. */
export const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;
/** A unary request that has not completed by then fails (client-go sets none by default; we never wait forever). */
export const REQUEST_TIMEOUT_MS = 60_000;
/** A Status body is small; more of an error body is not read. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;

export type Query = Readonly<Record<string, string | number | boolean | undefined>>;

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

export interface ListPage<R> {
  /** null in an empty PartialObjectMetadataList (a metadata-only list). */
  items?: R[] | null;
  metadata?: { resourceVersion?: string; continue?: string };
}

/** The Accept headers of a client reading metadata only (PartialObjectMetadata), or undefined for whole objects. */
export interface AcceptForms {
  readonly list: string;
  readonly object: string;
}

export interface ApiClientOptions {
  requestTimeoutMs?: number;
  maxResponseBytes?: number;
  maxWatchLineBytes?: number;
  accept?: AcceptForms;
}

export interface WatchHandle {
  abort(): void;
}

export class WatchDecodeError extends Error {
  override readonly name = 'WatchDecodeError';
}

export class ApiClient {
  private readonly requestTimeoutMs: number;
  private readonly maxResponseBytes: number;
  private readonly maxWatchLineBytes: number;
  private target: Target | undefined;

  constructor(
    readonly auth: ApiAuth,
    private readonly options: ApiClientOptions = {},
  ) {
    this.requestTimeoutMs = options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
    this.maxResponseBytes = options.maxResponseBytes ?? MAX_RESPONSE_BYTES;
    this.maxWatchLineBytes = options.maxWatchLineBytes ?? MAX_WATCH_LINE_BYTES;
  }

  /** The same server, credentials and connections, asking for other forms of lists and watch events. */
  accepting(accept: AcceptForms): ApiClient {
    return new ApiClient(this.auth, { ...this.options, accept });
  }

  get<T>(path: string, query?: Query): Promise<T> {
    return this.request<T>('GET', path, { query });
  }

  post<T>(path: string, body: unknown, query?: Query): Promise<T> {
    return this.request<T>('POST', path, { query, body });
  }

  put<T>(path: string, body: unknown, query?: Query): Promise<T> {
    return this.request<T>('PUT', path, { query, body });
  }

  /** A JSON merge patch (RFC 7386); put metadata.resourceVersion in the patch to make it conditional. */
  patchMerge<T>(path: string, patch: unknown, query?: Query): Promise<T> {
    return this.request<T>('PATCH', path, { query, body: patch, contentType: 'application/merge-patch+json' });
  }

  delete<T>(path: string, body?: unknown, query?: Query): Promise<T> {
    return this.request<T>('DELETE', path, { query, body });
  }

  /** One page of a list. */
  listPage<R>(path: string, query: Query): Promise<ListPage<R>> {
    return this.request<ListPage<R>>('GET', path, { query, accept: this.options.accept?.list });
  }

  /** Pages through a list (limit/continue), so a large collection is not one giant response. */
  async list<R>(path: string, query: Query, pageSize: number, beforePage: () => void = () => undefined): Promise<{ items: R[]; resourceVersion: string }> {
    const items: R[] = [];
    let cont: string | undefined;
    let resourceVersion = '';
    do {
      beforePage();
      const page = await this.listPage<R>(path, { ...query, limit: pageSize, continue: cont });
      for (const item of page.items ?? []) items.push(item);
      resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
      cont = page.metadata?.continue || undefined;
    } while (cont !== undefined);
    return { items, resourceVersion };
  }

  /** `signal`: aborting it fails the request at once and cuts its connection (one signal per request). */
  async request<T>(method: string, path: string, opts: { query?: Query | undefined; body?: unknown; contentType?: string; accept?: string | undefined; signal?: AbortSignal } = {}): Promise<T> {
    const { agent, headers } = await this.auth.credentials('request');
    const payload = opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body));
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      let response: IncomingMessage | undefined;
      const fail = (err: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        // A response read to its end left its socket to the pool: only an unfinished one is cut.
        if (response?.complete !== true) req.destroy();
        reject(err);
      };
      const req = this.send(method, path, opts.query, {
        agent,
        headers: {
          ...headers,
          accept: opts.accept ?? 'application/json',
          ...(payload ? { 'content-type': opts.contentType ?? 'application/json', 'content-length': String(payload.length) } : {}),
        },
      });
      const timer = setTimeout(() => fail(new Error(`${method} ${path}: no complete response within ${this.requestTimeoutMs} ms`)), this.requestTimeoutMs);
      req.on('error', (err) => fail(new Error(`${method} ${path}: ${err.message}`, { cause: err })));
      if (opts.signal?.aborted === true) fail(new Error(`${method} ${path}: aborted`));
      opts.signal?.addEventListener('abort', () => fail(new Error(`${method} ${path}: aborted`)), { once: true });
      req.on('response', (res) => {
        response = res;
        const ok = res.statusCode !== undefined && res.statusCode >= 200 && res.statusCode < 300;
        const limit = ok ? this.maxResponseBytes : MAX_ERROR_BODY_BYTES;
        readBounded(res, limit).then(
          ({ body, truncated }) => {
            if (settled) return;
            if (!ok) return fail(new ApiStatusError(method, path, res.statusCode ?? 0, parseStatus(body)));
            if (truncated) return fail(new Error(`${method} ${path}: response larger than ${limit} bytes: refused`));
            settled = true;
            clearTimeout(timer);
            try {
              resolve((body.length === 0 ? {} : JSON.parse(body.toString('utf8'))) as T);
            } catch (err) {
              reject(new Error(`${method} ${path}: the response is not JSON: ${(err as Error).message}`));
            }
          },
          (err: Error) => fail(new Error(`${method} ${path}: ${err.message}`, { cause: err })),
        );
      });
      req.end(payload);
    });
  }

  /**
   * Watches `path` from `query.resourceVersion`: `onEvent` for every event, then `done` exactly
   * once: null when the server ended the watch (its timeoutSeconds), an error otherwise (an
   * ApiStatusError for a refused request, a line over the cap, no byte for `idleMs`, abort()).
   */
  async watch<R>(
    path: string,
    query: Query,
    onEvent: (type: WatchEventType, object: R) => void,
    done: (err: unknown) => void,
    idleMs = 15 * 60_000,
  ): Promise<WatchHandle> {
    const { agent, headers } = await this.auth.credentials('watch');
    let finished = false;
    let response: IncomingMessage | undefined;
    let timer: NodeJS.Timeout | undefined;
    const finish = (err: Error | null): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      if (response?.complete !== true) req.destroy();
      done(err);
    };
    const armIdle = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => finish(new Error(`watch ${path}: nothing received for ${idleMs} ms`)), idleMs);
    };
    const splitter = new JsonLineSplitter((line) => {
      let event: { type?: unknown; object?: unknown };
      try {
        event = JSON.parse(line.toString('utf8')) as typeof event;
      } catch (err) {
        throw new WatchDecodeError(`watch ${path}: an event is not JSON: ${(err as Error).message}`);
      }
      if (typeof event !== 'object' || event === null || typeof event.type !== 'string' || typeof event.object !== 'object' || event.object === null) {
        throw new WatchDecodeError(`watch ${path}: an event without a type and an object`);
      }
      onEvent(event.type as WatchEventType, event.object as R);
    }, this.maxWatchLineBytes);
    const req = this.send('GET', path, { ...query, watch: true }, { agent, headers: { ...headers, accept: this.options.accept?.object ?? 'application/json' } });
    armIdle();
    req.on('error', (err) => finish(new Error(`watch ${path}: ${err.message}`, { cause: err })));
    req.on('response', (res: IncomingMessage) => {
      response = res;
      if (res.statusCode !== 200) {
        readBounded(res, MAX_ERROR_BODY_BYTES).then(
          ({ body }) => finish(new ApiStatusError('WATCH', path, res.statusCode ?? 0, parseStatus(body))),
          (err: Error) => finish(err),
        );
        return;
      }
      res.on('data', (chunk: Buffer) => {
        if (finished) return;
        armIdle();
        try {
          splitter.push(chunk);
        } catch (err) {
          finish(err as Error);
        }
      });
      res.on('end', () => finish(splitter.held > 0 ? new Error(`watch ${path}: ended inside an event (${splitter.held} bytes)`) : null));
      res.on('error', (err) => finish(err));
      res.on('aborted', () => finish(new Error(`watch ${path}: the connection was cut`)));
    });
    req.end();
    return { abort: () => finish(new Error(`watch ${path}: aborted`)) };
  }

  destroy(): void {
    this.auth.destroy();
  }

  private send(method: string, path: string, query: Query | undefined, opts: { agent: HttpAgent; headers: Record<string, string> }): ClientRequest {
    const { origin, basePath, request } = (this.target ??= targetOf(this.auth.server));
    return request({ ...origin, path: basePath + path + searchOf(query), method, agent: opts.agent, headers: { 'user-agent': 'dc-operator', ...opts.headers } });
  }
}

/**
 * What node:http would take from the server's URL on every request (urlToHttpOptions), taken once:
 * a URL object built, edited and converted per request was ~2 % of the operator's CPU in a burst
 * (bench/results/operator.md, issue 19, sixth session). The request line and headers are the same.
 */
function targetOf(server: URL): Target {
  const origin: Target['origin'] = {
    protocol: server.protocol,
    // urlToHttpOptions strips an IPv6 address's brackets; ClientRequest puts them back in Host.
    hostname: server.hostname.startsWith('[') ? server.hostname.slice(1, -1) : server.hostname,
    ...(server.port !== '' ? { port: Number(server.port) } : {}),
    ...(server.username !== '' || server.password !== '' ? { auth: `${decodeURIComponent(server.username)}:${decodeURIComponent(server.password)}` } : {}),
  };
  return { origin, basePath: server.pathname.replace(/\/+$/, ''), request: server.protocol === 'http:' ? httpRequest : httpsRequest };
}

interface Target {
  readonly origin: { readonly protocol: string; readonly hostname: string; readonly port?: number; readonly auth?: string };
  /** The server URL's path without its trailing slashes: a prefix of every request's path. */
  readonly basePath: string;
  readonly request: typeof httpRequest;
}

/** The query string (with its "?") as URLSearchParams serialises it, or '' when no value is set. */
function searchOf(query: Query | undefined): string {
  if (query === undefined) return '';
  let params: URLSearchParams | undefined;
  for (const k of Object.keys(query)) {
    const v = query[k];
    if (v !== undefined) (params ??= new URLSearchParams()).set(k, String(v));
  }
  return params === undefined ? '' : `?${params.toString()}`;
}

/** A response body up to `limit` bytes (what came beyond is dropped and the response destroyed). */
function readBounded(res: IncomingMessage, limit: number): Promise<{ body: Buffer; truncated: boolean }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    let truncated = false;
    res.on('data', (chunk: Buffer) => {
      if (truncated) return;
      if (bytes + chunk.length > limit) {
        truncated = true;
        resolve({ body: Buffer.concat(chunks, bytes), truncated }); // before destroy() reports the cut
        res.destroy();
        return;
      }
      chunks.push(chunk);
      bytes += chunk.length;
    });
    res.on('end', () => resolve({ body: Buffer.concat(chunks, bytes), truncated }));
    res.on('error', reject);
    res.on('aborted', () => reject(new Error('the connection was cut during the response')));
  });
}
