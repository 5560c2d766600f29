/**
 * `dc-operator sidecar`: wires the watcher, the status, the metrics server, the listener and the
 * signals together.
 *
 *   serveUntilSignal(config): Promise<number>  (`dc-operator sidecar`, src/cli/commands/sidecar.ts,
 *                                               after the CLI framework parsed and validated the flags)
 *   runSidecar(config) -> RunningSidecar        (also used by tests and benches)
 */
import { createJsonLog } from '../net/log.js';
import { ConnectionTracker } from '../net/connection-tracker.js';
import type { Signer } from '../tls/signer.js';
import { nativeAeadStatus } from '../tls/native/aead.js';
import { ConfigError, type SidecarConfig } from './config.js';
import { CredentialWatcher, type ReloadOutcome, type ReloadTrigger } from './credential-watcher.js';
import { startHealthServer, type HealthServer } from './health-server.js';
import { expiredCredentialsPolicy, loadServingMaterial, MaterialStore, type ServingMaterial } from './material.js';
import { SidecarMetrics } from './metrics.js';
import { createOursEngine } from './ours-engine.js';
import { fallbackStatement, fallbackSummary } from './fallback.js';
import { KeylessFallback, keylessFromFlags } from './keyless-fallback.js';
import { ServingReport } from './serving-report.js';
import { SidecarStatus } from './status.js';
import { listen, type Listener, type TerminatorOptions } from './terminator.js';
import { warmUpConnections, warmUpSidecar } from './warm-up.js';

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
  /** Runs the loopback warm-up instead of warmUpConnections (tests: one that fails). */
  readonly connectionWarmUp?: typeof warmUpConnections;
  /**
   * Aborted when a stop is asked for during start-up (SIGTERM before ready): every start-up step
   * that can wait (the key server's validation ping, the first read of --dc-dir, the warm-ups)
   * ends at once and runSidecar rejects with StoppedDuringStartup instead of opening its ports.
   */
  readonly signal?: AbortSignal;
}

/** runSidecar was stopped (`stopped`) before it opened its ports: nothing is left running. */
export class StoppedDuringStartup extends Error {
  constructor() {
    super('stopped during start-up');
    this.name = 'StoppedDuringStartup';
  }
}

/**
 * `step`, or StoppedDuringStartup as soon as `signal` aborts. The step itself is not cancelled
 * here: what it holds is released by the clean-up that follows (the keyless client is closed,
 * which fails its ping at once); a file read the disk never answers is left to finish on its own.
 */
async function unlessStopped<T>(step: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return step;
  if (signal.aborted) throw new StoppedDuringStartup();
  let onAbort: () => void = () => undefined;
  const aborted = new Promise<never>((_resolve, reject) => {
    onAbort = () => reject(new StoppedDuringStartup());
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([step, aborted]);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

export interface RunningSidecar {
  readonly port: number;
  readonly metricsPort: number;
  readonly store: MaterialStore;
  readonly status: SidecarStatus;
  readonly metrics: SidecarMetrics;
  readonly tracker: ConnectionTracker;
  /** The keyless client kept in step with the bundle (undefined when a ready signer was given). */
  readonly keyless: KeylessFallback | undefined;
  /** Logs the serving summary now (tests; otherwise every --report-interval). */
  report(): void;
  /** SIGHUP: forced reload. */
  reload(trigger?: ReloadTrigger): Promise<ReloadOutcome>;
  /** SIGTERM: stop accepting, wait for open connections up to the drain timeout, close the rest. */
  drain(): Promise<{ finished: number; cut: number }>;
  /** Immediate stop (tests). */
  close(): Promise<void>;
}

export function createLogger(level: string): SidecarLogger {
  return createJsonLog({ component: 'sidecar', level });
}

export async function runSidecar(options: RunSidecarOptions): Promise<RunningSidecar> {
  const log = options.log ?? createLogger(options.logLevel);
  const store = new MaterialStore();
  const status = new SidecarStatus();
  const metrics = new SidecarMetrics(store, status);
  const tracker = new ConnectionTracker(options.maxConnections, options.maxConnectionsPerSource);
  const report = new ServingReport();
  const given = options.keylessSigner;
  const signal = options.signal;
  const stopped = (): boolean => signal?.aborted ?? false;
  const override = options.keyless && !given ? await unlessStopped(keylessFromFlags(options.keyless), signal) : undefined;
  const keyless = given
    ? undefined
    : new KeylessFallback({
        timeoutMs: options.keyless?.timeoutMs ?? options.keylessTimeoutMs,
        log,
        onReload: (result) => metrics.keylessReload(result),
        verifyOneIn: options.keylessVerifyOneIn,
        onBadSignature: () => metrics.keylessBadSignature(),
        ...(override ? { override } : {}),
      });
  const keylessFor = given ? () => given : (material: ServingMaterial) => keyless?.signerFor(material);
  const keylessUnavailable = () => keyless?.unavailable();
  metrics.watchFallback(() => ({ ...fallbackSummary(store.current, keyless), keylessClientNotAfter: keyless?.config?.clientNotAfter }));

  // The sentence about non-DC clients: said at startup and whenever it changes.
  let lastStatement = '';
  const stateFallback = (): void => {
    const material = store.current;
    if (!material) return;
    const s = fallbackStatement(material, keyless, options.certificateEngine);
    if (s.message === lastStatement) return;
    lastStatement = s.message;
    log[s.level](s.message, { fallback: fallbackSummary(material, keyless).fallback });
  };
  const watcher = new CredentialWatcher({
    dir: options.dcDir,
    store,
    load: (dir, current) =>
      loadServingMaterial(dir, {
        keylessConfigured: given !== undefined || options.keyless !== undefined,
        expiredCredentials: expiredCredentialsPolicy(current, new Date()),
      }),
    debounceMs: options.reloadDebounceMs,
    recheckIntervalMs: options.recheckIntervalMs,
    log,
    onReloadStart: () => status.reloadStarted(),
    onReloadEnd: (_trigger, outcome) => {
      metrics.reload(outcome.result);
      status.reloadFinished(store.current !== undefined);
      // Every reload, unchanged ones included: a keyless configuration refused because its key
      // server did not answer is tried again.
      void followBundle();
    },
  });
  const followBundle = async (): Promise<void> => {
    await keyless?.update(store.current);
    stateFallback();
  };
  // The steps that wait on something outside (the key server's validation ping: up to
  // --keyless-timeout; the first read of --dc-dir) give way to a stop at once: closing the keyless
  // client fails its ping, and the pod being deleted is not held until a deadline.
  let initial: ReloadOutcome;
  try {
    await unlessStopped(keyless?.start() ?? Promise.resolve(), signal);
    initial = await unlessStopped(watcher.start(), signal);
    await unlessStopped(followBundle(), signal);
  } catch (err) {
    watcher.stop();
    await keyless?.close();
    throw err;
  }
  if (initial.result === 'failure') log.warn('not ready: the first credential load failed; watching for a valid version', { file: initial.error.file });

  const flushReport = (): void => {
    const line = report.flush(options.reportIntervalMs, fallbackSummary(store.current, keyless));
    if (line) log.info(line.message, line.meta);
  };
  const reportTimer =
    options.reportIntervalMs > 0
      ? setInterval(() => {
          // One health ping first when the key server was unreachable, so the line says how it is now.
          void (keyless?.probe() ?? Promise.resolve()).finally(flushReport);
        }, options.reportIntervalMs)
      : undefined;
  reportTimer?.unref();
  const stop = async (): Promise<void> => {
    clearInterval(reportTimer);
    await keyless?.close();
  };

  const terminator: TerminatorOptions = {
    store,
    metrics,
    tracker,
    policy: { certificateEngine: options.certificateEngine, keylessFor, keylessUnavailable },
    upstream: {
      host: options.upstreamHost,
      port: options.upstreamPort,
      connectTimeoutMs: options.connectTimeoutMs,
      idleTimeoutMs: options.idleTimeoutMs,
    },
    handshakeTimeoutMs: options.handshakeTimeoutMs,
    alpnProtocols: options.alpnProtocols,
    report,
    ours: createOursEngine({ store, keylessFor, alpnProtocols: options.alpnProtocols }),
    log,
  };

  // Before the health server and the listener: the first clients find the handshake code
  // compiled, and none shares the core with the warm-up. It delays readiness by its length
  // (0.3-0.6 s of CPU for 200 handshakes on a busy core, then 0.3-0.5 s for 100 loopback
  // connections; bench/results/sidecar-perf.md, sections 9 and 10).
  const material = store.current;
  if (options.warmUpHandshakes > 0 && material) {
    try {
      const r = await warmUpSidecar({
        handshakes: options.warmUpHandshakes,
        material,
        certificateEngine: options.certificateEngine,
        keylessConfigured: given !== undefined || (keyless?.configured ?? false),
        alpnProtocols: options.alpnProtocols,
        ...(signal ? { stopped } : {}),
      });
      log.info('warm-up done', { handshakes: r.handshakes, ...(r.incomplete.length ? { incomplete: r.incomplete } : {}), ...(r.leftOut.length ? { leftOut: r.leftOut } : {}), cpuMs: Math.round(r.cpuMs), wallMs: Math.round(r.wallMs) });
    } catch (err) {
      log.warn('warm-up failed; serving without it', { error: err instanceof Error ? err.message : String(err) });
    }
  }
  if (options.warmUpConnections > 0 && material && !stopped()) {
    try {
      const r = await (options.connectionWarmUp ?? warmUpConnections)(options.warmUpConnections, terminator, signal ? stopped : undefined);
      const meta = { connections: r.connections, ...(r.failed ? { failed: r.failed, firstFailure: r.firstFailure } : {}), cpuMs: Math.round(r.cpuMs), wallMs: Math.round(r.wallMs) };
      if (r.failed) log.warn('connection warm-up done, with a failed connection; serving anyway', meta);
      else log.info('connection warm-up done', meta);
    } catch (err) {
      log.warn('connection warm-up failed; serving without it', { error: err instanceof Error ? err.message : String(err) });
    }
  }

  if (stopped()) {
    // Never ready: a pod being deleted while it warmed up ends here, promptly.
    watcher.stop();
    await stop();
    throw new StoppedDuringStartup();
  }

  let health: HealthServer | undefined;
  let listener: Listener | undefined;
  try {
    health = await startHealthServer({
      host: options.metricsHost,
      port: options.metricsPort,
      status,
      store,
      metrics,
      fallback: () => fallbackSummary(store.current, keyless),
      capabilities: {
        get keyless() {
          return given !== undefined || (keyless?.configured ?? false);
        },
      },
    });
    listener = await listen(options.listenHost, options.listenPort, terminator);
  } catch (err) {
    watcher.stop();
    await health?.close();
    await stop();
    throw err;
  }
  log.info('sidecar listening', {
    listen: `${options.listenHost || '*'}:${listener.port}`,
    upstream: `${options.upstreamHost}:${options.upstreamPort}`,
    metricsPort: health.port,
    certificateEngine: options.certificateEngine,
    keyless: given !== undefined ? 'given' : keyless?.source ?? 'none',
    // Which record encryption our engine uses: 'native' (the addon), or node:crypto and why.
    recordAead: nativeAeadStatus(),
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
      await stop();
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
    keyless,
    report: flushReport,
    reload: async (trigger = 'signal') => {
      const outcome = await watcher.reload(trigger, true);
      await followBundle();
      return outcome;
    },
    drain,
    close: async () => {
      if (!drained) {
        status.drain(new Date());
        listener.stopAccepting();
        watcher.stop();
        drained = tracker.drain(new Date()).then(async (r) => {
          await health.close();
          await stop();
          return r;
        });
      }
      await drained;
    },
  };
}

/**
 * Runs a validated configuration until SIGTERM/SIGINT (then drains) and returns the exit code.
 * SIGHUP forces a credential reload. The `dc-operator sidecar` command runs it.
 */
export async function serveUntilSignal(config: SidecarConfig, log: SidecarLogger = createLogger(config.logLevel)): Promise<number> {
  // The handlers come first: a signal during start-up (the warm-ups take a while) must stop it,
  // not kill the process (143) or, as PID 1 without a handler, be dropped until SIGKILL.
  let signalled: (signal: string) => void = () => undefined;
  let stopSignal: string | undefined;
  let sidecar: RunningSidecar | undefined;
  const startUp = new AbortController();
  // A SIGHUP before the sidecar runs is kept, not dropped: "re-read the credentials" still holds
  // for files rotated while it started (the first read may have come before them).
  let reloadAfterStartUp = false;
  const stopped = new Promise<void>((resolve) => {
    signalled = (signal) => {
      if (stopSignal) {
        // A second stop signal (a second Ctrl-C) does not wait out the drain: what is still open
        // is cut now, as a process without handlers would have been killed.
        log.warn('second stop signal: cutting open connections', { signal, cut: sidecar?.tracker.cutAll() ?? 0 });
        return;
      }
      stopSignal = signal;
      log.info('signal received', { signal });
      startUp.abort();
      resolve();
    };
  });
  const onTerm = (): void => signalled('SIGTERM');
  const onInt = (): void => signalled('SIGINT');
  const onHup = (): void => {
    if (!sidecar) {
      reloadAfterStartUp = true;
      log.info('signal received', { signal: 'SIGHUP', during: 'start-up', action: 'reloading the credentials once started' });
      return;
    }
    log.info('signal received', { signal: 'SIGHUP' });
    void sidecar.reload('signal');
  };
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onInt);
  process.on('SIGHUP', onHup);
  try {
    try {
      sidecar = await runSidecar({ ...config, log, signal: startUp.signal });
    } catch (err) {
      if (err instanceof StoppedDuringStartup) {
        log.info('stopped during start-up; never ready');
        return 0;
      }
      if (err instanceof ConfigError) throw err;
      log.error('the sidecar could not start', { error: err instanceof Error ? err.message : String(err) });
      return 1;
    }
    // One reload for however many SIGHUPs came during start-up, as soon as it is listening.
    if (reloadAfterStartUp && !stopSignal) {
      log.info('reloading the credentials for the SIGHUP received during start-up');
      void sidecar.reload('signal');
    }
    await stopped;
    await sidecar.drain();
    return 0;
  } finally {
    process.off('SIGTERM', onTerm);
    process.off('SIGINT', onInt);
    process.off('SIGHUP', onHup);
  }
}
