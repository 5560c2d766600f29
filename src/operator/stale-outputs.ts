// Output Secrets a DelegatedCredential left behind when its spec.secretName changed. Removed only
// when they are certainly ours and certainly this object's: the managed-by label, the owner label
// naming it, and a controller reference with its uid (so a Secret of a deleted namesake, or one a
// person relabelled, is never touched), and only after the new output Secret was written.
import type { DelegatedCredential } from './api/v1alpha1.js';
import type { CachedOutputSecret } from './cache-form.js';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE, OWNER_LABEL } from './output-secret.js';

export function staleOutputSecrets(candidates: readonly CachedOutputSecret[], dc: DelegatedCredential): CachedOutputSecret[] {
  const uid = dc.metadata.uid;
  if (uid === undefined || uid === '') return [];
  return candidates.filter((s) => {
    const meta = s.metadata;
    if (meta?.namespace !== dc.metadata.namespace || meta?.name === dc.spec.secretName) return false;
    if (meta?.labels?.[MANAGED_BY_LABEL] !== MANAGED_BY_VALUE || meta.labels[OWNER_LABEL] !== dc.metadata.name) return false;
    return meta.ownerReferences?.some((o) => o.controller === true && o.kind === 'DelegatedCredential' && o.uid === uid) === true;
  });
}
