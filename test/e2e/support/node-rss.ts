// Prints the resident memory of the real node's processes (those in its PID namespace), summed by
// program, as a Markdown table: `node dist/test/e2e/support/node-rss.js` under scripts/e2e/cluster.sh
// (which sets DC_E2E_NODE_PIDNS). Used for bench/results/e2e.md.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { processesInPidNamespace } from './host-state.js';

const pidns = process.env['DC_E2E_NODE_PIDNS'];
if (!pidns) throw new Error('DC_E2E_NODE_PIDNS is not set: run this under scripts/e2e/cluster.sh');
// The node's processes and their descendants: containers run in PID namespaces of their own,
// below the shims.
const parent = new Map<number, number>();
for (const e of readdirSync('/proc')) {
  if (!/^\d+$/.test(e)) continue;
  try {
    const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
    parent.set(Number(e), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
  } catch { /* exited meanwhile */ }
}
const ofNode = new Set(processesInPidNamespace(pidns));
for (let grew = true; grew;) {
  grew = false;
  for (const [pid, ppid] of parent) if (!ofNode.has(pid) && ofNode.has(ppid)) { ofNode.add(pid); grew = true; }
}
const SUBCOMMANDS = ['controller', 'webhook', 'sidecar', 'keyserver'];
const byProgram = new Map<string, { count: number; kib: number }>();
for (const pid of ofNode) {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    continue; // exited meanwhile
  }
  const kib = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0);
  let cmd: string[];
  try {
    cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    continue;
  }
  // node processes are told apart by their subcommand (controller, webhook, sidecar, the app).
  let name = /^Name:\s+(\S+)/m.exec(status)?.[1] ?? '?';
  if (cmd[0]?.endsWith('node')) name = `node ${cmd.find((a) => SUBCOMMANDS.includes(a)) ?? (cmd.includes('-e') ? '(the e2e app)' : cmd[1] ?? '')}`;
  const e = byProgram.get(name) ?? { count: 0, kib: 0 };
  e.count++;
  e.kib += kib;
  byProgram.set(name, e);
}
const rows = [...byProgram].sort((a, b) => b[1].kib - a[1].kib);
const total = rows.reduce((s, [, e]) => s + e.kib, 0);
console.log('| process | count | RSS (MiB) |\n|---|---:|---:|');
for (const [name, e] of rows) console.log(`| ${name} | ${e.count} | ${(e.kib / 1024).toFixed(1)} |`);
console.log(`| **total** | ${rows.reduce((s, [, e]) => s + e.count, 0)} | **${(total / 1024).toFixed(1)}** |`);

// containerd's state (the unpacked image, the containers' layers) is a tmpfs of the node's mount
// namespace (node-inner.sh): memory too, but no process's RSS. Read it from inside that namespace,
// through the node's PID 1.
const root = process.env['DC_E2E_ROOT'];
const init = [...ofNode].find((pid) => {
  try {
    return /^NSpid:.*\s1$/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
});
if (root && init) {
  // statfs of the tmpfs as the node's mount namespace sees it: total and free blocks, block size.
  const [blocks, free, size] = execFileSync('nsenter', ['-t', String(init), '-m', 'stat', '-f', '-c', '%b %f %S', `${root}/containerd`], { encoding: 'utf8' })
    .trim().split(' ').map(Number);
  const usedKib = ((blocks ?? 0) - (free ?? 0)) * (size ?? 0) / 1024;
  console.log(`\ncontainerd state on the node's tmpfs (${root}/containerd): ${(usedKib / 1024).toFixed(1)} MiB`);
}
