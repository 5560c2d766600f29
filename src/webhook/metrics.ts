// Prometheus metrics of the webhook. Labels are low-cardinality (result, reason, status): never a
// pod or namespace name. The serving certificate's expiry is read at scrape time from what is
// being served, so it is never stale.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { certValidity } from '../pki/certs.js';
import type { AdmissionResult } from './admission.js';

export class WebhookMetrics {
  readonly registry: Registry;
  private readonly admissions: Counter<'result' | 'reason'>;
  private readonly duration: Histogram<'result'>;
  private readonly badRequests: Counter<'status'>;
  private readonly certificateReloads: Counter<'result'>;
  private servingCertPem: string | undefined;

  /** Pass the operator's registry when the webhook shares its process. */
  constructor(registry: Registry = new Registry()) {
    this.registry = registry;
    const registers = [registry];
    this.admissions = new Counter({
      name: 'dc_operator_webhook_admissions_total',
      help: 'Admission reviews answered, by result (injected, skipped, denied, error) and reason.',
      labelNames: ['result', 'reason'] as const,
      registers,
    });
    this.duration = new Histogram({
      name: 'dc_operator_webhook_admission_duration_seconds',
      help: 'Time to answer one admission review, including the DelegatedCredential lookup.',
      labelNames: ['result'] as const,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.badRequests = new Counter({
      name: 'dc_operator_webhook_bad_requests_total',
      help: 'Requests refused before admission (malformed, too large, wrong method or path), by HTTP status.',
      labelNames: ['status'] as const,
      registers,
    });
    this.certificateReloads = new Counter({
      name: 'dc_operator_webhook_certificate_refreshes_total',
      help: 'Serving certificate refreshes, by result (reloaded, unchanged, failed).',
      labelNames: ['result'] as const,
      registers,
    });
    const self = (): string | undefined => this.servingCertPem;
    new Gauge({
      name: 'dc_operator_webhook_serving_certificate_expiration_timestamp_seconds',
      help: 'notAfter of the certificate the webhook serves, Unix seconds.',
      registers,
      collect() {
        this.reset();
        const pem = self();
        if (pem) this.set(certValidity(pem).notAfter.getTime() / 1000);
      },
    });
  }

  observeAdmission(result: AdmissionResult, reason: string, seconds: number): void {
    this.admissions.inc({ result, reason });
    this.duration.observe({ result }, seconds);
  }

  observeBadRequest(status: number): void {
    this.badRequests.inc({ status: String(status) });
  }

  observeCertificateRefresh(result: 'reloaded' | 'unchanged' | 'failed', servingCertPem?: string): void {
    this.certificateReloads.inc({ result });
    if (servingCertPem) this.servingCertPem = servingCertPem;
  }
}
