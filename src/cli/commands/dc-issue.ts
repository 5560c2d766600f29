import { certificateNotAfter } from '../../tls/x509/index.js';
import { signatureSchemeName } from '../../tls/constants.js';
import { DelegationError, MAX_DC_VALIDITY_SECONDS, issueDelegatedCredential, type DcAlgorithmName } from '../../tls/delegated/index.js';
import { InMemoryKeySigner } from '../../signer/in-memory.js';
import { defineCommand } from '../framework/command.js';
import { InputError, UsageError } from '../framework/errors.js';
import { resolvePath, writeOutputFiles } from '../framework/files.js';
import { oneOf } from '../framework/flags.js';
import { outputFormat, outputOption, printResult } from '../framework/output.js';
import { durationFlag, humanDuration, readCertificateFile, readMatchingKey } from './tls-inputs.js';

export const DC_CRED_FILE = 'dc.cred';
export const DC_KEY_FILE = 'dc.key';

/** The algorithms `dc issue` offers (the ones TLS peers actually accept for DCs). */
export const ISSUE_ALGORITHMS = ['ed25519', 'ecdsa_secp256r1_sha256', 'ecdsa_secp384r1_sha384', 'mldsa44', 'mldsa65', 'mldsa87'] as const satisfies readonly DcAlgorithmName[];

export const dcIssue = defineCommand({
  path: ['dc', 'issue'],
  summary: 'Issue a delegated credential (RFC 9345) from a certificate: DIR/dc.cred, DIR/dc.key',
  description: `
Makes a fresh key pair for the credential and signs the credential with the certificate's key.
DIR/dc.cred is the encoded DelegatedCredential (binary, as sent in the TLS Certificate message);
DIR/dc.key its private key (PKCS#8 PEM, mode 0600). Serve it with 'dcctl serve --dc-dir DIR'.

The certificate must carry the DelegationUsage extension (1.3.6.1.4.1.44363.44, non-critical)
and keyUsage digitalSignature ('dcctl cert create' adds both). The validity counts from now, may
not exceed 7 days (RFC 9345), and may not reach past the certificate's notAfter.`,
  options: {
    cert: { type: 'string', value: 'FILE', description: 'delegation certificate (PEM, end-entity first)', required: true },
    key: { type: 'string', value: 'FILE', description: "the certificate's private key (PEM)", required: true },
    algorithm: { type: 'string', value: 'ALG', description: `credential key type / CertificateVerify scheme: ${ISSUE_ALGORITHMS.join(', ')}`, default: 'ecdsa_secp256r1_sha256' },
    validity: { type: 'string', value: 'DURATION', description: 'lifetime from now, e.g. 24h, 90m, 3d (at most 7d)', default: '24h' },
    out: { type: 'string', value: 'DIR', description: 'directory to write dc.cred and dc.key into (created if missing)', required: true },
    force: { type: 'boolean', description: 'overwrite existing files (all of them, or on an error none)' },
    output: outputOption,
  },
  examples: [
    'dcctl dc issue --cert .dev/api/tls.crt --key .dev/api/tls.key --out .dev/dc-p256',
    'dcctl dc issue --cert tls.crt --key tls.key --algorithm ed25519 --validity 6h --out dc-ed25519',
  ],
  validate(v) {
    const validitySeconds = durationFlag('--validity', v.validity);
    if (validitySeconds <= 0) throw new UsageError('must be longer than 0s', '--validity');
    if (validitySeconds > MAX_DC_VALIDITY_SECONDS) {
      throw new UsageError(`${v.validity} is over the 7 days (168h) RFC 9345 allows for a delegated credential`, '--validity');
    }
    return {
      cert: v.cert,
      key: v.key,
      algorithm: oneOf('--algorithm', v.algorithm, ISSUE_ALGORITHMS, 'algorithm'),
      validitySeconds,
      out: v.out,
      force: v.force,
      format: outputFormat(v.output),
    };
  },
  async run(c, ctx) {
    const cert = await readCertificateFile(ctx.cwd, c.cert, '--cert', { endEntityFirst: true });
    const { key } = await readMatchingKey(ctx.cwd, c.key, '--key', cert, `--cert ${c.cert}`);
    const now = ctx.now();
    let notAfter: Date | undefined;
    try {
      notAfter = certificateNotAfter(cert.chain[0]!);
    } catch {
      notAfter = undefined; // issueDelegatedCredential names what is wrong with the certificate
    }
    if (notAfter && notAfter.getTime() <= now.getTime()) {
      throw new InputError(
        `--cert ${c.cert}: the certificate expired at ${notAfter.toISOString()} (${humanDuration((now.getTime() - notAfter.getTime()) / 1000)} ago) and can no longer delegate; renew it (e.g. dcctl cert create ... --force) and issue again`,
      );
    }
    const signer = new InMemoryKeySigner(key);
    let issued;
    try {
      issued = await issueDelegatedCredential({
        certificate: cert.chain[0]!,
        signer,
        dcAlgorithm: c.algorithm,
        validitySeconds: c.validitySeconds,
        now,
      });
    } catch (e) {
      if (e instanceof DelegationError) throw new InputError(`--cert ${c.cert}: ${e.message}`);
      throw e;
    }
    const [credPath, keyPath] = await writeOutputFiles(
      resolvePath(ctx.cwd, c.out),
      [
        { name: DC_CRED_FILE, content: issued.delegatedCredential, mode: 0o644 },
        { name: DC_KEY_FILE, content: issued.privateKeyPem, mode: 0o600 },
      ],
      { force: c.force, flag: '--out' },
    );
    const remaining = (issued.expiresAt.getTime() - ctx.now().getTime()) / 1000;
    const signatureScheme = signatureSchemeName(issued.decoded.algorithm);
    const expiresAt = issued.expiresAt.toISOString();
    printResult(
      ctx,
      c.format,
      { credential: credPath, key: keyPath, algorithm: c.algorithm, signatureScheme, expiresAt, remainingSeconds: Math.floor(remaining) },
      () => `wrote ${credPath} (${c.algorithm}, signed with ${signatureScheme}; expires ${expiresAt}, in ${humanDuration(remaining)})\nwrote ${keyPath}\n`,
    );
    return 0;
  },
});
