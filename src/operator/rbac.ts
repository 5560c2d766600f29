// The least the controller needs, as RBAC objects (for the chart and the integration test that
// runs the controller with exactly these rights).
//
// Note what RBAC cannot express: list/watch of Secrets cannot be limited to a label selector or
// a field selector, so the rule that lets the operator watch its own output Secrets (and the
// kubernetes.io/tls ones) grants reading Secrets in general. The operator itself never caches a
// Secret it does not need (see certificate-secrets.ts), but the grant is what it is; install
// with --namespace and a Role per namespace to narrow it.
import type { V1ClusterRole, V1ClusterRoleBinding, V1PolicyRule, V1Role, V1RoleBinding } from '@kubernetes/client-node';
import { GROUP } from './api/v1alpha1.js';

export const CONTROLLER_RULES: V1PolicyRule[] = [
  { apiGroups: [GROUP], resources: ['delegatedcredentials', 'delegationsigners', 'clusterdelegationsigners'], verbs: ['get', 'list', 'watch'] },
  // Signer statuses: Ready (key server reachable, key Secret loads). Without this right the
  // controller still works and logs that it could not write them.
  { apiGroups: [GROUP], resources: ['delegatedcredentials/status', 'delegationsigners/status', 'clusterdelegationsigners/status'], verbs: ['update'] },
  // get: the certificate key at issue time; list/watch: outputs (by label) and certificates (by type);
  // create/update: the output Secret, replaced whole and conditionally; delete: only an output
  // Secret of ours left behind by a changed spec.secretName (preconditions on uid and
  // resourceVersion). Never patch.
  { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list', 'watch', 'create', 'update', 'delete'] },
  { apiGroups: [''], resources: ['events'], verbs: ['create'] },
];

export const LEASE_RULES: V1PolicyRule[] = [{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] }];

export interface RbacObjects {
  clusterRole: V1ClusterRole;
  clusterRoleBinding: V1ClusterRoleBinding;
  leaseRole: V1Role;
  leaseRoleBinding: V1RoleBinding;
}

export function controllerRbac(opts: { name?: string; namespace: string; serviceAccount: string }): RbacObjects {
  const name = opts.name ?? 'dc-operator-controller';
  const subject = { kind: 'ServiceAccount', name: opts.serviceAccount, namespace: opts.namespace };
  const labels = { 'app.kubernetes.io/name': 'dc-operator', 'app.kubernetes.io/component': 'controller' };
  return {
    clusterRole: { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name, labels }, rules: CONTROLLER_RULES },
    clusterRoleBinding: {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name, labels },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name },
      subjects: [subject],
    },
    leaseRole: { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: `${name}-leader-election`, namespace: opts.namespace, labels }, rules: LEASE_RULES },
    leaseRoleBinding: {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: `${name}-leader-election`, namespace: opts.namespace, labels },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: `${name}-leader-election` },
      subjects: [subject],
    },
  };
}
