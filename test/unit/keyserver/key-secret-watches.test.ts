/** The key server's watches of signer key Secrets: one per namespace, however many signers. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Secret } from '@kubernetes/client-node';
import { systemClock } from '../../../src/operator/clock.js';
import type { ListWatchSource, WatchEventType } from '../../../src/operator/informer.js';
import { KeySecretNamespaceWatches } from '../../../src/keyserver/key-secret-watches.js';

/** Secrets of namespaces in memory; counts lists and open watches per namespace. */
class FakeSecrets {
  readonly lists: string[] = [];
  readonly open = new Map<string, number>();
  private rv = 1;
  private readonly watchers = new Set<{ ns: string; onEvent: (t: WatchEventType, o: V1Secret) => void }>();
  private readonly items = new Map<string, V1Secret>();

  put(ns: string, name: string): void {
    const s: V1Secret = { metadata: { namespace: ns, name, resourceVersion: String(++this.rv) } };
    const had = this.items.has(`${ns}/${name}`);
    this.items.set(`${ns}/${name}`, s);
    for (const w of this.watchers) if (w.ns === ns) w.onEvent(had ? 'MODIFIED' : 'ADDED', structuredClone(s));
  }

  source(ns: string): ListWatchSource<V1Secret> {
    return {
      list: () => {
        this.lists.push(ns);
        return Promise.resolve({ items: [...this.items.values()].filter((s) => s.metadata?.namespace === ns).map((s) => structuredClone(s)), resourceVersion: String(this.rv) });
      },
      watch: (_rv, onEvent, done) => {
        const w = { ns, onEvent };
        this.watchers.add(w);
        this.open.set(ns, (this.open.get(ns) ?? 0) + 1);
        return Promise.resolve({
          abort: () => {
            if (this.watchers.delete(w)) this.open.set(ns, (this.open.get(ns) ?? 1) - 1);
            done(undefined);
          },
        });
      },
    };
  }

  get openWatches(): number {
    return [...this.open.values()].reduce((a, b) => a + b, 0);
  }
}

const silent = { warn: () => undefined, debug: () => undefined };

async function until(what: string, check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

void describe('KeySecretNamespaceWatches', () => {
  void it('three hundred signers with their own key Secrets in three namespaces: three watches; a change reaches exactly the signers of that Secret', async () => {
    const api = new FakeSecrets();
    const changed: string[][] = [];
    const watches = new KeySecretNamespaceWatches({ source: (ns) => api.source(ns), clock: systemClock, log: silent, onChange: (ids) => changed.push(ids.sort()) });
    const namespaces = ['team-a', 'team-b', 'dc-operator'];
    for (let i = 0; i < 300; i++) watches.set(`signer-${i}`, `${namespaces[i % 3]}/key-${i}`);
    watches.set('signer-shared', 'team-a/key-0'); // two signers, one key Secret
    watches.start();
    try {
      await until('three watches open', () => api.openWatches === 3);
      assert.equal(watches.size, 3);
      assert.equal(watches.secrets, 300);
      assert.deepEqual(api.lists.sort(), ['dc-operator', 'team-a', 'team-b']);

      api.put('team-a', 'key-0');
      await until('the change arrives', () => changed.length === 1);
      assert.deepEqual(changed[0], ['signer-0', 'signer-shared']);
      api.put('team-a', 'unrelated');
      api.put('team-b', 'key-1');
      await until('the second change arrives', () => changed.length === 2);
      assert.deepEqual(changed[1], ['signer-1'], 'a Secret no signer uses is dropped');
    } finally {
      await watches.stop();
    }
    assert.equal(api.openWatches, 0, 'stop closes every watch');
  });

  void it('a namespace watch closes with the last key Secret of the namespace and opens again with the next; a signer moved to another Secret stops hearing of the old one', async () => {
    const api = new FakeSecrets();
    const changed: string[][] = [];
    const watches = new KeySecretNamespaceWatches({ source: (ns) => api.source(ns), clock: systemClock, log: silent, onChange: (ids) => changed.push(ids) });
    watches.start();
    try {
      watches.set('a', 'team-a/key-a');
      watches.set('b', 'team-a/key-b');
      await until('one watch', () => api.openWatches === 1);
      watches.set('a', 'team-b/key-a'); // moved
      await until('two watches', () => api.openWatches === 2);
      api.put('team-a', 'key-a');
      api.put('team-a', 'key-b');
      await until('b hears of its Secret', () => changed.some((c) => c.includes('b')));
      assert.ok(!changed.some((c) => c.includes('a')), 'a no longer uses team-a/key-a');
      watches.set('b', undefined);
      await until('team-a closed', () => api.open.get('team-a') === 0);
      assert.equal(watches.size, 1);
      watches.set('c', 'team-a/key-c');
      await until('team-a open again', () => api.open.get('team-a') === 1);
      assert.equal(watches.size, 2);
    } finally {
      await watches.stop();
    }
  });
  void it('two signers of one key Secret both hear of it; when one leaves, the other still does', async () => {
    const api = new FakeSecrets();
    const changed: string[][] = [];
    const watches = new KeySecretNamespaceWatches({ source: (ns) => api.source(ns), clock: systemClock, log: silent, onChange: (ids) => changed.push([...ids].sort()) });
    watches.start();
    try {
      watches.set('x', 'shop/shared');
      watches.set('y', 'shop/shared');
      assert.equal(watches.secrets, 1);
      await until('one watch', () => api.openWatches === 1);
      api.put('shop', 'shared');
      await until('both hear', () => changed.some((c) => c.join() === 'x,y'));
      watches.set('x', undefined);
      changed.length = 0;
      api.put('shop', 'shared');
      await until('y hears alone', () => changed.some((c) => c.join() === 'y'));
      assert.ok(!changed.some((c) => c.includes('x')), 'x left');
      assert.equal(watches.secrets, 1);
    } finally {
      await watches.stop();
    }
  });
});
