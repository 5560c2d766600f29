/**
 * One client connection, from accept to close:
 *
 *   admit (limit, per-source limit, draining) -> peek ClientHello (deadline) -> route -> handshake on the chosen
 *   engine (deadline) -> proxy plaintext to the application -> close
 *
 * Every step's outcome is counted; nothing here throws to the listener.
 */
import type { Server, Socket } from 'node:net';
import { createServer } from 'node:net';
import type { Duplex } from 'node:stream';
import { alertName } from '../tls/alerts.js';
import type { WatcherLogger } from './credential-watcher.js';
import { peekClientHello, plaintextAlert } from './client-hello-peek.js';
import type { MaterialStore, ServingMaterial } from './material.js';
import type { HandshakeMode, SidecarMetrics } from './metrics.js';
import { terminateWithNode } from './node-engine.js';
import { sourceAddress, type ConnectionTracker } from '../net/connection-tracker.js';
import { LogLimiter } from '../net/log-limiter.js';
import { proxyToUpstream, type UpstreamOptions } from './proxy.js';
import { route, type RoutingPolicy } from './router.js';
import type { DecodedClientHello } from '../tls/server.js';
import { classifyKeylessFailure } from './keyless-fallback.js';
import { Deadline } from './deadline.js';
import type { ServingReport } from './serving-report.js';

export interface OursHandshake {
  /** With an 'error' listener of its own: the client may fail before the proxy listens. */
  readonly stream: Duplex;
  /** How the server actually authenticated (the credential hook's choice). */
  readonly mode: HandshakeMode;
}

/**
 * Our TLS stack as an engine: replay `buffered`, handshake, resolve with the plaintext stream.
 * `hello` is the peek's decoding of the ClientHello in `buffered`, which the engine reuses.
 */
export type OursEngine = (socket: Socket, buffered: Buffer, hello: DecodedClientHello, material: ServingMaterial, deadline: Deadline) => Promise<OursHandshake>;

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

/** One listener for every connection's socket errors (they surface as 'close'): no closure per connection. */
export function ignoreError(): void {}

/** How long a closing socket may take to flush (an alert, the last records) before it is cut. */
const FLUSH_DEADLINE_MS = 2000;

/**
 * Ends `socket` after what was written (a fatal alert, the last records) has gone out, and cuts
 * it if the peer does not let that happen within FLUSH_DEADLINE_MS.
 */
export function closeSoon(socket: Socket, last?: Uint8Array): void {
  if (socket.destroyed) return;
  if (last) socket.end(last);
  else socket.end();
  socket.destroySoon();
  setTimeout(() => socket.destroy(), FLUSH_DEADLINE_MS).unref();
}

/** Refusals whose reason names something an operator can fix: the summary line carries the first. */
const DETAILED_REFUSALS = new Set(['keyserver-unreachable', 'keyless-client-certificate', 'keyless-misconfigured']);

/** The count a LogLimiter left out since the key's last line, when there is one. */
function suppressedField(suppressed: number): { suppressedSinceLastLine?: number } {
  return suppressed > 0 ? { suppressedSinceLastLine: suppressed } : {};
}

/**
 * `refusals` bounds the log lines about refused connections (one per listener). A connection
 * refused before routing (a cap reached, bytes that are not a ClientHello) is logged at info: an
 * operator asking "why was my client turned away" must not need debug logging on. A client
 * refused by routing (nothing to serve it with) is counted in the report's interval line instead.
 */
export async function handleConnection(socket: Socket, o: TerminatorOptions, refusals: LogLimiter): Promise<void> {
  socket.on('error', ignoreError); // errors surface as 'close'; the proxy reports its own
  socket.setNoDelay(true);
  const admitted = o.tracker.admit(socket, o.metrics.connectionClosed);
  if (admitted !== 'admitted') {
    o.metrics.refused(admitted);
    // Refusing while draining is the plan; a limit reached is worth a (bounded) line.
    if (admitted !== 'draining') {
      const source = sourceAddress(socket);
      const why =
        admitted === 'source-limit'
          ? `${o.tracker.openFrom(source)} open from ${source}, the limit per source (--max-connections-per-source)`
          : `${o.tracker.size} open, the limit (--max-connections)`;
      refusals.log(admitted, (suppressed) =>
        o.log.info(`refused a connection: ${why}`, { remote: source, reason: admitted, ...suppressedField(suppressed) }),
      );
    }
    socket.destroy();
    return;
  }
  o.metrics.connectionOpened();
  const deadline = new Deadline(o.handshakeTimeoutMs);

  const peek = await peekClientHello(socket, deadline);
  if (peek.kind !== 'client-hello') {
    deadline.clear();
    o.metrics.refused(peek.kind === 'not-tls' ? 'bad-hello' : peek.kind);
    if (peek.kind === 'not-tls') {
      refusals.log('bad-hello', (suppressed) =>
        o.log.info('refused a connection: not a TLS ClientHello', { remote: socket.remoteAddress, reason: peek.reason, ...suppressedField(suppressed) }),
      );
      closeSoon(socket, plaintextAlert(peek.alert));
    } else {
      socket.destroy();
    }
    return;
  }

  const material = o.store.current;
  const decision = route(peek.hello, material, o.policy);
  if (decision.engine === 'refuse') {
    deadline.clear();
    o.metrics.refused(decision.metric);
    o.report?.refused(decision.metric, DETAILED_REFUSALS.has(decision.metric) ? decision.reason : undefined);
    o.log.debug('refused a client', { remote: socket.remoteAddress, alert: alertName(decision.alert), reason: decision.reason });
    closeSoon(socket, plaintextAlert(decision.alert, peek.recordVersion));
    return;
  }
  let stream: Duplex;
  let mode = decision.mode;
  try {
    if (decision.engine === 'node' || !o.ours) {
      deadline.clear(); // node:tls keeps its own timer for what is left
      stream = await terminateWithNode(socket, peek.buffered, material!, { timeoutMs: deadline.remainingMs(), alpnProtocols: o.alpnProtocols });
    } else {
      const done = await o.ours(socket, peek.buffered, peek, material!, deadline);
      stream = done.stream;
      mode = done.mode;
    }
  } catch (err) {
    deadline.clear();
    o.metrics.handshake(mode, decision.engine === 'node' || !o.ours ? 'node' : 'ours', 'failure');
    o.log.debug('handshake failed', { remote: socket.remoteAddress, mode, error: err instanceof Error ? err.message : String(err) });
    if (mode === 'keyless') {
      const failure = classifyKeylessFailure(err);
      o.report?.refused(failure.kind, failure.message);
      if (failure.kind === 'refused-by-keyserver') {
        // An in-band refusal (this identity may not use this key, or the key is not there): the
        // key server's own words, bounded like every per-connection line.
        refusals.log(failure.kind, (suppressed) =>
          o.log.warn('the key server refused to sign for a non-DC client', { error: failure.message, ...(suppressed > 0 ? { suppressedSinceLastLine: suppressed } : {}) }),
        );
      }
    } else {
      o.report?.refused('handshake-failed');
    }
    closeSoon(socket); // let the engine's alert go out
    return;
  }
  o.metrics.handshake(mode, decision.engine === 'node' || !o.ours ? 'node' : 'ours', 'success');
  o.report?.served(mode);
  // The client may go away while the application connection is being opened: both engines' streams
  // come with an 'error' listener of their own, so that error is not unhandled before the proxy attaches.

  const end = await proxyToUpstream(stream, o.upstream);
  if (end.kind === 'upstream-unavailable') {
    o.metrics.upstreamError();
    o.log.warn('the application is not reachable', { upstream: `${o.upstream.host}:${o.upstream.port}`, error: end.error.message });
  } else if (end.kind === 'error' && end.side === 'upstream') {
    o.metrics.upstreamError();
    o.log.debug('upstream connection error', { error: end.error.message });
  }
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
  const handling = new Set<Promise<void>>();
  const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => {
    const handled = handleConnection(socket, o, refusals)
      .catch((err: unknown) => {
        o.log.error('connection handler failed', { error: err instanceof Error ? err.stack ?? err.message : String(err) });
        socket.destroy();
      })
      .finally(() => handling.delete(handled));
    handling.add(handled);
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
    settled: async () => {
      while (handling.size > 0) await Promise.all(handling);
    },
  };
}
