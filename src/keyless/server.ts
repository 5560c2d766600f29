/**
 * The key server: answers Keyless SSL signing requests over mutual TLS with keys looked up by SKI.
 *
 * Every request gets an answer with its id: a response, a pong, or an error response whose code
 * says what was wrong (unknown key, bad opcode, malformed message, oversized body, wrong version).
 * A bad request never closes the connection; only a broken transport does. Signing runs under a
 * semaphore, and a connection with too many requests in flight is paused (TCP backpressure).
 */
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { checkVersion, decodeOperation, encodeMessage, FrameDecoder, type Frame, type Operation } from './codec.js';
import { KeylessError } from './errors.js';
import { KeyDirectory, type KeyLookup, type KeyStoreLogger } from './keystore.js';
import {
  DEFAULT_PORT,
  ErrorCode,
  errorCodeName,
  isResponseOpcode,
  MAX_WIRE_BODY_LENGTH,
  Opcode,
  opcodeName,
  signOperationOf,
} from './protocol.js';
import { Semaphore } from './semaphore.js';
import { SigningPool } from './sign-pool.js';
import { skiHex } from './ski.js';

export interface KeyServerOptions {
  /** Directory of private keys (PEM or DER PKCS#8), reloaded on change. */
  readonly keysDir?: string;
  /** Or a ready key store (tests, embedding). One of keysDir/keys is required. */
  readonly keys?: KeyLookup;
  /** CA certificate(s) (PEM) that client certificates must chain to. */
  readonly ca: string | Buffer;
  /** Server certificate chain and key (PEM). */
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
  /** Listening address (default 0.0.0.0) and port (default 2407; 0 picks a free port). */
  readonly host?: string;
  readonly port?: number;
  /** Signing operations running at once (default 64). */
  readonly maxConcurrency?: number;
  /**
   * Sign on this many worker threads (default 0: on the main thread). Worth it with more than
   * one core to spare: the main thread keeps TLS and framing, the workers do the private-key math.
   */
  readonly signingWorkers?: number;
  /** Requests in flight per connection before its reads pause (default 1024). */
  readonly maxInFlightPerConnection?: number;
  /**
   * Largest accepted request body in bytes (default and maximum: 65535, the u16 wire limit). An
   * Ed25519 request carries the whole message, which for a delegated credential includes the
   * certificate, so keep this well above the largest certificate you sign for.
   */
  readonly maxBodyLength?: number;
  /** Serve Prometheus metrics on this port (/metrics); 0 picks a free port; undefined = off. */
  readonly metricsPort?: number;
  readonly metricsHost?: string;
  /** Registry for the metrics (default: a new one per server). */
  readonly registry?: Registry;
  readonly logger?: KeyStoreLogger;
  /** Key directory reload poll interval (default 30 s). */
  readonly pollIntervalMs?: number;
}

export interface KeyServer {
  /** The bound TLS port. */
  readonly port: number;
  /** The bound metrics port, when metrics are served. */
  readonly metricsPort: number | undefined;
  readonly registry: Registry;
  /** The key directory, when the server was started with keysDir. */
  readonly keyDirectory: KeyDirectory | undefined;
  close(): Promise<void>;
}


/** Metric names follow Prometheus conventions; `opcode` labels are the documented opcode names. */
class KeyServerMetrics {
  readonly requests: Counter<'opcode' | 'result'>;
  readonly duration: Histogram<'opcode'>;
  readonly connections: Gauge;
  readonly handshakeFailures: Counter;
  readonly reloads: Counter<'result'>;

  constructor(readonly registry: Registry, keys: () => number) {
    this.requests = new Counter({
      name: 'keyless_server_requests_total',
      help: 'Requests answered, by opcode and result (ok or the error name).',
      labelNames: ['opcode', 'result'],
      registers: [registry],
    });
    this.duration = new Histogram({
      name: 'keyless_server_request_duration_seconds',
      help: 'Time from a request being read to its answer being written, by opcode.',
      labelNames: ['opcode'],
      // 100 µs doubling to ~1.6 s, like gokeyless.
      buckets: Array.from({ length: 15 }, (_, i) => 0.0001 * 2 ** i),
      registers: [registry],
    });
    this.connections = new Gauge({
      name: 'keyless_server_connections',
      help: 'Open client connections (after the TLS handshake).',
      registers: [registry],
    });
    this.handshakeFailures = new Counter({
      name: 'keyless_server_handshake_failures_total',
      help: 'TLS handshakes that failed, e.g. a client certificate not signed by the CA.',
      registers: [registry],
    });
    this.reloads = new Counter({
      name: 'keyless_server_key_reloads_total',
      help: 'Key directory reloads by result (ok, failed).',
      labelNames: ['result'],
      registers: [registry],
    });
    new Gauge({
      name: 'keyless_server_keys',
      help: 'Private keys currently loaded.',
      registers: [registry],
      collect() {
        this.set(keys());
      },
    });
  }
}

function resultLabel(code: number | undefined): string {
  return code === undefined ? 'ok' : errorCodeName(code).replace(/[^a-z0-9]+/g, '_');
}

/** Starts the key server; resolves once it listens. */
export async function startKeyServer(options: KeyServerOptions): Promise<KeyServer> {
  const registry = options.registry ?? new Registry();
  let keys: KeyLookup | undefined;
  const m = new KeyServerMetrics(registry, () => keys?.size ?? 0);
  let keyDirectory: KeyDirectory | undefined;
  if (options.keys) {
    keys = options.keys;
  } else if (options.keysDir) {
    keyDirectory = await KeyDirectory.open(options.keysDir, {
      ...(options.logger ? { logger: options.logger } : {}),
      ...(options.pollIntervalMs !== undefined ? { pollIntervalMs: options.pollIntervalMs } : {}),
      onReload: (r) => m.reloads.inc({ result: r.ok ? 'ok' : 'failed' }),
    });
    keys = keyDirectory;
  } else {
    throw new Error('startKeyServer needs keysDir or keys');
  }
  const keyLookup: KeyLookup = keys;
  const semaphore = new Semaphore(options.maxConcurrency ?? 64);
  const pool = options.signingWorkers ? new SigningPool(options.signingWorkers) : undefined;
  const maxInFlight = options.maxInFlightPerConnection ?? 1024;
  const maxBody = Math.min(options.maxBodyLength ?? MAX_WIRE_BODY_LENGTH, MAX_WIRE_BODY_LENGTH);
  const log = options.logger;

  const sockets = new Set<TLSSocket>();
  const server = createTlsServer(
    {
      ca: options.ca,
      cert: options.cert,
      key: options.key,
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.2',
    },
    (socket) => {
      sockets.add(socket);
      m.connections.inc();
      socket.on('close', () => {
        sockets.delete(socket);
        m.connections.dec();
      });
      serveConnection(socket, { keys: keyLookup, semaphore, maxInFlight, maxBody, metrics: m, ...(pool ? { pool } : {}), ...(log ? { log } : {}) });
    },
  );
  server.on('tlsClientError', (err, socket) => {
    m.handshakeFailures.inc();
    log?.warn('keyless: TLS handshake failed', { peer: socket.remoteAddress, error: err.message });
  });

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? DEFAULT_PORT, options.host ?? '0.0.0.0', () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    keyDirectory?.close();
    await pool?.close();
    throw err;
  }
  const port = (server.address() as AddressInfo).port;
  server.on('error', (err) => log?.error('keyless: server error', { error: err.message }));

  let metricsServer: HttpServer | undefined;
  let metricsPort: number | undefined;
  if (options.metricsPort !== undefined) {
    metricsServer = createHttpServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404).end();
        return;
      }
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (err: unknown) => res.writeHead(500).end(String(err)),
      );
    });
    const ms = metricsServer;
    try {
      await new Promise<void>((resolve, reject) => {
        ms.once('error', reject);
        ms.listen(options.metricsPort, options.metricsHost ?? options.host ?? '0.0.0.0', () => resolve());
      });
    } catch (err) {
      keyDirectory?.close();
      await pool?.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      throw err;
    }
    metricsPort = (metricsServer.address() as AddressInfo).port;
  }
  log?.info('keyless: key server listening', { port, metricsPort, keys: keyLookup.size });

  return {
    port,
    metricsPort,
    registry,
    keyDirectory,
    async close(): Promise<void> {
      keyDirectory?.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
      await pool?.close();
      if (metricsServer) {
        const ms = metricsServer;
        ms.closeAllConnections();
        await new Promise<void>((resolve) => ms.close(() => resolve()));
      }
    },
  };
}

interface ConnectionContext {
  readonly keys: KeyLookup;
  readonly semaphore: Semaphore;
  readonly maxInFlight: number;
  readonly maxBody: number;
  readonly metrics: KeyServerMetrics;
  readonly pool?: SigningPool;
  readonly log?: KeyStoreLogger;
}

/** Reads frames from one client connection and answers each one. */
function serveConnection(socket: TLSSocket, ctx: ConnectionContext): void {
  socket.setKeepAlive(true, 30_000);
  const decoder = new FrameDecoder(ctx.maxBody);
  let inFlight = 0;
  let writeBlocked = false;
  const updateFlow = (): void => {
    if (inFlight >= ctx.maxInFlight || writeBlocked) socket.pause();
    else socket.resume();
  };
  socket.on('drain', () => {
    writeBlocked = false;
    updateFlow();
  });
  socket.on('error', (err) => ctx.log?.warn('keyless: connection error', { peer: socket.remoteAddress, error: err.message }));

  const send = (bytes: Uint8Array): void => {
    if (socket.destroyed) return;
    if (!socket.write(bytes)) {
      writeBlocked = true;
      updateFlow();
    }
  };

  socket.on('data', (chunk: Buffer) => {
    let frames: Frame[];
    try {
      frames = decoder.push(chunk);
    } catch (err) {
      // The decoder only throws on a header it cannot read, which cannot happen with >= 8 bytes.
      ctx.log?.error('keyless: framing failed, closing connection', { error: String(err) });
      socket.destroy();
      return;
    }
    for (const frame of frames) {
      inFlight++;
      updateFlow();
      const started = process.hrtime.bigint();
      void answer(frame, ctx).then(({ bytes, opcode, error }) => {
        send(bytes);
        inFlight--;
        updateFlow();
        const label = opcodeName(opcode);
        ctx.metrics.requests.inc({ opcode: label, result: resultLabel(error) });
        ctx.metrics.duration.observe({ opcode: label }, Number(process.hrtime.bigint() - started) / 1e9);
      });
    }
  });
}

interface Answer {
  readonly bytes: Uint8Array;
  /** The request's opcode (for metrics), or 0 when it could not be read. */
  readonly opcode: number;
  /** The error code answered, undefined on success. */
  readonly error: number | undefined;
}

function errorAnswer(id: number, opcode: number, code: number): Answer {
  return { bytes: encodeMessage(id, { opcode: Opcode.error, payload: Uint8Array.of(code) }), opcode, error: code };
}

/** Turns one frame into its answer. Never rejects: every failure becomes an error response. */
async function answer(frame: Frame, ctx: ConnectionContext): Promise<Answer> {
  const id = frame.header.id;
  if (frame.kind === 'oversized') return errorAnswer(id, 0, ErrorCode.formatError);
  let op: Operation;
  try {
    checkVersion(frame.header);
    op = decodeOperation(frame.body);
  } catch (err) {
    return errorAnswer(id, 0, err instanceof KeylessError ? err.code : ErrorCode.formatError);
  }
  try {
    return await execute(id, op, ctx);
  } catch (err) {
    if (err instanceof KeylessError) return errorAnswer(id, op.opcode, err.code);
    ctx.log?.error('keyless: request failed', { opcode: opcodeName(op.opcode), error: String(err) });
    return errorAnswer(id, op.opcode, ErrorCode.internalError);
  }
}

async function execute(id: number, op: Operation, ctx: ConnectionContext): Promise<Answer> {
  if (op.opcode === Opcode.ping) {
    // kssl.h: the ping is echoed with its payload and the opcode changed to pong.
    return { bytes: encodeMessage(id, { opcode: Opcode.pong, payload: op.payload ?? new Uint8Array(0) }), opcode: op.opcode, error: undefined };
  }
  if (isResponseOpcode(op.opcode)) return errorAnswer(id, op.opcode, ErrorCode.unexpectedOpcode);
  const signOp = signOperationOf(op.opcode);
  if (!signOp) return errorAnswer(id, op.opcode, ErrorCode.badOpcode);
  const key = op.ski === undefined ? undefined : ctx.keys.get(skiHex(op.ski));
  if (!key) return errorAnswer(id, op.opcode, ErrorCode.keyNotFound);
  if (op.payload === undefined) return errorAnswer(id, op.opcode, ErrorCode.formatError);
  const payload = op.payload;
  const release = await ctx.semaphore.acquire();
  try {
    const signature = ctx.pool ? await ctx.pool.sign(key, op.opcode, payload) : key.sign(signOp, payload);
    return { bytes: encodeMessage(id, { opcode: Opcode.response, payload: signature }), opcode: op.opcode, error: undefined };
  } finally {
    release();
  }
}
