// The real node that scripts/e2e/cluster.sh starts (kubelet, containerd, the control plane, in
// namespaces of their own) as seen by a process it runs: `make demo` on the real node and the e2e
// tests. cluster.sh starts that process inside the node's network namespace (nsenter --net) and
// describes the node in DC_E2E_* variables. Every connection to a pod, Service or node address
// must start there: assertInNodeNetwork() refuses to go on anywhere else, so a lost namespace
// fails instead of sending traffic to the host's network.
import { readFileSync, statSync } from 'node:fs';

export interface RealNode {
  /** The node's state directory (kubeconfig, PKI, logs); removed at teardown. */
  readonly root: string;
  /** kubectl, helm and the node's other binaries. */
  readonly bin: string;
  /** The project's image, built by scripts/e2e/image.sh and imported into containerd. */
  readonly image: string;
  readonly kubeconfig: string;
}

const VARIABLES = { root: 'DC_E2E_ROOT', bin: 'DC_E2E_BIN', image: 'DC_E2E_IMAGE', kubeconfig: 'KUBECONFIG' } as const;

function need(env: NodeJS.ProcessEnv, name: string): string {
  const v = env[name];
  if (!v) throw new Error(`${name} is not set: this runs inside the real node's network namespace, started by scripts/e2e/cluster.sh (make e2e, make demo)`);
  return v;
}

/** The node described by cluster.sh's variables; throws naming the first one missing. */
export function realNode(env: NodeJS.ProcessEnv = process.env): RealNode {
  return {
    root: need(env, VARIABLES.root), bin: need(env, VARIABLES.bin),
    image: need(env, VARIABLES.image), kubeconfig: need(env, VARIABLES.kubeconfig),
  };
}

/** True when cluster.sh started this process (whether or not the namespace is still the node's). */
export function startedOnRealNode(env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(env['DC_E2E_NETNS']);
}

/** Fails unless this process is in the node's network namespace, and that namespace still has the node. */
export function assertInNodeNetwork(env: NodeJS.ProcessEnv = process.env): void {
  const want = need(env, 'DC_E2E_NETNS');
  const have = String(statSync('/proc/self/ns/net').ino);
  if (have !== want) throw new Error(`this process is in network namespace ${have}, not the node's (${want}): refusing to send traffic`);
  // /proc/self/net is this process's network namespace (/sys/class/net is the one sysfs was mounted in).
  if (!/^\s*e2e0:/m.test(readFileSync('/proc/self/net/dev', 'utf8'))) {
    throw new Error('the node\'s network namespace has no e2e0 link: the node is gone');
  }
}
