/**
 * The client side of the sidecar's loopback warm-up (warm-up.ts, warmUpConnections): DC clients of
 * our TLS stack connecting to the warm-up's own listener on loopback, each doing one handshake
 * and echoing 32 bytes through the proxy.
 *
 * They run in the sidecar's main thread, beside the server side they drive. Measured, clients in
 * a worker thread of their own (so that their client-side sockets and connections stay out of
 * the type feedback of the code they share with the server: node:net, streams, the record layer)
 * made the first second after ready no cheaper and cost more before ready (the worker's start and
 * its own cold code): bench/results/sidecar-perf.md, section 10.
 */
import type { ClientConfig } from '../tls/client.js';
import { DELEGATED_CREDENTIAL_LABEL } from '../tls/delegated/index.js';
import { connect } from '../tls/socket.js';

export interface WarmUpClientJob {
  /** The warm-up listener's loopback address (the only addresses this module connects to). */
  readonly host: '127.0.0.1' | '::1';
  readonly port: number;
  readonly connections: number;
  readonly lanes: number;
  /** Each connection's deadline. */
  readonly timeoutMs: number;
  /** The whole run's deadline, from its start. */
  readonly budgetMs: number;
  /**
   * The clients, taken in turn (warmUpClients in src/tls/warm-up.ts: the kinds of client real
   * traffic has), each offering delegated credentials with the schemes the bundle's DCs are
   * signed with and sign with (dcSchemesOf in warm-up.ts).
   */
  readonly clients: readonly ClientConfig[];
  /** Checked before each connection: true ends the run (a stop during start-up). */
  readonly stopped?: () => boolean;
}

export interface WarmUpClientResult {
  readonly connections: number;
  readonly failed: number;
  /** Why the first failed connection failed (the run ends with it). */
  readonly firstFailure?: string;
}

const ECHO = new Uint8Array(32);

/** `job.connections` loopback connections on `job.lanes` lanes; the first failure ends the run. */
export async function driveWarmUpConnections(job: WarmUpClientJob): Promise<WarmUpClientResult> {
  // No kind of client the server serves: nothing to play (a default client would only fail).
  if (job.clients.length === 0) return { connections: 0, failed: 0 };
  const deadline = performance.now() + job.budgetMs;
  let left = job.connections;
  let connections = 0;
  let failed = 0;
  let firstFailure: string | undefined;
  const lane = async (): Promise<void> => {
    while (left > 0 && failed === 0 && performance.now() < deadline && !job.stopped?.()) {
      const config = job.clients[(job.connections - left) % job.clients.length]!;
      left--;
      const failure = await oneConnection(job.host, job.port, config, job.timeoutMs);
      if (failure === undefined) connections++;
      else {
        failed++;
        firstFailure ??= failure;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(job.lanes, job.connections)) }, lane));
  return { connections, failed, ...(firstFailure !== undefined ? { firstFailure } : {}) };
}

/** One DC handshake and 32 bytes echoed through the proxy: undefined, else why not. */
function oneConnection(host: string, port: number, config: ClientConfig, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    let settled = false;
    let got = 0;
    const end = (failure?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(failure);
    };
    const timer = setTimeout(() => end(`no echo within ${timeoutMs} ms`), timeoutMs);
    const socket = connect({ host, port, config, handshakeTimeout: timeoutMs }, () => {
      const authentication = socket.handshakeInfo?.serverMode.authentication;
      if (authentication !== DELEGATED_CREDENTIAL_LABEL) end(`served without a delegated credential (${String(authentication)})`);
      else socket.write(ECHO);
    });
    socket.on('data', (d: Buffer) => {
      got += d.length;
      if (got >= ECHO.length) end();
    });
    socket.on('error', (err: Error) => end(err.message));
    socket.on('close', () => end('closed before the echo came back'));
  });
}
