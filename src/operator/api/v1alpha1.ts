// The dc-operator.io/v1alpha1 API: written once, here. The CRD YAML in crds/ is generated from
// these schemas (`make crds`), and the TypeScript types below are inferred from the same values.
import type { V1ObjectMeta } from '@kubernetes/client-node';
import { DURATION_PATTERN } from '../duration.js';
import type { Infer, InferInput } from './schema.js';
import { array, defaulted, enumOf, integer, object, optional, record, string } from './schema.js';

export const GROUP = 'dc-operator.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

/** DC key types / CertificateVerify schemes (RFC 8446 SignatureScheme names). */
export const ALGORITHMS = ['ed25519', 'ecdsa_secp256r1_sha256', 'ecdsa_secp384r1_sha384', 'mldsa44', 'mldsa65', 'mldsa87'] as const;
export type Algorithm = (typeof ALGORITHMS)[number];

/**
 * How a sidecar serves clients without DC support (spec.fallback):
 * - Keyless (default): signatures pulled from the in-cluster key server, or from the signer's
 *   remote key server; no application pod holds the certificate key.
 * - None: DC clients only, stated explicitly.
 * - CertificateKey: explicit opt-in, the certificate key is put into the pod (warning condition).
 */
export const FALLBACKS = ['Keyless', 'None', 'CertificateKey'] as const;
export type Fallback = (typeof FALLBACKS)[number];
export const DEFAULT_FALLBACK: Fallback = 'Keyless';

/** RFC 9345 §4.1.3: a credential may be valid for at most 7 days. */
/**
 * Rotation schedules: the cron macros (lower case, as cron-parser reads them; no @secondly) or
 * 5 fields (minute hour day-of-month month day-of-week) of cron's ASCII alphabet (digits, names
 * such as MON, * ? , / - # L H and H's range in parentheses; cron-parser refuses W) separated by
 * spaces or tabs, with blanks or a YAML block's newline around them, as a
 * Kubernetes CronJob's. cron-parser also reads a leading seconds field: refused, so no schedule
 * fires more than once a minute. One pattern for the CRD's rule (RE2) and renewal.ts (JS).
 */
export const ROTATION_SCHEDULE_MACROS = ['yearly', 'annually', 'monthly', 'weekly', 'daily', 'hourly', 'minutely', 'weekdays', 'weekends'] as const;
const CRON_FIELD = '[0-9A-Za-z*?,/#()-]+';
export const ROTATION_SCHEDULE_PATTERN = `^[ \\t\\r\\n]*(@(${ROTATION_SCHEDULE_MACROS.join('|')})|${CRON_FIELD}([ \\t]+${CRON_FIELD}){4})[ \\t\\r\\n]*$`;
export const MAX_VALIDITY = '168h';
export const DEFAULT_VALIDITY = '24h';

const duration = (description: string) => string({ description, pattern: DURATION_PATTERN, maxLength: 32 });
const dnsSubdomain = (description: string) =>
  string({ description, minLength: 1, maxLength: 253, pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$' });
const secretKey = (description: string) => string({ description, minLength: 1, maxLength: 253, pattern: '^[-._a-zA-Z0-9]+$' });
const localRef = (description: string) => object({ name: dnsSubdomain('Name of the Secret in the same namespace.') }, { description });

// ---- DelegatedCredential ----------------------------------------------------------------------

export const delegatedCredentialSpecSchema = object(
  {
    certificateSecretRef: localRef(
      'A kubernetes.io/tls Secret in this namespace whose leaf certificate carries the DelegationUsage extension (1.3.6.1.4.1.44363.44) and the digitalSignature key usage.',
    ),
    signerRef: optional(
      object(
        {
          kind: enumOf(['DelegationSigner', 'ClusterDelegationSigner'] as const, { description: 'Kind of the signer resource.' }),
          name: dnsSubdomain('Name of the signer (in this namespace for a DelegationSigner).'),
        },
        { description: 'Who signs the credentials. Omitted: tls.key of the certificate Secret.' },
      ),
    ),
    algorithms: defaulted(
      array(enumOf(ALGORITHMS), {
        description: 'Key types of the credentials to keep issued, one credential per entry.',
        listType: 'set',
        minItems: 1,
        maxItems: ALGORITHMS.length,
      }),
      ['ecdsa_secp256r1_sha256'],
    ),
    validity: defaulted(
      string({
        description: `How long each credential is valid, as a Go duration; at most ${MAX_VALIDITY} (RFC 9345) and never past the certificate's notAfter.`,
        pattern: DURATION_PATTERN,
        maxLength: 32,
        validations: [
          { rule: `duration(self) <= duration('${MAX_VALIDITY}')`, message: `validity must be at most ${MAX_VALIDITY} (7 days, RFC 9345)` },
          { rule: `duration(self) >= duration('1m')`, message: 'validity must be at least 1m' },
        ],
      }),
      DEFAULT_VALIDITY,
    ),
    renewBefore: optional(duration('Renew this long before a credential expires. Default: a third of validity.')),
    renewBeforePercentage: optional(
      integer({ description: 'Renew when this percentage of the validity remains (1-99).', minimum: 1, maximum: 99, format: 'int32' }),
    ),
    rotationSchedule: optional(
      string({
        description:
          'Renew on this cron schedule (UTC, 5 fields: minute hour day-of-month month day-of-week, or a macro such as @daily), in addition to before expiry; at most once a minute.',
        minLength: 1,
        maxLength: 128,
        // renewal.ts refuses the same for objects stored before this rule.
        validations: [
          {
            rule: `self.matches('${ROTATION_SCHEDULE_PATTERN}')`,
            message: `rotationSchedule must be 5-field cron (minute hour day-of-month month day-of-week, e.g. "0 */6 * * *") or one of the macros ${ROTATION_SCHEDULE_MACROS.map((m) => `@${m}`).join(', ')}: a seconds field is not supported`,
          },
        ],
      }),
    ),
    secretName: dnsSubdomain('The Secret (in this namespace) the operator writes the credentials into.'),
    fallback: defaulted(
      enumOf(FALLBACKS, {
        description:
          'How the sidecar serves clients without delegated-credential support. Keyless (default): it pulls certificate-key signatures from the in-cluster key server, or from the keyless signer\'s own key server, with a client certificate the operator issues; no pod holds the certificate key. None: DC clients only. CertificateKey: the certificate\'s tls.key is copied into the output Secret and so into every pod that mounts it (a warning condition says so; not possible with a keyless signer).',
      }),
      DEFAULT_FALLBACK,
    ),
  },
  {
    description: 'Desired delegated credentials.',
    validations: [
      {
        rule: '!has(self.renewBefore) || duration(self.renewBefore) < duration(self.validity)',
        message: 'renewBefore must be shorter than validity',
        fieldPath: '.renewBefore',
      },
      {
        rule: '(has(self.renewBefore) ? 1 : 0) + (has(self.renewBeforePercentage) ? 1 : 0) + (has(self.rotationSchedule) ? 1 : 0) <= 1',
        message: 'at most one of renewBefore, renewBeforePercentage and rotationSchedule may be set',
      },
      {
        rule: 'self.secretName != self.certificateSecretRef.name',
        message: 'secretName must differ from certificateSecretRef.name: the operator never overwrites the certificate Secret',
        fieldPath: '.secretName',
      },
    ],
  },
);

const conditionSchema = object({
  type: string({ maxLength: 316 }),
  status: enumOf(['True', 'False', 'Unknown'] as const),
  reason: string({ maxLength: 1024 }),
  message: string({ maxLength: 32768 }),
  lastTransitionTime: string({ format: 'date-time' }),
  observedGeneration: optional(integer({ format: 'int64', minimum: 0 })),
});

export const delegatedCredentialStatusSchema = object(
  {
    conditions: optional(array(conditionSchema, { listType: 'map', listMapKeys: ['type'] })),
    credentials: optional(
      array(
        object({
          algorithm: enumOf(ALGORITHMS),
          notAfter: string({ format: 'date-time' }),
          publicKeyFingerprint: string({ description: 'SHA-256 of the credential public key SubjectPublicKeyInfo, hex.' }),
        }),
        { listType: 'map', listMapKeys: ['algorithm'] },
      ),
    ),
    notAfter: optional(string({ format: 'date-time', description: 'The earliest notAfter of the current credentials.' })),
    renewalTime: optional(string({ format: 'date-time', description: 'When the operator will next issue.' })),
    lastIssuedTime: optional(string({ format: 'date-time' })),
    fallback: optional(enumOf(FALLBACKS, { description: 'The fallback the output Secret is laid out for (see the FallbackReady condition).' })),
    keyServer: optional(string({ description: 'host:port of the key server the sidecar pulls from (fallback Keyless).', maxLength: 261 })),
    observedGeneration: optional(integer({ format: 'int64', minimum: 0 })),
  },
  { description: 'Observed state of the credentials.' },
);

export type DelegatedCredentialSpec = Infer<typeof delegatedCredentialSpecSchema>;
export type DelegatedCredentialSpecInput = InferInput<typeof delegatedCredentialSpecSchema>;
export type DelegatedCredentialStatus = Infer<typeof delegatedCredentialStatusSchema>;
export type Condition = Infer<typeof conditionSchema>;
export type CredentialStatus = NonNullable<DelegatedCredentialStatus['credentials']>[number];

export interface DelegatedCredential {
  apiVersion: typeof API_VERSION;
  kind: 'DelegatedCredential';
  metadata: V1ObjectMeta;
  spec: DelegatedCredentialSpec;
  status?: DelegatedCredentialStatus;
}

// ---- DelegationSigner / ClusterDelegationSigner ------------------------------------------------

// The fields both signer kinds share; a ClusterDelegationSigner adds namespaceSelector.
const signerFields = {
  inCluster: optional(
    object(
      {
        keySecretRef: object(
          {
            name: dnsSubdomain('Name of the Secret holding the certificate private key (PEM, PKCS#8 or SEC1/PKCS#1).'),
            namespace: optional(
              dnsSubdomain('Namespace of the Secret; only for a ClusterDelegationSigner (defaults to the cluster resource namespace), refused on a DelegationSigner.'),
            ),
            key: defaulted(secretKey('Key in the Secret data.'), 'tls.key'),
          },
          { description: 'The Secret with the certificate private key.' },
        ),
      },
      { description: 'Sign with a private key stored in a Secret.' },
    ),
  ),
  keyless: optional(
    object(
      {
        address: string({
          description: 'host:port of a Keyless SSL key server.',
          maxLength: 261,
          pattern: '^(\\[[0-9a-fA-F:.]+\\]|[A-Za-z0-9.-]+):[0-9]{1,5}$',
        }),
        caBundleSecretRef: localRef('Secret with ca.crt, the CA that signed the key server certificate.'),
        clientCertificateSecretRef: localRef('kubernetes.io/tls Secret with the mTLS client certificate.'),
        timeout: defaulted(
          string({
            description: 'Per-request timeout.',
            pattern: DURATION_PATTERN,
            maxLength: 32,
            validations: [{ rule: "duration(self) <= duration('5m')", message: 'timeout must be at most 5m' }],
          }),
          '5s',
        ),
      },
      { description: 'Sign through a remote Keyless SSL key server over mutual TLS.' },
    ),
  ),
};

const exactlyOneSigner = [{ rule: 'has(self.inCluster) != has(self.keyless)', message: 'exactly one of inCluster and keyless must be set' }];

export const delegationSignerSpecSchema = object(signerFields, {
  description: 'How certificate private keys are reached to sign delegated credentials.',
  validations: [
    ...exactlyOneSigner,
    // The field is shared with ClusterDelegationSigner; here it would be ignored (the Secret is
    // read in the signer's own namespace), so refuse it rather than fail later with SecretNotFound.
    {
      rule: '!has(self.inCluster) || !has(self.inCluster.keySecretRef.__namespace__)',
      message:
        'inCluster.keySecretRef.namespace is only for a ClusterDelegationSigner: a DelegationSigner reads its key Secret in its own namespace; remove the field (or use a ClusterDelegationSigner)',
      fieldPath: '.inCluster.keySecretRef.namespace',
    },
  ],
});

// A metav1.LabelSelector, with the rules the API server applies to its own selectors written as CEL.
export const LABEL_SELECTOR_OPERATORS = ['In', 'NotIn', 'Exists', 'DoesNotExist'] as const;
const labelValue = string({ maxLength: 63 });
export const labelSelectorSchema = object(
  {
    matchLabels: optional(record(labelValue, { description: 'key=value pairs; each is the requirement "key In (value)".' })),
    matchExpressions: optional(
      array(
        object(
          {
            key: string({ description: 'The label key.', minLength: 1, maxLength: 317 }),
            operator: enumOf(LABEL_SELECTOR_OPERATORS, { description: 'In, NotIn, Exists or DoesNotExist.' }),
            values: optional(array(labelValue, { description: 'Non-empty for In and NotIn; empty for Exists and DoesNotExist.', maxItems: 256 })),
          },
          {
            validations: [
              {
                rule: "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0) : (!has(self.values) || size(self.values) == 0)",
                message: 'values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist',
              },
            ],
          },
        ),
        { description: 'Requirements, ANDed with each other and with matchLabels.', maxItems: 64 },
      ),
    ),
  },
  {
    description:
      'Which namespaces may use this signer: a label selector over the labels of the DelegatedCredential\'s Namespace. ' +
      'Absent: no namespace may (deny by default). {} selects every namespace. Select by kubernetes.io/metadata.name ' +
      '(set by the API server, immutable) unless only trusted people can label namespaces.',
  },
);

export const clusterDelegationSignerSpecSchema = object(
  { ...signerFields, namespaceSelector: optional(labelSelectorSchema) },
  {
    description: 'How certificate private keys are reached to sign delegated credentials, and for which namespaces.',
    validations: exactlyOneSigner,
  },
);

export const delegationSignerStatusSchema = object({
  conditions: optional(array(conditionSchema, { listType: 'map', listMapKeys: ['type'] })),
  observedGeneration: optional(integer({ format: 'int64', minimum: 0 })),
});

export type DelegationSignerSpec = Infer<typeof delegationSignerSpecSchema>;
export type DelegationSignerSpecInput = InferInput<typeof delegationSignerSpecSchema>;
export type ClusterDelegationSignerSpec = Infer<typeof clusterDelegationSignerSpecSchema>;
export type ClusterDelegationSignerSpecInput = InferInput<typeof clusterDelegationSignerSpecSchema>;
export type DelegationSignerStatus = Infer<typeof delegationSignerStatusSchema>;
export type LabelSelector = Infer<typeof labelSelectorSchema>;

interface SignerObject<K extends string, S> {
  apiVersion: typeof API_VERSION;
  kind: K;
  metadata: V1ObjectMeta;
  spec: S;
  status?: DelegationSignerStatus;
}

/** Either kind; `kind` tells them apart (only a ClusterDelegationSigner has a namespaceSelector). */
export type DelegationSigner = SignerObject<'DelegationSigner', DelegationSignerSpec> | SignerObject<'ClusterDelegationSigner', ClusterDelegationSignerSpec>;

export const RESOURCES = {
  delegatedCredentials: { kind: 'DelegatedCredential', plural: 'delegatedcredentials', namespaced: true },
  delegationSigners: { kind: 'DelegationSigner', plural: 'delegationsigners', namespaced: true },
  clusterDelegationSigners: { kind: 'ClusterDelegationSigner', plural: 'clusterdelegationsigners', namespaced: false },
} as const;
