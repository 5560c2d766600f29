// The webhook injects the sidecar into an annotated pod (a server-side dry run: nothing is stored).
import { join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import { ANNOTATION_INJECT, ANNOTATION_UPSTREAM_PORT, SIDECAR_CONTAINER_NAME } from '../../../webhook/config.js';
import { defineStep, need, PROCESS_MODES } from '../step.js';

export const step = defineStep({
  modes: PROCESS_MODES,
  title: () => 'asking the webhook to inject an annotated pod (dry run)',
  async run(ctx) {
    const { core } = need(ctx, 'cluster');
    const pod: V1Pod = {
      metadata: { name: 'web', annotations: { [ANNOTATION_INJECT]: 'web-dc', [ANNOTATION_UPSTREAM_PORT]: '8080' } },
      spec: { containers: [{ name: 'app', image: 'nginxinc/nginx-unprivileged:1.27-alpine', ports: [{ containerPort: 8080 }] }] },
    };
    const stored = await core.createNamespacedPod({ namespace: ctx.appNs, body: pod, dryRun: 'All' });
    const injected = [...(stored.spec?.initContainers ?? []).map((c) => ({ c, where: 'native sidecar (initContainers, restartPolicy Always)' })),
      ...(stored.spec?.containers ?? []).map((c) => ({ c, where: 'containers' }))].find((x) => x.c.name === SIDECAR_CONTAINER_NAME);
    if (!injected) throw new Error(`the webhook did not inject ${SIDECAR_CONTAINER_NAME}; see ${join(ctx.logDir, 'webhook.log')}`);
    return `${injected.where}: ${[...(injected.c.command ?? []), ...(injected.c.args ?? [])].slice(0, 2).join(' ')} …, Secret web-dc mounted read-only`;
  },
  done: (s) => `webhook injected ${SIDECAR_CONTAINER_NAME} as a ${s}`,
});
