// The in-cluster key server, `dc-operator keyserver --from-cluster`: it serves with the
// certificate the operator issued for its address and signs, for each sidecar identity, with
// that DelegatedCredential's certificate key only, read from the API. Non-DC clients are served
// through it (fallback Keyless), so no pod holds the certificate key.
import { join } from 'node:path';
import { freePort, startChild, waitForHttp200 } from '../runtime.js';
import { defineStep, need, PROCESS_MODES } from '../step.js';

export const step = defineStep({
  modes: PROCESS_MODES,
  title: () => 'starting the key server',
  async run(ctx) {
    const { env } = need(ctx, 'cluster');
    const address = need(ctx, 'keyServerAddress');
    const port = address.slice(address.lastIndexOf(':') + 1);
    const probes = await freePort();
    const keyServer = startChild('dc-operator keyserver', ctx.node, [ctx.dcOperator, 'keyserver', '--from-cluster', '--namespace', ctx.appNs,
      '--operator-namespace', ctx.systemNs, '--address', '127.0.0.1', '--port', port, '--metrics-port', String(probes)], join(ctx.logDir, 'keyserver.log'), env);
    ctx.procs.push(keyServer);
    // Ready once it serves with the certificate the operator wrote into its serving Secret.
    await waitForHttp200(`http://127.0.0.1:${probes}/readyz`, 30_000, keyServer);
    return { pid: keyServer.proc.pid, address };
  },
  done: (r, ctx) => `key server (pid ${r.pid}, ${r.address}): serving with the certificate the operator issued; signs only for the sidecars of ${ctx.appNs}`,
});
