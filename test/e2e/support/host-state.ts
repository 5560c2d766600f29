// What the real node could leave behind on the host, read from the host's point of view: network
// links, mount points, packet-filter rules, cgroups of e2e runs, and the paths a kubelet or
// containerd writes by default. scripts/e2e/cluster.sh records it before the node starts
// (`node dist/test/e2e/support/host-state.js > before.json`); test/e2e/leftovers.after.ts compares
// it after teardown.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

export interface HostState {
  links: string[];
  mounts: string[];
  /** Output of iptables-save, ip6tables-save and `nft list ruleset`, for those the host has. */
  filters: Record<string, string>;
  /** /sys/fs/cgroup/<hierarchy>/dc-e2e-* directories. */
  e2eCgroups: string[];
  /** Which of the default paths of kubelet, containerd, runc and CNI exist. */
  defaultPaths: Record<string, boolean>;
}

/** Where kubelet, containerd, runc and the CNI plugins write when nobody tells them otherwise. */
export const DEFAULT_PATHS = [
  '/var/lib/kubelet', '/var/lib/containerd', '/var/lib/cni', '/var/log/pods', '/var/log/containers',
  '/run/containerd', '/run/runc', '/run/netns', '/var/run/netns', '/etc/cni', '/etc/kubernetes', '/etc/containerd',
  '/opt/cni',
];

function run(cmd: string, args: string[]): string | undefined {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      // Counters change on their own; the rules are what matters.
      .split('\n').filter((l) => !l.startsWith('#')).map((l) => l.replace(/\[\d+:\d+\]/g, '')).join('\n');
  } catch {
    return undefined;
  }
}

export function readHostState(): HostState {
  const filters: Record<string, string> = {};
  for (const [name, cmd, args] of [
    ['iptables', 'iptables-save', []], ['ip6tables', 'ip6tables-save', []], ['nft', 'nft', ['list', 'ruleset']],
  ] as const) {
    const out = run(cmd, [...args]);
    if (out !== undefined) filters[name] = out;
  }
  const e2eCgroups: string[] = [];
  for (const h of readdirSync('/sys/fs/cgroup')) {
    const dir = `/sys/fs/cgroup/${h}`;
    try {
      for (const d of readdirSync(dir)) if (d.startsWith('dc-e2e-')) e2eCgroups.push(`${dir}/${d}`);
    } catch { /* not a directory */ }
  }
  return {
    links: readdirSync('/sys/class/net').sort(),
    mounts: readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean)
      .map((l) => l.split(' ')[4] ?? '').sort(),
    filters,
    e2eCgroups: e2eCgroups.sort(),
    defaultPaths: Object.fromEntries(DEFAULT_PATHS.map((p) => [p, existsSync(p)])),
  };
}

/** PIDs of the processes in the PID namespace `pidns` (as readlink /proc/<pid>/ns/pid prints it). */
export function processesInPidNamespace(pidns: string): number[] {
  const pids: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readlinkSync(`/proc/${e}/ns/pid`) === pidns) pids.push(Number(e));
    } catch { /* gone meanwhile */ }
  }
  return pids;
}

/** PIDs whose command line mentions `text` (the node's state directory). */
export function processesMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${e}/cmdline`, 'utf8').includes(text)) pids.push(Number(e));
    } catch { /* gone meanwhile */ }
  }
  return pids;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  process.stdout.write(JSON.stringify(readHostState(), null, 1) + '\n');
}
