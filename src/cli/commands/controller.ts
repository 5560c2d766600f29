import { defineCommand } from '../framework/command.js';
import { CommandFailed, UsageError } from '../framework/errors.js';
import { resolvePath } from '../framework/files.js';
import { stopWithin } from '../framework/stop-within.js';
import { integerFlag, ipFlag, oneOf } from '../framework/flags.js';
import { runController } from '../../operator/main.js';
import { createJsonLog, LOG_LEVELS } from '../../net/log.js';
import { DEFAULT_TRUST_DOMAIN, controllerIdentityUri } from '../../operator/api/serving-bundle.js';
import { DEFAULT_KEYLESS_CA_SECRET, DEFAULT_KEYSERVER_TLS_SECRET } from '../../operator/keyless-identity.js';
import { parseAddress } from '../../keyless/client.js';

/** Below the chart's terminationGracePeriodSeconds (30), so the process exits before a SIGKILL. */
const STOP_DEADLINE_MS = 20_000;

/** The namespaces of `--namespace a --namespace b,c`, each checked, without repeats. */
export function namespaceList(values: readonly string[]): string[] {
  const namespaces = [...new Set(values.flatMap((v) => v.split(',')).map((n) => n.trim()))];
  for (const n of namespaces) {
    if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(n) || n.length > 63) throw new UsageError(`"${n}" is not a namespace name`, '--namespace');
  }
  return namespaces;
}

export const controller = defineCommand({
  path: ['controller'],
  summary: 'Run the operator: keep the delegated credentials of every DelegatedCredential issued and fresh',
  description: `
Watches DelegatedCredentials, DelegationSigners and ClusterDelegationSigners, the certificate
Secrets they reference (type kubernetes.io/tls, only in namespaces that hold a DelegatedCredential;
private keys are never cached) and the Secrets it writes (label app.kubernetes.io/managed-by=dc-operator),
and issues RFC 9345 delegated credentials before they expire.

Connects with --kubeconfig, else $KUBECONFIG or ~/.kube/config, else the in-cluster service
account. Replicas elect a leader on the Lease dc-operator-controller in --operator-namespace; only
the leader issues, and a stopping leader releases the lease. Serves /metrics, /healthz and /readyz
on --metrics-port. JSON logs on stderr. Stops on SIGTERM or SIGINT.

Fallback (spec.fallback, default Keyless): the leader keeps a CA for keyless identities in the
Secret --keyless-ca-secret of the operator namespace (created when missing), issues the in-cluster
key server's serving Secret --keyserver-tls-secret for --keyserver-address, writes each sidecar's
client certificate (spiffe://--trust-domain/ns/<ns>/dc/<name>) into its output Secret, and pings
the key server every 15 s (FallbackReady). Without --keyserver-address, fallback Keyless reports
NoKeyServer and the credentials are still issued.`,
  exitStatus: {
    0: 'stopped by SIGTERM or SIGINT',
    1: 'could not start (e.g. the port is in use) or failed while running, or did not stop within 20 s of the signal',
  },
  options: {
    kubeconfig: { type: 'string', value: 'FILE', description: 'kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)' },
    namespace: { type: 'string', multiple: true, value: 'NS', description: 'watch only this namespace; repeat it, or separate names with commas, for several (default: all namespaces)' },
    'operator-namespace': { type: 'string', value: 'NS', description: 'namespace of the leader Lease (default: $POD_NAMESPACE or dc-operator)' },
    'cluster-resource-namespace': { type: 'string', value: 'NS', description: 'namespace of the Secrets of ClusterDelegationSigners (key, keyless CA bundle and client certificate; default: the operator namespace)' },
    'metrics-port': { type: 'string', value: 'N', description: 'port of /metrics, /healthz and /readyz', default: '9090' },
    'metrics-address': { type: 'string', value: 'IP', description: 'address of the metrics server', default: '0.0.0.0' },
    workers: { type: 'string', value: 'N', description: 'DelegatedCredentials reconciled at once', default: '4' },
    'keyserver-address': {
      type: 'string',
      value: 'HOST:PORT',
      description: 'the in-cluster key server sidecars pull certificate-key signatures from (fallback Keyless); its serving certificate is issued for this host and its Service short forms. Absent: none, and fallback Keyless reports NoKeyServer',
    },
    'trust-domain': { type: 'string', value: 'DOMAIN', description: 'trust domain of the keyless identities (spiffe://DOMAIN/ns/<ns>/dc/<name>)', default: DEFAULT_TRUST_DOMAIN },
    'keyless-ca-secret': { type: 'string', value: 'NAME', description: 'Secret (ca.crt, ca.key) in the operator namespace holding the CA of keyless identities; created when missing', default: DEFAULT_KEYLESS_CA_SECRET },
    'keyserver-tls-secret': { type: 'string', value: 'NAME', description: "Secret (tls.crt, tls.key, ca.crt) in the operator namespace the key server serves with; written by the controller", default: DEFAULT_KEYSERVER_TLS_SECRET },
    'no-leader-election': { type: 'boolean', description: 'act as leader at once (a single replica only)' },
    'log-level': { type: 'string', value: 'LEVEL', description: `${LOG_LEVELS.join(', ')}`, default: 'info' },
  },
  examples: ['dc-operator controller', 'dc-operator controller --keyserver-address dc-operator-keyserver.dc-operator.svc:2407', 'dc-operator controller --namespace shop --namespace payments --cluster-resource-namespace dc-operator', 'dc-operator controller --kubeconfig .dev/kubeconfig --operator-namespace dc-operator --metrics-port 9090'],
  validate(v) {
    const namespaces = namespaceList(v.namespace);
    const crn = v['cluster-resource-namespace'];
    if (crn !== undefined && !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(crn)) {
      throw new UsageError(`"${crn}" is not a namespace name`, '--cluster-resource-namespace');
    }
    const keyServerAddress = (v['keyserver-address'] ?? '').trim();
    if (keyServerAddress !== '') {
      try {
        parseAddress(keyServerAddress);
      } catch (err) {
        throw new UsageError(`${err instanceof Error ? err.message : String(err)} (e.g. dc-operator-keyserver.dc-operator.svc:2407)`, '--keyserver-address');
      }
    }
    try {
      controllerIdentityUri(v['trust-domain']);
    } catch (err) {
      throw new UsageError(err instanceof Error ? err.message : String(err), '--trust-domain');
    }
    for (const flag of ['keyless-ca-secret', 'keyserver-tls-secret'] as const) {
      if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(v[flag]) || v[flag].length > 253) throw new UsageError(`"${v[flag]}" is not a Secret name`, `--${flag}`);
    }
    return {
      keylessFallback: { keyServerAddress, trustDomain: v['trust-domain'], caSecretName: v['keyless-ca-secret'], servingSecretName: v['keyserver-tls-secret'] },
      kubeconfig: v.kubeconfig,
      namespaces,
      operatorNamespace: v['operator-namespace'],
      clusterResourceNamespace: crn,
      metricsPort: integerFlag('--metrics-port', v['metrics-port'], 0, 65535),
      metricsAddress: ipFlag('--metrics-address', v['metrics-address']),
      workers: integerFlag('--workers', v.workers, 1, 64),
      leaderElection: !v['no-leader-election'],
      logLevel: oneOf('--log-level', v['log-level'], LOG_LEVELS, 'log level'),
    };
  },
  async run(c, ctx) {
    const log = createJsonLog({ component: 'controller', level: c.logLevel, write: (line) => ctx.stderr(line), now: () => ctx.now() });
    let handle;
    try {
      handle = await runController({
        kubeconfig: c.kubeconfig === undefined ? undefined : resolvePath(ctx.cwd, c.kubeconfig),
        namespaces: c.namespaces,
        operatorNamespace: c.operatorNamespace ?? ctx.env['POD_NAMESPACE'],
        clusterResourceNamespace: c.clusterResourceNamespace,
        metricsPort: c.metricsPort,
        metricsHost: c.metricsAddress,
        workers: c.workers,
        keylessFallback: c.keylessFallback,
        leaderElection: c.leaderElection,
        log,
      });
    } catch (e) {
      throw new CommandFailed(`cannot start the controller: ${e instanceof Error ? e.message : String(e)}`);
    }
    const signal = await new Promise<string>((resolve) => {
      process.once('SIGTERM', () => resolve('SIGTERM'));
      process.once('SIGINT', () => resolve('SIGINT'));
    });
    log.info('controller: shutting down', { signal });
    if ((await stopWithin(handle.stop(), STOP_DEADLINE_MS)) === 'late') {
      // The lease is not released: it expires after its duration and a standby takes over then.
      log.error('controller: did not stop within the deadline; exiting without releasing the leader lease', { deadlineSeconds: STOP_DEADLINE_MS / 1000 });
      return 1;
    }
    return 0;
  },
});
