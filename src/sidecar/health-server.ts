/**
 * Plain HTTP on the metrics port: /healthz (the process answers), /readyz (readiness() decides:
 * a valid, unexpired credential and not draining; the second line says the fallback's state, which
 * does not make the pod unready: DC clients are still served), /metrics (Prometheus text). The handlers only
 * encode state; they decide nothing.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { SidecarMetrics } from './metrics.js';
import type { MaterialStore } from './material.js';
import { readiness, type ServingCapabilities, type SidecarStatus } from './status.js';

export interface HealthServerOptions {
  /** '' = all interfaces. */
  readonly host: string;
  readonly port: number;
  readonly status: SidecarStatus;
  readonly store: MaterialStore;
  readonly metrics: SidecarMetrics;
  readonly capabilities: ServingCapabilities;
  /** The fallback for non-DC clients, said on /readyz next to the verdict (it does not decide it). */
  readonly fallback?: () => { fallback: string; ready: boolean; reason: string };
  readonly now?: () => Date;
}

export interface HealthServer {
  readonly port: number;
  close(): Promise<void>;
}

export async function startHealthServer(options: HealthServerOptions): Promise<HealthServer> {
  const now = options.now ?? (() => new Date());
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    switch (path) {
      case '/healthz':
        res.writeHead(200, { 'content-type': 'text/plain' }).end(`ok: ${options.status.current.phase}\n`);
        return;
      case '/readyz': {
        const r = readiness(options.status.current, options.store.current, options.capabilities, now());
        const f = options.fallback?.();
        const fallback = f ? `fallback ${f.fallback} ${f.ready ? 'ready' : 'not ready'}: ${f.reason}\n` : '';
        res.writeHead(r.ready ? 200 : 503, { 'content-type': 'text/plain' }).end(`${r.ready ? 'ready' : 'not ready'}: ${r.reason}\n${fallback}`);
        return;
      }
      case '/metrics':
        options.metrics.registry.metrics().then(
          (text) => res.writeHead(200, { 'content-type': options.metrics.registry.contentType }).end(text),
          (err: unknown) => res.writeHead(500).end(`metrics failed: ${err instanceof Error ? err.message : String(err)}\n`),
        );
        return;
      default:
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /healthz, /readyz or /metrics\n');
    }
  });
  server.requestTimeout = 5_000;
  server.headersTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: options.port, ...(options.host ? { host: options.host } : {}) }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
