import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseServerVersion, sidecarModeFor } from '../../../src/webhook/server-version.js';

void test('native sidecars are used from Kubernetes 1.29 on, plain containers before', () => {
  const table: Array<[number, number, string]> = [
    [1, 27, 'container'],
    [1, 28, 'container'],
    [1, 29, 'native'],
    [1, 36, 'native'],
    [2, 0, 'native'],
  ];
  for (const [major, minor, mode] of table) assert.equal(sidecarModeFor({ major, minor }), mode, `${major}.${minor}`);
});

void test('decorated minor versions from managed distributions are read as numbers', () => {
  assert.deepEqual(parseServerVersion({ major: '1', minor: '29+', gitVersion: 'v1.29.4-gke.1' }), { major: 1, minor: 29, gitVersion: 'v1.29.4-gke.1' });
});

void test('an empty major/minor falls back to gitVersion', () => {
  assert.equal(parseServerVersion({ major: '', minor: '', gitVersion: 'v1.28.3+k3s1' }).minor, 28);
  assert.throws(() => parseServerVersion({ major: '', minor: '', gitVersion: 'dev' }), /cannot read a Kubernetes version/);
});
