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

/** The kinds of client the warm-up plays; 'tls1.3-resumed' resumes the last x25519 session. */
export type WarmUpKind = 'tls1.3-x25519' | 'tls1.3-x25519mlkem768' | 'tls1.3-resumed' | 'tls1.2';

export interface WarmUpReport {
  /** Handshakes completed, in all. */
  readonly done: number;
  /** Handshakes completed per kind of client played. */
  readonly byKind: Partial<Record<WarmUpKind, number>>;
  /** Kinds left out after their handshake failed, with the error: this server cannot serve them (e.g. TLS 1.2 with an Ed25519 or RSA-PSS certificate). */
  readonly failed: ReadonlyArray<{ readonly kind: WarmUpKind; readonly error: string }>;
  /** A handshake would have waited (an async signer or hook): the warm-up ended there. */
  readonly waited: boolean;
}

/**
 * Runs up to `handshakes` full and resumed handshakes of `config` against our own client, in
 * memory and synchronously, rotating through what clients ask for: TLS 1.3 with x25519, with
 * X25519MLKEM768 (when the server has the group), resumed with a ticket, and TLS 1.2 (when
 * enabled); each moves 32 bytes each way.
 *
 * It signs with the config's credentials and calls its hooks, as a client would. It stops at
 * the first handshake that would wait (an async signer or hook: at most one signature is asked
 * of a key server, and dropped). A kind whose handshake fails is left out and the others carry
 * on with the whole count: a version enabled in general may not be one the credentials can serve
 * (our TLS 1.2 has no Ed25519 or RSA-PSS signatures), and one kind the server cannot serve must
 * not leave the others cold. It ends when every kind has failed (e.g. a server that requires
 * client certificates).
 *
 * `client.serverCredentialHooks` makes every warm-up client offer what they offer (e.g.
 * delegated credentials, to warm the server's DC path); the hooks verify what the server sends.
 */
export interface WarmUpClientOptions {
  readonly serverCredentialHooks?: PeerCredentialHooks;
  /** Kinds not to play (e.g. left out by an earlier run on the same config). */
  readonly leaveOut?: readonly WarmUpKind[];
}

export function warmUpServer(config: ServerConfig, handshakes: number, client: WarmUpClientOptions = {}): WarmUpReport {
  const kinds: Array<{ kind: WarmUpKind; config: ClientConfig }> = [];
  const tls13 = config.versions.includes(ProtocolVersion.TLS1_3);
  const hooks = client.serverCredentialHooks ? { serverCredentialHooks: client.serverCredentialHooks } : {};
  let x25519: ClientConfig | undefined;
  if (tls13 && config.groups.includes(NamedGroup.x25519)) {
    x25519 = new ClientConfig({ rejectUnauthorized: false, groups: [NamedGroup.x25519, NamedGroup.secp256r1], keyShareGroups: [NamedGroup.x25519], ...hooks });
    kinds.push({ kind: 'tls1.3-x25519', config: x25519 });
  }
  if (tls13 && config.groups.includes(NamedGroup.X25519MLKEM768)) {
    kinds.push({ kind: 'tls1.3-x25519mlkem768', config: new ClientConfig({ rejectUnauthorized: false, keyShareGroups: [NamedGroup.X25519MLKEM768], ...hooks }) });
  }
  if (config.versions.includes(ProtocolVersion.TLS1_2)) {
    kinds.push({ kind: 'tls1.2', config: new ClientConfig({ rejectUnauthorized: false, minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ...hooks }) });
  }
  const leaveOut = new Set(client.leaveOut ?? []);
  for (const k of [...kinds]) if (leaveOut.has(k.kind)) kinds.splice(kinds.indexOf(k), 1);
  const byKind: Partial<Record<WarmUpKind, number>> = {};
  const failed: Array<{ kind: WarmUpKind; error: string }> = [];
  let session: TlsSession | undefined;
  let resumes = x25519 !== undefined && kinds.some((k) => k.config === x25519) && !leaveOut.has('tls1.3-resumed');
  let done = 0;
  let turn = 0;
  // Each round either completes a handshake, or leaves a kind out, or ends: at most
  // handshakes + kinds + 1 rounds.
  while (done < handshakes && kinds.length > 0) {
    // Every fourth handshake resumes the last TLS 1.3 session, once there is one.
    const resume = resumes && done % 4 === 3 && session !== undefined;
    const current = resume ? { kind: 'tls1.3-resumed' as const, config: x25519! } : kinds[turn++ % kinds.length]!;
    const connection = new ClientConnection(current.config, { keylog: NO_KEYLOG, ...(resume ? { session } : {}) });
    const server = new ServerConnection(config, { keylog: NO_KEYLOG });
    const result = exchange(connection, server);
    if (result.outcome === 'waited') return { done, byKind, failed, waited: true };
    if (result.outcome === 'failed') {
      failed.push({ kind: current.kind, error: result.error });
      if (resume) resumes = false;
      else kinds.splice(kinds.indexOf(current), 1);
      continue;
    }
    if (result.session && tls13) session = result.session;
    byKind[current.kind] = (byKind[current.kind] ?? 0) + 1;
    done++;
  }
  return { done, byKind, failed, waited: false };
}

/** Per kind, as a log line says it: "tls1.3-x25519 100, tls1.2 0 (no signature scheme in common)". */
export function describeWarmUp(report: WarmUpReport): string {
  const parts = Object.entries(report.byKind).map(([kind, n]) => `${kind} ${n}`);
  for (const { kind, error } of report.failed) parts.push(`${kind} left out (${error})`);
  if (report.waited) parts.push('stopped at a handshake that would wait for an async signer');
  return parts.join(', ');
}

type Outcome = { readonly outcome: 'done'; readonly session: TlsSession | undefined } | { readonly outcome: 'waited' } | { readonly outcome: 'failed'; readonly error: string };

/** One connection: handshake, 32 bytes each way. */
function exchange(client: ClientConnection, server: ServerConnection): Outcome {
  let session: TlsSession | undefined;
  let clientReady = false;
  let serverEchoed = false;
  let clientGotEcho = false;
  let toServer = client.poll().output;
  let toClient: Uint8Array[] = [];
  let stop: Outcome | undefined;
  const ok = (p: Progress, onData: () => void, onHandshake: () => void): boolean => {
    if (p.waitFor) {
      p.waitFor.catch(() => undefined);
      stop = { outcome: 'waited' };
      return false;
    }
    for (const e of p.events) {
      if (e.type === 'error') {
        stop = { outcome: 'failed', error: e.error.message };
        return false;
      }
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
      if (!ok(p, () => (serverEchoed = true), () => undefined)) return stop!;
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
      if (!ok(p, () => (clientGotEcho = true), () => (clientReady = true))) return stop!;
      toServer.push(...p.output);
      if (clientReady) {
        client.write(PAYLOAD);
        toServer.push(...client.poll().output);
        clientReady = false;
      }
    }
  }
  return clientGotEcho ? { outcome: 'done', session } : { outcome: 'failed', error: 'no echo after 8 rounds' };
}
