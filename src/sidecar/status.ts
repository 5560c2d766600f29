/**
 * The sidecar's lifecycle as one phase, not a set of booleans:
 *
 *   initializing ──first valid load──> serving <──> reloading
 *        │                                │            │
 *        └──────────── SIGTERM ───────────┴────────────┴──> draining (final)
 *
 * A failed first load stays in `initializing` (not ready) and keeps watching. The HTTP handlers
 * only encode what `readiness()` decides here.
 */
import { isServableAt, MAX_DC_VALIDITY_SECONDS } from '../tls/delegated/index.js';
import type { ServingMaterial } from './material.js';

export type SidecarPhase =
  | { readonly phase: 'initializing'; readonly since: Date }
  | { readonly phase: 'serving'; readonly since: Date }
  | { readonly phase: 'reloading'; readonly since: Date }
  | { readonly phase: 'draining'; readonly since: Date; readonly deadline: Date };

export type PhaseName = SidecarPhase['phase'];

export class InvalidTransition extends Error {
  constructor(from: PhaseName, to: PhaseName) {
    super(`the sidecar cannot go from ${from} to ${to}`);
    this.name = 'InvalidTransition';
  }
}

export class SidecarStatus {
  private state: SidecarPhase;

  constructor(private readonly now: () => Date = () => new Date()) {
    this.state = { phase: 'initializing', since: now() };
  }

  get current(): SidecarPhase {
    return this.state;
  }

  /** A reload begins. From `initializing` (retrying the first load) the phase stays put. */
  reloadStarted(): void {
    switch (this.state.phase) {
      case 'serving':
        this.state = { phase: 'reloading', since: this.now() };
        return;
      case 'initializing':
      case 'reloading':
      case 'draining':
        return;
    }
  }

  /** A reload ended; `haveMaterial` is whether the store holds a valid set (old or new). */
  reloadFinished(haveMaterial: boolean): void {
    switch (this.state.phase) {
      case 'initializing':
      case 'reloading':
        if (haveMaterial) this.state = { phase: 'serving', since: this.now() };
        return;
      case 'serving':
      case 'draining':
        return;
    }
  }

  /** SIGTERM: from any phase, once. */
  drain(deadline: Date): void {
    if (this.state.phase === 'draining') throw new InvalidTransition('draining', 'draining');
    this.state = { phase: 'draining', since: this.now(), deadline };
  }
}

export interface Readiness {
  readonly ready: boolean;
  readonly reason: string;
}

export interface ServingCapabilities {
  /** A keyless signer is configured (certificate handshakes without a local key). */
  readonly keyless: boolean;
}

/**
 * Ready means: not draining, and a valid set is loaded that can serve a handshake right now — an
 * unexpired delegated credential, or the certificate (unexpired) with a local or keyless key.
 */
export function readiness(phase: SidecarPhase, material: ServingMaterial | undefined, capabilities: ServingCapabilities, now: Date): Readiness {
  switch (phase.phase) {
    case 'draining':
      return { ready: false, reason: 'draining: shutting down' };
    case 'initializing':
      return { ready: false, reason: 'initializing: no valid credentials loaded yet' };
    case 'serving':
    case 'reloading':
      break;
  }
  if (!material) return { ready: false, reason: 'no valid credentials loaded' };
  const nowMs = now.getTime();
  const live = material.credentials.entries.filter((e) => isServableAt(e, nowMs));
  if (live.length > 0) {
    const earliest = Math.min(...live.map((e) => e.expiresAt.getTime()));
    return { ready: true, reason: `serving ${live.length} delegated credential(s); next expiry ${new Date(earliest).toISOString()}` };
  }
  const certificateValid = material.certificateNotAfter.getTime() > nowMs;
  if (certificateValid && material.certificateKey) return { ready: true, reason: 'serving with the certificate key (no unexpired delegated credential)' };
  if (certificateValid && capabilities.keyless) return { ready: true, reason: 'serving through the keyless signer (no unexpired delegated credential)' };
  const early = material.credentials.entries.filter((e) => e.expiresAt.getTime() > nowMs);
  if (early.length > 0) {
    const from = Math.min(...early.map((e) => e.expiresAt.getTime() - MAX_DC_VALIDITY_SECONDS * 1000));
    return { ready: false, reason: `the delegated credentials have more than 7 days left by this clock (is it behind?); servable from ${new Date(from).toISOString()}` };
  }
  if (material.credentials.entries.length > 0) return { ready: false, reason: 'every delegated credential has expired' };
  return { ready: false, reason: 'the certificate has expired' };
}
