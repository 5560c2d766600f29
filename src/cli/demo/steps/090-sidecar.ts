// A small HTTP app, and the sidecar in front of it serving the credentials from the kubelet volume.
import { join } from 'node:path';
import { startApp } from '../app.js';
import { freePort, startChild, waitForHttp200 } from '../runtime.js';
import { defineStep, need, PROCESS_MODES } from '../step.js';

export const step = defineStep({
  modes: PROCESS_MODES,
  title: () => 'starting the sidecar in front of the app',
  async run(ctx) {
    const { env } = need(ctx, 'cluster');
    const volume = need(ctx, 'volume');
    const app = await startApp();
    ctx.cleanup.add('stop the app', () => new Promise<void>((r) => { app.server.closeAllConnections(); app.server.close(() => r()); }));
    const sidecarPort = await freePort();
    const sidecarMetrics = await freePort();
    const sidecar = startChild('dc-operator sidecar', ctx.node, [ctx.dcOperator, 'sidecar', '--dc-dir', volume, '--address', '127.0.0.1', '--port', String(sidecarPort),
      '--upstream', `127.0.0.1:${app.port}`, '--metrics-port', String(sidecarMetrics), '--metrics-address', '127.0.0.1', '--drain-timeout', '1s'], join(ctx.logDir, 'sidecar.log'), env);
    ctx.procs.push(sidecar);
    await waitForHttp200(`http://127.0.0.1:${sidecarMetrics}/readyz`, 30_000, sidecar);
    ctx.state.target = { host: '127.0.0.1', port: sidecarPort, serverName: 'localhost', metricsUrl: `http://127.0.0.1:${sidecarMetrics}` };
    return { sidecarPort, appPort: app.port };
  },
  done: (r) => `sidecar: TLS on 127.0.0.1:${r.sidecarPort} → app on 127.0.0.1:${r.appPort} (plain HTTP)`,
});
