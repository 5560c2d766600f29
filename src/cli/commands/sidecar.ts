import { defineCommand, type StringOption } from '../framework/command.js';
import { UsageError } from '../framework/errors.js';
import { ConfigError, ROUTING_TABLE, SIDECAR_FLAGS, sidecarConfig } from '../../sidecar/config.js';
import { serveUntilSignal } from '../../sidecar/main.js';
import { systemClock } from '../../operator/clock.js';
import { startMallocTrim } from '../../operator/memory-trim.js';

/**
 * `dc-operator sidecar`: the flag table lives in src/sidecar/config.ts (each flag also read from
 * its DC_SIDECAR_* variable); defaults are applied there, after the environment, so they are
 * only described here.
 */
const options: Record<string, StringOption> = Object.fromEntries(
  SIDECAR_FLAGS.map((f) => [
    f.flag,
    {
      type: 'string',
      value: f.value,
      description: `${f.help} [env ${f.env}${'defaultValue' in f && f.defaultValue !== '' ? `; default ${f.defaultValue}` : ''}]`,
      ...('deprecatedFlags' in f ? { deprecatedAliases: f.deprecatedFlags } : {}),
    },
  ]),
);

export const sidecar = defineCommand({
  path: ['sidecar'],
  summary: 'Run the TLS terminator that serves delegated credentials in front of an application',
  description: `
Terminates TLS on --address:--port and proxies plaintext to --upstream (127.0.0.1:<port>). --dc-dir is
the serving bundle (the DelegatedCredential's output Secret): the DCs, tls.crt, and the fallback
for clients without DC support, which it declares in its \`fallback\` file:

${ROUTING_TABLE.map((l) => '  ' + l).join('\n')}

The --keyless-* flags, when given, win over the bundle's keyless files. The sidecar says at
startup what non-DC clients get, and warns when the bundle has no fallback at all ("non-DC
clients will be refused"). Every --report-interval it logs one line with how many clients were
served via DC, keyless or the certificate key, and how many were refused and why.

--dc-dir is re-read when kubelet swaps its ..data link, on SIGHUP, and every --recheck-interval;
an invalid new version is logged and counted, and the previous credentials keep serving. A new
keyless configuration (address, CA, client certificate) is validated, including a ping of the key
server, before it replaces the one in use.

/healthz, /readyz and /metrics are on --metrics-port. SIGTERM stops accepting, lets open
connections finish for --drain-timeout, then closes them.`,
  exitStatus: {
    0: 'stopped by SIGTERM or SIGINT',
    1: 'could not start (e.g. the port is in use) or failed while running',
  },
  options,
  examples: [
    'dc-operator sidecar --dc-dir /var/run/dc-operator/credentials --port 8443 --upstream 127.0.0.1:8080',
    'DC_SIDECAR_UPSTREAM=9000 dc-operator sidecar --dc-dir ./dc --address 127.0.0.1 --port 8443 --metrics-port 0',
  ],
  validate(values) {
    return values as Readonly<Record<string, string | undefined>>;
  },
  async run(values, ctx) {
    const given = Object.fromEntries(Object.entries(values).filter((e): e is [string, string] => typeof e[1] === 'string'));
    // The operator's malloc_trim every 5 s (src/operator/memory-trim.ts): after a burst of
    // connections closes, glibc otherwise keeps their freed memory (~47 MiB after 1,024 held
    // node:tls connections) counted against the pod for good (bench/results/sidecar-memory.md).
    const trimmer = startMallocTrim(systemClock);
    try {
      return await serveUntilSignal(sidecarConfig(given, ctx.env, (line) => ctx.stderr(`${ctx.commandName}: ${line}\n`)));
    } catch (err) {
      if (err instanceof ConfigError) throw new UsageError(err.message, `--${err.flag}`);
      throw err;
    } finally {
      trimmer.stop();
    }
  },
});
