// Proves the test control plane is a real kube-apiserver + etcd: the apiserver itself evaluates a
// CRD's CEL rule, a watch delivers events through @kubernetes/client-node, and /version reports
// the pinned release.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { V1CustomResourceDefinition, V1Secret } from '@kubernetes/client-node';
import { ApiException, ApiextensionsV1Api, CustomObjectsApi, VersionApi, Watch } from '@kubernetes/client-node';
import { testKubeConfig, withNamespace } from '../support/cluster.js';
import { pinnedVersions } from '../support/control-plane.js';

const CEL_MESSAGE = 'spec.minReplicas must not exceed spec.maxReplicas';

function widgetCrd(group: string): V1CustomResourceDefinition {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `widgets.${group}` },
    spec: {
      group,
      scope: 'Namespaced',
      names: { plural: 'widgets', singular: 'widget', kind: 'Widget', listKind: 'WidgetList' },
      versions: [{
        name: 'v1',
        served: true,
        storage: true,
        schema: {
          openAPIV3Schema: {
            type: 'object',
            properties: {
              spec: {
                type: 'object',
                required: ['minReplicas', 'maxReplicas'],
                properties: {
                  minReplicas: { type: 'integer', minimum: 0 },
                  maxReplicas: { type: 'integer', minimum: 0 },
                },
                x_kubernetes_validations: [{ rule: 'self.minReplicas <= self.maxReplicas', message: CEL_MESSAGE }],
              },
            },
          },
        },
      }],
    },
  };
}

/** The Status object the apiserver sent with a failed request. */
function statusOf(err: unknown): { code: number; reason?: string; message?: string } {
  assert.ok(err instanceof ApiException, `expected an ApiException, got ${String(err)}`);
  const body: unknown = typeof err.body === 'string' ? JSON.parse(err.body) : err.body;
  const status = body as { reason?: string; message?: string };
  return { code: err.code, reason: status.reason, message: status.message };
}

void describe('the test control plane', () => {
  void it('rejects a custom object that breaks its CRD CEL rule with the rule message, and accepts a valid one', async () => {
    const kc = await testKubeConfig();
    const ext = kc.makeApiClient(ApiextensionsV1Api);
    const custom = kc.makeApiClient(CustomObjectsApi);
    const group = `t${randomBytes(4).toString('hex')}.dc-operator.test`;
    const crd = await ext.createCustomResourceDefinition({ body: widgetCrd(group) });
    const crdName = crd.metadata?.name ?? '';
    try {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const got = await ext.readCustomResourceDefinition({ name: crdName });
        if (got.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) break;
        assert.ok(Date.now() < deadline, 'CRD did not become Established within 30 s');
        await sleep(100);
      }

      await withNamespace(async (ns) => {
        const create = (name: string, minReplicas: number, maxReplicas: number): Promise<unknown> =>
          custom.createNamespacedCustomObject({
            group, version: 'v1', namespace: ns.name, plural: 'widgets',
            body: { apiVersion: `${group}/v1`, kind: 'Widget', metadata: { name }, spec: { minReplicas, maxReplicas } },
          });

        // Discovery of a just-established CRD can lag a moment behind; retry only on 404.
        const until = Date.now() + 15_000;
        for (;;) {
          try {
            await create('valid', 1, 3);
            break;
          } catch (err) {
            if (!(err instanceof ApiException && err.code === 404 && Date.now() < until)) throw err;
            await sleep(200);
          }
        }

        await assert.rejects(create('invalid', 5, 2), (err: unknown) => {
          const s = statusOf(err);
          assert.equal(s.code, 422);
          assert.equal(s.reason, 'Invalid');
          assert.ok(s.message?.includes(CEL_MESSAGE), `status message was: ${s.message}`);
          return true;
        });
      }, 'cel');
    } finally {
      await ext.deleteCustomResourceDefinition({ name: crdName });
    }
  });

  void it('delivers the ADDED event of a new Secret through a client-node Watch', async () => {
    await withNamespace(async (ns) => {
      const watch = new Watch(ns.kc);
      let onAdded: (s: V1Secret) => void = () => {};
      const added = new Promise<V1Secret>((res) => { onAdded = res; });
      let watchError: unknown;
      const controller = await watch.watch(
        `/api/v1/namespaces/${ns.name}/secrets`,
        {},
        (phase: string, obj: V1Secret) => {
          if (phase === 'ADDED' && obj.metadata?.name === 'watched') onAdded(obj);
        },
        (err: unknown) => { watchError = err; },
      );
      try {
        await ns.core.createNamespacedSecret({
          namespace: ns.name,
          body: { metadata: { name: 'watched' }, stringData: { greeting: 'hello' } },
        });
        const secret = await Promise.race([
          added,
          sleep(15_000, undefined, { ref: false }).then(() => { throw new Error(`no ADDED event within 15 s (watch error: ${String(watchError)})`); }),
        ]);
        assert.equal(secret.metadata?.namespace, ns.name);
        assert.equal(Buffer.from(secret.data?.['greeting'] ?? '', 'base64').toString(), 'hello');
      } finally {
        controller.abort();
      }
    }, 'watch');
  });

  void it('reports the pinned Kubernetes version on /version', async () => {
    const kc = await testKubeConfig();
    const info = await kc.makeApiClient(VersionApi).getCode();
    const pinned = pinnedVersions().kubernetes;
    assert.equal(info.gitVersion, pinned);
    assert.equal(`v${info.major}.${info.minor}`, pinned.split('.').slice(0, 2).join('.'));
  });
});
