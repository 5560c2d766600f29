// The least the in-cluster key server needs, as RBAC objects: the one source of the rules the
// chart renders (charts/dc-operator/templates/rbac-keyserver.yaml; test/integration/packaging.test.ts
// compares them in both install modes). Read-only: it never writes to the API.
//
// - cluster-wide (the controller's watch namespaces empty): one ClusterRole with KEYSERVER_RULES;
// - namespaced (same namespaces as the controller): the ClusterRole keeps the cluster-scoped rules,
//   each watched namespace gets a Role with KEYSERVER_NAMESPACE_RULES, and the namespaces of the
//   ClusterDelegationSigner key Secrets and of its own serving Secret, when not watched, a Role
//   reading Secrets.
//
// Secrets: get (the key and certificate, read by name when a grant is built) and list/watch (the
// informers that say when they change: metadata only, certificate Secrets by type and signer key
// Secrets by name, cluster-keys.ts; they keep names only). RBAC cannot narrow list/watch to those
// selectors (a metadata-only request needs list/watch too), so the namespaced mode is what limits
// which namespaces it may read.
import type { V1ClusterRole, V1ClusterRoleBinding, V1PolicyRule } from '@kubernetes/client-node';
import { GROUP } from '../operator/api/v1alpha1.js';
import { boundClusterRole, boundRole, type NamespacedRbac } from '../operator/rbac.js';

const READ = ['get', 'list', 'watch'];

export const KEYSERVER_CLUSTER_RULES: V1PolicyRule[] = [
  { apiGroups: [GROUP], resources: ['clusterdelegationsigners'], verbs: READ },
  // Namespace labels, matched against ClusterDelegationSigner namespaceSelectors.
  { apiGroups: [''], resources: ['namespaces'], verbs: READ },
];

export const KEYSERVER_NAMESPACE_RULES: V1PolicyRule[] = [
  { apiGroups: [GROUP], resources: ['delegatedcredentials', 'delegationsigners'], verbs: READ },
  { apiGroups: [''], resources: ['secrets'], verbs: READ },
];

/** A namespace it does not watch but reads Secrets in: ClusterDelegationSigner keys, its serving Secret. */
export const KEYSERVER_SECRET_RULES: V1PolicyRule[] = [{ apiGroups: [''], resources: ['secrets'], verbs: READ }];

export const KEYSERVER_RULES: V1PolicyRule[] = [...KEYSERVER_CLUSTER_RULES, ...KEYSERVER_NAMESPACE_RULES];

export interface KeyServerRbacOptions {
  name?: string;
  /** Its own namespace (the serving Secret lives here). */
  namespace: string;
  serviceAccount: string;
  watchNamespaces?: readonly string[];
  /** Where ClusterDelegationSigner key Secrets live (default: `namespace`). */
  clusterResourceNamespace?: string;
}

export interface KeyServerRbac {
  clusterRole: V1ClusterRole;
  clusterRoleBinding: V1ClusterRoleBinding;
  roles: NamespacedRbac[];
}

export function keyServerRbac(opts: KeyServerRbacOptions): KeyServerRbac {
  const name = opts.name ?? 'dc-operator-keyserver';
  const subject = { kind: 'ServiceAccount', name: opts.serviceAccount, namespace: opts.namespace };
  const labels = { 'app.kubernetes.io/name': 'dc-operator', 'app.kubernetes.io/component': 'keyserver' };
  const watch = [...new Set(opts.watchNamespaces ?? [])];
  const role = (roleName: string, namespace: string, rules: V1PolicyRule[]) => boundRole(roleName, namespace, rules, labels, subject);
  const roles = watch.map((ns) => role(name, ns, KEYSERVER_NAMESPACE_RULES));
  if (watch.length > 0) {
    for (const ns of new Set([opts.clusterResourceNamespace ?? opts.namespace, opts.namespace])) {
      if (!watch.includes(ns)) roles.push(role(`${name}-secrets`, ns, KEYSERVER_SECRET_RULES));
    }
  }
  return { ...boundClusterRole(name, watch.length > 0 ? KEYSERVER_CLUSTER_RULES : KEYSERVER_RULES, labels, subject), roles };
}
