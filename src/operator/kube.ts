// The apiserver side of the ports, with @kubernetes/client-node 1.3 (promise API, object params):
// list/watch sources for the informers, the few targeted reads and conditional writes the
// reconciler makes, and an event recorder.
import { createHash } from 'node:crypto';
import { Agent as HttpsAgent } from 'node:https';
import {
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  Watch,
  type CoreV1Event,
  type RequestContext,
  type V1Namespace,
  type V1Secret,
} from '@kubernetes/client-node';
import type { DelegatedCredential, DelegatedCredentialStatus, DelegationSigner, DelegationSignerStatus } from './api/v1alpha1.js';
import { GROUP, VERSION } from './api/v1alpha1.js';
import type { Clock, TimerHandle } from './clock.js';
import { EVENT_BURST, EVENT_SUMMARY_AFTER_MS, EventBursts } from './event-bursts.js';
import { statusCodeOf, type ListResult, type ListWatchSource, type WatchEventType } from './informer.js';
import type { EventRecorder, KubeApi, Logger } from './ports.js';

const PAGE = 500;

/**
 * A KubeConfig whose API requests share keep-alive connections. client-node 1.3 builds a new
 * https.Agent for every request, so each GET or PUT paid a TCP and TLS handshake (and a new
 * SecureContext): most of the operator's CPU when issuing in bulk. Authentication (tokens, exec
 * plugins, client certificates) is still applied per request by the base class; only the agent
 * is swapped for a shared one with the same TLS options. Watches keep their own connections.
 */
export class PooledKubeConfig extends KubeConfig {
  private readonly agents = new Map<string, HttpsAgent>();

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    const agent = context.getAgent();
    if (!(agent instanceof HttpsAgent) || agent.constructor !== HttpsAgent) return; // proxies: as they are
    const o = agent.options;
    const key = this.agentKey(o);
    let shared = this.agents.get(key);
    if (!shared) {
      // Client certificates may rotate (exec plugins): a handful of distinct agents at most.
      if (this.agents.size >= 8) this.destroyAgents();
      // Idle sockets are closed before the apiserver's own idle timeout could race a reuse.
      shared = new HttpsAgent({ ...o, keepAlive: true, maxSockets: 16, maxFreeSockets: 8, timeout: 30_000 });
      this.agents.set(key, shared);
    }
    context.setAgent(shared);
  }

  private lastOptions: { parts: readonly unknown[]; key: string } | undefined;

  /**
   * Which shared agent serves these TLS options. client-node decodes the same CA, certificate and
   * key into new Buffers for every request: they are compared with the last request's first
   * (a memcmp), since hashing them as text for every request was ~3 % of the operator's CPU in a
   * burst.
   */
  private agentKey(o: HttpsAgent['options']): string {
    const parts = [o.ca, o.cert, o.key, o.pfx, o.passphrase, o.rejectUnauthorized, o.servername];
    const last = this.lastOptions;
    if (last !== undefined && parts.every((p, i) => sameOption(p, last.parts[i]))) return last.key;
    const key = createHash('sha256')
      .update(JSON.stringify(parts.map((v) => (v === undefined ? null : String(v)))))
      .digest('hex');
    this.lastOptions = { parts, key };
    return key;
  }

  destroyAgents(): void {
    for (const a of this.agents.values()) a.destroy();
    this.agents.clear();
  }
}

function sameOption(a: unknown, b: unknown): boolean {
  return a === b || (Buffer.isBuffer(a) && Buffer.isBuffer(b) && a.equals(b));
}

export interface Selector {
  labelSelector?: string;
  fieldSelector?: string;
}

interface KubeList<R> {
  /** null in an empty PartialObjectMetadataList (a metadata-only list: the key server's Secret sources). */
  items: R[] | null;
  metadata?: { resourceVersion?: string; _continue?: string; continue?: string };
}

/** Pages through a list (limit/continue) so a large collection is not one giant response. */
export async function listAll<R>(page: (cont: string | undefined) => Promise<KubeList<R>>): Promise<ListResult<R>> {
  const items: R[] = [];
  let cont: string | undefined;
  let resourceVersion = '';
  do {
    const list = await page(cont);
    items.push(...(list.items ?? []));
    resourceVersion = list.metadata?.resourceVersion ?? resourceVersion;
    cont = list.metadata?._continue ?? list.metadata?.continue ?? undefined;
  } while (cont);
  return { items, resourceVersion };
}

/** Called once per API request the operator makes (the requests-per-object budget is measured with it). */
export type RequestCounter = (verb: 'list' | 'watch' | 'get' | 'create' | 'update' | 'delete', resource: string) => void;

const noCount: RequestCounter = () => undefined;

function watchVia<R>(watch: Watch, path: string, selector: Selector, count: RequestCounter, resource: string): ListWatchSource<R>['watch'] {
  return async (resourceVersion, onEvent, done) => {
    count('watch', resource);
    const query: Record<string, string | number | boolean | undefined> = {
      resourceVersion,
      allowWatchBookmarks: true,
      // Like client-go: a random server-side timeout spreads reconnects of many watches.
      timeoutSeconds: 300 + Math.floor(Math.random() * 300),
      labelSelector: selector.labelSelector,
      fieldSelector: selector.fieldSelector,
    };
    const controller = await watch.watch(path, query, (type: string, object: R) => onEvent(type as WatchEventType, object), done);
    return { abort: () => controller.abort() };
  };
}

export class KubeClient implements KubeApi {
  readonly core: CoreV1Api;
  readonly custom: CustomObjectsApi;
  private readonly watcher: Watch;

  constructor(
    readonly kc: KubeConfig,
    readonly count: RequestCounter = noCount,
  ) {
    this.core = kc.makeApiClient(CoreV1Api);
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.watcher = new Watch(kc);
  }

  // ---- sources for the informers

  /** A custom resource, in one namespace or (namespace undefined) all of them / cluster scoped. */
  customSource<R>(plural: string, namespace: string | undefined, clusterScoped = false): ListWatchSource<R> {
    const base = `/apis/${GROUP}/${VERSION}`;
    const path = namespace !== undefined && !clusterScoped ? `${base}/namespaces/${namespace}/${plural}` : `${base}/${plural}`;
    const group = GROUP;
    const version = VERSION;
    const count = this.count;
    return {
      list: () =>
        listAll<R>((cont) => {
          count('list', plural);
          return (clusterScoped
            ? this.custom.listClusterCustomObject({ group, version, plural, limit: PAGE, _continue: cont })
            : namespace !== undefined
              ? this.custom.listNamespacedCustomObject({ group, version, namespace, plural, limit: PAGE, _continue: cont })
              : this.custom.listCustomObjectForAllNamespaces({ group, version, plural, limit: PAGE, _continue: cont })) as Promise<KubeList<R>>;
        }),
      watch: watchVia<R>(this.watcher, path, {}, count, plural),
    };
  }

  /** Secrets matching a selector, in one namespace or all of them. */
  secretSource(namespace: string | undefined, selector: Selector): ListWatchSource<V1Secret> {
    const path = namespace !== undefined ? `/api/v1/namespaces/${namespace}/secrets` : '/api/v1/secrets';
    const count = this.count;
    return {
      list: () =>
        listAll<V1Secret>((cont) => {
          count('list', 'secrets');
          return namespace !== undefined
            ? this.core.listNamespacedSecret({ namespace, ...selector, limit: PAGE, _continue: cont })
            : this.core.listSecretForAllNamespaces({ ...selector, limit: PAGE, _continue: cont });
        }),
      watch: watchVia<V1Secret>(this.watcher, path, selector, count, 'secrets'),
    };
  }

  /** Namespaces (cluster-scoped): all of them, or the one named (field selector metadata.name). */
  namespaceSource(name: string | undefined): ListWatchSource<V1Namespace> {
    const selector: Selector = name === undefined ? {} : { fieldSelector: `metadata.name=${name}` };
    const count = this.count;
    return {
      list: () =>
        listAll<V1Namespace>((cont) => {
          count('list', 'namespaces');
          return this.core.listNamespace({ ...selector, limit: PAGE, _continue: cont });
        }),
      watch: watchVia<V1Namespace>(this.watcher, '/api/v1/namespaces', selector, count, 'namespaces'),
    };
  }

  // ---- KubeApi

  async getSecret(namespace: string, name: string): Promise<V1Secret | undefined> {
    this.count('get', 'secrets');
    try {
      return await this.core.readNamespacedSecret({ namespace, name });
    } catch (err) {
      if (statusCodeOf(err) === 404) return undefined;
      throw err;
    }
  }

  createSecret(secret: V1Secret): Promise<V1Secret> {
    this.count('create', 'secrets');
    return this.core.createNamespacedSecret({ namespace: secret.metadata?.namespace ?? '', body: secret, fieldManager: 'dc-operator' });
  }

  replaceSecret(secret: V1Secret): Promise<V1Secret> {
    this.count('update', 'secrets');
    return this.core.replaceNamespacedSecret({
      namespace: secret.metadata?.namespace ?? '',
      name: secret.metadata?.name ?? '',
      body: secret,
      fieldManager: 'dc-operator',
    });
  }

  async deleteSecret(namespace: string, name: string, preconditions: { uid: string; resourceVersion: string }): Promise<void> {
    this.count('delete', 'secrets');
    try {
      await this.core.deleteNamespacedSecret({ namespace, name, body: { preconditions } });
    } catch (err) {
      if (statusCodeOf(err) !== 404) throw err;
    }
  }

  async updateStatus(dc: DelegatedCredential, status: DelegatedCredentialStatus): Promise<DelegatedCredential> {
    this.count('update', 'delegatedcredentials/status');
    const body: DelegatedCredential = { ...dc, status };
    return (await this.custom.replaceNamespacedCustomObjectStatus({
      group: GROUP,
      version: VERSION,
      namespace: dc.metadata.namespace ?? '',
      plural: 'delegatedcredentials',
      name: dc.metadata.name ?? '',
      body,
      fieldManager: 'dc-operator',
    })) as DelegatedCredential;
  }
}

/** Replaces the status of a DelegationSigner or ClusterDelegationSigner, conditional on resourceVersion. */
export async function updateSignerStatus(kube: KubeClient, signer: DelegationSigner, status: DelegationSignerStatus): Promise<DelegationSigner> {
  const body: DelegationSigner = { ...signer, status };
  const name = signer.metadata.name ?? '';
  if (signer.kind === 'ClusterDelegationSigner') {
    kube.count('update', 'clusterdelegationsigners/status');
    return (await kube.custom.replaceClusterCustomObjectStatus({ group: GROUP, version: VERSION, plural: 'clusterdelegationsigners', name, body })) as DelegationSigner;
  }
  kube.count('update', 'delegationsigners/status');
  return (await kube.custom.replaceNamespacedCustomObjectStatus({
    group: GROUP,
    version: VERSION,
    namespace: signer.metadata.namespace ?? '',
    plural: 'delegationsigners',
    name,
    body,
    fieldManager: 'dc-operator',
  })) as DelegationSigner;
}

/**
 * core/v1 Events, as `kubectl describe dc` shows them. The same reason+message for the same
 * object within ten minutes bumps nothing and sends nothing (the apiserver would otherwise fill
 * with one Event per retry of a failing reconcile). Normal Events of a burst are limited per
 * namespace and reason, the rest summed into one (event-bursts.ts).
 */
export class KubeEventRecorder implements EventRecorder {
  private readonly recent = new Map<string, number>();
  private readonly bursts = new EventBursts<DelegatedCredential>();
  private summaryTimer: TimerHandle | undefined;
  constructor(
    private readonly core: CoreV1Api,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly component = 'dc-operator',
    private readonly host = process.env['HOSTNAME'] ?? 'dc-operator',
    private readonly count: RequestCounter = noCount,
  ) {}

  record(dc: DelegatedCredential, type: 'Normal' | 'Warning', reason: string, message: string): void {
    const namespace = dc.metadata.namespace ?? 'default';
    const now = this.clock.now();
    const dedupeKey = `${dc.metadata.uid ?? ''}|${reason}|${message}`;
    const last = this.recent.get(dedupeKey);
    if (last !== undefined && now.getTime() - last < 10 * 60_000) return;
    this.recent.set(dedupeKey, now.getTime());
    if (this.recent.size > 10_000) this.recent.clear();
    if (type === 'Normal' && !this.bursts.admit(namespace, reason, now.getTime(), dc)) {
      this.armSummary();
      return;
    }
    this.send(dc, type, reason, message, now, now, 1);
  }

  /** Sends the summaries of what bursts held back, once each burst has been quiet. */
  private armSummary(): void {
    if (this.summaryTimer !== undefined) return;
    this.summaryTimer = this.clock.setTimer(EVENT_SUMMARY_AFTER_MS, () => {
      this.summaryTimer = undefined;
      for (const held of this.bursts.due(this.clock.now().getTime())) {
        const message = `${held.reason} ${held.count} more times in namespace ${held.namespace} between ${held.first.toISOString()} and ${held.last.toISOString()} (one Event each is sent for the first ${EVENT_BURST} of a burst, then one a second; each object's status says when it was issued); the last was this object`;
        this.send(held.object, 'Normal', held.reason, message, held.first, held.last, held.count);
      }
      if (this.bursts.holding()) this.armSummary();
    });
  }

  private send(dc: DelegatedCredential, type: 'Normal' | 'Warning', reason: string, message: string, first: Date, last: Date, count: number): void {
    const namespace = dc.metadata.namespace ?? 'default';
    const event: CoreV1Event = {
      metadata: { generateName: `${dc.metadata.name ?? 'dc'}.`, namespace },
      involvedObject: {
        apiVersion: dc.apiVersion,
        kind: dc.kind,
        name: dc.metadata.name,
        namespace,
        uid: dc.metadata.uid,
        resourceVersion: dc.metadata.resourceVersion,
      },
      type,
      reason,
      message: message.slice(0, 1024),
      source: { component: this.component, host: this.host },
      reportingComponent: this.component,
      reportingInstance: this.host,
      firstTimestamp: first,
      lastTimestamp: last,
      count,
    };
    this.count('create', 'events');
    this.core.createNamespacedEvent({ namespace, body: event }).catch((err: unknown) => {
      this.log.warn('could not record event', { namespace, name: dc.metadata.name, reason, error: String(err) });
    });
  }
}
