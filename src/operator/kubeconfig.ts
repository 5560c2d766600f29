/**
 * Where a process (controller, webhook, `dcctl demo` on the current cluster) finds its cluster:
 * --kubeconfig, else $KUBECONFIG, else ~/.kube/config, else the pod's service account, in
 * client-node's (and kubectl's) order. client-node, finding none of them, falls back to
 * http://localhost:8080 and the first request fails with a message about TLS settings; this
 * module says instead which places it looked at and what to set.
 */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
// A type only: the controller's own client (apiserver/connect.ts) uses findKubeconfig without
// loading client-node; the webhook and the demo load their client-node KubeConfig here.
import type { KubeConfig } from '@kubernetes/client-node';

/** client-node's in-cluster credentials: a projected service account token and the service env. */
export const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

export interface KubeconfigPlaces {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly home: string | undefined;
  exists(path: string): boolean;
}

export type KubeconfigSource =
  | { readonly kind: 'file'; readonly path: string; readonly from: '--kubeconfig' | 'KUBECONFIG' | '~/.kube/config' }
  | { readonly kind: 'KUBECONFIG'; readonly paths: readonly string[] }
  | { readonly kind: 'in-cluster' };

export class KubeconfigNotFound extends Error {
  override readonly name = 'KubeconfigNotFound';
}

export function systemPlaces(): KubeconfigPlaces {
  return { env: process.env, home: homedir() || undefined, exists: existsSync };
}

/**
 * Pure: which credentials to load, or a KubeconfigNotFound that lists the places looked at.
 * `flag` is the command's kubeconfig flag, named in the message; null for a command without one.
 */
export function findKubeconfig(explicit: string | undefined, places: KubeconfigPlaces, flag: string | null = '--kubeconfig'): KubeconfigSource {
  if (explicit !== undefined) {
    if (!places.exists(explicit)) throw new KubeconfigNotFound(`${flag ?? 'kubeconfig'} ${explicit}: no such file; give the path of a kubeconfig file`);
    return { kind: 'file', path: explicit, from: '--kubeconfig' };
  }
  const listed = (places.env['KUBECONFIG'] ?? '').split(delimiter).filter((p) => p !== '');
  if (listed.length > 0) {
    const missing = listed.filter((p) => !places.exists(p));
    // kubectl skips missing files in the list; only a list where nothing exists is an error.
    if (missing.length === listed.length) {
      throw new KubeconfigNotFound(`KUBECONFIG is set to ${places.env['KUBECONFIG']}, and no file it names exists; set KUBECONFIG to a kubeconfig file, or unset it to use ~/.kube/config`);
    }
    const present = listed.filter((p) => places.exists(p));
    return present.length === 1 ? { kind: 'file', path: present[0]!, from: 'KUBECONFIG' } : { kind: 'KUBECONFIG', paths: present };
  }
  const home = places.home ? join(places.home, '.kube', 'config') : undefined;
  if (home !== undefined && places.exists(home)) return { kind: 'file', path: home, from: '~/.kube/config' };
  const host = places.env['KUBERNETES_SERVICE_HOST'];
  if (host && places.exists(SERVICE_ACCOUNT_TOKEN)) return { kind: 'in-cluster' };
  const inCluster = !host
    ? 'not in a pod (KUBERNETES_SERVICE_HOST is not set)'
    : `KUBERNETES_SERVICE_HOST is set but there is no service account token at ${SERVICE_ACCOUNT_TOKEN} (automountServiceAccountToken: false?)`;
  throw new KubeconfigNotFound(
    `no cluster to connect to: looked at ${flag ? `${flag} (not given), ` : ''}KUBECONFIG (not set), ${home ?? '~/.kube/config (no home directory)'}${home ? ' (no such file)' : ''}, ` +
      `and in-cluster credentials (${inCluster}). ${flag ? `Pass ${flag} FILE or set` : 'Set'} KUBECONFIG=FILE, or run in a pod with a service account`,
  );
}

/** Loads the credentials findKubeconfig picks into `kc`; throws KubeconfigNotFound. */
export function loadKubeconfig(kc: KubeConfig, explicit?: string, places: KubeconfigPlaces = systemPlaces(), flag: string | null = '--kubeconfig'): KubeconfigSource {
  const source = findKubeconfig(explicit, places, flag);
  loadKubeconfigSource(kc, source);
  return source;
}

/** Loads a source findKubeconfig picked into a client-node KubeConfig. */
export function loadKubeconfigSource(kc: KubeConfig, source: KubeconfigSource): void {
  if (source.kind === 'file') kc.loadFromFile(source.path);
  else if (source.kind === 'in-cluster') kc.loadFromCluster();
  else {
    // Several files, merged in order as kubectl does (the first context named wins).
    kc.loadFromFile(source.paths[0]!);
    for (const path of source.paths.slice(1)) {
      const next = new (kc.constructor as new () => KubeConfig)();
      next.loadFromFile(path);
      kc.mergeConfig(next);
    }
  }
}
