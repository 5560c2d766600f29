/**
 * Warming a server up at start: in-memory handshakes against itself, so that V8 has compiled and
 * optimised the handshake code before the first client pays for it (the first seconds of a fresh
 * process otherwise cost more CPU per handshake than the steady state; numbers in
 * bench/results/tls.md, "Cold start").
 */
import { ClientConfig, ClientConnection } from './client.js';
import type { KeyLogger, Progress } from './connection.js';
import type { PeerCredentialHooks } from './credentials.js';
import { CipherSuite, NamedGroup, ProtocolVersion } from './constants.js';
import type { ServerConfig } from './server.js';
import { ServerConnection } from './server.js';
import type { TlsSession } from './session.js';

/** Warm-up connections log no secrets, whatever the config's keylog says. */
const NO_KEYLOG: KeyLogger = Object.assign(() => undefined, { enabled: () => false });

const PAYLOAD = new Uint8Array(32);

/**
 * The kinds of client the warm-up plays, as real clients send them (each only when the server
 * has its group and suite):
 * - 'tls1.3-x25519mlkem768': current browsers, curl on OpenSSL 3.5 and Go 1.24+: shares for
 *   X25519MLKEM768 and x25519, every suite, ALPN (h2 and http/1.1, or the server's protocols);
 * - 'tls1.3-x25519': OpenSSL before 3.5, older Go and NSS, scripts: one x25519 share, no ALPN;
 * - 'tls1.3-secp256r1': Java, .NET and FIPS-minded clients: one P-256 share, AES-256-GCM only;
 * - 'tls1.3-chacha20': clients without AES hardware that offer ChaCha20-Poly1305 only;
 * - 'tls1.3-resumed': resumes the last x25519 session with a ticket;
 * - 'tls1.2': when the server has TLS 1.2.
 * Measured: bench/results/sidecar-perf.md, section 12.
 */
export type WarmUpKind = 'tls1.3-x25519' | 'tls1.3-x25519mlkem768' | 'tls1.3-secp256r1' | 'tls1.3-chacha20' | 'tls1.3-resumed' | 'tls1.2';

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
 * memory and synchronously, rotating through the kinds of client above (warmUpClients), every
 * fourth handshake resumed; each moves 32 bytes each way.
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
  /** The server name every client sends (real clients send SNI; its matching is on the path). */
  readonly servername?: string;
  /** Kinds not to play (e.g. left out by an earlier run on the same config). */
  readonly leaveOut?: readonly WarmUpKind[];
}

/** The server side warmUpClients needs: what it accepts. */
export type WarmedServer = Pick<ServerConfig, 'versions' | 'groups' | 'suites' | 'options'>;

/** The client configs of every kind `server` can serve (not 'tls1.3-resumed', which reuses the x25519 one), in rotation order. */
export function warmUpClients(server: WarmedServer, client: Omit<WarmUpClientOptions, 'leaveOut'> = {}): Array<{ kind: WarmUpKind; config: ClientConfig }> {
  const base = {
    rejectUnauthorized: false,
    ...(client.serverCredentialHooks ? { serverCredentialHooks: client.serverCredentialHooks } : {}),
    ...(client.servername !== undefined ? { servername: client.servername } : {}),
  };
  const kinds: Array<{ kind: WarmUpKind; config: ClientConfig }> = [];
  const tls13 = server.versions.includes(ProtocolVersion.TLS1_3);
  const hasGroup = (g: number): boolean => server.groups.includes(g);
  const hasSuite = (s: number): boolean => server.suites.some((p) => p.id === s);
  // A browser's ALPN list, or the server's own protocols when it has some (no protocol in common is fatal).
  const alpn = server.options.alpnProtocols?.length ? server.options.alpnProtocols : ['h2', 'http/1.1'];
  // Both shares, as browsers send them; the server picks the hybrid one, so it alone is needed.
  if (tls13 && hasGroup(NamedGroup.X25519MLKEM768)) {
    kinds.push({ kind: 'tls1.3-x25519mlkem768', config: new ClientConfig({ ...base, keyShareGroups: [NamedGroup.X25519MLKEM768, NamedGroup.x25519], alpnProtocols: alpn }) });
  }
  if (tls13 && hasGroup(NamedGroup.x25519)) {
    kinds.push({ kind: 'tls1.3-x25519', config: new ClientConfig({ ...base, groups: [NamedGroup.x25519, NamedGroup.secp256r1], keyShareGroups: [NamedGroup.x25519] }) });
  }
  if (tls13 && hasGroup(NamedGroup.secp256r1) && hasSuite(CipherSuite.TLS_AES_256_GCM_SHA384)) {
    kinds.push({ kind: 'tls1.3-secp256r1', config: new ClientConfig({ ...base, groups: [NamedGroup.secp256r1, NamedGroup.secp384r1], keyShareGroups: [NamedGroup.secp256r1], cipherSuites: [CipherSuite.TLS_AES_256_GCM_SHA384] }) });
  }
  if (tls13 && hasGroup(NamedGroup.x25519) && hasSuite(CipherSuite.TLS_CHACHA20_POLY1305_SHA256)) {
    kinds.push({ kind: 'tls1.3-chacha20', config: new ClientConfig({ ...base, groups: [NamedGroup.x25519], keyShareGroups: [NamedGroup.x25519], cipherSuites: [CipherSuite.TLS_CHACHA20_POLY1305_SHA256] }) });
  }
  if (server.versions.includes(ProtocolVersion.TLS1_2)) {
    kinds.push({ kind: 'tls1.2', config: new ClientConfig({ ...base, minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' }) });
  }
  return kinds;
}

export function warmUpServer(config: ServerConfig, handshakes: number, client: WarmUpClientOptions = {}): WarmUpReport {
  return new ServerWarmUp(config, client).run(handshakes);
}

/**
 * warmUpServer in parts: `run(n)` as often as wanted (e.g. in small batches between which the
 * event loop runs), the rotation of kinds, the session to resume and the kinds left out carried
 * from one part to the next. Each report counts its own part.
 */
export class ServerWarmUp {
  private readonly kinds: Array<{ kind: WarmUpKind; config: ClientConfig }>;
  private readonly x25519: ClientConfig | undefined;
  private resumes: boolean;
  private session: TlsSession | undefined;
  private turn = 0;
  /** Handshakes completed in all parts: every fourth resumes. */
  private total = 0;

  constructor(
    private readonly config: ServerConfig,
    client: WarmUpClientOptions = {},
  ) {
    const leaveOut = new Set(client.leaveOut ?? []);
    this.kinds = warmUpClients(config, client).filter((k) => !leaveOut.has(k.kind));
    this.x25519 = this.kinds.find((k) => k.kind === 'tls1.3-x25519')?.config;
    this.resumes = this.x25519 !== undefined && !leaveOut.has('tls1.3-resumed');
  }

  run(handshakes: number): WarmUpReport {
    const { kinds, x25519 } = this;
    const byKind: Partial<Record<WarmUpKind, number>> = {};
    const failed: Array<{ kind: WarmUpKind; error: string }> = [];
    let done = 0;
    // Each round either completes a handshake, or leaves a kind out, or ends: at most
    // handshakes + kinds + 1 rounds.
    while (done < handshakes && kinds.length > 0) {
      // Every fourth handshake resumes the last x25519 session, once there is one.
      const resume = this.resumes && this.total % 4 === 3 && this.session !== undefined;
      const current = resume ? { kind: 'tls1.3-resumed' as const, config: x25519! } : kinds[this.turn++ % kinds.length]!;
      const connection = new ClientConnection(current.config, { keylog: NO_KEYLOG, ...(resume ? { session: this.session } : {}) });
      const server = new ServerConnection(this.config, { keylog: NO_KEYLOG });
      const result = exchange(connection, server);
      if (result.outcome === 'waited') return { done, byKind, failed, waited: true };
      if (result.outcome === 'failed') {
        failed.push({ kind: current.kind, error: result.error });
        if (resume) this.resumes = false;
        else kinds.splice(kinds.indexOf(current), 1);
        continue;
      }
      // Only x25519 sessions are resumed, by the x25519 client (another kind's suite may have another hash).
      if (result.session && current.config === x25519) this.session = result.session;
      byKind[current.kind] = (byKind[current.kind] ?? 0) + 1;
      done++;
      this.total++;
    }
    return { done, byKind, failed, waited: false };
  }
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
