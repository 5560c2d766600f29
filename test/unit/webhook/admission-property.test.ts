// Property tests: for generated pods, whatever the webhook answers is consistent: a refusal says
// why, an injection adds exactly one sidecar and one volume while keeping everything the author
// wrote, and asking again about the result changes nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { admit, type AdmissionDeps } from '../../../src/webhook/admission.js';
import type { AdmissionRequest } from '../../../src/webhook/admission-types.js';
import { CREDENTIALS_VOLUME_NAME, DEFAULT_SIDECAR_CONFIG, SIDECAR_CONTAINER_NAME } from '../../../src/webhook/config.js';
import { applyPatch, type JsonValue, type PatchOperation } from '../../../src/webhook/json-patch.js';

const name = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/);
const port = fc.oneof(fc.constantFrom(8080, 8443, 9443, 15300, 443), fc.integer({ min: 1, max: 65535 }));
const container: fc.Arbitrary<V1Container> = fc.record({
  name,
  image: fc.constant('registry.invalid/app:1'),
  ports: fc.array(fc.record({ containerPort: port }), { maxLength: 2 }),
});
const annotationValue = fc.oneof(
  { arbitrary: fc.constant(undefined), weight: 6 },
  { arbitrary: port.map(String), weight: 2 },
  { arbitrary: fc.constantFrom('', 'x', '0', '70000', ' 8081 '), weight: 1 },
);
const pod: fc.Arbitrary<V1Pod> = fc
  .record({
    containers: fc.uniqueArray(container, { minLength: 1, maxLength: 3, selector: (c) => c.name }),
    initContainers: fc.option(fc.uniqueArray(container, { maxLength: 2, selector: (c) => c.name }), { nil: undefined }),
    volumes: fc.option(fc.array(name.map((n) => ({ name: n, emptyDir: {} })), { maxLength: 2 }), { nil: undefined }),
    inject: fc.oneof(
      { arbitrary: fc.constant('web-dc'), weight: 6 },
      { arbitrary: fc.constantFrom(undefined, 'missing', 'Bad_Name', ''), weight: 3 },
    ),
    port: annotationValue,
    upstream: annotationValue,
    otherAnnotations: fc.dictionary(name, fc.string({ maxLength: 5 }), { maxKeys: 2 }),
  })
  .map(({ containers, initContainers, volumes, inject, port, upstream, otherAnnotations }) => {
    const annotations: Record<string, string> = { ...otherAnnotations };
    if (inject !== undefined) annotations['dc-operator.io/inject'] = inject;
    if (port !== undefined) annotations['dc-operator.io/port'] = port;
    if (upstream !== undefined) annotations['dc-operator.io/upstream-port'] = upstream;
    const p: V1Pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', annotations }, spec: { containers } };
    if (initContainers && p.spec) p.spec.initContainers = initContainers;
    if (volumes && p.spec) p.spec.volumes = volumes;
    return JSON.parse(JSON.stringify(p)) as V1Pod;
  });

function request(object: V1Pod): AdmissionRequest {
  return {
    uid: 'u', kind: { group: '', version: 'v1', kind: 'Pod' }, resource: { group: '', version: 'v1', resource: 'pods' },
    namespace: 'shop', operation: 'CREATE', object: object as unknown as JsonValue,
  };
}

function deps(mode: 'native' | 'container'): AdmissionDeps {
  return {
    config: { sidecar: DEFAULT_SIDECAR_CONFIG, excludedNamespaces: ['kube-system'] },
    sidecarMode: mode,
    lookupDelegatedCredential: (_ns, n) => Promise.resolve(n === 'web-dc' ? { secretName: 'web-dc-credentials' } : undefined),
  };
}

void test('for any pod, the webhook skips, refuses with a message, or injects exactly one sidecar keeping the rest, and a second pass adds nothing', async () => {
  const seen = { injected: 0, denied: 0, skipped: 0, error: 0 };
  await fc.assert(
    fc.asyncProperty(pod, fc.constantFrom('native' as const, 'container' as const), async (original, mode) => {
      const first = await admit(request(original), deps(mode));
      seen[first.result]++;
      const response = first.review.response;
      assert.ok(response);
      if (first.result === 'denied') {
        assert.equal(response.allowed, false);
        assert.ok((response.status?.message ?? '').length > 20, 'a refusal explains itself');
        return;
      }
      assert.notEqual(first.result, 'error');
      if (first.result === 'skipped') {
        assert.equal(response.patch, undefined);
        return;
      }
      const ops = JSON.parse(Buffer.from(response.patch ?? '', 'base64').toString('utf8')) as PatchOperation[];
      assert.ok(ops.every((o) => o.op === 'add'), 'injection only adds');
      const mutated = applyPatch(original as unknown as JsonValue, ops) as unknown as V1Pod;
      const all = [...(mutated.spec?.initContainers ?? []), ...(mutated.spec?.containers ?? [])];
      assert.equal(all.filter((c) => c.name === SIDECAR_CONTAINER_NAME).length, 1);
      assert.equal(mutated.spec?.volumes?.filter((v) => v.name === CREDENTIALS_VOLUME_NAME).length, 1);
      const withoutSidecar = (cs: V1Container[] | undefined): V1Container[] | undefined => cs?.filter((c) => c.name !== SIDECAR_CONTAINER_NAME);
      assert.deepEqual(withoutSidecar(mutated.spec?.containers), original.spec?.containers);
      const init = withoutSidecar(mutated.spec?.initContainers);
      assert.deepEqual(init?.length ? init : undefined, original.spec?.initContainers?.length ? original.spec.initContainers : undefined);

      const second = await admit(request(mutated), deps(mode));
      assert.equal(second.result, 'skipped');
      assert.equal(second.review.response?.patch, undefined);
    }),
    { numRuns: 300 },
  );
  // The generator reaches every branch, so the property is not vacuous.
  assert.ok(seen.injected > 20 && seen.denied > 20 && seen.skipped > 5, JSON.stringify(seen));
});
