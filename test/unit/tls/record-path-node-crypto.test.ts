/**
 * The node:crypto fallback of the record path, end to end: the record-path, RFC 8448, TLS 1.2 and
 * handshake tests run again in a child process with DC_TLS_AEAD=node, so the path a machine
 * without the native AEAD takes (src/tls/native/aead.ts) stays tested while the rest of the
 * suite runs on the native one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const FILES = ['record-path', 'rfc8448', 'tls12', 'handshake', 'native-aead'].map((f) => fileURLToPath(new URL(`./${f}.test.js`, import.meta.url)));

void test('with DC_TLS_AEAD=node the record-path, RFC 8448, TLS 1.2 and handshake tests pass on node:crypto', { timeout: 180_000 }, () => {
  // NODE_TEST_CONTEXT would make the child report to this runner instead of printing TAP.
  const env: NodeJS.ProcessEnv = { ...process.env, DC_TLS_AEAD: 'node' };
  delete env['NODE_TEST_CONTEXT'];
  const r = spawnSync(process.execPath, ['--test', '--test-reporter=tap', ...FILES], { env, encoding: 'utf8', timeout: 170_000 });
  const summary = (name: string): number => Number(new RegExp(`^# ${name} (\\d+)$`, 'm').exec(r.stdout)?.[1] ?? -1);
  assert.equal(r.status, 0, `the tests failed on node:crypto:\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-2000)}`);
  assert.equal(summary('fail'), 0);
  assert.ok(summary('pass') > 100, `only ${summary('pass')} tests passed`);
});
