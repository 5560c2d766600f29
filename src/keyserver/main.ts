// Entry point of `dc-operator keyserver --from-cluster`: the in-cluster key server. Keys and
// identities come from the Kubernetes API (cluster-keys.ts), its own TLS material from a Secret
// (serving-secret.ts), and every request is authorized per identity (authorization.ts).
//
// Not Ready (/readyz 503, with the reason) until its serving Secret exists and is valid and its
// caches are synced; it listens for keyless clients only from then on.
import type { V1Secret } from '@kubernetes/client-node';
import { Gauge, Registry } from 'prom-client';
import { startKeyServer, type KeyServer, type KeyServerOptions } from '../keyless/server.js';
import { DEFAULT_TRUST_DOMAIN } from '../operator/api/serving-bundle.js';
import { systemClock, type Clock } from '../operator/clock.js';
import { startHttpServer } from '../operator/http.js';
import { Informer } from '../operator/informer.js';
import { connectApiServer } from '../operator/apiserver/connect.js';
import { KubeClient } from '../operator/kube.js';
import { createLogger } from '../operator/logger.js';
import type { Logger } from '../operator/ports.js';
import { IdentityAuthorizer } from './authorization.js';
import { ClusterKeys } from './cluster-keys.js';
import { KeyGrants } from './grants.js';
import { secretMetadataClient } from './secret-metadata.js';
import { DEFAULT_SIGNATURES_PER_SECOND, RateLimiter } from './rate-limit.js';
import { DEFAULT_TLS_SECRET, servingCredentialsOf, type ServingCredentials } from './serving-secret.js';

/** Connection limits and timeouts, as `dc-operator keyserver` takes them. */
export type ListenerOptions = Pick<
  KeyServerOptions,
  'host' | 'port' | 'maxConcurrency' | 'allowLegacyHashes' | 'maxConnections' | 'maxConnectionsPerSource' | 'maxConnectionsPerIdentity' | 'maxHandshakingConnections' | 'maxHandshakingPerSource' | 'handshakeTimeoutMs' | 'idleTimeoutMs'
>;

export interface ClusterKeyServerOptions {
  kubeconfig?: string;
  /** Namespace of the serving Secret (the key server's own). */
  ownNamespace: string;
  tlsSecret?: string;
  namespaces?: readonly string[];
  clusterResourceNamespace?: string;
  trustDomain?: string;
  /** Signatures per second per tenant, i.e. namespace (0: no limit). */
  ratePerSecond?: number;
  /** Label the signature counter by identity instead of by tenant (IdentityAuthorizerOptions.perIdentityMetrics). */
  perIdentityMetrics?: boolean;
  listener: ListenerOptions;
  /** /metrics, /healthz, /readyz. */
  probesPort: number;
  probesHost?: string;
  log?: Logger;
  clock?: Clock;
}

export interface ClusterKeyServerHandle {
  readonly probesPort: number;
  readonly grants: KeyGrants;
  /** The keyless port once listening. */
  keylessPort(): number | undefined;
  ready(): { ok: boolean; detail: string };
  stop(): Promise<void>;
}

export async function runClusterKeyServer(opts: ClusterKeyServerOptions): Promise<ClusterKeyServerHandle> {
  const log = opts.log ?? createLogger(undefined, 'keyserver');
  const clock = opts.clock ?? systemClock;
  const connection = await connectApiServer({ kubeconfig: opts.kubeconfig, warn: (message) => log.warn(message) });
  if (connection.clientNodeFor !== undefined) log.info('@kubernetes/client-node authenticates the apiserver requests', { needs: connection.clientNodeFor });
  const kube = new KubeClient(connection.client);
  const registry = new Registry();
  const grants = new KeyGrants();
  const trustDomain = opts.trustDomain ?? DEFAULT_TRUST_DOMAIN;
  const tlsSecret = opts.tlsSecret ?? DEFAULT_TLS_SECRET;
  const tlsWhere = `Secret ${opts.ownNamespace}/${tlsSecret}`;
  const authorizer = new IdentityAuthorizer({
    trustDomain,
    grants,
    registry,
    rateLimit: new RateLimiter({ ratePerSecond: opts.ratePerSecond ?? DEFAULT_SIGNATURES_PER_SECOND }),
    log,
    ...(opts.perIdentityMetrics === true ? { perIdentityMetrics: true } : {}),
  });
  const secretMetadata = secretMetadataClient(connection.client);
  const keys = new ClusterKeys({
    kube,
    secretSource: (namespace, selector) => secretMetadata.secretSource(namespace, selector),
    clock,
    log,
    grants,
    trustDomain,
    ...(opts.namespaces ? { namespaces: opts.namespaces } : {}),
    clusterResourceNamespace: opts.clusterResourceNamespace ?? opts.ownNamespace,
    onGrantsChanged: () => authorizer.pruneRevoked(),
  });
  new Gauge({
    name: 'keyserver_key_secret_watches',
    help: 'Watches open on in-cluster signer key Secrets: one per namespace holding any, whatever the number of signers',
    registers: [registry],
    collect() {
      this.set(keys.keySecrets.size);
    },
  });

  let server: KeyServer | undefined;
  let starting: Promise<void> | undefined;
  let credentials: ServingCredentials | undefined;
  let tlsProblem = `${tlsWhere} does not exist yet: the controller issues it (tls.crt, tls.key, ca.crt)`;
  let stopped = false;

  const apply = (secret: V1Secret | undefined): void => {
    if (secret === undefined) {
      // Deleted: keep serving with what we have (the controller re-issues it); a new start waits.
      tlsProblem = `${tlsWhere} does not exist (the controller issues it); serving with the credentials loaded before`;
      log.warn('keyserver: serving Secret deleted, keeping the loaded credentials', { secret: tlsWhere });
      return;
    }
    let next: ServingCredentials;
    try {
      next = servingCredentialsOf(secret);
    } catch (err) {
      tlsProblem = err instanceof Error ? err.message : String(err);
      log.error(credentials ? 'keyserver: new serving credentials refused, keeping the working ones' : 'keyserver: serving credentials refused', { error: tlsProblem });
      return;
    }
    tlsProblem = '';
    credentials = next;
    if (server) {
      try {
        server.setCredentials(next);
        log.info('keyserver: serving credentials replaced', { secret: tlsWhere, resourceVersion: next.version });
      } catch (err) {
        tlsProblem = `${tlsWhere}: ${err instanceof Error ? err.message : String(err)}`;
        log.error('keyserver: new serving credentials refused, keeping the working ones', { error: tlsProblem });
      }
      return;
    }
    starting ??= startKeyServer({ ...opts.listener, keys: grants, authorizer, registry, logger: log, ca: next.ca, cert: next.cert, key: next.key }).then(
      (s) => {
        if (stopped) return void s.close();
        server = s;
        // Credentials that arrived while it was starting.
        if (credentials && credentials !== next) server.setCredentials(credentials);
      },
      (err: unknown) => {
        starting = undefined;
        tlsProblem = `cannot listen: ${err instanceof Error ? err.message : String(err)}`;
        log.error('keyserver: cannot start the keyless listener', { error: tlsProblem });
      },
    );
  };

  // The serving Secret, watched by name. The informer keeps the one Secret whole: it is this
  // process's own key, which the TLS server holds in memory anyway.
  const serving = new Informer<V1Secret>(
    `keyserver/serving-secret/${opts.ownNamespace}/${tlsSecret}`,
    kube.secretSource(opts.ownNamespace, { fieldSelector: `metadata.name=${tlsSecret}` }),
    (s) => s,
    clock,
    { warn: log.warn.bind(log), debug: log.debug.bind(log) },
  );
  serving.on(({ type, object }) => apply(type === 'delete' ? undefined : object));

  const ready = (): { ok: boolean; detail: string } => {
    if (!serving.hasSynced()) return { ok: false, detail: `reading ${tlsWhere}` };
    if (!server) return { ok: false, detail: tlsProblem || 'starting the keyless listener' };
    if (!keys.hasSynced()) return { ok: false, detail: 'caches syncing: DelegatedCredentials, signers, namespaces and Secrets' };
    const problems = keys.problemCount();
    return {
      ok: true,
      detail: `serving ${grants.identities().length} identities with ${grants.size} keys${problems > 0 ? `; ${problems} DelegatedCredentials have no or an old key (see the log)` : ''}${tlsProblem ? `; ${tlsProblem}` : ''}`,
    };
  };
  const http = await startHttpServer({ port: opts.probesPort, ...(opts.probesHost ? { host: opts.probesHost } : {}), registry, probes: { ready } });
  serving.start();
  keys.start();
  log.info('keyserver: starting from the cluster', {
    servingSecret: tlsWhere,
    trustDomain,
    namespaces: opts.namespaces && opts.namespaces.length > 0 ? opts.namespaces : '(all)',
    probesPort: http.port,
  });
  return {
    probesPort: http.port,
    grants,
    keylessPort: () => server?.port,
    ready,
    async stop() {
      stopped = true;
      await serving.stop();
      await keys.stop();
      await starting;
      await server?.close();
      await http.close();
      kube.destroy();
    },
  };
}
