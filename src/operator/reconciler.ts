// The DelegatedCredential reconciler. Three concerns, each a small function over one key:
// `inspect` decides whether and why to issue (pure policies over cached state),
// `issue` signs and writes the output Secret in one conditional write, `report` sets the
// status quietly and schedules the next renewal. One queue serves all three: handing work
// between them through status conditions (as cert-manager does) would cost API writes per step.
import type { V1Secret } from '@kubernetes/client-node';
import type { DelegatedCredential } from './api/v1alpha1.js';
import type { Clock } from './clock.js';
import type { CertificateFacts, CryptoPort, Signer } from './crypto.js';
import { parseDuration } from './duration.js';
import { QUIET_TRANSIENT_RETRIES, ReconcileFailure, failureOf, isTransientApiError } from './failures.js';
import { statusCodeOf } from './informer.js';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE, MANAGED_SELECTOR, OWNER_LABEL, buildOutputSecret, isControlledBy, labelsNeedRepair, sha256Hex, viewOutputSecret, type FallbackMaterial, type IssuedCredential, type OutputView, type StoredCredential } from './output-secret.js';
import type { CertificateSecretProjection, EventRecorder, IssueMetrics, KubeApi, Listers, Logger } from './ports.js';
import { credentialSetRenewalTime, InvalidRenewalPolicyError, renewalPolicyOf, type RenewalPolicy } from './renewal.js';
import type { KeylessPort, SignerHealth } from './keyless.js';
import { failureForTenant, isClusterSigner, loadSigner, planSigner, type SignerPlan } from './signers.js';
import { staleOutputSecrets } from './stale-outputs.js';
import { desiredStatus, statusEqual, type Advisory, type Failure, type FallbackOutcome, type ReconcileOutcome } from './status.js';
import { BUNDLE_KEYS, DEFAULT_TRUST_DOMAIN, privateKeyKey, sidecarIdentityUri } from './api/serving-bundle.js';
import { fallbackCondition, fallbackOf, planFallback, type SignerKind, type WantedFallback } from './fallback.js';
import type { KeylessIdentityPort } from './keyless-identity.js';
import { CA_BUNDLE_KEY } from './keyless.js';
import type { SigningKeyCache } from './signing-keys.js';
import type { CachedOutputSecret, KeyCheck } from './cache-form.js';
import { credentialRenewalTime, needsIssuing, type IssueReason } from './triggers.js';

/** FallbackReady reasons that come from the object's own spec, worth a Warning event each. */
const SPEC_FALLBACK_WARNINGS: ReadonlySet<string> = new Set(['CertificateKeyInPod', 'CertificateKeyNotFound', 'CertificateKeyUnavailable']);

/** Certificates closer than this to notAfter are treated as expired: a credential would be useless. */
export const MIN_CREDENTIAL_LIFETIME_MS = 60_000;

/** Label repairs of one output Secret in a row after which its labels are taken not to stay (repairLabels). */
export const MAX_LABEL_REPAIRS = 3;

export interface ReconcilerDeps {
  listers: Listers;
  api: KubeApi;
  crypto: CryptoPort;
  clock: Clock;
  events: EventRecorder;
  metrics: IssueMetrics;
  log: Logger;
  operatorNamespace: string;
  /** Where ClusterDelegationSigner Secrets live by default (default: operatorNamespace). */
  clusterResourceNamespace?: string;
  /** Keyless signing (shared, pooled clients per signer); without it keyless signers fail clearly. */
  keyless?: KeylessPort;
  /** The keyless CA, client identities and the in-cluster key server's state; without it fallback Keyless reports NoKeyServer. */
  keylessIdentity?: KeylessIdentityPort;
  /** What issuing learned about an in-cluster signer resource (its key Secret loads, or not). */
  signerHealth?(health: SignerHealth): void;
  /** The certificate keys of the current burst (src/operator/signing-keys.ts); without it every issuance GETs the key. */
  signingKeys?: SigningKeyCache;
  /** Called after our own writes, so the caches never show an older version than we wrote. */
  primeSecret?(secret: V1Secret): void;
  /** Before an output Secret is written: the checks of its private keys, so the cache need not read them back (cache-form.ts). */
  vouchOutputKeys?(sent: V1Secret, privateKeys: Readonly<Record<string, KeyCheck>>): void;
  /** The write failed: drop what was vouched. */
  forgetOutputKeys?(sent: V1Secret): void;
  /** Before an output Secret's key checks are read: the pairwise checks a relist left pending (cache-form.ts). */
  settleOutputKeys?(secret: CachedOutputSecret): void;
  primeCredential?(dc: DelegatedCredential): void;
}

export type ReconcileResult =
  | { kind: 'gone' }
  /** Come back at `at` (renewal, or waiting for a cache to sync). */
  | { kind: 'done'; requeueAt?: Date }
  /** Failed: retry with backoff. */
  | { kind: 'failed'; failure: Failure };

interface Inspection {
  dc: DelegatedCredential;
  certificate: CertificateFacts;
  /** The certificate Secret's resourceVersion as the watch last saw it. */
  certificateResourceVersion: string;
  policy: RenewalPolicy;
  /** How to sign, or why the signer may not be used (nothing is issued, what exists stays). */
  plan: SignerPlan | { kind: 'blocked'; failure: Failure };
  output: OutputView;
  existing: CachedOutputSecret | undefined;
  trigger: IssueReason | null;
  advisory: Advisory | undefined;
  /** What the fallback parts must be and what status says about them; undefined while the signer is blocked. */
  fallback: { wanted: WantedFallback; outcome: FallbackOutcome } | undefined;
}

export class Reconciler {
  /**
   * The certificate of each cached certificate Secret, parsed once: the cache hands out the same
   * projection until the Secret changes, and every DelegatedCredential of a certificate reads it
   * on each pass (~2 % of the operator's CPU in a burst when parsed every time).
   */
  private readonly certificates = new WeakMap<CertificateSecretProjection, CertificateFacts>();
  /** Reads of a certificate's key in flight, by `namespace/name@resourceVersion`. */
  private readonly keyLoads = new Map<string, Promise<{ signer: Signer; certificate: CertificateFacts; keySecret: V1Secret | undefined }>>();

  /** Label repairs in a row by `namespace/name` of the DelegatedCredential; gone once the labels stay. */
  private readonly labelRepairs = new Map<string, number>();

  constructor(private readonly deps: ReconcilerDeps) {}

  /**
   * `attempt`: how many times in a row this key failed before (the queue's count). A transient
   * write error (isTransientApiError) on one of the first QUIET_TRANSIENT_RETRIES attempts is
   * thrown, not reported: the caller retries with backoff, Ready and the events stay as they are.
   */
  async reconcile(namespace: string, name: string, attempt = 0): Promise<ReconcileResult> {
    const dc = this.deps.listers.delegatedCredential(namespace, name);
    if (dc === undefined || dc.metadata.deletionTimestamp !== undefined) {
      this.labelRepairs.delete(`${namespace}/${name}`);
      return { kind: 'gone' };
    }
    if (await this.withdrawCertificateKey(dc)) return { kind: 'done', requeueAt: new Date(this.deps.clock.now().getTime() + 1000) };
    // Never a reason to skip the rest: renewal must not wait on labels that may never stay put.
    return this.reconcileInspected(dc, attempt, await this.repairLabels(dc));
  }

  private async reconcileInspected(dc: DelegatedCredential, attempt: number, labelsFailure: Failure | undefined): Promise<ReconcileResult> {
    const namespace = dc.metadata.namespace ?? '';
    const name = dc.metadata.name ?? '';
    const log = this.deps.log;
    // Labels that do not stay make Ready False, whatever else went well (issuing included).
    const report = (outcome: ReconcileOutcome): Promise<ReconcileResult> => this.report(dc, outcome.failure === undefined && labelsFailure !== undefined ? { ...outcome, failure: labelsFailure } : outcome);
    let inspection: Inspection | 'syncing';
    try {
      inspection = this.inspect(dc);
    } catch (err) {
      const failure = err instanceof CertificateSecretAbsent ? await this.explainAbsentCertificate(err) : failureOf(err);
      return report({ trigger: null, failure, credentials: [] });
    }
    if (inspection === 'syncing') return { kind: 'done', requeueAt: new Date(this.deps.clock.now().getTime() + 1000) };
    const { output, trigger, advisory } = inspection;
    const stored = output.exists ? output.credentials : [];
    const lastIssuedAt = output.exists ? output.issuedAt : undefined;
    const { plan } = inspection;
    if (plan.kind === 'blocked') {
      // Like cert-manager with an issuer that is not ready: the credentials already issued keep
      // being served until they expire, none are renewed, and the status says why.
      return report({ trigger, failure: plan.failure, credentials: stored, lastIssuedAt });
    }
    if (output.exists && !output.ownedByThis) {
      const failure: Failure = {
        reason: 'OutputSecretConflict',
        message: `Secret ${namespace}/${dc.spec.secretName} exists and is not managed by this DelegatedCredential; choose another spec.secretName or delete that Secret`,
      };
      return report({ trigger, failure, credentials: [], signer: plan.description });
    }
    const fallback = inspection.fallback?.outcome;
    if (trigger === null) {
      const renewal = output.exists ? credentialRenewalTime(dc, output, inspection.policy) : undefined;
      await this.removeStaleOutputs(dc);
      return report({ trigger, credentials: stored, signer: plan.description, renewalTime: renewal, lastIssuedAt, advisory, fallback });
    }
    log.info('issuing', { namespace, name, reason: trigger.reason, detail: trigger.message });
    try {
      const issued = await this.issue(inspection, plan);
      await this.removeStaleOutputs(dc);
      return report({ trigger, credentials: issued.credentials, signer: plan.description, renewalTime: issued.renewalTime, issuedAt: issued.issuedAt, advisory, fallback });
    } catch (err) {
      if (isTransientApiError(err) && attempt < QUIET_TRANSIENT_RETRIES) throw err;
      const failure = failureOf(err);
      return report({ trigger, failure, credentials: stored, signer: plan.description, lastIssuedAt });
    }
  }

  /**
   * Puts our labels back on this DelegatedCredential's output Secret (its controller reference has
   * our uid) when someone changed or removed the owner label: without it the Secret would be
   * reported as another's (OutputSecretConflict) and never renewed. A Secret that lost the
   * managed-by label is not in the cache: create() adopts it. The reconcile goes on whatever
   * happens here (a failed or lost repair included): an expiring credential is renewed anyway.
   * Returns a failure once MAX_LABEL_REPAIRS repairs in a row did not stay (a mutating policy
   * rewrites the labels, another writer keeps winning, a webhook refuses the write): the status
   * says so and the queue backs off, instead of a GET and a PUT every second forever.
   */
  private async repairLabels(dc: DelegatedCredential): Promise<Failure | undefined> {
    const namespace = dc.metadata.namespace ?? '';
    const name = dc.metadata.name ?? '';
    const key = `${namespace}/${name}`;
    const cached = this.deps.listers.outputSecret(namespace, dc.spec.secretName);
    if (cached === undefined || !isControlledBy(cached, dc) || !labelsNeedRepair(cached, dc)) {
      this.labelRepairs.delete(key);
      return undefined;
    }
    const meta = { namespace, name, secret: dc.spec.secretName };
    let lastError = '';
    try {
      const secret = await this.deps.api.getSecret(namespace, dc.spec.secretName);
      // Only what the API holds now is repaired: the watch may just be behind our last write.
      if (secret === undefined || !isControlledBy(secret, dc) || !labelsNeedRepair(secret, dc)) return this.labelsFailure(dc, this.labelRepairs.get(key) ?? 0, '');
      const labels = { ...secret.metadata?.labels, [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [OWNER_LABEL]: name };
      // Conditional on the resourceVersion read: a concurrent write wins, and a later pass sees it.
      const written = await this.deps.api.replaceSecret({ ...secret, metadata: { ...secret.metadata, managedFields: undefined, labels } });
      // The rest of this pass reads the cache: without this, a renewal in the same pass would
      // write with the resourceVersion from before the repair and meet a conflict every time.
      this.deps.primeSecret?.(written);
      this.deps.log.info('put our labels back on the output Secret', meta);
    } catch (err) {
      lastError = err instanceof Error ? err.message : String(err);
      this.deps.log.warn('could not put our labels back on the output Secret', { ...meta, detail: lastError });
    }
    const repairs = (this.labelRepairs.get(key) ?? 0) + 1;
    this.labelRepairs.set(key, repairs);
    return this.labelsFailure(dc, repairs, lastError);
  }

  private labelsFailure(dc: DelegatedCredential, repairs: number, lastError: string): Failure | undefined {
    if (repairs <= MAX_LABEL_REPAIRS) return undefined;
    const namespace = dc.metadata.namespace ?? '';
    return {
      reason: 'OutputSecretConflict',
      message: `the labels ${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE} and ${OWNER_LABEL}=${dc.metadata.name ?? ''} on Secret ${namespace}/${dc.spec.secretName} do not stay (${repairs} repairs in a row)${lastError === '' ? '' : ` (last error: ${lastError})`}; find what rewrites them or refuses the write (a mutating admission policy or webhook, another controller). Credentials are still renewed`,
    };
  }

  /**
   * A certificate key left in the output Secret after spec.fallback moved away from CertificateKey
   * leaves at once, before anything that could block or fail issuance (a signer no longer allowed,
   * an expired certificate): the person who changed the field wants the key out of the pods now.
   * The bundle says `fallback: None` until the next issuance writes the wanted fallback, so the
   * sidecar takes the new version and drops the key it held. True when the Secret was rewritten
   * (the caller waits for the watch to show it).
   */
  private async withdrawCertificateKey(dc: DelegatedCredential): Promise<boolean> {
    if (fallbackOf(dc) === 'CertificateKey') return false;
    const namespace = dc.metadata.namespace ?? '';
    const cached = this.deps.listers.outputSecret(namespace, dc.spec.secretName);
    if (cached?.keys.includes(BUNDLE_KEYS.certificateKey) !== true) return false;
    if (cached.metadata.labels?.[OWNER_LABEL] !== dc.metadata.name) return false;
    // The cache keeps no private key, nor the rest of the data this write must keep: one GET.
    const secret = await this.deps.api.getSecret(namespace, dc.spec.secretName);
    if (secret?.data?.[BUNDLE_KEYS.certificateKey] === undefined || secret.metadata?.labels?.[OWNER_LABEL] !== dc.metadata.name) return true; // the watch catches up
    const data: Record<string, string> = { ...secret.data, [BUNDLE_KEYS.fallback]: Buffer.from('None').toString('base64') };
    delete data[BUNDLE_KEYS.certificateKey];
    try {
      // Conditional on the resourceVersion read: a concurrent write wins, and the next pass sees it.
      await this.deps.api.replaceSecret({ ...secret, metadata: { ...secret.metadata, managedFields: undefined }, data });
    } catch (err) {
      if (statusCodeOf(err) !== 409) throw err;
    }
    this.deps.log.info('removed the certificate key from the output Secret: spec.fallback is no longer CertificateKey', {
      namespace,
      name: dc.metadata.name,
      secret: dc.spec.secretName,
      fallback: fallbackOf(dc),
    });
    return true;
  }

  /** Reads caches only and decides; throws ReconcileFailure for input a person must fix. */
  private inspect(dc: DelegatedCredential): Inspection | 'syncing' {
    const { listers, crypto, clock, operatorNamespace, clusterResourceNamespace } = this.deps;
    const namespace = dc.metadata.namespace ?? '';
    const now = clock.now();
    const policy = renewalPolicyOfSpec(dc);
    const lookup = listers.certificateSecret(namespace, dc.spec.certificateSecretRef.name);
    if (lookup.state === 'syncing') return 'syncing';
    const secretName = `${namespace}/${dc.spec.certificateSecretRef.name}`;
    if (lookup.state === 'absent') throw new CertificateSecretAbsent(namespace, dc.spec.certificateSecretRef.name);
    if (lookup.secret.invalid !== undefined) throw new ReconcileFailure('CertificateInvalid', `tls.crt of Secret ${secretName}: ${lookup.secret.invalid}`);
    if (lookup.secret.chainPem === undefined) throw new ReconcileFailure('CertificateInvalid', `Secret ${secretName} has no tls.crt`);
    let certificate = this.certificates.get(lookup.secret);
    if (certificate === undefined) {
      certificate = crypto.readCertificate(lookup.secret.chainPem, `tls.crt of Secret ${secretName}`);
      this.certificates.set(lookup.secret, certificate);
    }
    // A key in tls.crt (a combined PEM) does not stop issuing: only the certificates are cached and
    // copied, so the key goes nowhere through us, and refusing would take the credentials of a
    // working setup away. But anything else that treats tls.crt as public spreads it: say so.
    const [keyLabel] = lookup.secret.privateKeyLabels;
    const advisory: Advisory | undefined =
      keyLabel === undefined
        ? undefined
        : {
            reason: 'CertificateSecretHoldsPrivateKey',
            message: `tls.crt of Secret ${secretName} holds a ${keyLabel} block (a combined PEM); only its certificates were copied into the output Secret, but whatever else reads tls.crt as public gets the key: move the key to tls.key and keep only CERTIFICATE blocks in tls.crt`,
          };
    checkCertificate(certificate, secretName, now);
    let plan: Inspection['plan'];
    try {
      const planned = planSigner(dc, listers, clusterResourceNamespace ?? operatorNamespace);
      if (planned === 'syncing') return 'syncing';
      plan = planned;
    } catch (err) {
      // Decided below, once the output Secret is known: what it holds stays in place.
      if (!(err instanceof ReconcileFailure)) throw err;
      plan = { kind: 'blocked', failure: failureOf(err) };
    }
    const existing = listers.outputSecret(namespace, dc.spec.secretName);
    if (existing !== undefined) this.deps.settleOutputKeys?.(existing);
    const output = viewOutputSecret(existing, dc, certificate.leafDer, crypto.inspectCredential);
    const fallback = plan.kind === 'blocked' ? undefined : this.fallbackFor(dc, plan, lookup.secret.hasKey);
    const trigger = needsIssuing({ dc, output, certificate, policy, now, ...(fallback ? { fallback: fallback.wanted } : {}) });
    return { dc, certificate, certificateResourceVersion: lookup.secret.resourceVersion, policy, plan, output, existing, trigger, advisory, fallback };
  }

  /** The fallback's plan for this signer, from the keyless identity's snapshot (no API call). */
  private fallbackFor(dc: DelegatedCredential, plan: SignerPlan, certificateHasKey: boolean): Inspection['fallback'] {
    const identity = this.deps.keylessIdentity?.snapshot();
    const namespace = dc.metadata.namespace ?? '';
    const signer: SignerKind =
      plan.kind === 'keyless'
        ? { kind: 'keyless', address: plan.address, description: plan.description, healthy: this.deps.keyless?.healthOf?.(plan.signerId) }
        : { kind: plan.kind };
    const value = fallbackOf(dc);
    const fallbackPlan = planFallback(value, signer, identity, { secretName: `${namespace}/${dc.spec.certificateSecretRef.name}`, hasKey: certificateHasKey });
    const identityUri = sidecarIdentityUri({ trustDomain: identity?.trustDomain ?? DEFAULT_TRUST_DOMAIN, namespace, name: dc.metadata.name ?? '' });
    return {
      wanted: { plan: fallbackPlan, fallback: value, identityUri, ...(dc.metadata.uid ? { uid: dc.metadata.uid } : {}), caBundlePem: identity?.caBundlePem },
      outcome: { value, condition: fallbackCondition(fallbackPlan, signer, identity), ...(fallbackPlan.kind === 'keyless' ? { keyServer: fallbackPlan.address } : {}) },
    };
  }

  /**
   * The fallback parts of the bundle, made at issue time: a fresh client certificate that expires
   * with the credentials, or the certificate key (checked against the certificate first).
   */
  private async fallbackMaterial(i: Inspection, plan: SignerPlan, certificate: CertificateFacts, keySecret: V1Secret | undefined, notAfter: Date, now: Date): Promise<FallbackMaterial> {
    const wanted = i.fallback?.wanted;
    const value = fallbackOf(i.dc);
    if (wanted === undefined) return { fallback: value };
    const { plan: fallbackPlan } = wanted;
    if (fallbackPlan.kind === 'certificate-key') {
      const namespace = i.dc.metadata.namespace ?? '';
      const secretName = i.dc.spec.certificateSecretRef.name;
      const secret = plan.kind === 'certificate-key' && keySecret !== undefined ? keySecret : await this.deps.api.getSecret(namespace, secretName);
      const key = secret?.data?.['tls.key'];
      if (key === undefined || key === '') {
        throw new ReconcileFailure('KeyNotFound', `fallback CertificateKey copies tls.key of the certificate Secret ${namespace}/${secretName}, which has none: put the key there, or use fallback Keyless`);
      }
      const keyPem = Buffer.from(key, 'base64').toString('utf8');
      // Never a key that is not this certificate's: keySigner throws KeyMismatch/KeyInvalid.
      this.deps.crypto.keySigner(keyPem, `tls.key of Secret ${namespace}/${secretName}`, certificate);
      return { fallback: value, certificateKeyPem: keyPem };
    }
    if (fallbackPlan.kind !== 'keyless') return { fallback: value };
    const identity = this.deps.keylessIdentity;
    if (identity === undefined) return { fallback: value };
    let caPem: string | undefined = wanted.caBundlePem;
    if (fallbackPlan.source === 'remote' && plan.kind === 'keyless') {
      const secret = await this.deps.api.getSecret(plan.secretNamespace, plan.caBundleSecret);
      const ca = secret?.data?.[CA_BUNDLE_KEY];
      if (ca === undefined || ca === '') throw new ReconcileFailure('KeyNotFound', `${plan.description}: its CA bundle Secret has no ${CA_BUNDLE_KEY}, which the sidecar needs to reach the key server`, { signer: true });
      caPem = Buffer.from(ca, 'base64').toString('utf8');
    }
    if (caPem === undefined) return { fallback: value };
    const client = await identity.issueClientCertificate(wanted.identityUri, notAfter, now, wanted.uid);
    return { fallback: value, keyless: { address: fallbackPlan.address, caPem, clientCertPem: client.certPem, clientKeyPem: client.keyPem } };
  }

  /**
   * The certificate cache only holds kubernetes.io/tls Secrets: one GET tells "missing" from
   * "wrong type" (only on this failure path, which retries with backoff).
   */
  private async explainAbsentCertificate(absent: CertificateSecretAbsent): Promise<Failure> {
    const name = `${absent.secretNamespace}/${absent.secretName}`;
    const secret = await this.deps.api.getSecret(absent.secretNamespace, absent.secretName);
    if (secret === undefined) {
      return { reason: 'SecretNotFound', message: `the certificate Secret ${name} does not exist; create it (type kubernetes.io/tls) or fix spec.certificateSecretRef` };
    }
    return {
      reason: 'CertificateInvalid',
      message: `Secret ${name} has type ${secret.type ?? '(none)'}; the certificate Secret must be of type kubernetes.io/tls`,
    };
  }

  /** Signs every requested algorithm, then writes the Secret once; nothing is written on any failure. */
  private async issue(i: Inspection, plan: SignerPlan): Promise<{ credentials: StoredCredential[]; renewalTime: Date; issuedAt: Date }> {
    const { api, crypto, clock, metrics, events } = this.deps;
    const { signer, certificate, keySecret } = await this.signingKeyOf(i, plan);
    const now = clock.now();
    checkCertificate(certificate, `${i.dc.metadata.namespace ?? ''}/${i.dc.spec.certificateSecretRef.name}`, now);
    const validityMs = Math.min(parseDuration(i.dc.spec.validity), certificate.notAfter.getTime() - now.getTime());
    const issued: IssuedCredential[] = [];
    for (const algorithm of i.dc.spec.algorithms) {
      const started = performance.now();
      issued.push(await crypto.issue({ certificate, signer, algorithm, validitySeconds: Math.floor(validityMs / 1000), now }));
      metrics.signDuration(algorithm, plan.kind, (performance.now() - started) / 1000);
    }
    const notAfter = new Date(Math.min(...issued.map((c) => c.notAfter.getTime())));
    const fallback = await this.fallbackMaterial(i, plan, certificate, keySecret, notAfter, now);
    const secret = buildOutputSecret({
      dc: i.dc,
      fallback,
      chainPem: certificate.chainPem,
      certificateFingerprint: certificate.fingerprint,
      credentials: issued,
      issuedAt: now,
      existing: i.existing,
    });
    const credentials = issued.map((c) => ({ algorithm: c.algorithm, notAfter: c.notAfter, publicKeyFingerprint: sha256Hex(c.publicKeySpki) }));
    this.deps.vouchOutputKeys?.(secret, Object.fromEntries(credentials.map((c) => [privateKeyKey(c.algorithm), { publicKeyFingerprint: c.publicKeyFingerprint }])));
    let written: V1Secret;
    try {
      written = i.existing === undefined ? await this.create(secret) : await api.replaceSecret(secret);
    } catch (err) {
      this.deps.forgetOutputKeys?.(secret);
      throw err;
    }
    this.deps.primeSecret?.(written);
    for (const c of issued) metrics.issued(c.algorithm);
    // `!`: spec.algorithms has at least one entry (minItems 1), so one credential was issued.
    const renewal = credentialSetRenewalTime({ uid: i.dc.metadata.uid ?? '', issuedAt: now, notAfters: issued.map((c) => c.notAfter), policy: i.policy })!;
    events.record(i.dc, 'Normal', 'Issued', `issued ${credentials.map((c) => c.algorithm).join(', ')} into Secret ${i.dc.spec.secretName} (${i.trigger?.reason ?? 'Issued'}: ${i.trigger?.message ?? ''})`);
    return { credentials, renewalTime: renewal, issuedAt: now };
  }

  /**
   * The signer and the certificate it belongs to. With the certificate's own key, both come from
   * one GET of the certificate Secret (so they belong together), or from the burst's key cache while
   * the watch still shows the resourceVersion that GET returned.
   */
  private async signingKeyOf(i: Inspection, plan: SignerPlan): Promise<{ signer: Signer; certificate: CertificateFacts; keySecret: V1Secret | undefined }> {
    const { signingKeys } = this.deps;
    if (plan.kind !== 'certificate-key') return { signer: await this.loadSigner(plan, i.certificate, undefined), certificate: i.certificate, keySecret: undefined };
    // fallback CertificateKey copies the key PEM itself, which is never cached: it reads the Secret.
    const cacheable = fallbackOf(i.dc) !== 'CertificateKey';
    if (cacheable && signingKeys !== undefined) {
      const cached = signingKeys.get(plan.namespace, plan.secretName, i.certificateResourceVersion);
      if (cached !== undefined) return { ...cached, keySecret: undefined };
      // The workers' concurrent reconciles of a burst share one GET (and one parse), not one each.
      const flight = `${plan.namespace}/${plan.secretName}@${i.certificateResourceVersion}`;
      let load = this.keyLoads.get(flight);
      if (load === undefined) {
        load = this.readSigningKey(i, plan, true).finally(() => this.keyLoads.delete(flight));
        this.keyLoads.set(flight, load);
      }
      const { signer, certificate } = await load;
      return { signer, certificate, keySecret: undefined };
    }
    return this.readSigningKey(i, plan, false);
  }

  /** One GET of the certificate Secret: its signer and certificate, kept for the burst when `cache`. */
  private async readSigningKey(i: Inspection, plan: Extract<SignerPlan, { kind: 'certificate-key' }>, cache: boolean): Promise<{ signer: Signer; certificate: CertificateFacts; keySecret: V1Secret | undefined }> {
    const { api, crypto, signingKeys } = this.deps;
    const keySecret = await api.getSecret(plan.namespace, plan.secretName);
    let certificate = i.certificate;
    const crt = keySecret?.data?.['tls.crt'];
    if (crt !== undefined) certificate = crypto.readCertificate(Buffer.from(crt, 'base64').toString('utf8'), `tls.crt of Secret ${plan.namespace}/${plan.secretName}`);
    const signer = await this.loadSigner(plan, certificate, keySecret);
    const resourceVersion = keySecret?.metadata?.resourceVersion ?? '';
    if (cache) signingKeys?.put(plan.namespace, plan.secretName, resourceVersion, { signer, certificate });
    return { signer, certificate, keySecret };
  }

  /**
   * Deletes output Secrets this DelegatedCredential wrote under an earlier spec.secretName, once
   * the current one is in place. A failure is logged and retried at the next reconcile.
   */
  private async removeStaleOutputs(dc: DelegatedCredential): Promise<void> {
    const { listers, api, log } = this.deps;
    const namespace = dc.metadata.namespace ?? '';
    const stale = staleOutputSecrets(listers.outputSecretsOwnedBy?.(namespace, dc.metadata.name ?? '') ?? [], dc);
    for (const secret of stale) {
      const name = secret.metadata?.name ?? '';
      try {
        await api.deleteSecret(namespace, name, { uid: secret.metadata?.uid ?? '', resourceVersion: secret.metadata?.resourceVersion ?? '' });
        log.info('removed the previous output Secret', { namespace, name: dc.metadata.name, secret: name, now: dc.spec.secretName });
        this.deps.events.record(dc, 'Normal', 'OutputSecretRemoved', `removed Secret ${name}, the output before spec.secretName became ${dc.spec.secretName}`);
      } catch (err) {
        log.warn('could not remove the previous output Secret', { namespace, name: dc.metadata.name, secret: name, error: err instanceof Error ? err.message : String(err) });
      }
    }
  }

  /**
   * Loads the signer; an in-cluster signer resource learns whether its key Secret loads (with the
   * Secret's coordinates: its status is its owner's), the DelegatedCredential of a
   * ClusterDelegationSigner learns only what failureForTenant lets through.
   */
  private async loadSigner(plan: SignerPlan, certificate: CertificateFacts, keySecret: V1Secret | undefined) {
    const { api, crypto, keyless, signerHealth, log } = this.deps;
    try {
      const signer = await loadSigner(plan, certificate, api, crypto, keyless, keySecret);
      if (plan.kind === 'in-cluster') signerHealth?.({ signerId: plan.signerId, ready: true, reason: 'KeyLoaded', message: `key ${plan.key} of Secret ${plan.namespace}/${plan.secretName} loads` });
      return signer;
    } catch (err) {
      if (!(err instanceof ReconcileFailure)) throw err;
      // A key that does not belong to one certificate is that DelegatedCredential's problem, not the signer's.
      if (plan.kind === 'in-cluster' && err.reason !== 'KeyMismatch') signerHealth?.({ signerId: plan.signerId, ready: false, reason: err.reason, message: err.message });
      if (!isClusterSigner(plan)) throw err;
      log.debug('cluster signer failed', { signer: plan.kind === 'certificate-key' ? '' : plan.signerId, reason: err.reason, detail: err.message });
      throw failureForTenant(plan, err, certificate);
    }
  }

  /**
   * Creates the output Secret. AlreadyExists means a Secret of that name exists without our
   * label (our cache only holds labelled ones): someone else's, which we never overwrite.
   */
  private async create(secret: V1Secret): Promise<V1Secret> {
    try {
      return await this.deps.api.createSecret(secret);
    } catch (err) {
      if (statusCodeOf(err) !== 409) throw err;
      const name = `${secret.metadata?.namespace ?? ''}/${secret.metadata?.name ?? ''}`;
      // Ours after all when its controller reference carries this DelegatedCredential's uid (someone
      // removed the managed-by label, so it left our cache): adopted, replaced conditionally.
      const existing = await this.deps.api.getSecret(secret.metadata?.namespace ?? '', secret.metadata?.name ?? '');
      const controller = secret.metadata?.ownerReferences?.find((o) => o.controller === true);
      const ours = existing?.metadata?.ownerReferences?.find((o) => o.controller === true);
      if (existing !== undefined && controller !== undefined && ours?.kind === controller.kind && ours.uid === controller.uid) {
        return await this.deps.api.replaceSecret({ ...secret, metadata: { ...secret.metadata, resourceVersion: existing.metadata?.resourceVersion } });
      }
      throw new ReconcileFailure(
        'OutputSecretConflict',
        `Secret ${name} exists and is not managed by dc-operator (no label ${MANAGED_SELECTOR}); choose another spec.secretName or delete that Secret`,
      );
    }
  }

  /** Writes the status when it changed, records failures, and says when to come back. */
  private async report(dc: DelegatedCredential, outcome: ReconcileOutcome): Promise<ReconcileResult> {
    const { api, clock, events, metrics, log } = this.deps;
    const now = clock.now();
    const status = desiredStatus(dc, outcome, now);
    const previousReady = dc.status?.conditions?.find((c) => c.type === 'Ready');
    if (!statusEqual(dc.status, status)) {
      const updated = await api.updateStatus(dc, status);
      this.deps.primeCredential?.(updated);
    }
    const meta = { namespace: dc.metadata.namespace, name: dc.metadata.name };
    if (outcome.failure) {
      metrics.failed(outcome.failure.reason);
      const repeated = previousReady?.reason === outcome.failure.reason && previousReady.message.startsWith(outcome.failure.message);
      if (!repeated) events.record(dc, 'Warning', outcome.failure.reason, outcome.failure.message);
      log.warn('not ready', { ...meta, reason: outcome.failure.reason, detail: outcome.failure.message });
      return { kind: 'failed', failure: outcome.failure };
    }
    const fallback = outcome.fallback?.condition;
    const previousFallback = dc.status?.conditions?.find((c) => c.type === 'FallbackReady');
    // Events only for what this object's spec asks for; a key server that is down or not installed
    // is one fact for every DelegatedCredential (logged once by the probe, shown in each status),
    // and an event per object would be a storm on each outage.
    if (fallback !== undefined && SPEC_FALLBACK_WARNINGS.has(fallback.reason) && previousFallback?.reason !== fallback.reason) {
      events.record(dc, 'Warning', fallback.reason, fallback.message);
    }
    if (outcome.advisory !== undefined && previousReady?.reason !== outcome.advisory.reason) {
      events.record(dc, 'Warning', outcome.advisory.reason, outcome.advisory.message);
      log.warn('issued, with advice', { ...meta, reason: outcome.advisory.reason, detail: outcome.advisory.message });
    }
    return outcome.renewalTime ? { kind: 'done', requeueAt: outcome.renewalTime } : { kind: 'done' };
  }
}

class CertificateSecretAbsent extends Error {
  constructor(
    readonly secretNamespace: string,
    readonly secretName: string,
  ) {
    super(`certificate Secret ${secretNamespace}/${secretName} not in the cache`);
  }
}

function renewalPolicyOfSpec(dc: DelegatedCredential): RenewalPolicy {
  try {
    return renewalPolicyOf(dc.spec, dc.metadata.uid);
  } catch (err) {
    // Only the spec's own fault is InvalidSpec; anything else (a module that cannot load) is ours.
    if (!(err instanceof InvalidRenewalPolicyError)) throw err;
    throw new ReconcileFailure('InvalidSpec', err.message);
  }
}

function checkCertificate(certificate: CertificateFacts, secretName: string, now: Date): void {
  if (certificate.delegationProblem !== undefined) {
    throw new ReconcileFailure('CertificateMissingDelegationUsage', `Secret ${secretName}: ${certificate.delegationProblem}`);
  }
  if (certificate.notBefore.getTime() > now.getTime()) {
    throw new ReconcileFailure('CertificateNotYetValid', `the certificate in Secret ${secretName} is not valid before ${certificate.notBefore.toISOString()}`);
  }
  if (certificate.notAfter.getTime() - now.getTime() < MIN_CREDENTIAL_LIFETIME_MS) {
    const when = certificate.notAfter.getTime() <= now.getTime() ? 'expired at' : 'expires within a minute, at';
    throw new ReconcileFailure('CertificateExpired', `the certificate in Secret ${secretName} ${when} ${certificate.notAfter.toISOString()}; renew it`);
  }
}
