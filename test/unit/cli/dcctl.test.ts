/**
 * dcctl end to end: the compiled entry point run as a user would, its files checked with openssl
 * and with our own verifier.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, cpSync, existsSync, writeFileSync } from 'node:fs';
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hasDelegationUsage, pemToDers, publicKeyMatchesPrivate, verifyCertificateChain } from '../../../src/tls/x509/index.js';
import { asIssuer, issueCertificate } from '../../../src/cli/pki/dev-pki.js';

const here = dirname(fileURLToPath(import.meta.url));
const DCCTL = join(here, '../../../src/cli/dcctl.js');
const DC_OPERATOR = join(here, '../../../src/cli/dc-operator.js');

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(cwd: string, ...args: string[]): Result {
  const r = spawnSync(process.execPath, [DCCTL, ...args], { cwd, encoding: 'utf8', env: { ...process.env, DC_DEBUG: '' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function ok(cwd: string, ...args: string[]): Result {
  const r = run(cwd, ...args);
  assert.equal(r.code, 0, `dcctl ${args.join(' ')} failed: ${r.stderr}`);
  return r;
}

/** A user error: the exit code, exactly one line on stderr, and no stack trace. */
function fails(cwd: string, code: number, pattern: RegExp, ...args: string[]): string {
  const r = run(cwd, ...args);
  assert.equal(r.code, code, `dcctl ${args.join(' ')}: expected exit ${code}, got ${r.code}: ${r.stderr}`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `expected one line on stderr, got:\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
  assert.match(lines[0]!, pattern);
  return lines[0]!;
}

function openssl(...args: string[]): string {
  return execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function mode(path: string): number {
  return statSync(path).mode & 0o777;
}

void describe('dcctl', () => {
  let work: string;
  before(() => {
    work = mkdtempSync(join(tmpdir(), 'dcctl-'));
    ok(work, 'ca', 'create', '--out', 'ca', '--cn', 'dcctl test CA');
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  void it('lists its commands with --help and exits 0', () => {
    const r = ok(work, '--help');
    assert.match(r.stdout, /Usage: dcctl <command>/);
    assert.match(r.stdout, /ca create\s+Create a development CA/);
    assert.match(r.stdout, /cert create\s+Issue a leaf certificate/);
  });

  void it('prints the command list on stderr and exits 2 when run without a command', () => {
    const r = run(work);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /Commands:/);
  });

  void it('documents every flag of ca create and cert create', () => {
    const ca = ok(work, 'ca', 'create', '--help').stdout;
    for (const flag of ['--out DIR', '--cn NAME', '--key-type TYPE', '--days N', '--force', '--help']) assert.ok(ca.includes(flag), `ca create --help lacks ${flag}`);
    assert.match(ca, /ecdsa-p256, ecdsa-p384, ed25519, rsa-2048/);
    const cert = ok(work, 'help', 'cert', 'create').stdout;
    for (const flag of ['--ca-dir DIR', '--dns NAME', '--ip ADDR', '--key-type TYPE', '--days N', '--no-delegation-usage', '--client', '--out DIR', '--force']) {
      assert.ok(cert.includes(flag), `cert create --help lacks ${flag}`);
    }
    assert.match(cert, /Usage: dcctl cert create --ca-dir DIR --out DIR \[flags\]/);
  });

  void it('documents exit codes 0, 1 and 2 in the --help of every command of both programs', () => {
    for (const [bin, commands] of [
      [DCCTL, ['ca create', 'cert create', 'dc issue', 'dc inspect', 'serve', 'probe']],
      [DC_OPERATOR, ['controller', 'webhook', 'sidecar', 'keyserver']],
    ] as const) {
      for (const cmd of commands) {
        const r = spawnSync(process.execPath, [bin, ...cmd.split(' '), '--help'], { encoding: 'utf8' });
        assert.equal(r.status, 0, r.stderr);
        const section = /\nExit status:\n((?: {2}\d+ {2}[^\n]*\n)+)/.exec(r.stdout)?.[1] ?? '';
        assert.deepEqual([...section.matchAll(/^ {2}(\d+) /gm)].map((m) => m[1]), ['0', '1', '2'], `${cmd} --help`);
        assert.match(section, /^ {2}2 {2}.*usage or input error/m, `${cmd}: 2 is a usage or input error`);
      }
    }
  });

  void it('ca create and cert create return each documented exit code: 0 written, 1 output exists, 2 usage or input error', () => {
    ok(work, 'ca', 'create', '--out', 'codes-ca');
    fails(work, 1, /codes-ca\/ca\.crt already exists \(use --force to overwrite\)$/, 'ca', 'create', '--out', 'codes-ca');
    fails(work, 2, /^dcctl ca create: --days: must be a whole number/, 'ca', 'create', '--out', 'codes-ca2', '--days', 'x');
    fails(work, 2, /^dcctl cert create: --ca-dir: cannot read .*nowhere\/ca\.crt: no such file or directory$/, 'cert', 'create', '--ca-dir', 'nowhere', '--dns', 'a.test', '--out', 'x');
  });

  void it('shows the commands of a group with "dcctl ca --help"', () => {
    assert.match(ok(work, 'ca', '--help').stdout, /ca create/);
  });

  void it('creates a CA directory: ca.crt is a CA certificate, ca.key is private (0600)', () => {
    assert.equal(mode(join(work, 'ca/ca.key')), 0o600);
    const text = openssl('x509', '-in', join(work, 'ca/ca.crt'), '-noout', '-text');
    assert.match(text, /Subject: CN ?= ?dcctl test CA/);
    assert.match(text, /CA:TRUE/);
    assert.match(text, /Certificate Sign/);
    assert.match(readFileSync(join(work, 'ca/ca.key'), 'utf8'), /^-----BEGIN PRIVATE KEY-----/);
  });

  void it('issues a leaf with DelegationUsage and digitalSignature that openssl verifies against the CA', () => {
    const r = ok(work, 'cert', 'create', '--ca-dir', 'ca', '--dns', 'api.example.test', '--dns', '*.api.example.test', '--ip', '127.0.0.1', '--out', 'leaf');
    assert.match(r.stdout, /wrote .*leaf\/tls\.crt \(DNS:api\.example\.test, DNS:\*\.api\.example\.test, IP:127\.0\.0\.1; ecdsa-p256, DelegationUsage, serverAuth; expires /);
    const crt = join(work, 'leaf/tls.crt');
    const text = openssl('x509', '-in', crt, '-noout', '-text');
    assert.match(text, /1\.3\.6\.1\.4\.1\.44363\.44:/);
    assert.doesNotMatch(text, /1\.3\.6\.1\.4\.1\.44363\.44: critical/);
    assert.match(text, /X509v3 Key Usage: critical\s+Digital Signature\n/);
    assert.match(text, /TLS Web Server Authentication/);
    assert.doesNotMatch(text, /TLS Web Client Authentication/);
    assert.match(text, /DNS:api\.example\.test, DNS:\*\.api\.example\.test, IP Address:127\.0\.0\.1/);
    assert.match(openssl('verify', '-CAfile', join(work, 'leaf/ca.crt'), crt), /tls\.crt: OK/);
    assert.match(openssl('verify', '-CAfile', join(work, 'ca/ca.crt'), '-verify_hostname', 'x.api.example.test', '-purpose', 'sslserver', crt), /OK/);
    assert.match(openssl('verify', '-CAfile', join(work, 'ca/ca.crt'), '-verify_ip', '127.0.0.1', crt), /OK/);

    const der = pemToDers(readFileSync(crt, 'utf8'), 'CERTIFICATE');
    assert.equal(der.length, 1, 'tls.crt holds the leaf only when the CA is a root');
    verifyCertificateChain(der, { ca: [readFileSync(join(work, 'leaf/ca.crt'), 'utf8')], servername: 'api.example.test' });
    assert.deepEqual(hasDelegationUsage(der[0]!), { present: true, critical: false, valueIsNull: true });

    const keyPem = readFileSync(join(work, 'leaf/tls.key'), 'utf8');
    assert.match(keyPem, /^-----BEGIN PRIVATE KEY-----/);
    assert.equal(mode(join(work, 'leaf/tls.key')), 0o600);
    assert.equal(publicKeyMatchesPrivate(der[0]!, createPrivateKey(keyPem)), true);
    assert.equal(readFileSync(join(work, 'leaf/ca.crt'), 'utf8'), readFileSync(join(work, 'ca/ca.crt'), 'utf8'));
  });

  for (const keyType of ['ecdsa-p384', 'ed25519', 'rsa-2048'] as const) {
    void it(`creates a ${keyType} CA and a ${keyType} leaf that openssl verifies`, () => {
      ok(work, 'ca', 'create', '--out', `ca-${keyType}`, '--key-type', keyType, '--days', '30');
      ok(work, 'cert', 'create', '--ca-dir', `ca-${keyType}`, '--key-type', keyType, '--dns', 'svc.example.test', '--days', '7', '--out', `leaf-${keyType}`);
      const crt = join(work, `leaf-${keyType}/tls.crt`);
      assert.match(openssl('verify', '-CAfile', join(work, `ca-${keyType}/ca.crt`), crt), /OK/);
      const text = openssl('x509', '-in', crt, '-noout', '-text');
      const algo = { 'ecdsa-p384': /id-ecPublicKey[\s\S]*P-384/, ed25519: /ED25519/, 'rsa-2048': /rsaEncryption[\s\S]*2048 bit/ }[keyType];
      assert.match(text, algo);
      assert.match(text, /1\.3\.6\.1\.4\.1\.44363\.44:/);
      // RSA server leaves also get keyEncipherment (NSS refuses them without); other keys cannot encipher.
      const leafUsage = text.slice(text.indexOf('X509v3 Key Usage'));
      if (keyType === 'rsa-2048') assert.match(leafUsage, /^X509v3 Key Usage: critical\s+Digital Signature, Key Encipherment\n/);
      else assert.match(leafUsage, /^X509v3 Key Usage: critical\s+Digital Signature\n/);
    });
  }

  void it('puts the intermediates of an intermediate CA directory into tls.crt after the leaf', async () => {
    const root = await issueCertificate({ commonName: 'Root for dcctl', isCA: true }, 'ecdsa-p256');
    const inter = await issueCertificate({ commonName: 'Intermediate for dcctl', isCA: true }, 'ecdsa-p256', asIssuer(root));
    mkdirSync(join(work, 'inter-ca'));
    writeFileSync(join(work, 'inter-ca/ca.crt'), inter.pem + root.pem);
    writeFileSync(join(work, 'inter-ca/ca.key'), inter.key.privateKeyPem, { mode: 0o600 });
    writeFileSync(join(work, 'root.crt'), root.pem);
    ok(work, 'cert', 'create', '--ca-dir', 'inter-ca', '--dns', 'deep.example.test', '--out', 'deep');
    const chain = pemToDers(readFileSync(join(work, 'deep/tls.crt'), 'utf8'), 'CERTIFICATE');
    assert.equal(chain.length, 2);
    assert.deepEqual(chain[1], inter.der);
    const v = verifyCertificateChain(chain, { ca: [root.pem], servername: 'deep.example.test' });
    assert.equal(v.path.length, 3);
    // openssl: the leaf verifies against the root with tls.crt's intermediate as untrusted input.
    assert.match(openssl('verify', '-CAfile', join(work, 'root.crt'), '-untrusted', join(work, 'deep/tls.crt'), join(work, 'deep/tls.crt')), /OK/);
  });

  void it('leaves DelegationUsage out with --no-delegation-usage and adds clientAuth with --client', () => {
    ok(work, 'cert', 'create', '--ca-dir', 'ca', '--dns', 'plain.example.test', '--no-delegation-usage', '--client', '--out', 'plain');
    const text = openssl('x509', '-in', join(work, 'plain/tls.crt'), '-noout', '-text');
    assert.doesNotMatch(text, /44363/);
    assert.match(text, /TLS Web Server Authentication, TLS Web Client Authentication/);
    assert.match(text, /Digital Signature/);
    assert.match(openssl('verify', '-CAfile', join(work, 'ca/ca.crt'), '-purpose', 'sslclient', join(work, 'plain/tls.crt')), /OK/);
  });

  void it('refuses to overwrite existing files unless --force is given', () => {
    fails(work, 1, /leaf\/tls\.crt already exists \(use --force to overwrite\)$/, 'cert', 'create', '--ca-dir', 'ca', '--dns', 'api.example.test', '--out', 'leaf');
    const before = readFileSync(join(work, 'leaf/tls.crt'), 'utf8');
    ok(work, 'cert', 'create', '--ca-dir', 'ca', '--dns', 'api.example.test', '--out', 'leaf', '--force');
    assert.notEqual(readFileSync(join(work, 'leaf/tls.crt'), 'utf8'), before);
    assert.equal(mode(join(work, 'leaf/tls.key')), 0o600);
  });

  void it('--force replaces the certificate and key together: a failure between the two writes leaves the old pair', () => {
    // ca create: ca.key's target is a directory, so the key cannot be renamed into place after ca.crt was.
    ok(work, 'ca', 'create', '--out', 'atomic-ca');
    const oldCa = readFileSync(join(work, 'atomic-ca/ca.crt'), 'utf8');
    rmSync(join(work, 'atomic-ca/ca.key'));
    mkdirSync(join(work, 'atomic-ca/ca.key'));
    fails(work, 1, /^dcctl ca create: cannot write .*atomic-ca\/ca\.key: is a directory; no file was changed$/, 'ca', 'create', '--out', 'atomic-ca', '--force');
    assert.equal(readFileSync(join(work, 'atomic-ca/ca.crt'), 'utf8'), oldCa);
    assert.deepEqual(readdirSync(join(work, 'atomic-ca')).sort(), ['ca.crt', 'ca.key'], 'no temporary files left');

    // cert create: tls.crt and tls.key exist; ca.crt, written last, cannot be replaced.
    ok(work, 'cert', 'create', '--ca-dir', 'ca', '--dns', 'atomic.example.test', '--out', 'atomic-leaf');
    const oldCrt = readFileSync(join(work, 'atomic-leaf/tls.crt'), 'utf8');
    const oldKey = readFileSync(join(work, 'atomic-leaf/tls.key'), 'utf8');
    rmSync(join(work, 'atomic-leaf/ca.crt'));
    mkdirSync(join(work, 'atomic-leaf/ca.crt'));
    fails(work, 1, /cannot write .*atomic-leaf\/ca\.crt: is a directory; no file was changed$/, 'cert', 'create', '--ca-dir', 'ca', '--dns', 'atomic.example.test', '--out', 'atomic-leaf', '--force');
    assert.equal(readFileSync(join(work, 'atomic-leaf/tls.crt'), 'utf8'), oldCrt);
    assert.equal(readFileSync(join(work, 'atomic-leaf/tls.key'), 'utf8'), oldKey);
    assert.equal(mode(join(work, 'atomic-leaf/tls.key')), 0o600);
    assert.equal(publicKeyMatchesPrivate(pemToDers(oldCrt, 'CERTIFICATE')[0]!, createPrivateKey(oldKey)), true);
    assert.deepEqual(readdirSync(join(work, 'atomic-leaf')).sort(), ['ca.crt', 'tls.crt', 'tls.key']);

    // dc issue: dc.key's target is a directory; dc.cred stays the old credential.
    rmSync(join(work, 'atomic-leaf/ca.crt'), { recursive: true });
    ok(work, 'dc', 'issue', '--cert', 'atomic-leaf/tls.crt', '--key', 'atomic-leaf/tls.key', '--out', 'atomic-dc');
    const oldCred = readFileSync(join(work, 'atomic-dc/dc.cred'));
    rmSync(join(work, 'atomic-dc/dc.key'));
    mkdirSync(join(work, 'atomic-dc/dc.key'));
    fails(work, 1, /cannot write .*atomic-dc\/dc\.key: is a directory; no file was changed$/, 'dc', 'issue', '--cert', 'atomic-leaf/tls.crt', '--key', 'atomic-leaf/tls.key', '--out', 'atomic-dc', '--force');
    assert.deepEqual(readFileSync(join(work, 'atomic-dc/dc.cred')), oldCred);
    assert.deepEqual(readdirSync(join(work, 'atomic-dc')).sort(), ['dc.cred', 'dc.key']);
  });

  void it('ca create, cert create and dc issue report the paths written with -o json|yaml', () => {
    const ca = JSON.parse(ok(work, 'ca', 'create', '--out', 'out-ca', '--cn', 'Output CA', '-o', 'json').stdout) as Record<string, string>;
    assert.deepEqual(Object.keys(ca), ['certificate', 'key', 'commonName', 'keyType', 'expiresAt']);
    assert.equal(ca.certificate, join(work, 'out-ca/ca.crt'));
    assert.equal(ca.key, join(work, 'out-ca/ca.key'));
    assert.equal(ca.commonName, 'Output CA');
    const leaf = ok(work, 'cert', 'create', '--ca-dir', 'out-ca', '--dns', 'out.example.test', '--ip', '::1', '--out', 'out-leaf', '-o', 'yaml').stdout;
    assert.equal(
      leaf.replace(/^expiresAt: .*$/m, 'expiresAt: X'),
      `certificate: ${join(work, 'out-leaf/tls.crt')}\nkey: ${join(work, 'out-leaf/tls.key')}\nca: ${join(work, 'out-leaf/ca.crt')}\n` +
        'dnsNames:\n  - out.example.test\nipAddresses:\n  - "::1"\nkeyType: ecdsa-p256\ndelegationUsage: true\nextendedKeyUsage:\n  - serverAuth\nexpiresAt: X\n',
    );
    const dc = JSON.parse(ok(work, 'dc', 'issue', '--cert', 'out-leaf/tls.crt', '--key', 'out-leaf/tls.key', '--out', 'out-dc', '-o', 'json').stdout) as Record<string, unknown>;
    assert.equal(dc.credential, join(work, 'out-dc/dc.cred'));
    assert.equal(dc.key, join(work, 'out-dc/dc.key'));
    assert.equal(dc.algorithm, 'ecdsa_secp256r1_sha256');
    // An error in json mode: one JSON object on stderr, nothing on stdout.
    const r = run(work, 'ca', 'create', '--out', 'out-ca', '-o', 'json');
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.deepEqual(JSON.parse(r.stderr), { error: { command: 'dcctl ca create', kind: 'failed', message: `${join(work, 'out-ca/ca.crt')} already exists (use --force to overwrite)`, exitCode: 1 } });
  });

  void it('rejects an unknown key type naming the flag and the allowed values', () => {
    fails(work, 2, /^dcctl cert create: --key-type: unknown key type "rsa-1024"; allowed: ecdsa-p256, ecdsa-p384, ed25519, rsa-2048$/, 'cert', 'create', '--ca-dir', 'ca', '--dns', 'a.test', '--key-type', 'rsa-1024', '--out', 'x');
    fails(work, 2, /^dcctl ca create: --key-type: unknown key type "dsa"; allowed: /, 'ca', 'create', '--out', 'x', '--key-type', 'dsa');
    assert.equal(existsSync(join(work, 'x')), false, 'nothing is written when a flag is bad');
  });

  void it('rejects bad flags up front with one line that names the flag', () => {
    const cert = ['cert', 'create', '--ca-dir', 'ca'];
    fails(work, 2, /^dcctl cert create: unknown flag --bogus$/, ...cert, '--dns', 'a.test', '--out', 'x', '--bogus');
    fails(work, 2, /^dcctl cert create: --out is required$/, ...cert, '--dns', 'a.test');
    fails(work, 2, /^dcctl cert create: --ca-dir is required$/, 'cert', 'create', '--dns', 'a.test', '--out', 'x');
    fails(work, 2, /^dcctl cert create: --out needs a value$/, ...cert, '--dns', 'a.test', '--out');
    fails(work, 2, /^dcctl cert create: --days: must be a whole number, got "abc"$/, ...cert, '--dns', 'a.test', '--out', 'x', '--days', 'abc');
    fails(work, 2, /^dcctl cert create: --days: must be between 1 and 36500, got 0$/, ...cert, '--dns', 'a.test', '--out', 'x', '--days', '0');
    fails(work, 2, /^dcctl cert create: --dns: "bad_name\.test" has an invalid label "bad_name"/, ...cert, '--dns', 'bad_name.test', '--out', 'x');
    fails(work, 2, /^dcctl cert create: --dns: "a\.\*\.test" may only have a wildcard as the whole leftmost label/, ...cert, '--dns', 'a.*.test', '--out', 'x');
    fails(work, 2, /^dcctl cert create: --ip: "999\.1\.1\.1" is not an IPv4 or IPv6 address$/, ...cert, '--ip', '999.1.1.1', '--out', 'x');
    fails(work, 2, /^dcctl cert create: --dns: at least one --dns or --ip is required$/, ...cert, '--out', 'x');
    fails(work, 2, /^dcctl cert create: --client takes no value$/, ...cert, '--dns', 'a.test', '--out', 'x', '--client=yes');
    fails(work, 2, /^dcctl cert create: unexpected argument "extra"$/, ...cert, '--dns', 'a.test', '--out', 'x', 'extra');
    fails(work, 2, /^dcctl ca create: --cn: must be at most 64 characters/, 'ca', 'create', '--out', 'x', '--cn', 'c'.repeat(65));
  });

  void it('rejects unknown commands and a missing subcommand', () => {
    fails(work, 2, /^dcctl: unknown command "frobnicate"; one of: ca create, cert create/, 'frobnicate');
    fails(work, 2, /^dcctl ca: missing subcommand; one of: create$/, 'ca');
    fails(work, 2, /^dcctl ca: unknown command "destroy"; one of: create/, 'ca', 'destroy');
  });

  void it('reports an unreadable or inconsistent CA directory with exit 2 (an input error) and the file at fault', () => {
    fails(work, 2, /^dcctl cert create: --ca-dir: cannot read .*nowhere\/ca\.crt: no such file or directory$/, 'cert', 'create', '--ca-dir', 'nowhere', '--dns', 'a.test', '--out', 'x');
    // A CA directory whose key belongs to another CA.
    ok(work, 'ca', 'create', '--out', 'other-ca');
    cpSync(join(work, 'ca/ca.crt'), join(work, 'mixed/ca.crt'), { recursive: true });
    cpSync(join(work, 'other-ca/ca.key'), join(work, 'mixed/ca.key'));
    fails(work, 2, /^dcctl cert create: --ca-dir .*mixed: ca\.key does not match the certificate in ca\.crt$/, 'cert', 'create', '--ca-dir', 'mixed', '--dns', 'a.test', '--out', 'x');
    // An encrypted CA key, and a key type that cannot sign certificates.
    mkdirSync(join(work, 'locked'));
    cpSync(join(work, 'ca/ca.crt'), join(work, 'locked/ca.crt'));
    writeFileSync(join(work, 'locked/ca.key'), createPrivateKey(readFileSync(join(work, 'ca/ca.key'))).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'x' }));
    fails(work, 2, /--ca-dir .*locked: ca\.key is an encrypted private key; an unencrypted PKCS#8\/PKCS#1\/SEC1 PEM key is needed$/, 'cert', 'create', '--ca-dir', 'locked', '--dns', 'a.test', '--out', 'x');
    writeFileSync(join(work, 'locked/ca.key'), 'not a key');
    fails(work, 2, /--ca-dir .*locked: ca\.key is not a PKCS#8\/PKCS#1\/SEC1 PEM private key$/, 'cert', 'create', '--ca-dir', 'locked', '--dns', 'a.test', '--out', 'x');
    writeFileSync(join(work, 'locked/ca.key'), generateKeyPairSync('x25519').privateKey.export({ type: 'pkcs8', format: 'pem' }));
    fails(work, 2, /--ca-dir .*locked: ca\.key is a key of type x25519, which cannot sign certificates/, 'cert', 'create', '--ca-dir', 'locked', '--dns', 'a.test', '--out', 'x');
    // A leaf directory is not a CA.
    cpSync(join(work, 'leaf/tls.crt'), join(work, 'leaf-as-ca/ca.crt'), { recursive: true });
    cpSync(join(work, 'leaf/tls.key'), join(work, 'leaf-as-ca/ca.key'));
    fails(work, 2, /ca\.crt is not a CA certificate/, 'cert', 'create', '--ca-dir', 'leaf-as-ca', '--dns', 'a.test', '--out', 'x');
  });

  void it('refuses a certificate that would outlive its CA and says how many days fit', () => {
    ok(work, 'ca', 'create', '--out', 'short-ca', '--days', '10');
    fails(work, 2, /^dcctl cert create: --days: 11 days would outlive the CA, which expires .*; use at most 9$/, 'cert', 'create', '--ca-dir', 'short-ca', '--dns', 'a.test', '--days', '11', '--out', 'x');
  });
});

void describe('dc-operator', () => {
  void it('lists its process commands with --help and exits 0', () => {
    const r = spawnSync(process.execPath, [DC_OPERATOR, '--help'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /Usage: dc-operator <command>/);
    assert.match(r.stdout, /Commands:\n/);
  });

  void it('prints its version, commit, Node.js and OpenSSL versions with --version, like dcctl', () => {
    const pkg = JSON.parse(readFileSync(join(here, '../../../../package.json'), 'utf8')) as { version: string };
    for (const [bin, name] of [[DC_OPERATOR, 'dc-operator'], [DCCTL, 'dcctl']] as const) {
      const r = spawnSync(process.execPath, [bin, '--version'], { encoding: 'utf8', env: { ...process.env, DC_OPERATOR_COMMIT: '0123abc' } });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, `${name} ${pkg.version}\ncommit:  0123abc\nnode:    ${process.version}\nopenssl: ${process.versions.openssl}\n`);
    }
  });

  void it('rejects an unknown command with exit 2 and one line', () => {
    const r = spawnSync(process.execPath, [DC_OPERATOR, 'no-such-process'], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^dc-operator: unknown command "no-such-process"[^\n]*\n$/);
  });
});

void it('dc-operator controller refuses a bad --keyserver-address, --trust-domain or Secret name, naming the flag, before connecting anywhere', () => {
  const cases: [string[], RegExp][] = [
    [['--keyserver-address', 'a:b:c'], /--keyserver-address: key server address "a:b:c" is not host:port \(e\.g\. dc-operator-keyserver\.dc-operator\.svc:2407\)/],
    [['--keyserver-address', 'keys:99999'], /--keyserver-address: .*bad port/],
    [['--trust-domain', 'Cluster/Local'], /--trust-domain: invalid trust domain/],
    [['--keyless-ca-secret', 'Not_A_Name'], /--keyless-ca-secret: "Not_A_Name" is not a Secret name/],
  ];
  for (const [args, pattern] of cases) {
    const r = spawnSync(process.execPath, [DC_OPERATOR, 'controller', '--kubeconfig', '/nonexistent', ...args], { encoding: 'utf8', env: { ...process.env, DC_DEBUG: '' } });
    assert.equal(r.status, 2, `${args.join(' ')}: usage error (${r.stderr})`);
    assert.match(r.stderr, pattern, args.join(' '));
  }
});
