// Keyless signing for the operator: one pooled KeylessClient per keyless signer resource, shared
// by every DelegatedCredential that names it (a KeylessSigner per certificate is only a thin view
// over the shared client: SKI, schemes, verification). The client is keyed by the signer's uid,
// address, timeout and the resourceVersions of its two Secrets; when any of them changes, a new
// client is made and the old one closed.
//
// Health: every signature (and every ping) says whether the key server answered. When it did not,
// the signer is "unhealthy": issuing through it fails at once (SignerUnavailable, naming the address
// and the last error) instead of each retry waiting for the timeout, a capped, backing-off ping
// loop runs for it, and the first answer reports recovery so the controller retries the waiting
// DelegatedCredentials at once instead of at the end of their (up to 5 minute) backoff.
import type { V1Secret } from '@kubernetes/client-node';
import { KeylessClient } from '../keyless/client.js';
import { KeylessUnavailableError } from '../keyless/errors.js';
import { KeylessSigner } from '../signer/keyless.js';
import type { SignatureScheme } from '../tls/constants.js';
import type { Clock } from './clock.js';
import type { CertificateFacts, Signer } from './crypto.js';
import { ReconcileFailure } from './failures.js';
import type { KubeApi, Logger } from './ports.js';
import type { FailureReason } from './status.js';

/** A keyless signer resource, resolved from the spec and the signer caches (see signers.ts). */
export interface KeylessPlan {
  kind: 'keyless';
  description: string;
  /** `DelegationSigner/<ns>/<name>` or `ClusterDelegationSigner/<name>`. */
  signerId: string;
  uid: string;
  address: string;
  /** Where the signer's Secrets live: its own namespace, or the cluster resource namespace. */
  secretNamespace: string;
  caBundleSecret: string;
  clientCertificateSecret: string;
  timeoutMs: number;
}

/** What the controller learns about a signer resource (written to its status, quietly). */
export interface SignerHealth {
  signerId: string;
  ready: boolean;
  reason: string;
  message: string;
}

export interface KeylessPort {
  /** A Signer for this certificate through the signer's shared client; throws ReconcileFailure. */
  signer(plan: KeylessPlan, certificate: CertificateFacts): Promise<Signer>;
  /** Health of a signer's key server as last observed (undefined: never used). */
  healthOf?(signerId: string): boolean | undefined;
}

export interface KeylessSignersOptions {
  api: Pick<KubeApi, 'getSecret'>;
  clock: Clock;
  log: Logger;
  /** Signer resource health changed (or was observed again). */
  onHealth?(health: SignerHealth): void;
  /** An unhealthy signer answered a ping again: retry what waits on it. */
  onRecovered?(signerId: string): void;
  /** Secrets read less than this long ago are not read again (bulk issuing: 2 GETs per signer, not per object). */
  secretRecheckMs?: number;
  /** Ping loop of an unhealthy signer: first and largest interval. */
  pingMinMs?: number;
  pingMaxMs?: number;
  /** Connections per key server (default 2). */
  poolSize?: number;
}

interface Entry {
  readonly fingerprint: string;
  readonly client: KeylessClient;
  readonly plan: KeylessPlan;
  checkedAt: number;
  healthy: boolean;
  /** Why the signer is unhealthy (names the address and the error). */
  problem?: string;
  monitor?: { timer: NodeJS.Timeout; delayMs: number };
}

export const CA_BUNDLE_KEY = 'ca.crt';

export class KeylessSigners implements KeylessPort {
  private readonly entries = new Map<string, Entry>();
  private readonly loading = new Map<string, Promise<Entry>>();
  private closed = false;

  constructor(private readonly opts: KeylessSignersOptions) {}

  async signer(plan: KeylessPlan, certificate: CertificateFacts): Promise<Signer> {
    const entry = await this.entryFor(plan);
    // Known down: fail at once instead of holding a worker for the timeout on every retry of every
    // DelegatedCredential (thousands may wait on one key server); the ping loop notices recovery.
    if (!entry.healthy) throw new ReconcileFailure('SignerUnavailable', entry.problem ?? `key server ${plan.address} of ${plan.description} is unavailable`, { signer: true });
    let keyless: KeylessSigner;
    try {
      keyless = new KeylessSigner({ client: entry.client, certificate: certificate.leafDer, timeoutMs: plan.timeoutMs, address: plan.address, ca: '', clientCert: '', clientKey: '' });
    } catch (err) {
      throw new ReconcileFailure('KeyInvalid', `${plan.description}: the certificate key cannot be used over keyless: ${messageOf(err)}`, { signer: true });
    }
    return {
      schemes: keyless.schemes,
      sign: async (scheme: SignatureScheme, message: Uint8Array): Promise<Uint8Array> => {
        try {
          const signature = await keyless.sign(scheme, message);
          this.observe(entry, true);
          return signature;
        } catch (err) {
          // Only a key server that does not answer is unavailable; one that answers with an error
          // (no such key, a signature that does not verify) is up, and retrying sooner would not help.
          if (err instanceof KeylessUnavailableError) this.observe(entry, false, messageOf(err));
          throw new Error(`${plan.description}: ${messageOf(err)}`, { cause: err });
        }
      },
    };
  }

  /** The shared client of a signer (tests and metrics). */
  clientOf(signerId: string): KeylessClient | undefined {
    return this.entries.get(signerId)?.client;
  }

  /** Health of a signer as last observed (undefined: never used). */
  healthOf(signerId: string): boolean | undefined {
    return this.entries.get(signerId)?.healthy;
  }

  /** The signer resource is gone: close its client. */
  forget(signerId: string): void {
    const entry = this.entries.get(signerId);
    if (entry) this.drop(entry);
  }

  async close(): Promise<void> {
    this.closed = true;
    const entries = [...this.entries.values()];
    for (const e of entries) this.drop(e);
    await Promise.all(entries.map((e) => e.client.close()));
  }

  private async entryFor(plan: KeylessPlan): Promise<Entry> {
    const current = this.entries.get(plan.signerId);
    const now = this.opts.clock.now().getTime();
    if (current && current.plan.uid === plan.uid && current.plan.address === plan.address && current.plan.timeoutMs === plan.timeoutMs && now - current.checkedAt < (this.opts.secretRecheckMs ?? 10_000)) {
      return current;
    }
    let pending = this.loading.get(plan.signerId);
    if (!pending) {
      pending = this.load(plan).finally(() => this.loading.delete(plan.signerId));
      this.loading.set(plan.signerId, pending);
    }
    return pending;
  }

  /** Reads the two Secrets (targeted GETs) and returns the cached client, or a new one if they changed. */
  private async load(plan: KeylessPlan): Promise<Entry> {
    const ca = await this.readSecret(plan, plan.caBundleSecret, 'CA bundle');
    const client = await this.readSecret(plan, plan.clientCertificateSecret, 'client certificate');
    const caPem = this.field(plan, ca, CA_BUNDLE_KEY, 'CA bundle');
    const certPem = this.field(plan, client, 'tls.crt', 'client certificate');
    const keyPem = this.field(plan, client, 'tls.key', 'client certificate');
    const fingerprint = [plan.uid, plan.address, plan.timeoutMs, ca.metadata?.resourceVersion ?? '', client.metadata?.resourceVersion ?? ''].join('|');
    const now = this.opts.clock.now().getTime();
    const current = this.entries.get(plan.signerId);
    if (current?.fingerprint === fingerprint) {
      current.checkedAt = now;
      return current;
    }
    if (current) {
      this.opts.log.info('keyless signer changed: new key server client', { signer: plan.signerId, address: plan.address });
      this.drop(current);
    }
    let keylessClient: KeylessClient;
    try {
      keylessClient = new KeylessClient({ address: plan.address, ca: caPem, cert: certPem, key: keyPem, timeoutMs: plan.timeoutMs, poolSize: this.opts.poolSize ?? 2 });
    } catch (err) {
      throw this.signerFailure(plan, 'SignerUnavailable', `${plan.description}: ${messageOf(err)}`);
    }
    const entry: Entry = { fingerprint, client: keylessClient, plan, checkedAt: now, healthy: true };
    if (this.closed) void keylessClient.close();
    else this.entries.set(plan.signerId, entry);
    return entry;
  }

  private async readSecret(plan: KeylessPlan, name: string, what: string): Promise<V1Secret> {
    const secret = await this.opts.api.getSecret(plan.secretNamespace, name);
    if (secret === undefined) {
      throw this.signerFailure(plan, 'SecretNotFound', `the ${what} Secret ${plan.secretNamespace}/${name} of ${plan.description} does not exist`);
    }
    return secret;
  }

  private field(plan: KeylessPlan, secret: V1Secret, key: string, what: string): string {
    const value = secret.data?.[key];
    const name = `${secret.metadata?.namespace ?? plan.secretNamespace}/${secret.metadata?.name ?? ''}`;
    if (value === undefined || value === '') throw this.signerFailure(plan, 'KeyNotFound', `the ${what} Secret ${name} of ${plan.description} has no ${key}`);
    return Buffer.from(value, 'base64').toString('utf8');
  }

  private signerFailure(plan: KeylessPlan, reason: FailureReason, message: string): ReconcileFailure {
    this.opts.onHealth?.({ signerId: plan.signerId, ready: false, reason, message });
    return new ReconcileFailure(reason, message, { signer: true });
  }

  /** Records an answer (or its absence); a change of health is reported, an unhealthy signer is pinged. */
  private observe(entry: Entry, healthy: boolean, error?: string): void {
    if (this.entries.get(entry.plan.signerId) !== entry) return; // replaced meanwhile
    const { plan } = entry;
    if (healthy) {
      const recovered = !entry.healthy;
      entry.healthy = true;
      entry.problem = undefined;
      this.stopMonitor(entry);
      this.opts.onHealth?.({ signerId: plan.signerId, ready: true, reason: 'KeyServerReachable', message: `key server ${plan.address} answers` });
      if (recovered) {
        this.opts.log.info('keyless key server answers again', { signer: plan.signerId, address: plan.address });
        this.opts.onRecovered?.(plan.signerId);
      }
      return;
    }
    const message = `key server ${plan.address} of ${plan.description} is unavailable: ${error ?? 'no answer'}`;
    if (entry.healthy) this.opts.log.warn('keyless key server unavailable', { signer: plan.signerId, address: plan.address, error });
    entry.healthy = false;
    entry.problem = message;
    this.opts.onHealth?.({ signerId: plan.signerId, ready: false, reason: 'SignerUnavailable', message });
    if (!entry.monitor) this.schedulePing(entry, this.opts.pingMinMs ?? 5_000);
  }

  private schedulePing(entry: Entry, delayMs: number): void {
    if (this.closed) return;
    const timer = setTimeout(() => {
      entry.client.ping().then(
        () => {
          entry.monitor = undefined;
          this.observe(entry, true);
        },
        (err: unknown) => {
          if (this.entries.get(entry.plan.signerId) !== entry || entry.healthy) return;
          const next = Math.min(delayMs * 2, this.opts.pingMaxMs ?? 60_000);
          this.opts.log.debug('keyless ping failed', { signer: entry.plan.signerId, error: messageOf(err), nextInMs: next });
          this.schedulePing(entry, next);
        },
      );
    }, delayMs);
    timer.unref();
    entry.monitor = { timer, delayMs };
  }

  private stopMonitor(entry: Entry): void {
    if (entry.monitor) clearTimeout(entry.monitor.timer);
    entry.monitor = undefined;
  }

  private drop(entry: Entry): void {
    this.stopMonitor(entry);
    if (this.entries.get(entry.plan.signerId) === entry) this.entries.delete(entry.plan.signerId);
    void entry.client.close();
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
