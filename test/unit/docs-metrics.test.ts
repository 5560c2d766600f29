/**
 * docs/operations.md names every metric the processes export: the names are read from the sources
 * (`name: 'dc_…'`, `keyless_server_…`, `keyserver_…` of the prom-client constructors), so a metric
 * added without a word in the docs fails here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../support/control-plane.js';

function* sources(dir: string): Generator<string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* sources(p);
    else if (e.name.endsWith('.ts')) yield p;
  }
}

void test('docs/operations.md names every metric registered in src/', () => {
  const names = new Set<string>();
  for (const file of sources(join(repoRoot, 'src'))) {
    for (const m of readFileSync(file, 'utf8').matchAll(/name: '((?:dc_|keyless_server_|keyserver_)[a-z_]+)'/g)) names.add(m[1] ?? '');
  }
  assert.ok(names.size >= 30, `found the metrics (${names.size})`);
  const doc = readFileSync(join(repoRoot, 'docs', 'operations.md'), 'utf8');
  const missing = [...names].filter((n) => !doc.includes(`\`${n}\``)).sort();
  assert.deepEqual(missing, [], 'metrics not documented in docs/operations.md');
});
