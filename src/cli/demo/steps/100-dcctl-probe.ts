// A handshake through the sidecar with our own TLS 1.3 client: dcctl probe reports the credential.
import { join } from 'node:path';
import { runCommand } from '../runtime.js';
import { defineStep, need } from '../step.js';

export const step = defineStep({
  title: () => 'dcctl probe (our TLS 1.3 client)',
  async run(ctx) {
    const sidecarPort = need(ctx, 'sidecarPort');
    const r = await runCommand(ctx.node, [ctx.dcctl, 'probe', `127.0.0.1:${sidecarPort}`, '--ca', join(ctx.caDir, 'ca.crt'), '--servername', 'localhost']);
    if (r.code !== 0) throw new Error(`dcctl probe exited ${r.code}:\n${r.stdout}${r.stderr}`);
    return r.stdout.trim().split('\n');
  },
  done: (lines) => `dcctl probe: ${lines.filter((l) => /delegated credential|algorithm/.test(l)).join('; ')}`,
});
