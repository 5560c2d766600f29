// Conditions set by type, quietly: lastTransitionTime moves only when the status flips, and
// callers compare the result to decide whether a status write is needed at all.
import type { Condition } from './api/v1alpha1.js';

export type ConditionType = 'Ready' | 'Issuing' | 'SignerReady' | 'FallbackReady';
export type ConditionStatus = Condition['status'];

export interface DesiredCondition {
  type: ConditionType;
  status: ConditionStatus;
  reason: string;
  message: string;
}

/** Returns a new list with `desired` set; keeps lastTransitionTime when the status is unchanged. */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  desired: DesiredCondition,
  observedGeneration: number | undefined,
  now: Date,
): Condition[] {
  const list = [...(conditions ?? [])];
  const index = list.findIndex((c) => c.type === desired.type);
  const existing = index >= 0 ? list[index] : undefined;
  const next: Condition = {
    type: desired.type,
    status: desired.status,
    reason: desired.reason,
    message: desired.message,
    lastTransitionTime: existing !== undefined && existing.status === desired.status ? existing.lastTransitionTime : isoSeconds(now),
  };
  if (observedGeneration !== undefined) next.observedGeneration = observedGeneration;
  if (index >= 0) list[index] = next;
  else list.push(next);
  return list;
}

export function getCondition(conditions: readonly Condition[] | undefined, type: ConditionType): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/** RFC 3339 without fractional seconds, as metav1.Time serialises. */
export function isoSeconds(d: Date): string {
  return new Date(Math.floor(d.getTime() / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}
