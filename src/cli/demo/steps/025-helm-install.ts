// On the real node: `helm install` of charts/dc-operator with the image built from this checkout
// (scripts/e2e/image.sh imported it into the node's containerd; imagePullPolicy Never, nothing is
// pulled). The controller, the webhook and the key server run as pods; helm --wait returns when
// they are Ready. One replica of each keeps the demo short; the chart's default is 2.
import { join } from 'node:path';
import { realNode } from '../real-node.js';
import { runCommand } from '../runtime.js';
import { defineStep, need } from '../step.js';

const RELEASE = 'dc-operator';

export const step = defineStep({
  modes: ['node'],
  title: () => 'helm install charts/dc-operator (the image built here)',
  async run(ctx) {
    const { env, kubectl } = need(ctx, 'cluster');
    const node = realNode();
    const helmHome = join(ctx.work, 'helm');
    const args = ['upgrade', '--install', RELEASE, join(ctx.root, 'charts', 'dc-operator'), '-n', ctx.systemNs, '--create-namespace',
      '--set', 'image.pullPolicy=Never', '--set', 'sidecar.image.pullPolicy=Never',
      '--set', 'controller.replicas=1', '--set', 'webhook.replicas=1', '--set', 'keyserver.replicas=1', '--wait', '--timeout', '180s'];
    const r = await runCommand(join(node.bin, 'helm'), args, {
      env: { ...env, HELM_CACHE_HOME: join(helmHome, 'cache'), HELM_CONFIG_HOME: join(helmHome, 'config'), HELM_DATA_HOME: join(helmHome, 'data') },
      timeoutMs: 200_000,
    });
    if (r.code !== 0) throw new Error(`helm install failed:\n${r.stdout}${r.stderr}`);
    const pods = await runCommand(kubectl, ['get', 'pods', '-n', ctx.systemNs, '-o',
      'jsonpath={range .items[*]}{.metadata.labels.app\\.kubernetes\\.io/component}{"\\n"}{end}'], { env });
    const components = [...new Set(pods.stdout.split('\n').filter(Boolean))].sort();
    return { image: node.image, components };
  },
  done: (r, ctx) => `helm install ${RELEASE} -n ${ctx.systemNs}: ${r.components.join(', ')} Ready, 1 replica each, image ${r.image} (imported, never pulled)`,
});
