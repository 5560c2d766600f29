import { randomBytes } from 'node:crypto';
import { certificateNotAfter } from '../../tls/x509/index.js';
import { defineCommand } from '../framework/command.js';
import { UsageError } from '../framework/errors.js';
import { writeOutputFiles, resolvePath } from '../framework/files.js';
import { integerFlag, oneOf } from '../framework/flags.js';
import { outputFormat, outputOption, printResult } from '../framework/output.js';
import { KEY_TYPES, issueCertificate } from '../pki/dev-pki.js';
import { CA_CERT_FILE, CA_KEY_FILE } from '../pki/ca-dir.js';

const DAY_MS = 86_400_000;
/** Backdating absorbs clock skew between this machine and the peers that verify. */
const BACKDATE_MS = 5 * 60_000;

export const caCreate = defineCommand({
  path: ['ca', 'create'],
  summary: 'Create a development CA: DIR/ca.crt and DIR/ca.key',
  description: `
A self-signed CA for development and tests (basicConstraints CA, keyUsage keyCertSign and
cRLSign). Issue certificates from it with 'dcctl cert create --ca-dir DIR'. ca.key is written with
mode 0600. Not for production: the key is an unencrypted file.`,
  options: {
    out: { type: 'string', value: 'DIR', description: 'directory to write ca.crt and ca.key into (created if missing)', required: true },
    cn: { type: 'string', value: 'NAME', description: 'subject common name (default: "dc-operator dev CA" and a random suffix)' },
    'key-type': { type: 'string', value: 'TYPE', description: `CA key type: ${KEY_TYPES.join(', ')}`, default: 'ecdsa-p256' },
    days: { type: 'string', value: 'N', description: 'validity in days', default: '3650' },
    force: { type: 'boolean', description: 'overwrite existing files (all of them, or on an error none)' },
    output: outputOption,
  },
  examples: ['dcctl ca create --out .dev/ca', 'dcctl ca create --out ca --key-type ed25519 --cn "Team CA" --days 30'],
  validate(v) {
    const cn = v.cn ?? `dc-operator dev CA ${randomBytes(3).toString('hex')}`;
    if (cn.length > 64) throw new UsageError(`must be at most 64 characters (X.509 ub-common-name), got ${cn.length}`, '--cn');
    return {
      out: v.out,
      cn,
      keyType: oneOf('--key-type', v['key-type'], KEY_TYPES, 'key type'),
      days: integerFlag('--days', v.days, 1, 36500),
      force: v.force,
      format: outputFormat(v.output),
    };
  },
  async run(c, ctx) {
    const now = ctx.now().getTime();
    const ca = await issueCertificate(
      { commonName: c.cn, isCA: true, notBefore: new Date(now - BACKDATE_MS), notAfter: new Date(now + c.days * DAY_MS) },
      c.keyType,
    );
    const dir = resolvePath(ctx.cwd, c.out);
    const [crt, key] = await writeOutputFiles(
      dir,
      [
        { name: CA_CERT_FILE, content: ca.pem, mode: 0o644 },
        { name: CA_KEY_FILE, content: ca.key.privateKeyPem, mode: 0o600 },
      ],
      { force: c.force, flag: '--out' },
    );
    const expiresAt = certificateNotAfter(ca.der).toISOString();
    printResult(ctx, c.format, { certificate: crt, key, commonName: c.cn, keyType: c.keyType, expiresAt }, () => `wrote ${crt} (CN=${c.cn}, ${c.keyType}, expires ${expiresAt})\nwrote ${key}\n`);
    return 0;
  },
});
