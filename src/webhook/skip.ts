// Skip decisions: an ordered list of tiny predicates, each answering "leave this pod alone, and
// why?". The first that answers wins; none answering means "try to inject".
// Skipping is always `allowed: true` with no patch: a pod the webhook does not own passes as is.

import type { V1Pod } from '@kubernetes/client-node';
import type { AdmissionRequest } from './admission-types.js';
import { ANNOTATION_INJECT, ANNOTATION_INJECTED, SIDECAR_CONTAINER_NAME } from './config.js';

export interface SkipContext {
  request: AdmissionRequest;
  pod: V1Pod;
  /** The pod's namespace, from the request (a pod being created often has none in metadata). */
  namespace: string;
  excludedNamespaces: readonly string[];
}

export interface SkipReason {
  reason: string;
  message: string;
}

export type SkipPredicate = (ctx: SkipContext) => SkipReason | undefined;

export const isNotPodCreation: SkipPredicate = ({ request }) => {
  const { kind, subResource, operation } = request;
  const isPod = kind.group === '' && kind.kind === 'Pod' && (subResource === undefined || subResource === '');
  if (isPod && operation === 'CREATE') return undefined;
  return { reason: 'NotPodCreation', message: `${operation} of ${kind.kind}${subResource ? `/${subResource}` : ''} is not a pod creation` };
};

export const isExcludedNamespace: SkipPredicate = ({ namespace, excludedNamespaces }) =>
  excludedNamespaces.includes(namespace)
    ? { reason: 'ExcludedNamespace', message: `namespace ${namespace} is excluded from injection` }
    : undefined;

export const isNotOptedIn: SkipPredicate = ({ pod }) =>
  pod.metadata?.annotations?.[ANNOTATION_INJECT] === undefined
    ? { reason: 'NotOptedIn', message: `pod has no ${ANNOTATION_INJECT} annotation` }
    : undefined;

/**
 * Values of the inject annotation that say "no", as Istio's sidecar.istio.io/inject: "false" does.
 * Left to the name check they would refuse the pod ("DelegatedCredential ns/false not found"); a
 * DelegatedCredential cannot be injected under these two names.
 */
export const INJECT_OPT_OUT_VALUES: readonly string[] = ['false', 'disabled'];

export const isOptedOut: SkipPredicate = ({ pod }) => {
  const value = pod.metadata?.annotations?.[ANNOTATION_INJECT];
  return value !== undefined && INJECT_OPT_OUT_VALUES.includes(value.trim().toLowerCase())
    ? { reason: 'OptedOut', message: `pod has ${ANNOTATION_INJECT}: "${value}"` }
    : undefined;
};

export const isMarkedInjected: SkipPredicate = ({ pod }) =>
  pod.metadata?.annotations?.[ANNOTATION_INJECTED] !== undefined
    ? { reason: 'AlreadyInjected', message: `pod carries ${ANNOTATION_INJECTED}` }
    : undefined;

export const hasSidecarContainer: SkipPredicate = ({ pod }) => {
  const all = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])];
  return all.some((c) => c.name === SIDECAR_CONTAINER_NAME)
    ? { reason: 'AlreadyInjected', message: `pod already has a container named ${SIDECAR_CONTAINER_NAME}` }
    : undefined;
};

/** In order: cheapest and most common answers first. */
export const SKIP_PREDICATES: readonly SkipPredicate[] = [
  isNotPodCreation,
  isExcludedNamespace,
  isNotOptedIn,
  isOptedOut,
  isMarkedInjected,
  hasSidecarContainer,
];

export function shouldSkip(ctx: SkipContext, predicates: readonly SkipPredicate[] = SKIP_PREDICATES): SkipReason | undefined {
  for (const predicate of predicates) {
    const reason = predicate(ctx);
    if (reason) return reason;
  }
  return undefined;
}
