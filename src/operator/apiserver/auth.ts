// How a request reaches the apiserver and proves who sends it: the server's URL, the agent (the
// TLS settings: the cluster's CA, a client certificate) and the headers (a bearer token). Two
// kinds: ours, from the few kubeconfig forms connect.ts reads, and client-node's, for the forms we
// do not implement (client-node-auth.ts).
import { Agent as HttpAgent } from '../node-http.js';
import { Agent as HttpsAgent, type AgentOptions } from 'node:https';
import type { TokenFile } from './token-file.js';

/** Unary requests share keep-alive connections; watches (long-lived) get their own pool so they never starve them. */
export type Purpose = 'request' | 'watch';

export interface RequestCredentials {
  readonly agent: HttpAgent;
  readonly headers: Readonly<Record<string, string>>;
}

export interface ApiAuth {
  /** The apiserver, e.g. https://10.96.0.1:443 (a path prefix is kept). */
  readonly server: URL;
  /** Said once at start: where the credentials come from. */
  readonly describe: string;
  credentials(purpose: Purpose): RequestCredentials | Promise<RequestCredentials>;
  /** Closes idle keep-alive connections (the process can exit). */
  destroy(): void;
}

export interface TlsSettings {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  /** kubeconfig insecure-skip-tls-verify: the server's certificate is not checked. */
  insecureSkipTlsVerify?: boolean;
  /** kubeconfig tls-server-name: the name checked in the server's certificate (and sent as SNI). */
  serverName?: string;
}

/**
 * The agents of one set of TLS settings: a keep-alive pool for requests (idle sockets closed
 * before the apiserver's own idle timeout could race a reuse) and one for watches.
 */
export function agentsFor(server: URL, tls: AgentOptions): Record<Purpose, HttpAgent> {
  if (server.protocol === 'http:') {
    return { request: new HttpAgent({ keepAlive: true, maxSockets: 16, maxFreeSockets: 8, timeout: 30_000 }), watch: new HttpAgent({ keepAlive: true }) };
  }
  return {
    request: new HttpsAgent({ ...tls, keepAlive: true, maxSockets: 16, maxFreeSockets: 8, timeout: 30_000 }),
    watch: new HttpsAgent({ ...tls, keepAlive: true }),
  };
}

export function agentOptions(tls: TlsSettings): AgentOptions {
  return {
    ...(tls.ca ? { ca: tls.ca } : {}),
    ...(tls.cert ? { cert: tls.cert } : {}),
    ...(tls.key ? { key: tls.key } : {}),
    rejectUnauthorized: tls.insecureSkipTlsVerify !== true,
    ...(tls.serverName ? { servername: tls.serverName } : {}),
  };
}

/** Our own: fixed TLS settings, and a bearer token that is fixed or read from a (rotating) file. */
export class DirectAuth implements ApiAuth {
  private readonly agents: Record<Purpose, HttpAgent>;
  private readonly fixedHeaders: Readonly<Record<string, string>>;

  constructor(
    readonly server: URL,
    tls: TlsSettings,
    private readonly token: { readonly value: string } | TokenFile | undefined,
    readonly describe: string,
    private readonly extraHeaders: Readonly<Record<string, string>> = {},
  ) {
    this.agents = agentsFor(server, agentOptions(tls));
    this.fixedHeaders = token !== undefined && 'value' in token ? { ...extraHeaders, authorization: `Bearer ${token.value}` } : extraHeaders;
  }

  credentials(purpose: Purpose): RequestCredentials {
    const token = this.token;
    // A token file is read again when it may have rotated (token-file.ts).
    const headers = token !== undefined && !('value' in token) ? { ...this.extraHeaders, authorization: `Bearer ${token.get()}` } : this.fixedHeaders;
    return { agent: this.agents[purpose], headers };
  }

  destroy(): void {
    this.agents.request.destroy();
    this.agents.watch.destroy();
  }
}
