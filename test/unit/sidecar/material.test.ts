import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { expiredCredentialsPolicy, fingerprintFiles, loadServingMaterial, MaterialError, readMaterialFiles, validateServingMaterial } from '../../../src/sidecar/material.js';
import { readiness } from '../../../src/sidecar/status.js';
import { credentialFiles, makePki, type TestPki } from './fixtures.js';
import { KubeletVolume } from './kubelet-volume.js';

function fileMap(files: Record<string, string | Uint8Array>): Record<string, Uint8Array> {
  return Object.fromEntries(Object.entries(files).map(([k, v]) => [k, typeof v === 'string' ? new TextEncoder().encode(v) : v]));
}

void describe('reading the mounted credential directory', () => {
  let pki: TestPki;
  const dirs: string[] = [];
  before(async () => {
    pki = await makePki();
  });
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  async function tempDir(): Promise<string> {
    const d = await mkdtemp(join(tmpdir(), 'dc-material-'));
    dirs.push(d);
    return d;
  }

  void it('reads one whole version while kubelet keeps swapping versions underneath', async () => {
    const dir = await tempDir();
    const volume = new KubeletVolume(dir);
    const a = await credentialFiles(pki, { algorithms: ['ed25519', 'ecdsa_secp256r1_sha256'], validitySeconds: 3600 });
    const b = await credentialFiles(pki, { algorithms: ['ed25519', 'ecdsa_secp256r1_sha256'], validitySeconds: 7200 });
    const fingerprints = new Set([fingerprintFiles(fileMap(a)), fingerprintFiles(fileMap(b))]);
    await volume.write(a);
    let stop = false;
    const swapper = (async () => {
      for (let i = 0; !stop; i++) await volume.write(i % 2 === 0 ? b : a);
    })();
    try {
      for (let i = 0; i < 60; i++) {
        const m = await loadServingMaterial(dir);
        assert.ok(fingerprints.has(m.fingerprint), 'a mix of two versions was read');
        assert.equal(m.credentials.entries.length, 2);
      }
    } finally {
      stop = true;
      await swapper;
    }
  });

  void it('reads a plain directory (no ..data) as it is', async () => {
    const dir = await tempDir();
    const files = await credentialFiles(pki, { algorithms: ['ed25519'] });
    for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content);
    await writeFile(join(dir, 'README'), 'ignored');
    const read = await readMaterialFiles(dir);
    assert.equal(read.source, dir);
    assert.deepEqual(Object.keys(read.files).sort(), ['ed25519.cred', 'ed25519.key', 'tls.crt']);
  });

  void it('names the directory when it cannot be listed', async () => {
    const missing = join(await tempDir(), 'nope');
    await assert.rejects(loadServingMaterial(missing), (e: unknown) => e instanceof MaterialError && e.file === missing && /cannot list/.test(e.reason));
  });
});

void describe('expired delegated credentials at load', () => {
  let pki: TestPki;
  let expiredFiles: Record<string, string | Uint8Array>;
  before(async () => {
    pki = await makePki();
    // Issued 30 s ago for 10 s: the operator was away longer than the credential's lifetime.
    expiredFiles = await credentialFiles(pki, { algorithms: ['ecdsa_secp256r1_sha256'], validitySeconds: 10, now: new Date(Date.now() - 30_000), certificateKey: true });
  });

  void it("'keep' loads the rest, so tls.key serves and the sidecar is ready", async () => {
    const m = validateServingMaterial('/mem', fileMap(expiredFiles), { expiredCredentials: 'keep' });
    assert.ok(m.certificateKey);
    assert.equal(m.credentials.entries.length, 1);
    const r = readiness({ phase: 'serving', since: new Date() }, m, { keyless: false }, new Date());
    assert.deepEqual(r, { ready: true, reason: 'serving with the certificate key (no unexpired delegated credential)' });
  });

  void it("'refuse' (the default) names the expired file", () => {
    assert.throws(
      () => validateServingMaterial('/mem', fileMap(expiredFiles)),
      (e: unknown) => e instanceof MaterialError && /ecdsa_secp256r1_sha256\.cred$/.test(e.file) && /expired/.test(e.reason),
    );
  });

  void it("'keep' still refuses a bundle with nothing left to serve", () => {
    const { 'tls.key': _key, ...noKey } = expiredFiles;
    assert.throws(
      () => validateServingMaterial('/mem', fileMap(noKey), { expiredCredentials: 'keep' }),
      (e: unknown) => e instanceof MaterialError && /^nothing to serve: every delegated credential has expired/.test(e.reason),
    );
  });

  void it('loads a 7-day credential seen by a clock behind the issuer\'s, and says why it is not served yet', async () => {
    const files = fileMap(await credentialFiles(pki, { algorithms: ['ed25519'], validitySeconds: 7 * 86_400 }));
    // A reload while other credentials serve refuses it (they keep serving); a start takes it.
    assert.throws(() => validateServingMaterial('/mem', files, { now: new Date(Date.now() - 5_000) }), (e: unknown) => e instanceof MaterialError && /validity-too-long/.test(e.reason));
    const week = validateServingMaterial('/mem', files, { now: new Date(Date.now() - 5_000), expiredCredentials: 'keep' });
    const behind = new Date(Date.now() - 5_000);
    const r = readiness({ phase: 'serving', since: behind }, week, { keyless: false }, behind);
    assert.equal(r.ready, false);
    assert.match(r.reason, /more than 7 days left by this clock \(is it behind\?\); servable from /);
    assert.equal(readiness({ phase: 'serving', since: behind }, week, { keyless: false }, new Date(Date.now() + 1000)).ready, true);
  });

  void it('the watcher keeps serving credentials over a reload with expired ones, and takes the rest when nothing serves', async () => {
    const now = new Date();
    assert.equal(expiredCredentialsPolicy(undefined, now), 'keep');
    const fresh = validateServingMaterial('/mem', fileMap(await credentialFiles(pki, { algorithms: ['ed25519'] })));
    assert.equal(expiredCredentialsPolicy(fresh, now), 'refuse');
    const stale = validateServingMaterial('/mem', fileMap(expiredFiles), { expiredCredentials: 'keep' });
    assert.equal(expiredCredentialsPolicy(stale, now), 'keep');
  });
});
