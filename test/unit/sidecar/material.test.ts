import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fingerprintFiles, loadServingMaterial, MaterialError, readMaterialFiles } from '../../../src/sidecar/material.js';
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
