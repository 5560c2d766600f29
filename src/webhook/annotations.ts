// Reads and validates the opt-in annotations of a pod. Every denial message names the annotation,
// the value it found and what would be accepted, so the person reading `kubectl apply`'s error
// can fix the manifest without reading our code.

import type { V1Pod } from '@kubernetes/client-node';
import {
  ANNOTATION_INJECT,
  ANNOTATION_METRICS_PORT,
  ANNOTATION_PORT,
  ANNOTATION_UPSTREAM_PORT,
  CREDENTIALS_VOLUME_NAME,
  DEFAULT_LISTEN_PORT,
  DEFAULT_UPSTREAM_PORT,
} from './config.js';

export interface InjectionRequest {
  /** Name of the DelegatedCredential, in the pod's namespace. */
  dcName: string;
  listenPort: number;
  upstreamPort: number;
  metricsPort: number;
}

export type Parsed<T> = { ok: true; value: T; warnings: string[] } | { ok: false; message: string };

// RFC 1123 subdomain, the rule for the names of custom resources.
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function validateResourceName(annotation: string, value: string): string | undefined {
  if (value === '') return `annotation ${annotation} is empty: set it to the name of a DelegatedCredential in the pod's namespace`;
  if (value.length > 253 || !DNS1123_SUBDOMAIN.test(value)) {
    return `annotation ${annotation}: "${value}" is not a valid resource name (lower-case letters, digits, '-' and '.', at most 253 characters)`;
  }
  return undefined;
}

/** Parses an optional port annotation; `fallback` when absent. Returns a message on bad input. */
export function parsePortAnnotation(annotation: string, value: string | undefined, fallback: number): number | string {
  if (value === undefined) return fallback;
  const trimmed = value.trim();
  if (!/^[0-9]{1,5}$/.test(trimmed)) return `annotation ${annotation}: "${value}" is not a port number (an integer from 1 to 65535)`;
  const port = Number(trimmed);
  if (port < 1 || port > 65535) return `annotation ${annotation}: ${port} is out of range (1 to 65535)`;
  return port;
}

/** Container ports the pod's own containers declare, with the container that declares each. */
function declaredPorts(pod: V1Pod): Map<number, string> {
  const ports = new Map<number, string>();
  for (const c of [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])]) {
    for (const p of c.ports ?? []) {
      if ((p.protocol ?? 'TCP') === 'TCP') ports.set(p.containerPort, c.name);
    }
  }
  return ports;
}

export function parseInjectionRequest(pod: V1Pod, defaultMetricsPort: number): Parsed<InjectionRequest> {
  const annotations = pod.metadata?.annotations ?? {};
  const dcName = (annotations[ANNOTATION_INJECT] ?? '').trim();
  const nameError = validateResourceName(ANNOTATION_INJECT, dcName);
  if (nameError) return { ok: false, message: nameError };

  const listenPort = parsePortAnnotation(ANNOTATION_PORT, annotations[ANNOTATION_PORT], DEFAULT_LISTEN_PORT);
  if (typeof listenPort === 'string') return { ok: false, message: listenPort };
  const upstreamPort = parsePortAnnotation(ANNOTATION_UPSTREAM_PORT, annotations[ANNOTATION_UPSTREAM_PORT], DEFAULT_UPSTREAM_PORT);
  if (typeof upstreamPort === 'string') return { ok: false, message: upstreamPort };
  const metricsPort = parsePortAnnotation(ANNOTATION_METRICS_PORT, annotations[ANNOTATION_METRICS_PORT], defaultMetricsPort);
  if (typeof metricsPort === 'string') return { ok: false, message: metricsPort };

  if (listenPort === upstreamPort) {
    return {
      ok: false,
      message: `annotations ${ANNOTATION_PORT} and ${ANNOTATION_UPSTREAM_PORT} are both ${listenPort}: the sidecar's TLS port and the app's plaintext port must differ`,
    };
  }
  if (metricsPort === listenPort || metricsPort === upstreamPort) {
    return {
      ok: false,
      message: `the sidecar's metrics port ${metricsPort} collides with ${metricsPort === listenPort ? ANNOTATION_PORT : ANNOTATION_UPSTREAM_PORT}: set ${ANNOTATION_METRICS_PORT} to a free port`,
    };
  }
  // The sidecar shares the pod's network namespace: a port an app container already declares
  // would make the sidecar's bind fail at runtime. Refuse now, with the container's name.
  const taken = declaredPorts(pod);
  for (const [annotation, port] of [[ANNOTATION_PORT, listenPort], [ANNOTATION_METRICS_PORT, metricsPort]] as const) {
    const owner = taken.get(port);
    if (owner !== undefined) {
      return { ok: false, message: `port ${port} (${annotation}) is already declared by container ${owner}: choose a free port with ${annotation}` };
    }
  }
  const volumes = pod.spec?.volumes ?? [];
  if (volumes.some((v) => v.name === CREDENTIALS_VOLUME_NAME)) {
    return { ok: false, message: `the pod already has a volume named ${CREDENTIALS_VOLUME_NAME}, which the sidecar injection needs: rename it` };
  }

  const warnings: string[] = [];
  if (listenPort < 1024) {
    warnings.push(`${ANNOTATION_PORT} ${listenPort} is a privileged port: the sidecar runs as a non-root user without capabilities and can bind it only where the runtime sets net.ipv4.ip_unprivileged_port_start=0`);
  }
  if (!taken.has(upstreamPort) && annotations[ANNOTATION_UPSTREAM_PORT] === undefined && taken.size > 0) {
    warnings.push(`no container declares port ${upstreamPort}, the default upstream: set ${ANNOTATION_UPSTREAM_PORT} to the port your app listens on`);
  }
  return { ok: true, value: { dcName, listenPort, upstreamPort, metricsPort }, warnings };
}
