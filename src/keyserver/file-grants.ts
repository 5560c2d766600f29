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
// Without any --grant the key server keeps its old rule, which the CLI says at start: every client
// whose certificate chains to --ca may use every key.
import { basename } from 'node:path';
import type { X509Certificate } from 'node:crypto';
import type { KeyStoreLogger, SigningKey } from '../keyless/keystore.js';
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

/** Which keys exist, by SKI (the key directory; undefined until the server has opened it). */
export type KeyOfSki = (skiHex: string) => SigningKey | undefined;

export class FileGrantAuthorizer implements RequestAuthorizer {
  /** Identity → the key file names it may use. */
  private readonly files = new Map<string, Set<string>>();
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
    return {
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
