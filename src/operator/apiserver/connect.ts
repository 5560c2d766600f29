// Finds the cluster (kubeconfig.ts's order: --kubeconfig, $KUBECONFIG, ~/.kube/config, in-cluster)
// and builds the operator's apiserver client for it. The forms our client implements: in-cluster
// (service env, the CA and a projected token re-read as it rotates), and kubeconfig files with a
// server, a CA (file or data), a client certificate and key (file or data), a token or tokenFile,
// insecure-skip-tls-verify, tls-server-name, `as`. Anything else (exec plugins, auth providers,
// basic auth, proxies) loads @kubernetes/client-node for authentication only, when it is needed
// (client-node-auth.ts), and says so.
import { readFileSync } from 'node:fs';
import { isIPv6 } from 'node:net';
import { dirname, join } from 'node:path';
import { findKubeconfig, SERVICE_ACCOUNT_TOKEN, systemPlaces, type KubeconfigPlaces, type KubeconfigSource } from '../kubeconfig.js';
import { DirectAuth, type ApiAuth } from './auth.js';
import { ApiClient, type ApiClientOptions } from './client.js';
import { decideKubeconfig, KubeconfigInvalid, type KubeconfigFile, type Material, type ResolvedKubeconfig } from './kubeconfig-file.js';
import { TokenFile } from './token-file.js';

/** Where a pod's service account token, CA and namespace are mounted. */
export const SERVICE_ACCOUNT_DIR = dirname(SERVICE_ACCOUNT_TOKEN);

export interface ApiServerConnection {
  readonly client: ApiClient;
  readonly source: KubeconfigSource;
  /** Set when client-node authenticates: what in the kubeconfig needed it. */
  readonly clientNodeFor?: readonly string[];
}

export interface ConnectOptions {
  /** --kubeconfig. */
  kubeconfig?: string | undefined;
  places?: KubeconfigPlaces;
  /** The command's flag, named in errors (kubeconfig.ts). */
  flag?: string | null;
  /** Where a re-read of a token file that failed is said. */
  warn?: (message: string) => void;
  client?: ApiClientOptions;
}

export async function connectApiServer(opts: ConnectOptions = {}): Promise<ApiServerConnection> {
  const places = opts.places ?? systemPlaces();
  const source = findKubeconfig(opts.kubeconfig, places, opts.flag === undefined ? '--kubeconfig' : opts.flag);
  const warn = opts.warn ?? (() => undefined);
  if (source.kind === 'in-cluster') return { client: new ApiClient(inClusterAuth(places.env, SERVICE_ACCOUNT_DIR, warn), opts.client), source };
  const paths = source.kind === 'file' ? [source.path] : source.paths;
  const files: KubeconfigFile[] = [];
  for (const path of paths) files.push({ path, config: await parseKubeconfigText(readFileSync(path, 'utf8'), path) });
  const decision = decideKubeconfig(files);
  if (decision.kind === 'client-node') {
    const { clientNodeAuth } = await import('./client-node-auth.js');
    return { client: new ApiClient(await clientNodeAuth(source), opts.client), source, clientNodeFor: decision.needs };
  }
  return { client: new ApiClient(kubeconfigAuth(decision.config, paths.join(', '), warn), opts.client), source };
}

/** YAML (or JSON, which YAML reads too); js-yaml is imported only when a file is read. */
export async function parseKubeconfigText(text: string, path: string): Promise<unknown> {
  const yaml = await import('js-yaml');
  try {
    return yaml.load(text, { filename: path });
  } catch (err) {
    throw new KubeconfigInvalid(`${path}: not a kubeconfig (YAML error: ${(err as Error).message.split('\n')[0] ?? ''})`);
  }
}

function read(m: Material | undefined, what: string): Buffer | undefined {
  if (m === undefined) return undefined;
  if ('data' in m) return m.data;
  try {
    return readFileSync(m.file);
  } catch (err) {
    throw new KubeconfigInvalid(`cannot read the ${what} ${m.file}: ${(err as Error).message}`);
  }
}

export function kubeconfigAuth(c: ResolvedKubeconfig, where: string, warn: (message: string) => void = () => undefined): ApiAuth {
  let server: URL;
  try {
    server = new URL(c.server);
  } catch {
    throw new KubeconfigInvalid(`${where}: server ${c.server} is not a URL`);
  }
  if (server.protocol !== 'https:' && server.protocol !== 'http:') throw new KubeconfigInvalid(`${where}: server ${c.server}: only https:// (or http://) is supported`);
  const token = c.tokenFile !== undefined ? new TokenFile(c.tokenFile, Date.now, warn) : c.token !== undefined ? { value: c.token } : undefined;
  if (token instanceof TokenFile) token.get(); // unreadable: fail at start, not on the first request
  const cert = read(c.cert, 'client certificate');
  const user = cert ? 'client certificate' : token instanceof TokenFile ? `token file ${c.tokenFile}` : token ? 'token' : 'no credentials';
  return new DirectAuth(
    server,
    {
      ...(c.ca ? { ca: read(c.ca, 'certificate authority')! } : {}),
      ...(cert ? { cert, key: read(c.key, 'client key')! } : {}),
      insecureSkipTlsVerify: c.insecureSkipTlsVerify,
      ...(c.tlsServerName ? { serverName: c.tlsServerName } : {}),
    },
    token,
    `kubeconfig ${where}, context ${c.context}, ${server.origin}, ${user}`,
    c.impersonate !== undefined ? { 'impersonate-user': c.impersonate } : {},
  );
}

/** A pod's service account: KUBERNETES_SERVICE_HOST/PORT, `dir`/ca.crt, and `dir`/token re-read as it rotates. */
export function inClusterAuth(env: Readonly<Record<string, string | undefined>>, dir = SERVICE_ACCOUNT_DIR, warn: (message: string) => void = () => undefined, now: () => number = Date.now): ApiAuth {
  const host = env['KUBERNETES_SERVICE_HOST'];
  const port = env['KUBERNETES_SERVICE_PORT'];
  if (!host || !port) throw new KubeconfigInvalid('in-cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must both be set');
  // As client-node: the ports of a plain-HTTP proxy in front of the apiserver mean http.
  const scheme = port === '80' || port === '8080' || port === '8001' ? 'http' : 'https';
  const server = new URL(`${scheme}://${isIPv6(host) ? `[${host}]` : host}:${port}`);
  const token = new TokenFile(join(dir, 'token'), now, warn);
  token.get();
  const ca = read({ file: join(dir, 'ca.crt') }, 'service account CA');
  return new DirectAuth(server, { ...(ca ? { ca } : {}) }, token, `in-cluster service account, ${server.origin}`);
}
