/**
 * Prometheus metrics of the sidecar, in a registry of its own (tests run several sidecars in one
 * process). Credential expiry and the phase are read from the live state at scrape time,
 * so a replaced credential leaves no stale series.
 */
import { Counter, Gauge, Registry } from 'prom-client';
import type { MaterialStore } from './material.js';
import type { SidecarStatus } from './status.js';
import { signatureSchemeName } from '../tls/constants.js';

/** How the server authenticated: the three modes, plus ticket resumption (no signature). */
export type HandshakeMode = 'dc' | 'certificate' | 'keyless' | 'resumed';
/** Which implementation terminated TLS. */
export type TlsEngine = 'ours' | 'node';
export type HandshakeResult = 'success' | 'failure' | 'rejected';
export type ReloadResult = 'success' | 'failure' | 'unchanged';

export interface FallbackMetricState {
  readonly fallback: string;
  readonly ready: boolean;
  readonly keylessClientNotAfter?: Date | undefined;
}

export class SidecarMetrics {
  readonly registry = new Registry();
  private readonly handshakes: Counter<'mode' | 'engine' | 'result'>;
  private readonly reloads: Counter<'result'>;
  /** Open client connections, counted in plain JS and read at scrape time (two prom-client label lookups less per connection). */
  private readonly open = { connections: 0 };
  private readonly refusedConnections: Counter<'reason'>;
  private readonly upstreamErrors: Counter;
  private readonly keylessReloads: Counter<'result'>;
  private readonly keylessBadSignatures: Counter;
  /** Boxed so the scrape-time collector below can read it without aliasing `this`. */
  private readonly lastReloadFailure = { ms: 0 };
  /** Read at scrape time: the fallback's state (set by main once the keyless client exists). */
  private readonly fallbackSource: { read: (() => FallbackMetricState) | undefined } = { read: undefined };

  constructor(store: MaterialStore, status: SidecarStatus) {
    const registers = [this.registry];
    this.handshakes = new Counter({
      name: 'dc_sidecar_handshakes_total',
      help: 'TLS handshakes by authentication mode (dc, certificate, keyless), terminating engine and result.',
      labelNames: ['mode', 'engine', 'result'] as const,
      registers,
    });
    this.reloads = new Counter({
      name: 'dc_sidecar_credential_reloads_total',
      help: 'Reloads of the mounted credential directory by result (failure keeps the previous set).',
      labelNames: ['result'] as const,
      registers,
    });
    const open = this.open;
    new Gauge({
      name: 'dc_sidecar_open_connections',
      help: 'Client connections currently open (handshaking or proxying).',
      registers,
      collect() {
        this.set(open.connections);
      },
    });
    this.refusedConnections = new Counter({
      name: 'dc_sidecar_refused_connections_total',
      help: 'Connections closed before a handshake, by reason (limit, source-limit, draining, bad-hello, timeout, no-credential, protocol-version, fallback-none, no-fallback, keyserver-unreachable, keyless-client-certificate, keyless-misconfigured, no-common-scheme).',
      labelNames: ['reason'] as const,
      registers,
    });
    this.upstreamErrors = new Counter({
      name: 'dc_sidecar_upstream_errors_total',
      help: 'Failures to connect to the application or errors on its connection.',
      registers,
    });
    this.keylessReloads = new Counter({
      name: 'dc_sidecar_keyless_reloads_total',
      help: 'New keyless configurations (bundle or flags) by result: success = swapped in, failure = refused (invalid, expired client certificate, key server unreachable while the old one works).',
      labelNames: ['result'] as const,
      registers,
    });
    this.keylessBadSignatures = new Counter({
      name: 'dc_sidecar_keyless_bad_signatures_total',
      help: 'Signatures from the key server that did not verify with the certificate (wrong key or faulty key server); each failed its handshake. The sidecar checks a sample (--keyless-verify-one-in), every one for a while after a bad one.',
      registers,
    });
    const fallbackSource = this.fallbackSource;
    new Gauge({
      name: 'dc_sidecar_fallback_ready',
      help: 'Whether the configured fallback for non-DC clients works now (1) or not (0), by fallback (Keyless, CertificateKey, None, unset). None is ready: refusing non-DC clients is what it asks for.',
      labelNames: ['fallback'] as const,
      registers,
      collect() {
        this.reset();
        const state = fallbackSource.read?.();
        if (state) this.set({ fallback: state.fallback }, state.ready ? 1 : 0);
      },
    });
    new Gauge({
      name: 'dc_sidecar_keyless_client_certificate_expiry_timestamp_seconds',
      help: 'Expiry (Unix seconds) of the client certificate the sidecar presents to the key server.',
      registers,
      collect() {
        this.reset();
        const notAfter = fallbackSource.read?.().keylessClientNotAfter;
        if (notAfter) this.set(notAfter.getTime() / 1000);
      },
    });
    const lastReloadFailure = this.lastReloadFailure;
    new Gauge({
      name: 'dc_sidecar_credential_expiry_timestamp_seconds',
      help: 'Expiry (Unix seconds) of each loaded delegated credential, by algorithm; kind="certificate" for the certificate.',
      labelNames: ['kind', 'algorithm'] as const,
      registers,
      collect() {
        this.reset();
        const material = store.current;
        if (!material) return;
        for (const e of material.credentials.entries) {
          this.set({ kind: 'delegated_credential', algorithm: signatureSchemeName(e.dcCertVerifyAlgorithm) }, e.expiresAt.getTime() / 1000);
        }
        this.set({ kind: 'certificate', algorithm: '' }, material.certificateNotAfter.getTime() / 1000);
      },
    });
    new Gauge({
      name: 'dc_sidecar_last_reload_failure_timestamp_seconds',
      help: 'When the last credential reload failed (0: never).',
      registers,
      collect() {
        this.set(lastReloadFailure.ms / 1000);
      },
    });
    new Gauge({
      name: 'dc_sidecar_phase',
      help: 'The lifecycle phase: 1 for the current one.',
      labelNames: ['phase'] as const,
      registers,
      collect() {
        const current = status.current.phase;
        for (const phase of ['initializing', 'serving', 'reloading', 'draining'] as const) this.set({ phase }, phase === current ? 1 : 0);
      },
    });
  }

  handshake(mode: HandshakeMode, engine: TlsEngine, result: HandshakeResult): void {
    this.handshakes.inc({ mode, engine, result });
  }

  /** Where the fallback gauges read from at scrape time. */
  watchFallback(read: () => FallbackMetricState): void {
    this.fallbackSource.read = read;
  }

  keylessReload(result: 'success' | 'failure'): void {
    this.keylessReloads.inc({ result });
  }

  keylessBadSignature(): void {
    this.keylessBadSignatures.inc();
  }

  reload(result: ReloadResult): void {
    this.reloads.inc({ result });
    if (result === 'failure') this.lastReloadFailure.ms = Date.now();
  }

  connectionOpened(): void {
    this.open.connections++;
  }

  /** Bound: the connection tracker's release callback for every connection, without a closure each. */
  readonly connectionClosed = (): void => {
    this.open.connections--;
  };

  refused(reason: string): void {
    this.refusedConnections.inc({ reason });
  }

  upstreamError(): void {
    this.upstreamErrors.inc();
  }

  /** Current value of a counter series (tests and logs). */
  async value(name: string, labels: Record<string, string> = {}): Promise<number> {
    const metric = this.registry.getSingleMetric(name);
    if (!metric) return 0;
    const { values } = await metric.get();
    let sum = 0;
    for (const v of values) {
      const l = v.labels as Record<string, string | number | undefined>;
      if (Object.entries(labels).every(([k, want]) => String(l[k]) === want)) sum += v.value;
    }
    return sum;
  }
}
