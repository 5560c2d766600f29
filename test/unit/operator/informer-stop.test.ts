// Informer.stop() soon after start(): while the first list or the first watch request is in
// flight (a SIGTERM during start-up), the informer ends without starting anything new.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FakeClock } from '../../../src/operator/clock.js';
import { Informer, type ListResult, type ListWatchSource, type WatchEventType } from '../../../src/operator/informer.js';

interface Obj {
  metadata: { name: string; namespace: string; resourceVersion: string };
}

/** A source whose list and watch requests are answered by the test, when it chooses. */
class ManualSource implements ListWatchSource<Obj> {
  readonly lists: ((r: ListResult<Obj>) => void)[] = [];
  readonly watches: { rv: string; handle: (h: { abort(): void }) => void; done: (err: unknown) => void; aborted: boolean }[] = [];
  list(): Promise<ListResult<Obj>> {
    return new Promise((resolve) => this.lists.push(resolve));
  }
  watch(rv: string, _onEvent: (t: WatchEventType, o: Obj) => void, done: (err: unknown) => void): Promise<{ abort(): void }> {
    return new Promise((handle) => this.watches.push({ rv, handle, done, aborted: false }));
  }
}

const quiet = { warn: () => undefined, debug: () => undefined };
const flush = () => new Promise((r) => setImmediate(r));

/** Fails (instead of hanging the file) when `p` does not settle within `ms`. */
async function within(ms: number, p: Promise<void>, what: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not resolve within ${ms} ms`)), ms)));
  try {
    await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

void test('stop() while the first list is in flight: no watch is started when the list returns, nothing is reported, stop() resolves', async () => {
  const source = new ManualSource();
  const informer = new Informer('test', source, (o: Obj) => o, new FakeClock(), quiet);
  const seen: string[] = [];
  informer.on((c) => seen.push(c.type));
  informer.start();
  await flush();
  assert.equal(source.lists.length, 1, 'the first list is in flight');
  const stopped = informer.stop();
  source.lists[0]?.({ items: [{ metadata: { name: 'a', namespace: 'ns', resourceVersion: '5' } }], resourceVersion: '10' });
  await flush();
  assert.deepEqual(source.watches.map((w) => w.rv), [], 'a watch request after stop()');
  await within(2000, stopped, 'stop()');
  assert.deepEqual(seen, []);
  assert.equal(informer.hasSynced(), false);
});

void test('stop() while the first watch request is in flight: the watch is aborted as soon as it is open, and stop() resolves', async () => {
  const source = new ManualSource();
  const informer = new Informer('test', source, (o: Obj) => o, new FakeClock(), quiet);
  informer.start();
  await flush();
  source.lists[0]?.({ items: [], resourceVersion: '10' });
  await informer.synced;
  await flush();
  const watch = source.watches[0];
  assert.ok(watch, 'the watch request is in flight');
  const stopped = informer.stop();
  watch.handle({ abort: () => {
    watch.aborted = true;
    watch.done(new Error('aborted'));
  } });
  await within(2000, stopped, 'stop()');
  assert.equal(watch.aborted, true);
  assert.equal(source.watches.length, 1, 'no other watch');
  assert.equal(source.lists.length, 1, 'no other list');
});
