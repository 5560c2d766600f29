import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, helpText, parseArgs, validateConfig, validateDuration, type SidecarConfig } from '../../../src/sidecar/config.js';

function configOf(args: string[], env: Record<string, string> = {}): SidecarConfig {
  const parsed = parseArgs(args, env);
  assert.equal(parsed.help, false);
  if (parsed.help) throw new Error('unreachable');
  return validateConfig(parsed.values);
}

function errorOf(args: string[], env: Record<string, string> = {}): ConfigError {
  try {
    configOf(args, env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a ConfigError');
}

void describe('sidecar configuration', () => {
  void it('accepts the arguments the webhook injects', () => {
    const c = configOf(['--dc-dir', '/var/run/dc-operator/credentials', '--port', '8443', '--upstream', '127.0.0.1:8080', '--metrics-port', '15300']);
    assert.equal(c.listenHost, '', 'all interfaces');
    assert.equal(c.listenPort, 8443);
    assert.deepEqual([c.upstreamHost, c.upstreamPort], ['127.0.0.1', 8080]);
    assert.equal(c.metricsPort, 15300);
    assert.equal(c.keyless, undefined);
    assert.equal(c.maxConnections, 10_000);
    assert.equal(c.maxConnectionsPerSource, 2500);
  });

  void it('takes a per-source connection limit from its flag or variable, 0 meaning none', () => {
    assert.equal(configOf(['--max-connections-per-source', '0']).maxConnectionsPerSource, 0);
    assert.equal(configOf([], { DC_SIDECAR_MAX_CONNECTIONS_PER_SOURCE: '64' }).maxConnectionsPerSource, 64);
    const e = errorOf(['--max-connections-per-source', '-1']);
    assert.equal(e.flag, 'max-connections-per-source');
    assert.match(e.message, /^--max-connections-per-source: "-1" is not a whole number of at least 0/);
  });

  void it('takes values from DC_SIDECAR_* variables, and a flag wins over its variable', () => {
    const env = { DC_SIDECAR_ADDRESS: '127.0.0.1', DC_SIDECAR_PORT: '9443', DC_SIDECAR_UPSTREAM: '9000', DC_SIDECAR_IDLE_TIMEOUT: '90s' };
    const c = configOf(['--upstream=9001'], env);
    assert.deepEqual([c.listenHost, c.listenPort], ['127.0.0.1', 9443]);
    assert.equal(c.upstreamPort, 9001);
    assert.equal(c.idleTimeoutMs, 90_000);
  });

  void it('names the flag in every validation error', () => {
    assert.equal(errorOf(['--port', 'x']).flag, 'port');
    assert.equal(errorOf(['--upstream', 'localhost:99999']).flag, 'upstream');
    assert.equal(errorOf(['--idle-timeout', 'ten seconds']).flag, 'idle-timeout');
    assert.equal(errorOf(['--max-connections', '0']).flag, 'max-connections');
    assert.equal(errorOf(['--certificate-engine', 'openssl']).flag, 'certificate-engine');
    assert.equal(errorOf(['--metrics-port', '8443', '--port', '8443']).flag, 'metrics-port');
    assert.equal(errorOf(['--bogus', 'x']).flag, 'bogus');
    assert.equal(errorOf(['--port']).flag, 'port');
    assert.match(errorOf(['--handshake-timeout', '0']).message, /^--handshake-timeout: /);
  });

  void it('wants the keyless flags together and says which one is missing', () => {
    const e = errorOf(['--keyless-address', 'ks:2407', '--keyless-ca', 'ca.pem']);
    assert.equal(e.flag, 'keyless-client-cert');
    const c = configOf(['--keyless-address', 'ks:2407', '--keyless-ca', 'a', '--keyless-client-cert', 'b', '--keyless-client-key', 'c', '--keyless-timeout', '750ms']);
    assert.equal(c.keyless?.timeoutMs, 750);
  });

  void it('parses durations with units and combinations', () => {
    assert.equal(validateDuration('x', '250ms'), 250);
    assert.equal(validateDuration('x', '1h30m'), 5_400_000);
    assert.equal(validateDuration('x', '0'), 0);
    assert.throws(() => validateDuration('x', '10'), /--x: /);
  });

  void it('documents every flag and its variable in --help', () => {
    assert.deepEqual(parseArgs(['--port', '1', '--help'], {}), { help: true });
    const text = helpText();
    for (const flag of ['--dc-dir', '--address', '--port', '--upstream', '--metrics-port', '--max-connections', '--max-connections-per-source', '--idle-timeout', '--drain-timeout', '--keyless-address', '--certificate-engine']) {
      assert.ok(text.includes(flag), `${flag} in --help`);
    }
    assert.ok(text.includes('DC_SIDECAR_PORT'));
  });
});
