import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { SIDECAR_FLAGS } from '../../../src/sidecar/config.js';
import { sidecarContainer } from '../../../src/webhook/inject.js';
import { DEFAULT_SIDECAR_CONFIG, type SidecarConfig } from '../../../src/webhook/config.js';
import {
  maxConnectionsForMemoryLimit,
  memoryQuantityBytes,
  SIDECAR_BASE_BYTES,
  SIDECAR_BYTES_PER_CONNECTION,
  SIDECAR_DEFAULT_MAX_CONNECTIONS,
} from '../../../src/webhook/sidecar-memory.js';

const target = { request: { dcName: 'web-dc', listenPort: 8443, upstreamPort: 8080, metricsPort: 15300 }, secretName: 'web-dc-credentials' };
const withLimits = (limits: SidecarConfig['resources']['limits']): SidecarConfig => ({ ...DEFAULT_SIDECAR_CONFIG, resources: { ...DEFAULT_SIDECAR_CONFIG.resources, ...(limits ? { limits } : { limits: undefined }) } });
const flag = (args: readonly string[] | undefined, name: string): string | undefined => {
  const i = args?.indexOf(name) ?? -1;
  return i >= 0 ? args![i + 1] : undefined;
};

void describe('memoryQuantityBytes', () => {
  void test('reads binary, decimal and plain quantities', () => {
    assert.equal(memoryQuantityBytes('128Mi'), 134_217_728);
    assert.equal(memoryQuantityBytes('1Gi'), 1_073_741_824);
    assert.equal(memoryQuantityBytes('1.5Gi'), 1_610_612_736);
    assert.equal(memoryQuantityBytes('128M'), 128_000_000);
    assert.equal(memoryQuantityBytes('134217728'), 134_217_728);
    assert.equal(memoryQuantityBytes('64k'), 64_000);
  });
  void test("reads Kubernetes' other legal forms: exponents (Helm renders an integer in a values file as 1.34217728e+08), a sign, a leading or trailing dot", () => {
    assert.equal(memoryQuantityBytes('1.34217728e+08'), 134_217_728);
    assert.equal(memoryQuantityBytes('1e9'), 1_000_000_000);
    assert.equal(memoryQuantityBytes('1E9'), 1_000_000_000);
    assert.equal(memoryQuantityBytes('+128Mi'), 134_217_728);
    assert.equal(memoryQuantityBytes('.5Gi'), 536_870_912);
    assert.equal(memoryQuantityBytes('1.Gi'), 1_073_741_824);
    assert.equal(memoryQuantityBytes('1E'), 1e18, "'E' alone is exa");
  });
  void test('is undefined for what is not a quantity, or is negative', () => {
    for (const q of ['', 'Mi', '128 MiB', '-1Gi', '12Xi', '1e', '.', '1ee9']) assert.equal(memoryQuantityBytes(q), undefined, q);
  });
});

void describe('maxConnectionsForMemoryLimit', () => {
  void test("the chart's 128Mi fits 1024 connections", () => {
    assert.equal(maxConnectionsForMemoryLimit('128Mi'), 1024);
  });
  void test('each cap keeps the measured cost of its connections under the limit', () => {
    for (const limit of ['96Mi', '128Mi', '256Mi', '512Mi']) {
      const max = maxConnectionsForMemoryLimit(limit)!;
      assert.ok(SIDECAR_BASE_BYTES + max * SIDECAR_BYTES_PER_CONNECTION <= memoryQuantityBytes(limit)!, limit);
      assert.ok(SIDECAR_BASE_BYTES + (max + 1) * SIDECAR_BYTES_PER_CONNECTION > memoryQuantityBytes(limit)!, `${limit}: the cap is the largest that fits`);
    }
  });
  void test("nothing when the sidecar's defaults fit: no limit, a large one, or one we cannot read", () => {
    assert.equal(maxConnectionsForMemoryLimit(undefined), undefined);
    assert.equal(maxConnectionsForMemoryLimit('1Gi'), undefined);
    assert.equal(maxConnectionsForMemoryLimit('not-a-quantity'), undefined);
  });
  void test('a tiny limit still serves a few connections rather than none', () => {
    assert.equal(maxConnectionsForMemoryLimit('32Mi'), 16);
  });
  void test("the sidecar's own --max-connections default is the one assumed here", () => {
    assert.equal(SIDECAR_FLAGS.find((f) => f.flag === 'max-connections')?.defaultValue, String(SIDECAR_DEFAULT_MAX_CONNECTIONS));
  });
});

void describe('the injected container', () => {
  void test('carries the cap of its memory limit, and a per-source cap of a quarter of it (the sidecar defaults\' ratio)', () => {
    const args = sidecarContainer(target, DEFAULT_SIDECAR_CONFIG, 'native').args;
    assert.equal(flag(args, '--max-connections'), '1024');
    assert.equal(flag(args, '--max-connections-per-source'), '256');
    assert.equal(flag(sidecarContainer(target, withLimits({ memory: '256Mi' }), 'native').args, '--max-connections'), '2662');
  });
  void test("keeps the sidecar's defaults without a memory limit or with a large one", () => {
    for (const config of [withLimits(undefined), withLimits({ memory: '2Gi' }), withLimits({ cpu: '1' })]) {
      const args = sidecarContainer(target, config, 'container').args;
      assert.equal(flag(args, '--max-connections'), undefined);
      assert.equal(flag(args, '--max-connections-per-source'), undefined);
    }
  });
});
