/**
 * Test PKI for the keyless tests and benchmark, made with the openssl CLI in a temp dir:
 * a CA, a key server certificate for 127.0.0.1/localhost, a client certificate, a client
 * certificate for server authentication only, a second unrelated CA with its own client
 * certificate, and signing keys of each family.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Identity {
  readonly cert: string;
  readonly key: string;
}

export interface KeylessPki {
  readonly dir: string;
  readonly ca: string;
  readonly server: Identity;
  readonly client: Identity;
  /** Issued by `ca`, but for serverAuth only: a client certificate with the wrong key usage. */
  readonly serverOnlyClient: Identity;
  /** A CA the key server does not trust, and a client certificate it issued. */
  readonly otherCa: string;
  readonly strangerClient: Identity;
  /** Directory of signing keys, one PEM file per key. */
  readonly keysDir: string;
  /** Signing keys (PEM) and a self-signed certificate for each. */
  readonly keys: Readonly<Record<SigningKeyName, Identity>>;
  cleanup(): void;
}

export type SigningKeyName = 'ed25519' | 'p256' | 'p384' | 'rsa2048';

const KEY_ARGS: Readonly<Record<SigningKeyName, string[]>> = {
  ed25519: ['-algorithm', 'ed25519'],
  p256: ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'],
  p384: ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384'],
  rsa2048: ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'],
};

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

export function generateKey(dir: string, name: string, args: string[]): string {
  const path = join(dir, `${name}.pem`);
  openssl(['genpkey', ...args, '-out', path], dir);
  return path;
}

function issue(dir: string, name: string, caName: string, ext: string): Identity {
  const key = generateKey(dir, name, KEY_ARGS.p256);
  writeFileSync(join(dir, `${name}.ext`), ext);
  openssl(['req', '-new', '-key', key, '-subj', `/CN=${name}`, '-out', join(dir, `${name}.csr`)], dir);
  openssl(
    ['x509', '-req', '-in', `${name}.csr`, '-CA', `${caName}.crt`, '-CAkey', `${caName}.pem`, '-CAcreateserial',
      '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}.crt`],
    dir,
  );
  return { cert: readFileSync(join(dir, `${name}.crt`), 'utf8'), key: readFileSync(key, 'utf8') };
}

function makeCa(dir: string, name: string): string {
  const key = generateKey(dir, name, KEY_ARGS.p256);
  openssl(['req', '-x509', '-new', '-key', key, '-subj', `/CN=${name}`, '-days', '2', '-out', join(dir, `${name}.crt`)], dir);
  return readFileSync(join(dir, `${name}.crt`), 'utf8');
}

export function makeKeylessPki(keyNames: readonly SigningKeyName[] = ['ed25519', 'p256', 'p384', 'rsa2048']): KeylessPki {
  const dir = mkdtempSync(join(tmpdir(), 'keyless-pki-'));
  const ca = makeCa(dir, 'ca');
  const server = issue(dir, 'server', 'ca', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  const client = issue(dir, 'client', 'ca', 'extendedKeyUsage=clientAuth\n');
  const serverOnlyClient = issue(dir, 'server-only', 'ca', 'extendedKeyUsage=serverAuth\n');
  const otherCa = makeCa(dir, 'other-ca');
  const strangerClient = issue(dir, 'stranger', 'other-ca', 'extendedKeyUsage=clientAuth\n');
  const keysDir = join(dir, 'keys');
  mkdirSync(keysDir);
  const keys: Partial<Record<SigningKeyName, Identity>> = {};
  for (const name of keyNames) {
    const key = generateKey(keysDir, name, KEY_ARGS[name]);
    const certPath = join(dir, `${name}-leaf.crt`);
    openssl(['req', '-x509', '-new', '-key', key, '-subj', `/CN=${name}.example`, '-days', '2', '-out', certPath], dir);
    keys[name] = { cert: readFileSync(certPath, 'utf8'), key: readFileSync(key, 'utf8') };
  }
  return {
    dir,
    ca,
    server,
    client,
    serverOnlyClient,
    otherCa,
    strangerClient,
    keysDir,
    keys: keys as Record<SigningKeyName, Identity>,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** The subjectKeyIdentifier extension openssl wrote into a certificate, as lowercase hex. */
export function opensslSkiOf(certPem: string, dir: string): string {
  const path = join(dir, `ski-${Date.now()}-${Math.random().toString(16).slice(2)}.crt`);
  writeFileSync(path, certPem);
  const out = execFileSync('openssl', ['x509', '-in', path, '-noout', '-ext', 'subjectKeyIdentifier'], { encoding: 'utf8' });
  const hex = /([0-9A-F]{2}(?::[0-9A-F]{2}){19})/i.exec(out)?.[1];
  if (!hex) throw new Error(`no subjectKeyIdentifier in: ${out}`);
  return hex.replace(/:/g, '').toLowerCase();
}
