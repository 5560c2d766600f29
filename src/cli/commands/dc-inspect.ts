import { readFile } from 'node:fs/promises';
import { describeDelegatedCredential, type DelegatedCredentialDescription } from '../../tls/delegated/index.js';
import { defineCommand } from '../framework/command.js';
import { InputError } from '../framework/errors.js';
import { resolvePath } from '../framework/files.js';
import { outputFormat, outputOption, printResult } from '../framework/output.js';
import { humanDuration, readCertificateFile } from './tls-inputs.js';

/**
 * What to do when FILE is text rather than the binary credential: PEM, or base64 (what
 * `kubectl get secret -o jsonpath='{.data.dc\\.cred}'` prints). Undefined for anything else.
 */
export function textInputHint(bytes: Uint8Array, file: string): string | undefined {
  const text = Buffer.from(bytes).toString('latin1');
  const pem = /^\s*-----BEGIN ([A-Z0-9 ]+)-----/.exec(text);
  if (pem) {
    return pem[1] === 'CERTIFICATE'
      ? 'it is a PEM certificate; give the certificate as --cert and the dc.cred file that dcctl dc issue wrote as FILE'
      : `it is PEM text (BEGIN ${pem[1]}), not the binary credential that dcctl dc issue writes to dc.cred`;
  }
  const compact = text.replace(/\s+/g, '');
  if (compact.length >= 16 && compact.length % 4 === 0 && /^[A-Za-z0-9+/]+={0,2}$/.test(compact)) {
    return `it is base64 text, not the binary credential; decode it first, e.g. base64 -d ${file} > dc.cred (Secret data from kubectl is base64)`;
  }
  return undefined;
}

export const dcInspect = defineCommand({
  path: ['dc', 'inspect'],
  summary: 'Show a delegated credential: fields, expiry, remaining validity, whether it verifies',
  description: `
Decodes FILE (an encoded DelegatedCredential, e.g. dc.cred from 'dcctl dc issue') and checks it
against the certificate with every RFC 9345 receiver rule: signature over the certificate,
DelegationUsage and digitalSignature, expiry, at most 7 days of remaining validity, key type.`,
  exitStatus: {
    0: 'the credential verifies now',
    1: 'it does not verify (the reason is printed, or with -o json|yaml the "problem" field)',
    2: 'usage or input error: a flag is wrong, or FILE or --cert is unreadable or not what it should be',
  },
  options: {
    cert: { type: 'string', value: 'FILE', description: 'the delegation certificate (PEM, end-entity first)', required: true },
    output: outputOption,
    json: { type: 'boolean', description: 'same as -o json' },
  },
  positionals: [{ name: 'FILE', description: 'the encoded delegated credential (dc.cred)', required: true }],
  examples: ['dcctl dc inspect .dev/dc-p256/dc.cred --cert .dev/api/tls.crt', 'dcctl dc inspect dc.cred --cert tls.crt -o json'],
  validate(v, positionals) {
    return { file: positionals[0]!, cert: v.cert, format: outputFormat(v.output, v.json) };
  },
  async run(c, ctx) {
    const cert = await readCertificateFile(ctx.cwd, c.cert, '--cert', { endEntityFirst: true });
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await readFile(resolvePath(ctx.cwd, c.file)));
    } catch (e) {
      throw new InputError(`cannot read ${c.file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (e as Error).message}`);
    }
    let d: DelegatedCredentialDescription;
    try {
      d = describeDelegatedCredential(bytes, cert.chain[0]!, { now: ctx.now() });
    } catch (e) {
      throw new InputError(`${c.file} is not an encoded DelegatedCredential: ${textInputHint(bytes, c.file) ?? (e as Error).message}`);
    }
    printResult(ctx, c.format, { file: c.file, ...d }, () => {
      const rows: Array<[string, string]> = [
        ['algorithm', `${d.algorithm} (dc_cert_verify_algorithm)`],
        ['signed with', `${d.signatureAlgorithm} (by the certificate key)`],
        ['valid_time', `${d.validTime} s after the certificate's notBefore`],
        ['expires', d.expiresAt],
        ['remaining', d.remainingSeconds >= 0 ? humanDuration(d.remainingSeconds) : `expired ${humanDuration(-d.remainingSeconds)} ago`],
        ['public key', `${d.publicKeyType}, SHA-256 ${d.publicKeyFingerprint}`],
        ['signature', d.signatureValid ? 'valid' : 'INVALID'],
        ['verifies', d.valid ? 'yes' : `no: ${d.problem?.rule ?? 'unknown'}: ${d.problem?.message ?? ''}`],
      ];
      const w = Math.max(...rows.map(([k]) => k.length)) + 2;
      return rows.map(([k, v]) => `${`${k}:`.padEnd(w)}${v}\n`).join('');
    });
    return d.valid ? 0 : 1;
  },
});
