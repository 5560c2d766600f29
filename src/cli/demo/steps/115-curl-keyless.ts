// A client without delegated-credential support, curl: the sidecar holds no certificate key, so it
// must serve curl through the key server (keyless pull). The sidecar's handshake counters say how
// the connection was authenticated, so the line reports what happened rather than what should.
import { join } from 'node:path';
import { APP_GREETING } from '../app.js';
import { runCommand, waitFor, which } from '../runtime.js';
import { defineStep, handshakeTarget, via } from '../step.js';

const AUTHENTICATED_BY: Readonly<Record<string, string>> = {
  keyless: 'certificate key via keyless pull',
  dc: 'delegated credential',
  certificate: 'certificate key in the pod',
  resumed: 'session resumption',
};

/** Successful handshakes per mode, from the sidecar's /metrics. */
async function handshakesByMode(metricsUrl: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${metricsUrl}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
  const counts = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^dc_sidecar_handshakes_total\{(?=[^}]*result="success")[^}]*mode="([a-z]+)"[^}]*\} (\d+)/.exec(line);
    if (m?.[1]) counts.set(m[1], (counts.get(m[1]) ?? 0) + Number(m[2]));
  }
  return counts;
}

export const step = defineStep({
  title: () => 'curl (no DC support)',
  skip: () => (which('curl') ? undefined : '  - curl not installed: skipped'),
  async run(ctx) {
    const t = handshakeTarget(ctx);
    // The sidecar reaches the key server on its own once both run (on the real node through the
    // key server's Service name: cluster DNS and kube-proxy); bounded wait for that.
    await waitFor('the sidecar to report fallback Keyless ready', 30_000, async () =>
      /fallback Keyless ready/.test(await (await fetch(`${t.metricsUrl}/readyz`, { signal: AbortSignal.timeout(5_000) })).text()) ? true : undefined,
    ctx.procs.find((p) => p.name === 'dc-operator sidecar'));
    const before = await handshakesByMode(t.metricsUrl);
    const r = await runCommand('curl', ['-sS', '--max-time', '10', '--cacert', join(ctx.caDir, 'ca.crt'), '--resolve', `${t.serverName}:${t.port}:${t.host}`,
      '-w', '\n%{http_code}', `https://${t.serverName}:${t.port}/`], { timeoutMs: 20_000 });
    if (r.code !== 0) throw new Error(`curl exited ${r.code}: ${r.stderr.trim()}`);
    const lines = r.stdout.trimEnd().split('\n');
    const status = lines.pop() ?? '';
    if (!lines.some((l) => l.includes(APP_GREETING))) throw new Error(`the app's response did not come back through the sidecar:\n${r.stdout}`);
    const after = await handshakesByMode(t.metricsUrl);
    const modes = [...after].filter(([mode, n]) => n > (before.get(mode) ?? 0)).map(([mode]) => mode);
    if (modes.length !== 1) throw new Error(`expected one more successful handshake in the sidecar's metrics, saw modes [${modes.join(', ')}]`);
    return { status, how: AUTHENTICATED_BY[modes[0] ?? ''] ?? modes[0] };
  },
  done: (r, ctx) => `curl (no DC support)${via(ctx)}: ${r.status} from the app, ${r.how}`,
});
