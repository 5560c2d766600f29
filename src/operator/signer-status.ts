// Status of DelegationSigners and ClusterDelegationSigners: one condition, Ready, with a reason
// (KeyServerReachable, SignerUnavailable, SecretNotFound, KeyNotFound, KeyLoaded, ...) learned while
// issuing and from the keyless ping loop. Written quietly: only when status, reason or message
// differ from what the cache holds, one write at a time per signer, the latest observation wins.
// A failed write (a conflict, or an install whose RBAC lacks the status subresource) is logged
// and never fails a reconcile: the signer's status is a report, not a decision.
import type { DelegationSigner, DelegationSignerStatus } from './api/v1alpha1.js';
import type { Clock } from './clock.js';
import { getCondition, setCondition } from './conditions.js';
import type { SignerHealth } from './keyless.js';
import type { Logger } from './ports.js';

/** The status a signer should have after `health`; undefined when it already has it (no write). */
export function desiredSignerStatus(signer: DelegationSigner, health: SignerHealth, now: Date): DelegationSignerStatus | undefined {
  const current = getCondition(signer.status?.conditions, 'Ready');
  const status = health.ready ? 'True' : 'False';
  const generation = signer.metadata.generation;
  if (current?.status === status && current.reason === health.reason && current.message === health.message && current.observedGeneration === generation) {
    return undefined;
  }
  const conditions = setCondition(signer.status?.conditions, { type: 'Ready', status, reason: health.reason, message: health.message }, generation, now);
  return { ...signer.status, conditions, ...(generation !== undefined ? { observedGeneration: generation } : {}) };
}

export interface SignerStatusDeps {
  /** The cached signer, by signer id (`DelegationSigner/<ns>/<name>`, `ClusterDelegationSigner/<name>`). */
  lookup(signerId: string): DelegationSigner | undefined;
  write(signer: DelegationSigner, status: DelegationSignerStatus): Promise<DelegationSigner>;
  /** Keeps the cache at least as new as our own write. */
  prime(signer: DelegationSigner): void;
  clock: Clock;
  log: Logger;
}

export class SignerStatusWriter {
  private readonly latest = new Map<string, SignerHealth>();
  private readonly running = new Set<string>();

  constructor(private readonly deps: SignerStatusDeps) {}

  report(health: SignerHealth): void {
    this.latest.set(health.signerId, health);
    if (!this.running.has(health.signerId)) void this.drain(health.signerId);
  }

  private async drain(signerId: string): Promise<void> {
    this.running.add(signerId);
    try {
      for (;;) {
        const health = this.latest.get(signerId);
        this.latest.delete(signerId);
        if (health === undefined) return;
        const signer = this.deps.lookup(signerId);
        if (signer === undefined) continue;
        const status = desiredSignerStatus(signer, health, this.deps.clock.now());
        if (status === undefined) continue;
        try {
          this.deps.prime(await this.deps.write(signer, status));
        } catch (err) {
          this.deps.log.warn('could not write signer status', { signer: signerId, reason: health.reason, error: err instanceof Error ? err.message : String(err) });
        }
      }
    } finally {
      this.running.delete(signerId);
    }
  }
}
