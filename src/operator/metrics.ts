// Prometheus metrics. Per-object series are written from the informer cache at scrape time
// so a deleted DelegatedCredential leaves no stale series; counters and the sign
// histogram carry only low-cardinality labels.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { DelegatedCredential, DelegationSigner } from './api/v1alpha1.js';
import type { IssueMetrics } from './ports.js';

export interface MetricsSources {
  credentials(): readonly DelegatedCredential[];
  isLeader(): boolean;
  queueDepth(): number;
  /** DelegationSigners and ClusterDelegationSigners in the caches. */
  signers?(): readonly DelegationSigner[];
}

export class OperatorMetrics implements IssueMetrics {
  readonly registry = new Registry();
  private readonly issuedTotal: Counter<'algorithm'>;
  private readonly failuresTotal: Counter<'reason'>;
  private readonly signSeconds: Histogram<'algorithm' | 'signer'>;
  private readonly apiRequests: Counter<'verb' | 'resource'>;
  private sources: MetricsSources | undefined;
  /** Gauges with a series per signer: filled from the caches by each scrape, emptied after it. */
  private readonly perObject: Gauge<string>[] = [];

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'dc_operator_' });
    const self = (): MetricsSources | undefined => this.sources;

    this.perObject.push(new Gauge({
      name: 'dc_operator_signer_ready_status',
      help: 'The Ready condition of each DelegationSigner/ClusterDelegationSigner (1 for the current status value; Unknown until the operator has used it).',
      labelNames: ['kind', 'namespace', 'name', 'condition'] as const,
      registers,
      collect() {
        this.reset();
        for (const signer of self()?.signers?.() ?? []) {
          const ready = signer.status?.conditions?.find((c) => c.type === 'Ready')?.status ?? 'Unknown';
          const labels = { kind: signer.kind, namespace: signer.metadata.namespace ?? '', name: signer.metadata.name ?? '' };
          for (const value of ['True', 'False', 'Unknown']) this.set({ ...labels, condition: value }, value === ready ? 1 : 0);
        }
      },
    }) as Gauge<string>);
    new Gauge({
      name: 'dc_operator_leader',
      help: '1 when this replica holds the leader lease.',
      registers,
      collect() {
        this.set(self()?.isLeader() === true ? 1 : 0);
      },
    });
    new Gauge({
      name: 'dc_operator_workqueue_depth',
      help: 'Keys waiting in the reconcile queue.',
      registers,
      collect() {
        this.set(self()?.queueDepth() ?? 0);
      },
    });
    this.issuedTotal = new Counter({
      name: 'dc_operator_issued_credentials_total',
      help: 'Delegated credentials issued.',
      labelNames: ['algorithm'] as const,
      registers,
    });
    this.failuresTotal = new Counter({
      name: 'dc_operator_issue_failures_total',
      help: 'Reconciles that could not issue or validate credentials, by condition reason.',
      labelNames: ['reason'] as const,
      registers,
    });
    this.apiRequests = new Counter({
      name: 'dc_operator_api_requests_total',
      help: 'Requests the operator made to the apiserver (a watch counts once, when it starts).',
      labelNames: ['verb', 'resource'] as const,
      registers,
    });
    this.signSeconds = new Histogram({
      name: 'dc_operator_sign_duration_seconds',
      help: 'Time to issue one credential (key generation and the certificate-key signature).',
      labelNames: ['algorithm', 'signer'] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
  }

  /**
   * The exposition, in chunks of about 64 KiB: the per-DelegatedCredential families written
   * straight from the caches, then the registry's. Through prom-client (a Gauge set per series,
   * then formatted) one scrape of 10,000 objects' 50,000 series took 400-550 ms of CPU and grew the
   * RSS by ~80 MiB that stayed (bench/results/operator.md, issue 19); written here, the same text
   * is made a chunk at a time as the client reads it. The signer series (few) stay Gauges,
   * dropped after each scrape.
   */
  async exposition(): Promise<Iterable<string>> {
    let rest: string;
    try {
      rest = await this.registry.metrics();
    } finally {
      for (const gauge of this.perObject) gauge.reset();
    }
    return credentialText(this.sources?.credentials() ?? [], rest);
  }

  /** The exposition text in one string. */
  async scrape(): Promise<string> {
    return [...(await this.exposition())].join('');
  }

  /** One API request made by the operator (list, watch, get, create, update). */
  apiRequest(verb: string, resource: string): void {
    this.apiRequests.inc({ verb, resource });
  }

  /** Connects the scrape-time collectors to the caches of the running controller. */
  attach(sources: MetricsSources | undefined): void {
    this.sources = sources;
  }

  issued(algorithm: string): void {
    this.issuedTotal.inc({ algorithm });
  }

  failed(reason: string): void {
    this.failuresTotal.inc({ reason });
  }

  signDuration(algorithm: string, signer: string, seconds: number): void {
    this.signSeconds.observe({ algorithm, signer }, seconds);
  }
}

/** The per-credential families, then `rest`, in chunks of about 64 KiB, each made when asked for. */
function* credentialText(credentials: readonly DelegatedCredential[], rest: string): Generator<string> {
  let chunk = '';
  const out = (text: string): void => void (chunk += text);
  for (const family of CREDENTIAL_FAMILIES) {
    out(`# HELP ${family.name} ${family.help}\n# TYPE ${family.name} gauge\n`);
    for (const dc of credentials) {
      family.write(dc, out);
      if (chunk.length >= 65_536) {
        yield chunk;
        chunk = '';
      }
    }
    out('\n');
  }
  yield chunk + rest;
}

/** A label value as the exposition format escapes it (as prom-client does). */
function labelValue(value: string): string {
  return /[\\\n"]/.test(value) ? value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"') : value;
}

/** A sample value as prom-client writes it. */
function sampleValue(value: number): string {
  if (Number.isNaN(value)) return 'Nan';
  if (!Number.isFinite(value)) return value < 0 ? '-Inf' : '+Inf';
  return String(value);
}

function credentialLabels(dc: DelegatedCredential): string {
  return `namespace="${labelValue(dc.metadata.namespace ?? '')}",name="${labelValue(dc.metadata.name ?? '')}"`;
}

interface CredentialFamily {
  readonly name: string;
  readonly help: string;
  write(dc: DelegatedCredential, out: (text: string) => void): void;
}

const CREDENTIAL_FAMILIES: readonly CredentialFamily[] = [
  {
    name: 'dc_operator_credential_expiration_timestamp_seconds',
    help: 'When each delegated credential expires (notAfter), Unix seconds.',
    write(dc, out) {
      for (const c of dc.status?.credentials ?? []) {
        out(`${this.name}{${credentialLabels(dc)},algorithm="${labelValue(c.algorithm)}"} ${sampleValue(Date.parse(c.notAfter) / 1000)}\n`);
      }
    },
  },
  {
    name: 'dc_operator_credential_renewal_timestamp_seconds',
    help: 'When the operator will next issue credentials for a DelegatedCredential, Unix seconds.',
    write(dc, out) {
      const at = dc.status?.renewalTime;
      if (at !== undefined) out(`${this.name}{${credentialLabels(dc)}} ${sampleValue(Date.parse(at) / 1000)}\n`);
    },
  },
  {
    name: 'dc_operator_credential_ready_status',
    help: 'The Ready condition of each DelegatedCredential (1 for the current status value).',
    write(dc, out) {
      const ready = dc.status?.conditions?.find((c) => c.type === 'Ready')?.status ?? 'Unknown';
      const labels = credentialLabels(dc);
      for (const value of ['True', 'False', 'Unknown']) out(`${this.name}{${labels},condition="${value}"} ${value === ready ? 1 : 0}\n`);
    },
  },
];
