// On the real node: what a user applies. An opted-in namespace with the certificate Secret, then
// one `kubectl apply -f` of a DelegatedCredential and a Deployment annotated for the sidecar, whose
// app is a small HTTP server on 127.0.0.1:8080 of the pod (node, from the image built here). The
// clock for "apply → DC handshake through the pod" starts at that apply (100-dcctl-probe.ts).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { API_VERSION, RESOURCES } from '../../../operator/api/v1alpha1.js';
import { ANNOTATION_INJECT, ANNOTATION_UPSTREAM_PORT, DEFAULT_UPSTREAM_PORT } from '../../../webhook/config.js';
import { NAMESPACE_INJECTION_LABEL } from '../../../webhook/webhook-configuration.js';
import { APP_GREETING } from '../app.js';
import { realNode } from '../real-node.js';
import { waitForDelegatedCredentialReady } from '../credentials.js';
import { runCommand } from '../runtime.js';
import { defineStep, need } from '../step.js';

export const APP = 'web';
export const DC_NAME = 'web-dc';

/** The app's container: an HTTP server on loopback only, so everything from outside goes through the sidecar. */
function appContainer(image: string): Record<string, unknown> {
  const server = `require("http").createServer((q, s) => s.end(${JSON.stringify(`${APP_GREETING} (pod)\n`)})).listen(${DEFAULT_UPSTREAM_PORT}, "127.0.0.1")`;
  return { name: 'app', image, imagePullPolicy: 'Never', command: ['node', '-e', server] };
}

function manifests(ctx: { appNs: string }, image: string): string {
  const dc = {
    apiVersion: API_VERSION, kind: RESOURCES.delegatedCredentials.kind, metadata: { name: DC_NAME, namespace: ctx.appNs },
    spec: { certificateSecretRef: { name: 'web-cert' }, algorithms: ['ecdsa_secp256r1_sha256', 'ed25519'], validity: '1h', secretName: DC_NAME },
  };
  const deployment = {
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: APP, namespace: ctx.appNs },
    spec: {
      replicas: 1, selector: { matchLabels: { app: APP } },
      template: {
        metadata: { labels: { app: APP }, annotations: { [ANNOTATION_INJECT]: DC_NAME, [ANNOTATION_UPSTREAM_PORT]: String(DEFAULT_UPSTREAM_PORT) } },
        spec: { containers: [appContainer(image)], terminationGracePeriodSeconds: 2 },
      },
    },
  };
  return [dc, deployment].map((o) => JSON.stringify(o, null, 1)).join('\n---\n');
}

export const step = defineStep({
  modes: ['node'],
  title: () => 'kubectl apply: a DelegatedCredential and an annotated Deployment',
  async run(ctx) {
    const { env, kubectl, custom } = need(ctx, 'cluster');
    const kubectlOk = async (args: string[], input?: string): Promise<string> => {
      const r = await runCommand(kubectl, args, { env, input, timeoutMs: 60_000 });
      if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed:\n${r.stderr}`);
      return r.stdout;
    };
    await kubectlOk(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ctx.appNs, labels: { [NAMESPACE_INJECTION_LABEL]: 'enabled' } } }));
    await ctx.pki;
    await kubectlOk(['create', 'secret', 'tls', 'web-cert', '-n', ctx.appNs, '--cert', join(ctx.certDir, 'tls.crt'), '--key', join(ctx.certDir, 'tls.key')]);
    const file = join(ctx.work, 'demo-app.yaml');
    writeFileSync(file, manifests(ctx, realNode().image));
    ctx.state.dcAppliedAt = Date.now();
    const applied = (await kubectlOk(['apply', '-f', file])).trim().split('\n');
    const status = await waitForDelegatedCredentialReady(custom, ctx.appNs, DC_NAME, 60_000);
    return { applied, status, readyAfter: Date.now() - ctx.state.dcAppliedAt };
  },
  done: (r, ctx) => `kubectl apply -f demo-app.yaml (${r.applied.join(', ')}) in ${ctx.appNs} (label ${NAMESPACE_INJECTION_LABEL}=enabled); ` +
    `${DC_NAME} Ready ${(r.readyAfter / 1000).toFixed(1)} s later: ${(r.status.credentials ?? []).map((c) => c.algorithm).join(', ')}, valid until ${r.status.credentials?.[0]?.notAfter ?? '?'}`,
});
