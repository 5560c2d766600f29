// Prints the resident memory of the real node's processes (those in its PID namespace), summed by
// program, as a Markdown table: `node dist/test/e2e/support/node-rss.js` under scripts/e2e/cluster.sh
// (which sets DC_E2E_NODE_PIDNS). Used for bench/results/e2e.md.
import { readFileSync } from 'node:fs';
import { processesInPidNamespace } from './host-state.js';

const pidns = process.env['DC_E2E_NODE_PIDNS'];
if (!pidns) throw new Error('DC_E2E_NODE_PIDNS is not set: run this under scripts/e2e/cluster.sh');
const byProgram = new Map<string, { count: number; kib: number }>();
for (const pid of processesInPidNamespace(pidns)) {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    continue; // exited meanwhile
  }
  const kib = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0);
  const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  // node processes are told apart by their subcommand (controller, webhook, sidecar, the app).
  let name = /^Name:\s+(\S+)/m.exec(status)?.[1] ?? '?';
  if (name === 'node' || name === 'MainThread') name = `node ${cmd.slice(1).find((a) => !a.startsWith('-') && !a.endsWith('.js')) ?? cmd[1] ?? ''}`.slice(0, 40);
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
