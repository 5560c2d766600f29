/**
 * The keyless pull client of the sidecar, kept in step with the serving bundle.
 *
 * The bundle's keyless parts (key server address, its CA, our client certificate and key) rotate
 * through the same `..data` swap as the DCs. Every new configuration is validated before it
 * replaces the one in use:
 *
 *   parse + cross-check (bundle.ts) -> client certificate valid now -> new client -> ping
 *     ping answered                         -> swap; the old client drains, then closes
 *     ping failed, the old client works     -> keep the old one; retried on the next reload/re-check
 *     ping failed, nothing working to lose  -> swap (the client reconnects on its own, with backoff)
 *
 * An invalid configuration never replaces a working one; each refusal is logged with the file and
 * the reason and counted (`dc_sidecar_keyless_reloads_total{result="failure"}`).
 *
 * The `--keyless-*` flags, when given, win: their files are read once at startup and the bundle's
 * keyless parts are ignored (and said so once).
 */
import { KeylessClient } from '../keyless/client.js';
import { KeylessRemoteError, KeylessUnavailableError } from '../keyless/errors.js';
import { BUNDLE_KEYS } from '../operator/api/serving-bundle.js';
import { KeylessSigner } from '../signer/keyless.js';
import type { SignatureScheme } from '../tls/constants.js';
import { readRegularFile } from '../tls/delegated/index.js';
import type { Signer } from '../tls/signer.js';
import { clientCertificateProblem, readKeylessPart, type BundleProblem, type KeylessBundle } from './bundle.js';
import type { KeylessConfig } from './config.js';
import { ConfigError } from './config.js';
import type { WatcherLogger } from './credential-watcher.js';
import type { ServingMaterial } from './material.js';

export type KeylessSource = 'bundle' | 'flags';
export type KeylessReloadResult = 'success' | 'failure';

export interface KeylessFallbackOptions {
  /** Per-signature (and per-validation-ping) deadline. */
  readonly timeoutMs: number;
  readonly log: WatcherLogger;
  /** Counts each validated configuration: swapped in (success) or refused (failure). */
  readonly onReload?: (result: KeylessReloadResult) => void;
  /** A configuration from the --keyless-* flags: it wins over the bundle. */
  readonly override?: KeylessBundle;
  readonly now?: () => Date;
  /** Reconnect backoff of the client (tests use short ones; default KeylessClient's 100 ms .. 10 s). */
  readonly maxBackoffMs?: number;
  /**
   * Verify one key-server signature in this many, besides the first on each connection and after
   * each bundle swap or failure (src/signer/verify-sampling.ts; default 1, every one).
   */
  readonly verifyOneIn?: number;
  /** A key-server signature did not verify (counted and logged by the caller). */
  readonly onBadSignature?: () => void;
}

/** Why non-DC clients cannot be served through keyless right now, as a refusal reason. */
export interface KeylessUnavailable {
  /** Metric/report key: what kind of problem. */
  readonly kind: 'keyserver-unreachable' | 'keyless-client-certificate' | 'keyless-misconfigured';
  readonly reason: string;
}

interface Active {
  readonly config: KeylessBundle;
  readonly source: KeylessSource;
  readonly client: KeylessClient;
  inFlight: number;
  /** The last exchange with the key server (validation ping, signature, health ping). */
  lastContact: 'ok' | 'failed' | 'none';
  lastError: string | undefined;
}

/** Reads the --keyless-* files into the same shape the bundle gives; errors name the flag. */
export async function keylessFromFlags(k: KeylessConfig): Promise<KeylessBundle> {
  const read = async (flag: string, file: string): Promise<Uint8Array> => {
    try {
      return await readRegularFile(file);
    } catch (err) {
      throw new ConfigError(flag, `cannot read ${file}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  const files = {
    [BUNDLE_KEYS.keylessAddress]: Buffer.from(k.address),
    [BUNDLE_KEYS.keylessCA]: await read('keyless-ca', k.caFile),
    [BUNDLE_KEYS.keylessClientCertificate]: await read('keyless-client-cert', k.clientCertFile),
    [BUNDLE_KEYS.keylessClientKey]: await read('keyless-client-key', k.clientKeyFile),
  };
  const part = readKeylessPart(files);
  if (part.kind !== 'valid') {
    const flag = { [BUNDLE_KEYS.keylessAddress]: 'keyless-address', [BUNDLE_KEYS.keylessCA]: 'keyless-ca', [BUNDLE_KEYS.keylessClientCertificate]: 'keyless-client-cert', [BUNDLE_KEYS.keylessClientKey]: 'keyless-client-key' };
    const p = part.kind === 'invalid' ? part.problem : { file: BUNDLE_KEYS.keylessAddress, reason: 'missing' };
    throw new ConfigError(flag[p.file as keyof typeof flag] ?? 'keyless-address', p.reason);
  }
  return part.config;
}

/** Counts signatures in flight on one client, so a replaced client is closed only once they are done. */
class TrackedSigner implements Signer {
  readonly schemes: readonly SignatureScheme[];

  constructor(
    private readonly inner: KeylessSigner,
    private readonly active: Active,
  ) {
    this.schemes = inner.schemes;
  }

  async sign(scheme: SignatureScheme, message: Uint8Array): Promise<Uint8Array> {
    this.active.inFlight++;
    try {
      const signature = await this.inner.sign(scheme, message);
      this.active.lastContact = 'ok';
      this.active.lastError = undefined;
      return signature;
    } catch (err) {
      // A refusal in-band is an answer: the key server is up. Anything else: it is not reachable.
      if (!(err instanceof KeylessRemoteError)) {
        this.active.lastContact = 'failed';
        this.active.lastError = err instanceof Error ? err.message : String(err);
      }
      throw err;
    } finally {
      this.active.inFlight--;
    }
  }
}

/** How the failure of a keyless handshake is reported: its error, or a cause of it, says. */
export function classifyKeylessFailure(err: unknown): { kind: 'refused-by-keyserver' | 'keyserver-unreachable' | 'handshake-failed'; message: string } {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e instanceof KeylessRemoteError) return { kind: 'refused-by-keyserver', message: e.message };
    if (e instanceof KeylessUnavailableError) return { kind: 'keyserver-unreachable', message: e.message };
  }
  return { kind: 'handshake-failed', message: err instanceof Error ? err.message : String(err) };
}

export class KeylessFallback {
  private active: Active | undefined;
  /** Why the bundle's latest keyless configuration is not in use (undefined: it is, or there is none). */
  private refused: { key: string; problem: string; kind: KeylessUnavailable['kind'] } | undefined;
  private readonly signers = new WeakMap<ServingMaterial, { active: Active; signer: Signer | undefined }>();
  private updating: Promise<void> = Promise.resolve();
  /** The client of a configuration being validated (its ping in flight), closed by close(). */
  private validating: KeylessClient | undefined;
  private closed = false;
  private saidOverride = false;
  private readonly now: () => Date;

  constructor(private readonly options: KeylessFallbackOptions) {
    this.now = options.now ?? (() => new Date());
  }

  /** Installs the --keyless-* configuration (validated by the same steps as a bundle's). */
  async start(): Promise<void> {
    if (this.options.override) await this.consider(this.options.override, 'flags');
  }

  /** A keyless client is configured (it may still be unable to sign right now). */
  get configured(): boolean {
    return this.active !== undefined;
  }

  get source(): KeylessSource | undefined {
    return this.active?.source;
  }

  get config(): KeylessBundle | undefined {
    return this.active?.config;
  }

  /** Why the latest keyless configuration of the bundle was not taken, if it was not. */
  get refusal(): string | undefined {
    return this.refused?.problem;
  }

  /**
   * Follows the bundle: call after every reload (including unchanged ones: a configuration refused
   * because the key server did not answer is tried again). Updates never overlap.
   */
  update(material: ServingMaterial | undefined): Promise<void> {
    this.updating = this.updating.then(() => this.followBundle(material)).catch((err: unknown) => {
      this.options.log.error('keyless configuration update failed', { error: err instanceof Error ? err.message : String(err) });
    });
    return this.updating;
  }

  /** The signer for this material's certificate, or undefined when keyless cannot sign now (see unavailable()). */
  signerFor(material: ServingMaterial): Signer | undefined {
    const active = this.active;
    if (!active || this.unavailable() !== undefined) return undefined;
    const cached = this.signers.get(material);
    if (cached?.active === active) return cached.signer;
    let signer: Signer | undefined;
    try {
      const certificate = material.credentials.certificateChain[0]!;
      const { address, ca, clientCertificate: clientCert, clientKey } = active.config;
      const inner = new KeylessSigner({
        client: active.client,
        address,
        ca,
        clientCert,
        clientKey,
        certificate,
        timeoutMs: this.options.timeoutMs,
        verifyOneIn: this.options.verifyOneIn ?? 1,
        onBadSignature: (error) => {
          this.options.onBadSignature?.();
          this.options.log.error('the key server returned a signature that does not verify with the certificate; verifying every signature for a while', {
            keyServer: active.config.address,
            error: error.message,
          });
        },
      });
      signer = new TrackedSigner(inner, active);
    } catch (err) {
      this.options.log.error('the certificate cannot be served through keyless', { error: err instanceof Error ? err.message : String(err) });
      signer = undefined;
    }
    this.signers.set(material, { active, signer });
    return signer;
  }

  /** Undefined when a keyless signature can be attempted now; else the kind and reason. */
  unavailable(): KeylessUnavailable | undefined {
    const active = this.active;
    if (!active) {
      return this.refused ? { kind: this.refused.kind, reason: this.refused.problem } : undefined;
    }
    const certificate = clientCertificateProblem(active.config, this.now(), this.describeSource(active.source));
    if (certificate) return { kind: 'keyless-client-certificate', reason: certificate };
    // In backoff after a failed connect: refuse at once (a clean alert) instead of making the
    // client wait for the deadline; the first handshake after the backoff tries again.
    if (active.client.state === 'backoff') {
      return { kind: 'keyserver-unreachable', reason: `key server ${active.config.address} unreachable: ${active.client.lastError?.message ?? active.lastError ?? 'connection failed'}` };
    }
    return undefined;
  }

  /** Keyless can serve now: configured, certificate valid, and the key server answered last time. */
  ready(): { ready: boolean; reason: string } {
    const active = this.active;
    const why = this.unavailable();
    if (why) return { ready: false, reason: why.reason };
    if (!active) return { ready: false, reason: 'no keyless configuration' };
    if (active.lastContact === 'failed') return { ready: false, reason: `key server ${active.config.address} unreachable: ${active.lastError ?? 'no answer'}` };
    return { ready: true, reason: `keyless pull from ${active.config.address}${active.lastContact === 'none' ? ' (not contacted yet)' : ''}` };
  }

  /**
   * One health ping when the last contact failed, so the fallback state (and the reconnect) does
   * not wait for a client. Bounded: one ping, with the keyless deadline.
   */
  async probe(): Promise<void> {
    const active = this.active;
    if (!active || active.lastContact === 'ok' || active.client.state === 'backoff') return;
    await this.ping(active);
  }

  async close(): Promise<void> {
    this.closed = true;
    // A key server that does not answer the validation ping would hold the stop until
    // --keyless-timeout: closing the candidate fails its ping now.
    await this.validating?.close();
    await this.updating;
    const active = this.active;
    this.active = undefined;
    await active?.client.close();
  }

  private describeSource(source: KeylessSource): string {
    return source === 'flags' ? 'from --keyless-client-cert' : `from the bundle's ${BUNDLE_KEYS.keylessClientCertificate}`;
  }

  private async followBundle(material: ServingMaterial | undefined): Promise<void> {
    if (this.closed || !material) return;
    const declared = material.fallback.declared;
    // Keyless files next to another declared fallback are not what the DelegatedCredential asks for.
    const part = declared === 'None' || declared === 'CertificateKey' ? ({ kind: 'absent' } as const) : material.fallback.keyless;
    if (this.options.override) {
      if (part.kind !== 'absent' && !this.saidOverride) {
        this.saidOverride = true;
        this.options.log.info("keyless is configured by the --keyless-* flags; the bundle's keyless files are ignored");
      }
      return;
    }
    switch (part.kind) {
      case 'absent':
        if (material.fallback.declared === 'Keyless') {
          this.refuse('absent', { file: BUNDLE_KEYS.keylessAddress, reason: 'missing: the bundle declares fallback Keyless but holds none of the keyless files' });
        } else if (this.active) {
          // The DelegatedCredential no longer asks for keyless: stop pulling.
          const old = this.active;
          this.active = undefined;
          this.refused = undefined;
          this.options.log.info('the bundle no longer configures keyless; the keyless client is closed', { fallback: material.fallback.declared ?? 'none declared' });
          void this.retire(old);
        }
        return;
      case 'invalid':
        this.refuse(`${part.problem.file}:${part.problem.reason}`, part.problem, material.source);
        return;
      case 'valid':
        if (this.active?.config.fingerprint === part.config.fingerprint) {
          this.refused = undefined; // back to the configuration in use
          return;
        }
        await this.consider(part.config, 'bundle');
    }
  }

  private refuse(key: string, problem: BundleProblem | string, source?: string, kind: KeylessUnavailable['kind'] = 'keyless-misconfigured'): void {
    const reason = typeof problem === 'string' ? problem : `${problem.file}: ${problem.reason}`;
    const text = this.active ? `${reason}; still using the previous keyless configuration (key server ${this.active.config.address})` : reason;
    if (this.refused?.key !== key) {
      this.options.onReload?.('failure');
      this.options.log.error('keyless configuration not used', {
        ...(typeof problem === 'string' ? { reason } : { file: problem.file, reason: problem.reason }),
        ...(source ? { source } : {}),
        serving: this.active ? `keyless via ${this.active.config.address}` : 'no keyless client: non-DC clients are refused',
      });
    }
    this.refused = { key, problem: text, kind };
  }

  /** Validates a configuration and swaps it in, or refuses it (see the header). */
  private async consider(config: KeylessBundle, source: KeylessSource): Promise<void> {
    const certificate = clientCertificateProblem(config, this.now(), this.describeSource(source));
    if (certificate) {
      // Never replace a working client with one whose certificate the key server will refuse.
      // With nothing working, nothing better exists either: say so and keep watching.
      this.refuse(`${config.fingerprint}:certificate`, certificate, undefined, 'keyless-client-certificate');
      return;
    }
    let client: KeylessClient;
    try {
      client = new KeylessClient({
        address: config.address,
        ca: config.ca,
        cert: config.clientCertificate,
        key: config.clientKey,
        timeoutMs: this.options.timeoutMs,
        ...(this.options.maxBackoffMs !== undefined ? { maxBackoffMs: this.options.maxBackoffMs } : {}),
      });
    } catch (err) {
      this.refuse(`${config.fingerprint}:client`, { file: BUNDLE_KEYS.keylessAddress, reason: err instanceof Error ? err.message : String(err) });
      return;
    }
    const candidate: Active = { config, source, client, inFlight: 0, lastContact: 'none', lastError: undefined };
    this.validating = client;
    try {
      await this.ping(candidate);
    } finally {
      this.validating = undefined;
    }
    if (this.closed) {
      await client.close();
      return;
    }
    const old = this.active;
    const oldWorks = old !== undefined && old.lastContact !== 'failed' && clientCertificateProblem(old.config, this.now()) === undefined;
    if (candidate.lastContact !== 'ok' && oldWorks) {
      await client.close();
      // Tried again on every reload and re-check (the fingerprint differs from the one in use);
      // logged once per configuration.
      this.refuse(`${config.fingerprint}:unreachable`, `the new keyless configuration could not reach key server ${config.address}: ${candidate.lastError ?? 'no answer'}`, undefined, 'keyserver-unreachable');
      return;
    }
    this.active = candidate;
    this.refused = undefined;
    this.options.onReload?.('success');
    const meta = {
      source,
      keyServer: config.address,
      identity: config.identities.join(', ') || '(no URI SAN)',
      clientCertificateValidUntil: config.clientNotAfter.toISOString(),
    };
    if (candidate.lastContact === 'ok') this.options.log.info(old ? 'keyless configuration replaced; the previous client drains' : 'keyless pull configured', meta);
    else this.options.log.warn('keyless pull configured, but the key server does not answer yet; the client keeps retrying with backoff', { ...meta, error: candidate.lastError });
    if (old) void this.retire(old);
  }

  private async ping(active: Active): Promise<void> {
    try {
      await active.client.ping({ timeoutMs: this.options.timeoutMs });
      active.lastContact = 'ok';
      active.lastError = undefined;
    } catch (err) {
      active.lastContact = 'failed';
      active.lastError = err instanceof Error ? err.message : String(err);
    }
  }

  /** Lets the old client's signatures in flight finish (up to one deadline and a second), then closes it. */
  private async retire(old: Active): Promise<void> {
    const deadline = Date.now() + this.options.timeoutMs + 1000;
    while (old.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    await old.client.close();
  }
}
