/**
 * The chart carries copies of crds/ (charts/dc-operator/files/crds/, turned into gated templates by
 * templates/crds.yaml). crds/ is generated from src/operator/api; `make manifests` copies it. This
 * fails when the two drift apart, naming the command that fixes it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../support/control-plane.js';

const crdDir = join(repoRoot, 'crds');
const chartCrdDir = join(repoRoot, 'charts', 'dc-operator', 'files', 'crds');
const yamlFiles = (dir: string): string[] => readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort();

void describe('chart CRDs', () => {
  void it('has the same CRD files as crds/ (run `make manifests` after `make crds`)', () => {
    assert.deepEqual(yamlFiles(chartCrdDir), yamlFiles(crdDir));
  });

  void it('has byte-identical copies of every CRD in crds/ (run `make manifests` after `make crds`)', () => {
    for (const f of yamlFiles(crdDir)) {
      const chart = readFileSync(join(chartCrdDir, f), 'utf8');
      assert.ok(chart === readFileSync(join(crdDir, f), 'utf8'), `charts/dc-operator/files/crds/${f} differs from crds/${f}: run \`make manifests\``);
    }
  });

  void it('describes each value in values.schema.json in its own words: no description copied onto another value', () => {
    const seen = new Map<string, string>();
    const walk = (node: unknown, path: string): void => {
      if (node === null || typeof node !== 'object') return;
      const o = node as { description?: unknown; properties?: Record<string, unknown> };
      if (typeof o.description === 'string' && path !== '') {
        const first = seen.get(o.description);
        assert.equal(first, undefined, `${path} has the description of ${first ?? ''}: "${o.description}"`);
        seen.set(o.description, path);
      }
      for (const [k, v] of Object.entries(o.properties ?? {})) walk(v, path === '' ? k : `${path}.${k}`);
    };
    walk(JSON.parse(readFileSync(join(repoRoot, 'charts', 'dc-operator', 'values.schema.json'), 'utf8')), '');
    assert.ok(seen.size > 10, 'the schema describes its values');
  });

  void it('keeps CRDs out of the chart\'s crds/ folder, which Helm installs unconditionally and never upgrades', () => {
    assert.throws(() => readdirSync(join(repoRoot, 'charts', 'dc-operator', 'crds')), /ENOENT/);
  });
});
