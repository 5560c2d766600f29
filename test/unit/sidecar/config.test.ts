import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dcOperatorCommands } from '../../../src/cli/dc-operator.js';
import type { ProgramContext } from '../../../src/cli/framework/registry.js';
import { ConfigError, SIDECAR_FLAGS, sidecarConfig, validateDuration, type FlagValues } from '../../../src/sidecar/config.js';

function errorOf(given: FlagValues, env: Record<string, string> = {}): ConfigError {
  try {
    sidecarConfig(given, env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a ConfigError');
}

/**
 * `dc-operator sidecar ARGS` through the CLI framework, as the binary runs it. Only for command
 * lines that end before the sidecar starts (help, usage errors): a valid one would serve.
 */
async function sidecarCommand(args: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const ctx: ProgramContext = { stdout: (t) => void (out += t), stderr: (t) => void (err += t), cwd: '/', env, now: () => new Date() };
  const code = await (await dcOperatorCommands(['sidecar'])).run(['sidecar', ...args], ctx);
  return { code, out, err };
}

void describe('sidecar configuration', () => {
  void it('accepts the arguments the webhook injects', () => {
    const c = sidecarConfig({ 'dc-dir': '/var/run/dc-operator/credentials', port: '8443', upstream: '127.0.0.1:8080', 'metrics-port': '15300' });
    assert.equal(c.listenHost, '', 'all interfaces');
    assert.equal(c.listenPort, 8443);
    assert.deepEqual([c.upstreamHost, c.upstreamPort], ['127.0.0.1', 8080]);
    assert.equal(c.metricsPort, 15300);
    assert.equal(c.keyless, undefined);
    assert.equal(c.maxConnections, 10_000);
    assert.equal(c.maxConnectionsPerSource, 2500);
    assert.equal(c.keylessVerifyOneIn, 32);
  });

  void it('takes a per-source connection limit from its flag or variable, 0 meaning none', () => {
    assert.equal(sidecarConfig({ 'max-connections-per-source': '0' }).maxConnectionsPerSource, 0);
    assert.equal(sidecarConfig({}, { DC_SIDECAR_MAX_CONNECTIONS_PER_SOURCE: '64' }).maxConnectionsPerSource, 64);
    const e = errorOf({ 'max-connections-per-source': '-1' });
    assert.equal(e.flag, 'max-connections-per-source');
    assert.match(e.message, /^--max-connections-per-source: "-1" is not a whole number of at least 0/);
  });

  void it('caps --warm-up-handshakes and --warm-up-connections at 10000, saying the maximum', () => {
    for (const flag of ['warm-up-handshakes', 'warm-up-connections'] as const) {
      const e = errorOf({ [flag]: '10001' });
      assert.equal(e.flag, flag);
      assert.match(e.message, new RegExp(`^--${flag}: 10001 is more than the maximum, 10000`));
      assert.equal(errorOf({ [flag]: '1000000000' }).flag, flag);
    }
    const c = sidecarConfig({ 'warm-up-handshakes': '10000', 'warm-up-connections': '10000' });
    assert.deepEqual([c.warmUpHandshakes, c.warmUpConnections], [10_000, 10_000]);
  });

  void it('takes values from DC_SIDECAR_* variables, and a flag wins over its variable', () => {
    const env = { DC_SIDECAR_ADDRESS: '127.0.0.1', DC_SIDECAR_PORT: '9443', DC_SIDECAR_UPSTREAM: '9000', DC_SIDECAR_IDLE_TIMEOUT: '90s' };
    const c = sidecarConfig({ upstream: '9001' }, env);
    assert.deepEqual([c.listenHost, c.listenPort], ['127.0.0.1', 9443]);
    assert.equal(c.upstreamPort, 9001);
    assert.equal(c.idleTimeoutMs, 90_000);
  });

  void it('names the flag in every validation error', () => {
    assert.equal(errorOf({ port: 'x' }).flag, 'port');
    assert.equal(errorOf({ upstream: 'localhost:99999' }).flag, 'upstream');
    assert.equal(errorOf({ 'idle-timeout': 'ten seconds' }).flag, 'idle-timeout');
    assert.equal(errorOf({ 'max-connections': '0' }).flag, 'max-connections');
    assert.equal(errorOf({ 'certificate-engine': 'openssl' }).flag, 'certificate-engine');
    assert.equal(errorOf({ 'metrics-port': '8443', port: '8443' }).flag, 'metrics-port');
    assert.equal(errorOf({ 'keyless-verify-one-in': '0' }).flag, 'keyless-verify-one-in');
    assert.match(errorOf({ 'handshake-timeout': '0' }).message, /^--handshake-timeout: /);
  });

  void it('wants the keyless flags together and says which one is missing', () => {
    const e = errorOf({ 'keyless-address': 'ks:2407', 'keyless-ca': 'ca.pem' });
    assert.equal(e.flag, 'keyless-client-cert');
    const c = sidecarConfig({ 'keyless-address': 'ks:2407', 'keyless-ca': 'a', 'keyless-client-cert': 'b', 'keyless-client-key': 'c', 'keyless-timeout': '750ms', 'keyless-verify-one-in': '1' });
    assert.equal(c.keyless?.timeoutMs, 750);
    assert.equal(c.keylessVerifyOneIn, 1);
  });

  void it('parses durations with units and combinations', () => {
    assert.equal(validateDuration('x', '250ms'), 250);
    assert.equal(validateDuration('x', '1h30m'), 5_400_000);
    assert.equal(validateDuration('x', '0'), 0);
    assert.throws(() => validateDuration('x', '10'), /--x: /);
  });
});

void describe('dc-operator sidecar command line (CLI framework)', () => {
  void it('documents every flag, its variable and the renamed one in --help, and exits 0', async () => {
    const r = await sidecarCommand(['--port', '1', '--help']);
    assert.equal(r.code, 0);
    for (const f of SIDECAR_FLAGS) {
      assert.ok(r.out.includes(`--${f.flag} ${f.value}`), `--${f.flag} in --help`);
      assert.ok(r.out.includes(`env ${f.env}`), `${f.env} in --help`);
    }
    assert.match(r.out, /deprecated: use --metrics-address/, 'the renamed flag (flag-names.test.ts checks each spelling)');
    assert.match(r.out, /TLS 1\.3, supports DCs/, 'the routing table');
  });

  void it('refuses an unknown flag, a flag without its value and a positional argument with exit 2, before starting', async () => {
    for (const [args, message] of [
      [['--bogus', 'x'], /unknown flag --bogus/],
      [['--port'], /--port needs a value/],
      [['extra'], /unexpected argument "extra"/],
    ] as const) {
      const r = await sidecarCommand([...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.err}`);
      assert.match(r.err, message);
    }
  });

  void it('says which flag is wrong, from the flag or its variable, with exit 2', async () => {
    const flag = await sidecarCommand(['--dc-dir', '/nonexistent', '--port', 'x']);
    assert.equal(flag.code, 2);
    assert.match(flag.err, /--port: "x" is not a port number/);
    const env = await sidecarCommand(['--dc-dir', '/nonexistent'], { DC_SIDECAR_KEYLESS_VERIFY_ONE_IN: 'many' });
    assert.equal(env.code, 2);
    assert.match(env.err, /--keyless-verify-one-in: "many" is not a whole number of at least 1/);
  });
});
