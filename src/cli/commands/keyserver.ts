import { readFile } from 'node:fs/promises';
import { defineCommand, type CommandContext } from '../framework/command.js';
import { CommandFailed } from '../framework/errors.js';
import { resolvePath } from '../framework/files.js';
import { integerFlag } from '../framework/flags.js';
import { startKeyServer } from '../../keyless/server.js';
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
    throw new CommandFailed(`${flag}: cannot read ${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

export const keyServer = defineCommand({
  path: ['keyserver'],
  summary: 'Run a Keyless SSL key server (mutual TLS, port 2407) signing with keys from a directory',
  description: `
Answers keyless signing requests (the protocol Cloudflare documents for gokeyless) for the private
keys in --keys: PEM or DER PKCS#8 files named *.pem, *.key or *.der, looked up by the SHA-1 Subject
Key Identifier of their public key. The directory is reloaded when it changes; a reload that meets
an invalid file keeps the previous keys (also re-read on SIGHUP and every 30 s). Clients must
present a certificate signed by --ca. Stops on SIGTERM or SIGINT.`,
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
    };
  },
  async run(c, ctx) {
    const [ca, cert, key] = await Promise.all([readPem(ctx, '--ca', c.ca), readPem(ctx, '--cert', c.cert), readPem(ctx, '--key', c.key)]);
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
