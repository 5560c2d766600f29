/**
 * `dc-operator keyserver` with a --cert and --key that are not a pair: node says only "key values
 * mismatch"; the command names both files and the SKIs of their public keys, and exits 2 before
 * anything listens.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { servingPairMismatch } from '../../../src/cli/commands/keyserver.js';
import { issueCertificate, type IssuedCertificate } from '../../../src/cli/pki/dev-pki.js';
import { computeSki, skiHex } from '../../../src/keyless/ski.js';
import { createPrivateKey } from 'node:crypto';

const DC_OPERATOR = join(dirname(fileURLToPath(import.meta.url)), '../../../src/cli/dc-operator.js');

void describe('keyserver --cert/--key that are not a pair', () => {
  let a: IssuedCertificate;
  let b: IssuedCertificate;
  let dir: string;
  const skiOf = (keyPem: string): string => skiHex(computeSki(createPrivateKey(keyPem)));

  before(async () => {
    [a, b] = await Promise.all([
      issueCertificate({ commonName: 'keyserver a' }, 'ecdsa-p256'),
      issueCertificate({ commonName: 'keyserver b' }, 'ed25519'),
    ]);
    dir = mkdtempSync(join(tmpdir(), 'dc-keyserver-'));
    mkdirSync(join(dir, 'keys'));
    writeFileSync(join(dir, 'server.crt'), a.pem);
    writeFileSync(join(dir, 'other.key'), b.key.privateKeyPem);
    writeFileSync(join(dir, 'ca.crt'), a.pem);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  void it('names both files and both SKIs', () => {
    assert.equal(
      servingPairMismatch(a.pem, b.key.privateKeyPem, 'server.crt', 'other.key'),
      `--cert server.crt and --key other.key are not a pair: the certificate's public key has SKI ${skiOf(a.key.privateKeyPem)}, the key's ${skiOf(b.key.privateKeyPem)}. ` +
        'Give the key the certificate was issued for (its leaf comes first in --cert), or the certificate issued for this key',
    );
  });

  void it('says nothing of a matching pair', () => {
    assert.equal(servingPairMismatch(a.pem, a.key.privateKeyPem, 'server.crt', 'server.key'), undefined);
  });

  void it('the command exits 2 with that message, before listening', () => {
    const r = spawnSync(
      process.execPath,
      [DC_OPERATOR, 'keyserver', '--keys', 'keys', '--ca', 'ca.crt', '--cert', 'server.crt', '--key', 'other.key', '--port', '0'],
      { cwd: dir, encoding: 'utf8', timeout: 30_000 },
    );
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /--cert server\.crt and --key other\.key are not a pair: the certificate's public key has SKI [0-9a-f]{40}, the key's [0-9a-f]{40}\./);
    assert.ok(!r.stderr.includes('key values mismatch'), r.stderr);
  });
});
