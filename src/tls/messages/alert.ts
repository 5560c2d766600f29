/** Alert message (RFC 8446 §6): two bytes, level and description. */
import { Reader } from '../codec.js';
import type { AlertDescription, AlertLevel } from '../alerts.js';

export interface Alert {
  readonly level: AlertLevel | number;
  readonly description: AlertDescription | number;
}

export function decodeAlert(body: Uint8Array): Alert {
  const r = new Reader(body);
  const level = r.u8();
  const description = r.u8();
  r.expectEnd('alert');
  return { level, description };
}

export function encodeAlert(level: number, description: number): Uint8Array {
  return Uint8Array.of(level, description);
}
