// The operator (controller) and the webhook as child processes, with a MutatingWebhookConfiguration
// that only sends the demo's namespace to the webhook.
import { join } from 'node:path';
import { buildMutatingWebhookConfiguration } from '../../../webhook/webhook-configuration.js';
import { freePort, httpsStatus, startChild, waitFor, waitForHttp200 } from '../runtime.js';
import { defineStep, need, PROCESS_MODES } from '../step.js';

export const step = defineStep({
  modes: PROCESS_MODES,
  title: () => 'starting the operator and the webhook',
  async run(ctx) {
    const { admission, env } = need(ctx, 'cluster');
    ctx.cleanup.add('stop the operator, webhook and sidecar', async () => { await Promise.all(ctx.procs.map((c) => c.stop())); });
    const controllerPort = await freePort();
    const webhookPort = await freePort();
    // The key server (next step) listens here; the operator issues its serving certificate for
    // this address and each sidecar's client identity for it (fallback Keyless).
    ctx.state.keyServerAddress = `127.0.0.1:${await freePort()}`;
    const controller = startChild('dc-operator controller', ctx.node, [ctx.dcOperator, 'controller', '--namespace', ctx.appNs, '--operator-namespace', ctx.systemNs,
      '--metrics-port', String(controllerPort), '--metrics-address', '127.0.0.1', '--no-leader-election', '--keyserver-address', ctx.state.keyServerAddress],
      join(ctx.logDir, 'controller.log'), env);
    ctx.procs.push(controller);
    // The API server calls the webhook at a loopback URL; only the demo namespace is sent, and
    // failurePolicy Ignore, so the demo can never block pod creations elsewhere in a real cluster.
    const mwc = buildMutatingWebhookConfiguration({
      name: ctx.webhookConfigName, endpoint: { url: `https://127.0.0.1:${webhookPort}/mutate` }, operatorNamespace: ctx.systemNs, failurePolicy: 'Ignore',
    });
    for (const w of mwc.webhooks ?? []) w.namespaceSelector = { matchLabels: { 'kubernetes.io/metadata.name': ctx.appNs } };
    await admission.createMutatingWebhookConfiguration({ body: mwc });
    ctx.cleanup.add('delete the MutatingWebhookConfiguration', async () => { await admission.deleteMutatingWebhookConfiguration({ name: ctx.webhookConfigName }); });
    const webhook = startChild('dc-operator webhook', ctx.node, [ctx.dcOperator, 'webhook', '--operator-namespace', ctx.systemNs, '--address', '127.0.0.1',
      '--port', String(webhookPort), '--configuration', ctx.webhookConfigName, '--shutdown-delay', '0'], join(ctx.logDir, 'webhook.log'), env);
    ctx.procs.push(webhook);
    await waitForHttp200(`http://127.0.0.1:${controllerPort}/readyz`, 30_000, controller);
    await waitFor('the webhook to write its caBundle', 30_000, async () => {
      const c = await admission.readMutatingWebhookConfiguration({ name: ctx.webhookConfigName });
      return c.webhooks?.every((w) => w.clientConfig.caBundle) ? true : undefined;
    }, webhook);
    await waitFor('webhook /readyz', 30_000, () => httpsStatus(`https://127.0.0.1:${webhookPort}/readyz`).then((s) => (s === 200 ? true : undefined)), webhook);
    return { controller, webhook, controllerPort, webhookPort };
  },
  done: (r) => `operator (pid ${r.controller.proc.pid}, :${r.controllerPort}/metrics) and webhook (pid ${r.webhook.proc.pid}, https :${r.webhookPort}) running`,
});
