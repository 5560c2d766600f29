// `dc-operator webhook`: wires the admission handler, the HTTPS server, the serving certificate
// source and the cluster version together, and keeps the certificate fresh.

import {
  AdmissionregistrationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  VersionApi,
} from '@kubernetes/client-node';
import type { Registry } from 'prom-client';
import { createJsonLog } from '../net/log.js';
import { admit, type DelegatedCredentialLookup } from './admission.js';
import { DC_GROUP, DC_PLURAL, DC_VERSION, DEFAULT_SIDECAR_CONFIG, type SidecarConfig } from './config.js';
import { createWebhookServer, type AdmissionStats } from './server.js';
import { WebhookMetrics } from './metrics.js';
import { parseServerVersion, sidecarModeFor, type SidecarMode } from './server-version.js';
import {
  DirectoryCertificates,
  SelfBootstrappedCertificates,
  type Logger,
  type ServingCertificateSource,
} from './serving-certs.js';
import { DEFAULT_CONFIGURATION_NAME } from './webhook-configuration.js';
import { serviceDnsNames } from '../pki/certs.js';

export interface WebhookOptions {
  /** Defaults to the in-cluster service account or $KUBECONFIG. */
  kubeConfig?: KubeConfig;
  /** The operator's namespace: home of the CA Secret, and never injected. */
  namespace: string;
  host?: string;
  /** 0 picks a free port (tests). */
  port: number;
  /** Service in front of the webhook; its DNS names go into the serving certificate. */
  serviceName: string;
  /** IP SANs; 127.0.0.1 by default so a local API server can call https://127.0.0.1:PORT. */
  ipAddresses?: string[];
  extraDnsNames?: string[];
  webhookConfigurationName?: string;
  /** 'self': bootstrap a CA in a Secret. 'cert-manager': serve tls.crt/tls.key from certDir. */
  certMode?: 'self' | 'cert-manager';
  certDir?: string;
  caSecretName?: string;
  caLifetimeMs?: number;
  servingLifetimeMs?: number;
  /** Wait this long after a new caBundle is written before serving a certificate of the new CA (30 s). */
  trustPropagationMs?: number;
  sidecar?: Partial<SidecarConfig>;
  excludedNamespaces?: string[];
  /** Skip the /version probe and use this shape (tests, or a cluster whose /version lies). */
  sidecarMode?: SidecarMode;
  /** How often certificates and the caBundle are checked (default 60 s). */
  refreshIntervalMs?: number;
  /**
   * On close, answer /readyz 503 but keep serving this long first, so the Service's endpoints drop
   * this replica before its port closes (API server calls in flight still land). Default 0.
   */
  shutdownDelayMs?: number;
  /** Our deadline for the DelegatedCredential GET, below the webhook's timeoutSeconds. */
  lookupTimeoutMs?: number;
  now?: () => Date;
  log?: Logger;
  /** Register metrics here (the operator's registry when sharing its process); served on /metrics. */
  metricsRegistry?: Registry;
}

export interface RunningWebhook {
  port: number;
  url: string;
  sidecarMode: SidecarMode;
  stats: AdmissionStats;
  metrics: WebhookMetrics;
  /** The PEM caBundle a MutatingWebhookConfiguration must carry to trust us ('' in cert-manager mode). */
  caBundle(): string;
  /** Runs one certificate check now (the timer does this every refreshIntervalMs). */
  refreshCertificates(): Promise<void>;
  close(): Promise<void>;
}

export function defaultLogger(): Logger {
  return createJsonLog({ component: 'webhook', level: process.env['LOG_LEVEL'] ?? 'info' });
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export function delegatedCredentialLookup(kc: KubeConfig, timeoutMs: number): DelegatedCredentialLookup {
  const api = kc.makeApiClient(CustomObjectsApi);
  return async (namespace, name) => {
    try {
      const dc = (await withTimeout(
        api.getNamespacedCustomObject({ group: DC_GROUP, version: DC_VERSION, namespace, plural: DC_PLURAL, name }) as Promise<unknown>,
        timeoutMs,
        'GET DelegatedCredential',
      )) as { spec?: { secretName?: unknown } };
      const secretName = dc.spec?.secretName;
      return typeof secretName === 'string' ? { secretName } : {};
    } catch (err) {
      if ((err as { code?: number }).code === 404) return undefined;
      throw err;
    }
  };
}

export async function detectSidecarMode(kc: KubeConfig): Promise<{ mode: SidecarMode; gitVersion: string }> {
  const info = await kc.makeApiClient(VersionApi).getCode();
  const version = parseServerVersion(info);
  return { mode: sidecarModeFor(version), gitVersion: version.gitVersion };
}

export async function runWebhook(opts: WebhookOptions): Promise<RunningWebhook> {
  const log = opts.log ?? defaultLogger();
  const kc = opts.kubeConfig ?? (() => { const k = new KubeConfig(); k.loadFromDefault(); return k; })();
  const configurationName = opts.webhookConfigurationName ?? DEFAULT_CONFIGURATION_NAME;

  // The cluster version is read once: native sidecars need >= 1.29.
  let sidecarMode = opts.sidecarMode;
  if (!sidecarMode) {
    const detected = await detectSidecarMode(kc);
    sidecarMode = detected.mode;
    log.info('detected cluster version', { gitVersion: detected.gitVersion, sidecarMode });
  }

  let certificates: ServingCertificateSource;
  let selfBootstrapped: SelfBootstrappedCertificates | undefined;
  if ((opts.certMode ?? 'self') === 'cert-manager') {
    if (!opts.certDir) throw new Error('--cert-dir is required in cert-manager mode');
    certificates = new DirectoryCertificates(opts.certDir);
  } else {
    selfBootstrapped = new SelfBootstrappedCertificates({
      core: kc.makeApiClient(CoreV1Api),
      admission: kc.makeApiClient(AdmissionregistrationV1Api),
      namespace: opts.namespace,
      caSecretName: opts.caSecretName,
      webhookConfigurationName: configurationName,
      dnsNames: [...serviceDnsNames(opts.serviceName, opts.namespace), ...(opts.extraDnsNames ?? [])],
      ipAddresses: opts.ipAddresses ?? ['127.0.0.1'],
      now: opts.now,
      caLifetimeMs: opts.caLifetimeMs,
      servingLifetimeMs: opts.servingLifetimeMs,
      trustPropagationMs: opts.trustPropagationMs,
      log,
    });
    certificates = selfBootstrapped;
  }
  const initial = await certificates.refresh();
  const metrics = new WebhookMetrics(opts.metricsRegistry);
  metrics.observeCertificateRefresh('reloaded', initial.certPem);

  const lookup = delegatedCredentialLookup(kc, opts.lookupTimeoutMs ?? 3000);
  const config = {
    sidecar: { ...DEFAULT_SIDECAR_CONFIG, ...opts.sidecar },
    excludedNamespaces: [...new Set(['kube-system', opts.namespace, ...(opts.excludedNamespaces ?? [])])],
  };
  const mode = sidecarMode;
  let stopping = false;
  const server = createWebhookServer({
    host: opts.host ?? '0.0.0.0',
    port: opts.port,
    material: initial,
    handler: (request) => admit(request, { config, sidecarMode: mode, lookupDelegatedCredential: lookup }),
    log,
    isReady: () => !stopping,
    metrics,
  });
  const port = await server.listen();
  log.info('webhook listening', { host: opts.host ?? '0.0.0.0', port, certMode: opts.certMode ?? 'self', sidecarMode: mode });

  // One refresh at a time; a failed one keeps the current certificate and is retried next tick.
  let refreshing: Promise<void> | undefined;
  const refresh = (): Promise<void> => {
    refreshing ??= (async () => {
      try {
        const next = await certificates.refresh();
        if (next.changed) {
          server.setCertificate(next);
          log.info('serving certificate reloaded');
        }
        metrics.observeCertificateRefresh(next.changed ? 'reloaded' : 'unchanged', next.certPem);
      } catch (err) {
        metrics.observeCertificateRefresh('failed');
        log.error('certificate refresh failed; keeping the current certificate', { error: (err as Error).message });
        throw err;
      } finally {
        refreshing = undefined;
      }
    })();
    return refreshing;
  };
  const timer = setInterval(() => refresh().catch(() => undefined), opts.refreshIntervalMs ?? 60_000);
  timer.unref();

  const host = opts.host && opts.host !== '0.0.0.0' ? opts.host : '127.0.0.1';
  return {
    port,
    url: `https://${host}:${port}/mutate`,
    sidecarMode: mode,
    stats: server.stats,
    metrics,
    caBundle: () => selfBootstrapped?.caBundle() ?? '',
    refreshCertificates: refresh,
    close: async () => {
      stopping = true;
      clearInterval(timer);
      if (opts.shutdownDelayMs) await new Promise((resolve) => setTimeout(resolve, opts.shutdownDelayMs));
      await server.close();
    },
  };
}
