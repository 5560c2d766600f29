/**
 * The node:crypto fallback of src/tls's native addons, end to end: the record-path, RFC 8448,
 * TLS 1.2, handshake, key-exchange, negative, TLS 1.2 PRF and signer tests run again in a child process with
 * DC_TLS_NATIVE=off (no native AEAD, no native handshake crypto), so the path a machine without
 * the addons takes (src/tls/native/) stays tested while the rest of the suite runs on them.
 * DC_TLS_AEAD=node (the AEAD alone) is covered by native-aead.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const FILES = ['record-path', 'rfc8448', 'tls12', 'handshake', 'native-aead', 'native-handshake', 'key-exchange', 'negative', 'tls12-prf', 'signer'].map((f) => fileURLToPath(new URL(`./${f}.test.js`, import.meta.url)));

void test('with DC_TLS_NATIVE=off the record-path, RFC 8448, TLS 1.2, handshake, key-exchange and negative tests pass on node:crypto', { timeout: 180_000 }, () => {
  // NODE_TEST_CONTEXT would make the child report to this runner instead of printing TAP.
  const env: NodeJS.ProcessEnv = { ...process.env, DC_TLS_NATIVE: 'off' };
  delete env['NODE_TEST_CONTEXT'];
  const r = spawnSync(process.execPath, ['--test', '--test-reporter=tap', ...FILES], { env, encoding: 'utf8', timeout: 170_000 });
  const summary = (name: string): number => Number(new RegExp(`^# ${name} (\\d+)$`, 'm').exec(r.stdout)?.[1] ?? -1);
  assert.equal(r.status, 0, `the tests failed on node:crypto:\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-2000)}`);
  assert.equal(summary('fail'), 0);
  assert.ok(summary('pass') > 100, `only ${summary('pass')} tests passed`);
});
