/**
 * The key server: answers Keyless SSL signing requests over mutual TLS with keys looked up by SKI.
 *
 * Every request gets an answer with its id: a response, a pong, or an error response whose code
 * says what was wrong (unknown key, bad opcode, malformed message, oversized body, wrong version).
 * A bad request never closes the connection; only a broken transport does. Signing on the main
 * thread is shared between client identities by what their signatures cost (FairQueue), on workers
 * it runs under a semaphore; a connection with too many requests or bytes in flight is paused
 * (TCP backpressure).
 *
 * Hostile or broken clients: a connection is admitted at accept, before any TLS, against a total
 * cap and a cap per source address (ConnectionTracker); it must finish its handshake, client
 * certificate checked, within the handshake timeout, and is closed after the idle timeout once
 * nothing is asked of it. Every refusal and failed handshake is counted by reason; the log says
 * why a client was dropped, at a bounded rate (LogLimiter).
 */
import { X509Certificate } from 'node:crypto';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { ConnectionTracker, sourceAddress, type Refusal } from '../net/connection-tracker.js';
import { LogLimiter } from '../net/log-limiter.js';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { checkVersion, decodeOperation, encodeMessage, FrameDecoder, type Frame, type Operation } from './codec.js';
import { KeylessError } from './errors.js';
import { FairQueue } from './fair-queue.js';
import { KeyDirectory, type KeyDirectoryOptions, type KeyLookup, type KeyStoreLogger, type SigningKey } from './keystore.js';
import {
  DEFAULT_PORT,
  ErrorCode,
  errorCodeName,
  isResponseOpcode,
  MAX_WIRE_BODY_LENGTH,
  Opcode,
  opcodeName,
} from './protocol.js';
import { Semaphore } from './semaphore.js';
import { signRequestOf, usesLegacyHash, type SignRequest } from './sign-request.js';
import { SigningPool } from './sign-pool.js';
import { signatureCost } from './signature-cost.js';
import { skiHex } from './ski.js';
import { pemBlocks } from '../tls/x509/pem.js';

export interface KeyServerOptions {
  /** Directory of private keys (PEM or DER PKCS#8), reloaded on change. */
  readonly keysDir?: string;
  /** With keysDir: checks each new key set before it is used (KeyDirectoryOptions.check). */
  readonly checkKeyFiles?: KeyDirectoryOptions['check'];
  /** Or a ready key store (tests, embedding). One of keysDir/keys is required. */
  readonly keys?: KeyLookup;
  /** CA certificate(s) (PEM) that client certificates must chain to. */
  readonly ca: string | Buffer;
  /** Server certificate chain and key (PEM). */
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
  /** Listening address (default 0.0.0.0) and port (default 2407; 0 picks a free port). */
  readonly host?: string;
  readonly port?: number;
  /**
   * Signing operations running at once on the workers (default 64). On the main thread signatures
   * run one at a time, shared between client identities by cost (FairQueue).
   */
  readonly maxConcurrency?: number;
  /**
   * Sign on this many worker threads (default 0: on the main thread). Worth it with more than
   * one core to spare: the main thread keeps TLS and framing, the workers do the private-key math.
   */
  readonly signingWorkers?: number;
  /**
   * Answer MD5-SHA1 (TLS 1.0/1.1) and SHA-1 signing opcodes (default false: refused with
   * bad_opcode). Both hashes have practical collisions, and no TLS 1.2 or 1.3 peer of ours needs
   * them; a deployment that still serves such clients says so explicitly.
   */
  readonly allowLegacyHashes?: boolean;
  /** Requests in flight per connection before its reads pause (default 1024). */
  readonly maxInFlightPerConnection?: number;
  /**
   * Bytes one connection may hold (requests being answered, answers it has not read) before its
   * reads pause (default DEFAULT_MAX_QUEUED_BYTES_PER_CONNECTION).
   */
  readonly maxQueuedBytesPerConnection?: number;
  /**
   * Largest accepted request body in bytes (default and maximum: 65535, the u16 wire limit). An
   * Ed25519 request carries the whole message, which for a delegated credential includes the
   * certificate, so keep this well above the largest certificate you sign for.
   */
  readonly maxBodyLength?: number;
  /** Serve Prometheus metrics on this port (/metrics); 0 picks a free port; undefined = off. */
  readonly metricsPort?: number;
  readonly metricsHost?: string;
  /**
   * Open connections at most, handshaking or not (default DEFAULT_MAX_CONNECTIONS); further ones
   * are closed at accept.
   */
  readonly maxConnections?: number;
  /** Open connections from one IP address at most (default DEFAULT_MAX_CONNECTIONS_PER_SOURCE; 0: none). */
  readonly maxConnectionsPerSource?: number;
  /**
   * Open connections of one client identity at most, after the handshake (default
   * DEFAULT_MAX_CONNECTIONS_PER_IDENTITY; 0: none); further ones are closed, logged and counted.
   */
  readonly maxConnectionsPerIdentity?: number;
  /**
   * Open connections of one tenant at most, after the handshake (the authorizer's `tenant`: the
   * in-cluster key server's namespace; default DEFAULT_MAX_CONNECTIONS_PER_TENANT; 0: none).
   * Identities are cheap for a tenant to make (one per DelegatedCredential), tenants are not.
   */
  readonly maxConnectionsPerTenant?: number;
  /**
   * Connections still in their TLS handshake at most (default DEFAULT_MAX_HANDSHAKING_CONNECTIONS;
   * 0: none), so clients that connect and say nothing cannot hold the slots of authenticated ones.
   * When full, the oldest of them is closed for a new one.
   */
  readonly maxHandshakingConnections?: number;
  /** Of those, from one IP address at most (default DEFAULT_MAX_HANDSHAKING_PER_SOURCE; 0: none); further ones are closed at accept. */
  readonly maxHandshakingPerSource?: number;
  /**
   * A connection whose peer holds no grant (the authorizer's `holdsGrant`) is closed this long
   * after its handshake, and one whose grant is revoked within this long after (default
   * DEFAULT_UNGRANTED_GRACE_MS; 0: never). Pings alone do not keep it.
   */
  readonly ungrantedGraceMs?: number;
  /** From accept to a finished TLS handshake with a valid client certificate (default DEFAULT_HANDSHAKE_TIMEOUT_MS). */
  readonly handshakeTimeoutMs?: number;
  /** No request or answer for this long after the handshake closes the connection (default DEFAULT_IDLE_TIMEOUT_MS; 0: never). */
  readonly idleTimeoutMs?: number;
  /** Registry for the metrics (default: a new one per server). */
  readonly registry?: Registry;
  readonly logger?: KeyStoreLogger;
  /** Key directory reload poll interval (default 30 s). */
  readonly pollIntervalMs?: number;
  /**
   * Who may ask what (default: any client whose certificate chains to `ca` may use every key).
   * The policy lives with the caller; the server asks it once per connection and per request.
   */
  readonly authorizer?: RequestAuthorizer;
}

/**
 * The authorization hook. `forPeer` is called once per connection, after the handshake, with the
 * verified client certificate; what it returns is asked about every ping and signing request of
 * that connection before a key is looked up, and told how each one ended.
 */
export interface RequestAuthorizer {
  forPeer(certificate: X509Certificate): PeerAuthorizer;
}

export interface PeerAuthorizer {
  /**
   * Who the peer is, for the per-identity connection cap (the in-cluster key server: its URI SAN).
   * Absent: the client certificate (its SHA-256 fingerprint).
   */
  readonly identity?: string;
  /**
   * The tenant the identity belongs to (the in-cluster key server: the namespace of its
   * DelegatedCredential), for the per-tenant connection cap and its lane in the signing queue.
   * Absent: the identity is its own tenant.
   */
  readonly tenant?: string;
  /**
   * Whether the peer may still sign with some key. Absent: always. A peer that holds no grant is
   * closed after the server's ungranted grace, pings or not: it can do nothing here but hold a slot.
   */
  holdsGrant?(): boolean;
  /**
   * undefined: serve it; else the error code to refuse it with, in-band. `ski` is hex; `request`,
   * what a signing opcode asks to have signed (absent for pings).
   */
  admit(opcode: number, ski: string | undefined, request?: SignRequest): ErrorCode | undefined;
  /** After the answer was written: its error code (undefined: success) and how long it took. */
  answered(opcode: number, ski: string | undefined, error: ErrorCode | undefined, seconds: number): void;
}

/**
 * Connections at most. A sidecar holds one connection to the key server (the client's pool
 * default) and briefly a second while it reconnects, so this is how many sidecars one key server
 * process serves; more sidecars call for more replicas behind a Service. It is also what bounds
 * memory under a flood: a connection costs this process about 30 KiB (measured with 2,000 idle
 * mutual-TLS connections, 26 KiB for a silent TCP one), so ~300 MiB at the cap.
 */
export const DEFAULT_MAX_CONNECTIONS = 10_000;

/**
 * Connections from one IP address at most. In a cluster every sidecar has its own pod IP, but
 * behind SNAT (the key server outside the cluster, traffic leaving through the node's address)
 * all sidecars of a node share one: kubelet allows 110 pods per node by default and 250 at most
 * commonly, one connection each plus one while reconnecting, so 500 at most. 1,000 leaves room for
 * that, and one source can still take no more than a tenth of DEFAULT_MAX_CONNECTIONS. Clients
 * behind one NAT gateway for a whole cluster need more, or 0 (docs/operations.md).
 */
export const DEFAULT_MAX_CONNECTIONS_PER_SOURCE = 1_000;

/**
 * Bytes one connection may hold before it is no longer read: room for two of the largest requests
 * and their answers (a ping echoes up to 64 KiB), so a client that reads its answers never waits
 * on it. Unsent answers alone were already bounded (a write over the socket's high-water mark
 * paused reads), but requests waiting to be signed were not: with signing workers, 1,024 requests
 * of up to 64 KiB per connection (measured 44 MB for one client). With it, at the connection cap,
 * at most ~10,000 × (128 KiB + one read) in total.
 */
export const DEFAULT_MAX_QUEUED_BYTES_PER_CONNECTION = 128 * 1024;

/**
 * Connections of one identity at most. Every replica of a Deployment serving one
 * DelegatedCredential shares its identity: one connection each, two while reconnecting, so 1,000
 * serves a 500-replica Deployment, while a stolen identity connecting from many sources can still
 * hold no more than a tenth of DEFAULT_MAX_CONNECTIONS (and of their byte budgets).
 */
export const DEFAULT_MAX_CONNECTIONS_PER_IDENTITY = 1_000;

/**
 * Connections of one tenant at most: a quarter of DEFAULT_MAX_CONNECTIONS, so one namespace (any
 * number of DelegatedCredentials and pods) cannot take the whole server, while a namespace of
 * 1,000 sidecars reconnecting at once still fits.
 */
export const DEFAULT_MAX_CONNECTIONS_PER_TENANT = 2_500;

/**
 * Connections in their handshake at most: a tenth of DEFAULT_MAX_CONNECTIONS. A real handshake
 * takes milliseconds; 1,000 at once is a whole fleet reconnecting after a key server restart
 * (the clients back off and retry), while silent TCP connections can hold no more than these.
 */
export const DEFAULT_MAX_HANDSHAKING_CONNECTIONS = 1_000;

/**
 * Connections in their handshake from one address at most: a tenth of the total, so one source
 * of silent connections cannot take every handshake slot. A node's pods behind SNAT reconnecting
 * all at once (110 by default) mostly fit; the rest are refused and retry with backoff.
 */
export const DEFAULT_MAX_HANDSHAKING_PER_SOURCE = 100;

/**
 * How long a connection whose peer holds no grant stays open. The controller issues a sidecar's
 * client certificate for a DelegatedCredential the key server's informers see within moments, so
 * a grant that is coming comes within this; an identity that never gets one (a DelegatedCredential
 * without an in-cluster signer) reconnects with backoff and holds one slot a grace at a time.
 */
export const DEFAULT_UNGRANTED_GRACE_MS = 30_000;

/**
 * Accept to finished handshake. A real client needs a couple of round trips and one signature on
 * each side (milliseconds, or a few hundred across regions); our client gives up its own TLS
 * connect after 10 s, so a handshake still unfinished then serves nobody and only holds a slot.
 */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * No request for this long closes a connection. Long enough that a sidecar serving even a
 * handshake every few minutes keeps its connection (a reconnect adds one mutual-TLS handshake to
 * one client's handshake); short enough that connections of sidecars gone without a FIN (a lost
 * node) are freed within minutes instead of after TCP keepalive's ~12 minutes.
 */
export const DEFAULT_IDLE_TIMEOUT_MS = 300_000;

export interface KeyServer {
  /** The bound TLS port. */
  readonly port: number;
  /** The bound metrics port, when metrics are served. */
  readonly metricsPort: number | undefined;
  readonly registry: Registry;
  /** The key directory, when the server was started with keysDir. */
  readonly keyDirectory: KeyDirectory | undefined;
  /**
   * Replaces the serving certificate, key and client CA for new connections. An open connection
   * whose client certificate no CA of a changed `ca` issued is closed (its client reconnects and is
   * verified against the new bundle); the others keep running. Throws, changing nothing, when they
   * do not make a TLS context.
   */
  setCredentials(credentials: { ca: string | Buffer; cert: string | Buffer; key: string | Buffer }): void;
  close(): Promise<void>;
}


/** Metric names follow Prometheus conventions; `opcode` labels are the documented opcode names. */
class KeyServerMetrics {
  readonly requests: Counter<'opcode' | 'result'>;
  readonly duration: Histogram<'opcode'>;
  readonly connections: Gauge;
  readonly handshakeFailures: Counter<'reason'>;
  readonly refusedConnections: Counter<'reason'>;
  readonly idleTimeouts: Counter;
  readonly expiredConnections: Counter;
  readonly untrustedConnections: Counter;
  readonly reloads: Counter<'result'>;
  readonly readPauses: Counter;

  constructor(readonly registry: Registry, keys: () => number, queuedBytes: () => number) {
    this.requests = new Counter({
      name: 'keyless_server_requests_total',
      help: 'Requests answered, by opcode and result (ok or the error name).',
      labelNames: ['opcode', 'result'],
      registers: [registry],
    });
    this.duration = new Histogram({
      name: 'keyless_server_request_duration_seconds',
      help: 'Time from a request being read to its answer being written, by opcode.',
      labelNames: ['opcode'],
      // 100 µs doubling to ~1.6 s, like gokeyless.
      buckets: Array.from({ length: 15 }, (_, i) => 0.0001 * 2 ** i),
      registers: [registry],
    });
    this.connections = new Gauge({
      name: 'keyless_server_connections',
      help: 'Open client connections (after the TLS handshake).',
      registers: [registry],
    });
    this.handshakeFailures = new Counter({
      name: 'keyless_server_handshake_failures_total',
      help:
        'TLS handshakes that failed, by reason: unknown-ca, key-usage, expired, no-certificate, ' +
        'certificate (another certificate problem), timeout, closed (the client left), tls (a protocol error).',
      labelNames: ['reason'],
      registers: [registry],
    });
    this.refusedConnections = new Counter({
      name: 'keyless_server_refused_connections_total',
      help:
        'Connections refused or closed, by reason: limit (connection cap), source-limit (per-source cap), handshake-limit (connections of one source in their handshake), ' +
        'all at accept before any TLS; handshake-evicted (the oldest connection in its handshake, closed when the handshake cap is reached); identity-limit, tenant-limit (per-identity and per-tenant caps, after the handshake); no-grant (closed: the identity holds no key, after the grace).',
      labelNames: ['reason'],
      registers: [registry],
    });
    this.idleTimeouts = new Counter({
      name: 'keyless_server_idle_timeouts_total',
      help: 'Connections closed after the handshake because nothing was asked of them for the idle timeout.',
      registers: [registry],
    });
    this.expiredConnections = new Counter({
      name: 'keyless_server_expired_connections_total',
      help: "Connections closed because their client certificate's notAfter passed while they were open.",
      registers: [registry],
    });
    this.untrustedConnections = new Counter({
      name: 'keyless_server_untrusted_connections_total',
      help: 'Open connections closed because the client CA bundle was replaced by one without the CA that issued their client certificate.',
      registers: [registry],
    });
    this.reloads = new Counter({
      name: 'keyless_server_key_reloads_total',
      help: 'Key directory reloads by result (ok, failed).',
      labelNames: ['result'],
      registers: [registry],
    });
    this.readPauses = new Counter({
      name: 'keyless_server_read_pauses_total',
      help: 'Times a connection stopped being read because the bytes it holds here (requests being answered, answers not yet sent) reached the per-connection budget; it is read again once they drain.',
      registers: [registry],
    });
    new Gauge({
      name: 'keyless_server_queued_bytes',
      help: 'Bytes held for all connections: requests read and not yet answered, answers not yet sent (a client that does not read its answers).',
      registers: [registry],
      collect() {
        this.set(queuedBytes());
      },
    });
    new Gauge({
      name: 'keyless_server_keys',
      help: 'Private keys currently loaded.',
      registers: [registry],
      collect() {
        this.set(keys());
      },
    });
  }
}

function resultLabel(code: number | undefined): string {
  return code === undefined ? 'ok' : errorCodeName(code).replace(/[^a-z0-9]+/g, '_');
}

type HandshakeFailureReason = 'unknown-ca' | 'key-usage' | 'expired' | 'no-certificate' | 'certificate' | 'timeout' | 'closed' | 'tls';

/**
 * Client certificate verification results (OpenSSL's X509_V_ERR_* names, as node reports them in
 * `authorizationError`) grouped into what an operator has to fix.
 */
const CERTIFICATE_PROBLEMS: Readonly<Record<string, readonly [HandshakeFailureReason, string]>> = {
  UNABLE_TO_GET_ISSUER_CERT: ['unknown-ca', 'its client certificate is not issued by a CA the key server trusts (unknown CA)'],
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: ['unknown-ca', 'its client certificate is not issued by a CA the key server trusts (unknown CA)'],
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: ['unknown-ca', 'its client certificate is not issued by a CA the key server trusts (unknown CA)'],
  SELF_SIGNED_CERT_IN_CHAIN: ['unknown-ca', 'its client certificate chains to a self-signed CA the key server does not trust (unknown CA)'],
  DEPTH_ZERO_SELF_SIGNED_CERT: ['unknown-ca', 'its client certificate is self-signed (unknown CA)'],
  CERT_SIGNATURE_FAILURE: ['unknown-ca', "its client certificate's signature does not verify with the trusted CA of that name (unknown CA)"],
  INVALID_PURPOSE: ['key-usage', 'its client certificate is not for client authentication (wrong key usage: needs extendedKeyUsage clientAuth and keyUsage digitalSignature)'],
  KEYUSAGE_NO_DIGITAL_SIGNATURE: ['key-usage', 'its client certificate lacks keyUsage digitalSignature (wrong key usage)'],
  KEYUSAGE_NO_CERTSIGN: ['key-usage', 'a CA in its client certificate chain lacks keyUsage keyCertSign (wrong key usage)'],
  CERT_HAS_EXPIRED: ['expired', 'its client certificate has expired'],
  CERT_NOT_YET_VALID: ['expired', 'its client certificate is not valid yet'],
};

interface HandshakeFailure {
  readonly reason: HandshakeFailureReason;
  /** For the log: why the client was dropped. */
  readonly why: string;
  /** The error or verification code it came from. */
  readonly code: string;
}

/**
 * Why a client whose handshake finished is not authorized: its certificate did not verify
 * against the CA (the code in `authorizationError`), or it sent none.
 */
function certificateFailure(socket: TLSSocket): HandshakeFailure {
  if (socket.getPeerX509Certificate() === undefined) {
    return { reason: 'no-certificate', why: 'it sent no client certificate', code: 'NO_CERTIFICATE' };
  }
  // node types authorizationError as an Error; it holds the verification error's code (a string).
  const auth = socket.authorizationError as unknown as string | Error | undefined;
  const code = (typeof auth === 'string' ? auth : auth?.message) || 'UNKNOWN';
  const [reason, why] = CERTIFICATE_PROBLEMS[code] ?? ['certificate', `its client certificate does not verify (${code})`];
  return { reason, why, code };
}

/** Why a handshake did not finish. (A missing client certificate is not one: see certificateFailure.) */
function handshakeError(err: Error & { code?: string }): HandshakeFailure {
  const code = err.code ?? err.message;
  if (code === 'ERR_TLS_HANDSHAKE_TIMEOUT') return { reason: 'timeout', why: 'no finished handshake within the handshake timeout', code };
  if (code === 'ECONNRESET') return { reason: 'closed', why: 'it closed the connection before the handshake finished', code };
  return { reason: 'tls', why: err.message, code };
}

/** One connection fewer in `counts` under `key` (entries removed at 0). */
function release(counts: Map<string, number>, key: string): void {
  const left = (counts.get(key) ?? 1) - 1;
  if (left > 0) counts.set(key, left);
  else counts.delete(key);
}

/**
 * Closes `socket` at the first check, every `graceMs`, that finds its peer holding no grant: an
 * identity of no key (or whose key was revoked) can only ping, and pings would otherwise keep its
 * slot forever. One unref'd interval per connection of an authorizer that tracks grants.
 */
function closeWithoutGrant(socket: TLSSocket, holdsGrant: () => boolean, graceMs: number, onClosed: () => void): ReturnType<typeof setInterval> {
  const timer = setInterval(() => {
    if (socket.destroyed || holdsGrant()) return;
    clearInterval(timer);
    onClosed();
    socket.destroy();
  }, graceMs);
  timer.unref();
  return timer;
}

/** The CA certificates of a client CA bundle, parsed once per bundle. */
function bundleCas(caPem: string): X509Certificate[] {
  const cas: X509Certificate[] = [];
  for (const block of pemBlocks(caPem)) {
    if (block.label !== 'CERTIFICATE') continue;
    try {
      cas.push(new X509Certificate(block.text));
    } catch {
      // node:tls accepted the bundle; a block it skipped as well trusts nothing here either.
    }
  }
  return cas;
}

/**
 * Whether a CA certificate of the bundle issued (and signed) `certificate`. A connection is
 * verified once, at its handshake: without this check a CA taken out of the bundle (rotated,
 * compromised) would keep its clients until they left. A client certificate from an intermediate
 * CA fails it too (the bundle holds the roots), and is verified again, in full, when it reconnects.
 */
function issuedByBundle(certificate: X509Certificate, cas: readonly X509Certificate[]): boolean {
  return cas.some((ca) => certificate.checkIssued(ca) && certificate.verify(ca.publicKey));
}

/** Closes every connection of `open` whose client certificate the bundle did not issue; returns how many. */
function closeUntrusted(open: ReadonlyMap<TLSSocket, X509Certificate>, cas: readonly X509Certificate[]): number {
  let closed = 0;
  for (const [socket, certificate] of open) {
    if (issuedByBundle(certificate, cas)) continue;
    socket.destroy();
    closed++;
  }
  return closed;
}

/** setTimeout's longest delay (2^31 - 1 ms, ~24.8 days); a longer one fires at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Ends `socket` when its client certificate expires: the certificate is checked at the handshake
 * only, and a connection kept busy never reaches the idle timeout, so without this a certificate
 * stolen before its notAfter would sign for as long as its connection lasted. One unref'd timer
 * per connection, re-armed for certificates valid longer than a timer can wait.
 */
function endAtExpiry(socket: TLSSocket, notAfter: number, onExpired: () => void): { timer: ReturnType<typeof setTimeout> } {
  const handle = { timer: undefined as unknown as ReturnType<typeof setTimeout> };
  const arm = (): void => {
    const left = notAfter - Date.now();
    if (left <= 0) {
      if (socket.destroyed) return;
      onExpired();
      socket.destroy();
      return;
    }
    handle.timer = setTimeout(arm, Math.min(left, MAX_TIMER_MS));
    handle.timer.unref();
  };
  arm();
  return handle;
}

/** Starts the key server; resolves once it listens. */
export async function startKeyServer(options: KeyServerOptions): Promise<KeyServer> {
  const registry = options.registry ?? new Registry();
  let keys: KeyLookup | undefined;
  /** Open connections after their handshake: what each holds, for the queued-bytes gauge. */
  const open = new Set<ServedConnection>();
  const m = new KeyServerMetrics(
    registry,
    () => keys?.size ?? 0,
    () => {
      let sum = 0;
      for (const c of open) sum += c.heldBytes();
      return sum;
    },
  );
  let keyDirectory: KeyDirectory | undefined;
  // Assigned once the keys are loaded (nothing to close if that fails); a reload tells its workers
  // which keys to drop.
  let pool: SigningPool | undefined = undefined;
  if (options.keys) {
    keys = options.keys;
  } else if (options.keysDir) {
    keyDirectory = await KeyDirectory.open(options.keysDir, {
      ...(options.logger ? { logger: options.logger } : {}),
      ...(options.pollIntervalMs !== undefined ? { pollIntervalMs: options.pollIntervalMs } : {}),
      ...(options.checkKeyFiles ? { check: options.checkKeyFiles } : {}),
      onReload: (r) => {
        m.reloads.inc({ result: r.ok ? 'ok' : 'failed' });
        if (r.changed === true && keyDirectory) pool?.retainOnly(keyDirectory.list().map((k) => k.skiHex));
      },
    });
    keys = keyDirectory;
  } else {
    throw new Error('startKeyServer needs keysDir or keys');
  }
  const keyLookup: KeyLookup = keys;
  pool = options.signingWorkers ? new SigningPool(options.signingWorkers) : undefined;
  const semaphore = new Semaphore(options.maxConcurrency ?? 64);
  const queue = new FairQueue();
  const maxInFlight = options.maxInFlightPerConnection ?? 1024;
  const maxHeldBytes = options.maxQueuedBytesPerConnection ?? DEFAULT_MAX_QUEUED_BYTES_PER_CONNECTION;
  const maxBody = Math.min(options.maxBodyLength ?? MAX_WIRE_BODY_LENGTH, MAX_WIRE_BODY_LENGTH);
  const log = options.logger;

  const idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  const tracker = new ConnectionTracker(
    options.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
    options.maxConnectionsPerSource ?? DEFAULT_MAX_CONNECTIONS_PER_SOURCE,
  );
  const limiter = new LogLimiter();
  const maxPerIdentity = options.maxConnectionsPerIdentity ?? DEFAULT_MAX_CONNECTIONS_PER_IDENTITY;
  const maxPerTenant = options.maxConnectionsPerTenant ?? DEFAULT_MAX_CONNECTIONS_PER_TENANT;
  const maxHandshaking = options.maxHandshakingConnections ?? DEFAULT_MAX_HANDSHAKING_CONNECTIONS;
  const ungrantedGraceMs = options.ungrantedGraceMs ?? DEFAULT_UNGRANTED_GRACE_MS;
  /** Identity → its open connections (entries removed at 0, so bounded by the open connections). */
  const connectionsOf = new Map<string, number>();
  /** Tenant (prefixed, not to meet an identity's key) → its open connections, the same way. */
  const connectionsOfTenant = new Map<string, number>();
  /**
   * Accepted connections whose TLS handshake has not finished yet, by remote address and port
   * (unique among open connections of one listener, and the same on the TLS socket as on the TCP
   * one it wraps), each with what ends its accounting: at the handshake's end or the close. In
   * order of arrival: when full, the oldest is the one evicted.
   */
  const handshaking = new Map<string, { readonly socket: Socket; readonly over: () => void; readonly caGeneration: number }>();
  const maxHandshakingPerSource = options.maxHandshakingPerSource ?? DEFAULT_MAX_HANDSHAKING_PER_SOURCE;
  /** Source address → its connections in `handshaking` (entries removed at 0). */
  const handshakingFrom = new Map<string, number>();
  /** Open connections after their handshake, with their client certificate (for a CA change). */
  const authenticated = new Map<TLSSocket, X509Certificate>();
  let currentCa = String(options.ca);
  /** currentCa parsed, when first needed (a CA bundle change), then at each change. */
  let currentCas: X509Certificate[] | undefined;
  /** Counts CA bundle changes: a handshake that began under an older bundle is checked against the new one. */
  let caGeneration = 0;
  const endpointOf = (socket: Socket): string => `${socket.remoteAddress ?? ''}|${socket.remotePort ?? ''}`;

  const dropped = (socket: TLSSocket, failure: HandshakeFailure, certificate?: X509Certificate): void => {
    // Unknown once the socket is closed: read it first. (A client that left has no address here.)
    const peer = socket.remoteAddress;
    socket.destroy();
    m.handshakeFailures.inc({ reason: failure.reason });
    // A client that leaves mid-handshake is what port scanners and TCP health checks do: info.
    const level = failure.reason === 'closed' ? 'info' : 'warn';
    limiter.log(`handshake:${failure.reason}`, (suppressed) =>
      log?.[level](`keyless: client dropped during the TLS handshake: ${failure.why}`, {
        ...(peer ? { peer } : {}),
        reason: failure.reason,
        error: failure.code,
        // The client chose these names: cut to a length a log line can carry.
        ...(certificate ? { subject: certificate.subject.slice(0, 200), issuer: certificate.issuer.slice(0, 200) } : {}),
        ...(suppressed > 0 ? { suppressedSinceLastLine: suppressed } : {}),
      }),
    );
  };

  // The TLS server never listens: `server` below accepts, admits, and hands it the connections
  // it admitted, so a refused connection costs no TLS state at all.
  const tlsServer = createTlsServer(
    {
      ca: options.ca,
      cert: options.cert,
      key: options.key,
      requestCert: true,
      // Checked below instead of by node, which would close the socket first and then report a
      // bare "socket hang up": we want to say why (unknown CA, key usage), with the certificate's
      // names. The outcome is the same: a client whose certificate does not verify is closed
      // before anything it sends is read.
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
      handshakeTimeout: options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
    },
    (socket) => {
      const entry = handshaking.get(endpointOf(socket));
      entry?.over();
      if (!socket.authorized) {
        dropped(socket, certificateFailure(socket), socket.getPeerX509Certificate());
        return;
      }
      const certificate = socket.getPeerX509Certificate()!;
      // Verified by the context of the handshake's start: if the CA bundle changed since, the
      // sweep in setCredentials did not see this connection (it was not authenticated yet).
      if (entry !== undefined && entry.caGeneration !== caGeneration && !issuedByBundle(certificate, (currentCas ??= bundleCas(currentCa)))) {
        socket.destroy();
        m.untrustedConnections.inc();
        log?.warn('keyless: connection closed: the client CA bundle changed during its handshake and no longer holds the CA of its client certificate', { peer: socket.remoteAddress });
        return;
      }
      // OpenSSL checks validity at a full handshake only: a resumed session (TLS 1.2 session id or
      // ticket, TLS 1.3 PSK) keeps the verification result of the handshake it resumes, so a
      // certificate that has expired since would still be "authorized" here.
      if (certificate.validToDate.getTime() <= Date.now()) {
        dropped(socket, { reason: 'expired', why: `its client certificate expired at ${certificate.validToDate.toISOString()} (a resumed TLS session)`, code: 'CERT_HAS_EXPIRED' }, certificate);
        return;
      }
      const peer = options.authorizer?.forPeer(certificate);
      const identity = peer?.identity ?? certificate.fingerprint256;
      const tenant = `tenant:${peer?.tenant ?? identity}`;
      const mine = connectionsOf.get(identity) ?? 0;
      const ours = connectionsOfTenant.get(tenant) ?? 0;
      const over: readonly [string, string] | undefined =
        maxPerIdentity > 0 && mine >= maxPerIdentity
          ? ['identity-limit', `${mine} connections open for identity ${identity.slice(0, 300)}, the per-identity limit`]
          : maxPerTenant > 0 && ours >= maxPerTenant
            ? ['tenant-limit', `${ours} connections open for tenant ${(peer?.tenant ?? identity).slice(0, 300)}, the per-tenant limit`]
            : undefined;
      if (over !== undefined) {
        const [reason, why] = over;
        const from = socket.remoteAddress;
        socket.destroy();
        m.refusedConnections.inc({ reason });
        limiter.log(`refused:${reason}`, (suppressed) =>
          log?.warn(`keyless: connection refused: ${why}`, {
            ...(from ? { peer: from } : {}),
            reason,
            ...(suppressed > 0 ? { suppressedSinceLastLine: suppressed } : {}),
          }),
        );
        return;
      }
      connectionsOf.set(identity, mine + 1);
      connectionsOfTenant.set(tenant, ours + 1);
      m.connections.inc();
      const ungranted = peer?.holdsGrant && ungrantedGraceMs > 0 ? closeWithoutGrant(socket, peer.holdsGrant.bind(peer), ungrantedGraceMs, () => {
        m.refusedConnections.inc({ reason: 'no-grant' });
        limiter.log('closed:no-grant', (suppressed) =>
          log?.info('keyless: connection closed: its identity holds no key here', {
            identity: identity.slice(0, 300),
            reason: 'no-grant',
            ...(suppressed > 0 ? { suppressedSinceLastLine: suppressed } : {}),
          }),
        );
      }) : undefined;
      const expiry = endAtExpiry(socket, certificate.validToDate.getTime(), () => {
        m.expiredConnections.inc();
        limiter.log('closed:expired', (suppressed) =>
          log?.info('keyless: connection closed: its client certificate expired', {
            identity: identity.slice(0, 300),
            notAfter: certificate.validToDate.toISOString(),
            ...(suppressed > 0 ? { suppressedSinceLastLine: suppressed } : {}),
          }),
        );
      });
      authenticated.set(socket, certificate);
      socket.on('close', () => {
        authenticated.delete(socket);
        clearTimeout(expiry.timer);
        if (ungranted) clearInterval(ungranted);
        m.connections.dec();
        release(connectionsOf, identity);
        release(connectionsOfTenant, tenant);
      });
      // Main-thread signing is shared per tenant: more identities buy no larger share.
      const served = serveConnection(socket, { ...(peer ? { peer } : {}), queue, identity: tenant, keys: keyLookup, semaphore, maxInFlight, maxHeldBytes, maxBody, idleTimeoutMs, metrics: m, allowLegacyHashes: options.allowLegacyHashes ?? false, ...(pool ? { pool } : {}), ...(log ? { log } : {}) });
      open.add(served);
      socket.on('close', () => open.delete(served));
    },
  );
  // node reports a handshake timeout here and leaves the socket open (2,000 silent connections
  // were all still open after 128 s): dropped() closes it, as every other failure here.
  tlsServer.on('tlsClientError', (err: Error & { code?: string }, socket) => dropped(socket, handshakeError(err)));

  const refused = (reason: Refusal | 'handshake-limit' | 'handshake-evicted', socket: Socket): void => {
    m.refusedConnections.inc({ reason });
    const source = sourceAddress(socket);
    const why =
      reason === 'source-limit'
        ? `${tracker.openFrom(source)} connections open from ${source}, the per-source limit`
        : reason === 'handshake-limit'
          ? `${handshakingFrom.get(source) ?? 0} connections from ${source} in their TLS handshake, the per-source limit`
          : reason === 'handshake-evicted'
            ? `${handshaking.size + 1} connections in their TLS handshake, the limit: the oldest is closed for a new one`
          : `${tracker.size} connections open, the limit`;
    limiter.log(`refused:${reason}`, (suppressed) =>
      log?.warn(`keyless: connection refused: ${why}`, {
        peer: source,
        reason,
        ...(suppressed > 0 ? { suppressedSinceLastLine: suppressed } : {}),
      }),
    );
  };

  const server = createNetServer((socket) => {
    const admitted = tracker.admit(socket);
    if (admitted !== 'admitted') {
      refused(admitted, socket);
      socket.destroy();
      return;
    }
    const source = sourceAddress(socket);
    const fromSource = handshakingFrom.get(source) ?? 0;
    if (maxHandshakingPerSource > 0 && fromSource >= maxHandshakingPerSource) {
      refused('handshake-limit', socket);
      socket.destroy();
      return;
    }
    if (maxHandshaking > 0 && handshaking.size >= maxHandshaking) {
      // Full: the oldest handshake goes, not the newest. A real client finishes in milliseconds, so
      // silent connections from many sources cannot keep every new client out: to hold the table
      // they would have to arrive faster than clients finish, not once per handshake timeout.
      const oldest = handshaking.values().next().value;
      if (oldest !== undefined) {
        oldest.over();
        refused('handshake-evicted', oldest.socket);
        oldest.socket.destroy();
      }
    }
    const endpoint = endpointOf(socket);
    const handshakeOver = (): void => {
      if (handshaking.get(endpoint)?.over === handshakeOver && handshaking.delete(endpoint)) release(handshakingFrom, source);
    };
    // An entry of this endpoint still here belongs to a connection that is gone: end it first.
    handshaking.get(endpoint)?.over();
    handshaking.set(endpoint, { socket, over: handshakeOver, caGeneration });
    handshakingFrom.set(source, (handshakingFrom.get(source) ?? 0) + 1);
    socket.once('close', handshakeOver);
    tlsServer.emit('connection', socket);
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? DEFAULT_PORT, options.host ?? '0.0.0.0', () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    keyDirectory?.close();
    await pool?.close();
    throw err;
  }
  const port = (server.address() as AddressInfo).port;
  server.on('error', (err) => log?.error('keyless: server error', { error: err.message }));

  let metricsServer: HttpServer | undefined;
  let metricsPort: number | undefined;
  if (options.metricsPort !== undefined) {
    metricsServer = createHttpServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404).end();
        return;
      }
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (err: unknown) => res.writeHead(500).end(String(err)),
      );
    });
    const ms = metricsServer;
    try {
      await new Promise<void>((resolve, reject) => {
        ms.once('error', reject);
        ms.listen(options.metricsPort, options.metricsHost ?? options.host ?? '0.0.0.0', () => resolve());
      });
    } catch (err) {
      keyDirectory?.close();
      await pool?.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      throw err;
    }
    metricsPort = (metricsServer.address() as AddressInfo).port;
  }
  log?.info('keyless: key server listening', { port, metricsPort, keys: keyLookup.size });

  return {
    port,
    metricsPort,
    registry,
    keyDirectory,
    setCredentials({ ca, cert, key }) {
      // createSecureContext checks that the key belongs to the certificate; nothing is swapped if not.
      tlsServer.setSecureContext({ ca, cert, key });
      const caText = String(ca);
      if (caText === currentCa) return;
      currentCa = caText;
      currentCas = bundleCas(caText);
      caGeneration++;
      const closed = closeUntrusted(authenticated, currentCas);
      if (closed === 0) return;
      m.untrustedConnections.inc(closed);
      log?.warn('keyless: connections closed: the client CA bundle no longer holds the CA of their client certificate', { closed });
    },
    async close(): Promise<void> {
      keyDirectory?.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      await tracker.drain(new Date());
      await closed;
      await pool?.close();
      if (metricsServer) {
        const ms = metricsServer;
        ms.closeAllConnections();
        await new Promise<void>((resolve) => ms.close(() => resolve()));
      }
    },
  };
}

interface ConnectionContext {
  readonly keys: KeyLookup;
  readonly semaphore: Semaphore;
  readonly maxInFlight: number;
  /** Bytes a connection may hold here (requests being answered, answers not yet sent) before its reads pause. */
  readonly maxHeldBytes: number;
  readonly maxBody: number;
  /** 0: never. */
  readonly idleTimeoutMs: number;
  readonly metrics: KeyServerMetrics;
  readonly pool?: SigningPool;
  readonly log?: KeyStoreLogger;
  readonly allowLegacyHashes: boolean;
  readonly peer?: PeerAuthorizer;
  /** Main-thread signing, shared between identities by cost. */
  readonly queue: FairQueue;
  /** Whose share this connection draws on (the authorizer's tenant, else its identity): its lane in `queue`. */
  readonly identity: string;
}

interface ServedConnection {
  /** Requests read and not yet answered, plus answers written and not yet sent, in bytes. */
  heldBytes(): number;
}

/**
 * Reads frames from one client connection and answers each one. What a connection may hold here
 * is bounded twice: requests in flight (maxInFlight), and bytes (maxHeldBytes: request bodies being
 * answered plus answers the client has not read yet). Over either, the connection is not read
 * until they drain, so a client that sends without reading its answers (a ping echoes up to 64 KiB)
 * holds the budget plus what one read brought, not maxInFlight answers: TCP pushes back on it.
 */
function serveConnection(socket: TLSSocket, ctx: ConnectionContext): ServedConnection {
  socket.setKeepAlive(true, 30_000);
  const decoder = new FrameDecoder(ctx.maxBody);
  let inFlight = 0;
  let requestBytes = 0;
  let writeBlocked = false;
  let paused = false;
  const heldBytes = (): number => requestBytes + socket.writableLength;
  const updateFlow = (): void => {
    const overBudget = heldBytes() >= ctx.maxHeldBytes;
    if (inFlight >= ctx.maxInFlight || writeBlocked || overBudget) {
      if (overBudget && !paused) ctx.metrics.readPauses.inc();
      paused = true;
      socket.pause();
    } else {
      paused = false;
      socket.resume();
    }
  };
  socket.on('drain', () => {
    writeBlocked = false;
    updateFlow();
  });
  socket.on('error', (err) => ctx.log?.warn('keyless: connection error', { peer: socket.remoteAddress, error: err.message }));
  if (ctx.idleTimeoutMs > 0) {
    // The socket's timer restarts on every read and write of a request or an answer. A request
    // still being signed is not idleness: its answer's write restarts the timer. A client that
    // reads none of its answers is idle too: nothing moves, and it is closed at the timeout.
    socket.setTimeout(ctx.idleTimeoutMs, () => {
      if (inFlight > 0) return;
      ctx.metrics.idleTimeouts.inc();
      socket.destroy();
    });
  }

  const send = (bytes: Uint8Array): void => {
    if (socket.destroyed) return;
    if (!socket.write(bytes)) writeBlocked = true;
  };

  socket.on('data', (chunk: Buffer) => {
    let frames: Frame[];
    try {
      frames = decoder.push(chunk);
    } catch (err) {
      // The decoder only throws on a header it cannot read, which cannot happen with >= 8 bytes.
      ctx.log?.error('keyless: framing failed, closing connection', { error: String(err) });
      socket.destroy();
      return;
    }
    for (const frame of frames) {
      const size = frame.kind === 'message' ? frame.body.length : 0;
      inFlight++;
      requestBytes += size;
      const started = process.hrtime.bigint();
      void answer(frame, ctx).then(({ bytes, opcode, error, ski }) => {
        send(bytes);
        inFlight--;
        requestBytes -= size;
        updateFlow();
        const label = opcodeName(opcode);
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        ctx.metrics.requests.inc({ opcode: label, result: resultLabel(error) });
        ctx.metrics.duration.observe({ opcode: label }, seconds);
        ctx.peer?.answered(opcode, ski, error, seconds);
      });
    }
    updateFlow();
  });
  return { heldBytes };
}

interface Answer {
  readonly bytes: Uint8Array;
  /** The request's opcode (for metrics), or 0 when it could not be read. */
  readonly opcode: number;
  /** The error code answered, undefined on success. */
  readonly error: number | undefined;
  /** The SKI asked for (hex), when the request named one. */
  readonly ski?: string | undefined;
}

const EMPTY = new Uint8Array(0);

function errorAnswer(id: number, opcode: number, code: number, ski?: string): Answer {
  return { bytes: encodeMessage(id, { opcode: Opcode.error, payload: Uint8Array.of(code) }), opcode, error: code, ski };
}

/** Turns one frame into its answer. Never rejects: every failure becomes an error response. */
async function answer(frame: Frame, ctx: ConnectionContext): Promise<Answer> {
  const id = frame.header.id;
  if (frame.kind === 'oversized') return errorAnswer(id, 0, ErrorCode.formatError);
  let op: Operation;
  try {
    checkVersion(frame.header);
    op = decodeOperation(frame.body);
  } catch (err) {
    return errorAnswer(id, 0, err instanceof KeylessError ? err.code : ErrorCode.formatError);
  }
  try {
    return await execute(id, op, ctx);
  } catch (err) {
    if (err instanceof KeylessError) return errorAnswer(id, op.opcode, err.code, op.ski === undefined ? undefined : skiHex(op.ski));
    ctx.log?.error('keyless: request failed', { opcode: opcodeName(op.opcode), error: String(err) });
    return errorAnswer(id, op.opcode, ErrorCode.internalError);
  }
}

async function execute(id: number, op: Operation, ctx: ConnectionContext): Promise<Answer> {
  const ski = op.ski === undefined ? undefined : skiHex(op.ski);
  if (op.opcode === Opcode.ping) {
    const refused = ctx.peer?.admit(op.opcode, ski);
    if (refused !== undefined) return errorAnswer(id, op.opcode, refused, ski);
    // kssl.h: the ping is echoed with its payload and the opcode changed to pong.
    return { bytes: encodeMessage(id, { opcode: Opcode.pong, payload: op.payload ?? new Uint8Array(0) }), opcode: op.opcode, error: undefined };
  }
  if (isResponseOpcode(op.opcode)) return errorAnswer(id, op.opcode, ErrorCode.unexpectedOpcode);
  // Documented opcodes carry a digest; our extension (Opcode.signMessage) the whole message.
  const request = signRequestOf(op.opcode, op.payload ?? EMPTY);
  if (!request) return errorAnswer(id, op.opcode, ErrorCode.badOpcode);
  if (!ctx.allowLegacyHashes && usesLegacyHash(request)) {
    // "bad opcode" is the documented answer for a refused hash opcode; in our extension the opcode
    // is known, and bad opcode there would read as "extension unsupported" to our client.
    return errorAnswer(id, op.opcode, request.kind === 'message' ? ErrorCode.cryptoFailed : ErrorCode.badOpcode);
  }
  const refused = ctx.peer?.admit(op.opcode, ski, request);
  if (refused !== undefined) return errorAnswer(id, op.opcode, refused, ski);
  const key = ski === undefined ? undefined : ctx.keys.get(ski);
  if (!key) return errorAnswer(id, op.opcode, ErrorCode.keyNotFound, ski);
  if (op.payload === undefined) return errorAnswer(id, op.opcode, ErrorCode.formatError, ski);
  const payload = op.payload;
  const signature = ctx.pool ? await signOnPool(ctx.pool, ctx.semaphore, key, op.opcode, payload) : await ctx.queue.run(ctx.identity, signatureCost(key, request), () => key.sign(request));
  return { bytes: encodeMessage(id, { opcode: Opcode.response, payload: signature }), opcode: op.opcode, error: undefined, ski };
}

/** On the workers: at most the semaphore's permits at once. */
async function signOnPool(pool: SigningPool, semaphore: Semaphore, key: SigningKey, opcode: number, payload: Uint8Array): Promise<Uint8Array> {
  const release = await semaphore.acquire();
  try {
    return await pool.sign(key, opcode, payload);
  } finally {
    release();
  }
}
