// The least the controller needs, as RBAC objects: the one source of the rules the chart renders
// (test/integration/packaging.test.ts compares them, in both install modes) and that the
// integration tests run the controller under (test/integration/operator-rbac*.test.ts).
//
// Two install modes:
// - cluster-wide (no watch namespaces, the default): one ClusterRole with CONTROLLER_RULES;
// - namespaced (`--namespace` / the chart's controller.watchNamespaces): the ClusterRole keeps only
//   CLUSTER_RULES (cluster-scoped resources), each watched namespace gets a Role with
//   NAMESPACE_RULES, and the cluster resource namespace a Role with CLUSTER_RESOURCE_NAMESPACE_RULES.
// Both: the leader-election Role in the operator namespace.
//
// What RBAC cannot express: list/watch of Secrets limited to a label or field selector, and
// resourceNames for names only known at run time (they come from DelegatedCredential and signer
// specs). So the rights that let the controller watch its own output Secrets (by label), the
// certificate Secrets (by type) and key Secrets (by name) grant reading every Secret of the
// namespace; the controller caches only what it needs (see README.md), the namespaced mode limits
// the namespaces. docs/install.md ("Permissions") says why each rule exists.
import type { V1ClusterRole, V1ClusterRoleBinding, V1PolicyRule, V1Role, V1RoleBinding } from '@kubernetes/client-node';
import { GROUP } from './api/v1alpha1.js';

/** Cluster-scoped resources: in the ClusterRole in both modes. */
export const CLUSTER_RULES: V1PolicyRule[] = [
  { apiGroups: [GROUP], resources: ['clusterdelegationsigners'], verbs: ['get', 'list', 'watch'] },
  // The signer's Ready condition. Without it the controller still works and logs that it could not write it.
  { apiGroups: [GROUP], resources: ['clusterdelegationsigners/status'], verbs: ['update'] },
  // The labels of namespaces, matched against ClusterDelegationSigner namespaceSelectors (cached
  // as name + labels; a label change decides again at once). Namespaces are cluster-scoped, so this
  // stays in the ClusterRole in the namespaced mode too.
  { apiGroups: [''], resources: ['namespaces'], verbs: ['list', 'watch'] },
];

/** Namespaced resources, in every namespace the controller watches (all of them: in the ClusterRole). */
export const NAMESPACE_RULES: V1PolicyRule[] = [
  { apiGroups: [GROUP], resources: ['delegatedcredentials', 'delegationsigners'], verbs: ['get', 'list', 'watch'] },
  { apiGroups: [GROUP], resources: ['delegatedcredentials/status', 'delegationsigners/status'], verbs: ['update'] },
  // Never called: the output Secret's ownerReference sets blockOwnerDeletion, and the
  // OwnerReferencesPermissionEnforcement admission plugin (on by default in OpenShift) allows that
  // only to a client that may update the owner's finalizers (cert-manager grants certificates/finalizers
  // for the same reason). Without it every output Secret create is refused with 403.
  { apiGroups: [GROUP], resources: ['delegatedcredentials/finalizers'], verbs: ['update'] },
  // get: the certificate key at issue time, a signer's key and keyless Secrets; list/watch: output
  // Secrets (by label), certificate Secrets (by type, only in namespaces with a DelegatedCredential),
  // key Secrets (by name); create/update: the output Secret, replaced whole and conditionally, never
  // patched; delete: only an output Secret of ours left behind by a changed spec.secretName, with
  // uid/resourceVersion preconditions. Garbage collection cannot do that one: the owner (the
  // DelegatedCredential) still exists; it does remove every output Secret when its owner is deleted.
  { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list', 'watch', 'create', 'update', 'delete'] },
  { apiGroups: [''], resources: ['events'], verbs: ['create'] },
];

/**
 * Namespaced mode, in the cluster resource namespace (unless it is watched anyway): the Secrets
 * ClusterDelegationSigners name (in-cluster key, keyless CA bundle and client certificate), read by
 * name (get) and the key Secrets watched by name (list/watch with a metadata.name field selector).
 */
export const CLUSTER_RESOURCE_NAMESPACE_RULES: V1PolicyRule[] = [{ apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list', 'watch'] }];

/**
 * Namespaced mode, in the operator namespace (unless it is watched anyway): the keyless CA Secret
 * and the key server's serving Secret, read by name, created by the leader when missing and
 * renewed (replaced conditionally). Names come from flags, so they cannot be resourceNames.
 */
export const OPERATOR_NAMESPACE_RULES: V1PolicyRule[] = [{ apiGroups: [''], resources: ['secrets'], verbs: ['get', 'create', 'update'] }];

/** Cluster-wide mode: the ClusterRole. */
export const CONTROLLER_RULES: V1PolicyRule[] = [...CLUSTER_RULES, ...NAMESPACE_RULES];

export const LEASE_RULES: V1PolicyRule[] = [{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] }];

export interface NamespacedRbac {
  role: V1Role;
  roleBinding: V1RoleBinding;
}

export interface RbacObjects {
  clusterRole: V1ClusterRole;
  clusterRoleBinding: V1ClusterRoleBinding;
  leaseRole: V1Role;
  leaseRoleBinding: V1RoleBinding;
  /**
   * Namespaced mode: a Role named like the ClusterRole in each watched namespace, one named
   * `<name>-signer-keys` in the cluster resource namespace when it is not watched, and one named
   * `<name>-keyless-identities` in the operator namespace when it is not watched. Cluster-wide: none.
   */
  roles: NamespacedRbac[];
}

export interface ControllerRbacOptions {
  name?: string;
  /** The operator namespace: the ServiceAccount and the Lease live here. */
  namespace: string;
  serviceAccount: string;
  /** The controller's `--namespace` list; empty or absent: cluster-wide. */
  watchNamespaces?: readonly string[];
  /** Where ClusterDelegationSigner Secrets live (default: `namespace`). */
  clusterResourceNamespace?: string;
}

type Subject = { kind: string; name: string; namespace: string };
type Labels = Record<string, string>;

/** A Role and the RoleBinding of the same name that grants it to `subject`. */
export function boundRole(roleName: string, namespace: string, rules: V1PolicyRule[], labels: Labels, subject: Subject): NamespacedRbac {
  return {
    role: { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: roleName, namespace, labels }, rules },
    roleBinding: {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: roleName, namespace, labels },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: roleName },
      subjects: [subject],
    },
  };
}

/** A ClusterRole and the ClusterRoleBinding of the same name that grants it to `subject`. */
export function boundClusterRole(name: string, rules: V1PolicyRule[], labels: Labels, subject: Subject): { clusterRole: V1ClusterRole; clusterRoleBinding: V1ClusterRoleBinding } {
  return {
    clusterRole: { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name, labels }, rules },
    clusterRoleBinding: {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name, labels },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name },
      subjects: [subject],
    },
  };
}

export function controllerRbac(opts: ControllerRbacOptions): RbacObjects {
  const name = opts.name ?? 'dc-operator-controller';
  const subject = { kind: 'ServiceAccount', name: opts.serviceAccount, namespace: opts.namespace };
  const labels = { 'app.kubernetes.io/name': 'dc-operator', 'app.kubernetes.io/component': 'controller' };
  const watch = [...new Set(opts.watchNamespaces ?? [])];
  const clusterResources = opts.clusterResourceNamespace ?? opts.namespace;
  const namespaced = (roleName: string, namespace: string, rules: V1PolicyRule[]): NamespacedRbac => boundRole(roleName, namespace, rules, labels, subject);
  const roles = watch.map((ns) => namespaced(name, ns, NAMESPACE_RULES));
  if (watch.length > 0 && !watch.includes(clusterResources)) roles.push(namespaced(`${name}-signer-keys`, clusterResources, CLUSTER_RESOURCE_NAMESPACE_RULES));
  if (watch.length > 0 && !watch.includes(opts.namespace)) roles.push(namespaced(`${name}-keyless-identities`, opts.namespace, OPERATOR_NAMESPACE_RULES));
  const lease = namespaced(`${name}-leader-election`, opts.namespace, LEASE_RULES);
  return {
    ...boundClusterRole(name, watch.length > 0 ? CLUSTER_RULES : CONTROLLER_RULES, labels, subject),
    leaseRole: lease.role,
    leaseRoleBinding: lease.roleBinding,
    roles,
  };
}
