import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { verify } from 'node:crypto';
import { SignerKeyError, signerFromFiles } from '../../../src/signer/index.js';
import { asIssuer, issueCertificate, type IssuedCertificate } from '../../../src/cli/pki/dev-pki.js';

async function rejectsWith(p: Promise<unknown>, reason: SignerKeyError['reason'], message: string | RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof SignerKeyError, String(e));
    assert.equal(e.reason, reason);
    if (typeof message === 'string') assert.equal(e.message, message);
    else assert.match(e.message, message);
    return true;
  });
}

void describe('signerFromFiles', () => {
  let dir: string;
  let leaf: IssuedCertificate;
  let ca: IssuedCertificate;
  const path = (name: string) => join(dir, name);
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'signer-files-'));
    ca = await issueCertificate({ commonName: 'Files CA', isCA: true }, 'ecdsa-p256');
    leaf = await issueCertificate({ commonName: 'files.example.test', dnsNames: ['files.example.test'] }, 'ecdsa-p384', asIssuer(ca));
    const other = await issueCertificate({ commonName: 'other' }, 'ecdsa-p384', asIssuer(ca));
    writeFileSync(path('tls.crt'), leaf.pem + ca.pem);
    writeFileSync(path('tls.key'), leaf.key.privateKeyPem);
    writeFileSync(path('other.key'), other.key.privateKeyPem);
    writeFileSync(path('empty.key'), '');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  void it('loads a matching certificate chain and key and signs with the key', async () => {
    const { signer, certificateChain } = await signerFromFiles({ cert: path('tls.crt'), key: path('tls.key') });
    assert.equal(certificateChain.length, 2);
    assert.deepEqual([...signer.schemes], [0x0503]);
    const msg = new Uint8Array([1, 2, 3]);
    assert.equal(verify('sha384', msg, { key: signer.publicKey, dsaEncoding: 'der' }, await signer.sign(0x0503, msg)), true);
  });

  void it('names the file it cannot read', async () => {
    await rejectsWith(signerFromFiles({ cert: path('tls.crt'), key: path('missing.key') }), 'missing_key', `cannot read ${path('missing.key')}: no such file`);
  });

  void it('names the key file that is not a private key', async () => {
    await rejectsWith(signerFromFiles({ cert: path('tls.crt'), key: path('tls.crt') }), 'malformed_key', `${path('tls.crt')} is not a PKCS#8/PKCS#1/SEC1 PEM private key`);
    await rejectsWith(signerFromFiles({ cert: path('tls.crt'), key: path('empty.key') }), 'missing_key', `${path('empty.key')} is empty`);
  });

  void it('says when the key does not match the certificate', async () => {
    await rejectsWith(signerFromFiles({ cert: path('tls.crt'), key: path('other.key') }), 'key_mismatch', `key does not match the certificate in ${path('tls.crt')}`);
  });
});
