// Entry point of `dc-operator controller`: kubeconfig or in-cluster configuration, metrics and
// probes, leader election, and the controller while this replica leads.
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { systemClock, type Clock } from './clock.js';
import { Controller, type KeylessFallbackOptions } from './controller.js';
import { tlsCrypto, type CryptoPort } from './crypto.js';
import { startHttpServer } from './http.js';
import { connectApiServer } from './apiserver/connect.js';
import { KubeClient, KubeEventRecorder } from './kube.js';
import { LeaderElector } from './leader.js';
import { MALLOC_TRIM_INTERVAL_MS, startMallocTrim } from './memory-trim.js';
import { mallocTrim } from './native/malloc-trim.js';
import { createLogger } from './logger.js';
import { OperatorMetrics } from './metrics.js';
import type { Logger } from './ports.js';

export interface ControllerOptions {
  /** Path of a kubeconfig; default: $KUBECONFIG, ~/.kube/config, or the in-cluster service account. */
  kubeconfig?: string;
  /** Watch DelegatedCredentials, DelegationSigners and output Secrets in these namespaces only; default: all namespaces. */
  namespaces?: readonly string[];
  /** Shorthand for `namespaces: [namespace]`. */
  namespace?: string;
  /** The operator's own namespace: the Lease lives here. */
  operatorNamespace?: string;
  /**
   * Where ClusterDelegationSigner Secrets live (key Secret without a namespace, keyless CA bundle
   * and client certificate), like cert-manager's cluster resource namespace. Default: operatorNamespace.
   */
  clusterResourceNamespace?: string;
  /** Ping loop of an unhealthy keyless signer: first and largest interval (default 5 s, 60 s). */
  keylessPingMinMs?: number;
  keylessPingMaxMs?: number;
  /** The keyless fallback: in-cluster key server address, trust domain, CA and serving Secret names. */
  keylessFallback?: KeylessFallbackOptions;
  metricsPort: number;
  metricsHost?: string;
  /** Default true. Off: this process acts as leader at once (single replica, tests). */
  leaderElection?: boolean;
  leaseName?: string;
  identity?: string;
  leaseDurationSeconds?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  workers?: number;
  /** How often free malloc memory is returned to the kernel (memory-trim.ts); 0: never. Default 5 s. */
  mallocTrimIntervalMs?: number;
  logLevel?: string;
  log?: Logger;
  clock?: Clock;
  crypto?: CryptoPort;
}

export interface ControllerHandle {
  /** Port of the metrics/probes server (useful with metricsPort 0). */
  readonly port: number;
  isLeader(): boolean;
  /** Releases the lease, stops watches and workers, closes the server. */
  stop(): Promise<void>;
  /** Settles when the controller has stopped. */
  readonly done: Promise<void>;
}

export async function runController(opts: ControllerOptions): Promise<ControllerHandle> {
  const log = opts.log ?? createLogger(opts.logLevel);
  const clock = opts.clock ?? systemClock;
  const connection = await connectApiServer({ kubeconfig: opts.kubeconfig, warn: (message) => log.warn(message) });
  if (connection.clientNodeFor !== undefined) {
    log.info('the kubeconfig needs what the controller\'s own apiserver client does not implement: @kubernetes/client-node authenticates its requests (loaded for this only)', { needs: connection.clientNodeFor });
  }
  const metrics = new OperatorMetrics();
  const count = (verb: string, resource: string): void => metrics.apiRequest(verb, resource);
  const kube = new KubeClient(connection.client, count);
  const operatorNamespace = opts.operatorNamespace ?? process.env['POD_NAMESPACE'] ?? 'dc-operator';
  const namespaces = [...new Set([...(opts.namespaces ?? []), ...(opts.namespace !== undefined ? [opts.namespace] : [])])];
  const identity = opts.identity ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const events = new KubeEventRecorder(kube, clock, log, 'dc-operator', process.env['HOSTNAME'] ?? hostname());
  let controller: Controller | undefined;
  const elector =
    opts.leaderElection === false
      ? undefined
      : new LeaderElector({
          api: connection.client,
          namespace: operatorNamespace,
          name: opts.leaseName ?? 'dc-operator-controller',
          identity,
          clock,
          log,
          leaseDurationSeconds: opts.leaseDurationSeconds,
          renewDeadlineMs: opts.renewDeadlineMs,
          retryPeriodMs: opts.retryPeriodMs,
          count,
        });
  const isLeader = (): boolean => (elector ? elector.isLeader() : controller !== undefined);

  const startController = (): void => {
    controller = new Controller({
      kube,
      crypto: opts.crypto ?? tlsCrypto,
      clock,
      log,
      events,
      metrics,
      namespaces,
      operatorNamespace,
      clusterResourceNamespace: opts.clusterResourceNamespace ?? operatorNamespace,
      keylessPingMinMs: opts.keylessPingMinMs,
      keylessPingMaxMs: opts.keylessPingMaxMs,
      workers: opts.workers,
      ...(opts.keylessFallback !== undefined ? { keylessFallback: opts.keylessFallback } : {}),
    });
    const current = controller;
    metrics.attach({
      credentials: () => current.credentials.list(),
      signers: () => [...current.signers.list(), ...current.clusterSigners.list()],
      isLeader,
      queueDepth: () => current.queue.length,
    });
    controller.start();
  };
  const stopController = async (): Promise<void> => {
    const current = controller;
    controller = undefined;
    metrics.attach(undefined);
    await current?.stop();
  };

  const http = await startHttpServer({
    port: opts.metricsPort,
    host: opts.metricsHost,
    registry: metrics.registry,
    scrape: () => metrics.exposition(),
    probes: {
      ready: () => {
        if (controller === undefined) return { ok: true, detail: 'standby: waiting for the leader lease' };
        return controller.hasSynced() ? { ok: true, detail: 'leader: caches synced' } : { ok: false, detail: 'leader: caches syncing' };
      },
    },
  });
  log.info('dc-operator controller starting', { identity, namespaces: namespaces.length > 0 ? namespaces : '(all)', operatorNamespace, clusterResourceNamespace: opts.clusterResourceNamespace ?? operatorNamespace, metricsPort: http.port, apiserver: connection.client.auth.describe });

  // The election loop runs until stop(); without election this process leads at once.
  const campaign = elector ? elector.run(startController, stopController) : (startController(), Promise.resolve());
  // Started once nothing above can throw, and stopped whatever stop() meets: its timer is ref'd.
  const trimmer = startMallocTrim(clock, opts.mallocTrimIntervalMs ?? MALLOC_TRIM_INTERVAL_MS);
  if (!mallocTrim.available) log.debug('malloc_trim addon not loaded: free heap memory stays with glibc', { reason: mallocTrim.unavailableBecause });
  let finished!: () => void;
  const done = new Promise<void>((resolve) => (finished = resolve));
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      try {
        await stopController(); // stop issuing before the lease is given up
        await elector?.stop(); // ends the campaign (stopping a controller it started meanwhile), then releases
        await campaign;
        await http.close();
      } finally {
        trimmer.stop();
        kube.destroy();
      }
      log.info('dc-operator controller stopped', { identity });
      finished();
    })());
  return { port: http.port, isLeader, stop, done };
}
