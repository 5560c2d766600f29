import { certificateNotAfter, derToPem, verifyCertificateChain } from '../../tls/x509/index.js';
import { defineCommand } from '../framework/command.js';
import { CommandFailed, UsageError } from '../framework/errors.js';
import { resolvePath, writeOutputFiles } from '../framework/files.js';
import { integerFlag, ipFlag, oneOf } from '../framework/flags.js';
import { outputFormat, outputOption, printResult } from '../framework/output.js';
import { loadCaDirectory, CA_CERT_FILE } from '../pki/ca-dir.js';
import { KEY_TYPES, KeyUsage, dnsNameProblem, issueCertificate, type KeyType } from '../pki/dev-pki.js';

const DAY_MS = 86_400_000;
const BACKDATE_MS = 5 * 60_000;
const DEFAULT_DAYS = 90;

export const TLS_CERT_FILE = 'tls.crt';
export const TLS_KEY_FILE = 'tls.key';

/**
 * keyUsage of a leaf: digitalSignature, which TLS 1.3 and RFC 9345 need, and for RSA keys also
 * keyEncipherment. NSS (Firefox, tstclnt) refuses an RSA server certificate without it
 * (SEC_ERROR_INADEQUATE_KEY_USAGE) whatever the TLS version; browsers and the CA/B Forum
 * profile give RSA server leaves both. EC and Ed25519 keys cannot encipher: digitalSignature only.
 */
export function leafKeyUsage(keyType: KeyType): number {
  return keyType.startsWith('rsa') ? KeyUsage.digitalSignature | KeyUsage.keyEncipherment : KeyUsage.digitalSignature;
}

export const certCreate = defineCommand({
  path: ['cert', 'create'],
  summary: 'Issue a leaf certificate for delegated credentials: DIR/tls.crt, DIR/tls.key, DIR/ca.crt',
  description: `
Issues a certificate from a CA directory made by 'dcctl ca create'. The files follow the
kubernetes.io/tls Secret layout: tls.crt holds the leaf (then any intermediates listed in the CA's
ca.crt), tls.key its PKCS#8 private key (mode 0600), ca.crt a copy of the CA certificate.

By default the leaf carries what RFC 9345 requires to delegate credentials: the DelegationUsage
extension (1.3.6.1.4.1.44363.44, non-critical, NULL) and keyUsage digitalSignature (critical;
RSA leaves also keyEncipherment, without which NSS refuses them); plus extKeyUsage serverAuth (and clientAuth with --client), subjectAltName entries from --dns and
--ip, and a random serial number. The subject common name is the first --dns (or --ip).`,
  options: {
    'ca-dir': { type: 'string', value: 'DIR', description: 'CA directory with ca.crt and ca.key (as written by ca create)', required: true, deprecatedAliases: ['ca'] },
    dns: { type: 'string', multiple: true, value: 'NAME', description: 'DNS subjectAltName, e.g. api.example.com or *.example.com' },
    ip: { type: 'string', multiple: true, value: 'ADDR', description: 'IP subjectAltName (IPv4 or IPv6)' },
    'key-type': { type: 'string', value: 'TYPE', description: `leaf key type: ${KEY_TYPES.join(', ')}`, default: 'ecdsa-p256' },
    days: { type: 'string', value: 'N', description: 'validity in days, ending before the CA does (default: 90, or up to the CA\'s expiry if sooner)' },
    'no-delegation-usage': { type: 'boolean', description: 'leave out the DelegationUsage extension (a certificate that cannot delegate)' },
    client: { type: 'boolean', description: 'also allow TLS client authentication (extKeyUsage clientAuth)' },
    out: { type: 'string', value: 'DIR', description: 'directory to write tls.crt, tls.key and ca.crt into', required: true },
    force: { type: 'boolean', description: 'overwrite existing files (all of them, or on an error none)' },
    output: outputOption,
  },
  examples: [
    'dcctl cert create --ca-dir .dev/ca --dns api.example.test --out .dev/api',
    'dcctl cert create --ca-dir .dev/ca --dns localhost --ip 127.0.0.1 --key-type ed25519 --out .dev/local',
  ],
  validate(v) {
    const dnsNames: string[] = [];
    for (const raw of v.dns) {
      const name = raw.toLowerCase().replace(/\.$/, '');
      const problem = dnsNameProblem(name);
      if (problem) throw new UsageError(`"${raw}" ${problem}`, '--dns');
      if (!dnsNames.includes(name)) dnsNames.push(name);
    }
    const ips = [...new Set(v.ip.map((a) => ipFlag('--ip', a)))];
    if (dnsNames.length === 0 && ips.length === 0) throw new UsageError('at least one --dns or --ip is required', '--dns');
    return {
      ca: v['ca-dir'],
      dnsNames,
      ips,
      keyType: oneOf('--key-type', v['key-type'], KEY_TYPES, 'key type'),
      days: v.days === undefined ? undefined : integerFlag('--days', v.days, 1, 36500),
      delegationUsage: !v['no-delegation-usage'],
      client: v.client,
      out: v.out,
      force: v.force,
      format: outputFormat(v.output),
    };
  },
  async run(c, ctx) {
    const now = ctx.now();
    const ca = await loadCaDirectory(resolvePath(ctx.cwd, c.ca), '--ca-dir', now);
    const caEnd = ca.certificate.notAfter.getTime();
    const notAfter = new Date(c.days === undefined ? Math.min(now.getTime() + DEFAULT_DAYS * DAY_MS, caEnd) : now.getTime() + c.days * DAY_MS);
    if (notAfter.getTime() > caEnd) {
      const maxDays = Math.floor((ca.certificate.notAfter.getTime() - now.getTime()) / DAY_MS);
      throw new UsageError(`${c.days} days would outlive the CA, which expires ${ca.certificate.notAfter.toISOString()}; use at most ${maxDays}`, '--days');
    }
    const leaf = await issueCertificate(
      {
        commonName: c.dnsNames[0] ?? c.ips[0]!,
        dnsNames: c.dnsNames,
        ipAddresses: c.ips,
        notBefore: new Date(now.getTime() - BACKDATE_MS),
        notAfter,
        keyUsage: leafKeyUsage(c.keyType),
        extendedKeyUsage: c.client ? ['serverAuth', 'clientAuth'] : ['serverAuth'],
        delegationUsage: c.delegationUsage ? 'non-critical' : 'none',
      },
      c.keyType,
      ca.issuer,
    );

    // Check our own output the way a TLS client will; a failure here is a bug, not a user error.
    const chain = [leaf.der, ...ca.intermediates];
    try {
      verifyCertificateChain(chain, { ca: [ca.certificatePem], servername: c.dnsNames[0] ?? c.ips[0]!, now });
    } catch (e) {
      throw new CommandFailed(`the issued certificate does not verify against ${CA_CERT_FILE}: ${(e as Error).message}`);
    }

    const dir = resolvePath(ctx.cwd, c.out);
    const [crt, key, caCopy] = await writeOutputFiles(
      dir,
      [
        { name: TLS_CERT_FILE, content: chain.map((d) => derToPem(d, 'CERTIFICATE')).join(''), mode: 0o644 },
        { name: TLS_KEY_FILE, content: leaf.key.privateKeyPem, mode: 0o600 },
        { name: CA_CERT_FILE, content: ca.certificatePem, mode: 0o644 },
      ],
      { force: c.force, flag: '--out' },
    );
    const sans = [...c.dnsNames.map((d) => `DNS:${d}`), ...c.ips.map((i) => `IP:${i}`)].join(', ');
    const features = [c.keyType, c.delegationUsage ? 'DelegationUsage' : 'no DelegationUsage', c.client ? 'serverAuth+clientAuth' : 'serverAuth'];
    const expiresAt = certificateNotAfter(leaf.der).toISOString();
    printResult(
      ctx,
      c.format,
      {
        certificate: crt,
        key,
        ca: caCopy,
        dnsNames: c.dnsNames,
        ipAddresses: c.ips,
        keyType: c.keyType,
        delegationUsage: c.delegationUsage,
        extendedKeyUsage: c.client ? ['serverAuth', 'clientAuth'] : ['serverAuth'],
        expiresAt,
      },
      () => `wrote ${crt} (${sans}; ${features.join(', ')}; expires ${expiresAt})\nwrote ${key}\nwrote ${caCopy}\n`,
    );
    return 0;
  },
});
