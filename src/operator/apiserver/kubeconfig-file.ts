// The kubeconfig forms our own client reads, and the decision to hand the rest to client-node.
// Pure: files in (already parsed), one resolved connection (or the list of what needs client-node)
// out. Merging several files follows kubectl: the first file that sets current-context wins, and
// a cluster, user or context named in several files is the first file's.
import { dirname, isAbsolute, resolve } from 'node:path';

/** One kubeconfig file as parsed (YAML or JSON), with its path (relative file names are relative to it). */
export interface KubeconfigFile {
  readonly path: string;
  readonly config: unknown;
}

/** Where a value comes from: inline (base64 `-data`) or a file, resolved against its kubeconfig. */
export type Material = { readonly data: Buffer } | { readonly file: string };

export interface ResolvedKubeconfig {
  readonly context: string;
  readonly server: string;
  readonly ca?: Material;
  readonly cert?: Material;
  readonly key?: Material;
  readonly insecureSkipTlsVerify: boolean;
  readonly tlsServerName?: string;
  readonly token?: string;
  readonly tokenFile?: string;
  /** kubeconfig `as`: sent as Impersonate-User. */
  readonly impersonate?: string;
}

export type KubeconfigDecision =
  | { readonly kind: 'own'; readonly config: ResolvedKubeconfig }
  /** What our client does not implement; client-node loads the same files instead. */
  | { readonly kind: 'client-node'; readonly needs: readonly string[] };

export class KubeconfigInvalid extends Error {
  override readonly name = 'KubeconfigInvalid';
}

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
/** A value set in the file (client-node writes null for unset fields). */
const isSet = (v: unknown): boolean => v !== undefined && v !== null && v !== '' && v !== false;
const text = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** User and cluster fields only client-node implements, with what they are. */
const NEEDS_CLIENT_NODE: readonly { readonly where: 'user' | 'cluster'; readonly field: string; readonly what: string }[] = [
  { where: 'user', field: 'exec', what: 'an exec credential plugin (users[].user.exec)' },
  { where: 'user', field: 'auth-provider', what: 'an auth provider (users[].user.auth-provider)' },
  { where: 'user', field: 'username', what: 'basic authentication (users[].user.username)' },
  { where: 'user', field: 'password', what: 'basic authentication (users[].user.password)' },
  { where: 'cluster', field: 'proxy-url', what: 'a proxy (clusters[].cluster.proxy-url)' },
];

function named(files: readonly KubeconfigFile[], list: 'clusters' | 'users' | 'contexts', key: 'cluster' | 'user' | 'context', name: string): { value: Obj; path: string } | undefined {
  for (const f of files) {
    const entries = isObj(f.config) ? f.config[list] : undefined;
    if (!Array.isArray(entries)) continue;
    for (const e of entries) if (isObj(e) && e['name'] === name) return { value: isObj(e[key]) ? e[key] : {}, path: f.path };
  }
  return undefined;
}

function material(entry: Obj, field: string, base: string, what: string): Material | undefined {
  const data = text(entry[`${field}-data`]);
  if (data !== undefined) {
    const bytes = Buffer.from(data, 'base64');
    if (bytes.length === 0) throw new KubeconfigInvalid(`${what}-data is not base64`);
    return { data: bytes };
  }
  const file = text(entry[field]);
  return file === undefined ? undefined : { file: isAbsolute(file) ? file : resolve(dirname(base), file) };
}

/** Resolves the current context of `files` (merged as kubectl does); throws KubeconfigInvalid saying what is missing. */
export function decideKubeconfig(files: readonly KubeconfigFile[]): KubeconfigDecision {
  const where = files.map((f) => f.path).join(', ');
  const context = files.map((f) => (isObj(f.config) ? text(f.config['current-context']) : undefined)).find((c) => c !== undefined);
  if (context === undefined) throw new KubeconfigInvalid(`${where}: no current-context; set one (kubectl config use-context NAME)`);
  const ctx = named(files, 'contexts', 'context', context);
  if (ctx === undefined) throw new KubeconfigInvalid(`${where}: current-context "${context}" is not among its contexts`);
  const clusterName = text(ctx.value['cluster']);
  const cluster = clusterName === undefined ? undefined : named(files, 'clusters', 'cluster', clusterName);
  if (cluster === undefined) throw new KubeconfigInvalid(`${where}: context "${context}" names cluster "${clusterName ?? ''}", which is not defined`);
  const userName = text(ctx.value['user']);
  const user = userName === undefined ? { value: {}, path: cluster.path } : named(files, 'users', 'user', userName);
  if (user === undefined) throw new KubeconfigInvalid(`${where}: context "${context}" names user "${userName ?? ''}", which is not defined`);
  const server = text(cluster.value['server']);
  if (server === undefined) throw new KubeconfigInvalid(`${where}: cluster "${clusterName}" has no server`);

  const needs = NEEDS_CLIENT_NODE.filter((n) => isSet((n.where === 'user' ? user : cluster).value[n.field])).map((n) => n.what);
  if (needs.length > 0) return { kind: 'client-node', needs };

  const ca = material(cluster.value, 'certificate-authority', cluster.path, `cluster "${clusterName}" certificate-authority`);
  const cert = material(user.value, 'client-certificate', user.path, `user "${userName}" client-certificate`);
  const key = material(user.value, 'client-key', user.path, `user "${userName}" client-key`);
  if ((cert === undefined) !== (key === undefined)) throw new KubeconfigInvalid(`${where}: user "${userName}" has a client ${cert ? 'certificate without a key' : 'key without a certificate'}`);
  const tokenFile = text(user.value['tokenFile']);
  const tlsServerName = text(cluster.value['tls-server-name']);
  const token = text(user.value['token']);
  const impersonate = text(user.value['as']);
  return {
    kind: 'own',
    config: {
      context,
      server,
      ...(ca ? { ca } : {}),
      ...(cert ? { cert } : {}),
      ...(key ? { key } : {}),
      insecureSkipTlsVerify: cluster.value['insecure-skip-tls-verify'] === true,
      ...(tlsServerName ? { tlsServerName } : {}),
      ...(token ? { token } : {}),
      ...(tokenFile ? { tokenFile: isAbsolute(tokenFile) ? tokenFile : resolve(dirname(user.path), tokenFile) } : {}),
      ...(impersonate ? { impersonate } : {}),
    },
  };
}
