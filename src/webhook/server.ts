// The webhook's HTTPS endpoint: POST /mutate (AdmissionReview v1), GET /healthz, GET /readyz.
// Bodies are bounded, slow clients time out, every failure is answered with a status code and a
// message, and nothing a request does can take the process down. The serving certificate is
// swapped in place (setSecureContext), so rotation needs no restart and drops no connection.

import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BadAdmissionReview, parseAdmissionReview, type AdmissionRequest } from './admission-types.js';
import type { AdmissionOutcome } from './admission.js';
import { MUTATE_PATH } from './webhook-configuration.js';
import type { Logger, ServingMaterial } from './serving-certs.js';
import type { WebhookMetrics } from './metrics.js';

/** An AdmissionReview for a CREATE of a big pod is tens of KiB; etcd caps objects near 1.5 MiB. */
export const DEFAULT_MAX_BODY_BYTES = 3 * 1024 * 1024;

export type AdmissionHandler = (request: AdmissionRequest) => Promise<AdmissionOutcome>;

export interface WebhookServerOptions {
  host: string;
  port: number;
  material: ServingMaterial;
  handler: AdmissionHandler;
  log: Logger;
  /** /readyz answers 200 only while this says so. */
  isReady: () => boolean;
  maxBodyBytes?: number;
  /** Whole-request deadline; the API server gives up after timeoutSeconds (5) anyway. */
  requestTimeoutMs?: number;
  /** When given, counted into and served on GET /metrics. */
  metrics?: WebhookMetrics;
}

export interface AdmissionStats {
  requests: number;
  injected: number;
  skipped: number;
  denied: number;
  errors: number;
  badRequests: number;
}

export class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export interface WebhookServer {
  readonly server: Server;
  readonly stats: AdmissionStats;
  listen(): Promise<number>;
  /** Serve a new certificate to new connections; throws (and keeps the old one) if it is invalid. */
  setCertificate(material: ServingMaterial): void;
  close(): Promise<void>;
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (Number.isFinite(declared) && declared > limit) {
      reject(new HttpError(413, `request body of ${declared} bytes exceeds the ${limit}-byte limit`));
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (chunk: Buffer) => {
      if (over) return; // discard the rest; the 413 closes the connection
      size += chunk.length;
      if (size > limit) {
        over = true;
        chunks.length = 0;
        reject(new HttpError(413, `request body exceeds the ${limit}-byte limit`));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
    req.on('aborted', () => reject(new HttpError(400, 'request aborted')));
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent || res.destroyed) return;
  const text = typeof body === 'string' ? `${body}\n` : JSON.stringify(body);
  res.writeHead(status, {
    'content-type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json',
    'content-length': Buffer.byteLength(text),
    // An error may leave part of the request body unread: do not reuse that connection.
    ...(status >= 400 ? { connection: 'close' } : {}),
  });
  res.end(text);
}

export function createWebhookServer(opts: WebhookServerOptions): WebhookServer {
  const maxBody = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const stats: AdmissionStats = { requests: 0, injected: 0, skipped: 0, denied: 0, errors: 0, badRequests: 0 };

  async function mutate(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'POST') throw new HttpError(405, `${req.method ?? '?'} ${MUTATE_PATH}: use POST with an AdmissionReview`);
    const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
    if (type !== 'application/json') throw new HttpError(415, `content-type ${type || '(none)'} is not application/json`);
    const raw = await readBody(req, maxBody);
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch (err) {
      throw new HttpError(400, `body is not JSON: ${(err as Error).message}`);
    }
    let review;
    try {
      review = parseAdmissionReview(body);
    } catch (err) {
      if (err instanceof BadAdmissionReview) throw new HttpError(400, `not an AdmissionReview v1: ${err.message}`);
      throw err;
    }
    stats.requests++;
    const { request } = review;
    const started = process.hrtime.bigint();
    const seconds = (): number => Number(process.hrtime.bigint() - started) / 1e9;
    let outcome: AdmissionOutcome;
    try {
      outcome = await opts.handler(request);
    } catch (err) {
      // A bug in the handler refuses this pod with the reason; the process and the other
      // requests carry on.
      stats.errors++;
      opts.metrics?.observeAdmission('error', 'InternalError', seconds());
      opts.log.error('admission handler failed', { uid: request.uid, error: (err as Error).stack ?? String(err) });
      send(res, 200, {
        apiVersion: 'admission.k8s.io/v1',
        kind: 'AdmissionReview',
        response: { uid: request.uid, allowed: false, status: { code: 500, reason: 'InternalError', message: `dc-operator webhook internal error: ${(err as Error).message}` } },
      });
      return;
    }
    stats[outcome.result === 'error' ? 'errors' : outcome.result]++;
    opts.metrics?.observeAdmission(outcome.result, outcome.reason, seconds());
    const pod = `${request.namespace ?? ''}/${request.name ?? (request.object as { metadata?: { generateName?: string } } | undefined)?.metadata?.generateName ?? ''}`;
    opts.log[outcome.result === 'error' ? 'error' : 'info']('admission', { uid: request.uid, pod, result: outcome.result, reason: outcome.reason, message: outcome.message });
    send(res, 200, outcome.review);
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'https://webhook.invalid').pathname;
    if (path === MUTATE_PATH) return mutate(req, res);
    if (path === '/healthz') return send(res, 200, 'ok');
    if (path === '/metrics' && opts.metrics) {
      const { registry } = opts.metrics;
      const text = await registry.metrics();
      res.writeHead(200, { 'content-type': registry.contentType, 'content-length': Buffer.byteLength(text) });
      res.end(text);
      return;
    }
    if (path === '/readyz') return opts.isReady() ? send(res, 200, 'ok') : send(res, 503, 'not ready: serving certificate or cluster version not loaded yet');
    throw new HttpError(404, `no route for ${path}: try ${MUTATE_PATH}, /healthz or /readyz`);
  }

  const server = createServer(
    { cert: opts.material.certPem, key: opts.material.keyPem, minVersion: 'TLSv1.2' },
    (req, res) => {
      route(req, res).catch((err: unknown) => {
        if (err instanceof HttpError) {
          stats.badRequests++;
          opts.metrics?.observeBadRequest(err.status);
          opts.log.warn('bad webhook request', { status: err.status, path: req.url, message: err.message });
          send(res, err.status, err.message);
        } else {
          stats.errors++;
          opts.log.error('webhook request failed', { path: req.url, error: (err as Error).stack ?? String(err) });
          send(res, 500, `internal error: ${(err as Error).message}`);
        }
      });
    },
  );
  server.requestTimeout = opts.requestTimeoutMs ?? 10_000;
  server.headersTimeout = Math.min(5_000, server.requestTimeout);
  // The API server keeps connections to webhooks alive; reuse them for a while, but not forever.
  server.keepAliveTimeout = 30_000;
  server.timeout = 60_000;
  server.on('tlsClientError', (err) => opts.log.warn('TLS handshake with a webhook client failed', { error: err.message }));
  server.on('clientError', (err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nmalformed HTTP request\n');
    else socket.destroy();
    opts.log.warn('malformed HTTP request', { error: err.message });
  });

  return {
    server,
    stats,
    listen: () =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(opts.port, opts.host, () => {
          server.off('error', reject);
          resolve((server.address() as AddressInfo).port);
        });
      }),
    setCertificate: (material) => server.setSecureContext({ cert: material.certPem, key: material.keyPem, minVersion: 'TLSv1.2' }),
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}
