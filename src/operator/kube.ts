// The apiserver side of the ports, over the operator's own apiserver client (apiserver/client.ts):
// list/watch sources for the informers, the few targeted reads and conditional writes the
// reconciler makes, and an event recorder. Types from @kubernetes/client-node are types only: the
// controller does not load client-node (test/unit/operator/runtime-imports.test.ts).
import type { CoreV1Event, V1Namespace, V1Secret } from '@kubernetes/client-node';
import type { DelegatedCredential, DelegatedCredentialStatus, DelegationSigner, DelegationSignerStatus } from './api/v1alpha1.js';
import { GROUP, RESOURCES, VERSION } from './api/v1alpha1.js';
import type { ApiClient, ListPage, Query } from './apiserver/client.js';
import type { Clock, TimerHandle } from './clock.js';
import { EVENT_BURST, EVENT_SUMMARY_AFTER_MS, EventBursts } from './event-bursts.js';
import { statusCodeOf, type ListResult, type ListWatchSource, type WatchEventType } from './informer.js';
import type { EventRecorder, KubeApi, Logger } from './ports.js';

const PAGE = 500;
const FIELD_MANAGER = { fieldManager: 'dc-operator' } as const;

export interface Selector {
  labelSelector?: string;
  fieldSelector?: string;
}

interface KubeList<R> extends ListPage<R> {
  metadata?: { resourceVersion?: string; _continue?: string; continue?: string };
}

/** Pages through a list (limit/continue) so a large collection is not one giant response. */
export async function listAll<R>(page: (cont: string | undefined) => Promise<KubeList<R>>): Promise<ListResult<R>> {
  const items: R[] = [];
  let cont: string | undefined;
  let resourceVersion = '';
  do {
    const list = await page(cont);
    for (const item of list.items ?? []) items.push(item);
    resourceVersion = list.metadata?.resourceVersion ?? resourceVersion;
    cont = list.metadata?._continue || list.metadata?.continue || undefined;
  } while (cont);
  return { items, resourceVersion };
}

/** Called once per API request the operator makes (the requests-per-object budget is measured with it). */
export type RequestCounter = (verb: 'list' | 'watch' | 'get' | 'create' | 'update' | 'delete', resource: string) => void;

const noCount: RequestCounter = () => undefined;

const enc = encodeURIComponent;
/** The path of a namespaced collection, or of all namespaces' (namespace undefined). */
const coreCollection = (resource: string, namespace: string | undefined): string =>
  namespace !== undefined ? `/api/v1/namespaces/${enc(namespace)}/${resource}` : `/api/v1/${resource}`;
const customCollection = (plural: string, namespace: string | undefined): string =>
  namespace !== undefined ? `/apis/${GROUP}/${VERSION}/namespaces/${enc(namespace)}/${plural}` : `/apis/${GROUP}/${VERSION}/${plural}`;

export class KubeClient implements KubeApi {
  constructor(
    readonly api: ApiClient,
    readonly count: RequestCounter = noCount,
  ) {}

  // ---- sources for the informers

  /** A list/watch source of one collection path. */
  private source<R>(path: string, selector: Selector, resource: string): ListWatchSource<R> {
    const { api, count } = this;
    const query: Query = { labelSelector: selector.labelSelector, fieldSelector: selector.fieldSelector };
    return {
      list: () =>
        listAll<R>((cont) => {
          count('list', resource);
          return api.listPage<R>(path, { ...query, limit: PAGE, continue: cont });
        }),
      watch: (resourceVersion, onEvent, done) => {
        count('watch', resource);
        // Like client-go: a random server-side timeout spreads reconnects of many watches.
        const timeoutSeconds = 300 + Math.floor(Math.random() * 300);
        return api.watch<R>(
          path,
          { ...query, resourceVersion, allowWatchBookmarks: true, timeoutSeconds },
          (type: WatchEventType, object: R) => onEvent(type, object),
          done,
          // Bookmarks come about once a minute: a watch silent well past its own timeout is dead.
          (timeoutSeconds + 60) * 1000,
        );
      },
    };
  }

  /** A custom resource, in one namespace or (namespace undefined) all of them / cluster scoped. */
  customSource<R>(plural: string, namespace: string | undefined, clusterScoped = false): ListWatchSource<R> {
    return this.source<R>(customCollection(plural, clusterScoped ? undefined : namespace), {}, plural);
  }

  /** Secrets matching a selector, in one namespace or all of them. */
  secretSource(namespace: string | undefined, selector: Selector): ListWatchSource<V1Secret> {
    return this.source<V1Secret>(coreCollection('secrets', namespace), selector, 'secrets');
  }

  /** Namespaces (cluster-scoped): all of them, or the one named (field selector metadata.name). */
  namespaceSource(name: string | undefined): ListWatchSource<V1Namespace> {
    return this.source<V1Namespace>('/api/v1/namespaces', name === undefined ? {} : { fieldSelector: `metadata.name=${name}` }, 'namespaces');
  }

  // ---- KubeApi

  async getSecret(namespace: string, name: string): Promise<V1Secret | undefined> {
    this.count('get', 'secrets');
    try {
      return await this.api.get<V1Secret>(`${coreCollection('secrets', namespace)}/${enc(name)}`);
    } catch (err) {
      if (statusCodeOf(err) === 404) return undefined;
      throw err;
    }
  }

  createSecret(secret: V1Secret): Promise<V1Secret> {
    this.count('create', 'secrets');
    return this.api.post<V1Secret>(coreCollection('secrets', secret.metadata?.namespace ?? ''), secret, FIELD_MANAGER);
  }

  /** A PUT: conditional on the resourceVersion in `secret.metadata` (409 Conflict when it moved). */
  replaceSecret(secret: V1Secret): Promise<V1Secret> {
    this.count('update', 'secrets');
    return this.api.put<V1Secret>(`${coreCollection('secrets', secret.metadata?.namespace ?? '')}/${enc(secret.metadata?.name ?? '')}`, secret, FIELD_MANAGER);
  }

  async deleteSecret(namespace: string, name: string, preconditions: { uid: string; resourceVersion: string }): Promise<void> {
    this.count('delete', 'secrets');
    try {
      await this.api.delete(`${coreCollection('secrets', namespace)}/${enc(name)}`, { apiVersion: 'v1', kind: 'DeleteOptions', preconditions });
    } catch (err) {
      if (statusCodeOf(err) !== 404) throw err;
    }
  }

  async updateStatus(dc: DelegatedCredential, status: DelegatedCredentialStatus): Promise<DelegatedCredential> {
    const plural = RESOURCES.delegatedCredentials.plural;
    this.count('update', `${plural}/status`);
    const body: DelegatedCredential = { ...dc, status };
    return this.api.put<DelegatedCredential>(`${customCollection(plural, dc.metadata.namespace ?? '')}/${enc(dc.metadata.name ?? '')}/status`, body, FIELD_MANAGER);
  }

  /** Replaces the status of a DelegationSigner or ClusterDelegationSigner, conditional on resourceVersion. */
  updateSignerStatus(signer: DelegationSigner, status: DelegationSignerStatus): Promise<DelegationSigner> {
    const body: DelegationSigner = { ...signer, status };
    const cluster = signer.kind === 'ClusterDelegationSigner';
    const plural = cluster ? RESOURCES.clusterDelegationSigners.plural : RESOURCES.delegationSigners.plural;
    this.count('update', `${plural}/status`);
    const path = `${customCollection(plural, cluster ? undefined : (signer.metadata.namespace ?? ''))}/${enc(signer.metadata.name ?? '')}/status`;
    return this.api.put<DelegationSigner>(path, body, FIELD_MANAGER);
  }

  /** Creates a core/v1 Event. */
  createEvent(namespace: string, event: CoreV1Event): Promise<CoreV1Event> {
    this.count('create', 'events');
    return this.api.post<CoreV1Event>(coreCollection('events', namespace), event);
  }

  /** Closes the client's idle connections. */
  destroy(): void {
    this.api.destroy();
  }
}

/** Replaces the status of a DelegationSigner or ClusterDelegationSigner, conditional on resourceVersion. */
export function updateSignerStatus(kube: KubeClient, signer: DelegationSigner, status: DelegationSignerStatus): Promise<DelegationSigner> {
  return kube.updateSignerStatus(signer, status);
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
    private readonly kube: Pick<KubeClient, 'createEvent'>,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly component = 'dc-operator',
    private readonly host = process.env['HOSTNAME'] ?? 'dc-operator',
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
    this.kube.createEvent(namespace, event).catch((err: unknown) => {
      this.log.warn('could not record event', { namespace, name: dc.metadata.name, reason, error: String(err) });
    });
  }
}
