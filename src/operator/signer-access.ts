// "May a DelegatedCredential in this namespace use this ClusterDelegationSigner?" Pure: the
// signer's spec.namespaceSelector against the labels of the DelegatedCredential's Namespace.
//
// Why a selector at all: a ClusterDelegationSigner holds (or reaches) a certificate's private key.
// Anyone who may create a DelegatedCredential and a kubernetes.io/tls Secret can put someone
// else's public certificate in that Secret; if the signer signed for any namespace, that person
// would get delegated credentials (and their private keys) for a name that is not theirs.
//
// Semantics are Kubernetes' own (metav1.LabelSelector): absent selects nothing (deny by default,
// as a nil selector means labels.Nothing()), {} selects everything, matchLabels and every
// matchExpression are ANDed; NotIn and DoesNotExist match a namespace without the key.
import type { DelegationSigner, LabelSelector } from './api/v1alpha1.js';

export type Access = { allowed: true } | { allowed: false; message: string };

/** Why a selector cannot be evaluated, or undefined when it is well formed. */
export function labelSelectorProblem(selector: LabelSelector): string | undefined {
  for (const [i, e] of (selector.matchExpressions ?? []).entries()) {
    const values = e.values ?? [];
    if ((e.operator === 'In' || e.operator === 'NotIn') && values.length === 0) return `matchExpressions[${i}]: ${e.operator} needs values`;
    if ((e.operator === 'Exists' || e.operator === 'DoesNotExist') && values.length > 0) return `matchExpressions[${i}]: ${e.operator} takes no values`;
    if (!['In', 'NotIn', 'Exists', 'DoesNotExist'].includes(e.operator)) return `matchExpressions[${i}]: unknown operator ${String(e.operator)}`;
  }
  return undefined;
}

/** Whether `labels` satisfy a well-formed selector (see labelSelectorProblem). */
export function labelSelectorMatches(selector: LabelSelector, labels: Readonly<Record<string, string>>): boolean {
  const has = (key: string): boolean => Object.prototype.hasOwnProperty.call(labels, key);
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    if (!has(key) || labels[key] !== value) return false;
  }
  for (const e of selector.matchExpressions ?? []) {
    const values = e.values ?? [];
    const ok =
      e.operator === 'In' ? has(e.key) && values.includes(labels[e.key] ?? '')
      : e.operator === 'NotIn' ? !has(e.key) || !values.includes(labels[e.key] ?? '')
      : e.operator === 'Exists' ? has(e.key)
      : e.operator === 'DoesNotExist' ? !has(e.key)
      : false;
    if (!ok) return false;
  }
  return true;
}

/**
 * The decision, with a message for the DelegatedCredential's namespace: it names the signer and
 * what to change, and never the selector's content (which may list other tenants' namespaces) nor
 * the signer's Secrets. `labels` undefined: the namespace is not known (being deleted).
 */
export function clusterSignerAccess(signer: DelegationSigner, namespace: string, labels: Readonly<Record<string, string>> | undefined): Access {
  const name = signer.metadata.name ?? '';
  const what = `ClusterDelegationSigner ${name}`;
  // Only a ClusterDelegationSigner carries a selector; anything else here is refused, not trusted.
  const selector = signer.kind === 'ClusterDelegationSigner' ? signer.spec.namespaceSelector : undefined;
  if (selector === undefined) {
    return {
      allowed: false,
      message: `${what} has no spec.namespaceSelector, so it signs for no namespace (deny by default): its owner must add a namespaceSelector that selects namespace ${namespace}, or use a DelegationSigner in ${namespace}`,
    };
  }
  const problem = labelSelectorProblem(selector);
  if (problem !== undefined) {
    return { allowed: false, message: `${what} has an invalid spec.namespaceSelector (${problem}), which selects no namespace: its owner must fix it` };
  }
  if (labels === undefined) return { allowed: false, message: `namespace ${namespace} is not known to the operator (being deleted?); ${what} signs only for namespaces its spec.namespaceSelector selects` };
  if (labelSelectorMatches(selector, labels)) return { allowed: true };
  return {
    allowed: false,
    message: `${what} does not allow namespace ${namespace}: the namespace's labels do not match the signer's spec.namespaceSelector; label namespace ${namespace} so they do, or ask the signer's owner to widen the selector, or use a DelegationSigner in ${namespace}`,
  };
}
