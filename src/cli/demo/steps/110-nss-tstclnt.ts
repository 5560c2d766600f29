// A handshake through the sidecar with NSS (Firefox's TLS library): tstclnt -B must receive the
// delegated credential and the app's answer. Skipped when tstclnt is not installed.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { APP_GREETING } from '../app.js';
import { runCommand, which } from '../runtime.js';
import { defineStep, handshakeTarget, via } from '../step.js';

export const step = defineStep({
  title: () => 'NSS tstclnt -B (Firefox\'s TLS library)',
  skip: () => (which('tstclnt') ? undefined : '  - NSS tstclnt not installed (apt-get install libnss3-tools): skipped'),
  async run(ctx) {
    const t = handshakeTarget(ctx);
    const db = join(ctx.work, 'nssdb');
    mkdirSync(db);
    for (const args of [['-N', '--empty-password', '-d', db], ['-A', '-n', 'demo-ca', '-t', 'C,,', '-i', join(ctx.caDir, 'ca.crt'), '-d', db]]) {
      const r = await runCommand('certutil', args);
      if (r.code !== 0) throw new Error(`certutil ${args[0]} failed: ${r.stderr}`);
    }
    // On the real node, bounded retries like dcctl probe's (100-dcctl-probe.ts).
    let out = '';
    for (let attempt = 0; attempt < (ctx.mode === 'node' ? 20 : 1); attempt++) {
      if (attempt > 0) await sleep(250);
      const r = await runCommand(which('tstclnt') ?? 'tstclnt', ['-B', '-h', t.host, '-p', String(t.port), '-d', db, '-V', 'tls1.3:tls1.3', '-a', t.serverName],
        { input: `GET / HTTP/1.0\r\nHost: ${t.serverName}\r\n\r\n`, timeoutMs: 20_000 });
      out = r.stdout + r.stderr;
      if (out.includes('Received a Delegated Credential') && out.includes(APP_GREETING)) break;
    }
    const dcLine = out.split('\n').find((l) => l.includes('Received a Delegated Credential'));
    if (!dcLine) throw new Error(`tstclnt got no delegated credential from ${t.host}:${t.port}:\n${out}`);
    const body = out.split('\n').find((l) => l.includes(APP_GREETING));
    if (!body) throw new Error(`the app's response did not come back through the sidecar:\n${out}`);
    return { dcLine: dcLine.trim(), body: body.trim() };
  },
  done: (r, ctx) => `NSS tstclnt${via(ctx)}: "${r.dcLine}"; the app answered "${r.body}" through the sidecar`,
});
