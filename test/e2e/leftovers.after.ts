// Run by scripts/e2e/cluster.sh on the host AFTER the real node was torn down (not part of the
// e2e suite's glob): nothing of the node may be left: no process, mount, link, cgroup or
// packet-filter rule, no state directory, nothing at the default paths of kubelet or containerd.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { processesInPidNamespace, processesMentioning, readHostState, type HostState } from './support/host-state.js';

const need = (name: string): string => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: this check is run by scripts/e2e/cluster.sh after teardown`);
  return v;
};
const before = JSON.parse(readFileSync(need('DC_E2E_BEFORE'), 'utf8')) as HostState;
const root = need('DC_E2E_ROOT');
const cgroup = need('DC_E2E_CGROUP');
const pidns = need('DC_E2E_NODE_PIDNS');
const after = readHostState();

test('no process of the node is left', () => {
  assert.deepEqual(processesInPidNamespace(pidns), [], `processes still in the node's PID namespace ${pidns}`);
  assert.deepEqual(processesMentioning(root), [], `processes still naming ${root}`);
});

test('the state directory is gone and no mount is left', () => {
  assert.equal(existsSync(root), false, `${root} still exists`);
  assert.deepEqual(after.mounts.filter((m) => m.startsWith(root)), []);
  assert.deepEqual(after.mounts, before.mounts);
});

test('no network link is left', () => {
  assert.deepEqual(after.links, before.links);
});

// Containers run in PID namespaces below the node's: their processes are covered here, since
// a cgroup that still holds a process cannot be removed.
test('no cgroup is left', () => {
  // Only this run's: another e2e run may be going on at the same time, with cgroups of its own.
  assert.deepEqual(after.e2eCgroups.filter((c) => c.endsWith(`/${cgroup}`)), []);
});

test('no packet-filter rule changed', () => {
  assert.deepEqual(after.filters, before.filters);
});

test('nothing appeared at the default paths of kubelet, containerd, runc and CNI', () => {
  assert.deepEqual(after.defaultPaths, before.defaultPaths);
});
