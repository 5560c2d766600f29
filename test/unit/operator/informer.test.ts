import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../../src/operator/clock.js';
import { withoutManagedFields } from '../../../src/operator/cache-form.js';
import { Informer, NamespacedInformers, replaceStore, type ListWatchSource, type StoredEntry, type WatchEventType } from '../../../src/operator/informer.js';

interface Obj {
  metadata: { name: string; namespace: string; resourceVersion: string };
  data?: string;
}
const obj = (name: string, rv: string, data?: string): Obj => ({ metadata: { name, namespace: 'ns', resourceVersion: rv }, data });

type Step = { kind: 'list'; items: Obj[]; rv: string } | { kind: 'list-error'; status: number };

/** A scripted list/watch source: each watch() call takes the next script of events. */
class ScriptedSource implements ListWatchSource<Obj> {
  readonly watchedFrom: string[] = [];
  lists: Step[] = [];
  watches: ((emit: (t: WatchEventType, o: Obj) => void, done: (err: unknown) => void) => void)[] = [];
  list() {
    const step = this.lists.shift();
    if (!step) return new Promise<never>(() => undefined);
    if (step.kind === 'list-error') return Promise.reject(Object.assign(new Error('list failed'), { statusCode: step.status }));
    return Promise.resolve({ items: step.items, resourceVersion: step.rv });
  }
  watch(rv: string, onEvent: (t: WatchEventType, o: Obj) => void, done: (err: unknown) => void) {
    this.watchedFrom.push(rv);
    const script = this.watches.shift();
    if (script) queueMicrotask(() => script(onEvent, done));
    return Promise.resolve({ abort: () => done(new Error('aborted')) });
  }
}

const quiet = { warn: () => undefined, debug: () => undefined };
const flush = () => new Promise((r) => setImmediate(r));

void test('a relist reports adds, updates and the deletes of objects that disappeared', () => {
  const store = new Map<string, StoredEntry<string>>();
  replaceStore(store, [
    { key: 'ns/a', object: 'a1', resourceVersion: '1' },
    { key: 'ns/b', object: 'b1', resourceVersion: '1' },
  ]);
  const changes = replaceStore(store, [
    { key: 'ns/a', object: 'a1', resourceVersion: '1' },
    { key: 'ns/c', object: 'c1', resourceVersion: '3' },
  ]);
  assert.deepEqual(
    changes.map((c) => `${c.type}:${c.object}`),
    ['add:c1', 'delete:b1'],
  );
});

void test('keeps the transformed projection, never the raw object', async () => {
  const source = new ScriptedSource();
  source.lists.push({ kind: 'list', items: [obj('a', '1', 'secret')], rv: '10' });
  const informer = new Informer('test', source, (o: Obj) => ({ name: o.metadata.name, size: o.data?.length ?? 0 }), new FakeClock(), quiet);
  informer.start();
  await informer.synced;
  assert.deepEqual(informer.get('ns/a'), { name: 'a', size: 6 });
  await informer.stop();
});

void test('resumes the watch from the last resourceVersion after a normal close', async () => {
  const clock = new FakeClock();
  const source = new ScriptedSource();
  source.lists.push({ kind: 'list', items: [], rv: '10' });
  source.watches.push((emit, done) => {
    emit('ADDED', obj('a', '11'));
    emit('BOOKMARK', obj('', '15'));
    clock.advance(60_000);
    done(null);
  });
  const informer = new Informer('test', source, (o: Obj) => o, clock, quiet);
  const seen: string[] = [];
  informer.on((c) => seen.push(`${c.type}:${c.object.metadata.name}`));
  informer.start();
  await flush();
  await flush();
  assert.deepEqual(source.watchedFrom, ['10', '15']);
  assert.deepEqual(seen, ['add:a']);
  assert.equal(informer.stats.lists, 1);
  await informer.stop();
});

void test('relists on 410 Gone from a watch ERROR event and reports objects deleted meanwhile', async () => {
  const source = new ScriptedSource();
  source.lists.push({ kind: 'list', items: [obj('a', '1'), obj('b', '1')], rv: '10' });
  source.lists.push({ kind: 'list', items: [obj('a', '1')], rv: '20' });
  source.watches.push((emit, done) => {
    emit('ERROR', { metadata: { name: '', namespace: '', resourceVersion: '' }, ...{ code: 410 } } as unknown as Obj);
    done(null);
  });
  const clock = new FakeClock();
  const informer = new Informer('test', source, (o: Obj) => o, clock, quiet, 30_000, () => 0);
  const seen: string[] = [];
  informer.on((c) => seen.push(`${c.type}:${c.object.metadata.name}`));
  informer.start();
  for (let i = 0; i < 5; i++) await flush();
  assert.equal(informer.stats.lists, 1, 'a 410 before any event: relists after the backoff');
  clock.advance(1000);
  for (let i = 0; i < 5; i++) await flush();
  assert.equal(informer.stats.relistsOnGone, 1);
  assert.deepEqual(source.watchedFrom, ['10', '20']);
  assert.deepEqual(seen, ['add:a', 'add:b', 'delete:b']);
  await informer.stop();
});

void test('restarts with backoff after a non-410 error instead of stopping', async () => {
  const clock = new FakeClock();
  const source = new ScriptedSource();
  source.lists.push({ kind: 'list-error', status: 500 });
  source.lists.push({ kind: 'list-error', status: 503 });
  source.lists.push({ kind: 'list', items: [obj('a', '1')], rv: '10' });
  const informer = new Informer('test', source, (o: Obj) => o, clock, quiet, 30_000, () => 0);
  informer.start();
  await flush();
  assert.equal(informer.hasSynced(), false);
  clock.advance(1000);
  await flush();
  assert.equal(informer.hasSynced(), false, 'second attempt also failed');
  clock.advance(1999);
  await flush();
  assert.equal(informer.stats.lists, 2, 'waits 2s before the third attempt');
  clock.advance(1);
  await flush();
  await informer.synced;
  assert.equal(informer.stats.errors, 2);
  assert.ok(informer.get('ns/a'));
  await informer.stop();
});

void test('a watch that fails with an error resumes from the same resourceVersion after backoff', async () => {
  const clock = new FakeClock();
  const source = new ScriptedSource();
  source.lists.push({ kind: 'list', items: [], rv: '10' });
  source.watches.push((_, done) => done(Object.assign(new Error('connection reset'), { code: 'ECONNRESET' })));
  const informer = new Informer('test', source, (o: Obj) => o, clock, quiet, 30_000, () => 0);
  informer.start();
  await flush();
  await flush();
  clock.advance(1000);
  await flush();
  assert.deepEqual(source.watchedFrom, ['10', '10']);
  assert.equal(informer.stats.lists, 1, 'no relist for a transient error');
  await informer.stop();
});

/**
 * A server whose every watch sends one ERROR event and closes. Before, an ERROR counted as an event
 * (a healthy watch), so nothing backed off: in 200 ms, 8177 lists and watches for 410, 19893
 * watches for 500. Now each round waits the backoff, jittered, doubling; a watch that delivered
 * real events for a while resets it.
 */
void test('a watch that ends in an ERROR event (410 or any other code) backs off with jitter before the next attempt (table)', async () => {
  for (const { code, random } of [{ code: 410, random: 0 }, { code: 500, random: 0 }, { code: 410, random: 0.99 }, { code: 500, random: 0.5 }, { code: 403, random: 0.25 }]) {
    const row = `code ${code}, jitter ${random}`;
    const clock = new FakeClock();
    let lists = 0;
    let watches = 0;
    const source: ListWatchSource<Obj> = {
      list: () => (lists++, Promise.resolve({ items: [], resourceVersion: '10' })),
      watch: (_rv, onEvent, done) => {
        watches++;
        // A macrotask, as a socket's: a spinning informer then fails the count instead of hanging the test.
        setImmediate(() => {
          onEvent('ERROR', { kind: 'Status', code, message: 'no' } as unknown as Obj);
          done(null);
        });
        return Promise.resolve({ abort: () => undefined });
      },
    };
    const informer = new Informer('test', source, (o: Obj) => o, clock, quiet, 30_000, () => random);
    informer.start();
    for (let i = 0; i < 200; i++) await flush();
    assert.equal(watches, 1, `${row}: one watch until the backoff passes`);
    assert.equal(lists, 1, row);
    const attempts = (): number => (code === 410 ? lists : watches);
    // The n-th retry waits 1s·2^(n-1) times (1 + random/2): not a millisecond sooner.
    let expected = 1;
    for (const base of [1000, 2000, 4000, 8000]) {
      const delay = Math.round(base * (1 + random / 2));
      clock.advance(delay - 1);
      for (let i = 0; i < 10; i++) await flush();
      assert.equal(attempts(), expected, `${row}: not before ${delay} ms`);
      clock.advance(1);
      for (let i = 0; i < 10; i++) await flush();
      assert.equal(attempts(), ++expected, `${row}: retried after ${delay} ms`);
    }
    if (code === 410) assert.equal(watches, lists, `${row}: each relist followed by one watch`);
    else assert.equal(lists, 1, `${row}: no relist for an error other than 410`);
    await informer.stop();
  }
});

void test('a 410 that ends a watch which delivered events relists at once, and resets the backoff', async () => {
  const clock = new FakeClock();
  const source = new ScriptedSource();
  source.lists.push({ kind: 'list', items: [], rv: '10' });
  source.lists.push({ kind: 'list', items: [], rv: '20' });
  source.watches.push((emit, done) => {
    emit('ADDED', obj('a', '11'));
    emit('ERROR', { code: 410 } as unknown as Obj);
    done(null);
  });
  source.watches.push(() => undefined);
  const informer = new Informer('test', source, (o: Obj) => o, clock, quiet, 30_000, () => 0);
  informer.start();
  for (let i = 0; i < 10; i++) await flush();
  assert.equal(informer.stats.lists, 2);
  assert.deepEqual(source.watchedFrom, ['10', '20']);
  await informer.stop();
});

void test('after prime, watch events older than our own write are ignored and the same version is no change', async () => {
  const source = new ScriptedSource();
  source.lists.push({ kind: 'list', items: [obj('a', '5', 'v5')], rv: '10' });
  let emitFromWatch: ((t: WatchEventType, o: Obj) => void) | undefined;
  source.watches.push((emit) => (emitFromWatch = emit));
  const informer = new Informer('test', source, (o: Obj) => o, new FakeClock(), quiet);
  const seen: string[] = [];
  informer.on((c) => seen.push(`${c.type}:${c.object.data ?? ''}`));
  informer.start();
  await flush();
  await flush();
  informer.prime(obj('a', '20', 'ours'));
  assert.equal(informer.get('ns/a')?.data, 'ours');
  emitFromWatch?.('MODIFIED', obj('a', '12', 'stale'));
  assert.equal(informer.get('ns/a')?.data, 'ours', 'a stale event does not undo our write');
  emitFromWatch?.('MODIFIED', obj('a', '20', 'ours'));
  emitFromWatch?.('MODIFIED', obj('a', '25', 'newer'));
  assert.equal(informer.get('ns/a')?.data, 'newer');
  assert.deepEqual(seen, ['add:v5', 'update:newer']);
  await informer.stop();
});

void test('an object at the resourceVersion the store holds is not transformed again (our own write\'s event, a relist)', async () => {
  const source = new ScriptedSource();
  source.lists.push({ kind: 'list', items: [obj('a', '5', 'v5')], rv: '10' });
  source.lists.push({ kind: 'list', items: [obj('a', '25', 'theirs'), obj('b', '21', 'b'), obj('c', '26', 'ours, seen first by the watch')], rv: '30' });
  let emitFromWatch: ((t: WatchEventType, o: Obj) => void) | undefined;
  let endWatch: ((err: unknown) => void) | undefined;
  source.watches.push((emit, done) => ((emitFromWatch = emit), (endWatch = done)));
  source.watches.push(() => undefined);
  const transformed: string[] = [];
  const informer = new Informer('test', source, (o: Obj) => (transformed.push(`${o.metadata.name}@${o.metadata.resourceVersion}`), o), new FakeClock(), quiet);
  informer.start();
  await flush();
  await flush();
  informer.prime(obj('a', '20', 'ours'));
  emitFromWatch?.('MODIFIED', obj('a', '20', 'ours'));
  emitFromWatch?.('MODIFIED', obj('a', '25', 'theirs'));
  assert.deepEqual(transformed, ['a@5', 'a@20', 'a@25'], 'the watch event of the primed version: no transform');
  emitFromWatch?.('MODIFIED', obj('c', '26', 'ours, seen first by the watch'));
  informer.prime(obj('c', '26', 'ours, seen first by the watch'));
  assert.deepEqual(transformed, ['a@5', 'a@20', 'a@25', 'c@26'], 'our write\'s response after its watch event: no transform');
  emitFromWatch?.('ERROR', { code: 410 } as unknown as Obj);
  endWatch?.(null);
  for (let i = 0; i < 6 && informer.get('ns/b') === undefined; i++) await flush();
  assert.equal(informer.stats.relistsOnGone, 1);
  assert.equal(informer.get('ns/b')?.data, 'b');
  assert.deepEqual(transformed, ['a@5', 'a@20', 'a@25', 'c@26', 'b@21'], 'a relist transforms what changed, not what the store holds');
  await informer.stop();
});

void test('NamespacedInformers: one informer per namespace, read as one store; one over all namespaces without a list', async () => {
  const sources = new Map<string, ScriptedSource>();
  const made: Array<string | undefined> = [];
  const at = (ns: string, name: string, rv: string): Obj => ({ metadata: { name, namespace: ns, resourceVersion: rv } });
  const set = new NamespacedInformers<Obj>(['a', 'b', 'a'], (ns) => {
    made.push(ns);
    const source = new ScriptedSource();
    source.lists.push({ kind: 'list', items: [at(ns ?? '', 'x', '1')], rv: '5' });
    sources.set(ns ?? '', source);
    return new Informer(`test/${ns ?? ''}`, source, (o: Obj) => o, new FakeClock(), quiet);
  });
  assert.deepEqual(made, ['a', 'b'], 'one informer per distinct namespace');
  assert.deepEqual(set.namespaces, ['a', 'b']);
  const seen: string[] = [];
  set.on((c) => seen.push(`${c.type}:${c.object.metadata.namespace}/${c.object.metadata.name}`));
  set.start();
  await set.synced;
  assert.equal(set.hasSynced(), true);
  assert.deepEqual(seen.sort(), ['add:a/x', 'add:b/x']);
  assert.equal(set.get('a/x')?.metadata.namespace, 'a');
  assert.equal(set.get('c/x'), undefined, 'a namespace not watched');
  assert.equal(set.list().length, 2);
  set.prime(at('b', 'y', '7'));
  set.prime(at('c', 'y', '7'));
  assert.ok(set.get('b/y'), 'primed into its namespace\'s store');
  assert.equal(set.get('c/y'), undefined, 'an object of another namespace is not kept');
  await set.stop();

  const madeAll: Array<string | undefined> = [];
  const all = new NamespacedInformers<Obj>(undefined, (ns) => {
    madeAll.push(ns);
    return new Informer('all', new ScriptedSource(), (o: Obj) => o, new FakeClock(), quiet);
  });
  assert.deepEqual(madeAll, [undefined], 'all namespaces: one informer without a namespace');
  assert.equal(all.namespaces, undefined);
  all.prime(at('anywhere', 'z', '1'));
  assert.ok(all.get('anywhere/z'));
});

void test('the controller caches objects without managedFields: listed, watched and primed; the rest stays', async () => {
  type WithFields = Obj & { metadata: Obj['metadata'] & { managedFields?: unknown[]; labels?: Record<string, string> } };
  const withFields = (name: string, rv: string, data: string): WithFields => ({
    metadata: { name, namespace: 'ns', resourceVersion: rv, labels: { app: name }, managedFields: [{ manager: 'dc-operator', fieldsV1: { 'f:data': {} } }] },
    data,
  });
  const source = new ScriptedSource();
  source.lists.push({ kind: 'list', items: [withFields('a', '5', 'listed')], rv: '10' });
  let emitFromWatch: ((t: WatchEventType, o: Obj) => void) | undefined;
  source.watches.push((emit) => (emitFromWatch = emit));
  const informer = new Informer('test', source, (o: Obj) => withoutManagedFields(o as WithFields), new FakeClock(), quiet);
  informer.start();
  await flush();
  await flush();
  emitFromWatch?.('ADDED', withFields('b', '11', 'watched'));
  informer.prime(withFields('c', '12', 'primed'));
  for (const [key, data] of [['ns/a', 'listed'], ['ns/b', 'watched'], ['ns/c', 'primed']] as const) {
    const cached = informer.get(key) as WithFields | undefined;
    assert.equal(cached?.data, data);
    assert.equal(cached?.metadata.managedFields, undefined, `${key} is cached without managedFields`);
    assert.deepEqual(cached?.metadata.labels, { app: key.slice(3) }, 'labels and the rest of metadata stay');
    assert.ok(cached?.metadata.resourceVersion);
  }
  await informer.stop();
});

/**
 * A relist after 410 whose list is older than our own latest write (a list served a little
 * behind). Before, the relist cleared the primed versions and replaced the store: our object was
 * overwritten by its older version, or reported deleted (and its owner re-created it: 409).
 */
void test('a relist keeps our own writes newer than the list: not overwritten, not reported deleted', async () => {
  const clock = new FakeClock();
  const source = new ScriptedSource();
  source.lists.push({ kind: 'list', items: [obj('a', '5', 'v5')], rv: '10' });
  // Behind our writes of a (rv 30) and c (rv 31); b is new, d was deleted meanwhile.
  source.lists.push({ kind: 'list', items: [obj('a', '5', 'v5'), obj('b', '21', 'b')], rv: '25' });
  let emitFromWatch: ((t: WatchEventType, o: Obj) => void) | undefined;
  let endWatch: ((err: unknown) => void) | undefined;
  source.watches.push((emit, done) => ((emitFromWatch = emit), (endWatch = done)));
  source.watches.push(() => undefined);
  const informer = new Informer('test', source, (o: Obj) => o, clock, quiet, 30_000, () => 0);
  const seen: string[] = [];
  informer.on((c) => seen.push(`${c.type}:${c.object.metadata.name}@${c.object.metadata.resourceVersion}`));
  informer.start();
  await flush();
  await flush();
  emitFromWatch?.('ADDED', obj('d', '12', 'd'));
  informer.prime(obj('a', '30', 'ours'));
  informer.prime(obj('c', '31', 'ours too'));
  emitFromWatch?.('ERROR', { code: 410 } as unknown as Obj);
  endWatch?.(null);
  for (let i = 0; i < 6 && informer.get('ns/b') === undefined; i++) await flush();
  assert.equal(informer.stats.relistsOnGone, 1);
  assert.equal(informer.get('ns/a')?.data, 'ours', 'our write kept over the older listed version');
  assert.equal(informer.get('ns/c')?.data, 'ours too', 'our write kept although the list does not show it yet');
  assert.equal(informer.get('ns/d'), undefined, 'an object gone from the list is deleted');
  assert.deepEqual(seen, ['add:a@5', 'add:d@12', 'add:b@21', 'delete:d@12']);
  await informer.stop();
});
