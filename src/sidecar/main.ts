/**
 * `dc-operator sidecar`: wires the watcher, the status, the metrics server, the listener and the
 * signals together.
 *
 *   main(argv) -> run(args): Promise<number>  (exit code; flags validated before anything starts)
 *   runSidecar(config) -> RunningSidecar      (also used by tests and benches)
 */
import { readFile } from 'node:fs/promises';
import winston from 'winston';
import { KeylessClient } from '../keyless/client.js';
import { KeylessSigner } from '../signer/keyless.js';
import { ConnectionTracker } from '../net/connection-tracker.js';
import type { Signer } from '../tls/signer.js';
import { ConfigError, helpText, parseArgs, validateConfig, type SidecarConfig } from './config.js';
import { CredentialWatcher, type ReloadOutcome, type ReloadTrigger } from './credential-watcher.js';
import { startHealthServer, type HealthServer } from './health-server.js';
import { loadServingMaterial, MaterialStore, type ServingMaterial } from './material.js';
import { SidecarMetrics } from './metrics.js';
import { createOursEngine } from './ours-engine.js';
import { SidecarStatus } from './status.js';
import { listen, type Listener, type TerminatorOptions } from './terminator.js';

export interface SidecarLogger {
  error(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
  info(message: string, meta?: Record<string, unknown>): void;
  debug(message: string, meta?: Record<string, unknown>): void;
}

export interface RunSidecarOptions extends SidecarConfig {
  readonly log?: SidecarLogger;
  /** A ready signer instead of connecting to `keyless` (tests). */
  readonly keylessSigner?: Signer;
}

export interface RunningSidecar {
  readonly port: number;
  readonly metricsPort: number;
  readonly store: MaterialStore;
  readonly status: SidecarStatus;
  readonly metrics: SidecarMetrics;
  readonly tracker: ConnectionTracker;
  /** SIGHUP: forced reload. */
  reload(trigger?: ReloadTrigger): Promise<ReloadOutcome>;
  /** SIGTERM: stop accepting, wait for open connections up to the drain timeout, close the rest. */
  drain(): Promise<{ finished: number; cut: number }>;
  /** Immediate stop (tests). */
  close(): Promise<void>;
}

export function createLogger(level: string): SidecarLogger {
  return winston.createLogger({
    level,
    format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    defaultMeta: { component: 'sidecar' },
    transports: [new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'debug'] })],
  });
}

/**
 * Keyless pull: one pooled mTLS client to the key server, and a KeylessSigner per loaded
 * certificate (its key names the key at the server, by SKI, and checks every signature), so a
 * certificate renewed with a new key is served through the new key after the reload.
 */
interface Keyless {
  readonly signerFor: (material: ServingMaterial) => Signer;
  close(): Promise<void>;
}

async function startKeyless(config: SidecarConfig): Promise<Keyless | undefined> {
  const k = config.keyless;
  if (!k) return undefined;
  const read = async (flag: string, file: string): Promise<Buffer> => {
    try {
      return await readFile(file);
    } catch (err) {
      throw new ConfigError(flag, `cannot read ${file}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  const ca = await read('keyless-ca', k.caFile);
  const clientCert = await read('keyless-client-cert', k.clientCertFile);
  const clientKey = await read('keyless-client-key', k.clientKeyFile);
  let client: KeylessClient;
  try {
    client = new KeylessClient({ address: k.address, ca, cert: clientCert, key: clientKey, timeoutMs: k.timeoutMs });
  } catch (err) {
    throw new ConfigError('keyless-address', err instanceof Error ? err.message : String(err));
  }
  const signers = new WeakMap<ServingMaterial, Signer>();
  return {
    signerFor(material) {
      let signer = signers.get(material);
      if (!signer) {
        const certificate = material.credentials.certificateChain[0]!;
        signer = new KeylessSigner({ client, address: k.address, ca, clientCert, clientKey, certificate, timeoutMs: k.timeoutMs });
        signers.set(material, signer);
      }
      return signer;
    },
    close: () => client.close(),
  };
}

export async function runSidecar(options: RunSidecarOptions): Promise<RunningSidecar> {
  const log = options.log ?? createLogger(options.logLevel);
  const store = new MaterialStore();
  const status = new SidecarStatus();
  const metrics = new SidecarMetrics(store, status);
  const tracker = new ConnectionTracker(options.maxConnections, options.maxConnectionsPerSource);
  const ownedKeyless = options.keylessSigner ? undefined : await startKeyless(options);
  const given = options.keylessSigner;
  const keylessFor = given ? () => given : ownedKeyless?.signerFor;
  const keyless = keylessFor !== undefined;

  const watcher = new CredentialWatcher({
    dir: options.dcDir,
    store,
    load: (dir) => loadServingMaterial(dir, { keylessConfigured: keyless }),
    debounceMs: options.reloadDebounceMs,
    recheckIntervalMs: options.recheckIntervalMs,
    log,
    onReloadStart: () => status.reloadStarted(),
    onReloadEnd: (_trigger, outcome) => {
      metrics.reload(outcome.result);
      status.reloadFinished(store.current !== undefined);
    },
  });
  const initial = await watcher.start();
  if (initial.result === 'failure') log.warn('not ready: the first credential load failed; watching for a valid version', { file: initial.error.file });

  let health: HealthServer | undefined;
  let listener: Listener | undefined;
  try {
    health = await startHealthServer({
      host: options.metricsHost,
      port: options.metricsPort,
      status,
      store,
      metrics,
      capabilities: { keyless },
    });
    const terminator: TerminatorOptions = {
      store,
      metrics,
      tracker,
      policy: { certificateEngine: options.certificateEngine, keylessFor },
      upstream: {
        host: options.upstreamHost,
        port: options.upstreamPort,
        connectTimeoutMs: options.connectTimeoutMs,
        idleTimeoutMs: options.idleTimeoutMs,
      },
      handshakeTimeoutMs: options.handshakeTimeoutMs,
      alpnProtocols: options.alpnProtocols,
      ours: createOursEngine({ store, keylessFor, alpnProtocols: options.alpnProtocols }),
      log,
    };
    listener = await listen(options.listenHost, options.listenPort, terminator);
  } catch (err) {
    watcher.stop();
    await health?.close();
    await ownedKeyless?.close();
    throw err;
  }
  log.info('sidecar listening', {
    listen: `${options.listenHost || '*'}:${listener.port}`,
    upstream: `${options.upstreamHost}:${options.upstreamPort}`,
    metricsPort: health.port,
    certificateEngine: options.certificateEngine,
    keyless,
  });

  let drained: Promise<{ finished: number; cut: number }> | undefined;
  const drain = (): Promise<{ finished: number; cut: number }> => {
    drained ??= (async () => {
      const deadline = new Date(Date.now() + options.drainTimeoutMs);
      status.drain(deadline);
      listener.stopAccepting();
      watcher.stop();
      log.info('draining', { open: tracker.size, deadline: deadline.toISOString() });
      const result = await tracker.drain(deadline);
      log.info('drained', result);
      await health.close();
      await ownedKeyless?.close();
      return result;
    })();
    return drained;
  };
  return {
    port: listener.port,
    metricsPort: health.port,
    store,
    status,
    metrics,
    tracker,
    reload: (trigger = 'signal') => watcher.reload(trigger, true),
    drain,
    close: async () => {
      if (!drained) {
        status.drain(new Date());
        listener.stopAccepting();
        watcher.stop();
        drained = tracker.drain(new Date()).then(async (r) => {
          await health.close();
          await ownedKeyless?.close();
          return r;
        });
      }
      await drained;
    },
  };
}

/** Parses, validates and runs until SIGTERM/SIGINT. Returns the exit code. */
export async function run(args: readonly string[], env: Readonly<Record<string, string | undefined>> = process.env): Promise<number> {
  let config: SidecarConfig;
  try {
    const parsed = parseArgs(args, env);
    if (parsed.help) {
      process.stdout.write(helpText());
      return 0;
    }
    config = validateConfig(parsed.values);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`dc-operator sidecar: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  try {
    return await serveUntilSignal(config);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`dc-operator sidecar: ${err.message}\n`);
    return 2;
  }
}

/**
 * Runs a validated configuration until SIGTERM/SIGINT (then drains) and returns the exit code.
 * SIGHUP forces a credential reload. Shared by `run` and the dc-operator CLI command.
 */
export async function serveUntilSignal(config: SidecarConfig, log: SidecarLogger = createLogger(config.logLevel)): Promise<number> {
  let sidecar: RunningSidecar;
  try {
    sidecar = await runSidecar({ ...config, log });
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    log.error('the sidecar could not start', { error: err instanceof Error ? err.message : String(err) });
    return 1;
  }
  const onHup = (): void => {
    log.info('signal received', { signal: 'SIGHUP' });
    void sidecar.reload('signal');
  };
  process.on('SIGHUP', onHup);
  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      log.info('signal received', { signal });
      void sidecar.drain().then(() => resolve());
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  process.off('SIGHUP', onHup);
  return 0;
}

export async function main(argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  process.exitCode = await run(argv);
}
