import assert from 'node:assert/strict';
import { test } from 'node:test';
import { listAll } from '../../../src/operator/kube.js';

void test('listAll pages through continue tokens and keeps the last resourceVersion', async () => {
  const pages = [
    { items: [1, 2], metadata: { resourceVersion: '10', continue: 'a' } },
    { items: [3], metadata: { resourceVersion: '11' } },
  ];
  const asked: (string | undefined)[] = [];
  const result = await listAll<number>(async (cont) => {
    asked.push(cont);
    return pages[asked.length - 1]!;
  });
  assert.deepEqual(result, { items: [1, 2, 3], resourceVersion: '11' });
  assert.deepEqual(asked, [undefined, 'a']);
});

void test('listAll reads items: null (an empty metadata-only list from the apiserver) as no items', async () => {
  const result = await listAll<number>(async () => ({ items: null, metadata: { resourceVersion: '7' } }));
  assert.deepEqual(result, { items: [], resourceVersion: '7' });
});
