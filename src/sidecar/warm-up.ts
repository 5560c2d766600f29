/**
 * The sidecar's start-up warm-up: in-memory handshakes of our stack against itself
 * (src/tls/warm-up.ts), so that V8 has compiled and optimised the handshake code before the
 * first clients pay for it. Numbers and the choice of default: bench/results/sidecar-perf.md.
 *
 * It runs before the health server and the listener start (main.ts), so readiness waits for it:
 * measured, warming up after /readyz said ready made the first second costlier (the warm-up's CPU
 * on top of the first clients') with no gain after it (bench/results/sidecar-perf.md). It still
 * runs in small batches and can be stopped between them.
 *
 * Each path our stack serves with this bundle is warmed with what it signs with in the process:
 *   - DC clients: the bundle's own delegated credentials (their keys are here anyway), with a
 *     client offering delegated_credential;
 *   - non-DC clients on our stack with tls.key (`--certificate-engine ours`): tls.key;
 *   - non-DC clients through keyless: a throwaway key of the certificate's type and a throwaway
 *     self-signed certificate made here, signing in memory. The key server is never asked for a
 *     warm-up signature (it would cost it a signature per handshake and tell it nothing).
 * Non-DC clients on node:tls (the default engine with tls.key) need no warm-up of ours.
 */
import { generateKeyPair, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { promisify } from 'node:util';
import { ConnectionTracker } from '../net/connection-tracker.js';
import { delegatedCredentialPeerHooks } from '../tls/delegated/index.js';
import { createKeySigner, type Signer } from '../tls/signer.js';
import { ServerWarmUp, warmUpClients, type WarmUpKind } from '../tls/warm-up.js';
import { DerTag, encodeTlv, encodeUnsignedInteger } from '../tls/x509/der.js';
import { derToPem } from '../tls/x509/pem.js';
import { matchesServerName } from '../tls/x509/names.js';
import { MaterialStore, validateServingMaterial, type ServingMaterial } from './material.js';
import { SidecarMetrics, type TlsEngine } from './metrics.js';
import { createOursEngine, createServerConfig } from './ours-engine.js';
import { ServingReport } from './serving-report.js';
import { SidecarStatus } from './status.js';
import { listen, type TerminatorOptions } from './terminator.js';
import { driveWarmUpConnections, type WarmUpClientResult } from './warm-up-client.js';

export type WarmUpPath = 'dc' | 'certificate' | 'keyless';

export interface SidecarWarmUpOptions {
  /** In-memory handshakes in all, shared between the paths (0: none). */
  readonly handshakes: number;
  readonly material: ServingMaterial;
  readonly certificateEngine: TlsEngine;
  /** A keyless signer is configured (non-DC clients without tls.key go through the key server). */
  readonly keylessConfigured: boolean;
  readonly alpnProtocols: readonly string[];
  /** Checked between batches: true ends the warm-up early. */
  readonly stopped?: () => boolean;
}

export interface WarmUpResult {
  /** Handshakes completed per path warmed. */
  readonly handshakes: Partial<Record<WarmUpPath, number>>;
  /** Paths that stopped early: a handshake that would wait or failed (the reason is not known here). */
  readonly incomplete: readonly WarmUpPath[];
  /** Kinds of client a path's server could not serve and that were left out, the others taking their share (e.g. TLS 1.2 with an Ed25519 certificate). */
  readonly leftOut: ReadonlyArray<{ readonly path: WarmUpPath; readonly kind: WarmUpKind; readonly error: string }>;
  readonly cpuMs: number;
  readonly wallMs: number;
}

/** Handshakes per batch: a few ms of CPU, after which the event loop runs (signals, timers) and the paths take turns. */
const BATCH = 4;

/** Which of our stack's paths serve clients with this bundle and configuration. */
export function warmUpPaths(material: ServingMaterial, certificateEngine: TlsEngine, keylessConfigured: boolean): WarmUpPath[] {
  const paths: WarmUpPath[] = [];
  if (material.credentials.entries.length > 0) paths.push('dc');
  if (material.certificateKey) {
    if (certificateEngine === 'ours') paths.push('certificate');
  } else if (keylessConfigured) {
    paths.push('keyless');
  }
  return paths;
}

export async function warmUpSidecar(o: SidecarWarmUpOptions): Promise<WarmUpResult> {
  const started = performance.now();
  const cpu = process.cpuUsage();
  const paths = warmUpPaths(o.material, o.certificateEngine, o.keylessConfigured);
  const handshakes: Partial<Record<WarmUpPath, number>> = {};
  const incomplete: WarmUpPath[] = [];
  const leftOut: Array<{ path: WarmUpPath; kind: WarmUpKind; error: string }> = [];
  const lanes: Array<{ path: WarmUpPath; run: Runner; left: number }> = [];
  for (const [i, path] of paths.entries()) {
    // An even share each, the remainder to the first paths.
    const share = Math.floor(o.handshakes / paths.length) + (i < o.handshakes % paths.length ? 1 : 0);
    if (share === 0) continue;
    const run = await pathRunner(path, o);
    if (!run) {
      incomplete.push(path);
      continue;
    }
    handshakes[path] = 0;
    lanes.push({ path, run, left: share });
  }
  while (lanes.length > 0 && !o.stopped?.()) {
    for (const lane of [...lanes]) {
      const asked = Math.min(BATCH, lane.left);
      const { done, failed } = lane.run(asked);
      for (const f of failed) leftOut.push({ path: lane.path, ...f });
      handshakes[lane.path]! += done;
      lane.left -= done;
      if (done < asked) incomplete.push(lane.path);
      if (done < asked || lane.left === 0) lanes.splice(lanes.indexOf(lane), 1);
    }
    await yieldToEventLoop();
  }
  const used = process.cpuUsage(cpu);
  return { handshakes, incomplete, leftOut, cpuMs: (used.user + used.system) / 1000, wallMs: performance.now() - started };
}

/** Runs `n` warm-up handshakes of one path: how many completed, and the kinds of client newly left out. */
type Runner = (n: number) => { done: number; failed: ReadonlyArray<{ kind: WarmUpKind; error: string }> };

/** The runner of one path; undefined when the path cannot be warmed here. */
async function pathRunner(path: WarmUpPath, o: SidecarWarmUpOptions): Promise<Runner | undefined> {
  const store = new MaterialStore();
  let keyless: Signer | undefined;
  if (path === 'keyless') {
    const throwaway = await throwawayMaterial(o.material);
    if (!throwaway) return undefined;
    store.replace(throwaway.material);
    keyless = throwaway.signer;
  } else {
    store.replace(o.material);
  }
  if (path === 'dc') store.replace(dcOnly(o.material));
  // TLS 1.2 reaches our stack only through keyless (with tls.key, node:tls serves it).
  const config = createServerConfig({
    store,
    keylessFor: keyless ? () => keyless : undefined,
    alpnProtocols: o.alpnProtocols,
    ...(path === 'keyless' ? {} : { minVersion: 'TLSv1.3' as const }),
  });
  const servername = warmUpServerName(o.material);
  const client = {
    ...(path === 'dc' ? { serverCredentialHooks: delegatedCredentialPeerHooks({ peer: 'server', offer: dcSchemesOf(o.material) }) } : {}),
    ...(servername !== undefined ? { servername } : {}),
  };
  // One warm-up carried across the batches: the kinds of client take turns over the whole count,
  // and a kind this server cannot serve fails once, not once per batch.
  const warmUp = new ServerWarmUp(config, client);
  return (n) => {
    const r = warmUp.run(n);
    return { done: r.done, failed: r.failed };
  };
}

/**
 * The bundle without its fallback: a warm-up handshake of a DC client that no DC serves fails
 * instead of signing with the certificate key (or, with the keyless signer left out too, asking
 * the key server).
 */
export function dcOnly(material: ServingMaterial): ServingMaterial {
  return { ...material, certificateKey: undefined };
}

/**
 * What a warm-up client offers in extension 34: every scheme the bundle's DCs sign with and are
 * signed with (an RSA certificate's DCs are signed with rsa_pss_rsae_*, which no default list
 * holds and which the server wants there too).
 */
export function dcSchemesOf(material: ServingMaterial): number[] {
  return [...new Set(material.credentials.entries.flatMap((e) => [e.dcCertVerifyAlgorithm, e.algorithm]))];
}

/**
 * The server name warm-up clients send, as real clients send SNI and its matching is on every
 * connection's path: the first of the certificate's DNS names (a wildcard's `*` made a label)
 * that the certificate's names cover by the one matcher the handshake uses, so the DC path is
 * chosen as for a real client. None when no name qualifies (no DNS names; only wildcards the
 * matcher refuses, such as `*.internal` or `api-*.example.com`): no SNI is always covered.
 */
export function warmUpServerName(material: ServingMaterial): string | undefined {
  const names = material.credentials.names;
  for (const name of names.dnsNames) {
    const candidate = name.startsWith('*.') ? `warm-up${name.slice(1)}` : name;
    if (matchesServerName(names, candidate)) return candidate;
  }
  return undefined;
}

/**
 * A material like the bundle's for non-DC clients through keyless, but with a throwaway
 * certificate whose key signs in memory: the same handshake code, no key server. Undefined for a
 * key type made here in no reasonable time or not at all (RSA-PSS keys).
 */
async function throwawayMaterial(real: ServingMaterial): Promise<{ material: ServingMaterial; signer: Signer } | undefined> {
  const publicKey = new X509Certificate(real.credentials.certificateChain[0]!).publicKey;
  const key = await throwawayKey(publicKey);
  if (!key) return undefined;
  const pem = derToPem(selfSignedCertificate(key.privateKey, key.publicKey), 'CERTIFICATE');
  const material = validateServingMaterial('warm-up', { 'tls.crt': new TextEncoder().encode(pem) }, { keylessConfigured: true });
  return { material, signer: createKeySigner(key.privateKey) };
}

const generate = promisify(generateKeyPair);

function throwawayKey(like: KeyObject): Promise<{ privateKey: KeyObject; publicKey: KeyObject }> | undefined {
  const details = like.asymmetricKeyDetails ?? {};
  switch (like.asymmetricKeyType) {
    case 'ec':
      return details.namedCurve ? generate('ec', { namedCurve: details.namedCurve }) : undefined;
    case 'ed25519':
      return generate('ed25519');
    case 'rsa':
      // On the thread pool: an RSA key takes tens of ms to make. Always 2048 bits: the warm-up
      // needs the key type's code paths, not its size, and an 8192-bit key would take seconds
      // to make before the ports open.
      return generate('rsa', { modulusLength: 2048 });
    default:
      return undefined;
  }
}

/** ecdsa-with-SHA256, sha256WithRSAEncryption, Ed25519, commonName (DER OIDs with their tag). */
const OID = {
  ecdsaSha256: Uint8Array.of(0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02),
  rsaSha256: Uint8Array.of(0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b),
  ed25519: Uint8Array.of(0x06, 0x03, 0x2b, 0x65, 0x70),
  commonName: Uint8Array.of(0x06, 0x03, 0x55, 0x04, 0x03),
};
const NULL = Uint8Array.of(0x05, 0x00);
const UTF8_STRING = 0x0c;
const SET = 0x31;
const EXPLICIT_0 = 0xa0;

/** A minimal X.509 v3 certificate for `publicKey`, self-signed, valid for the next hour. */
export function selfSignedCertificate(privateKey: KeyObject, publicKey: KeyObject, now = new Date()): Uint8Array {
  const type = privateKey.asymmetricKeyType;
  const algorithm =
    type === 'ec'
      ? encodeTlv(DerTag.sequence, OID.ecdsaSha256)
      : type === 'rsa'
        ? encodeTlv(DerTag.sequence, OID.rsaSha256, NULL)
        : encodeTlv(DerTag.sequence, OID.ed25519);
  const name = encodeTlv(DerTag.sequence, encodeTlv(SET, encodeTlv(DerTag.sequence, OID.commonName, encodeTlv(UTF8_STRING, new TextEncoder().encode('dc-operator sidecar warm-up')))));
  const utcTime = (d: Date): Uint8Array => encodeTlv(DerTag.utcTime, new TextEncoder().encode(d.toISOString().replace(/[-:T]/g, '').slice(2, 14) + 'Z'));
  const tbs = encodeTlv(
    DerTag.sequence,
    encodeTlv(EXPLICIT_0, encodeUnsignedInteger(2n)),
    encodeUnsignedInteger(1n),
    algorithm,
    name,
    encodeTlv(DerTag.sequence, utcTime(new Date(now.getTime() - 60_000)), utcTime(new Date(now.getTime() + 3_600_000))),
    name,
    new Uint8Array(publicKey.export({ type: 'spki', format: 'der' })),
  );
  const signature = sign(type === 'ed25519' ? null : 'sha256', tbs, privateKey);
  return encodeTlv(DerTag.sequence, tbs, algorithm, encodeTlv(DerTag.bitString, Uint8Array.of(0), signature));
}

export interface ConnectionWarmUpResult {
  readonly connections: number;
  readonly failed: number;
  /** Why the first failed connection failed. */
  readonly firstFailure?: string;
  readonly cpuMs: number;
  readonly wallMs: number;
}

/** Concurrent warm-up connections: a few, as clients come, without queueing the whole budget at once. */
const CONNECTION_LANES = 4;
/** Each warm-up connection's deadline, and the whole warm-up's: it must never hold readiness for long. */
const CONNECTION_TIMEOUT_MS = 2_000;
const CONNECTION_WARM_UP_BUDGET_MS = 10_000;

/**
 * Loopback connections of DC clients through the code real connections take: a listener of the
 * same terminator (ClientHello peek, routing, our engine on node:net sockets, the proxy) on an
 * ephemeral 127.0.0.1 port (::1 on a host without IPv4 loopback), proxying to an echo server of its own there (never the
 * configured upstream: the application may not be up, and warm-up bytes must not reach it). The
 * clients are our own DC clients in this thread (warm-up-client.ts).
 *
 * Only the DC path is warmed this way, and the listener has no fallback (no keyless signer, no
 * certificate key): a connection no DC serves fails rather than ask the key server to sign or sign
 * with the certificate key. The clients offer the schemes the bundle's DCs are signed with. The warm-up counts into metrics, a tracker and a report of its own,
 * so /metrics and the serving summary say nothing of it. Bounded: `n` connections, each with a
 * deadline, the whole within CONNECTION_WARM_UP_BUDGET_MS; a failed connection ends it. Every
 * listener and socket it opened is closed when it resolves.
 */
export async function warmUpConnections(n: number, terminator: TerminatorOptions, stopped?: () => boolean): Promise<ConnectionWarmUpResult> {
  const started = performance.now();
  const cpu = process.cpuUsage();
  const material = terminator.store.current;
  if (n <= 0 || !material || material.credentials.entries.length === 0) return { connections: 0, failed: 0, cpuMs: 0, wallMs: 0 };
  // The stand-in application: echoes, on loopback, and cut with everything else at the end.
  const echoed = new Set<Socket>();
  const echo = createServer({ allowHalfOpen: true }, (s) => {
    echoed.add(s);
    s.once('close', () => echoed.delete(s));
    s.on('error', () => undefined).pipe(s);
  });
  const host = await listenOnLoopback(echo);
  const tracker = new ConnectionTracker(CONNECTION_LANES * 2, CONNECTION_LANES * 2);
  // DCs only, no fallback at all: a warm-up connection no DC serves fails; it never reaches the
  // key server or the certificate key.
  const store = new MaterialStore();
  store.replace(dcOnly(material));
  let result: WarmUpClientResult;
  try {
    const listener = await listen(host, 0, {
      ...terminator,
      store,
      policy: { certificateEngine: 'ours', keylessFor: undefined },
      ours: createOursEngine({ store, keylessFor: undefined, alpnProtocols: terminator.alpnProtocols }),
      metrics: new SidecarMetrics(store, new SidecarStatus()),
      tracker,
      upstream: { ...terminator.upstream, host, port: (echo.address() as AddressInfo).port },
      report: new ServingReport(),
      // Its own quiet log: a warm-up connection's trouble (naming the echo port as "the
      // application") is no operator's business; the summary main.ts logs carries the reason.
      log: debugOnly(terminator.log),
    });
    try {
      // The kinds of client the in-memory warm-up plays (key shares, suites, SNI, ALPN), TLS 1.3
      // only: DC clients.
      const servername = warmUpServerName(material);
      const clients = warmUpClients(createServerConfig({ store, keylessFor: undefined, alpnProtocols: terminator.alpnProtocols, minVersion: 'TLSv1.3' }), {
        serverCredentialHooks: delegatedCredentialPeerHooks({ peer: 'server', offer: dcSchemesOf(material) }),
        ...(servername !== undefined ? { servername } : {}),
      }).map((k) => k.config);
      result = await driveWarmUpConnections({ host, port: listener.port, connections: n, lanes: CONNECTION_LANES, timeoutMs: CONNECTION_TIMEOUT_MS, budgetMs: CONNECTION_WARM_UP_BUDGET_MS, clients, ...(stopped ? { stopped } : {}) });
    } finally {
      // Nothing of the warm-up outlives it: what a client left open is cut, not waited for, and
      // every connection's handling runs to its end, its application socket closed (one still
      // connecting to the echo server finds its client gone and closes).
      listener.stopAccepting();
      await tracker.drain(new Date());
      // The proxy's application legs end when the stand-in application's sockets do (a TLS
      // stream over a cut socket would otherwise hold its pair until the idle timeout).
      for (const s of echoed) s.destroy();
      await listener.settled();
      await closeServer(listener.server);
    }
  } finally {
    for (const s of echoed) s.destroy();
    await closeServer(echo);
  }
  const used = process.cpuUsage(cpu);
  return { ...result, cpuMs: (used.user + used.system) / 1000, wallMs: performance.now() - started };
}

/** Listens on an ephemeral loopback port: 127.0.0.1, or ::1 on a host without IPv4 loopback. */
async function listenOnLoopback(server: Server): Promise<'127.0.0.1' | '::1'> {
  try {
    await listenOn(server, '127.0.0.1');
    return '127.0.0.1';
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRNOTAVAIL') throw err;
  }
  await listenOn(server, '::1');
  return '::1';
}

function listenOn(server: Server, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** The warm-up listener's log: prefixed, and every level but error as debug. */
function debugOnly(log: TerminatorOptions['log']): TerminatorOptions['log'] {
  const debug = (message: string, meta?: Record<string, unknown>): void => log.debug(`connection warm-up: ${message}`, meta);
  // Errors stay errors: a handler that throws during the warm-up would throw for real clients too.
  const error = (message: string, meta?: Record<string, unknown>): void => log.error(`connection warm-up: ${message}`, meta);
  return { error, warn: debug, info: debug, debug };
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}
