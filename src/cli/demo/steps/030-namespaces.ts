// Two namespaces: the operator's (never injected) and the app's, labelled for the demo.
import { GROUP } from '../../../operator/api/v1alpha1.js';
import { defineStep, need, PROCESS_MODES } from '../step.js';

export const step = defineStep({
  modes: PROCESS_MODES,
  title: () => 'creating namespaces',
  async run(ctx) {
    const { core } = need(ctx, 'cluster');
    for (const name of [ctx.systemNs, ctx.appNs]) {
      await core.createNamespace({ body: { metadata: { name, labels: { [`${GROUP}/demo`]: ctx.id } } } });
      ctx.cleanup.add(`delete namespace ${name}`, async () => { await core.deleteNamespace({ name }); });
    }
    // No kube-controller-manager on the local control plane: Pod admission needs this account.
    await core.createNamespacedServiceAccount({ namespace: ctx.appNs, body: { metadata: { name: 'default' } } }).catch((err: unknown) => {
      if ((err as { code?: number }).code !== 409) throw err;
    });
  },
  done: (_, ctx) => `namespaces ${ctx.appNs} (app) and ${ctx.systemNs} (operator)`,
});
