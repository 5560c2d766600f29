import { dumpYaml, KubeConfig } from '@kubernetes/client-node';
import { defineCommand } from '../framework/command.js';
import { CommandFailed, UsageError } from '../framework/errors.js';
import { integerFlag, ipFlag, oneOf } from '../framework/flags.js';
import { DEFAULT_SIDECAR_CONFIG, type ResourceList } from '../../webhook/config.js';
import { runWebhook, type WebhookOptions } from '../../webhook/main.js';
import { createJsonLog, LOG_LEVELS } from '../../net/log.js';
import { loadKubeconfig, systemPlaces } from '../../operator/kubeconfig.js';
import { buildMutatingWebhookConfiguration } from '../../webhook/webhook-configuration.js';
import { QUANTITY } from '../../webhook/sidecar-memory.js';


/** "cpu=10m,memory=32Mi" → { cpu: '10m', memory: '32Mi' }; "none" (or "") → {}: no requests or limits at all. */
export function resourceListFlag(flag: string, value: string | undefined): ResourceList | undefined {
  if (value === undefined) return undefined;
  const out: ResourceList = {};
  if (value.trim() === '' || value.trim() === 'none') return out;
  for (const part of value.split(',')) {
    const [name, quantity, ...rest] = part.split('=');
    if (!name || !quantity || rest.length > 0 || !QUANTITY.test(quantity)) {
      throw new UsageError(`"${part}" is not NAME=QUANTITY (e.g. cpu=10m,memory=32Mi)`, flag);
    }
    out[name.trim()] = quantity;
  }
  return out;
}

const IMAGE_PULL_POLICIES = ['Always', 'IfNotPresent', 'Never'] as const;

export const webhook = defineCommand({
  path: ['webhook'],
  summary: 'Run the mutating webhook that injects the TLS sidecar into annotated pods',
  description: `
Serves POST /mutate (AdmissionReview v1), /healthz and /readyz over HTTPS on --port. Pods opt in
with the annotation dc-operator.io/inject: <DelegatedCredential name>; dc-operator.io/port (TLS
port, default 8443), dc-operator.io/upstream-port (app port on 127.0.0.1, default 8080) and
dc-operator.io/metrics-port (default --sidecar-metrics-port) tune it. The sidecar is a native
sidecar on Kubernetes 1.29 and later, a plain container before.

Serving certificate: by default a CA is bootstrapped into the Secret --ca-secret in --operator-namespace,
its certificate written as caBundle into the MutatingWebhookConfiguration --configuration, and
rotated at 2/3 of its life (CA one year, serving certificate 90 days). With --cert-mode
cert-manager, tls.crt and tls.key are read from --cert-dir and re-read when they change.

--print-configuration prints the MutatingWebhookConfiguration for the Service and exits.
Stops on SIGTERM or SIGINT.`,
  exitStatus: {
    0: 'stopped by SIGTERM or SIGINT (with --print-configuration: printed it)',
    1: 'could not start (e.g. the port is in use) or failed while running',
  },
  options: {
    'operator-namespace': { type: 'string', value: 'NS', description: 'the operator namespace (never injected; holds the CA Secret). Default: $POD_NAMESPACE', deprecatedAliases: ['namespace'] },
    port: { type: 'string', value: 'N', description: 'HTTPS port', default: '9443' },
    address: { type: 'string', value: 'IP', description: 'address to listen on', default: '0.0.0.0' },
    service: { type: 'string', value: 'NAME', description: 'Service in front of the webhook (its DNS names go into the certificate)', default: 'dc-operator-webhook' },
    'service-port': { type: 'string', value: 'N', description: 'port of that Service (for --print-configuration)', default: '443' },
    configuration: { type: 'string', value: 'NAME', description: 'MutatingWebhookConfiguration whose caBundle is kept current', default: 'dc-operator-webhook' },
    'cert-mode': { type: 'string', value: 'MODE', description: 'self (bootstrap a CA) or cert-manager (read --cert-dir)', default: 'self' },
    'cert-dir': { type: 'string', value: 'DIR', description: 'directory with tls.crt and tls.key (cert-manager mode)', default: '/etc/dc-operator/webhook-certs' },
    'ca-secret': { type: 'string', value: 'NAME', description: 'Secret holding the bootstrapped CA', default: 'dc-operator-webhook-ca' },
    'ip-san': { type: 'string', multiple: true, value: 'IP', description: 'IP address for the serving certificate (repeatable; default 127.0.0.1)' },
    'dns-san': { type: 'string', multiple: true, value: 'NAME', description: 'extra DNS name for the serving certificate (repeatable)' },
    'exclude-namespace': { type: 'string', multiple: true, value: 'NS', description: 'namespace never injected, besides kube-system and --operator-namespace (repeatable)' },
    'sidecar-image': { type: 'string', value: 'IMAGE', description: 'image of the injected sidecar', default: DEFAULT_SIDECAR_CONFIG.image },
    'sidecar-image-pull-policy': { type: 'string', value: 'POLICY', description: 'Always, IfNotPresent or Never', default: 'IfNotPresent' },
    'sidecar-requests': { type: 'string', value: 'LIST', description: 'resource requests of the sidecar (none: no requests)', default: 'cpu=10m,memory=32Mi' },
    'sidecar-limits': { type: 'string', value: 'LIST', description: 'resource limits of the sidecar (none: no limits)', default: 'memory=128Mi' },
    'sidecar-metrics-port': { type: 'string', value: 'N', description: 'default port of the sidecar /metrics, /healthz, /readyz', default: String(DEFAULT_SIDECAR_CONFIG.metricsPort) },
    'log-level': { type: 'string', value: 'LEVEL', description: `${LOG_LEVELS.join(', ')}. Default: $LOG_LEVEL, else info` },
    'shutdown-delay': { type: 'string', value: 'SECONDS', description: 'on SIGTERM, report not-ready and keep serving this long before closing', default: '5' },
    'require-label': { type: 'boolean', description: 'with --print-configuration: send only pods labelled dc-operator.io/inject=enabled' },
    'inject-all-namespaces': { type: 'boolean', description: 'with --print-configuration: every namespace not labelled dc-operator.io/injection=disabled (default: only those labelled dc-operator.io/injection=enabled)' },
    'print-configuration': { type: 'boolean', description: 'print the MutatingWebhookConfiguration (YAML) and exit' },
  },
  examples: [
    'dc-operator webhook --operator-namespace dc-operator-system',
    'dc-operator webhook --operator-namespace dc-operator-system --cert-mode cert-manager --cert-dir /certs',
    'dc-operator webhook --operator-namespace dc-operator-system --print-configuration > webhook.yaml',
  ],
  validate(v) {
    return {
      namespace: v['operator-namespace'],
      port: integerFlag('--port', v.port, 0, 65535),
      address: ipFlag('--address', v.address),
      service: v.service,
      servicePort: integerFlag('--service-port', v['service-port'], 1, 65535),
      configuration: v.configuration,
      certMode: oneOf('--cert-mode', v['cert-mode'], ['self', 'cert-manager'] as const, 'certificate mode'),
      certDir: v['cert-dir'],
      caSecret: v['ca-secret'],
      ipSans: v['ip-san'].length > 0 ? v['ip-san'].map((ip) => ipFlag('--ip-san', ip)) : ['127.0.0.1'],
      dnsSans: [...v['dns-san']],
      excludedNamespaces: [...v['exclude-namespace']],
      sidecar: {
        image: v['sidecar-image'],
        imagePullPolicy: oneOf('--sidecar-image-pull-policy', v['sidecar-image-pull-policy'], IMAGE_PULL_POLICIES, 'pull policy'),
        resources: {
          requests: resourceListFlag('--sidecar-requests', v['sidecar-requests']),
          limits: resourceListFlag('--sidecar-limits', v['sidecar-limits']),
        },
        metricsPort: integerFlag('--sidecar-metrics-port', v['sidecar-metrics-port'], 1, 65535),
      },
      logLevel: v['log-level'] === undefined ? undefined : oneOf('--log-level', v['log-level'], LOG_LEVELS, 'log level'),
      shutdownDelayMs: integerFlag('--shutdown-delay', v['shutdown-delay'], 0, 300) * 1000,
      requireLabel: v['require-label'],
      injectAllNamespaces: v['inject-all-namespaces'],
      printConfiguration: v['print-configuration'],
    };
  },
  async run(c, ctx) {
    const namespace = c.namespace ?? ctx.env['POD_NAMESPACE'];
    if (!namespace) throw new UsageError('--operator-namespace is required (or set POD_NAMESPACE)', '--operator-namespace');
    // As the controller's --log-level and the key server's LOG_LEVEL: the flag wins, then the environment.
    const logLevel = c.logLevel ?? oneOf('LOG_LEVEL', ctx.env['LOG_LEVEL'] ?? 'info', LOG_LEVELS, 'log level');
    if (c.printConfiguration) {
      const mwc = buildMutatingWebhookConfiguration({
        name: c.configuration,
        endpoint: { service: { namespace, name: c.service, port: c.servicePort } },
        operatorNamespace: namespace,
        excludedNamespaces: c.excludedNamespaces,
        requireLabel: c.requireLabel,
        injectAllNamespaces: c.injectAllNamespaces,
      });
      ctx.stdout(dumpYaml(mwc, { lineWidth: -1, noRefs: true }));
      return 0;
    }
    const log = createJsonLog({ component: 'webhook', level: logLevel, write: (line) => ctx.stderr(line), now: () => ctx.now() });
    const opts: WebhookOptions = {
      namespace,
      host: c.address,
      port: c.port,
      serviceName: c.service,
      ipAddresses: c.ipSans,
      extraDnsNames: c.dnsSans,
      webhookConfigurationName: c.configuration,
      certMode: c.certMode,
      certDir: c.certDir,
      caSecretName: c.caSecret,
      shutdownDelayMs: c.shutdownDelayMs,
      excludedNamespaces: c.excludedNamespaces,
      sidecar: { ...DEFAULT_SIDECAR_CONFIG, ...c.sidecar, resources: sidecarResources(c.sidecar.resources) },
      log,
    };
    let running;
    try {
      const kubeConfig = new KubeConfig();
      loadKubeconfig(kubeConfig, undefined, { ...systemPlaces(), env: ctx.env }, null);
      running = await runWebhook({ ...opts, kubeConfig });
    } catch (e) {
      throw new CommandFailed(`cannot start the webhook: ${e instanceof Error ? e.message : String(e)}`);
    }
    const signal = await new Promise<string>((resolve) => {
      process.once('SIGTERM', () => resolve('SIGTERM'));
      process.once('SIGINT', () => resolve('SIGINT'));
    });
    log.info('webhook: shutting down', { signal });
    await running.close();
    return 0;
  },
});

/** The sidecar's resources from the flags: an empty list ("none") leaves that part out of the container. */
export function sidecarResources(r: { requests?: ResourceList; limits?: ResourceList }): { requests?: ResourceList; limits?: ResourceList } {
  const given = (l: ResourceList | undefined): l is ResourceList => l !== undefined && Object.keys(l).length > 0;
  return { ...(given(r.requests) ? { requests: r.requests } : {}), ...(given(r.limits) ? { limits: r.limits } : {}) };
}
