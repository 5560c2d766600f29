// Leader election on a coordination.k8s.io/v1 Lease, after client-go's leaderelection: a
// candidate takes the lease when it is free or its holder has not renewed it for
// leaseDuration (measured on OUR clock from when we last saw the record change, so clock skew
// between replicas does not matter); the leader renews every retryPeriod and steps down when
// it could not renew for renewDeadline. Releasing on shutdown lets a standby take over at once.
import type { ApiClient } from './apiserver/client.js';
import type { Clock } from './clock.js';
import { statusCodeOf } from './informer.js';
import type { Logger } from './ports.js';

/** A coordination.k8s.io/v1 Lease as the wire has it (times are RFC 3339 strings with microseconds). */
interface Lease {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
  spec?: { holderIdentity?: string; leaseDurationSeconds?: number; acquireTime?: string; renewTime?: string; leaseTransitions?: number };
}

/** A MicroTime: RFC 3339 with six fractional digits, as the apiserver writes and reads it. */
export function microTime(date: Date): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export interface LeaseRecord {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  renewTime?: string;
  leaseTransitions?: number;
}

export interface Observation {
  /** holder + renewTime as last seen. */
  fingerprint: string;
  /** Our clock when that record was first seen. */
  observedAt: number;
}

export type LeaseDecision = 'take' | 'renew' | 'wait';

/** Pure: may `identity` write the lease now? */
export function leaseDecision(record: LeaseRecord | undefined, identity: string, observation: Observation | undefined, now: number): LeaseDecision {
  const holder = record?.holderIdentity ?? '';
  if (holder === identity) return 'renew';
  if (holder === '') return 'take';
  const durationMs = (record?.leaseDurationSeconds ?? 15) * 1000;
  const fingerprint = `${holder}|${record?.renewTime ?? ''}`;
  if (observation === undefined || observation.fingerprint !== fingerprint) return 'wait'; // a change: start the clock now
  return now - observation.observedAt >= durationMs ? 'take' : 'wait';
}

/** What to do when the Lease's namespace does not exist (the apiserver's 404 names no fix). */
export function missingLeaseNamespaceMessage(namespace: string, lease: string): string {
  return (
    `leader election: cannot create the Lease ${namespace}/${lease}: namespace "${namespace}" does not exist. ` +
    `Create it (kubectl create namespace ${namespace}), or run with --operator-namespace set to the namespace the controller runs in ` +
    `(default: $POD_NAMESPACE, else dc-operator); retrying until it exists`
  );
}

export interface LeaderElectionOptions {
  api: ApiClient;
  namespace: string;
  name: string;
  identity: string;
  clock: Clock;
  log: Logger;
  leaseDurationSeconds?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  /** Counts each Lease request (metrics). */
  count?: (verb: 'get' | 'create' | 'update', resource: 'leases') => void;
}

export class LeaderElector {
  private readonly path: string;
  private observation: Observation | undefined;
  private leading = false;
  private stopped = false;
  private wake: (() => void) | undefined;
  private running: Promise<void> | undefined;
  private readonly leaseDurationSeconds: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private reportedMissingNamespace = false;

  constructor(private readonly opts: LeaderElectionOptions) {
    this.path = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(opts.namespace)}/leases`;
    this.leaseDurationSeconds = opts.leaseDurationSeconds ?? 15;
    this.renewDeadlineMs = opts.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = opts.retryPeriodMs ?? 2_000;
  }

  isLeader(): boolean {
    return this.leading;
  }

  /**
   * Campaigns until stop(): calls onStarted when it becomes leader and onStopped when it loses
   * the lease (then campaigns again).
   */
  run(onStarted: () => void, onStopped: () => Promise<void>): Promise<void> {
    this.running ??= this.campaign(onStarted, onStopped);
    return this.running;
  }

  private async campaign(onStarted: () => void, onStopped: () => Promise<void>): Promise<void> {
    while (!this.stopped) {
      // Bounded like a renewal (client-go's leader-election client times out at RenewDeadline): an
      // acquire that hangs for the client's 60 s request timeout could otherwise write the lease
      // long after it read it free, and lead beside a standby that took it meanwhile.
      if (await this.attemptWithin(this.renewDeadlineMs)) {
        this.leading = true;
        this.opts.log.info('became leader', { lease: `${this.opts.namespace}/${this.opts.name}`, identity: this.opts.identity });
        onStarted();
        // Counted from the acquire's end, as every renewal is from its own: counted from its
        // start, a slow but healthy apiserver (an acquire near renewDeadline) made the first
        // renewal's budget vanish and the leader flap.
        await this.renewLoop(this.opts.clock.now().getTime());
        this.leading = false;
        if (!this.stopped) this.opts.log.warn('lost leadership', { lease: `${this.opts.namespace}/${this.opts.name}` });
        await onStopped();
        continue;
      }
      await this.sleep(this.retryPeriodMs * (1 + Math.random() * 0.2));
    }
  }

  /** `acquiredAt`: when the attempt that took the lease ended. */
  private async renewLoop(acquiredAt: number): Promise<void> {
    let lastRenew = acquiredAt;
    while (!this.stopped) {
      await this.sleep(this.retryPeriodMs);
      if (this.stopped) return;
      // Each attempt gets only the time left before renewDeadline (as client-go's renew context):
      // a GET or PUT that hangs (each may take the client's 60 s request timeout) must not keep
      // us leading after a standby may have taken the lease.
      const left = lastRenew + this.renewDeadlineMs - this.opts.clock.now().getTime();
      if (left > 0 && (await this.attemptWithin(left))) lastRenew = this.opts.clock.now().getTime();
      else if (this.opts.clock.now().getTime() - lastRenew >= this.renewDeadlineMs) return;
    }
  }

  /** tryAcquireOrRenew(), abandoned (its request aborted) and false after `ms`. */
  private attemptWithin(ms: number): Promise<boolean> {
    const abort = new AbortController();
    return new Promise<boolean>((resolve) => {
      const timer = this.opts.clock.setTimer(ms, () => {
        abort.abort();
        resolve(false);
      });
      void this.tryAcquireOrRenew(abort.signal).then((ok) => {
        timer.cancel();
        resolve(ok && !abort.signal.aborted);
      });
    });
  }

  /** One attempt; false on any failure (conflict, held by another, apiserver unreachable, aborted). */
  private async tryAcquireOrRenew(signal?: AbortSignal): Promise<boolean> {
    const { namespace, name, identity, clock, log } = this.opts;
    const now = clock.now();
    try {
      let lease: Lease;
      try {
        this.opts.count?.('get', 'leases');
        lease = await this.readLease(signal);
      } catch (err) {
        if (statusCodeOf(err) !== 404) throw err;
        this.opts.count?.('create', 'leases');
        try {
          await this.opts.api.request('POST', this.path, { body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace }, spec: this.spec(undefined, now, 0) }, signal });
        } catch (createErr) {
          if (statusCodeOf(createErr) !== 404) throw createErr;
          // A 404 on create: the namespace itself is missing. Said once (until it appears), not
          // every retry period; the campaign keeps trying, so creating the namespace is enough.
          if (!this.reportedMissingNamespace) log.error(missingLeaseNamespaceMessage(namespace, name), { lease: `${namespace}/${name}` });
          this.reportedMissingNamespace = true;
          return false;
        }
        this.reportedMissingNamespace = false;
        return true;
      }
      const record: LeaseRecord = {
        holderIdentity: lease.spec?.holderIdentity,
        leaseDurationSeconds: lease.spec?.leaseDurationSeconds,
        renewTime: timeText(lease.spec?.renewTime),
        leaseTransitions: lease.spec?.leaseTransitions,
      };
      const decision = leaseDecision(record, identity, this.observation, now.getTime());
      const fingerprint = `${record.holderIdentity ?? ''}|${record.renewTime ?? ''}`;
      if (this.observation?.fingerprint !== fingerprint) this.observation = { fingerprint, observedAt: now.getTime() };
      if (decision === 'wait') return false;
      const transitions = (record.leaseTransitions ?? 0) + (decision === 'take' ? 1 : 0);
      const acquireText = decision === 'renew' ? timeText(lease.spec?.acquireTime) : undefined;
      const acquire = acquireText === undefined ? undefined : new Date(acquireText);
      this.opts.count?.('update', 'leases');
      if (signal?.aborted === true) return false; // past the deadline: no write
      await this.replaceLease({ ...lease, spec: this.spec(acquire, now, transitions) }, signal);
      return true;
    } catch (err) {
      if (signal?.aborted === true) log.warn('lease request abandoned at renewDeadline', { lease: `${namespace}/${name}` });
      else if (statusCodeOf(err) !== 409) log.warn('lease update failed', { lease: `${namespace}/${name}`, error: String(err) });
      return false;
    }
  }

  private spec(acquireTime: Date | undefined, now: Date, transitions: number): Lease['spec'] {
    return {
      holderIdentity: this.opts.identity,
      leaseDurationSeconds: this.leaseDurationSeconds,
      acquireTime: microTime(acquireTime ?? now),
      renewTime: microTime(now),
      leaseTransitions: transitions,
    };
  }

  private readLease(signal?: AbortSignal): Promise<Lease> {
    return this.opts.api.request<Lease>('GET', `${this.path}/${encodeURIComponent(this.opts.name)}`, { signal });
  }

  /** A PUT of the whole Lease: conditional on its resourceVersion, so two candidates cannot both win. */
  private replaceLease(lease: Lease, signal?: AbortSignal): Promise<Lease> {
    return this.opts.api.request<Lease>('PUT', `${this.path}/${encodeURIComponent(this.opts.name)}`, { body: lease, signal });
  }

  /**
   * Stops campaigning (after the campaign loop has run its onStopped), then gives the lease up
   * if we hold it, so a standby need not wait for it to expire.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.running;
    const { namespace, name, identity } = this.opts;
    try {
      const lease = await this.readLease();
      if (lease.spec?.holderIdentity !== identity) return;
      const now = microTime(this.opts.clock.now());
      const { holderIdentity: _released, ...held } = lease.spec;
      await this.replaceLease({ ...lease, spec: { ...held, leaseDurationSeconds: 1, renewTime: now, acquireTime: now } });
      this.opts.log.info('released leadership', { lease: `${namespace}/${name}` });
    } catch (err) {
      if (statusCodeOf(err) !== 404) this.opts.log.warn('could not release the lease', { error: String(err) });
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = this.opts.clock.setTimer(ms, () => resolve());
      this.wake = () => {
        timer.cancel();
        resolve();
      };
    });
  }
}

/** A MicroTime field as read (a string; anything else is no time). */
function timeText(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}
