// The certificate Secret and a DelegatedCredential; the operator issues, and the step waits for Ready.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { API_VERSION, RESOURCES } from '../../../operator/api/v1alpha1.js';
import { DC_GROUP, DC_PLURAL, DC_VERSION } from '../../../webhook/config.js';
import { waitForDelegatedCredentialReady } from '../credentials.js';
import { defineStep, need, PROCESS_MODES } from '../step.js';

export const step = defineStep({
  modes: PROCESS_MODES,
  title: () => 'issuing delegated credentials',
  async run(ctx) {
    const { core, custom } = need(ctx, 'cluster');
    await core.createNamespacedSecret({
      namespace: ctx.appNs,
      body: {
        metadata: { name: 'web-cert' }, type: 'kubernetes.io/tls',
        stringData: { 'tls.crt': readFileSync(join(ctx.certDir, 'tls.crt'), 'utf8'), 'tls.key': readFileSync(join(ctx.certDir, 'tls.key'), 'utf8') },
      },
    });
    await custom.createNamespacedCustomObject({
      group: DC_GROUP, version: DC_VERSION, namespace: ctx.appNs, plural: DC_PLURAL,
      body: {
        apiVersion: API_VERSION, kind: RESOURCES.delegatedCredentials.kind, metadata: { name: 'web-dc' },
        spec: { certificateSecretRef: { name: 'web-cert' }, algorithms: ['ecdsa_secp256r1_sha256', 'ed25519'], validity: '1h', secretName: 'web-dc' },
      },
    });
    return waitForDelegatedCredentialReady(custom, ctx.appNs, 'web-dc', 60_000, ctx.procs[0]);
  },
  done: (s, ctx) => `DelegatedCredential ${ctx.appNs}/web-dc Ready: ${(s.credentials ?? []).map((c) => c.algorithm).join(', ')}; valid until ${s.credentials?.[0]?.notAfter ?? '?'}, renewal at ${s.renewalTime ?? '?'}`,
});
