// On the real node: the Deployment's pod, admitted through the webhook, which injected the sidecar
// as a native sidecar (an init container with restartPolicy Always: kubelet starts it before the
// app, and the pod is Ready only once it serves a credential from the Secret kubelet mounted).
// The handshake steps then connect to the pod's IP, from this process, in the node's network.
import type { V1Pod } from '@kubernetes/client-node';
import { DEFAULT_LISTEN_PORT, DEFAULT_METRICS_PORT, SIDECAR_CONTAINER_NAME } from '../../../webhook/config.js';
import { assertInNodeNetwork } from '../real-node.js';
import { waitFor } from '../runtime.js';
import { defineStep, need } from '../step.js';
import { APP } from './062-apply-workload.js';

const isReady = (p: V1Pod): boolean => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

export const step = defineStep({
  modes: ['node'],
  title: () => 'waiting for the pod with the injected sidecar',
  async run(ctx) {
    const { core } = need(ctx, 'cluster');
    const pod = await waitFor(`a Ready pod of Deployment ${APP}`, 120_000, async () =>
      (await core.listNamespacedPod({ namespace: ctx.appNs, labelSelector: `app=${APP}` })).items.find((p) => isReady(p) && p.status?.podIP));
    const sidecar = pod.spec?.initContainers?.find((c) => c.name === SIDECAR_CONTAINER_NAME);
    if (sidecar?.restartPolicy !== 'Always') throw new Error(`the pod has no native sidecar ${SIDECAR_CONTAINER_NAME}: init containers ${JSON.stringify(pod.spec?.initContainers?.map((c) => c.name))}`);
    const started = (name: string, list?: Array<{ name: string; state?: { running?: { startedAt?: Date } } }>): number =>
      new Date(list?.find((c) => c.name === name)?.state?.running?.startedAt ?? NaN).getTime();
    const sidecarAt = started(SIDECAR_CONTAINER_NAME, pod.status?.initContainerStatuses);
    const appAt = started('app', pod.status?.containerStatuses);
    if (!(sidecarAt <= appAt)) throw new Error(`the sidecar did not start before the app (sidecar ${sidecarAt}, app ${appAt})`);
    const ip = pod.status?.podIP ?? '';
    const name = pod.metadata?.name ?? '?';
    assertInNodeNetwork();
    ctx.state.target = {
      host: ip, port: DEFAULT_LISTEN_PORT, serverName: ctx.serverName, metricsUrl: `http://${ip}:${DEFAULT_METRICS_PORT}`,
      via: `through pod ${name} (${ip}:${DEFAULT_LISTEN_PORT})`,
    };
    return { name, ip, containers: [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].map((c) => c.name) };
  },
  done: (r) => `pod ${r.name} Ready at ${r.ip}: ${SIDECAR_CONTAINER_NAME} injected as a native sidecar (initContainers, restartPolicy Always), started before app; containers ${r.containers.join(', ')}`,
});
