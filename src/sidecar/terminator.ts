/**
 * The sidecar's TLS listener: every accepted socket becomes one connection (connection.ts), from
 * admission to close.
 */
import type { Server } from 'node:net';
import { createServer } from 'node:net';
import type { WatcherLogger } from './credential-watcher.js';
import type { MaterialStore } from './material.js';
import type { SidecarMetrics } from './metrics.js';
import type { ConnectionTracker } from '../net/connection-tracker.js';
import { LogLimiter } from '../net/log-limiter.js';
import type { UpstreamOptions } from './proxy.js';
import type { RoutingPolicy } from './router.js';
import type { DecodedClientHello, ServerConnection } from '../tls/server.js';
import type { ServingReport } from './serving-report.js';
import { acceptConnection } from './connection.js';

/**
 * Our TLS stack as an engine: a ServerConnection for a client whose first ClientHello the peek
 * decoded (`hello`, which the connection reuses). The connection object drives it (connection.ts).
 */
export interface OursEngine {
  accept(hello: DecodedClientHello): ServerConnection;
}

export interface TerminatorOptions {
  readonly store: MaterialStore;
  readonly metrics: SidecarMetrics;
  readonly tracker: ConnectionTracker;
  readonly policy: RoutingPolicy;
  readonly upstream: UpstreamOptions;
  /** Deadline for ClientHello plus handshake (default 10 s). */
  readonly handshakeTimeoutMs: number;
  readonly alpnProtocols?: readonly string[];
  /** The interval summary: every handshake and refusal is counted there too. */
  readonly report?: ServingReport;
  readonly ours: OursEngine | undefined;
  readonly log: WatcherLogger & { debug(message: string, meta?: Record<string, unknown>): void };
}

export interface Listener {
  readonly server: Server;
  readonly port: number;
  /** Stops accepting at once (open connections are the tracker's business). */
  stopAccepting(): void;
  /**
   * Resolves when every connection accepted so far is handled to its end, application connection
   * included (a proxied connection ends when both its sockets have closed).
   */
  settled(): Promise<void>;
}

/** `host` '' listens on all interfaces (node picks `::` when IPv6 is available). */
export async function listen(host: string, port: number, o: TerminatorOptions): Promise<Listener> {
  const refusals = new LogLimiter();
  // Connections not yet handled to their end, and who waits for there to be none: a count and a
  // callback per connection, not a promise each.
  let handling = 0;
  let whenSettled: (() => void)[] = [];
  const finished = (): void => {
    if (--handling > 0) return;
    const waiting = whenSettled;
    whenSettled = [];
    for (const resolve of waiting) resolve();
  };
  const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => {
    handling++;
    try {
      acceptConnection(socket, o, refusals, finished);
    } catch (err) {
      o.log.error('connection handler failed', { error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
      socket.destroy();
      finished();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ ...(host ? { host } : {}), port, backlog: 1024 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  return {
    server,
    port: typeof address === 'object' && address ? address.port : port,
    stopAccepting: () => {
      server.close();
    },
    settled: () => (handling === 0 ? Promise.resolve() : new Promise<void>((resolve) => whenSettled.push(resolve))),
  };
}
