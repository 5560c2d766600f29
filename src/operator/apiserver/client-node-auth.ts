// Authentication by @kubernetes/client-node, for the kubeconfig forms our client does not
// implement (exec plugins, auth providers, basic auth, proxies). Imported only then (connect.ts
// imports this module dynamically): client-node costs a process ~72 MiB of RSS.
//
// client-node builds a new agent for every request it authenticates; agents with the same TLS
// options are shared here (compared with the last request's options first, a memcmp, not hashed
// each time), so requests keep their keep-alive connections. A proxy's agent is used as it is.
import { createHash } from 'node:crypto';
import type { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import type { KubeconfigSource } from '../kubeconfig.js';
import { loadKubeconfigSource } from '../kubeconfig.js';
import { agentsFor, type ApiAuth, type Purpose, type RequestCredentials } from './auth.js';

export async function clientNodeAuth(source: KubeconfigSource): Promise<ApiAuth> {
  const { KubeConfig } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  loadKubeconfigSource(kc, source);
  return new ClientNodeAuth(kc);
}

/** Client certificates may rotate (exec plugins): a handful of distinct agent sets at most. */
const MAX_AGENT_SETS = 8;

export class ClientNodeAuth implements ApiAuth {
  readonly server: URL;
  readonly describe: string;
  private readonly agents = new Map<string, Record<Purpose, HttpAgent>>();
  private last: { parts: readonly unknown[]; key: string } | undefined;
  private plain: Record<Purpose, HttpAgent> | undefined;

  constructor(private readonly kc: KubeConfig) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error(`kubeconfig context "${kc.getCurrentContext()}" has no cluster`);
    this.server = new URL(cluster.server);
    this.describe = `@kubernetes/client-node authentication, context ${kc.getCurrentContext()}, ${this.server.origin}`;
  }

  async credentials(purpose: Purpose): Promise<RequestCredentials> {
    const init = await this.kc.applyToFetchOptions({});
    const headers: Record<string, string> = {};
    new Headers(init.headers as ConstructorParameters<typeof Headers>[0]).forEach((value, name) => (headers[name] = value));
    const agent = init.agent as HttpAgent | undefined;
    if (!(agent instanceof HttpsAgent) || agent.constructor !== HttpsAgent) {
      // A proxy's agent, or none (http://): as client-node made it.
      return { agent: agent ?? (this.plain ??= agentsFor(this.server, {}))[purpose], headers };
    }
    agent.destroy();
    return { agent: this.pooled(agent.options)[purpose], headers };
  }

  private pooled(o: HttpsAgent['options']): Record<Purpose, HttpAgent> {
    const key = this.agentKey(o);
    let set = this.agents.get(key);
    if (!set) {
      if (this.agents.size >= MAX_AGENT_SETS) this.destroy();
      set = agentsFor(this.server, { ca: o.ca, cert: o.cert, key: o.key, pfx: o.pfx, passphrase: o.passphrase, rejectUnauthorized: o.rejectUnauthorized, servername: o.servername });
      this.agents.set(key, set);
    }
    return set;
  }

  private agentKey(o: HttpsAgent['options']): string {
    const parts = [o.ca, o.cert, o.key, o.pfx, o.passphrase, o.rejectUnauthorized, o.servername];
    const last = this.last;
    if (last !== undefined && parts.every((p, i) => sameOption(p, last.parts[i]))) return last.key;
    const key = createHash('sha256')
      .update(JSON.stringify(parts.map((v) => (v === undefined ? null : String(v)))))
      .digest('hex');
    this.last = { parts, key };
    return key;
  }

  destroy(): void {
    for (const set of this.agents.values()) {
      set.request.destroy();
      set.watch.destroy();
    }
    this.agents.clear();
    this.last = undefined;
    this.plain?.request.destroy();
    this.plain?.watch.destroy();
    this.plain = undefined;
  }
}

function sameOption(a: unknown, b: unknown): boolean {
  return a === b || (Buffer.isBuffer(a) && Buffer.isBuffer(b) && a.equals(b));
}
