// /metrics, /healthz (the process and its event loop answer) and /readyz (a standby replica
// is ready; a leader is ready once its caches are synced).
import type { Server, ServerResponse } from 'node:http';
import { createServer } from './node-http.js';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface Probes {
  ready(): { ok: boolean; detail: string };
}

/** Writes the chunks one after another, each once the socket took the one before. */
async function writeChunks(res: ServerResponse, chunks: Iterable<string>): Promise<void> {
  for (const chunk of chunks) {
    if (res.destroyed) return;
    if (!res.write(chunk)) {
      await new Promise<void>((resolve) => {
        const go = (): void => {
          res.off('drain', go);
          res.off('close', go);
          resolve();
        };
        res.on('drain', go);
        res.on('close', go);
      });
    }
  }
  res.end();
}

export async function startHttpServer(opts: {
  port: number;
  host?: string;
  registry: Registry;
  /** The /metrics text, whole or in chunks (written as the client takes them); default `registry.metrics()`. */
  scrape?: () => Promise<string | Iterable<string>>;
  probes: Probes;
}): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      (opts.scrape ?? (() => opts.registry.metrics()))().then(
        (text) => {
          res.writeHead(200, { 'content-type': opts.registry.contentType });
          if (typeof text === 'string') res.end(text);
          else void writeChunks(res, text);
        },
        (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${String(err)}\n`),
      );
      return;
    }
    if (path === '/healthz' || path === '/livez') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return;
    }
    if (path === '/readyz') {
      const r = opts.probes.ready();
      res.writeHead(r.ok ? 200 : 503, { 'content-type': 'text/plain' }).end(`${r.detail}\n`);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host ?? '0.0.0.0', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
