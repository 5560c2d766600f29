// What a step of `make demo` is, and what the steps share. Each step is one module in steps/,
// named NNN-what-it-does.ts; the runner (../demo.ts) runs them in the order of their numbers.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { AdmissionregistrationV1Api, CoreV1Api, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { assertInNodeNetwork } from './real-node.js';
import type { Child, Cleanup } from './runtime.js';

export interface ConnectedCluster {
  readonly kubeconfig: string;
  readonly kc: KubeConfig;
  readonly server: string;
  readonly description: string;
  /** The environment for kubectl and the child processes: KUBECONFIG set to this cluster. */
  readonly env: NodeJS.ProcessEnv;
  readonly core: CoreV1Api;
  readonly custom: CustomObjectsApi;
  readonly admission: AdmissionregistrationV1Api;
  readonly kubectl: string;
}

/** What a step leaves for later ones; `need` reads it. */
export interface DemoState {
  cluster?: ConnectedCluster;
  /** The issued Secret, written as kubelet mounts a Secret volume. */
  volume?: string;
  /** The in-cluster key server's address, given to the operator (--keyserver-address). */
  keyServerAddress?: string;
  /** Where the handshake steps connect: the sidecar on loopback, or the pod on the real node. */
  target?: HandshakeTarget;
  /** When the DelegatedCredential was applied (real node): the handshake steps time from it. */
  dcAppliedAt?: number;
}

export interface HandshakeTarget {
  /** An address: 127.0.0.1, or the pod's IP in the real node's network. */
  readonly host: string;
  readonly port: number;
  /** The name the certificate is for (SNI and verification). */
  readonly serverName: string;
  /** The sidecar's metrics listener: /metrics and /readyz. */
  readonly metricsUrl: string;
  /** Where the handshake lines say they went, e.g. "through pod web-… (10.244.0.12:8443)"; none on loopback (the sidecar step said where). */
  readonly via?: string;
}

/**
 * Where the demo runs: `local`, a local etcd + kube-apiserver with the operator, webhook, key
 * server and sidecar as processes of this machine; `current`, the same against the current
 * kubeconfig; `node`, the real node of scripts/e2e/cluster.sh (kubelet, containerd), where the
 * chart is installed and the sidecar is injected into a real pod.
 */
export type DemoMode = 'local' | 'current' | 'node';
export const DEMO_MODES: readonly DemoMode[] = ['local', 'current', 'node'];
/** The modes that run the operator, webhook, key server and sidecar as processes here (no kubelet). */
export const PROCESS_MODES: readonly DemoMode[] = ['local', 'current'];

export interface DemoContext {
  readonly mode: DemoMode;
  /** The name the demo certificate is for (with localhost and 127.0.0.1). */
  readonly serverName: string;
  /** The repository checkout, its compiled CLIs, and the Node running them. */
  readonly root: string;
  readonly node: string;
  readonly dcOperator: string;
  readonly dcctl: string;
  readonly logDir: string;
  /** A temporary directory, removed at the end. */
  readonly work: string;
  /** Random suffix of the names below, so runs never collide. */
  readonly id: string;
  readonly appNs: string;
  readonly systemNs: string;
  readonly webhookConfigName: string;
  /** dcctl's dev CA and the certificate with DelegationUsage (made while the cluster starts). */
  readonly caDir: string;
  readonly certDir: string;
  readonly pki: Promise<void>;
  readonly cleanup: Cleanup;
  /** Child processes (operator, webhook, sidecar); the operator step registers stopping them. */
  readonly procs: Child[];
  readonly state: DemoState;
}

/**
 * Where a handshake step connects. On the real node it first checks, every time, that this process
 * is still in the node's network namespace: a client there never reaches the host's network.
 */
export function handshakeTarget(ctx: DemoContext): HandshakeTarget {
  if (ctx.mode === 'node') assertInNodeNetwork();
  return need(ctx, 'target');
}

/** " through pod …" for the handshake lines on the real node; nothing on loopback. */
export function via(ctx: DemoContext): string {
  const v = ctx.state.target?.via;
  return v ? ` ${v}` : '';
}

/** A value an earlier step must have left; a step that runs out of order fails saying which. */
export function need<K extends keyof DemoState>(ctx: DemoContext, key: K): NonNullable<DemoState[K]> {
  const value = ctx.state[key];
  if (value === undefined) throw new Error(`demo step order: nothing has set ${key} yet`);
  return value as NonNullable<DemoState[K]>;
}

export interface DemoStep<T> {
  /** Shown while the step runs (and with ✘ when it fails). */
  title(ctx: DemoContext): string;
  run(ctx: DemoContext): Promise<T>;
  /** The ✔ line: what the step did. */
  done(value: T, ctx: DemoContext): string;
  /** A line to print instead of running (e.g. a tool is not installed); undefined to run. */
  skip?(ctx: DemoContext): string | undefined;
  /** The modes the step belongs to (default: all); in the others it is left out silently. */
  readonly modes?: readonly DemoMode[];
}

/** Keeps a step's value type between run and done. */
export function defineStep<T>(step: DemoStep<T>): DemoStep<T> {
  return step;
}

/** The steps that belong to a mode, in their order. */
export function stepsFor<S extends { modes?: readonly DemoMode[] }>(steps: readonly S[], mode: DemoMode): S[] {
  return steps.filter((s) => !s.modes || s.modes.includes(mode));
}

/** Step modules: src/cli/demo/steps/NNN-name.ts, each exporting `step`. */
export const STEP_FILE = /^(\d{3})-[a-z0-9-]+\.ts$/;

/**
 * The steps, in the order of their file numbers. The sources decide which steps exist (the demo
 * runs from a checkout): a compiled step whose source was deleted or renamed is not run.
 */
export async function loadSteps(root: string): Promise<Array<DemoStep<unknown>>> {
  const sources = join(root, 'src', 'cli', 'demo', 'steps');
  const compiled = join(root, 'dist', 'src', 'cli', 'demo', 'steps');
  const names = readdirSync(sources).filter((f) => STEP_FILE.test(f)).sort();
  return Promise.all(
    names.map(async (name) => {
      const file = join(compiled, name.replace(/\.ts$/, '.js'));
      if (!existsSync(file)) throw new Error(`${file} is missing: run make build`);
      const mod = (await import(pathToFileURL(file).href)) as { step?: DemoStep<unknown> };
      if (!mod.step) throw new Error(`src/cli/demo/steps/${name} exports no step`);
      return mod.step;
    }),
  );
}
