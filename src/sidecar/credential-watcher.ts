/**
 * Keeps the MaterialStore in step with the mounted DC Secret.
 *
 * Triggers: kubelet swapping `..data` (fs.watch on the directory: the per-key symlinks never
 * change, only `..data` is renamed over), SIGHUP (a forced reload), and a slow periodic re-check
 * in case a watch event was lost (inotify queue overflow, a watch that died with the directory).
 * Events are debounced; reloads never overlap (a trigger during a reload runs one more after it).
 *
 * A reload reads and validates everything (material.ts) and then swaps one reference. When the
 * new version is invalid the old one keeps serving; the failure is logged with the file and the
 * reason and counted.
 */
import { watch, type FSWatcher } from 'node:fs';
import { KUBELET_DATA_LINK, MaterialError, type MaterialStore, type ServingMaterial } from './material.js';
import { signatureSchemeName } from '../tls/constants.js';
import { isServableAt } from '../tls/delegated/index.js';

export type ReloadTrigger = 'initial' | 'watch' | 'signal' | 'periodic';

export type ReloadOutcome =
  | { readonly result: 'success'; readonly material: ServingMaterial }
  | { readonly result: 'unchanged' }
  | { readonly result: 'failure'; readonly error: MaterialError };

export interface WatcherLogger {
  info(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
  error(message: string, meta?: Record<string, unknown>): void;
}

export interface CredentialWatcherOptions {
  readonly dir: string;
  readonly store: MaterialStore;
  /**
   * Reads and validates the directory (loadServingMaterial bound to its options). `current` is
   * what is served now, if anything: the load may be stricter when there is something to keep.
   */
  readonly load: (dir: string, current: ServingMaterial | undefined) => Promise<ServingMaterial>;
  /** Quiet time after the last watch event before reloading (default 200 ms). */
  readonly debounceMs?: number;
  /** Safety-net re-check interval (default 60 s); 0 disables it. */
  readonly recheckIntervalMs?: number;
  readonly log: WatcherLogger;
  /** Called when a reload starts and when it ends (status phase and metrics). */
  readonly onReloadStart?: (trigger: ReloadTrigger) => void;
  readonly onReloadEnd?: (trigger: ReloadTrigger, outcome: ReloadOutcome) => void;
}

export class CredentialWatcher {
  private fsWatcher: FSWatcher | undefined;
  private debounceTimer: NodeJS.Timeout | undefined;
  private recheckTimer: NodeJS.Timeout | undefined;
  private running: Promise<ReloadOutcome> | undefined;
  private queued: { trigger: ReloadTrigger; force: boolean } | undefined;
  private stopped = false;
  private readonly debounceMs: number;
  private readonly recheckIntervalMs: number;

  constructor(private readonly options: CredentialWatcherOptions) {
    this.debounceMs = options.debounceMs ?? 200;
    this.recheckIntervalMs = options.recheckIntervalMs ?? 60_000;
  }

  /** Loads once, then starts watching. Resolves with the initial outcome (failure keeps watching). */
  async start(): Promise<ReloadOutcome> {
    const outcome = await this.reload('initial', true);
    if (this.stopped) return outcome;
    this.startFsWatch();
    if (this.recheckIntervalMs > 0) {
      this.recheckTimer = setInterval(() => {
        if (!this.fsWatcher) this.startFsWatch(); // the watch died (directory replaced): try again
        void this.reload('periodic', false);
      }, this.recheckIntervalMs);
      this.recheckTimer.unref();
    }
    return outcome;
  }

  stop(): void {
    this.stopped = true;
    this.fsWatcher?.close();
    this.fsWatcher = undefined;
    clearTimeout(this.debounceTimer);
    clearInterval(this.recheckTimer);
  }

  /**
   * Reloads now. `force` validates and swaps even when the files did not change (SIGHUP: e.g. to
   * re-check expiry). Concurrent calls coalesce: at most one reload runs and one waits.
   */
  reload(trigger: ReloadTrigger, force: boolean): Promise<ReloadOutcome> {
    if (this.running) {
      this.queued = { trigger, force: force || (this.queued?.force ?? false) };
      return this.running.then(() => this.running ?? this.reload(trigger, force));
    }
    const run = this.runReload(trigger, force).finally(() => {
      this.running = undefined;
      const next = this.queued;
      this.queued = undefined;
      if (next && !this.stopped) void this.reload(next.trigger, next.force);
    });
    this.running = run;
    return run;
  }

  private async runReload(trigger: ReloadTrigger, force: boolean): Promise<ReloadOutcome> {
    const { store, log } = this.options;
    this.options.onReloadStart?.(trigger);
    let outcome: ReloadOutcome;
    try {
      const next = await this.options.load(this.options.dir, store.current);
      // Stopped while the files were read (a stop during start-up abandons the first read): what
      // came back is not served, and nothing is logged about a sidecar that has already stopped.
      if (this.stopped) return { result: 'unchanged' };
      const current = store.current;
      if (!force && current && current.fingerprint === next.fingerprint) {
        outcome = { result: 'unchanged' };
      } else {
        store.replace(next);
        outcome = { result: 'success', material: next };
        log.info('credentials loaded', {
          trigger,
          source: next.source,
          delegatedCredentials: next.credentials.entries.map((e) => ({
            algorithm: signatureSchemeName(e.dcCertVerifyAlgorithm),
            expiresAt: e.expiresAt.toISOString(),
          })),
          certificateKey: next.certificateKey !== undefined,
        });
        this.warnAboutUnservable(next);
      }
    } catch (cause) {
      if (this.stopped) return { result: 'unchanged' };
      const error =
        cause instanceof MaterialError
          ? cause
          : new MaterialError(this.options.dir, cause instanceof Error ? cause.message : String(cause), { cause });
      outcome = { result: 'failure', error };
      log.error('credential reload failed; still serving the previous credentials', {
        trigger,
        file: error.file,
        reason: error.reason,
        serving: store.current?.source ?? 'nothing',
      });
    }
    this.options.onReloadEnd?.(trigger, outcome);
    return outcome;
  }

  /** Credentials loaded but not served now (BuildOptions.expired 'keep', or a clock behind the issuer's). */
  private warnAboutUnservable(material: ServingMaterial): void {
    const nowMs = Date.now();
    for (const e of material.credentials.entries) {
      if (isServableAt(e, nowMs)) continue;
      const expired = e.expiresAt.getTime() <= nowMs;
      this.options.log.warn(
        expired
          ? 'a delegated credential has expired; serving without it until the operator writes a new one'
          : 'a delegated credential has more than 7 days left by this clock (is it behind?); it is served once within 7 days',
        { source: material.source, algorithm: signatureSchemeName(e.dcCertVerifyAlgorithm), expiresAt: e.expiresAt.toISOString() },
      );
    }
  }

  private startFsWatch(): void {
    if (this.stopped) return;
    try {
      const w = watch(this.options.dir, { persistent: false }, (_event, filename) => {
        // kubelet renames ..data_tmp over ..data; the key symlinks never change. A null filename
        // (some platforms) or any file in a plain (non-kubelet) directory also counts.
        const name = filename === null ? null : String(filename);
        if (name === null || name.startsWith(KUBELET_DATA_LINK) || !name.startsWith('..')) this.schedule();
      });
      w.on('error', (err) => {
        this.options.log.warn('watch on the credential directory failed; the periodic re-check continues', {
          dir: this.options.dir,
          error: err.message,
        });
        w.close();
        if (this.fsWatcher === w) this.fsWatcher = undefined;
      });
      this.fsWatcher = w;
    } catch (err) {
      this.options.log.warn('cannot watch the credential directory; relying on the periodic re-check', {
        dir: this.options.dir,
        error: err instanceof Error ? err.message : String(err),
      });
    }
  }

  private schedule(): void {
    if (this.stopped) return;
    clearTimeout(this.debounceTimer);
    this.debounceTimer = setTimeout(() => void this.reload('watch', false), this.debounceMs);
  }
}
