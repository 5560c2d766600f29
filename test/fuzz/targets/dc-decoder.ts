/**
 * The delegated-credential decoder (src/tls/delegated/codec.ts) and what reads its output: the
 * receiver's validation and `dcctl dc inspect`'s description, against a fixed DC-capable
 * certificate (test/fuzz/fixtures/dc-certificate.der; the seeds are credentials it signed).
 *
 * A credential that decodes must re-encode to the same bytes; validation may only reject it
 * with InvalidDelegatedCredential (a TlsError); the description never throws.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SignatureScheme } from '../../../src/tls/constants.js';
import {
  decodeDelegatedCredential,
  describeDelegatedCredential,
  encodeDelegatedCredential,
  verifyDelegatedCredential,
} from '../../../src/tls/delegated/index.js';
import { REPO_ROOT } from '../protocol.js';
import { bytesEqual, check, isTlsError, type FuzzTarget } from '../target.js';
import { TLS_DICTIONARY } from './tls-dictionary.js';

/** The clock of the fuzz fixtures: the certificate is valid around it, the seeds' credentials too. */
export const FIXTURE_NOW = new Date('2025-06-01T01:00:00Z');
export const DC_CERTIFICATE_FILE = join(REPO_ROOT, 'test', 'fuzz', 'fixtures', 'dc-certificate.der');

let certificate: Uint8Array | undefined;
const ALL_SCHEMES = Object.values(SignatureScheme);

export const target: FuzzTarget = {
  description: 'a DelegatedCredential structure → decode, re-encode, validate, describe',
  maxLength: 2048,
  dictionary: TLS_DICTIONARY,
  modules: ['src/tls/delegated/'],
  setup() {
    certificate = new Uint8Array(readFileSync(DC_CERTIFICATE_FILE));
    return Promise.resolve();
  },
  run(data) {
    const dc = decodeDelegatedCredential(data);
    check(bytesEqual(encodeDelegatedCredential(dc), data), 'a decoded credential does not re-encode to its bytes');
    const description = describeDelegatedCredential(dc, certificate!, { now: FIXTURE_NOW });
    check(description.valid === (description.problem === undefined), 'description: valid and problem disagree');
    verifyDelegatedCredential(dc, { certificate: certificate!, now: FIXTURE_NOW, acceptedDcSchemes: ALL_SCHEMES, acceptedSignatureSchemes: ALL_SCHEMES });
  },
  expected: isTlsError,
};
