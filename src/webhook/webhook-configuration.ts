// The MutatingWebhookConfiguration that sends pod creations to us: built here once, rendered by the
// chart (charts/) and registered by the integration tests, so the three cannot drift apart. Also
// keeps its caBundle in step with the self-bootstrapped CA.

import type { AdmissionregistrationV1Api, V1MutatingWebhook, V1MutatingWebhookConfiguration } from '@kubernetes/client-node';
import { DC_GROUP, DC_PLURAL, LABEL_INJECT, LABEL_INJECT_VALUE } from './config.js';

export const WEBHOOK_NAME = 'inject.dc-operator.io';
export const DEFAULT_CONFIGURATION_NAME = 'dc-operator-webhook';
export const MUTATE_PATH = '/mutate';
/**
 * Namespace label: `dc-operator.io/injection: enabled` opts a namespace in (the default, as
 * Istio's `istio-injection=enabled`); with injectAllNamespaces, `disabled` opts one out.
 */
export const NAMESPACE_INJECTION_LABEL = 'dc-operator.io/injection';

export type WebhookEndpoint =
  | { service: { namespace: string; name: string; port: number } }
  /** For local development and the integration tests: the API server calls this URL directly. */
  | { url: string };

export interface WebhookConfigurationOptions {
  name?: string;
  endpoint: WebhookEndpoint;
  /** PEM of the CA(s) that sign the serving certificate; empty until bootstrap writes it. */
  caBundlePem?: string;
  /** The operator's own namespace: never injected (see namespaceSelector below). */
  operatorNamespace: string;
  /** More namespaces to keep away from the webhook. */
  excludedNamespaces?: string[];
  /** Send only pods labelled dc-operator.io/inject=enabled (see objectSelector below). */
  requireLabel?: boolean;
  /** Send pods of every namespace not labelled dc-operator.io/injection=disabled (the behaviour before opt-in namespaces). */
  injectAllNamespaces?: boolean;
  failurePolicy?: 'Fail' | 'Ignore';
  timeoutSeconds?: number;
  /** CREATE only in production; tests add UPDATE to show updates pass unchanged. */
  operations?: Array<'CREATE' | 'UPDATE'>;
}

/**
 * failurePolicy: Fail. A pod that asked for the TLS sidecar and started without it would be
 * silently broken: its TLS port serves nothing, and a Service aimed at it routes to a closed port
 * with nothing in the pod's spec to say why. A refused creation is loud and self-healing: the
 * ReplicaSet/Job controller retries with backoff and the pods appear once the webhook answers.
 * Istio's sidecar injector makes the same choice; cert-manager's webhook uses Fail as well.
 * The cost is blast radius: while no replica answers, every pod creation the selectors match is
 * refused. That is why, by default, the webhook sees only namespaces labelled
 * dc-operator.io/injection=enabled (an outage then touches those alone, not every namespace of the
 * cluster), why the selectors never match kube-system or our own namespace (so the cluster and the
 * webhook itself can always recover), why the chart runs two replicas with a PodDisruptionBudget,
 * and why `requireLabel` exists to shrink the scope further to labelled pods.
 */
export const DEFAULT_FAILURE_POLICY = 'Fail';

/**
 * timeoutSeconds: 5 (API default 10, max 30). The handler does one GET of a DelegatedCredential
 * (milliseconds) and CPU-light work; 5 s is ample headroom for a loaded API server, yet with
 * failurePolicy Fail a hung webhook costs each pod creation at most 5 s (10 s with one
 * re-invocation) instead of 10-20 s, which keeps `kubectl apply` and controllers responsive. Our
 * own lookup gives up after 3 s (main.ts) so the user sees our message, not a generic timeout.
 */
export const DEFAULT_TIMEOUT_SECONDS = 5;

export function buildMutatingWebhookConfiguration(opts: WebhookConfigurationOptions): V1MutatingWebhookConfiguration {
  const excluded = [...new Set(['kube-system', opts.operatorNamespace, ...(opts.excludedNamespaces ?? [])])];
  const clientConfig: V1MutatingWebhook['clientConfig'] =
    'url' in opts.endpoint
      ? { url: opts.endpoint.url }
      : { service: { ...opts.endpoint.service, path: MUTATE_PATH } };
  if (opts.caBundlePem) clientConfig.caBundle = Buffer.from(opts.caBundlePem).toString('base64');

  const webhook: V1MutatingWebhook = {
    name: WEBHOOK_NAME,
    admissionReviewVersions: ['v1'],
    clientConfig,
    rules: [{ operations: opts.operations ?? ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' }],
    failurePolicy: opts.failurePolicy ?? DEFAULT_FAILURE_POLICY,
    matchPolicy: 'Equivalent',
    // Never kube-system (its pods must come back even when we are down) nor our own namespace (the
    // webhook's own pods must start while the webhook is down, or Fail would deadlock). The
    // kubernetes.io/metadata.name label is set by the API server on every namespace (>= 1.21).
    // Opt-in namespaces by default, as Istio's injector: with failurePolicy Fail, a webhook that
    // matched every namespace would block pod creation cluster-wide during an outage.
    namespaceSelector: {
      matchExpressions: [
        { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: excluded },
        opts.injectAllNamespaces
          ? { key: NAMESPACE_INJECTION_LABEL, operator: 'NotIn', values: ['disabled'] }
          : { key: NAMESPACE_INJECTION_LABEL, operator: 'In', values: ['enabled'] },
      ],
    },
    // The opt-in is an annotation (it carries a value, the DC name), and selectors match only
    // labels. So by default every pod is sent and the handler skips unannotated ones in
    // microseconds; pods labelled dc-operator.io/inject=disabled are never sent, an escape hatch
    // for critical workloads. With requireLabel the webhook sees only pods labelled
    // dc-operator.io/inject=enabled: a second opt-in to type, but a webhook outage then touches
    // only those pods.
    objectSelector: opts.requireLabel
      ? { matchLabels: { [LABEL_INJECT]: LABEL_INJECT_VALUE } }
      : { matchExpressions: [{ key: LABEL_INJECT, operator: 'NotIn', values: ['disabled'] }] },
    // We only add a container and a volume; we never call out to anything but a read.
    sideEffects: 'None',
    timeoutSeconds: opts.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS,
    // If a later webhook changes the pod (say, adds an annotation or its own sidecar), we are asked
    // again; the injected marker makes that a no-op. Without IfNeeded, a webhook ordered before us
    // that adds the opt-in annotation itself (a policy engine's default) would go unserved.
    reinvocationPolicy: 'IfNeeded',
  };
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name: opts.name ?? DEFAULT_CONFIGURATION_NAME, labels: { 'app.kubernetes.io/name': 'dc-operator', 'app.kubernetes.io/component': 'webhook' } },
    webhooks: [webhook],
  };
}

/**
 * Writes `caBundlePem` into every webhook of the named configuration when it differs.
 * Returns 'updated', 'unchanged' or 'missing' (not created yet: the chart or a test owns that).
 * A write conflict (someone else updated it meanwhile) is retried on the fresh object.
 */
export async function syncCaBundle(
  api: AdmissionregistrationV1Api,
  name: string,
  caBundlePem: string,
): Promise<'updated' | 'unchanged' | 'missing'> {
  const want = Buffer.from(caBundlePem).toString('base64');
  for (let attempt = 0; ; attempt++) {
    let current: V1MutatingWebhookConfiguration;
    try {
      current = await api.readMutatingWebhookConfiguration({ name });
    } catch (err) {
      if ((err as { code?: number }).code === 404) return 'missing';
      throw err;
    }
    const webhooks = current.webhooks ?? [];
    if (webhooks.every((w) => w.clientConfig.caBundle === want)) return 'unchanged';
    for (const w of webhooks) w.clientConfig.caBundle = want;
    try {
      await api.replaceMutatingWebhookConfiguration({ name, body: current });
      return 'updated';
    } catch (err) {
      if ((err as { code?: number }).code !== 409 || attempt >= 4) throw err;
    }
  }
}

/**
 * What the webhook's ServiceAccount needs (for the chart's Role/ClusterRole): read
 * DelegatedCredentials anywhere (the pod's namespace), keep the CA Secret in its own namespace
 * (namespaced Role), and update its own MutatingWebhookConfiguration's caBundle.
 */
export const WEBHOOK_RBAC = {
  clusterRules: [
    { apiGroups: [DC_GROUP], resources: [DC_PLURAL], verbs: ['get'] },
    { apiGroups: ['admissionregistration.k8s.io'], resources: ['mutatingwebhookconfigurations'], verbs: ['get', 'update'] },
  ],
  namespaceRules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['get', 'create', 'update'] }],
} as const;
