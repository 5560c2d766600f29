// The CRDs from crds/, applied server-side and waited for until Established; on a real cluster
// that has them already (from the chart), left alone.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { GROUP, RESOURCES } from '../../../operator/api/v1alpha1.js';
import { runCommand } from '../runtime.js';
import { defineStep, need, PROCESS_MODES } from '../step.js';

const CRD_NAMES = Object.values(RESOURCES).map((r) => `crd/${r.plural}.${GROUP}`);

export const step = defineStep({
  modes: PROCESS_MODES,
  title: () => 'installing the CRDs',
  async run(ctx) {
    const { env, kubectl } = need(ctx, 'cluster');
    const crdDir = join(ctx.root, 'crds');
    if (ctx.mode === 'current' && (await runCommand(kubectl, ['get', ...CRD_NAMES], { env })).code === 0) {
      const wait = await runCommand(kubectl, ['wait', '--for=condition=Established', '--timeout=60s', ...CRD_NAMES], { env });
      if (wait.code !== 0) throw new Error(`CRDs not Established:\n${wait.stderr}`);
      return 'already installed';
    }
    const apply = await runCommand(kubectl, ['apply', '--server-side', '--force-conflicts', '-f', crdDir], { env });
    if (apply.code !== 0) throw new Error(`kubectl apply -f crds/ failed:\n${apply.stderr}`);
    const wait = await runCommand(kubectl, ['wait', '--for=condition=Established', '--timeout=60s', '-f', crdDir], { env });
    if (wait.code !== 0) throw new Error(`CRDs not Established:\n${wait.stderr}`);
    return 'installed';
  },
  done: (how, ctx) =>
    `CRDs ${how} and Established (${readdirSync(join(ctx.root, 'crds')).filter((f) => f.endsWith('.yaml')).length}: ${Object.values(RESOURCES).map((r) => r.kind).join(', ')})`,
});
