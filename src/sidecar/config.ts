/**
 * `dc-operator sidecar` configuration: flags, each with an environment variable, validated up
 * front by small functions whose errors name the flag. Precedence: flag, then
 * environment, then default. The command line itself is parsed by the CLI framework like every
 * other command's (src/cli/commands/sidecar.ts declares these flags from the table below, and
 * its --help shows them); this module turns the values into a SidecarConfig.
 */
import type { TlsEngine } from './metrics.js';
import { DEFAULT_CERTIFICATE_ENGINE } from './router.js';

export interface SidecarConfig {
  readonly dcDir: string;
  /** '' = all interfaces. */
  readonly listenHost: string;
  readonly listenPort: number;
  readonly upstreamHost: string;
  readonly upstreamPort: number;
  /** '' = all interfaces. */
  readonly metricsHost: string;
  readonly metricsPort: number;
  readonly maxConnections: number;
  /** 0: no per-source limit. */
  readonly maxConnectionsPerSource: number;
  readonly idleTimeoutMs: number;
  readonly handshakeTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly drainTimeoutMs: number;
  readonly reloadDebounceMs: number;
  readonly recheckIntervalMs: number;
  readonly certificateEngine: TlsEngine;
  readonly alpnProtocols: readonly string[];
  /** From the --keyless-* flags: overrides the bundle's keyless configuration. */
  readonly keyless: KeylessConfig | undefined;
  /** Keyless deadline per signature, for the bundle's configuration too. */
  readonly keylessTimeoutMs: number;
  /** Verify one key-server signature in this many (plus the first per connection, swap, failure). */
  readonly keylessVerifyOneIn: number;
  /** How often the serving summary is logged (0: never). */
  readonly reportIntervalMs: number;
  /** In-memory handshakes of our stack against itself after start (0: no warm-up). */
  readonly warmUpHandshakes: number;
  readonly warmUpConnections: number;
  readonly logLevel: string;
}

export interface KeylessConfig {
  readonly address: string;
  readonly caFile: string;
  readonly clientCertFile: string;
  readonly clientKeyFile: string;
  readonly timeoutMs: number;
}

export interface FlagSpec {
  readonly flag: string;
  readonly env: string;
  readonly value: string;
  readonly defaultValue?: string;
  readonly help: string;
  /** Old flag and variable names, accepted for one release with a warning. */
  readonly deprecatedFlags?: readonly string[];
  readonly deprecatedEnv?: readonly string[];
}

/** Every flag with its variable and default: the single table the command, --help and the environment use. */
export const SIDECAR_FLAGS = [
  { flag: 'dc-dir', env: 'DC_SIDECAR_DC_DIR', value: 'DIR', defaultValue: '/var/run/dc-operator/credentials', help: "the serving bundle (the DelegatedCredential's output Secret, kubelet ..data layout or a plain directory): tls.crt, <algorithm>.cred/.key, fallback, keyless.address, keyless-ca.crt, keyless-client.crt/.key, tls.key only with fallback CertificateKey" },
  { flag: 'address', env: 'DC_SIDECAR_ADDRESS', value: 'HOST', defaultValue: '', help: 'TLS listen address (empty: all interfaces, IPv6 and IPv4)' },
  { flag: 'port', env: 'DC_SIDECAR_PORT', value: 'PORT', defaultValue: '8443', help: 'TLS port (0: any free port)' },
  { flag: 'listen', env: 'DC_SIDECAR_LISTEN', value: '[HOST]:PORT', help: 'deprecated: use --address and --port (accepted for one release)' },
  { flag: 'upstream', env: 'DC_SIDECAR_UPSTREAM', value: '[HOST:]PORT', defaultValue: '127.0.0.1:8080', help: 'the application, plaintext TCP' },
  { flag: 'metrics-port', env: 'DC_SIDECAR_METRICS_PORT', value: 'PORT', defaultValue: '15300', help: '/healthz, /readyz and /metrics over HTTP' },
  { flag: 'metrics-address', env: 'DC_SIDECAR_METRICS_ADDRESS', value: 'HOST', defaultValue: '', help: 'bind address of the metrics port (empty: all interfaces, IPv6 and IPv4)', deprecatedFlags: ['metrics-host'], deprecatedEnv: ['DC_SIDECAR_METRICS_HOST'] },
  { flag: 'max-connections', env: 'DC_SIDECAR_MAX_CONNECTIONS', value: 'N', defaultValue: '10000', help: 'open client connections at most; further ones are closed at once' },
  // A quarter of --max-connections: one client address cannot take the whole table, and a proxy
  // hop in front that all clients share (an ingress replica in TLS passthrough, a node doing
  // SNAT) still carries 2,500 connections to this pod. Trade-off: docs/operations.md.
  { flag: 'max-connections-per-source', env: 'DC_SIDECAR_MAX_CONNECTIONS_PER_SOURCE', value: 'N', defaultValue: '2500', help: 'open client connections from one IP address at most; further ones are closed at once (0: no per-source limit)' },
  { flag: 'idle-timeout', env: 'DC_SIDECAR_IDLE_TIMEOUT', value: 'DURATION', defaultValue: '5m', help: 'close a connection with no bytes either way for this long (0: never)' },
  { flag: 'handshake-timeout', env: 'DC_SIDECAR_HANDSHAKE_TIMEOUT', value: 'DURATION', defaultValue: '10s', help: 'deadline for the ClientHello and the handshake' },
  { flag: 'connect-timeout', env: 'DC_SIDECAR_CONNECT_TIMEOUT', value: 'DURATION', defaultValue: '5s', help: 'deadline for connecting to the application' },
  { flag: 'drain-timeout', env: 'DC_SIDECAR_DRAIN_TIMEOUT', value: 'DURATION', defaultValue: '20s', help: 'on SIGTERM: stop accepting, let open connections finish for this long, then close them' },
  { flag: 'reload-debounce', env: 'DC_SIDECAR_RELOAD_DEBOUNCE', value: 'DURATION', defaultValue: '200ms', help: 'quiet time after a ..data change before reloading' },
  { flag: 'recheck-interval', env: 'DC_SIDECAR_RECHECK_INTERVAL', value: 'DURATION', defaultValue: '1m', help: 'periodic re-read of the directory, in case a watch event was missed (0: off)' },
  { flag: 'certificate-engine', env: 'DC_SIDECAR_CERTIFICATE_ENGINE', value: 'ours|node', defaultValue: DEFAULT_CERTIFICATE_ENGINE, help: 'engine for TLS 1.3 clients served with tls.key (default chosen by bench/results/sidecar-routing.md)' },
  { flag: 'alpn', env: 'DC_SIDECAR_ALPN', value: 'LIST', defaultValue: '', help: 'ALPN protocols to accept, comma-separated, e.g. h2,http/1.1 (empty: no ALPN)' },
  { flag: 'keyless-address', env: 'DC_SIDECAR_KEYLESS_ADDRESS', value: 'HOST:PORT', help: "key server for non-DC clients (Keyless SSL pull); the four --keyless-* flags go together and override the bundle's keyless.address, keyless-ca.crt and keyless-client.crt/.key (read once at startup)" },
  { flag: 'keyless-ca', env: 'DC_SIDECAR_KEYLESS_CA', value: 'FILE', help: "CA bundle for the key server's certificate (overrides the bundle)" },
  { flag: 'keyless-client-cert', env: 'DC_SIDECAR_KEYLESS_CLIENT_CERT', value: 'FILE', help: 'our client certificate for the key server, mTLS (overrides the bundle)' },
  { flag: 'keyless-client-key', env: 'DC_SIDECAR_KEYLESS_CLIENT_KEY', value: 'FILE', help: 'its private key (overrides the bundle)' },
  { flag: 'keyless-timeout', env: 'DC_SIDECAR_KEYLESS_TIMEOUT', value: 'DURATION', defaultValue: '2s', help: 'per-signature deadline at the key server (a non-DC client gets an alert after it, never a hang)' },
  // The client verifies CertificateVerify itself; this check only diagnoses a wrong key server
  // (reasoning: docs/architecture.md, "Keyless signatures").
  { flag: 'keyless-verify-one-in', env: 'DC_SIDECAR_KEYLESS_VERIFY_ONE_IN', value: 'N', defaultValue: '32', help: "verify one key-server signature in N against the certificate, and always the first on each key-server connection, after each bundle swap and after a failure; a bad one fails its handshake, is counted (dc_sidecar_keyless_bad_signatures_total) and makes the sidecar verify every signature for a while (1: verify all)" },
  { flag: 'report-interval', env: 'DC_SIDECAR_REPORT_INTERVAL', value: 'DURATION', defaultValue: '30s', help: 'log one info line per interval with how clients were served and refused, and the fallback state (0: never)' },
  { flag: 'warm-up-handshakes', env: 'DC_SIDECAR_WARM_UP_HANDSHAKES', value: 'N', defaultValue: '200', help: 'after start, this many in-memory handshakes of our TLS stack against itself, shared between the paths this bundle serves (DC, and the fallback: keyless with a throwaway in-memory key, never the key server), so the first clients do not pay for compiling the handshake code; runs before the TLS and metrics ports open, so readiness waits for it (0: no warm-up; at most 10000)' },
  { flag: 'warm-up-connections', env: 'DC_SIDECAR_WARM_UP_CONNECTIONS', value: 'N', defaultValue: '100', help: 'after the in-memory warm-up, when the bundle has DCs: this many DC connections through the real connection path (ClientHello peek, routing, our engine on sockets, the proxy, metrics) on a listener of its own on loopback (127.0.0.1, or ::1 without IPv4 loopback), proxied to an echo server of its own (never the application, the certificate key or the key server), so the first clients do not pay for compiling and optimising the socket path either; before the TLS and metrics ports open, so readiness waits for it; a failure is logged and the sidecar starts anyway (0: none; at most 10000)' },
  { flag: 'log-level', env: 'DC_SIDECAR_LOG_LEVEL', value: 'LEVEL', defaultValue: 'info', help: 'error, warn, info or debug' },
] as const satisfies readonly FlagSpec[];

const FLAGS = SIDECAR_FLAGS;
export type FlagName = (typeof FLAGS)[number]['flag'];
export type FlagValues = Readonly<Partial<Record<FlagName, string>>>;

/** How each client is served: the router's table (router.ts), for --help and the CLI. */
export const ROUTING_TABLE: readonly string[] = [
  'client                                     served by',
  'TLS 1.3, supports DCs (one of ours fits)   our stack with the delegated credential',
  'TLS 1.3, other; fallback CertificateKey    the certificate key tls.key (--certificate-engine)',
  'TLS 1.3, other; fallback Keyless           our stack, CertificateVerify signed by the key server',
  '                                           (keyless.* in the bundle, or the --keyless-* flags,',
  '                                           which win); key server unreachable: handshake_failure',
  '                                           at once or an alert within --keyless-timeout',
  'TLS 1.3, other; fallback None              handshake_failure (DC clients only, said at startup)',
  'TLS 1.3, other; no fallback in the bundle  handshake_failure, with a warning at startup',
  'TLS 1.2 only, tls.key mounted              node:tls with the certificate key (measured cheaper)',
  'TLS 1.2 only, keyless usable               our stack (TLS 1.2), ServerKeyExchange signed by the',
  '                                           key server',
  'TLS 1.2 only, otherwise                    protocol_version',
];

export class ConfigError extends Error {
  constructor(readonly flag: string, message: string) {
    super(`--${flag}: ${message}`);
    this.name = 'ConfigError';
  }
}

/**
 * The validated configuration for flag values (without the leading --) and an environment: what
 * `dc-operator sidecar` runs with once its command line is parsed. Tests and benches that start a
 * sidecar in-process build theirs with it.
 */
export function sidecarConfig(
  given: Readonly<Partial<Record<FlagName, string>>>,
  env: Readonly<Record<string, string | undefined>> = {},
  warn?: (line: string) => void,
): SidecarConfig {
  return validateConfig(resolveFlagValues(given, env, warn));
}

/**
 * Fills in what the command line left out: the flag's environment variable, then its default.
 * A deprecated variable counts as its new one, with one warning; both set differently is an error.
 */
export function resolveFlagValues(
  given: Readonly<Partial<Record<string, string>>>,
  env: Readonly<Record<string, string | undefined>>,
  warn: (line: string) => void = () => {},
): FlagValues {
  const values: Partial<Record<string, string>> = { ...given };
  splitDeprecatedListen(values, env, warn);
  for (const f of FLAGS as readonly FlagSpec[]) {
    let fromEnv = env[f.env];
    for (const old of f.deprecatedEnv ?? []) {
      const oldValue = env[old];
      if (oldValue === undefined) continue;
      warn(`warning: ${old} is deprecated and will be removed in the next release; use ${f.env}`);
      if (fromEnv !== undefined && fromEnv !== oldValue) throw new ConfigError(f.flag, `${old} (deprecated) and ${f.env} are both set to different values; keep ${f.env} and unset ${old}`);
      fromEnv = oldValue;
    }
    if (values[f.flag] === undefined && fromEnv !== undefined) values[f.flag] = fromEnv;
    if (values[f.flag] === undefined && f.defaultValue !== undefined) values[f.flag] = f.defaultValue;
  }
  return values as FlagValues;
}

/**
 * The deprecated --listen [HOST]:PORT (and DC_SIDECAR_LISTEN) fills --address and --port, with one
 * warning each; a different --address/--port (or DC_SIDECAR_ADDRESS/PORT) alongside is an error.
 */
function splitDeprecatedListen(values: Partial<Record<string, string>>, env: Readonly<Record<string, string | undefined>>, warn: (line: string) => void): void {
  const flag = values['listen'];
  delete values['listen'];
  const sources = [
    { text: flag, old: '--listen', address: '--address', port: '--port', current: (k: string) => values[k] },
    { text: env['DC_SIDECAR_LISTEN'], old: 'DC_SIDECAR_LISTEN', address: 'DC_SIDECAR_ADDRESS', port: 'DC_SIDECAR_PORT', current: (k: string) => env[k === 'address' ? 'DC_SIDECAR_ADDRESS' : 'DC_SIDECAR_PORT'] },
  ];
  for (const s of sources) {
    if (s.text === undefined) continue;
    warn(`warning: ${s.old} is deprecated and will be removed in the next release; use ${s.address} and ${s.port}`);
    const { host, port } = validateListen('listen', s.text);
    for (const [key, value, name] of [['address', host, s.address], ['port', String(port), s.port]] as const) {
      const current = s.current(key);
      if (current !== undefined && current !== value) throw new ConfigError(key, `${s.old} (deprecated) and ${name} are both given with different values; keep ${name} and drop ${s.old}`);
      values[key] ??= value;
    }
  }
}

// --- validators: each names its flag ---------------------------------------------------------

export function validatePort(flag: string, text: string, allowZero = true): number {
  if (!/^\d+$/.test(text)) throw new ConfigError(flag, `"${text}" is not a port number`);
  const n = Number(text);
  if (n > 65535 || (!allowZero && n === 0)) throw new ConfigError(flag, `port ${n} is out of range (${allowZero ? 0 : 1}..65535)`);
  return n;
}

/**
 * `[HOST]:PORT`; an empty host ('') means all interfaces, left to node (`::` where IPv6 exists,
 * so dual-stack pods are served on both families). IPv6 as `[::1]:8443`.
 */
export function validateListen(flag: string, text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d+)$/.exec(text);
  if (!m) throw new ConfigError(flag, `"${text}" is not [HOST]:PORT (e.g. :8443 or 127.0.0.1:8443)`);
  const host = m[1] ?? m[2] ?? '';
  return { host, port: validatePort(flag, m[3]!) };
}

/** `[HOST:]PORT`, the host defaulting to 127.0.0.1. */
export function validateUpstream(flag: string, text: string): { host: string; port: number } {
  if (/^\d+$/.test(text)) return { host: '127.0.0.1', port: validatePort(flag, text, false) };
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d+)$/.exec(text);
  if (!m) throw new ConfigError(flag, `"${text}" is not [HOST:]PORT (e.g. 8080 or 127.0.0.1:8080)`);
  return { host: m[1] ?? m[2]!, port: validatePort(flag, m[3]!, false) };
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `250ms`, `10s`, `5m`, `1h30m`, or `0`. */
export function validateDuration(flag: string, text: string): number {
  if (text === '0') return 0;
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== text) {
    throw new ConfigError(flag, `"${text}" is not a duration (e.g. 500ms, 10s, 5m, 1h30m)`);
  }
  return Math.round(parts.reduce((sum, p) => sum + Number(p[1]) * UNITS[p[2]!]!, 0));
}

function positiveDuration(flag: string, text: string): number {
  const ms = validateDuration(flag, text);
  if (ms === 0) throw new ConfigError(flag, 'must be more than 0');
  return ms;
}

/** A whole number, at least `min` (1 unless 0 has a meaning, such as "no limit"). */
export function validateWholeNumber(flag: string, text: string, min = 1, max = Number.MAX_SAFE_INTEGER): number {
  if (!/^\d+$/.test(text) || Number(text) < min) throw new ConfigError(flag, `"${text}" is not a whole number of at least ${min}`);
  if (Number(text) > max) throw new ConfigError(flag, `${text} is more than the maximum, ${max}`);
  return Number(text);
}

/**
 * The most warm-up handshakes or connections: readiness waits for the warm-up, and a few hundred
 * already do all it can (bench/results/sidecar-perf.md); a typo must not hold a pod unready for
 * minutes.
 */
export const MAX_WARM_UP = 10_000;

export function validateEngine(flag: string, text: string): TlsEngine {
  if (text !== 'ours' && text !== 'node') throw new ConfigError(flag, `"${text}" is not one of ours, node`);
  return text;
}

export function validateAlpn(flag: string, text: string): string[] {
  if (text.trim() === '') return [];
  const list = text.split(',').map((s) => s.trim());
  for (const p of list) {
    if (p.length === 0 || p.length > 255 || !/^[\x21-\x7e]+$/.test(p)) throw new ConfigError(flag, `"${p}" is not an ALPN protocol name`);
  }
  return list;
}

export function validateLogLevel(flag: string, text: string): string {
  if (!['error', 'warn', 'info', 'debug'].includes(text)) throw new ConfigError(flag, `"${text}" is not one of error, warn, info, debug`);
  return text;
}

/** The keyless flags come as a group: all of address, CA, client cert and key, or none. */
export function validateKeyless(values: FlagValues): KeylessConfig | undefined {
  const group = ['keyless-address', 'keyless-ca', 'keyless-client-cert', 'keyless-client-key'] as const;
  const given = group.filter((f) => values[f] !== undefined && values[f] !== '');
  if (given.length === 0) return undefined;
  const missing = group.find((f) => !given.includes(f));
  if (missing) throw new ConfigError(missing, `required with --${given[0]!} (the keyless flags go together)`);
  return {
    address: values['keyless-address']!,
    caFile: values['keyless-ca']!,
    clientCertFile: values['keyless-client-cert']!,
    clientKeyFile: values['keyless-client-key']!,
    timeoutMs: validateDuration('keyless-timeout', values['keyless-timeout'] ?? '2s'),
  };
}

export function validateConfig(values: FlagValues): SidecarConfig {
  const v = (f: FlagName): string => values[f] ?? '';
  if (v('dc-dir') === '') throw new ConfigError('dc-dir', 'is required');
  const listen = { host: v('address').replace(/^\[(.*)\]$/, '$1'), port: validatePort('port', v('port')) };
  const upstream = validateUpstream('upstream', v('upstream'));
  const metricsPort = validatePort('metrics-port', v('metrics-port'));
  if (metricsPort !== 0 && metricsPort === listen.port) throw new ConfigError('metrics-port', `${metricsPort} is also the TLS --port`);
  const handshakeTimeoutMs = validateDuration('handshake-timeout', v('handshake-timeout'));
  if (handshakeTimeoutMs === 0) throw new ConfigError('handshake-timeout', 'must be more than 0');
  const connectTimeoutMs = validateDuration('connect-timeout', v('connect-timeout'));
  if (connectTimeoutMs === 0) throw new ConfigError('connect-timeout', 'must be more than 0');
  return {
    dcDir: v('dc-dir'),
    listenHost: listen.host,
    listenPort: listen.port,
    upstreamHost: upstream.host,
    upstreamPort: upstream.port,
    metricsHost: v('metrics-address'),
    metricsPort,
    maxConnections: validateWholeNumber('max-connections', v('max-connections')),
    maxConnectionsPerSource: validateWholeNumber('max-connections-per-source', v('max-connections-per-source'), 0),
    idleTimeoutMs: validateDuration('idle-timeout', v('idle-timeout')),
    handshakeTimeoutMs,
    connectTimeoutMs,
    drainTimeoutMs: validateDuration('drain-timeout', v('drain-timeout')),
    reloadDebounceMs: validateDuration('reload-debounce', v('reload-debounce')),
    recheckIntervalMs: validateDuration('recheck-interval', v('recheck-interval')),
    certificateEngine: validateEngine('certificate-engine', v('certificate-engine')),
    alpnProtocols: validateAlpn('alpn', v('alpn')),
    keyless: validateKeyless(values),
    keylessTimeoutMs: positiveDuration('keyless-timeout', v('keyless-timeout')),
    keylessVerifyOneIn: validateWholeNumber('keyless-verify-one-in', v('keyless-verify-one-in')),
    reportIntervalMs: validateDuration('report-interval', v('report-interval')),
    warmUpHandshakes: validateWholeNumber('warm-up-handshakes', v('warm-up-handshakes'), 0, MAX_WARM_UP),
    warmUpConnections: validateWholeNumber('warm-up-connections', v('warm-up-connections'), 0, MAX_WARM_UP),
    logLevel: validateLogLevel('log-level', v('log-level')),
  };
}
