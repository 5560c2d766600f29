/** Reading prom-client metrics in the key server tests. */
import assert from 'node:assert/strict';
import type { Registry } from 'prom-client';

/** The sum of metric `name`'s values whose labels include `labels` (fails if there is no such metric). */
export async function metricSum(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = registry.getSingleMetric(name);
  assert.ok(m, `metric ${name}`);
  let sum = 0;
  for (const v of (await m.get()).values) {
    const l = v.labels as Record<string, string | number | undefined>;
    if (Object.entries(labels).every(([k, want]) => String(l[k]) === want)) sum += v.value;
  }
  return sum;
}
