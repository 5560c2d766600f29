// A cluster: the local etcd + kube-apiserver (started, or reused when already running), the
// current kubeconfig's, or the real node scripts/e2e/cluster.sh started (this process runs in its
// network namespace; every connection below starts there).
import { join } from 'node:path';
import { AdmissionregistrationV1Api, CoreV1Api, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { loadKubeconfig, systemPlaces } from '../../../operator/kubeconfig.js';
import { assertInNodeNetwork, realNode } from '../real-node.js';
import { kubectlBinary, runCommand } from '../runtime.js';
import { defineStep, type ConnectedCluster, type DemoContext } from '../step.js';

async function connect(ctx: DemoContext): Promise<{ kubeconfig: string; kc: KubeConfig; description: string; kubectl?: string }> {
  if (ctx.mode === 'node') {
    assertInNodeNetwork();
    const node = realNode();
    const kc = new KubeConfig();
    kc.loadFromFile(node.kubeconfig);
    const { items } = await kc.makeApiClient(CoreV1Api).listNode();
    const info = items[0]?.status?.nodeInfo;
    if (!info) throw new Error('the real node has no Node object');
    return {
      kubeconfig: node.kubeconfig, kc, kubectl: join(node.bin, 'kubectl'),
      description: `real node ${items[0]?.metadata?.name ?? '?'} (kubelet ${info.kubeletVersion}, ${info.containerRuntimeVersion}), in namespaces of its own,`,
    };
  }
  if (ctx.mode === 'local') {
    const up = await runCommand('bash', [join(ctx.root, 'scripts', 'control-plane', 'up.sh')], { cwd: ctx.root, timeoutMs: 30 * 60_000 });
    if (up.code !== 0) throw new Error(`scripts/control-plane/up.sh failed:\n${up.stderr}`);
    const reused = /already running/.test(up.stderr);
    if (!reused) ctx.cleanup.add('stop the control plane', async () => { await runCommand('bash', [join(ctx.root, 'scripts', 'control-plane', 'down.sh')], { cwd: ctx.root }); });
    const kubeconfig = join(ctx.root, '.dev', 'kubeconfig');
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfig);
    return { kubeconfig, kc, description: reused ? 'reused the running local control plane' : 'local etcd + kube-apiserver' };
  }
  const kc = new KubeConfig();
  const source = loadKubeconfig(kc, undefined, systemPlaces(), null);
  // The children get the same cluster: the file found, or (in a pod) their own in-cluster lookup.
  const kubeconfig = source.kind === 'file' ? source.path : source.kind === 'KUBECONFIG' ? (process.env['KUBECONFIG'] ?? '') : '';
  return { kubeconfig, kc, description: `context ${kc.getCurrentContext()}` };
}

export const step = defineStep({
  title: (ctx) => ({ local: 'starting etcd + kube-apiserver', current: 'connecting to the current cluster', node: 'connecting to the real node' })[ctx.mode],
  async run(ctx) {
    const { kubeconfig, kc, description, kubectl } = await connect(ctx);
    const cluster: ConnectedCluster = {
      kubeconfig,
      kc,
      server: kc.getCurrentCluster()?.server ?? '?',
      description,
      env: { ...process.env, KUBECONFIG: kubeconfig },
      core: kc.makeApiClient(CoreV1Api),
      custom: kc.makeApiClient(CustomObjectsApi),
      admission: kc.makeApiClient(AdmissionregistrationV1Api),
      kubectl: kubectl ?? kubectlBinary(),
    };
    ctx.state.cluster = cluster;
    return cluster;
  },
  done: (c) => `cluster: ${c.description} at ${c.server}`,
});
