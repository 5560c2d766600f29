/**
 * The key server's keys: a directory of PEM (or DER PKCS#8) private keys, indexed by SKI.
 *
 * Reload = read and validate every file into locals, then replace the set in one assignment.
 * At open, a file that does not parse fails the start with an error naming that file. Later, validate
 * then swap per file: a new or changed file that does not parse (or that the `check` blames) is
 * refused and keeps its previous keys (none, if it is new), logged with why, while every other
 * change applies, removals above all: removing a key file is how a key is taken away, and an
 * unrelated broken file must not hold it in service. A `check` (the `--grant` policy) sees every
 * file of a changed set, symlinks resolved, before the swap. The directory is watched (fs.watch, with a
 * debounce) and polled as a fallback, because a Kubernetes Secret volume changes by swapping a
 * `..data` symlink, which not every platform reports to a watcher.
 */
import { createHash, createPrivateKey, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { cryptoOptions, keyMatchesScheme, schemeParams } from '../tls/signature-schemes.js';
import { pemBlocks, type PemScanWork } from '../tls/x509/pem.js';
import { EcdsaDigestSigner, signEd25519, signRsaPkcs1Digest, signRsaPssDigest, type EcCurve } from './digest-signing.js';
import { KeylessError } from './errors.js';
import { ErrorCode, type SignOperation } from './protocol.js';
import type { SignRequest } from './sign-request.js';
import { rsaParameterProblem } from './rsa-parameters.js';
import { computeSki, skiHex } from './ski.js';

export type KeyAlgorithm = 'rsa' | 'ecdsa' | 'ed25519' | 'ml-dsa';

interface MessageSigning {
  readonly algorithm: string | null;
  readonly options: Omit<ReturnType<typeof cryptoOptions>, 'algorithm'>;
}

/**
 * The largest RSA key served: cert-manager's maximum. A signature cannot be interrupted and runs
 * on the main thread (or a worker) for its whole length: RSA-8192 takes tens of milliseconds,
 * RSA-16384 (node accepts it) about eight times that, during which no other client is served.
 */
export const MAX_RSA_KEY_BITS = 8192;

/** A private key ready to answer signing opcodes. */
export class SigningKey {
  readonly ski: Uint8Array;
  readonly skiHex: string;
  readonly algorithm: KeyAlgorithm;
  /** P-256/P-384/P-521 for ECDSA keys; the modulus size for RSA; ML-DSA-44/65/87; undefined for Ed25519. */
  readonly detail: string | undefined;
  private readonly ecdsa: EcdsaDigestSigner | undefined;
  private readonly modulusBits: number;
  /** Per signature scheme, what crypto.sign needs (prepareScheme). At most a dozen schemes. */
  private readonly messageSigning = new Map<number, MessageSigning>();

  /** `key` is kept (and handed to signing workers, which rebuild the SigningKey from it). */
  constructor(readonly key: KeyObject, readonly source: string) {
    if (key.type !== 'private') throw new Error('not a private key');
    this.ski = computeSki(key);
    this.skiHex = skiHex(this.ski);
    const type = key.asymmetricKeyType;
    this.modulusBits = 0;
    if (type === 'rsa') {
      this.algorithm = 'rsa';
      this.modulusBits = key.asymmetricKeyDetails?.modulusLength ?? 0;
      if (this.modulusBits < 1024) throw new Error(`RSA key of ${this.modulusBits} bits is too small`);
      if (this.modulusBits > MAX_RSA_KEY_BITS) {
        throw new Error(
          `RSA key of ${this.modulusBits} bits is over the ${MAX_RSA_KEY_BITS}-bit maximum: one signature with it would hold the key server's ` +
            `signing (shared by every client) for about a second; use RSA ${MAX_RSA_KEY_BITS} or smaller, or an ECDSA key`,
        );
      }
      const problem = rsaParameterProblem(key);
      if (problem !== undefined) throw new Error(problem);
      this.detail = `RSA-${this.modulusBits}`;
    } else if (type === 'ec') {
      this.algorithm = 'ecdsa';
      const curve = curveName(key.asymmetricKeyDetails?.namedCurve);
      this.detail = curve;
      this.ecdsa = new EcdsaDigestSigner(curve, key);
    } else if (type === 'ed25519') {
      this.algorithm = 'ed25519';
      this.detail = undefined;
    } else if (type === 'ml-dsa-44' || type === 'ml-dsa-65' || type === 'ml-dsa-87') {
      // Signs whole messages only (our sign-message opcode names the scheme): no documented
      // keyless opcode exists for ML-DSA, and pure ML-DSA has no digest to send.
      this.algorithm = 'ml-dsa';
      this.detail = type.toUpperCase();
    } else {
      throw new Error(`unsupported key type ${type ?? 'unknown'}`);
    }
  }

  /** Signs a request (a digest, or a whole message); throws KeylessError with the code to answer. */
  sign(request: SignRequest): Uint8Array {
    return request.kind === 'message' ? this.signMessage(request.scheme, request.message) : this.signDigest(request.operation, request.payload);
  }

  /** Our extension: node:crypto hashes and signs `message` as the TLS signature scheme says. */
  private signMessage(scheme: number, message: Uint8Array): Uint8Array {
    const { algorithm, options } = this.messageSigning.get(scheme) ?? this.prepareScheme(scheme);
    return cryptoSign(algorithm, message, options); // a Buffer is a Uint8Array: no copy
  }

  /**
   * The node:crypto arguments for one scheme with this key, checked and built once: per request,
   * the scheme lookup, the key check and the options object cost about a tenth of a P-256
   * signature (bench/results/keyless-signing.md).
   */
  private prepareScheme(scheme: number): MessageSigning {
    const name = `0x${scheme.toString(16).padStart(4, '0')}`;
    if (!schemeParams(scheme)) throw new KeylessError(ErrorCode.cryptoFailed, `signature scheme ${name} is not supported`);
    if (!keyMatchesScheme(this.key, scheme)) {
      throw new KeylessError(ErrorCode.cryptoFailed, `key ${this.skiHex} (${this.detail ?? this.algorithm}) cannot sign with signature scheme ${name}`);
    }
    const { algorithm, ...options } = cryptoOptions(scheme, this.key);
    const prepared = { algorithm, options };
    this.messageSigning.set(scheme, prepared);
    return prepared;
  }

  /** The documented opcodes: `payload` is a digest, or the whole message for Ed25519. */
  private signDigest(op: SignOperation, payload: Uint8Array): Uint8Array {
    switch (op.kind) {
      case 'rsa-pkcs1':
        if (this.algorithm === 'rsa') return signRsaPkcs1Digest(this.key, op.hash, payload);
        break;
      case 'rsa-pss':
        if (this.algorithm === 'rsa') return signRsaPssDigest(this.key, this.modulusBits, op.hash, payload);
        break;
      case 'ecdsa':
        if (this.ecdsa) return this.ecdsa.sign(op.hash, payload);
        break;
      case 'ed25519':
        if (this.algorithm === 'ed25519') return signEd25519(this.key, payload);
        break;
    }
    throw new KeylessError(
      ErrorCode.cryptoFailed,
      `key ${this.skiHex} (${this.detail ?? this.algorithm}) cannot sign ${describeOperation(op)}`,
    );
  }
}

/** The key families a SignOperation applies to, for error messages. */
function describeOperation(op: SignOperation): string {
  return op.kind === 'ed25519' ? 'Ed25519' : `${op.kind.toUpperCase()} over ${op.hash.toUpperCase()}`;
}

function curveName(opensslName: string | undefined): EcCurve {
  switch (opensslName) {
    case 'prime256v1':
      return 'P-256';
    case 'secp384r1':
      return 'P-384';
    case 'secp521r1':
      return 'P-521';
    default:
      throw new Error(`unsupported curve ${opensslName ?? 'unknown'}`);
  }
}

/** The labels of the PEM blocks in a file (none for DER or garbage). */
function pemLabelsOf(contents: Buffer): string[] {
  const labels = new Set<string>();
  for (const m of contents.toString('latin1').matchAll(/-----BEGIN ([A-Z0-9 ]{1,64})-----/g)) labels.add(m[1]!);
  return [...labels];
}

/** Parses every private key in one file's contents. A file without a private key yields []. */
export function parseKeyFile(contents: Buffer, source: string, work?: PemScanWork): SigningKey[] {
  const text = contents.toString('latin1');
  if (!text.includes('-----BEGIN')) {
    // DER: accept a bare PKCS#8 key (what `openssl pkcs8 -outform DER` writes).
    try {
      return [new SigningKey(createPrivateKey({ key: contents, format: 'der', type: 'pkcs8' }), source)];
    } catch (cause) {
      throw new Error(`${source}: not PEM and not a DER PKCS#8 private key`, { cause });
    }
  }
  const keys: SigningKey[] = [];
  // pemBlocks is linear in the file: a key directory is read at every reload, so a file of BEGIN
  // lines without END must not cost the key server seconds of its event loop.
  for (const { label, text: block } of pemBlocks(text, work)) {
    if (!label.endsWith('PRIVATE KEY')) continue;
    if (label === 'ENCRYPTED PRIVATE KEY') throw new Error(`${source}: encrypted private keys are not supported`);
    try {
      keys.push(new SigningKey(createPrivateKey(block), source));
    } catch (cause) {
      const reason = cause instanceof Error ? cause.message : String(cause);
      throw new Error(`${source}: invalid ${label}: ${reason}`, { cause });
    }
  }
  return keys;
}

export interface KeyStoreLogger {
  info(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
  error(message: string, meta?: Record<string, unknown>): void;
}

/** One key-file-named entry of the directory, as a reload read it (for a `check`). */
export interface KeyFile {
  /** Its name in the directory. */
  readonly name: string;
  /** Where it resolves to, symlinks followed (a Secret volume's files are symlinks into `..data`). */
  readonly realPath: string;
  /** False for a directory, socket, ...: such an entry is skipped, never read. */
  readonly regular: boolean;
  /** The private keys it holds ([] for a file without one, e.g. a certificate). */
  readonly keys: readonly SigningKey[];
  /** The labels of its PEM blocks (`CERTIFICATE`, `PRIVATE KEY`, ...), to say what a file without a key is. */
  readonly pemLabels: readonly string[];
  /** Why it does not parse; at open such a file fails the start (after the `check`, which may say more). */
  readonly error?: Error;
  /**
   * After the start: why this file's new contents were refused. `keys` are then the ones it held
   * before (none for a new file), already checked; a `check` judges them no further.
   */
  readonly refused?: string;
}

/**
 * A `check`'s refusal that names the files it blames: after the start only those are refused (each
 * keeps its previous keys) and the rest of the change applies. Any other error refuses the set.
 */
export class KeyFileError extends Error {
  override readonly name: string = 'KeyFileError';
  constructor(
    message: string,
    /** The files to blame, in order; the first new or changed one is refused. */
    readonly files: readonly string[],
  ) {
    super(message);
  }
}

/** What one reload read, before it is swapped in. */
export interface KeyFileSet {
  /** The directory as given, and where it resolves to. */
  readonly dir: string;
  readonly realDir: string;
  /** By name: every entry with a key file name (*.pem, *.key, *.der, not a dot file). */
  readonly files: ReadonlyMap<string, KeyFile>;
  /** True for the load at open (a failure there stops the start), false for later reloads. */
  readonly first: boolean;
}

export interface KeyDirectoryOptions {
  /**
   * Called with each new key set before it replaces the working one; throwing refuses it (the
   * working set stays, the reload fails with that error). The `--grant` policy checks its files here.
   */
  readonly check?: (set: KeyFileSet) => void;
  /** Watch the directory and reload on change (default true). */
  readonly watch?: boolean;
  /** Fallback poll interval in ms (default 30 s; 0 disables). */
  readonly pollIntervalMs?: number;
  /** Debounce of change events in ms (default 200). */
  readonly debounceMs?: number;
  readonly logger?: KeyStoreLogger;
  /** Called after every reload attempt (tests and metrics). */
  readonly onReload?: (result: ReloadResult) => void;
}

export type ReloadResult =
  | { readonly ok: true; readonly keys: number; readonly changed: boolean }
  /** `changed`: the refused files aside, the rest of the change was applied (keys added or removed). */
  | { readonly ok: false; readonly error: Error; readonly changed?: boolean };

/** Key files are *.pem, *.key and *.der; dot files (Secret volume internals) are skipped. */
function isKeyFileName(name: string): boolean {
  return !name.startsWith('.') && /\.(pem|key|der)$/i.test(name);
}

/** A directory of private keys, looked up by SKI, reloaded as a whole. */
export class KeyDirectory {
  private keys: ReadonlyMap<string, SigningKey> = new Map();
  /** The working set by file (refused files with the keys they keep), and each file's content digest. */
  private files: ReadonlyMap<string, KeyFile> = new Map();
  private digests: ReadonlyMap<string, string> = new Map();
  private fingerprint = '';
  private loaded = false;
  private watcher: FSWatcher | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private debounceTimer: NodeJS.Timeout | undefined;
  private reloading: Promise<ReloadResult> | undefined;
  private reloadAgain = false;

  private constructor(readonly dir: string, private readonly options: KeyDirectoryOptions) {}

  /** Loads the directory (failing if any key file is invalid) and starts watching it. */
  static async open(dir: string, options: KeyDirectoryOptions = {}): Promise<KeyDirectory> {
    const store = new KeyDirectory(dir, options);
    const first = await store.reload();
    if (!first.ok) throw first.error;
    store.startWatching();
    return store;
  }

  get(skiHexValue: string): SigningKey | undefined {
    return this.keys.get(skiHexValue);
  }

  get size(): number {
    return this.keys.size;
  }

  list(): SigningKey[] {
    return [...this.keys.values()];
  }

  /** Reads, validates and swaps in the whole directory; concurrent calls are coalesced. */
  reload(): Promise<ReloadResult> {
    if (this.reloading) {
      this.reloadAgain = true;
      return this.reloading;
    }
    this.reloading = this.reloadOnce().finally(() => {
      this.reloading = undefined;
      if (this.reloadAgain) {
        this.reloadAgain = false;
        void this.reload();
      }
    });
    return this.reloading;
  }

  private async reloadOnce(): Promise<ReloadResult> {
    let result: ReloadResult;
    try {
      const read = await this.readAll();
      const changed = read.fingerprint !== this.fingerprint;
      if (changed && !this.loaded) {
        this.options.check?.({ dir: this.dir, realDir: read.realDir, files: read.files, first: true });
        // An invalid file fails the start after the check, which can say more about a file it knows.
        for (const file of read.files.values()) if (file.error) throw file.error;
        this.swap(read.files, read.digests);
        this.fingerprint = read.fingerprint;
        this.loaded = true;
      } else if (changed) {
        const { files, digests, refused } = this.validatePerFile(read);
        this.swap(files, digests);
        if (refused.size === 0) {
          this.fingerprint = read.fingerprint;
        } else {
          // Not recorded as seen: the next poll tries the refused files again (and says so again).
          const list = [...refused].map(([file, why]) => `${file}: ${why}`).join('; ');
          result = { ok: false, error: new Error(`key files refused, each keeping its previous keys: ${list}`), changed: true };
          this.options.onReload?.(result);
          return result;
        }
      }
      result = { ok: true, keys: this.keys.size, changed };
    } catch (cause) {
      const error = cause instanceof Error ? cause : new Error(String(cause));
      this.options.logger?.error('keyless: key reload failed, keeping the previous key set', {
        dir: this.dir,
        error: error.message,
        keys: this.keys.size,
      });
      result = { ok: false, error };
    }
    this.options.onReload?.(result);
    return result;
  }

  /** Swaps in a validated set (the one assignment readers see) and logs what left it. */
  private swap(files: ReadonlyMap<string, KeyFile>, digests: ReadonlyMap<string, string>): void {
    const keys = new Map<string, SigningKey>();
    for (const name of [...files.keys()].sort()) {
      for (const key of files.get(name)!.keys) if (!keys.has(key.skiHex)) keys.set(key.skiHex, key);
    }
    for (const [name, old] of this.files) {
      if (!files.has(name) && old.keys.length > 0) {
        this.options.logger?.warn('keyless: key file removed, its keys are dropped', { dir: this.dir, file: name, skis: old.keys.map((k) => k.skiHex) });
      }
    }
    this.keys = keys;
    this.files = files;
    this.digests = digests;
    this.options.logger?.info('keyless: key set loaded', { dir: this.dir, keys: keys.size, skis: [...keys.keys()] });
  }

  /**
   * After the start: the new set with every refused file (one that does not parse, or that the
   * `check` blames) back at its previous keys, none for a new file. Removed files stay removed.
   */
  private validatePerFile(read: { files: Map<string, KeyFile>; digests: Map<string, string>; realDir: string }): {
    files: Map<string, KeyFile>;
    digests: Map<string, string>;
    refused: Map<string, string>;
  } {
    const files = new Map(read.files);
    const digests = new Map(read.digests);
    const refused = new Map<string, string>();
    const refuse = (name: string, why: string): void => {
      refused.set(name, why);
      const previous = this.files.get(name);
      const fresh = read.files.get(name)!;
      files.set(name, previous ? { ...previous, refused: why } : { name, realPath: fresh.realPath, regular: fresh.regular, keys: [], pemLabels: fresh.pemLabels, refused: why });
      const previousDigest = this.digests.get(name);
      if (previousDigest !== undefined) digests.set(name, previousDigest);
      else digests.delete(name);
      this.options.logger?.warn('keyless: key file refused, keeping its previous keys', {
        dir: this.dir,
        file: name,
        error: why,
        kept: (previous?.keys ?? []).map((k) => k.skiHex),
      });
    };
    for (const file of read.files.values()) if (file.error) refuse(file.name, file.error.message);
    // Each round refuses one more file or ends: bounded by the files.
    for (let round = 0; round <= read.files.size; round++) {
      try {
        this.options.check?.({ dir: this.dir, realDir: read.realDir, files, first: false });
        break;
      } catch (err) {
        const changedFile = (name: string): boolean => read.files.has(name) && !refused.has(name) && read.digests.get(name) !== this.digests.get(name);
        const blame = err instanceof KeyFileError ? err.files.find(changedFile) : undefined;
        if (blame === undefined) throw err;
        refuse(blame, (err as KeyFileError).message);
      }
    }
    return { files, digests, refused };
  }

  /**
   * Where the key material lives: each file's bytes only while it is parsed (the Buffer is zeroed
   * after; the PEM text parseKeyFile decodes is a transient string JavaScript cannot wipe), then
   * in the SigningKeys' KeyObjects (OpenSSL memory), for ECDSA keys also the private scalar as
   * bytes for @noble/curves (EcdsaDigestSigner: digest requests), and the signing workers' copies
   * of both (SigningPool.retainOnly drops those of removed keys). The reload fingerprint is a SHA-256 of
   * names and contents, never a copy of them.
   */
  private async readAll(): Promise<{ files: Map<string, KeyFile>; digests: Map<string, string>; fingerprint: string; realDir: string }> {
    const realDir = await realpath(this.dir);
    const names = (await readdir(this.dir)).filter(isKeyFileName).sort();
    const files = new Map<string, KeyFile>();
    const digests = new Map<string, string>();
    const fingerprint = createHash('sha256');
    for (const name of names) {
      const path = join(this.dir, name);
      let realPath: string;
      let contents: Buffer;
      try {
        const info = await stat(path); // follows symlinks
        realPath = await realpath(path);
        if (!info.isFile()) {
          files.set(name, { name, realPath, regular: false, keys: [], pemLabels: [] });
          fingerprint.update(`${name}\0${realPath}\0dir\0`);
          digests.set(name, `dir:${realPath}`);
          continue;
        }
        contents = await readFile(path);
      } catch (cause) {
        // Removed since readdir (or a dangling link): gone, as if it had not been listed.
        if ((cause as NodeJS.ErrnoException).code === 'ENOENT') continue;
        const error = new Error(`${path}: cannot be read: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
        files.set(name, { name, realPath: path, regular: true, keys: [], pemLabels: [], error });
        fingerprint.update(`${name}\0unreadable\0${error.message}\0`);
        continue;
      }
      try {
        const digest = createHash('sha256').update(`${realPath}\0`).update(contents).digest('hex');
        digests.set(name, digest);
        fingerprint.update(`${name}\0${digest}\0`);
        let found: SigningKey[] = [];
        let error: Error | undefined;
        try {
          found = parseKeyFile(contents, path);
        } catch (cause) {
          error = cause instanceof Error ? cause : new Error(String(cause));
        }
        files.set(name, { name, realPath, regular: true, keys: found, pemLabels: pemLabelsOf(contents), ...(error ? { error } : {}) });
      } finally {
        contents.fill(0);
      }
    }
    return { files, digests, fingerprint: fingerprint.digest('hex'), realDir };
  }

  private startWatching(): void {
    if (this.options.watch !== false) {
      try {
        this.watcher = watch(this.dir, () => this.scheduleReload());
        this.watcher.unref(); // the server's sockets keep the process alive, not the watcher
        this.watcher.on('error', (err) => {
          this.options.logger?.warn('keyless: directory watch failed; polling only', { dir: this.dir, error: err.message });
          this.watcher?.close();
          this.watcher = undefined;
        });
      } catch (err) {
        this.options.logger?.warn('keyless: cannot watch key directory; polling only', {
          dir: this.dir,
          error: err instanceof Error ? err.message : String(err),
        });
      }
    }
    const poll = this.options.pollIntervalMs ?? 30_000;
    if (poll > 0) {
      this.pollTimer = setInterval(() => void this.reload(), poll);
      this.pollTimer.unref();
    }
  }

  private scheduleReload(): void {
    if (this.debounceTimer) clearTimeout(this.debounceTimer);
    this.debounceTimer = setTimeout(() => void this.reload(), this.options.debounceMs ?? 200);
    this.debounceTimer.unref();
  }

  close(): void {
    this.watcher?.close();
    this.watcher = undefined;
    if (this.pollTimer) clearInterval(this.pollTimer);
    if (this.debounceTimer) clearTimeout(this.debounceTimer);
  }
}

/** A fixed set of keys (tests, embedding). */
export class StaticKeys {
  private readonly keys: Map<string, SigningKey>;
  constructor(keys: Iterable<KeyObject>) {
    this.keys = new Map([...keys].map((k) => new SigningKey(k, 'memory')).map((k) => [k.skiHex, k]));
  }
  get(skiHexValue: string): SigningKey | undefined {
    return this.keys.get(skiHexValue);
  }
  get size(): number {
    return this.keys.size;
  }
}

/** What the server needs from a key store. */
export interface KeyLookup {
  get(skiHexValue: string): SigningKey | undefined;
  readonly size: number;
}

