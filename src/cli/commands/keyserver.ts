import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { defineCommand, type CommandContext } from '../framework/command.js';
import { CommandFailed, InputError, UsageError } from '../framework/errors.js';
import { resolvePath } from '../framework/files.js';
import { integerFlag, ipFlag } from '../framework/flags.js';
import {
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_MAX_CONNECTIONS_PER_SOURCE,
  DEFAULT_MAX_HANDSHAKING_CONNECTIONS,
  DEFAULT_MAX_HANDSHAKING_PER_SOURCE,
  startKeyServer,
  type KeyServer,
} from '../../keyless/server.js';
import { FileGrantAuthorizer, KeyFileGrantError, parseFileGrant } from '../../keyserver/file-grants.js';
import { LOG_LINES_PER_WINDOW } from '../../net/log-limiter.js';
import { createJsonLog } from '../../net/log.js';
import { durationFlag, readCertificateFile } from './tls-inputs.js';
import { namespaceList } from './controller.js';
import { DEFAULT_TRUST_DOMAIN } from '../../operator/api/serving-bundle.js';
import { runClusterKeyServer } from '../../keyserver/main.js';
import { DEFAULT_SIGNATURES_PER_SECOND } from '../../keyserver/rate-limit.js';
import { DEFAULT_TLS_SECRET } from '../../keyserver/serving-secret.js';

const NAMESPACE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DIRECTORY_FLAGS = ['keys', 'ca', 'cert', 'key'] as const;
const CLUSTER_FLAGS = ['kubeconfig', 'namespace', 'operator-namespace', 'cluster-resource-namespace', 'tls-secret', 'trust-domain', 'rate-limit', 'metrics-per-identity'] as const;

import { computeSki, skiHex } from '../../keyless/ski.js';

/**
 * Why --cert and --key are not a pair, naming both files and the SKIs of their public keys (what
 * `openssl x509 -noout -ext subjectKeyIdentifier` shows); undefined when they are, or when either
 * does not parse (node's own error says which). node would only say "key values mismatch".
 */
export function servingPairMismatch(certPem: string, keyPem: string, certFile: string, keyFile: string): string | undefined {
  let certSki: string;
  let keySki: string;
  try {
    certSki = skiHex(computeSki(new X509Certificate(certPem).publicKey));
    keySki = skiHex(computeSki(createPrivateKey(keyPem)));
  } catch {
    return undefined;
  }
  if (certSki === keySki) return undefined;
  return (
    `--cert ${certFile} and --key ${keyFile} are not a pair: the certificate's public key has SKI ${certSki}, the key's ${keySki}. ` +
    'Give the key the certificate was issued for (its leaf comes first in --cert), or the certificate issued for this key'
  );
}

async function readPem(ctx: CommandContext, flag: string, path: string): Promise<string> {
  try {
    return await readFile(resolvePath(ctx.cwd, path), 'utf8');
  } catch (e) {
    throw new InputError(`${flag}: cannot read ${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

function positiveDuration(flag: string, value: string): number {
  const seconds = durationFlag(flag, value);
  if (seconds <= 0) throw new UsageError('must be longer than 0s', flag);
  return seconds;
}

export const keyServer = defineCommand({
  path: ['keyserver'],
  summary: 'Run a Keyless SSL key server (mutual TLS, port 2407) signing with keys from a directory, or from the cluster',
  description: `
Two sources of keys. With --keys DIR (and --ca, --cert, --key files) it is a plain key server.
Without --grant, EVERY client whose certificate chains to --ca may use EVERY key in DIR (it says
so at start): give each client its own CA, or --grant. With --grant IDENTITY=FILE (repeatable) only
the named identities may sign, each with the keys of the files granted to it: the identity is the
client certificate's one URI SAN, FILE a key file's name in DIR (a key rotated in that file stays
granted); any other request is answered "key not found" and logged. A granted file must be a
private key file inside DIR (no certificate, directory, garbage, or link out of DIR), and no key may
be in two files of DIR: checked at start (an error naming the --grant) and with every reload (a bad
new file is refused, the working key kept; a removed granted file revokes its key). With --from-cluster it is the
in-cluster key server of the chart: keys and identities come from the Kubernetes API.

Answers keyless signing requests (the protocol Cloudflare documents for gokeyless) for the private
keys in --keys: PEM or DER PKCS#8 files named *.pem, *.key or *.der, looked up by the SHA-1 Subject
Key Identifier of their public key. The directory is reloaded when it changes; a reload that meets
an invalid file keeps the previous keys (also re-read on SIGHUP and every 30 s). Clients must
present a certificate signed by --ca (one that holds no certificate is refused at start). Stops on
SIGTERM or SIGINT.

Against hostile or broken clients: at most --max-connections open connections, and
--max-connections-per-source from one IP address (0: no such limit), of them at most
--max-handshakes still in their TLS handshake (--max-handshakes-per-source from one address);
further ones are closed at accept. A connection must finish its TLS handshake within --handshake-timeout and is closed after
--idle-timeout without a request. Refusals and failed handshakes are counted by reason in the
metrics and logged at most ${LOG_LINES_PER_WINDOW} lines a minute per reason. Choosing the limits
behind SNAT: docs/operations.md.

--from-cluster: watches DelegatedCredentials, DelegationSigners, ClusterDelegationSigners,
Namespaces and Secrets (all namespaces, or each --namespace). For each DelegatedCredential signed
in-cluster (its certificate Secret's tls.key, or the key Secret of an inCluster signer whose
namespaceSelector allows the namespace) it loads the key into memory, checks it belongs to the
certificate, and lets exactly one client identity sign with it: the URI SAN
spiffe://TRUST-DOMAIN/ns/NAMESPACE/dc/NAME of a sidecar's client certificate. Any other key is
answered "key not found" and logged; spiffe://TRUST-DOMAIN/dc-operator/controller may only ping.
Each tenant (the namespace of the identities) may sign --rate-limit RSA-2048 signatures' worth a second (a P-256 or Ed25519
signature counts one, RSA-4096 seven, RSA-8192 37; over it:
answered "rate limited" 0x80).
Changes are followed; a broken new key never replaces a working one. Its serving certificate, key
and client CA are tls.crt, tls.key and ca.crt of --tls-secret in --operator-namespace, followed on
change; until that Secret exists and is valid, /readyz on --metrics-port (default 9090 here) says
why and no keyless port is open. Signing workers (--workers) are not available in this mode.`,
  exitStatus: {
    0: 'stopped by SIGTERM or SIGINT',
    1: 'could not start (e.g. the port is in use) or failed while running',
  },
  options: {
    keys: { type: 'string', value: 'DIR', description: 'directory of private keys (required without --from-cluster)' },
    grant: {
      type: 'string',
      multiple: true,
      value: 'URI=FILE',
      description: 'with --keys: only this identity (client certificate URI SAN) may sign, with the key(s) in FILE of --keys; repeat it (default: every client of --ca may use every key)',
    },
    ca: { type: 'string', value: 'FILE', description: 'CA certificate(s) (PEM) that client certificates must chain to (required without --from-cluster)' },
    cert: { type: 'string', value: 'FILE', description: 'server certificate chain (PEM; required without --from-cluster)' },
    key: { type: 'string', value: 'FILE', description: 'server private key (PEM; required without --from-cluster)' },
    'from-cluster': { type: 'boolean', description: 'serve the keys of in-cluster signers, read from the Kubernetes API, to the sidecar identities allowed to use them' },
    kubeconfig: { type: 'string', value: 'FILE', description: '--from-cluster: kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)' },
    namespace: { type: 'string', multiple: true, value: 'NS', description: '--from-cluster: watch only this namespace; repeat it, or separate names with commas (default: all)' },
    'operator-namespace': { type: 'string', value: 'NS', description: '--from-cluster: namespace of --tls-secret (default: $POD_NAMESPACE or dc-operator)' },
    'cluster-resource-namespace': { type: 'string', value: 'NS', description: '--from-cluster: namespace of ClusterDelegationSigner key Secrets (default: the operator namespace)' },
    'tls-secret': { type: 'string', value: 'NAME', description: '--from-cluster: Secret with tls.crt, tls.key and ca.crt', default: DEFAULT_TLS_SECRET },
    'trust-domain': { type: 'string', value: 'DOMAIN', description: '--from-cluster: trust domain of the client identities', default: DEFAULT_TRUST_DOMAIN },
    'rate-limit': { type: 'string', value: 'N', description: "--from-cluster: RSA-2048 signatures' worth a second per tenant, i.e. namespace (larger keys count more), bursts of one second (0: no limit)", default: String(DEFAULT_SIGNATURES_PER_SECOND) },
    'metrics-per-identity': { type: 'boolean', description: "--from-cluster: label keyless_server_signatures_total by identity (namespace and DelegatedCredential name) instead of by tenant (namespace): whoever reaches the metrics port reads it" },
    port: { type: 'string', value: 'N', description: 'TLS port', default: '2407' },
    address: { type: 'string', value: 'IP', description: 'address to listen on', default: '0.0.0.0' },
    'metrics-port': { type: 'string', value: 'N', description: 'serve Prometheus metrics on http://ADDRESS:N/metrics (--from-cluster: also /healthz and /readyz; default 9090)' },
    'max-concurrency': { type: 'string', value: 'N', description: 'signing operations at once', default: '64' },
    workers: { type: 'string', value: 'N', description: 'sign on N worker threads (0: on the main thread)', default: '0' },
    'allow-legacy-hashes': { type: 'boolean', description: 'also answer MD5-SHA1 and SHA-1 signing opcodes (refused by default: both hashes have practical collisions)' },
    'max-connections': { type: 'string', value: 'N', description: 'open connections at most, handshaking or not', default: String(DEFAULT_MAX_CONNECTIONS) },
    'max-connections-per-source': {
      type: 'string',
      value: 'N',
      description: 'open connections from one IP address at most (0: no per-source limit)',
      default: String(DEFAULT_MAX_CONNECTIONS_PER_SOURCE),
    },
    'max-handshakes': {
      type: 'string',
      value: 'N',
      description: 'connections still in their TLS handshake at most, so silent ones cannot hold every slot (0: no such limit)',
      default: String(DEFAULT_MAX_HANDSHAKING_CONNECTIONS),
    },
    'max-handshakes-per-source': {
      type: 'string',
      value: 'N',
      description: 'of those, from one IP address at most (0: no such limit)',
      default: String(DEFAULT_MAX_HANDSHAKING_PER_SOURCE),
    },
    'handshake-timeout': {
      type: 'string',
      value: 'DURATION',
      description: 'close a connection whose TLS handshake is not done by then',
      default: `${DEFAULT_HANDSHAKE_TIMEOUT_MS / 1000}s`,
    },
    'idle-timeout': {
      type: 'string',
      value: 'DURATION',
      description: 'close a connection with no request for this long (0s: never)',
      default: `${DEFAULT_IDLE_TIMEOUT_MS / 60_000}m`,
    },
  },
  examples: [
    'dc-operator keyserver --keys /etc/keyless/keys --ca ca.crt --cert server.crt --key server.key --metrics-port 2406',
    'dc-operator keyserver --from-cluster --operator-namespace dc-operator --trust-domain cluster.local',
  ],
  validate(v) {
    const fromCluster = v['from-cluster'] === true;
    if (fromCluster) {
      for (const f of DIRECTORY_FLAGS) if (v[f] !== undefined) throw new UsageError(`--${f} is for a key directory; --from-cluster reads keys and its TLS Secret from the API`, `--${f}`);
      if (v.workers !== '0') throw new UsageError('signing workers are not available with --from-cluster', '--workers');
      if (v.grant.length > 0) throw new UsageError("--grant is for a key directory; --from-cluster grants each sidecar identity its DelegatedCredential's key", '--grant');
    } else {
      for (const f of DIRECTORY_FLAGS) if (v[f] === undefined) throw new UsageError(`--${f} is required (or use --from-cluster)`, `--${f}`);
      for (const f of CLUSTER_FLAGS) {
        const given = f === 'namespace' ? v.namespace.length > 0 : f === 'tls-secret' ? v[f] !== DEFAULT_TLS_SECRET : f === 'trust-domain' ? v[f] !== DEFAULT_TRUST_DOMAIN : f === 'rate-limit' ? v[f] !== String(DEFAULT_SIGNATURES_PER_SECOND) : f === 'metrics-per-identity' ? v[f] === true : v[f] !== undefined;
        if (given) throw new UsageError(`--${f} only applies with --from-cluster`, `--${f}`);
      }
    }
    for (const f of ['operator-namespace', 'cluster-resource-namespace'] as const) {
      const ns = v[f];
      if (ns !== undefined && (!NAMESPACE.test(ns) || ns.length > 63)) throw new UsageError(`"${ns}" is not a namespace name`, `--${f}`);
    }
    if (!/^[a-z0-9._-]{1,255}$/.test(v['trust-domain'])) throw new UsageError(`"${v['trust-domain']}" is not a trust domain (lower-case letters, digits, '.', '-', '_')`, '--trust-domain');
    if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(v['tls-secret'])) throw new UsageError(`"${v['tls-secret']}" is not a Secret name`, '--tls-secret');
    const grants = v.grant.map((g) => {
      try {
        return parseFileGrant(g);
      } catch (e) {
        throw new UsageError(e instanceof Error ? e.message : String(e), '--grant');
      }
    });
    return {
      fromCluster,
      grants,
      keys: v.keys ?? '',
      ca: v.ca ?? '',
      cert: v.cert ?? '',
      key: v.key ?? '',
      kubeconfig: v.kubeconfig,
      namespaces: namespaceList(v.namespace),
      operatorNamespace: v['operator-namespace'],
      clusterResourceNamespace: v['cluster-resource-namespace'],
      tlsSecret: v['tls-secret'],
      trustDomain: v['trust-domain'],
      rateLimit: integerFlag('--rate-limit', v['rate-limit'], 0, 1_000_000),
      metricsPerIdentity: v['metrics-per-identity'] === true,
      address: ipFlag('--address', v.address),
      port: integerFlag('--port', v.port, 0, 65535),
      metricsPort: v['metrics-port'] === undefined ? undefined : integerFlag('--metrics-port', v['metrics-port'], 0, 65535),
      maxConcurrency: integerFlag('--max-concurrency', v['max-concurrency'], 1, 100_000),
      workers: integerFlag('--workers', v.workers, 0, 256),
      allowLegacyHashes: v['allow-legacy-hashes'] === true,
      maxConnections: integerFlag('--max-connections', v['max-connections'], 1, 1_000_000),
      maxConnectionsPerSource: integerFlag('--max-connections-per-source', v['max-connections-per-source'], 0, 1_000_000),
      maxHandshakingConnections: integerFlag('--max-handshakes', v['max-handshakes'], 0, 1_000_000),
      maxHandshakingPerSource: integerFlag('--max-handshakes-per-source', v['max-handshakes-per-source'], 0, 1_000_000),
      handshakeTimeoutMs: positiveDuration('--handshake-timeout', v['handshake-timeout']) * 1000,
      idleTimeoutMs: durationFlag('--idle-timeout', v['idle-timeout']) * 1000,
    };
  },
  async run(c, ctx): Promise<number> {
    if (c.fromCluster) return runFromCluster(c, ctx);
    // A --ca without a certificate would make node trust no client at all: every client refused,
    // each with a log line, instead of one error at start.
    const [{ pem: ca }, cert, key] = await Promise.all([
      readCertificateFile(ctx.cwd, c.ca, '--ca'),
      readPem(ctx, '--cert', c.cert),
      readPem(ctx, '--key', c.key),
    ]);
    const mismatch = servingPairMismatch(cert, key, c.cert, c.key);
    if (mismatch) throw new InputError(mismatch);
    const keysDir = resolvePath(ctx.cwd, c.keys);
    const logger = createJsonLog({ component: 'keyserver', write: (line) => ctx.stderr(line), now: () => ctx.now() });
    let server: KeyServer | undefined;
    // Until the server has opened the directory no key is known: every request is refused.
    const authorizer = c.grants.length > 0 ? new FileGrantAuthorizer(c.grants, (ski) => server?.keyDirectory?.get(ski), logger) : undefined;
    if (!authorizer) logger.warn('keyless: no --grant given: every client whose certificate chains to --ca may use every key in --keys', { keys: keysDir });
    try {
      server = await startKeyServer({
        ...(authorizer ? { authorizer, checkKeyFiles: (set) => authorizer.checkKeyFiles(set) } : {}),
        keysDir,
        ca,
        cert,
        key,
        host: c.address,
        port: c.port,
        maxConcurrency: c.maxConcurrency,
        signingWorkers: c.workers,
        allowLegacyHashes: c.allowLegacyHashes,
        maxConnections: c.maxConnections,
        maxConnectionsPerSource: c.maxConnectionsPerSource,
        maxHandshakingConnections: c.maxHandshakingConnections,
        maxHandshakingPerSource: c.maxHandshakingPerSource,
        handshakeTimeoutMs: c.handshakeTimeoutMs,
        idleTimeoutMs: c.idleTimeoutMs,
        logger,
        ...(c.metricsPort !== undefined ? { metricsPort: c.metricsPort } : {}),
      });
    } catch (e) {
      if (e instanceof KeyFileGrantError) throw new InputError(e.message);
      throw new CommandFailed(`cannot start the key server: ${e instanceof Error ? e.message : String(e)}`);
    }
    const running = server;
    const reload = (): void => {
      void running.keyDirectory?.reload();
    };
    process.on('SIGHUP', reload);
    const signal = await stopSignal();
    process.off('SIGHUP', reload);
    logger.info('keyless: shutting down', { signal });
    await running.close();
    return 0;
  },
});

function stopSignal(): Promise<string> {
  return new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
}

interface ClusterConfig {
  kubeconfig: string | undefined;
  operatorNamespace: string | undefined;
  clusterResourceNamespace: string | undefined;
  tlsSecret: string;
  namespaces: string[];
  trustDomain: string;
  rateLimit: number;
  metricsPerIdentity: boolean;
  address: string;
  port: number;
  metricsPort: number | undefined;
  maxConcurrency: number;
  allowLegacyHashes: boolean;
  maxConnections: number;
  maxConnectionsPerSource: number;
  maxHandshakingConnections: number;
  maxHandshakingPerSource: number;
  handshakeTimeoutMs: number;
  idleTimeoutMs: number;
}

async function runFromCluster(c: ClusterConfig, ctx: CommandContext): Promise<number> {
  const log = createJsonLog({ component: 'keyserver', level: ctx.env['LOG_LEVEL'] ?? 'info', write: (line) => ctx.stderr(line), now: () => ctx.now() });
  let handle;
  try {
    handle = await runClusterKeyServer({
      ...(c.kubeconfig !== undefined ? { kubeconfig: resolvePath(ctx.cwd, c.kubeconfig) } : {}),
      ownNamespace: c.operatorNamespace ?? ctx.env['POD_NAMESPACE'] ?? 'dc-operator',
      tlsSecret: c.tlsSecret,
      namespaces: c.namespaces,
      ...(c.clusterResourceNamespace !== undefined ? { clusterResourceNamespace: c.clusterResourceNamespace } : {}),
      trustDomain: c.trustDomain,
      ratePerSecond: c.rateLimit,
      perIdentityMetrics: c.metricsPerIdentity,
      listener: {
        host: c.address,
        port: c.port,
        maxConcurrency: c.maxConcurrency,
        allowLegacyHashes: c.allowLegacyHashes,
        maxConnections: c.maxConnections,
        maxConnectionsPerSource: c.maxConnectionsPerSource,
        maxHandshakingConnections: c.maxHandshakingConnections,
        maxHandshakingPerSource: c.maxHandshakingPerSource,
        handshakeTimeoutMs: c.handshakeTimeoutMs,
        idleTimeoutMs: c.idleTimeoutMs,
      },
      probesPort: c.metricsPort ?? 9090,
      probesHost: c.address,
      log,
    });
  } catch (e) {
    throw new CommandFailed(`cannot start the key server: ${e instanceof Error ? e.message : String(e)}`);
  }
  const signal = await stopSignal();
  log.info('keyserver: shutting down', { signal });
  await handle.stop();
  return 0;
}
