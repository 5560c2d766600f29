/**
 * Warming a server up at start: in-memory handshakes against itself, so that V8 has compiled and
 * optimised the handshake code before the first client pays for it (the first seconds of a fresh
 * process otherwise cost more CPU per handshake than the steady state; numbers in
 * bench/results/tls.md, "Cold start").
 */
import { ClientConfig, ClientConnection } from './client.js';
import type { KeyLogger, Progress } from './connection.js';
import type { PeerCredentialHooks } from './credentials.js';
import { NamedGroup, ProtocolVersion } from './constants.js';
import type { ServerConfig } from './server.js';
import { ServerConnection } from './server.js';
import type { TlsSession } from './session.js';

/** Warm-up connections log no secrets, whatever the config's keylog says. */
const NO_KEYLOG: KeyLogger = Object.assign(() => undefined, { enabled: () => false });

const PAYLOAD = new Uint8Array(32);

/**
 * Runs up to `handshakes` full and resumed handshakes of `config` against our own client, in
 * memory and synchronously, rotating through what clients ask for: TLS 1.3 with x25519, with
 * X25519MLKEM768 (when the server has the group), resumed with a ticket, and TLS 1.2 (when
 * enabled); each moves 32 bytes each way. Returns how many completed.
 *
 * It signs with the config's credentials and calls its hooks, as a client would. It stops at
 * the first handshake that would wait (an async signer or hook: at most one signature is asked
 * of a key server, and dropped) or fail (e.g. a server that requires client certificates).
 *
 * `client.serverCredentialHooks` makes every warm-up client offer what they offer (e.g.
 * delegated credentials, to warm the server's DC path); the hooks verify what the server sends.
 */
export function warmUpServer(config: ServerConfig, handshakes: number, client: { readonly serverCredentialHooks?: PeerCredentialHooks } = {}): number {
  const kinds: ClientConfig[] = [];
  const tls13 = config.versions.includes(ProtocolVersion.TLS1_3);
  const hooks = client.serverCredentialHooks ? { serverCredentialHooks: client.serverCredentialHooks } : {};
  if (tls13 && config.groups.includes(NamedGroup.x25519)) {
    kinds.push(new ClientConfig({ rejectUnauthorized: false, groups: [NamedGroup.x25519, NamedGroup.secp256r1], keyShareGroups: [NamedGroup.x25519], ...hooks }));
  }
  if (tls13 && config.groups.includes(NamedGroup.X25519MLKEM768)) {
    kinds.push(new ClientConfig({ rejectUnauthorized: false, keyShareGroups: [NamedGroup.X25519MLKEM768], ...hooks }));
  }
  if (config.versions.includes(ProtocolVersion.TLS1_2)) {
    kinds.push(new ClientConfig({ rejectUnauthorized: false, minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ...hooks }));
  }
  if (kinds.length === 0) return 0;
  let session: TlsSession | undefined;
  let done = 0;
  for (let i = 0; i < handshakes; i++) {
    // Every fourth handshake resumes the last TLS 1.3 session, once there is one.
    const resume = i % 4 === 3 && session !== undefined;
    const clientConfig = resume ? kinds[0]! : kinds[i % kinds.length]!;
    const client = new ClientConnection(clientConfig, { keylog: NO_KEYLOG, ...(resume ? { session } : {}) });
    const server = new ServerConnection(config, { keylog: NO_KEYLOG });
    const result = exchange(client, server);
    if (result === undefined) break;
    if (result.session && tls13) session = result.session;
    done++;
  }
  return done;
}

/** One connection: handshake, 32 bytes each way. Undefined when it waited or failed. */
function exchange(client: ClientConnection, server: ServerConnection): { session: TlsSession | undefined } | undefined {
  let session: TlsSession | undefined;
  let clientReady = false;
  let serverEchoed = false;
  let clientGotEcho = false;
  let toServer = client.poll().output;
  let toClient: Uint8Array[] = [];
  const ok = (p: Progress, onData: () => void, onHandshake: () => void): boolean => {
    if (p.waitFor) {
      p.waitFor.catch(() => undefined);
      return false;
    }
    for (const e of p.events) {
      if (e.type === 'error') return false;
      if (e.type === 'session') session = e.session;
      if (e.type === 'handshake') onHandshake();
      if (e.type === 'data') onData();
    }
    return true;
  };
  for (let round = 0; round < 8 && !clientGotEcho; round++) {
    const next: Uint8Array[] = [];
    for (const bytes of toServer) {
      const p = server.feed(bytes);
      if (!ok(p, () => (serverEchoed = true), () => undefined)) return undefined;
      next.push(...p.output);
      if (serverEchoed) {
        server.write(PAYLOAD);
        next.push(...server.poll().output);
        serverEchoed = false;
      }
    }
    toClient = next;
    toServer = [];
    for (const bytes of toClient) {
      const p = client.feed(bytes);
      if (!ok(p, () => (clientGotEcho = true), () => (clientReady = true))) return undefined;
      toServer.push(...p.output);
      if (clientReady) {
        client.write(PAYLOAD);
        toServer.push(...client.poll().output);
        clientReady = false;
      }
    }
  }
  return clientGotEcho ? { session } : undefined;
}
