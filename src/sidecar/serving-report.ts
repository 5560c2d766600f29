/**
 * One info line per interval that says how clients were served and why some were refused:
 *
 *   "last 30s: served 120 via DC, 14 via keyless, 0 via certificate key, 3 resumed; refused 5
 *    (key server unreachable: 5); fallback Keyless not ready: key server 10.0.0.7:2407 unreachable"
 *
 * Per-connection lines would flood the log exactly when something is wrong (every non-DC client
 * of a busy service fails at once when the key server goes away); the metrics count every
 * event, this line says what is going on. Nothing is written for an interval without connections
 * unless the fallback has a problem (an expired client certificate is said every interval).
 */
import type { HandshakeMode } from './metrics.js';

/** Refusal and failure kinds, each with the words the line uses. */
export const REFUSAL_WORDS: Readonly<Record<string, string>> = {
  'keyserver-unreachable': 'key server unreachable',
  'refused-by-keyserver': 'refused by the key server',
  'keyless-client-certificate': 'keyless client certificate not valid',
  'keyless-misconfigured': 'keyless configuration invalid',
  'fallback-none': 'fallback None (DC clients only)',
  'no-fallback': 'no fallback configured',
  'no-common-scheme': 'no signature scheme in common',
  'no-credential': 'no valid credentials loaded',
  'protocol-version': 'TLS 1.2 only',
  'handshake-failed': 'handshake failed',
};

const SERVED_WORDS: Readonly<Record<HandshakeMode, string>> = {
  dc: 'via DC',
  keyless: 'via keyless',
  certificate: 'via certificate key',
  resumed: 'resumed',
};

export interface FallbackSummary {
  readonly fallback: string;
  readonly ready: boolean;
  readonly reason: string;
}

export interface ReportLine {
  readonly message: string;
  readonly meta: Record<string, unknown>;
}

export class ServingReport {
  private servedBy = new Map<HandshakeMode, number>();
  private refusedBy = new Map<string, number>();
  /** The first detail seen per refusal kind in this interval (e.g. the key server's error). */
  private details = new Map<string, string>();

  served(mode: HandshakeMode): void {
    this.servedBy.set(mode, (this.servedBy.get(mode) ?? 0) + 1);
  }

  refused(kind: string, detail?: string): void {
    this.refusedBy.set(kind, (this.refusedBy.get(kind) ?? 0) + 1);
    if (detail !== undefined && !this.details.has(kind)) this.details.set(kind, detail);
  }

  /**
   * The line for the interval that just ended (and starts the next one), or undefined when there
   * is nothing to say: no connections and a fallback without a problem.
   */
  flush(intervalMs: number, fallback: FallbackSummary): ReportLine | undefined {
    const served = this.servedBy;
    const refused = this.refusedBy;
    const details = this.details;
    this.servedBy = new Map();
    this.refusedBy = new Map();
    this.details = new Map();
    const total = [...served.values(), ...refused.values()].reduce((a, b) => a + b, 0);
    if (total === 0 && fallback.ready) return undefined;

    const seconds = Math.round(intervalMs / 1000);
    const servedText = (['dc', 'keyless', 'certificate', 'resumed'] as const).map((m) => `${served.get(m) ?? 0} ${SERVED_WORDS[m]}`).join(', ');
    const refusedCount = [...refused.values()].reduce((a, b) => a + b, 0);
    const refusedText =
      refusedCount === 0
        ? 'refused 0'
        : `refused ${refusedCount} (${[...refused].map(([k, n]) => `${REFUSAL_WORDS[k] ?? k}: ${n}${details.has(k) ? ` [${details.get(k)}]` : ''}`).join('; ')})`;
    const fallbackText = `fallback ${fallback.fallback} ${fallback.ready ? 'ready' : 'not ready'}: ${fallback.reason}`;
    const meta: Record<string, unknown> = {
      intervalSeconds: seconds,
      served: Object.fromEntries(served),
      refused: Object.fromEntries(refused),
      fallback: fallback.fallback,
      fallbackReady: fallback.ready,
      fallbackReason: fallback.reason,
    };
    if (details.size > 0) meta['refusalDetails'] = Object.fromEntries(details);
    return { message: `last ${seconds}s: served ${servedText}; ${refusedText}; ${fallbackText}`, meta };
  }
}
