// Names the webhook shares with users (annotations, labels) and the configuration of the sidecar it
// injects. Everything a pod author types is here, so the documentation has one place to point to.
import { GROUP, RESOURCES, VERSION } from '../operator/api/v1alpha1.js';

/** Opt-in: the name of a DelegatedCredential in the pod's namespace. */
export const ANNOTATION_INJECT = 'dc-operator.io/inject';
/** TLS port the sidecar listens on (default 8443). */
export const ANNOTATION_PORT = 'dc-operator.io/port';
/**
 * Plaintext port of the app on 127.0.0.1 (default 8080). A default rather than a required
 * annotation because most HTTP apps listen on 8080 and the common case should be one annotation;
 * a wrong guess is visible at once (the sidecar's upstream connections are refused and logged).
 */
export const ANNOTATION_UPSTREAM_PORT = 'dc-operator.io/upstream-port';
/** Port of the sidecar's /metrics, /healthz, /readyz (default from configuration, 15300). */
export const ANNOTATION_METRICS_PORT = 'dc-operator.io/metrics-port';
/** Set by the webhook on the pods it injected; its presence makes re-invocation a no-op. */
export const ANNOTATION_INJECTED = 'dc-operator.io/injected';
/** Set by the webhook: the DC Secret that was mounted, for people debugging a pod. */
export const ANNOTATION_INJECTED_SECRET = 'dc-operator.io/injected-secret';
/**
 * Optional label for the objectSelector (see webhook-configuration.ts): when the chart enables
 * `requireLabel`, only pods labelled `dc-operator.io/inject: enabled` are sent to the webhook.
 */
export const LABEL_INJECT = 'dc-operator.io/inject';
export const LABEL_INJECT_VALUE = 'enabled';

/**
 * Set by the webhook on every pod it injected: the label a NetworkPolicy selects to admit the
 * sidecars to the key server (annotations cannot be selected). Only the webhook sets it; a pod
 * author who sets it by hand gains nothing the key server would grant: it still authorizes each
 * request by the client certificate, which only the operator issues into the pod's bundle.
 */
export const LABEL_SIDECAR = 'dc-operator.io/sidecar';
export const LABEL_SIDECAR_VALUE = 'injected';

export const SIDECAR_CONTAINER_NAME = 'dc-operator-sidecar';
export const CREDENTIALS_VOLUME_NAME = 'dc-operator-credentials';
export const CREDENTIALS_MOUNT_PATH = '/var/run/dc-operator/credentials';
export const TLS_PORT_NAME = 'dc-tls';
export const METRICS_PORT_NAME = 'dc-metrics';

export const DEFAULT_LISTEN_PORT = 8443;
export const DEFAULT_UPSTREAM_PORT = 8080;
/** High and unusual, so it rarely collides with an app's own ports. */
export const DEFAULT_METRICS_PORT = 15300;
export const SIDECAR_UID = 65532;

/** API coordinates of the DelegatedCredential custom resource: defined once, in the API package. */
export const DC_GROUP = GROUP;
export const DC_VERSION = VERSION;
export const DC_PLURAL = RESOURCES.delegatedCredentials.plural;

export interface ResourceList {
  cpu?: string;
  memory?: string;
  [name: string]: string | undefined;
}

/** How the injected sidecar looks: set by the operator's deployment (chart values / flags). */
export interface SidecarConfig {
  image: string;
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  /** The executable in the image; the webhook appends `sidecar --dc-dir ...`. */
  command: string[];
  resources: { requests?: ResourceList; limits?: ResourceList };
  metricsPort: number;
}

export interface InjectorConfig {
  sidecar: SidecarConfig;
  /**
   * Namespaces never injected, whatever the pod says (kube-system, the operator's own). The
   * namespaceSelector already keeps them away from the webhook; this is the second lock, for a
   * MutatingWebhookConfiguration edited by hand.
   */
  excludedNamespaces: string[];
}

export const DEFAULT_SIDECAR_CONFIG: SidecarConfig = {
  image: 'ghcr.io/dc-operator/dc-operator:latest',
  imagePullPolicy: 'IfNotPresent',
  command: ['dc-operator'],
  resources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { memory: '128Mi' } },
  metricsPort: DEFAULT_METRICS_PORT,
};
