/**
 * dcctl dc issue / dc inspect / serve / probe, run as compiled processes the way a user runs them.
 * serve and probe talk over loopback to each other, to curl, and to a node:tls server.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as nodeTls from 'node:tls';
import * as http from 'node:http';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import { decodeDelegatedCredential, verifyDelegatedCredential, DEFAULT_DC_SCHEMES } from '../../../src/tls/delegated/index.js';
import { pemToDers } from '../../../src/tls/x509/index.js';
import { SignatureScheme } from '../../../src/tls/constants.js';
import { durationFlag, hostPortArgument, humanDuration } from '../../../src/cli/commands/tls-inputs.js';
import { issueCertificate } from '../../../src/cli/pki/dev-pki.js';
import { ecKeyWithForeignScalar } from '../../support/mismatched-keys.js';

const here = dirname(fileURLToPath(import.meta.url));
const DCCTL = join(here, '../../../src/cli/dcctl.js');

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(cwd: string, ...args: string[]): Result {
  const r = spawnSync(process.execPath, [DCCTL, ...args], { cwd, encoding: 'utf8', env: { ...process.env, DC_DEBUG: '' }, timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function runAsync(cwd: string, ...args: string[]): Promise<Result> {
  const child = spawn(process.execPath, [DCCTL, ...args], { cwd, env: { ...process.env, DC_DEBUG: '' } });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const code = await new Promise<number | null>((res) => child.on('exit', (c) => res(c)));
  return { code, stdout, stderr };
}

function ok(cwd: string, ...args: string[]): Result {
  const r = run(cwd, ...args);
  assert.equal(r.code, 0, `dcctl ${args.join(' ')} failed: ${r.stderr}`);
  return r;
}

function oneLine(r: Result, code: number, pattern: RegExp): void {
  assert.equal(r.code, code, `expected exit ${code}, got ${r.code}: ${r.stderr}`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `expected one line on stderr, got:\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
  assert.match(lines[0]!, pattern);
}

function fails(cwd: string, code: number, pattern: RegExp, ...args: string[]): void {
  oneLine(run(cwd, ...args), code, pattern);
}

/** The codes listed under "Exit status:" in a help page. */
function exitCodesInHelp(help: string): number[] {
  const section = /\nExit status:\n((?: {2}\d+ {2}[^\n]*\n)+)/.exec(help);
  assert.ok(section, `no Exit status section in:\n${help}`);
  return [...section[1]!.matchAll(/^ {2}(\d+) /gm)].map((m) => Number(m[1]));
}

interface Served {
  child: ChildProcess;
  port: number;
  stderr: () => string;
  stop(): Promise<number | null>;
}

/** Starts `dcctl serve --port 0 ...` and waits for its "listening on" line. */
async function startServe(cwd: string, ...args: string[]): Promise<Served> {
  const child = spawn(process.execPath, [DCCTL, 'serve', '--port', '0', ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const port = await new Promise<number>((res, rej) => {
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const m = /listening on https:\/\/[^\s]+:(\d+)/.exec(out);
      if (m) res(Number(m[1]));
    });
    child.on('exit', (code) => rej(new Error(`dcctl serve exited ${code}: ${err}`)));
  });
  const exited = new Promise<number | null>((res) => child.on('exit', (c) => res(c)));
  return {
    child,
    port,
    stderr: () => err,
    stop: () => {
      child.kill('SIGTERM');
      return exited;
    },
  };
}

void describe('dcctl dc issue, dc inspect, serve and probe', () => {
  let work: string;
  before(() => {
    work = mkdtempSync(join(tmpdir(), 'dcctl-dc-'));
    ok(work, 'ca', 'create', '--out', 'ca');
    ok(work, 'ca', 'create', '--out', 'other-ca');
    ok(work, 'cert', 'create', '--ca-dir', 'ca', '--dns', 'localhost', '--ip', '127.0.0.1', '--out', 'leaf');
    ok(work, 'cert', 'create', '--ca-dir', 'ca', '--dns', 'localhost', '--no-delegation-usage', '--out', 'plain');
    ok(work, 'cert', 'create', '--ca-dir', 'ca', '--dns', 'localhost', '--days', '1', '--out', 'short');
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  void it('documents the flags of every new command in --help', () => {
    const expect: Record<string, string[]> = {
      'dc issue': ['--cert FILE', '--key FILE', '--algorithm ALG', '--validity DURATION', '--out DIR', 'ed25519, ecdsa_secp256r1_sha256, ecdsa_secp384r1_sha384', 'default: 24h'],
      'dc inspect': ['FILE', '--cert FILE', '--json', 'Exit status:\n  0  the credential verifies now'],
      serve: ['--cert FILE', '--key FILE', '--dc-dir DIR', 'repeatable', '--port N', '--address IP', 'default: 127.0.0.1'],
      probe: ['HOST:PORT', '--ca FILE', '--servername NAME', '--json', 'Exit status:\n  0  a delegated credential was used'],
    };
    for (const [cmd, needles] of Object.entries(expect)) {
      const text = ok(work, ...cmd.split(' '), '--help').stdout;
      for (const n of needles) assert.ok(text.includes(n), `${cmd} --help lacks ${n}`);
    }
    const list = ok(work, '--help').stdout;
    for (const cmd of ['dc inspect', 'dc issue', 'probe', 'serve']) assert.match(list, new RegExp(`\\n  ${cmd} `));
  });

  for (const algorithm of ['ed25519', 'ecdsa_secp256r1_sha256', 'ecdsa_secp384r1_sha384', 'mldsa65'] as const) {
    void it(`issues a ${algorithm} credential that our verifier accepts, with its key written 0600`, () => {
      const r = ok(work, 'dc', 'issue', '--cert', 'leaf/tls.crt', '--key', 'leaf/tls.key', '--algorithm', algorithm, '--validity', '12h', '--out', `dc-${algorithm}`);
      assert.match(r.stdout, new RegExp(`wrote .*dc-${algorithm}/dc\\.cred \\(${algorithm}, signed with ecdsa_secp256r1_sha256; expires .*, in (11h59m|12h)`)); // valid_time is whole seconds: 12h less under a second
      const cred = new Uint8Array(readFileSync(join(work, `dc-${algorithm}/dc.cred`)));
      assert.equal(statSync(join(work, `dc-${algorithm}/dc.key`)).mode & 0o777, 0o600);
      assert.match(readFileSync(join(work, `dc-${algorithm}/dc.key`), 'utf8'), /^-----BEGIN PRIVATE KEY-----/);
      const leaf = pemToDers(readFileSync(join(work, 'leaf/tls.crt'), 'utf8'), 'CERTIFICATE')[0]!;
      const v = verifyDelegatedCredential(cred, {
        certificate: leaf,
        acceptedDcSchemes: DEFAULT_DC_SCHEMES,
        acceptedSignatureSchemes: [SignatureScheme.ecdsa_secp256r1_sha256],
      });
      const remaining = (v.expiresAt.getTime() - Date.now()) / 1000;
      assert.ok(remaining > 12 * 3600 - 120 && remaining <= 12 * 3600, `remaining ${remaining}`);
    });
  }

  void it('refuses a certificate without DelegationUsage, a validity over 7 days or past notAfter, and a key of another certificate', () => {
    fails(work, 2, /--cert plain\/tls\.crt: the certificate cannot delegate: it has no DelegationUsage extension/, 'dc', 'issue', '--cert', 'plain/tls.crt', '--key', 'plain/tls.key', '--out', 'x');
    fails(work, 2, /--validity: 8d is over the 7 days/, 'dc', 'issue', '--cert', 'leaf/tls.crt', '--key', 'leaf/tls.key', '--validity', '8d', '--out', 'x');
    fails(work, 2, /--validity: 169h is over the 7 days/, 'dc', 'issue', '--cert', 'leaf/tls.crt', '--key', 'leaf/tls.key', '--validity', '169h', '--out', 'x');
    fails(work, 2, /after the certificate's notAfter/, 'dc', 'issue', '--cert', 'short/tls.crt', '--key', 'short/tls.key', '--validity', '3d', '--out', 'x');
    fails(work, 2, /--key plain\/tls\.key does not match the certificate in --cert leaf\/tls\.crt \(its public key is a different key\)/, 'dc', 'issue', '--cert', 'leaf/tls.crt', '--key', 'plain/tls.key', '--out', 'x');
    mkdirSync(join(work, 'swapped'), { recursive: true });
    writeFileSync(join(work, 'swapped/tls.key'), ecKeyWithForeignScalar(readFileSync(join(work, 'leaf/tls.key'), 'utf8'), 'sec1').pem);
    fails(work, 2, /--key swapped\/tls\.key does not match the certificate in --cert leaf\/tls\.crt \(it carries the certificate's public key, but its private part does not produce signatures that key verifies: the key file is corrupted or tampered\)/, 'dc', 'issue', '--cert', 'leaf/tls.crt', '--key', 'swapped/tls.key', '--out', 'x');
    fails(work, 2, /--algorithm: unknown algorithm "rsa_pss_rsae_sha256"; allowed: ed25519/, 'dc', 'issue', '--cert', 'leaf/tls.crt', '--key', 'leaf/tls.key', '--algorithm', 'rsa_pss_rsae_sha256', '--out', 'x');
    fails(work, 2, /--validity: "1 day" is not a duration/, 'dc', 'issue', '--cert', 'leaf/tls.crt', '--key', 'leaf/tls.key', '--validity', '1 day', '--out', 'x');
    fails(work, 2, /--cert: cannot read .*missing\.crt: no such file/, 'dc', 'issue', '--cert', 'missing.crt', '--key', 'leaf/tls.key', '--out', 'x');
    assert.throws(() => statSync(join(work, 'x')), /ENOENT/, 'nothing is written on error');
  });

  void it('inspects a credential: fields, expiry, remaining time, and that it verifies', () => {
    ok(work, 'dc', 'issue', '--cert', 'leaf/tls.crt', '--key', 'leaf/tls.key', '--validity', '2h', '--out', 'dc-inspect');
    const text = ok(work, 'dc', 'inspect', 'dc-inspect/dc.cred', '--cert', 'leaf/tls.crt').stdout;
    assert.match(text, /^algorithm: +ecdsa_secp256r1_sha256 \(dc_cert_verify_algorithm\)$/m);
    assert.match(text, /^signed with: +ecdsa_secp256r1_sha256/m);
    assert.match(text, /^expires: +20\d\d-\d\d-\d\dT/m);
    assert.match(text, /^remaining: +1h59m/m);
    assert.match(text, /^public key: +ec prime256v1, SHA-256 [0-9a-f]{64}$/m);
    assert.match(text, /^verifies: +yes$/m);

    const json = JSON.parse(ok(work, 'dc', 'inspect', 'dc-inspect/dc.cred', '--cert', 'leaf/tls.crt', '--json').stdout) as Record<string, unknown>;
    assert.equal(json.valid, true);
    assert.equal(json.algorithm, 'ecdsa_secp256r1_sha256');
    const cred = decodeDelegatedCredential(new Uint8Array(readFileSync(join(work, 'dc-inspect/dc.cred'))));
    assert.equal(json.validTime, cred.credential.validTime);
    assert.ok(typeof json.remainingSeconds === 'number' && json.remainingSeconds > 7100 && json.remainingSeconds <= 7200);
  });

  void it('inspect says why a credential does not verify and exits 1; unreadable input exits 2', () => {
    const r = run(work, 'dc', 'inspect', 'dc-inspect/dc.cred', '--cert', 'plain/tls.crt');
    assert.equal(r.code, 1);
    assert.match(r.stdout, /^verifies: +no: missing-delegation-usage: /m);
    const j = JSON.parse(run(work, 'dc', 'inspect', 'dc-inspect/dc.cred', '--cert', 'plain/tls.crt', '--json').stdout) as { valid: boolean; problem: { rule: string } };
    assert.equal(j.valid, false);
    assert.equal(j.problem.rule, 'missing-delegation-usage');

    // Flip one bit of the signature: the signature check fails.
    const bytes = readFileSync(join(work, 'dc-inspect/dc.cred'));
    bytes[bytes.length - 3]! ^= 0x01;
    writeFileSync(join(work, 'tampered.cred'), bytes);
    const t = run(work, 'dc', 'inspect', 'tampered.cred', '--cert', 'leaf/tls.crt');
    assert.equal(t.code, 1);
    assert.match(t.stdout, /^signature: +INVALID$/m);
    assert.match(t.stdout, /^verifies: +no: bad-signature/m);

    writeFileSync(join(work, 'garbage.cred'), 'not a credential');
    fails(work, 2, /garbage\.cred is not an encoded DelegatedCredential/, 'dc', 'inspect', 'garbage.cred', '--cert', 'leaf/tls.crt');
    fails(work, 2, /missing FILE/, 'dc', 'inspect', '--cert', 'leaf/tls.crt');
  });

  void it('dc inspect returns each exit code its --help documents: 0 verifies, 1 does not, 2 usage or input error', () => {
    assert.deepEqual(exitCodesInHelp(ok(work, 'dc', 'inspect', '--help').stdout), [0, 1, 2]);
    ok(work, 'dc', 'issue', '--cert', 'leaf/tls.crt', '--key', 'leaf/tls.key', '--validity', '1h', '--out', 'dc-codes');
    assert.equal(run(work, 'dc', 'inspect', 'dc-codes/dc.cred', '--cert', 'leaf/tls.crt').code, 0);
    assert.equal(run(work, 'dc', 'inspect', 'dc-codes/dc.cred', '--cert', 'plain/tls.crt').code, 1);
    // An unreadable or certificate-less --cert is an input error, never "does not verify".
    fails(work, 2, /^dcctl dc inspect: --cert: cannot read .*nowhere\.crt: no such file or directory$/, 'dc', 'inspect', 'dc-codes/dc.cred', '--cert', 'nowhere.crt');
    fails(work, 2, /^dcctl dc inspect: --cert leaf\/tls\.key: no PEM CERTIFICATE found$/, 'dc', 'inspect', 'dc-codes/dc.cred', '--cert', 'leaf/tls.key');
    fails(work, 2, /^dcctl dc inspect: cannot read nowhere\.cred: no such file or directory$/, 'dc', 'inspect', 'nowhere.cred', '--cert', 'leaf/tls.crt');
    fails(work, 2, /^dcctl dc inspect: unknown flag --bogus$/, 'dc', 'inspect', 'dc-codes/dc.cred', '--cert', 'leaf/tls.crt', '--bogus');
  });

  void it('probe documents 0, 1 and 2 and exits 2, never 1 ("no DC"), when --ca is missing or holds no certificate', () => {
    assert.deepEqual(exitCodesInHelp(ok(work, 'probe', '--help').stdout), [0, 1, 2]);
    // No server is needed: --ca is read before connecting (port 9 would refuse anyway).
    fails(work, 2, /^dcctl probe: --ca: cannot read .*nowhere\.crt: no such file or directory$/, 'probe', '127.0.0.1:9', '--ca', 'nowhere.crt');
    fails(work, 2, /^dcctl probe: --ca leaf\/tls\.key: no PEM CERTIFICATE found$/, 'probe', '127.0.0.1:9', '--ca', 'leaf/tls.key');
    fails(work, 2, /^dcctl probe: --timeout: must be longer than 0s$/, 'probe', '127.0.0.1:9', '--ca', 'ca/ca.crt', '--timeout', '0s');
  });

  void it('dc issue and serve exit 2 for an unreadable --key and 1 only for what is not an input (an existing output)', () => {
    fails(work, 2, /^dcctl dc issue: --key: cannot read .*nowhere\.key: no such file or directory$/, 'dc', 'issue', '--cert', 'leaf/tls.crt', '--key', 'nowhere.key', '--out', 'x');
    fails(work, 2, /^dcctl serve: --key: cannot read .*nowhere\.key: no such file or directory$/, 'serve', '--cert', 'leaf/tls.crt', '--key', 'nowhere.key', '--port', '0');
    ok(work, 'dc', 'issue', '--cert', 'leaf/tls.crt', '--key', 'leaf/tls.key', '--out', 'dc-exists');
    fails(work, 1, /dc-exists\/dc\.cred already exists \(use --force to overwrite\)$/, 'dc', 'issue', '--cert', 'leaf/tls.crt', '--key', 'leaf/tls.key', '--out', 'dc-exists');
  });

  void it('serves credentials to probe (exit 0, cheapest algorithm) and the certificate to curl', async () => {
    ok(work, 'dc', 'issue', '--cert', 'leaf/tls.crt', '--key', 'leaf/tls.key', '--algorithm', 'ecdsa_secp256r1_sha256', '--out', 'serve-p256');
    ok(work, 'dc', 'issue', '--cert', 'leaf/tls.crt', '--key', 'leaf/tls.key', '--algorithm', 'ed25519', '--out', 'serve-ed25519');
    const s = await startServe(work, '--cert', 'leaf/tls.crt', '--key', 'leaf/tls.key', '--dc-dir', 'serve-p256', '--dc-dir', 'serve-ed25519');
    try {
      // The start-up warm-up ran whole before 'listening' (its DC and certificate halves).
      assert.match(s.stderr(), /warm-up: 200 of 200 in-memory handshakes \(with delegated credentials: tls1\.3-x25519mlkem768 \d+, tls1\.3-x25519 \d+, .*; without: tls1\.3-x25519mlkem768 \d+, tls1\.3-x25519 \d+, .*tls1\.2 \d+.*\), \d+ ms CPU/);
      const p = await runAsync(work, 'probe', `127.0.0.1:${s.port}`, '--ca', 'ca/ca.crt', '--servername', 'localhost');
      assert.equal(p.code, 0, p.stderr);
      assert.match(p.stdout, /delegated credential: yes, verified/);
      assert.match(p.stdout, /^algorithm: ed25519$/m);
      assert.match(p.stdout, /^expires: 20\d\d-.*\(in 23h59m/m);

      const j = JSON.parse((await runAsync(work, 'probe', `127.0.0.1:${s.port}`, '--ca', 'ca/ca.crt', '--json')).stdout) as Record<string, unknown>;
      assert.equal(j.delegatedCredential, true);
      assert.equal(j.algorithm, 'ed25519');
      assert.equal(j.servername, '127.0.0.1');

      const curl = spawnSync('curl', ['-sS', '--tlsv1.3', '--cacert', join(work, 'ca/ca.crt'), `https://127.0.0.1:${s.port}/`], { encoding: 'utf8' });
      assert.equal(curl.status, 0, curl.stderr);
      assert.equal(curl.stdout, 'certificate\n');
      const missing = spawnSync('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', join(work, 'ca/ca.crt'), `https://127.0.0.1:${s.port}/nope`], { encoding: 'utf8' });
      assert.equal(missing.stdout, '404');
    } finally {
      assert.equal(await s.stop(), 0, 'serve exits 0 on SIGTERM');
    }
  });

  void it('serve: --warm-up-handshakes 0 skips the warm-up; a value beyond its bound is a usage error (exit 2)', async () => {
    fails(work, 2, /^dcctl serve: --warm-up-handshakes: must be between 0 and 10000, got 10001$/, 'serve', '--cert', 'leaf/tls.crt', '--key', 'leaf/tls.key', '--port', '0', '--warm-up-handshakes', '10001');
    const s = await startServe(work, '--cert', 'leaf/tls.crt', '--key', 'leaf/tls.key', '--warm-up-handshakes', '0');
    try {
      const curl = spawnSync('curl', ['-sS', '--tlsv1.3', '--cacert', join(work, 'ca/ca.crt'), `https://127.0.0.1:${s.port}/`], { encoding: 'utf8' });
      assert.equal(curl.stdout, 'certificate\n', curl.stderr);
      assert.doesNotMatch(s.stderr(), /warm-up/);
    } finally {
      assert.equal(await s.stop(), 0);
    }
  });

  void it('serves an ML-DSA-65 credential to probe, over X25519MLKEM768, ahead of a P-256 one', async () => {
    ok(work, 'dc', 'issue', '--cert', 'leaf/tls.crt', '--key', 'leaf/tls.key', '--algorithm', 'mldsa65', '--out', 'serve-mldsa65');
    ok(work, 'dc', 'issue', '--cert', 'leaf/tls.crt', '--key', 'leaf/tls.key', '--algorithm', 'ecdsa_secp256r1_sha256', '--out', 'serve-p256-pq');
    const s = await startServe(work, '--cert', 'leaf/tls.crt', '--key', 'leaf/tls.key', '--dc-dir', 'serve-p256-pq', '--dc-dir', 'serve-mldsa65');
    try {
      const p = await runAsync(work, 'probe', `127.0.0.1:${s.port}`, '--ca', 'ca/ca.crt', '--json');
      assert.equal(p.code, 0, p.stderr);
      const j = JSON.parse(p.stdout) as Record<string, unknown>;
      assert.equal(j.algorithm, 'mldsa65');
      assert.equal(j.signatureScheme, 'mldsa65');
      assert.equal(j.group, 'X25519MLKEM768');
    } finally {
      assert.equal(await s.stop(), 0);
    }
  });

  void it('probe exits 1 against servers without credentials (ours and node:tls)', async () => {
    const s = await startServe(work, '--cert', 'leaf/tls.crt', '--key', 'leaf/tls.key');
    try {
      const p = await runAsync(work, 'probe', `127.0.0.1:${s.port}`, '--ca', 'ca/ca.crt');
      assert.equal(p.code, 1, p.stderr);
      assert.match(p.stdout, /delegated credential: no \(the server signed with its certificate key, ecdsa_secp256r1_sha256\)/);
    } finally {
      await s.stop();
    }
    const server = nodeTls.createServer({ cert: readFileSync(join(work, 'leaf/tls.crt')), key: readFileSync(join(work, 'leaf/tls.key')), minVersion: 'TLSv1.3' }, (sock) => sock.end());
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
    try {
      const port = (server.address() as AddressInfo).port;
      const j = await runAsync(work, 'probe', `127.0.0.1:${port}`, '--ca', 'ca/ca.crt', '--json');
      assert.equal(j.code, 1, j.stderr);
      assert.equal((JSON.parse(j.stdout) as { authentication: string }).authentication, 'certificate');
      // node:tls on Node 24 (OpenSSL 3.5) takes our X25519MLKEM768 share by default.
      assert.equal((JSON.parse(j.stdout) as { group: string }).group, 'X25519MLKEM768');
    } finally {
      server.close();
    }
  });

  void it('probe exits 2 with one line when the handshake fails (refused, untrusted chain, wrong name)', async () => {
    const s = await startServe(work, '--cert', 'leaf/tls.crt', '--key', 'leaf/tls.key');
    try {
      oneLine(await runAsync(work, 'probe', `127.0.0.1:${s.port}`, '--ca', 'other-ca/ca.crt'), 2, /handshake failed: /);
      oneLine(await runAsync(work, 'probe', `127.0.0.1:${s.port}`, '--ca', 'ca/ca.crt', '--servername', 'other.example.test'), 2, /handshake failed: .*other\.example\.test/);
    } finally {
      await s.stop();
    }
    const port = s.port; // closed now
    oneLine(await runAsync(work, 'probe', `127.0.0.1:${port}`, '--ca', 'ca/ca.crt'), 2, /127\.0\.0\.1:\d+: handshake failed: connection refused/);
    fails(work, 2, /HOST:PORT: "localhost" is not HOST:PORT/, 'probe', 'localhost', '--ca', 'ca/ca.crt');
  });

  void it('serve refuses credentials of another certificate and a busy port, with one line', async () => {
    ok(work, 'cert', 'create', '--ca-dir', 'ca', '--dns', 'localhost', '--out', 'leaf2');
    ok(work, 'dc', 'issue', '--cert', 'leaf2/tls.crt', '--key', 'leaf2/tls.key', '--out', 'dc-leaf2');
    oneLine(await runAsync(work, 'serve', '--cert', 'leaf/tls.crt', '--key', 'leaf/tls.key', '--dc-dir', 'dc-leaf2', '--port', '0'), 2, /--dc-dir: .*dc-leaf2\/dc\.cred: /);
    oneLine(await runAsync(work, 'serve', '--cert', 'leaf/tls.crt', '--key', 'leaf/tls.key', '--dc-dir', 'leaf', '--port', '0'), 2, /--dc-dir: no delegated credentials/);
    oneLine(await runAsync(work, 'serve', '--cert', 'leaf/tls.crt', '--key', 'leaf2/tls.key', '--port', '0'), 2, /--key leaf2\/tls\.key does not match/);
    const s = await startServe(work, '--cert', 'leaf/tls.crt', '--key', 'leaf/tls.key');
    try {
      oneLine(await runAsync(work, 'serve', '--cert', 'leaf/tls.crt', '--key', 'leaf/tls.key', '--port', String(s.port)), 1, /cannot listen on 127\.0\.0\.1:\d+: address already in use/);
    } finally {
      await s.stop();
    }
  });

  void it('dc inspect says when FILE is base64 or PEM text instead of the binary credential', () => {
    ok(work, 'dc', 'issue', '--cert', 'leaf/tls.crt', '--key', 'leaf/tls.key', '--out', 'dc-text');
    writeFileSync(join(work, 'dc.b64'), readFileSync(join(work, 'dc-text/dc.cred')).toString('base64') + '\n');
    fails(work, 2, /^dcctl dc inspect: dc\.b64 is not an encoded DelegatedCredential: it is base64 text, not the binary credential; decode it first, e\.g\. base64 -d dc\.b64 > dc\.cred/, 'dc', 'inspect', 'dc.b64', '--cert', 'leaf/tls.crt');
    fails(work, 2, /^dcctl dc inspect: leaf\/tls\.crt is not an encoded DelegatedCredential: it is a PEM certificate; give the certificate as --cert and the dc\.cred file/, 'dc', 'inspect', 'leaf/tls.crt', '--cert', 'leaf/tls.crt');
    fails(work, 2, /: it is PEM text \(BEGIN PRIVATE KEY\), not the binary credential/, 'dc', 'inspect', 'leaf/tls.key', '--cert', 'leaf/tls.crt');
  });

  void it('says the chain is in the wrong order when the CA comes first (dc issue, dc inspect, serve)', () => {
    writeFileSync(join(work, 'ca-first.crt'), readFileSync(join(work, 'ca/ca.crt'), 'utf8') + readFileSync(join(work, 'leaf/tls.crt'), 'utf8'));
    const wrongOrder = /--cert ca-first\.crt: the chain is in the wrong order: certificate 2 \(CN=localhost\) is the end-entity and must come first/;
    fails(work, 2, wrongOrder, 'dc', 'issue', '--cert', 'ca-first.crt', '--key', 'leaf/tls.key', '--out', 'x');
    ok(work, 'dc', 'issue', '--cert', 'leaf/tls.crt', '--key', 'leaf/tls.key', '--out', 'dc-order');
    fails(work, 2, wrongOrder, 'dc', 'inspect', 'dc-order/dc.cred', '--cert', 'ca-first.crt');
    fails(work, 2, wrongOrder, 'serve', '--cert', 'ca-first.crt', '--key', 'leaf/tls.key', '--port', '0');
    // No CA to tell by: the key belongs to a later certificate.
    writeFileSync(join(work, 'two-leaves.crt'), readFileSync(join(work, 'plain/tls.crt'), 'utf8') + readFileSync(join(work, 'leaf/tls.crt'), 'utf8'));
    fails(work, 2, /--key leaf\/tls\.key belongs to certificate 2 of --cert two-leaves\.crt, not the first: the chain is in the wrong order; put the end-entity certificate first$/, 'dc', 'issue', '--cert', 'two-leaves.crt', '--key', 'leaf/tls.key', '--out', 'x');
  });

  void it('dc issue says the certificate has expired (not "shorten the validity")', async () => {
    const now = Date.now();
    const expired = await issueCertificate(
      { commonName: 'localhost', dnsNames: ['localhost'], delegationUsage: 'non-critical', notBefore: new Date(now - 10 * 86400_000), notAfter: new Date(now - 2 * 86400_000) },
      'ecdsa-p256',
    );
    writeFileSync(join(work, 'expired.crt'), expired.pem);
    writeFileSync(join(work, 'expired.key'), expired.key.privateKeyPem, { mode: 0o600 });
    fails(work, 2, /^dcctl dc issue: --cert expired\.crt: the certificate expired at 20\d\d-[^ ]+ \(2d(\d+[hms])* ago\) and can no longer delegate; renew it/, 'dc', 'issue', '--cert', 'expired.crt', '--key', 'expired.key', '--out', 'x');
    const r = run(work, 'dc', 'issue', '--cert', 'expired.crt', '--key', 'expired.key', '--validity', '1h', '--out', 'x');
    assert.doesNotMatch(r.stderr, /shorten the validity/);
  });

  void it('probe says the peer answered in plain HTTP, or in no TLS at all, instead of "record version 84.84"', async () => {
    const web = http.createServer((_q, res) => res.end('hello'));
    const ssh = net.createServer((s) => s.end('SSH-2.0-OpenSSH_9.6\r\n'));
    await Promise.all([new Promise<void>((res) => web.listen(0, '127.0.0.1', res)), new Promise<void>((res) => ssh.listen(0, '127.0.0.1', res))]);
    try {
      const webPort = (web.address() as AddressInfo).port;
      oneLine(await runAsync(work, 'probe', `127.0.0.1:${webPort}`, '--ca', 'ca/ca.crt'), 2, /^dcctl probe: 127\.0\.0\.1:\d+: handshake failed: the peer answered in plain HTTP, not TLS \(is this the HTTP port\? probe the HTTPS one\)$/);
      const sshPort = (ssh.address() as AddressInfo).port;
      oneLine(await runAsync(work, 'probe', `127.0.0.1:${sshPort}`, '--ca', 'ca/ca.crt'), 2, /handshake failed: the peer did not answer in TLS/);
    } finally {
      web.closeAllConnections();
      web.close();
      ssh.close();
    }
  });

  void it('dc inspect and probe print -o json and -o yaml, and errors in json mode as JSON on stderr', () => {
    ok(work, 'dc', 'issue', '--cert', 'leaf/tls.crt', '--key', 'leaf/tls.key', '--out', 'dc-output');
    const json = JSON.parse(ok(work, 'dc', 'inspect', 'dc-output/dc.cred', '--cert', 'leaf/tls.crt', '-o', 'json').stdout) as Record<string, unknown>;
    assert.equal(json.valid, true);
    assert.equal(json.file, 'dc-output/dc.cred');
    const yaml = ok(work, 'dc', 'inspect', 'dc-output/dc.cred', '--cert', 'leaf/tls.crt', '-o', 'yaml').stdout;
    assert.match(yaml, /^file: dc-output\/dc\.cred\nalgorithm: ecdsa_secp256r1_sha256\n/);
    assert.match(yaml, /^expiresAt: "20\d\d-[^"]+"$/m);
    assert.match(yaml, /^valid: true$/m);
    // Does not verify: still the document on stdout, exit 1, with the problem as a nested mapping.
    const bad = run(work, 'dc', 'inspect', 'dc-output/dc.cred', '--cert', 'plain/tls.crt', '-o', 'yaml');
    assert.equal(bad.code, 1);
    assert.match(bad.stdout, /^problem:\n {2}rule: missing-delegation-usage\n {2}message: "/m);

    for (const args of [
      ['probe', '127.0.0.1:9', '--ca', 'nowhere.crt', '-o', 'json'],
      ['dc', 'inspect', 'dc-output/dc.cred', '--cert', 'nowhere.crt', '--output=json'],
      ['dc', 'inspect', 'dc-output/dc.cred', '--cert', 'leaf/tls.crt', '-o', 'json', '--bogus'],
    ]) {
      const r = run(work, ...args);
      assert.equal(r.code, 2, r.stderr);
      assert.equal(r.stdout, '');
      const e = JSON.parse(r.stderr) as { error: { command: string; kind: string; message: string; exitCode: number } };
      assert.equal(e.error.exitCode, 2);
      assert.match(e.error.command, /^dcctl (probe|dc inspect)$/);
      assert.match(e.error.kind, /^(input|usage)$/);
      assert.match(e.error.message, /nowhere\.crt: no such file or directory|unknown flag --bogus/);
    }
  });

  void it('parses durations and HOST:PORT', () => {
    assert.equal(durationFlag('--v', '24h'), 86400);
    assert.equal(durationFlag('--v', '1d12h30m5s'), 131405);
    assert.throws(() => durationFlag('--v', '24'), /not a duration/);
    assert.throws(() => durationFlag('--v', 'h'), /not a duration/);
    assert.equal(humanDuration(93784), '1d2h3m4s');
    assert.deepEqual(hostPortArgument('X', '[::1]:443'), { host: '::1', port: 443 });
    assert.deepEqual(hostPortArgument('X', 'example.test:8443'), { host: 'example.test', port: 8443 });
    assert.throws(() => hostPortArgument('X', 'example.test:0'), /between 1 and 65535/);
  });
});
