// The policy of `dc-operator keyserver --keys DIR --grant IDENTITY=FILE ...`: a key directory
// served to named identities only, as the in-cluster key server grants each sidecar identity its
// one key (authorization.ts). An identity is the one URI SAN of the client certificate; a grant
// names a key file of the directory by its file name, so a key rotated in that file stays granted.
//
// With grants, deny by default: a client without exactly one URI SAN, or whose identity holds no
// grant for the file the requested key was read from, is answered "key not found" (as the
// in-cluster server answers a refusal: a client learns nothing about keys that are not its own),
// and the refusal is logged with why. Pings are answered for every client of the CA (they touch no
// key). What may be signed depends on who asks: a sidecar identity (…/ns/NS/dc/NAME, whose client
// key sits in its tenant's output Secret) may have only TLS handshake signatures made, exactly as
// in cluster mode (handshake-content.ts), so a stolen sidecar identity cannot mint a delegated
// credential; any other granted identity (the operator's keyless signer) is not narrowed, since it
// signs delegated credentials.
//
// The granted files are checked with every new key set, before it is swapped in (checkKeyFiles,
// the key directory's `check`): at start a failure stops the key server with an error naming the
// --grant and what to fix; later the failed reload keeps the working key set (validate, then swap).
// - A granted name must be a regular file holding a private key (not a certificate, a directory or
//   garbage), resolving inside the directory: a symlink out of it is refused, so a grant names only
//   what the directory holds (a Secret volume's symlinks into `..data` stay inside).
// - One key, one file: a key (SKI) in two files of the directory is refused, since which file's
//   grants apply would depend on the order the files were read (two grants, or two names for one key).
// - A granted file that disappears after the start revokes: its key is gone with the reload (whatever
//   else of the directory is broken), and the log says which identities lost it. A file that changes
//   into something invalid is refused alone and the key it held stays in use until it is fixed or
//   removed; the other files' changes apply.
//
// Without any --grant the key server keeps its old rule, which the CLI says at start: every client
// whose certificate chains to --ca may use every key.
import { basename, sep } from 'node:path';
import type { X509Certificate } from 'node:crypto';
import { KeyFileError, type KeyFileSet, type KeyStoreLogger, type SigningKey } from '../keyless/keystore.js';
import { ErrorCode, isSigningOpcode, opcodeName } from '../keyless/protocol.js';
import type { SignRequest } from '../keyless/sign-request.js';
import type { PeerAuthorizer, RequestAuthorizer } from '../keyless/server.js';
import { LogLimiter } from '../net/log-limiter.js';
import { parseSidecarIdentityUri } from '../operator/api/serving-bundle.js';
import { singleUriSan } from './authorization.js';
import { notHandshakeContent } from './handshake-content.js';

export interface FileGrant {
  /** The client certificate's URI SAN. */
  readonly identity: string;
  /** A key file's name in the key directory (no directory part). */
  readonly file: string;
}

/** Parses `IDENTITY-URI=FILE` (split at the last '='); throws an Error that says what to write. */
export function parseFileGrant(text: string): FileGrant {
  const at = text.lastIndexOf('=');
  const identity = at < 0 ? '' : text.slice(0, at);
  const file = at < 0 ? '' : text.slice(at + 1);
  if (!/^[a-z][a-z0-9+.-]*:\S+$/i.test(identity) || file === '') {
    throw new Error(`"${text}" is not IDENTITY-URI=KEY-FILE (e.g. spiffe://example.org/operator=www.pem)`);
  }
  if (/^uri:/i.test(identity)) {
    throw new Error(`"${identity}" starts with "URI:", as openssl prints a SAN; write the URI alone: ${text.slice(4)}`);
  }
  if (file !== basename(file) || file === '.' || file === '..') {
    throw new Error(`"${file}" is not a file name in the key directory (no directory part): ${text}`);
  }
  return { identity, file };
}

/**
 * A key directory the grants cannot be served from; its message names the --grant and what to fix,
 * its `files` the key files to blame (after the start only those are refused, keeping their keys).
 */
export class KeyFileGrantError extends KeyFileError {
  override readonly name = 'KeyFileGrantError';
}

/** Which keys exist, by SKI (the key directory; undefined until the server has opened it). */
export type KeyOfSki = (skiHex: string) => SigningKey | undefined;

export class FileGrantAuthorizer implements RequestAuthorizer {
  /** Identity → the key file names it may use. */
  private readonly files = new Map<string, Set<string>>();
  /** Key file name → the identities granted it. */
  private readonly holders = new Map<string, string[]>();
  private readonly limiter = new LogLimiter();

  constructor(
    grants: readonly FileGrant[],
    private readonly keyOf: KeyOfSki,
    private readonly log?: KeyStoreLogger,
  ) {
    for (const g of grants) {
      let mine = this.files.get(g.identity);
      if (mine === undefined) this.files.set(g.identity, (mine = new Set()));
      mine.add(g.file);
      this.holders.set(g.file, [...(this.holders.get(g.file) ?? []), g.identity]);
    }
  }

  /**
   * The key directory's check of a new key set (KeyDirectoryOptions.check): throws a
   * KeyFileGrantError that names the --grant, the file and what to fix, so the set is refused
   * (at start: not started). A granted file that is gone after the start is allowed and logged: its
   * identities lose that key.
   */
  checkKeyFiles(set: KeyFileSet): void {
    const flag = (file: string): string => (this.holders.get(file) ?? []).map((identity) => `--grant ${identity}=${file}`).join(', ');
    const inside = set.realDir.endsWith(sep) ? set.realDir : set.realDir + sep;
    for (const [name, identities] of [...this.holders].sort(([a], [b]) => a.localeCompare(b))) {
      const file = set.files.get(name);
      if (file === undefined) {
        if (set.first) {
          throw new KeyFileGrantError(`${flag(name)}: there is no file ${name} in --keys ${set.dir} (a key file is named *.pem, *.key or *.der, not starting with "."): put the key there, or fix the grant`, [name]);
        }
        this.log?.warn('keyserver: a granted key file is gone, its key is revoked', { file: name, identities, dir: set.dir });
        continue;
      }
      // Its new contents were refused already; it keeps the keys it had, checked then.
      if (file.refused !== undefined) continue;
      if (!file.realPath.startsWith(inside)) {
        throw new KeyFileGrantError(`${flag(name)}: ${name} in --keys ${set.dir} resolves to ${file.realPath}, outside the directory: put the key file itself into --keys, not a link out of it`, [name]);
      }
      if (!file.regular) throw new KeyFileGrantError(`${flag(name)}: ${name} in --keys ${set.dir} is not a regular file (a directory?): grant a key file`, [name]);
      if (file.error) throw new KeyFileGrantError(`${flag(name)}: ${name} in --keys ${set.dir} is not a usable private key: ${file.error.message}`, [name]);
      if (file.keys.length === 0) {
        const what = file.pemLabels.length > 0 ? `its PEM blocks are ${file.pemLabels.join(', ')}` : 'it is empty';
        throw new KeyFileGrantError(`${flag(name)}: ${name} in --keys ${set.dir} holds no private key (${what}): grant the file with the certificate's private key (PKCS#8, PKCS#1 or SEC1 PEM, or DER PKCS#8)`, [name]);
      }
    }
    // One key, one file: the grants of a key are those of the one file it was read from.
    const fileOf = new Map<string, string>();
    for (const file of [...set.files.values()].sort((a, b) => a.name.localeCompare(b.name))) {
      for (const key of new Map(file.keys.map((k) => [k.skiHex, k])).values()) {
        const other = fileOf.get(key.skiHex);
        if (other === undefined) {
          fileOf.set(key.skiHex, file.name);
          continue;
        }
        const granted = [other, file.name].filter((f) => this.holders.has(f)).map(flag).join('; ');
        throw new KeyFileGrantError(
          `--keys ${set.dir}: the same key (SKI ${key.skiHex}) is in ${other} and in ${file.name}${granted ? ` (${granted})` : ''}; ` +
            'with --grant each key lives in one file, since a grant names a file: remove one of them, and grant the other to every identity that needs the key',
          [other, file.name],
        );
      }
    }
  }

  /** Why `identity` (undefined: none) may not have `request` signed with the key of `ski`, or undefined when it may. */
  refusal(identity: string | undefined, ski: string | undefined, request?: SignRequest): string | undefined {
    if (identity === undefined) return 'it has no identity';
    const mine = this.files.get(identity);
    if (mine === undefined) return `identity ${identity} holds no --grant`;
    const key = ski === undefined ? undefined : this.keyOf(ski);
    if (key === undefined) return `no key ${ski ?? '(no SKI)'} is loaded`;
    const file = basename(key.source);
    if (!mine.has(file)) return `identity ${identity} may use ${[...mine].sort().join(', ')}, not ${file}`;
    if (parseSidecarIdentityUri(identity) === undefined) return undefined;
    // Deny rather than skip the content check when the server did not say what is to be signed.
    const notHandshake = request === undefined ? 'the key server did not say what is to be signed' : notHandshakeContent(request);
    return notHandshake === undefined ? undefined : `sidecar identity ${identity} may have only TLS handshake signatures made: ${notHandshake}`;
  }

  forPeer(certificate: X509Certificate): PeerAuthorizer {
    const san = singleUriSan(certificate.subjectAltName);
    const identity = 'uri' in san ? san.uri : undefined;
    const label = identity ?? 'unidentified';
    // Log lines are limited per key of a fixed set: the granted identities, and everyone else.
    const logKey = identity !== undefined && this.files.has(identity) ? identity : 'other';
    const sidecar = identity === undefined ? undefined : parseSidecarIdentityUri(identity);
    return {
      ...(identity !== undefined ? { identity } : {}),
      // Sidecar identities of one namespace share one tenant's connections, as in cluster mode;
      // the trust domain is part of it, since a remote key server may trust several clusters' CAs
      // and their namespaces of one name are different tenants.
      ...(sidecar !== undefined ? { tenant: `${sidecar.trustDomain}/ns/${sidecar.namespace}` } : {}),
      holdsGrant: () => identity !== undefined && this.files.has(identity),
      admit: (opcode, ski, request) => {
        if (!isSigningOpcode(opcode)) return undefined; // pings, and opcodes the server refuses itself
        const why = 'why' in san ? san.why : this.refusal(identity, ski, request);
        if (why === undefined) return undefined;
        this.limiter.log(logKey, (suppressed) =>
          this.log?.warn('keyserver: signing refused', {
            identity: label,
            ski: ski ?? null,
            opcode: opcodeName(opcode),
            why,
            ...(suppressed > 0 ? { suppressedSinceLastLine: suppressed } : {}),
          }),
        );
        return ErrorCode.keyNotFound;
      },
      answered: () => undefined,
    };
  }
}
