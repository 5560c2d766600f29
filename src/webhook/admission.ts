// The admission handler: AdmissionReview in, AdmissionReview out. It decides (skip predicates),
// validates (annotations), looks the DelegatedCredential up through an injected function, mutates a
// deep copy of the pod and answers with the JSON patch from the original to the copy.
// No I/O of its own, so the unit tests drive it directly.

import type { V1Pod } from '@kubernetes/client-node';
import type { AdmissionRequest, AdmissionResponse, AdmissionReview } from './admission-types.js';
import { parseInjectionRequest } from './annotations.js';
import { ANNOTATION_INJECT, type InjectorConfig } from './config.js';
import { injectSidecar } from './inject.js';
import { applyPatch, diff, jsonEqual, type JsonValue } from './json-patch.js';
import type { SidecarMode } from './server-version.js';
import { shouldSkip } from './skip.js';

/** What the handler needs of a DelegatedCredential. `undefined` means it does not exist. */
export interface DelegatedCredentialRef {
  secretName?: string;
}
export type DelegatedCredentialLookup = (namespace: string, name: string) => Promise<DelegatedCredentialRef | undefined>;

export interface AdmissionDeps {
  config: InjectorConfig;
  sidecarMode: SidecarMode;
  lookupDelegatedCredential: DelegatedCredentialLookup;
}

export type AdmissionResult = 'skipped' | 'injected' | 'denied' | 'error';

export interface AdmissionOutcome {
  review: AdmissionReview;
  result: AdmissionResult;
  reason: string;
  message: string;
}

function reply(request: AdmissionRequest, response: Omit<AdmissionResponse, 'uid'>): AdmissionReview {
  return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: request.uid, ...response } };
}

function deny(request: AdmissionRequest, result: 'denied' | 'error', reason: string, message: string, code = 400): AdmissionOutcome {
  return { review: reply(request, { allowed: false, status: { code, reason, message } }), result, reason, message };
}

function dcNotFoundMessage(namespace: string, name: string): string {
  return `DelegatedCredential ${namespace}/${name} not found: create it or fix the ${ANNOTATION_INJECT} annotation`;
}

export async function admit(request: AdmissionRequest, deps: AdmissionDeps): Promise<AdmissionOutcome> {
  const original = (request.object ?? {}) as JsonValue;
  // Skip and validation only read; most pods are skipped, so the copy is made only to inject.
  const view = original as unknown as V1Pod;
  const namespace = request.namespace ?? view.metadata?.namespace ?? 'default';

  const skip = shouldSkip({ request, pod: view, namespace, excludedNamespaces: deps.config.excludedNamespaces });
  if (skip) return { review: reply(request, { allowed: true }), result: 'skipped', ...skip };

  // Refused, not skipped: the pod asked for the sidecar, and starting it without one is the silent
  // failure failurePolicy Fail exists to avoid. Injected, the sidecar would share the node's
  // network namespace: its ports would be the node's (colliding with every other such pod on the
  // node) and the app's plaintext port would be reachable on the node's loopback.
  if (view.spec?.hostNetwork === true) {
    return deny(request, 'denied', 'HostNetworkPod', `the pod uses hostNetwork, and dc-operator does not inject into hostNetwork pods: the sidecar would listen on the node's own ports and reach the app over the node's loopback; set spec.hostNetwork to false or remove the ${ANNOTATION_INJECT} annotation`);
  }

  const parsed = parseInjectionRequest(view, deps.config.sidecar.metricsPort);
  if (!parsed.ok) return deny(request, 'denied', 'InvalidAnnotation', parsed.message);
  const { dcName } = parsed.value;

  let dc: DelegatedCredentialRef | undefined;
  try {
    dc = await deps.lookupDelegatedCredential(namespace, dcName);
  } catch (err) {
    const message = `could not look up DelegatedCredential ${namespace}/${dcName}: ${(err as Error).message}`;
    return deny(request, 'error', 'LookupFailed', message, 500);
  }
  if (!dc) return deny(request, 'denied', 'DelegatedCredentialNotFound', dcNotFoundMessage(namespace, dcName));
  if (!dc.secretName) {
    return deny(request, 'denied', 'DelegatedCredentialInvalid', `DelegatedCredential ${namespace}/${dcName} has no spec.secretName: set it so the sidecar has a Secret to mount`);
  }

  const pod = structuredClone(original) as unknown as V1Pod;
  injectSidecar(pod, { request: parsed.value, secretName: dc.secretName }, deps.config.sidecar, deps.sidecarMode);
  // Through JSON, as the API server will read it: an `undefined` field is simply absent.
  const mutated = JSON.parse(JSON.stringify(pod)) as JsonValue;
  const patch = diff(original, mutated);
  // The patch is the product: check it rebuilds the mutated pod before the API server applies it.
  if (!jsonEqual(applyPatch(original, patch), mutated)) throw new Error('internal error: generated patch does not reproduce the mutated pod');

  const message = `injected ${deps.sidecarMode === 'native' ? 'native sidecar' : 'sidecar container'} for DelegatedCredential ${namespace}/${dcName} (Secret ${dc.secretName})`;
  const response: Omit<AdmissionResponse, 'uid'> = {
    allowed: true,
    patchType: 'JSONPatch',
    patch: Buffer.from(JSON.stringify(patch)).toString('base64'),
    auditAnnotations: { 'delegated-credential': `${namespace}/${dcName}` },
  };
  if (parsed.warnings.length > 0) response.warnings = parsed.warnings;
  return { review: reply(request, response), result: 'injected', reason: 'Injected', message };
}
