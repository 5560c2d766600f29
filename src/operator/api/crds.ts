// CustomResourceDefinitions built from the schemas in v1alpha1.ts. generate-crds.ts renders
// these to crds/*.yaml; a unit test fails when the committed YAML is stale.
import { dump as dumpYaml } from 'js-yaml';
import type { JsonSchemaProps } from './schema.js';
import {
  GROUP,
  RESOURCES,
  VERSION,
  clusterDelegationSignerSpecSchema,
  delegatedCredentialSpecSchema,
  delegatedCredentialStatusSchema,
  delegationSignerSpecSchema,
  delegationSignerStatusSchema,
} from './v1alpha1.js';

interface PrinterColumn {
  name: string;
  type: 'string' | 'date' | 'integer';
  jsonPath: string;
  description?: string;
  priority?: number;
}

export interface CustomResourceDefinition {
  apiVersion: 'apiextensions.k8s.io/v1';
  kind: 'CustomResourceDefinition';
  metadata: { name: string; labels: Record<string, string> };
  spec: {
    group: string;
    names: { kind: string; listKind: string; plural: string; singular: string; shortNames?: string[]; categories: string[] };
    scope: 'Namespaced' | 'Cluster';
    versions: {
      name: string;
      served: boolean;
      storage: boolean;
      subresources: { status: Record<string, never> };
      additionalPrinterColumns: PrinterColumn[];
      schema: { openAPIV3Schema: JsonSchemaProps };
    }[];
  };
}

function rootSchema(description: string, spec: JsonSchemaProps, status: JsonSchemaProps): JsonSchemaProps {
  return {
    description,
    type: 'object',
    properties: {
      apiVersion: { type: 'string' },
      kind: { type: 'string' },
      metadata: { type: 'object' },
      spec,
      status,
    },
    required: ['spec'],
  };
}

function crd(opts: {
  kind: string;
  plural: string;
  namespaced: boolean;
  shortNames?: string[];
  description: string;
  spec: JsonSchemaProps;
  status: JsonSchemaProps;
  columns: PrinterColumn[];
}): CustomResourceDefinition {
  const names: CustomResourceDefinition['spec']['names'] = {
    kind: opts.kind,
    listKind: `${opts.kind}List`,
    plural: opts.plural,
    singular: opts.kind.toLowerCase(),
    categories: ['dc-operator'],
  };
  if (opts.shortNames) names.shortNames = opts.shortNames;
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${opts.plural}.${GROUP}`, labels: { 'app.kubernetes.io/part-of': 'dc-operator' } },
    spec: {
      group: GROUP,
      names,
      scope: opts.namespaced ? 'Namespaced' : 'Cluster',
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: opts.columns,
          schema: { openAPIV3Schema: rootSchema(opts.description, opts.spec, opts.status) },
        },
      ],
    },
  };
}

const readyColumns: PrinterColumn[] = [
  { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
  { name: 'Reason', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].reason', priority: 1 },
];

// As cert-manager's Issuer and ClusterIssuer: READY, the reason with -o wide, AGE.
const signerColumns: PrinterColumn[] = [...readyColumns, { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' }];

export function customResourceDefinitions(): CustomResourceDefinition[] {
  return [
    crd({
      ...RESOURCES.delegatedCredentials,
      shortNames: ['dc'],
      description:
        'DelegatedCredential keeps RFC 9345 delegated credentials for a certificate issued and fresh in a Secret.',
      spec: delegatedCredentialSpecSchema.json,
      status: delegatedCredentialStatusSchema.json,
      columns: [
        ...readyColumns.slice(0, 1),
        { name: 'Algorithms', type: 'string', jsonPath: '.spec.algorithms' },
        { name: 'Fallback', type: 'string', jsonPath: '.spec.fallback' },
        { name: 'Fallback-Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="FallbackReady")].status' },
        { name: 'Key-Server', type: 'string', jsonPath: '.status.keyServer', priority: 1 },
        { name: 'Secret', type: 'string', jsonPath: '.spec.secretName', priority: 1 },
        // Future times are text: kubectl prints a `date` column as time since, and "<invalid>" for
        // a time still ahead, which is what an expiry or a renewal time always is.
        { name: 'Expires', type: 'string', jsonPath: '.status.notAfter' },
        { name: 'Renewal', type: 'string', jsonPath: '.status.renewalTime', priority: 1 },
        ...readyColumns.slice(1),
        { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
      ],
    }),
    crd({
      ...RESOURCES.delegationSigners,
      description: 'DelegationSigner says how to reach the certificate key that signs delegated credentials in its namespace.',
      spec: delegationSignerSpecSchema.json,
      status: delegationSignerStatusSchema.json,
      columns: signerColumns,
    }),
    crd({
      ...RESOURCES.clusterDelegationSigners,
      description:
        'ClusterDelegationSigner is a DelegationSigner usable from the namespaces its spec.namespaceSelector selects (none when it is absent).',
      spec: clusterDelegationSignerSpecSchema.json,
      status: delegationSignerStatusSchema.json,
      columns: signerColumns,
    }),
  ];
}

const HEADER = '# Generated from src/operator/api/v1alpha1.ts by `make crds`. Do not edit.\n';

/** file name → YAML text, as committed in crds/. */
export function renderCrdFiles(): Map<string, string> {
  const files = new Map<string, string>();
  for (const def of customResourceDefinitions()) {
    files.set(`${GROUP}_${def.spec.names.plural}.yaml`, HEADER + dumpYaml(def, { lineWidth: -1, noRefs: true }));
  }
  return files;
}
