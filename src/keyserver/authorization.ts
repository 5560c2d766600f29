// The in-cluster key server's policy: every request is authorized as
// (identity from the client certificate's URI SAN) → (the one key that identity may use).
//
// - A sidecar identity `spiffe://<td>/ns/<ns>/dc/<name>` of our trust domain may ping, and have
//   TLS handshake signatures made (handshake-content.ts) with the key KeyGrants gives it (its
//   DelegatedCredential's certificate key), nothing else; only with a client certificate issued for
//   that DelegatedCredential's UID (the subject's UID), so one deleted and re-created under the same
//   name is not served to certificates of the old one.
// - The controller identity `spiffe://<td>/dc-operator/controller` may ping (readiness probe) only.
// - Anything else (no URI SAN, several, another trust domain or path) may do nothing.
//
// A refusal is answered in-band with "key not found" (0x02): from where the client stands, the key
// server holds no key for it, and a tenant learns nothing about which keys exist for others. The
// log line and the metrics say the truth (`denied`). Signing over the identity's rate is answered
// with our "rate limited" (0x80); the rate counts RSA-2048 signatures' worth of CPU, so a signature
// with a costlier key takes more of it (src/keyless/signature-cost.ts). Every signature and refusal is counted per identity and logged
// at info, at most LOG_LINES_PER_WINDOW lines a minute per identity and result (the rest is counted
// into the next line's `suppressedSinceLastLine`).
import type { X509Certificate } from 'node:crypto';
import { Counter, type Registry } from 'prom-client';
import type { KeyStoreLogger } from '../keyless/keystore.js';
import { ErrorCode, errorCodeName, isSigningOpcode, Opcode, opcodeName } from '../keyless/protocol.js';
import type { PeerAuthorizer, RequestAuthorizer } from '../keyless/server.js';
import { signatureCost } from '../keyless/signature-cost.js';
import type { SignRequest } from '../keyless/sign-request.js';
import { LogLimiter } from '../net/log-limiter.js';
import { controllerIdentityUri, parseSidecarIdentityUri } from '../operator/api/serving-bundle.js';
import { issuedAtOf, subjectUidOf } from '../pki/certs.js';
import type { KeyGrants } from './grants.js';
import { notHandshakeContent } from './handshake-content.js';
import type { RateLimiter } from './rate-limit.js';

/** The metrics label of a client without a usable identity (one label for all of them). */
export const UNIDENTIFIED = 'unidentified';

export type Identity =
  | {
      kind: 'sidecar';
      uri: string;
      namespace: string;
      name: string;
      /** The DelegatedCredential UID the certificate was issued for (subject UID). */
      uid: string | undefined;
      /** When the certificate was issued (ms, the controller's clock): judges one that names no UID. */
      issuedAt?: number;
    }
  | { kind: 'controller'; uri: string }
  | { kind: 'none'; why: string };

/** The one URI SAN of a client certificate (node's `subjectAltName` text), or why there is none. */
export function singleUriSan(subjectAltName: string | undefined): { uri: string } | { why: string } {
  const uris = (subjectAltName ?? '').split(', ').filter((s) => s.startsWith('URI:')).map((s) => s.slice(4));
  if (uris.length === 0) return { why: 'its client certificate has no URI SAN' };
  if (uris.length > 1) return { why: `its client certificate has ${uris.length} URI SANs; an identity has exactly one` };
  return { uri: uris[0]! };
}

/**
 * The identity a client certificate names. X.509-SVID rule: exactly one URI SAN. node prints
 * SANs as `DNS:a, URI:b`; a value holding a comma or quote is printed quoted, and no identity
 * we accept contains either, so a quoted URI is refused.
 */
export function identityOf(subjectAltName: string | undefined, trustDomain: string, subject?: string, notBefore?: Date): Identity {
  const san = singleUriSan(subjectAltName);
  if ('why' in san) return { kind: 'none', why: san.why };
  const uri = san.uri;
  if (uri === controllerIdentityUri(trustDomain)) return { kind: 'controller', uri };
  const sidecar = parseSidecarIdentityUri(uri);
  if (sidecar === undefined) return { kind: 'none', why: `its URI SAN ${JSON.stringify(uri.slice(0, 300))} is not a sidecar or controller identity` };
  if (sidecar.trustDomain !== trustDomain) return { kind: 'none', why: `its identity ${uri} is of trust domain ${sidecar.trustDomain}, not ${trustDomain}` };
  const issuedAt = notBefore === undefined ? NaN : issuedAtOf(notBefore).getTime();
  return { kind: 'sidecar', uri, namespace: sidecar.namespace, name: sidecar.name, uid: subjectUidOf(subject), ...(Number.isFinite(issuedAt) ? { issuedAt } : {}) };
}

export type Decision = { allowed: true } | { allowed: false; code: ErrorCode; result: 'denied' | 'rate_limited'; why: string };

/**
 * Whose share an identity draws on (connections, signing rate, the signing queue): its namespace,
 * since a tenant makes as many DelegatedCredentials (identities) as it likes. The controller and
 * the clients without an identity are tenants of their own.
 */
export function tenantOf(identity: Identity): string {
  return identity.kind === 'sidecar' ? `ns/${identity.namespace}` : identity.kind === 'controller' ? 'controller' : UNIDENTIFIED;
}

/** The pure decision for one request (the rate limit aside). */
export function decide(identity: Identity, opcode: number, ski: string | undefined, grants: Pick<KeyGrants, 'allows' | 'grantOf'>, request?: SignRequest): Decision {
  const deny = (why: string): Decision => ({ allowed: false, code: ErrorCode.keyNotFound, result: 'denied', why });
  if (identity.kind === 'none') return deny(identity.why);
  if (opcode === Opcode.ping) return { allowed: true };
  if (identity.kind === 'controller') return deny('the controller identity may only ping');
  if (!isSigningOpcode(opcode)) return { allowed: true }; // not a use of a key: the server answers bad opcode
  if (grants.allows(identity.uri, ski)) {
    // The certificate must have been issued for this very DelegatedCredential, not for a deleted
    // one of the same name (same URI), which may have referenced another certificate.
    const grant = grants.grantOf(identity.uri);
    const uid = grant?.uid;
    if (uid !== undefined && identity.uid !== uid && !issuedBeforeUidsForThisObject(identity, grant?.createdAt)) {
      return deny(
        identity.uid === undefined
          ? `the client certificate of ${identity.uri} names no DelegatedCredential UID (issued by a controller before UIDs) and was not issued after the current one was created; the controller re-issues it`
          : `the client certificate of ${identity.uri} was issued for DelegatedCredential UID ${identity.uid}, deleted since; the current one is ${uid}`,
      );
    }
    // Deny rather than skip the content check when a caller did not pass what is to be signed.
    const notHandshake = request === undefined ? 'the key server did not say what is to be signed' : notHandshakeContent(request);
    return notHandshake === undefined ? { allowed: true } : deny(`identity ${identity.uri} may have only TLS handshake signatures made: ${notHandshake}`);
  }
  const own = grants.grantOf(identity.uri);
  return deny(
    own === undefined
      ? `identity ${identity.uri} holds no key: no DelegatedCredential ${identity.namespace}/${identity.name} with an in-cluster signer (or its key is not loaded)`
      : `identity ${identity.uri} may sign only with key ${own.key.skiHex}, not ${ski ?? '(no SKI)'}`,
  );
}

/**
 * The upgrade bridge: a certificate naming no UID was issued by a controller from before UIDs. It is
 * served only if it was issued after the current DelegatedCredential of its name was created, so
 * never one issued for a deleted namesake; the upgraded controller replaces it at its first pass
 * (src/keyserver/README.md, "A DelegatedCredential deleted and re-created under its name").
 */
function issuedBeforeUidsForThisObject(identity: Identity & { kind: 'sidecar' }, createdAt: number | undefined): boolean {
  return identity.uid === undefined && identity.issuedAt !== undefined && createdAt !== undefined && identity.issuedAt >= createdAt + CREATION_SLACK_MS;
}

/**
 * creationTimestamp has one-second resolution (truncated): a certificate issued within the second
 * after it cannot be told from one issued just before it, so that second is refused.
 */
const CREATION_SLACK_MS = 1000;

export interface IdentityAuthorizerOptions {
  readonly trustDomain: string;
  readonly grants: KeyGrants;
  readonly registry: Registry;
  readonly rateLimit: RateLimiter;
  readonly log?: KeyStoreLogger;
  readonly logLimiter?: LogLimiter;
  /**
   * Label `keyless_server_signatures_total` by identity (the URI SAN: namespace and
   * DelegatedCredential name) instead of by tenant (default false). /metrics is readable by whatever
   * reaches the probes port, so by default it names namespaces only, not what each tenant runs.
   */
  readonly perIdentityMetrics?: boolean;
}

export class IdentityAuthorizer implements RequestAuthorizer {
  private readonly signatures: Counter<string>;
  /** The label naming who asked: `tenant` (default) or `identity`. */
  private readonly whoLabel: 'tenant' | 'identity';
  private readonly limiter: LogLimiter;
  /**
   * A sidecar label value → the `opcode|result` series it has and the identities that made them,
   * so a label none of whose identities holds a grant any more can be removed.
   */
  private readonly series = new Map<string, { combos: Set<string>; identities: Set<string> }>();
  /** Bumped by each prune: a connection's cached series re-registers itself after one. */
  private generation = 0;

  constructor(private readonly options: IdentityAuthorizerOptions) {
    this.limiter = options.logLimiter ?? new LogLimiter();
    this.whoLabel = options.perIdentityMetrics === true ? 'identity' : 'tenant';
    this.signatures = new Counter({
      name: 'keyless_server_signatures_total',
      help:
        (this.whoLabel === 'identity'
          ? 'Signing requests by client identity (its URI SAN, or "unidentified"), '
          : 'Signing requests by tenant (ns/<namespace> of the client identity, "controller" or "unidentified"), ') +
        'opcode and result: ok, denied (the identity may not use that key), rate_limited, or the error answered. Bounded by the DelegatedCredentials.',
      labelNames: [this.whoLabel, 'opcode', 'result'],
      registers: [options.registry],
    });
  }

  /**
   * Removes the metric series of identities that hold no grant any more (their DelegatedCredential
   * was deleted or moved off an in-cluster signer), so deleted tenants leave no series behind.
   * Called whenever the grants change; an identity that signs again gets its series back.
   */
  pruneRevoked(): void {
    let removed = false;
    for (const [who, { combos, identities }] of this.series) {
      for (const identity of identities) {
        if (this.options.grants.grantOf(identity) !== undefined) continue;
        // Forgotten, so deleted DelegatedCredentials do not pile up here; one that signs again is
        // added back (the generation below makes its connections register again).
        identities.delete(identity);
        removed = true;
      }
      if (identities.size > 0) continue;
      for (const combo of combos) {
        const [opcode = '', result = ''] = combo.split('|');
        this.signatures.remove({ [this.whoLabel]: who, opcode, result });
      }
      this.series.delete(who);
      removed = true;
    }
    if (removed) this.generation++;
  }

  /** A signing request's tokens: its key's signatureCost (decide() allowed it, so the key is the identity's grant). */
  private costOf(identity: Identity, request: SignRequest | undefined): number {
    const key = identity.kind === 'sidecar' ? this.options.grants.grantOf(identity.uri)?.key : undefined;
    return key !== undefined && request !== undefined ? signatureCost(key, request) : 1;
  }

  forPeer(certificate: X509Certificate): PeerAuthorizer {
    const identity = identityOf(certificate.subjectAltName, this.options.trustDomain, certificate.subject, certificate.validFromDate);
    const label = identity.kind === 'none' ? UNIDENTIFIED : identity.uri;
    const tenant = tenantOf(identity);
    const who = this.whoLabel === 'identity' ? label : tenant;
    // Why the last request of this kind on this connection was refused, for its log line. The
    // result itself comes from the error code: with this authorizer, "key not found" only ever
    // answers a refusal (the grants are the key store), and "rate limited" is ours.
    const why = new Map<string, string>();
    const whyKey = (opcode: number, ski: string | undefined): string => `${opcode}/${ski ?? ''}`;
    // Per (opcode, answer) of this connection: the labelled counter and the log key, made once. On
    // the signing path this is most of the cost (bench/keyserver-authorization.ts): prom-client
    // hashes label objects and Maps hash fresh strings on every call otherwise.
    const outcomes = new Map<number, { counter: { inc(): void }; logKey: string; result: string; opcode: string; generation: number }>();
    const outcomeOf = (opcode: number, error: ErrorCode | undefined) => {
      const k = opcode * 256 + (error ?? 0);
      let o = outcomes.get(k);
      if (o === undefined) {
        const result = error === undefined ? 'ok' : error === ErrorCode.keyNotFound ? 'denied' : error === ErrorCode.rateLimited ? 'rate_limited' : errorCodeName(error).replace(/[^a-z0-9]+/g, '_');
        const op = opcodeName(opcode);
        o = { counter: this.signatures.labels({ [this.whoLabel]: who, opcode: op, result }), logKey: `${label}|${result}`, result, opcode: op, generation: -1 };
        outcomes.set(k, o);
      }
      // Only sidecar identities come and go with DelegatedCredentials; the controller and
      // "unidentified" series stay.
      if (identity.kind === 'sidecar' && o.generation !== this.generation) {
        o.generation = this.generation;
        let mine = this.series.get(who);
        if (mine === undefined) this.series.set(who, (mine = { combos: new Set(), identities: new Set() }));
        mine.combos.add(`${o.opcode}|${o.result}`);
        mine.identities.add(label);
      }
      return o;
    };
    return {
      // The connection cap per identity counts the clients without one as one identity: they can do nothing here.
      identity: label,
      tenant,
      // Pings alone keep no connection: an identity with no key here is closed after the grace.
      holdsGrant: () => identity.kind === 'controller' || (identity.kind === 'sidecar' && this.options.grants.grantOf(identity.uri) !== undefined),
      admit: (opcode, ski, request) => {
        let decision = decide(identity, opcode, ski, this.options.grants, request);
        if (decision.allowed && isSigningOpcode(opcode)) {
          // Weighed by what the signature costs, so a costly key buys no larger share of the CPU.
          const cost = this.costOf(identity, request);
          // Per tenant: DelegatedCredentials are free to make, so one bucket each would be N shares.
          if (!this.options.rateLimit.take(tenant, cost)) {
            decision = { allowed: false, code: ErrorCode.rateLimited, result: 'rate_limited', why: `identity ${label} is over its tenant's signing rate (${tenant}; this signature counts ${cost})` };
          }
        }
        if (decision.allowed) return undefined;
        if (why.size < 64) why.set(whyKey(opcode, ski), decision.why);
        return decision.code;
      },
      answered: (opcode, ski, error, seconds) => {
        const refused = error === ErrorCode.keyNotFound || error === ErrorCode.rateLimited;
        // Pings are not signatures (the controller's readiness probe pings every few seconds).
        if (!isSigningOpcode(opcode) && !(opcode === Opcode.ping && refused)) return;
        const o = outcomeOf(opcode, error);
        o.counter.inc();
        const reason = refused ? why.get(whyKey(opcode, ski)) : undefined;
        if (refused) why.delete(whyKey(opcode, ski));
        this.limiter.log(o.logKey, (suppressed) =>
          this.options.log?.[o.result === 'ok' ? 'info' : 'warn'](o.result === 'ok' ? 'keyserver: signed' : 'keyserver: signing refused', {
            identity: label,
            ski: ski ?? null,
            opcode: o.opcode,
            result: o.result,
            durationMs: Math.round(seconds * 1e6) / 1e3,
            ...(reason !== undefined ? { why: reason } : {}),
            ...(suppressed > 0 ? { suppressedSinceLastLine: suppressed } : {}),
          }),
        );
      },
    };
  }
}
