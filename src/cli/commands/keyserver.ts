import { readFile } from 'node:fs/promises';
import { defineCommand, type CommandContext } from '../framework/command.js';
import { CommandFailed, InputError, UsageError } from '../framework/errors.js';
import { resolvePath } from '../framework/files.js';
import { integerFlag } from '../framework/flags.js';
import {
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_MAX_CONNECTIONS_PER_SOURCE,
  startKeyServer,
} from '../../keyless/server.js';
import { LOG_LINES_PER_WINDOW } from '../../net/log-limiter.js';
import { durationFlag, readCertificateFile } from './tls-inputs.js';
import type { KeyStoreLogger } from '../../keyless/keystore.js';

/** One JSON line per event on stderr: what a log collector in a pod expects. */
function jsonLogger(ctx: CommandContext): KeyStoreLogger {
  const line = (level: string) => (message: string, meta?: Record<string, unknown>) =>
    ctx.stderr(JSON.stringify({ time: ctx.now().toISOString(), level, message, ...meta }) + '\n');
  return { info: line('info'), warn: line('warn'), error: line('error') };
}

async function readPem(ctx: CommandContext, flag: string, path: string): Promise<string> {
  try {
    return await readFile(resolvePath(ctx.cwd, path), 'utf8');
  } catch (e) {
    throw new InputError(`${flag}: cannot read ${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

function positiveDuration(flag: string, value: string): number {
  const seconds = durationFlag(flag, value);
  if (seconds <= 0) throw new UsageError('must be longer than 0s', flag);
  return seconds;
}

export const keyServer = defineCommand({
  path: ['keyserver'],
  summary: 'Run a Keyless SSL key server (mutual TLS, port 2407) signing with keys from a directory',
  description: `
Answers keyless signing requests (the protocol Cloudflare documents for gokeyless) for the private
keys in --keys: PEM or DER PKCS#8 files named *.pem, *.key or *.der, looked up by the SHA-1 Subject
Key Identifier of their public key. The directory is reloaded when it changes; a reload that meets
an invalid file keeps the previous keys (also re-read on SIGHUP and every 30 s). Clients must
present a certificate signed by --ca (one that holds no certificate is refused at start). Stops on
SIGTERM or SIGINT.

Against hostile or broken clients: at most --max-connections open connections, and
--max-connections-per-source from one IP address (0: no such limit); further ones are closed at
accept. A connection must finish its TLS handshake within --handshake-timeout and is closed after
--idle-timeout without a request. Refusals and failed handshakes are counted by reason in the
metrics and logged at most ${LOG_LINES_PER_WINDOW} lines a minute per reason. Choosing the limits
behind SNAT: docs/operations.md.`,
  exitStatus: {
    0: 'stopped by SIGTERM or SIGINT',
    1: 'could not start (e.g. the port is in use) or failed while running',
  },
  options: {
    keys: { type: 'string', value: 'DIR', description: 'directory of private keys', required: true },
    ca: { type: 'string', value: 'FILE', description: 'CA certificate(s) (PEM) that client certificates must chain to', required: true },
    cert: { type: 'string', value: 'FILE', description: 'server certificate chain (PEM)', required: true },
    key: { type: 'string', value: 'FILE', description: 'server private key (PEM)', required: true },
    port: { type: 'string', value: 'N', description: 'TLS port', default: '2407' },
    address: { type: 'string', value: 'IP', description: 'address to listen on', default: '0.0.0.0' },
    'metrics-port': { type: 'string', value: 'N', description: 'serve Prometheus metrics on http://ADDRESS:N/metrics' },
    'max-concurrency': { type: 'string', value: 'N', description: 'signing operations at once', default: '64' },
    workers: { type: 'string', value: 'N', description: 'sign on N worker threads (0: on the main thread)', default: '0' },
    'allow-legacy-hashes': { type: 'boolean', description: 'also answer MD5-SHA1 and SHA-1 signing opcodes (refused by default: both hashes have practical collisions)' },
    'max-connections': { type: 'string', value: 'N', description: 'open connections at most, handshaking or not', default: String(DEFAULT_MAX_CONNECTIONS) },
    'max-connections-per-source': {
      type: 'string',
      value: 'N',
      description: 'open connections from one IP address at most (0: no per-source limit)',
      default: String(DEFAULT_MAX_CONNECTIONS_PER_SOURCE),
    },
    'handshake-timeout': {
      type: 'string',
      value: 'DURATION',
      description: 'close a connection whose TLS handshake is not done by then',
      default: `${DEFAULT_HANDSHAKE_TIMEOUT_MS / 1000}s`,
    },
    'idle-timeout': {
      type: 'string',
      value: 'DURATION',
      description: 'close a connection with no request for this long (0s: never)',
      default: `${DEFAULT_IDLE_TIMEOUT_MS / 60_000}m`,
    },
  },
  examples: ['dc-operator keyserver --keys /etc/keyless/keys --ca ca.crt --cert server.crt --key server.key --metrics-port 2406'],
  validate(v) {
    return {
      keys: v.keys,
      ca: v.ca,
      cert: v.cert,
      key: v.key,
      address: v.address,
      port: integerFlag('--port', v.port, 0, 65535),
      metricsPort: v['metrics-port'] === undefined ? undefined : integerFlag('--metrics-port', v['metrics-port'], 0, 65535),
      maxConcurrency: integerFlag('--max-concurrency', v['max-concurrency'], 1, 100_000),
      workers: integerFlag('--workers', v.workers, 0, 256),
      allowLegacyHashes: v['allow-legacy-hashes'] === true,
      maxConnections: integerFlag('--max-connections', v['max-connections'], 1, 1_000_000),
      maxConnectionsPerSource: integerFlag('--max-connections-per-source', v['max-connections-per-source'], 0, 1_000_000),
      handshakeTimeoutMs: positiveDuration('--handshake-timeout', v['handshake-timeout']) * 1000,
      idleTimeoutMs: durationFlag('--idle-timeout', v['idle-timeout']) * 1000,
    };
  },
  async run(c, ctx) {
    // A --ca without a certificate would make node trust no client at all: every client refused,
    // each with a log line, instead of one error at start.
    const [{ pem: ca }, cert, key] = await Promise.all([
      readCertificateFile(ctx.cwd, c.ca, '--ca'),
      readPem(ctx, '--cert', c.cert),
      readPem(ctx, '--key', c.key),
    ]);
    const logger = jsonLogger(ctx);
    let server;
    try {
      server = await startKeyServer({
        keysDir: resolvePath(ctx.cwd, c.keys),
        ca,
        cert,
        key,
        host: c.address,
        port: c.port,
        maxConcurrency: c.maxConcurrency,
        signingWorkers: c.workers,
        allowLegacyHashes: c.allowLegacyHashes,
        maxConnections: c.maxConnections,
        maxConnectionsPerSource: c.maxConnectionsPerSource,
        handshakeTimeoutMs: c.handshakeTimeoutMs,
        idleTimeoutMs: c.idleTimeoutMs,
        logger,
        ...(c.metricsPort !== undefined ? { metricsPort: c.metricsPort } : {}),
      });
    } catch (e) {
      throw new CommandFailed(`cannot start the key server: ${e instanceof Error ? e.message : String(e)}`);
    }
    const reload = (): void => {
      void server.keyDirectory?.reload();
    };
    process.on('SIGHUP', reload);
    const signal = await new Promise<string>((resolve) => {
      process.once('SIGTERM', () => resolve('SIGTERM'));
      process.once('SIGINT', () => resolve('SIGINT'));
    });
    process.off('SIGHUP', reload);
    logger.info('keyless: shutting down', { signal });
    await server.close();
    return 0;
  },
});
