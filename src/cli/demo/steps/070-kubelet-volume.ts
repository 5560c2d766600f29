// The issued Secret, written to disk as kubelet mounts a Secret volume (..data → ..<timestamp>/),
// after checking it holds no certificate key.
import { join } from 'node:path';
import { writeKubeletVolume } from '../runtime.js';
import { defineStep, need, PROCESS_MODES } from '../step.js';

export const step = defineStep({
  modes: PROCESS_MODES,
  title: () => 'writing the issued Secret as a kubelet volume',
  async run(ctx) {
    const { core } = need(ctx, 'cluster');
    const volume = join(ctx.work, 'credentials');
    const secret = await core.readNamespacedSecret({ namespace: ctx.appNs, name: 'web-dc' });
    const data = Object.fromEntries(Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')]));
    if (Object.keys(data).includes('tls.key')) throw new Error('the output Secret holds the certificate key; it never should');
    writeKubeletVolume(volume, data);
    ctx.state.volume = volume;
    return { volume, type: secret.type ?? '?', names: Object.keys(data).sort() };
  },
  done: (f) => `Secret web-dc (${f.type}) → ${f.volume}: ${f.names.join(', ')} (via ..data → ..<timestamp>/; no certificate key)`,
});
