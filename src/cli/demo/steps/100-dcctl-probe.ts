// A handshake through the sidecar with our own TLS 1.3 client: dcctl probe reports the credential.
// On the real node it is the first handshake through the pod, timed from `kubectl apply` of the
// DelegatedCredential.
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { runCommand, type RunResult } from '../runtime.js';
import { defineStep, handshakeTarget, via } from '../step.js';

export const step = defineStep({
  title: () => 'dcctl probe (our TLS 1.3 client)',
  async run(ctx) {
    const t = handshakeTarget(ctx);
    // A Ready pod's IP may take a moment to answer through the node's bridge: a few tries, 250 ms apart.
    let r: RunResult | undefined;
    for (let attempt = 0; attempt < (ctx.mode === 'node' ? 20 : 1); attempt++) {
      if (attempt > 0) await sleep(250);
      r = await runCommand(ctx.node, [ctx.dcctl, 'probe', `${t.host}:${t.port}`, '--ca', join(ctx.caDir, 'ca.crt'), '--servername', t.serverName], { timeoutMs: 20_000 });
      if (r.code === 0) break;
    }
    if (r?.code !== 0) throw new Error(`dcctl probe ${t.host}:${t.port} exited ${r?.code}:\n${r?.stdout}${r?.stderr}`);
    const sinceApply = ctx.state.dcAppliedAt === undefined ? undefined : Date.now() - ctx.state.dcAppliedAt;
    return { lines: r.stdout.trim().split('\n'), sinceApply };
  },
  done: (r, ctx) => `dcctl probe${via(ctx)}: ${r.lines.filter((l) => /delegated credential|algorithm/.test(l)).join('; ')}` +
    (r.sinceApply === undefined ? '' : `; ${(r.sinceApply / 1000).toFixed(1)} s after kubectl apply of the DelegatedCredential`),
});
