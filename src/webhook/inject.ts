// Builds the sidecar container and its volume, and adds them to a pod (a copy: the caller diffs it
// against the original). Nothing here talks to the API server.

import type { V1Container, V1Pod, V1Probe, V1Volume } from '@kubernetes/client-node';
import type { InjectionRequest } from './annotations.js';
import {
  ANNOTATION_INJECTED,
  ANNOTATION_INJECTED_SECRET,
  CREDENTIALS_MOUNT_PATH,
  CREDENTIALS_VOLUME_NAME,
  LABEL_SIDECAR,
  LABEL_SIDECAR_VALUE,
  METRICS_PORT_NAME,
  SIDECAR_CONTAINER_NAME,
  SIDECAR_UID,
  TLS_PORT_NAME,
  type SidecarConfig,
} from './config.js';
import type { SidecarMode } from './server-version.js';
import { maxConnectionsForMemoryLimit } from './sidecar-memory.js';

export interface InjectionTarget {
  request: InjectionRequest;
  /** spec.secretName of the DelegatedCredential: the Secret holding the DCs. */
  secretName: string;
}

function httpProbe(path: string, port: string, periodSeconds: number, failureThreshold: number): V1Probe {
  return { httpGet: { path, port, scheme: 'HTTP' }, periodSeconds, failureThreshold, timeoutSeconds: 1 };
}

/**
 * --max-connections that fits the sidecar's memory limit (sidecar-memory.ts), none when its
 * default fits; and the per-source cap at a quarter of it, the ratio of the sidecar's own
 * defaults, so one address cannot take every slot.
 */
function connectionCapArgs(config: SidecarConfig): string[] {
  const max = maxConnectionsForMemoryLimit(config.resources.limits?.memory);
  return max !== undefined ? ['--max-connections', String(max), '--max-connections-per-source', String(Math.max(1, Math.floor(max / 4)))] : [];
}

export function sidecarContainer(target: InjectionTarget, config: SidecarConfig, mode: SidecarMode): V1Container {
  const { listenPort, upstreamPort, metricsPort } = target.request;
  const container: V1Container = {
    name: SIDECAR_CONTAINER_NAME,
    image: config.image,
    command: [...config.command],
    args: [
      'sidecar',
      '--dc-dir', CREDENTIALS_MOUNT_PATH,
      '--port', String(listenPort),
      '--upstream', `127.0.0.1:${upstreamPort}`,
      '--metrics-port', String(metricsPort),
      ...connectionCapArgs(config),
    ],
    ports: [
      { name: TLS_PORT_NAME, containerPort: listenPort, protocol: 'TCP' },
      { name: METRICS_PORT_NAME, containerPort: metricsPort, protocol: 'TCP' },
    ],
    resources: structuredClone(config.resources) as V1Container['resources'],
    volumeMounts: [{ name: CREDENTIALS_VOLUME_NAME, mountPath: CREDENTIALS_MOUNT_PATH, readOnly: true }],
    securityContext: {
      runAsNonRoot: true,
      runAsUser: SIDECAR_UID,
      runAsGroup: SIDECAR_UID,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      privileged: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    // /readyz is ready only with a valid, unexpired credential loaded. The startup probe gives the
    // operator up to two minutes to write the DC Secret for a fresh DelegatedCredential; as a
    // native sidecar it also holds the app back until TLS can be served.
    startupProbe: httpProbe('/readyz', METRICS_PORT_NAME, 2, 60),
    readinessProbe: httpProbe('/readyz', METRICS_PORT_NAME, 5, 3),
    livenessProbe: httpProbe('/healthz', METRICS_PORT_NAME, 10, 3),
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
  if (config.imagePullPolicy) container.imagePullPolicy = config.imagePullPolicy;
  if (mode === 'native') container.restartPolicy = 'Always';
  return container;
}

export function credentialsVolume(secretName: string): V1Volume {
  // The serving bundle (src/operator/api/serving-bundle.ts): DCs, tls.crt and the fallback's parts
  // (keyless address, CA, client certificate), all rotated through kubelet's ..data swap, so this
  // one volume is everything the sidecar needs and nothing else is added for keyless.
  // Read-only for everyone in the volume; only the sidecar mounts it. Not optional: until the
  // operator has written the Secret, kubelet keeps the pod in ContainerCreating and retries.
  return { name: CREDENTIALS_VOLUME_NAME, secret: { secretName, defaultMode: 0o444 } };
}

/**
 * Adds the sidecar, its volume, the injected marker and the sidecar label to `pod`, in place.
 * Native mode appends to initContainers: existing init containers (migrations, config rendering)
 * run first as before, and the sidecar is up before the app starts. Container mode appends to
 * containers, so the app stays the first container (kubectl's default for logs and exec).
 */
export function injectSidecar(pod: V1Pod, target: InjectionTarget, config: SidecarConfig, mode: SidecarMode): void {
  pod.metadata ??= {};
  pod.metadata.annotations ??= {};
  pod.metadata.annotations[ANNOTATION_INJECTED] = 'true';
  pod.metadata.annotations[ANNOTATION_INJECTED_SECRET] = target.secretName;
  pod.metadata.labels ??= {};
  pod.metadata.labels[LABEL_SIDECAR] = LABEL_SIDECAR_VALUE;
  pod.spec ??= { containers: [] };
  const container = sidecarContainer(target, config, mode);
  if (mode === 'native') {
    pod.spec.initContainers ??= [];
    pod.spec.initContainers.push(container);
  } else {
    pod.spec.containers.push(container);
  }
  pod.spec.volumes ??= [];
  pod.spec.volumes.push(credentialsVolume(target.secretName));
}
