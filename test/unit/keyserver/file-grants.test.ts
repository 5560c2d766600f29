/**
 * `dc-operator keyserver --keys DIR --grant URI=FILE`: a key directory served to named identities
 * only. The key server runs as its own process; our keyless client signs over real mutual TLS.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KeylessClient } from '../../../src/keyless/client.js';
import { KeylessRemoteError } from '../../../src/keyless/errors.js';
import { ErrorCode } from '../../../src/keyless/protocol.js';
import { computeSki } from '../../../src/keyless/ski.js';
import { parseFileGrant } from '../../../src/keyserver/file-grants.js';
import { makeIdentityPki, type IdentityPki, type Pair } from './pki.js';
import { certificateVerifyContent, delegatedCredentialContent, signAsSidecar } from '../../support/sidecar-signing.js';

const entry = fileURLToPath(new URL('../../../src/cli/dc-operator.js', import.meta.url));
const ECDSA_SECP256R1_SHA256 = 0x0403;

let pki: IdentityPki;
let keysDir: string;
before(() => {
  pki = makeIdentityPki();
  keysDir = join(pki.dir, 'keys');
  mkdirSync(keysDir);
  writeFileSync(join(pki.dir, 'server-ca.crt'), pki.ca.cert);
  writeFileSync(join(pki.dir, 'server-cert.crt'), pki.server.cert);
  writeFileSync(join(pki.dir, 'server-key.pem'), pki.server.key);
});
after(() => pki.cleanup());

function args(...extra: string[]): string[] {
  return argsFor(keysDir, ...extra);
}

function argsFor(dir: string, ...extra: string[]): string[] {
  return [entry, 'keyserver', '--keys', dir, '--ca', join(pki.dir, 'server-ca.crt'), '--cert', join(pki.dir, 'server-cert.crt'),
    '--key', join(pki.dir, 'server-key.pem'), '--address', '127.0.0.1', '--port', '0', ...extra];
}

/** The key server as a process, resolved once it listens, with its port and its log so far. */
async function startKeyServer(...extra: string[]): Promise<{ child: ChildProcess; port: number; log: () => string }> {
  return startKeyServerOn(keysDir, ...extra);
}

async function startKeyServerOn(dir: string, ...extra: string[]): Promise<{ child: ChildProcess; port: number; log: () => string }> {
  const child = spawn(process.execPath, argsFor(dir, ...extra), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no listening line within 20 s:\n${out}`)), 20_000);
    const check = (): void => {
      const m = /"port":(\d+)/.exec(out.split('\n').find((l) => l.includes('key server listening')) ?? '');
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    child.stderr!.on('data', check);
    child.stdout!.on('data', check);
    child.once('exit', (code) => reject(new Error(`exited with ${code}:\n${out}`)));
  });
  return { child, port, log: () => out };
}

const ski = (pair: Pair): Uint8Array => computeSki(createPrivateKey(pair.key));
const message = new Uint8Array(100).fill(7);

async function answer(client: KeylessClient, pair: Pair): Promise<'signed' | number> {
  try {
    await client.signMessage(ski(pair), ECDSA_SECP256R1_SHA256, message, () => { throw new Error('no digest fallback expected'); });
    return 'signed';
  } catch (err) {
    if (err instanceof KeylessRemoteError) return err.code;
    throw err;
  }
}

void describe('keyserver --keys with --grant: identity → its key files only', () => {
  void it('each identity signs with its granted file\'s key only; others, unidentified and two-URI clients get key not found and a log line; a key rotated in the file stays granted', { timeout: 60_000 }, async () => {
    const www = pki.certificate('www');
    const api = pki.certificate('api');
    writeFileSync(join(keysDir, 'www.pem'), www.key);
    writeFileSync(join(keysDir, 'api.pem'), api.key);
    const frontend = 'spiffe://example.org/frontend';
    const operator = 'spiffe://example.org/operator';
    const ks = await startKeyServer('--grant', `${frontend}=www.pem`, '--grant', `${operator}=www.pem`, '--grant', `${operator}=api.pem`);
    const clients: KeylessClient[] = [];
    const client = (name: string, ...uris: string[]): KeylessClient => {
      const pair = pki.client(name, ...uris);
      const c = new KeylessClient({ address: `127.0.0.1:${ks.port}`, ca: pki.ca.cert, cert: pair.cert, key: pair.key, timeoutMs: 5000 });
      clients.push(c);
      return c;
    };
    try {
      const front = client('frontend', frontend);
      const op = client('operator', operator);
      assert.equal(await answer(front, www), 'signed');
      assert.equal(await answer(front, api), ErrorCode.keyNotFound);
      assert.equal(await answer(op, www), 'signed');
      assert.equal(await answer(op, api), 'signed');
      assert.equal(await answer(client('stranger', 'spiffe://example.org/stranger'), www), ErrorCode.keyNotFound);
      assert.equal(await answer(client('anonymous'), www), ErrorCode.keyNotFound);
      assert.equal(await answer(client('two', frontend, operator), www), ErrorCode.keyNotFound);
      assert.ok((await front.ping()) >= 0, 'pings touch no key');
      assert.match(ks.log(), /"keyserver: signing refused".*"identity":"spiffe:\/\/example.org\/frontend".*"why":"identity spiffe:\/\/example.org\/frontend may use www.pem, not api.pem"/);
      assert.match(ks.log(), /"keyserver: signing refused".*"why":"its client certificate has no URI SAN"/);
      assert.doesNotMatch(ks.log(), /no --grant given/);

      // The file's key rotates: the grant follows the file, the old key is gone.
      const rotated = pki.certificate('www-2');
      writeFileSync(join(keysDir, 'www.pem.tmp'), rotated.key);
      renameSync(join(keysDir, 'www.pem.tmp'), join(keysDir, 'www.pem'));
      ks.child.kill('SIGHUP');
      const deadline = Date.now() + 20_000;
      while ((await answer(front, rotated)) !== 'signed') {
        assert.ok(Date.now() < deadline, 'the rotated key is served to its identity');
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(await answer(front, www), ErrorCode.keyNotFound);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      ks.child.kill('SIGTERM');
    }
  });

  void it('a sidecar identity granted a key file may have only TLS handshake signatures made with it, as in cluster mode: no delegated credential, no digest', { timeout: 60_000 }, async () => {
    const www = pki.certificate('sidecar-www');
    writeFileSync(join(keysDir, 'sidecar-www.pem'), www.key);
    const sidecar = 'spiffe://cluster.local/ns/team-a/dc/www';
    const ks = await startKeyServer('--grant', `${sidecar}=sidecar-www.pem`);
    const pair = pki.client('sidecar', sidecar);
    const c = new KeylessClient({ address: `127.0.0.1:${ks.port}`, ca: pki.ca.cert, cert: pair.cert, key: pair.key, timeoutMs: 5000 });
    const refusal = async (p: Promise<unknown>): Promise<number | 'signed'> =>
      p.then(
        () => 'signed' as const,
        (err: unknown) => {
          if (err instanceof KeylessRemoteError) return err.code;
          throw err;
        },
      );
    try {
      assert.equal((await signAsSidecar(c, ski(www), certificateVerifyContent())).length > 0, true, 'a CertificateVerify content is signed');
      assert.equal(await refusal(signAsSidecar(c, ski(www), delegatedCredentialContent())), ErrorCode.keyNotFound, 'a delegated credential is refused');
      assert.equal(await answer(c, www), ErrorCode.keyNotFound, 'arbitrary bytes are refused');
      assert.match(ks.log(), /"why":"sidecar identity spiffe:\/\/cluster.local\/ns\/team-a\/dc\/www may have only TLS handshake signatures made: /);
    } finally {
      await c.close();
      ks.child.kill('SIGTERM');
    }
  });

  void it('without --grant it says at start that every client of --ca may use every key, and so it is', { timeout: 60_000 }, async () => {
    const www = pki.certificate('open');
    writeFileSync(join(keysDir, 'open.pem'), www.key);
    const ks = await startKeyServer();
    const pair = pki.client('anyone');
    const c = new KeylessClient({ address: `127.0.0.1:${ks.port}`, ca: pki.ca.cert, cert: pair.cert, key: pair.key, timeoutMs: 5000 });
    try {
      assert.match(ks.log(), /no --grant given: every client whose certificate chains to --ca may use every key/);
      assert.equal(await answer(c, www), 'signed');
    } finally {
      await c.close();
      ks.child.kill('SIGTERM');
    }
  });

  void it('refuses a malformed --grant, a file not in --keys, and --grant with --from-cluster, naming the flag, before it listens', () => {
    writeFileSync(join(keysDir, 'present.pem'), pki.certificate('present').key);
    for (const [extra, pattern] of [
      [['--grant', 'frontend=present.pem'], /--grant: "frontend=present.pem" is not IDENTITY-URI=KEY-FILE/],
      [['--grant', 'spiffe://example.org/a'], /--grant: "spiffe:\/\/example.org\/a" is not IDENTITY-URI=KEY-FILE/],
      [['--grant', 'spiffe://example.org/a=../server-key.pem'], /--grant: "..\/server-key.pem" is not a file name in the key directory/],
      [['--grant', 'spiffe://example.org/a=absent.pem'], /--grant spiffe:\/\/example.org\/a=absent.pem: there is no file absent.pem in --keys/],
    ] as const) {
      const r = spawnSync(process.execPath, args(...extra), { encoding: 'utf8', timeout: 20_000 });
      assert.equal(r.status, 2, `${extra.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, pattern);
      assert.doesNotMatch(r.stderr, /listening/);
    }
    const cluster = spawnSync(process.execPath, [entry, 'keyserver', '--from-cluster', '--grant', 'spiffe://x/y=a.pem'], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(cluster.status, 2);
    assert.match(cluster.stderr, /--grant is for a key directory; --from-cluster grants each sidecar identity its DelegatedCredential's key/);
  });

  void it('parses URI=FILE at the last "="', () => {
    assert.deepEqual(parseFileGrant('spiffe://example.org/a?b=c=www.pem'), { identity: 'spiffe://example.org/a?b=c', file: 'www.pem' });
    assert.throws(() => parseFileGrant('URI:spiffe://example.org/a=www.pem'), /starts with "URI:", as openssl prints a SAN; write the URI alone: spiffe:\/\/example.org\/a=www.pem/);
  });
});

/** Polls `check` until it holds (at most 20 s). */
async function eventually(what: string, check: () => Promise<boolean> | boolean): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, what);
    await new Promise((r) => setTimeout(r, 100));
  }
}

void describe('keyserver --keys with --grant: the granted files are keys of the directory, one file per key', () => {
  const identity = 'spiffe://example.org/operator';
  const other = 'spiffe://example.org/frontend';
  const dirs: string[] = [];
  const freshDir = (): string => {
    const dir = mkdtempSync(join(pki.dir, 'grant-files-'));
    dirs.push(dir);
    return dir;
  };
  after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  const refusedAtStart = (dir: string, extra: string[], pattern: RegExp): void => {
    const r = spawnSync(process.execPath, argsFor(dir, ...extra), { encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.status, 2, `${extra.join(' ')}: exit ${r.status}\n${r.stderr}`);
    assert.match(r.stderr, pattern);
    assert.doesNotMatch(r.stderr, /listening/);
  };

  void it('refuses at start a granted file that is a certificate, a directory, garbage or a link out of --keys, naming the --grant, the file and what to fix', () => {
    const pair = pki.certificate('grant-files-a');
    const outside = freshDir();
    writeFileSync(join(outside, 'elsewhere.pem'), pair.key);
    const only = (file: string): string => {
      // Each case alone in a directory of its own, with a valid key beside it.
      const d = freshDir();
      writeFileSync(join(d, 'good.pem'), pki.certificate(`grant-files-good-${file}`).key);
      return d;
    };
    const cert = only('cert');
    writeFileSync(join(cert, 'cert.pem'), pair.cert);
    refusedAtStart(cert, ['--grant', `${identity}=cert.pem`], /--grant spiffe:\/\/example.org\/operator=cert.pem: cert.pem in --keys .* holds no private key \(its PEM blocks are CERTIFICATE\): grant the file with the certificate's private key/);
    const folder = only('folder');
    mkdirSync(join(folder, 'folder.pem'));
    refusedAtStart(folder, ['--grant', `${identity}=folder.pem`], /--grant spiffe:\/\/example.org\/operator=folder.pem: folder.pem in --keys .* is not a regular file/);
    const garbage = only('garbage');
    writeFileSync(join(garbage, 'garbage.key'), 'this is not a key');
    refusedAtStart(garbage, ['--grant', `${identity}=garbage.key`], /--grant spiffe:\/\/example.org\/operator=garbage.key: garbage.key in --keys .* is not a usable private key: .*not PEM and not a DER PKCS#8 private key/);
    const link = only('link');
    symlinkSync(join(outside, 'elsewhere.pem'), join(link, 'link.pem'));
    refusedAtStart(link, ['--grant', `${identity}=link.pem`], /--grant spiffe:\/\/example.org\/operator=link.pem: link.pem in --keys .* resolves to .*elsewhere.pem, outside the directory/);
    const notKeyName = only('name');
    writeFileSync(join(notKeyName, 'tls.crt'), pair.key);
    refusedAtStart(notKeyName, ['--grant', `${identity}=tls.crt`], /--grant spiffe:\/\/example.org\/operator=tls.crt: there is no file tls.crt in --keys .* \(a key file is named \*.pem, \*.key or \*.der/);
  });

  void it('refuses at start one key reachable through two files: two grants, or two names for one key', () => {
    const pair = pki.certificate('grant-files-dup');
    const two = freshDir();
    writeFileSync(join(two, 'a.pem'), pair.key);
    writeFileSync(join(two, 'b.pem'), pair.key);
    refusedAtStart(two, ['--grant', `${identity}=a.pem`, '--grant', `${other}=b.pem`],
      /--keys .*: the same key \(SKI [0-9a-f]{40}\) is in a.pem and in b.pem \(--grant spiffe:\/\/example.org\/operator=a.pem; --grant spiffe:\/\/example.org\/frontend=b.pem\); with --grant each key lives in one file/);
    const alias = freshDir();
    writeFileSync(join(alias, 'a.pem'), pair.key);
    symlinkSync('a.pem', join(alias, 'z.pem'));
    refusedAtStart(alias, ['--grant', `${identity}=a.pem`], /the same key \(SKI [0-9a-f]{40}\) is in a.pem and in z.pem \(--grant spiffe:\/\/example.org\/operator=a.pem\)/);
  });

  void it('serves a Kubernetes Secret volume layout (files are symlinks into ..data inside --keys)', { timeout: 60_000 }, async () => {
    const dir = freshDir();
    const pair = pki.certificate('grant-files-volume');
    mkdirSync(join(dir, '..2026_01_01'));
    writeFileSync(join(dir, '..2026_01_01', 'tls.key'), pair.key);
    symlinkSync('..2026_01_01', join(dir, '..data'));
    symlinkSync(join('..data', 'tls.key'), join(dir, 'tls.key'));
    const ks = await startKeyServerOn(dir, '--grant', `${identity}=tls.key`);
    const c = new KeylessClient({ address: `127.0.0.1:${ks.port}`, ca: pki.ca.cert, ...pki.client('grant-files-volume-client', identity), timeoutMs: 5000 });
    try {
      assert.equal(await answer(c, pair), 'signed');
    } finally {
      await c.close();
      ks.child.kill('SIGTERM');
    }
  });

  void it('at run time: a granted file turned into a non-key or a duplicate is refused and its key kept; a removed granted file revokes, broken files elsewhere or not, and says so', { timeout: 90_000 }, async () => {
    const dir = freshDir();
    const pair = pki.certificate('grant-files-run');
    writeFileSync(join(dir, 'www.pem'), pair.key);
    const ks = await startKeyServerOn(dir, '--grant', `${identity}=www.pem`);
    const c = new KeylessClient({ address: `127.0.0.1:${ks.port}`, ca: pki.ca.cert, ...pki.client('grant-files-run-client', identity), timeoutMs: 5000 });
    const reloads = (): number => ks.log().split('\n').filter((l) => l.includes('keyless: key file refused, keeping its previous keys')).length;
    try {
      assert.equal(await answer(c, pair), 'signed');

      // The file becomes its certificate: refused, the key it held stays.
      writeFileSync(join(dir, 'www.pem.tmp'), pair.cert);
      renameSync(join(dir, 'www.pem.tmp'), join(dir, 'www.pem'));
      ks.child.kill('SIGHUP');
      await eventually('the reload is refused', () => reloads() >= 1);
      assert.match(ks.log(), /"keyless: key file refused, keeping its previous keys".*www.pem in --keys .* holds no private key \(its PEM blocks are CERTIFICATE\)/);
      assert.equal(await answer(c, pair), 'signed', 'the working key is kept');

      // Back to the key, plus a second file with the same key: refused too.
      writeFileSync(join(dir, 'www.pem'), pair.key);
      writeFileSync(join(dir, 'copy.pem'), pair.key);
      ks.child.kill('SIGHUP');
      await eventually('the duplicate is refused', () => reloads() >= 2);
      assert.match(ks.log(), /the same key \(SKI [0-9a-f]{40}\) is in copy.pem and in www.pem/);
      assert.equal(await answer(c, pair), 'signed');
      unlinkSync(join(dir, 'copy.pem'));

      // Removed: revoked, even while an unrelated file of the directory is broken (refused alone).
      writeFileSync(join(dir, 'junk.pem'), '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n');
      unlinkSync(join(dir, 'www.pem'));
      ks.child.kill('SIGHUP');
      await eventually('the removed file revokes its key', async () => (await answer(c, pair)) === ErrorCode.keyNotFound);
      await eventually('the log says which identities lost the key', () =>
        /"keyserver: a granted key file is gone, its key is revoked".*"file":"www.pem".*"identities":\["spiffe:\/\/example.org\/operator"\]/.test(ks.log()));
    } finally {
      await c.close();
      ks.child.kill('SIGTERM');
    }
  });
});
