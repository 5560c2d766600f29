// A handshake through the sidecar with NSS (Firefox's TLS library): tstclnt -B must receive the
// delegated credential and the app's answer. Skipped when tstclnt is not installed.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { APP_GREETING } from '../app.js';
import { runCommand, which } from '../runtime.js';
import { defineStep, need } from '../step.js';

export const step = defineStep({
  title: () => 'NSS tstclnt -B (Firefox\'s TLS library)',
  skip: () => (which('tstclnt') ? undefined : '  - NSS tstclnt not installed (apt-get install libnss3-tools): skipped'),
  async run(ctx) {
    const sidecarPort = need(ctx, 'sidecarPort');
    const db = join(ctx.work, 'nssdb');
    mkdirSync(db);
    for (const args of [['-N', '--empty-password', '-d', db], ['-A', '-n', 'demo-ca', '-t', 'C,,', '-i', join(ctx.caDir, 'ca.crt'), '-d', db]]) {
      const r = await runCommand('certutil', args);
      if (r.code !== 0) throw new Error(`certutil ${args[0]} failed: ${r.stderr}`);
    }
    const r = await runCommand(which('tstclnt') ?? 'tstclnt', ['-B', '-h', '127.0.0.1', '-p', String(sidecarPort), '-d', db, '-V', 'tls1.3:tls1.3', '-a', 'localhost'],
      { input: 'GET / HTTP/1.0\r\nHost: localhost\r\n\r\n', timeoutMs: 20_000 });
    const out = r.stdout + r.stderr;
    const dcLine = out.split('\n').find((l) => l.includes('Received a Delegated Credential'));
    if (!dcLine) throw new Error(`tstclnt got no delegated credential:\n${out}`);
    const body = out.split('\n').find((l) => l.includes(APP_GREETING));
    if (!body) throw new Error(`the app's response did not come back through the sidecar:\n${out}`);
    return { dcLine: dcLine.trim(), body: body.trim() };
  },
  done: (r) => `NSS tstclnt: "${r.dcLine}"; the app answered "${r.body}" through the sidecar`,
});
