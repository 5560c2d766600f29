import { test } from 'node:test';
import assert from 'node:assert/strict';
import { staleCrdFiles } from '../../../src/operator/api/generate-crds.js';
import { customResourceDefinitions } from '../../../src/operator/api/crds.js';
import type {
  DelegatedCredentialSpec,
  DelegatedCredentialSpecInput,
  DelegationSignerSpec,
} from '../../../src/operator/api/v1alpha1.js';

// Compile-time checks: the inferred types are what the reconciler expects.
type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
const specShape: Equals<
  DelegatedCredentialSpec,
  {
    certificateSecretRef: { name: string };
    signerRef?: { kind: 'DelegationSigner' | 'ClusterDelegationSigner'; name: string };
    algorithms: ('ed25519' | 'ecdsa_secp256r1_sha256' | 'ecdsa_secp384r1_sha384' | 'mldsa44' | 'mldsa65' | 'mldsa87')[];
    validity: string;
    renewBefore?: string;
    renewBeforePercentage?: number;
    rotationSchedule?: string;
    secretName: string;
    fallback: 'Keyless' | 'None' | 'CertificateKey';
  }
> = true;
const minimalInput: DelegatedCredentialSpecInput = { certificateSecretRef: { name: 'web-tls' }, secretName: 'web-dc' };
const signerKeyIsDefaulted: Equals<NonNullable<DelegationSignerSpec['inCluster']>['keySecretRef']['key'], string> = true;

void test('the API types are inferred from the schemas with defaulted fields present when read', () => {
  assert.equal(specShape, true);
  assert.equal(signerKeyIsDefaulted, true);
  assert.equal(minimalInput.secretName, 'web-dc');
});

void test('crds/ matches what the TypeScript API generates (run make crds when this fails)', () => {
  assert.deepEqual(staleCrdFiles(), []);
});

void test('the DelegatedCredential CRD has a status subresource, short name dc and the printer columns', () => {
  const dc = customResourceDefinitions().find((c) => c.spec.names.kind === 'DelegatedCredential');
  assert.ok(dc);
  assert.deepEqual(dc.spec.names.shortNames, ['dc']);
  const version = dc.spec.versions[0];
  assert.ok(version);
  assert.deepEqual(version.subresources, { status: {} });
  const visible = version.additionalPrinterColumns.filter((c) => c.priority === undefined).map((c) => c.name);
  assert.deepEqual(visible, ['Ready', 'Algorithms', 'Fallback', 'Fallback-Ready', 'Expires', 'Age']);
  // kubectl prints a future time in a `date` column as "<invalid>": only past times may be dates.
  const dateColumns = version.additionalPrinterColumns.filter((c) => c.type === 'date').map((c) => c.name);
  assert.deepEqual(dateColumns, ['Age']);
  const fallbackReady = version.additionalPrinterColumns.find((c) => c.name === 'Fallback-Ready');
  assert.equal(fallbackReady?.jsonPath, '.status.conditions[?(@.type=="FallbackReady")].status');
  const spec = version.schema.openAPIV3Schema.properties?.['spec'];
  assert.deepEqual(spec?.required, ['certificateSecretRef', 'secretName']);
  assert.deepEqual(spec?.properties?.['algorithms']?.default, ['ecdsa_secp256r1_sha256']);
  assert.equal(spec?.properties?.['validity']?.default, '24h');
  assert.equal(spec?.properties?.['fallback']?.default, 'Keyless');
  assert.deepEqual(spec?.properties?.['fallback']?.enum, ['Keyless', 'None', 'CertificateKey']);
});

void test('the signer CRDs print Ready (and the reason with -o wide) as cert-manager\'s issuers do', () => {
  for (const kind of ['DelegationSigner', 'ClusterDelegationSigner']) {
    const columns = customResourceDefinitions().find((c) => c.spec.names.kind === kind)?.spec.versions[0]?.additionalPrinterColumns ?? [];
    assert.deepEqual(columns.filter((c) => c.priority === undefined).map((c) => c.name), ['Ready', 'Age'], kind);
    assert.equal(columns.find((c) => c.name === 'Ready')?.jsonPath, '.status.conditions[?(@.type=="Ready")].status', kind);
    assert.equal(columns.find((c) => c.name === 'Reason')?.jsonPath, '.status.conditions[?(@.type=="Ready")].reason', kind);
  }
});

void test('the signer CRDs are namespaced and cluster scoped and require exactly one of inCluster and keyless', () => {
  const [, ns, cluster] = customResourceDefinitions();
  assert.equal(ns?.spec.scope, 'Namespaced');
  assert.equal(cluster?.spec.scope, 'Cluster');
  const rules = ns?.spec.versions[0]?.schema.openAPIV3Schema.properties?.['spec']?.['x-kubernetes-validations'];
  assert.deepEqual(rules?.map((r) => r.rule), ['has(self.inCluster) != has(self.keyless)', '!has(self.inCluster) || !has(self.inCluster.keySecretRef.__namespace__)']);
  const clusterRules = cluster?.spec.versions[0]?.schema.openAPIV3Schema.properties?.['spec']?.['x-kubernetes-validations'];
  assert.deepEqual(clusterRules?.map((r) => r.rule), ['has(self.inCluster) != has(self.keyless)'], 'a ClusterDelegationSigner may name the namespace');
});
