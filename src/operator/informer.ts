// A small, restartable informer: list, then watch from the list's resourceVersion, keeping a
// local store of (optionally transformed) objects and telling handlers what changed.
//
// Why not @kubernetes/client-node's ListWatch as is: it stops for good on any non-410 error
// and it caches whole objects. Certificate Secrets must not be cached with their
// private keys, so this store keeps `transform(object)` instead (a projection). Its watch
// transport is still client-node's `Watch`; see kube.ts.
//
// Behaviour: a watch that ends normally is resumed from the last resourceVersion; 410 Gone
// (as an HTTP status or a watch ERROR event) relists; any other error backs off (1s → 30s, plus
// up to half again at random, reset after a healthy watch) and retries. A watch ERROR event is an
// error (client-go's reflector backs off on it too), and a 410 that ends a watch before it
// delivered anything relists only after the backoff: a server that answers every watch that way
// would otherwise get thousands of lists and watches a second. The pure store helpers are
// exported for tests.
import type { Clock } from './clock.js';
import { backoffDelay } from './queue.js';

export interface ObjectMeta {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
}

export interface ListResult<R> {
  items: R[];
  resourceVersion: string;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

/** Transport: list and watch one resource (kube.ts implements it with client-node). */
export interface ListWatchSource<R> {
  list(): Promise<ListResult<R>>;
  /** Starts a watch; resolves with a handle once the request is sent; `done` is called exactly once. */
  watch(
    resourceVersion: string,
    onEvent: (type: WatchEventType, object: R) => void,
    done: (err: unknown) => void,
  ): Promise<{ abort(): void }>;
}

export type ChangeHandler<T> = (change: { type: 'add' | 'update' | 'delete'; object: T; old?: T }) => void;

export interface InformerLogger {
  warn(message: string, meta?: Record<string, unknown>): void;
  debug(message: string, meta?: Record<string, unknown>): void;
}

export function objectKey(o: ObjectMeta): string {
  const m = o.metadata ?? {};
  return m.namespace ? `${m.namespace}/${m.name ?? ''}` : (m.name ?? '');
}

export function statusCodeOf(err: unknown): number | undefined {
  if (err === null || typeof err !== 'object') return undefined;
  const e = err as { statusCode?: unknown; code?: unknown };
  if (typeof e.statusCode === 'number') return e.statusCode;
  if (typeof e.code === 'number') return e.code;
  return undefined;
}

// ---- pure store helpers ----------------------------------------------------------------------

export interface StoredEntry<T> {
  object: T;
  resourceVersion: string;
}

/** Replaces the store with a fresh list; returns the changes a relist implies (deletes included). */
export function replaceStore<T>(
  store: Map<string, StoredEntry<T>>,
  items: { key: string; object: T; resourceVersion: string }[],
): { type: 'add' | 'update' | 'delete'; object: T; old?: T }[] {
  const changes: { type: 'add' | 'update' | 'delete'; object: T; old?: T }[] = [];
  const seen = new Set<string>();
  for (const item of items) {
    seen.add(item.key);
    const change = upsert(store, item.key, item.object, item.resourceVersion);
    if (change) changes.push(change);
  }
  for (const [key, entry] of [...store]) {
    if (!seen.has(key)) {
      store.delete(key);
      changes.push({ type: 'delete', object: entry.object });
    }
  }
  return changes;
}

/** Adds or updates one object; no change (undefined) when the resourceVersion is the same. */
export function upsert<T>(
  store: Map<string, StoredEntry<T>>,
  key: string,
  object: T,
  resourceVersion: string,
): { type: 'add' | 'update'; object: T; old?: T } | undefined {
  const existing = store.get(key);
  if (existing && existing.resourceVersion === resourceVersion && resourceVersion !== '') return undefined;
  store.set(key, { object, resourceVersion });
  return existing ? { type: 'update', object, old: existing.object } : { type: 'add', object };
}

/**
 * True when resourceVersion `a` is older than `b`. resourceVersions are opaque by contract, but
 * etcd-backed ones are increasing integers; anything else is never considered older.
 */
export function isOlder(a: string, b: string): boolean {
  if (!/^[0-9]+$/.test(a) || !/^[0-9]+$/.test(b)) return false;
  return BigInt(a) < BigInt(b);
}

// ---- the informer ----------------------------------------------------------------------------

export class Informer<R extends ObjectMeta, T = R> {
  private readonly store = new Map<string, StoredEntry<T>>();
  private readonly handlers: ChangeHandler<T>[] = [];
  /** resourceVersions of our own writes, per key, until the watch catches up. */
  private readonly primed = new Map<string, string>();
  private resourceVersion = '';
  private stopped = true;
  private failures = 0;
  private current: { abort(): void } | undefined;
  private wake: (() => void) | undefined;
  private syncedResolve!: () => void;
  private hasSyncedFlag = false;
  private loop: Promise<void> | undefined;
  /** Resolves after the first successful list. */
  readonly synced: Promise<void>;
  /** Counters for tests and metrics. */
  readonly stats = { lists: 0, watches: 0, errors: 0, relistsOnGone: 0 };

  constructor(
    readonly name: string,
    private readonly source: ListWatchSource<R>,
    private readonly transform: (object: R) => T,
    private readonly clock: Clock,
    private readonly log: InformerLogger,
    private readonly maxBackoffMs = 30_000,
    /** In [0, 1): the backoff's jitter (tests pass a constant). */
    private readonly random: () => number = Math.random,
  ) {
    this.synced = new Promise((resolve) => (this.syncedResolve = resolve));
  }

  on(handler: ChangeHandler<T>): void {
    this.handlers.push(handler);
  }

  get(key: string): T | undefined {
    return this.store.get(key)?.object;
  }

  list(): T[] {
    return [...this.store.values()].map((e) => e.object);
  }

  /**
   * Puts an object we just wrote into the store, without telling handlers. The watch event for
   * it then changes nothing, and events still in flight for older versions are ignored, so a
   * reconcile never sees the world from before its own write (and never issues twice).
   */
  prime(object: R): void {
    const key = objectKey(object);
    const rv = object.metadata?.resourceVersion ?? '';
    const existing = this.store.get(key);
    if (existing && rv !== '' && isOlder(rv, existing.resourceVersion)) return;
    // The watch delivered this version first: it is stored already, not transformed twice.
    if (existing && rv !== '' && existing.resourceVersion === rv) return;
    this.store.set(key, { object: this.transform(object), resourceVersion: rv });
    if (rv !== '') this.primed.set(key, rv);
  }

  hasSynced(): boolean {
    return this.hasSyncedFlag;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.current?.abort();
    this.wake?.();
    await this.loop;
  }

  private emit(changes: { type: 'add' | 'update' | 'delete'; object: T; old?: T }[]): void {
    for (const change of changes) for (const h of this.handlers) h(change);
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        if (this.resourceVersion === '') await this.relist();
        if (this.stopped) break; // stop() during the list: no watch (it would replay everything from "now")
        const outcome = await this.watchOnce();
        if (outcome === 'gone') {
          this.stats.relistsOnGone++;
          this.resourceVersion = '';
          continue;
        }
        if (outcome === 'closed') continue; // server timeout: resume from resourceVersion
        throw outcome.error;
      } catch (err) {
        if (this.stopped) break;
        // A 410 that ended a watch before it delivered anything (or refused one): relist, but after
        // the backoff, as for any other error.
        if (statusCodeOf(err) === 410) {
          this.stats.relistsOnGone++;
          this.resourceVersion = '';
        } else {
          this.stats.errors++;
        }
        this.failures++;
        const delay = Math.round(backoffDelay(this.failures, { baseDelayMs: 1000, maxDelayMs: this.maxBackoffMs }) * (1 + this.random() / 2));
        this.log.warn('informer error, retrying', { informer: this.name, error: String(err), retryInMs: delay });
        await this.sleep(delay);
      }
    }
  }

  private async relist(): Promise<void> {
    this.stats.lists++;
    const list = await this.source.list();
    if (this.stopped) return; // stop() raced the list: tell nobody about it
    // Our own writes newer than the list (a list served a little behind, after a 410) stay as they
    // are, as prime() would keep them: not overwritten by an older version, nor reported deleted.
    const ours = new Map<string, StoredEntry<T>>();
    for (const [key, rv] of this.primed) {
      const held = this.store.get(key);
      if (held !== undefined && held.resourceVersion === rv && isOlder(list.resourceVersion, rv)) ours.set(key, held);
    }
    // An object the store holds at the same resourceVersion is not transformed again (a relist after 410).
    const items = list.items.map((raw) => {
      const key = objectKey(raw);
      const resourceVersion = raw.metadata?.resourceVersion ?? '';
      const held = this.store.get(key);
      const own = ours.get(key);
      if (own !== undefined) return { key, ...own };
      return { key, object: held !== undefined && resourceVersion !== '' && held.resourceVersion === resourceVersion ? held.object : this.transform(raw), resourceVersion };
    });
    const listed = new Set(items.map((i) => i.key));
    for (const [key, own] of ours) if (!listed.has(key)) items.push({ key, ...own });
    const changes = replaceStore(this.store, items);
    for (const key of [...this.primed.keys()]) if (!ours.has(key)) this.primed.delete(key);
    this.resourceVersion = list.resourceVersion;
    this.emit(changes);
    if (!this.hasSyncedFlag) {
      this.hasSyncedFlag = true;
      this.syncedResolve();
    }
    this.log.debug('listed', { informer: this.name, items: items.length, resourceVersion: list.resourceVersion });
  }

  /** One watch request, until it ends: 'closed' (normally), 'gone' (410), or an error. */
  private watchOnce(): Promise<'closed' | 'gone' | { error: unknown }> {
    return new Promise((resolve) => {
      let errorEvent: Error | undefined;
      let events = 0; // not counting ERROR events: they say nothing about the watch's health
      const started = this.clock.now().getTime();
      this.stats.watches++;
      const onEvent = (type: WatchEventType, object: R): void => {
        if (this.stopped) return;
        if (type === 'ERROR') {
          errorEvent ??= watchErrorEvent(object);
          return;
        }
        events++;
        const rv = object.metadata?.resourceVersion;
        if (rv) this.resourceVersion = rv;
        if (type === 'BOOKMARK') return;
        const key = objectKey(object);
        if (type === 'DELETED') {
          const existing = this.store.get(key);
          if (existing) {
            this.store.delete(key);
            this.emit([{ type: 'delete', object: existing.object }]);
          }
          return;
        }
        const primed = this.primed.get(key);
        if (primed !== undefined && rv !== undefined && isOlder(rv, primed)) return; // older than our own write
        this.primed.delete(key);
        // The event of our own write (primed): the store has it, no transform (cache-form.ts reads keys).
        if (rv !== undefined && rv !== '' && this.store.get(key)?.resourceVersion === rv) return;
        const change = upsert(this.store, key, this.transform(object), rv ?? '');
        if (change) this.emit([change]);
      };
      const done = (err: unknown): void => {
        this.current = undefined;
        const lived = this.clock.now().getTime() - started;
        // A watch that lived a while, or delivered events, was healthy: reset the backoff.
        const healthy = events > 0 || lived > 10_000;
        if (healthy) this.failures = 0;
        const gone = statusCodeOf(errorEvent) === 410 || statusCodeOf(err) === 410;
        if (gone && healthy) resolve('gone'); // the usual expiry of a long watch: relist at once
        else if (errorEvent) resolve({ error: errorEvent });
        else if (err) resolve({ error: err });
        // A watch closed at once without an event is an error in disguise: back off, don't spin.
        else if (events === 0 && lived < 1000) resolve({ error: new Error('watch closed immediately') });
        else resolve('closed');
      };
      this.source.watch(this.resourceVersion, onEvent, done).then(
        (handle) => {
          this.current = handle;
          if (this.stopped) handle.abort();
        },
        (err: unknown) => resolve({ error: err }),
      );
    });
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = this.clock.setTimer(ms, () => {
        this.wake = undefined;
        resolve();
      });
      this.wake = () => {
        timer.cancel();
        this.wake = undefined;
        resolve();
      };
    });
  }
}

/** A watch ERROR event's Status as an error carrying its code (410 relists, anything else backs off). */
function watchErrorEvent(status: unknown): Error {
  const s = (status ?? {}) as { code?: unknown; message?: unknown; reason?: unknown };
  const code = typeof s.code === 'number' ? s.code : undefined;
  const text = typeof s.message === 'string' ? s.message : typeof s.reason === 'string' ? s.reason : 'no message';
  return Object.assign(new Error(`watch ERROR event${code !== undefined ? ` ${code}` : ''}: ${text}`), code !== undefined ? { statusCode: code } : {});
}

// ---- one resource in several namespaces ------------------------------------------------------

/**
 * One resource watched in the namespaces the controller is limited to (`--namespace` given once
 * or more): one Informer per namespace, read as one store (keys `namespace/name`, as an Informer's).
 * Without a namespace list, one Informer over all namespaces. A list/watch across namespaces
 * needs rights in every namespace, so a namespaced install cannot use a single one.
 */
export class NamespacedInformers<R extends ObjectMeta, T = R> {
  private readonly all: Informer<R, T> | undefined;
  private readonly byNamespace = new Map<string, Informer<R, T>>();
  /** Resolves once every namespace's first list succeeded. */
  readonly synced: Promise<void>;

  constructor(namespaces: readonly string[] | undefined, make: (namespace: string | undefined) => Informer<R, T>) {
    if (namespaces === undefined || namespaces.length === 0) this.all = make(undefined);
    else for (const ns of new Set(namespaces)) this.byNamespace.set(ns, make(ns));
    this.synced = Promise.all(this.informers().map((i) => i.synced)).then(() => undefined);
  }

  /** The namespaces watched, or undefined for all of them. */
  get namespaces(): string[] | undefined {
    return this.all ? undefined : [...this.byNamespace.keys()];
  }

  on(handler: ChangeHandler<T>): void {
    for (const i of this.informers()) i.on(handler);
  }

  get(key: string): T | undefined {
    if (this.all) return this.all.get(key);
    const slash = key.indexOf('/');
    return slash < 0 ? undefined : this.byNamespace.get(key.slice(0, slash))?.get(key);
  }

  list(): T[] {
    return this.informers().flatMap((i) => i.list());
  }

  /** As Informer.prime; an object outside the watched namespaces is ignored. */
  prime(object: R): void {
    (this.all ?? this.byNamespace.get(object.metadata?.namespace ?? ''))?.prime(object);
  }

  hasSynced(): boolean {
    return this.informers().every((i) => i.hasSynced());
  }

  start(): void {
    for (const i of this.informers()) i.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.informers().map((i) => i.stop()));
  }

  private informers(): Informer<R, T>[] {
    return this.all ? [this.all] : [...this.byNamespace.values()];
  }
}
