import { afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KeyDirectory, parseKeyFile, type ReloadResult } from '../../../src/keyless/keystore.js';
import { computeSki, skiHex } from '../../../src/keyless/ski.js';

function pem(kind: 'ed25519' | 'ec' | 'rsa'): string {
  const pair =
    kind === 'ec'
      ? generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
      : kind === 'rsa'
        ? generateKeyPairSync('rsa', { modulusLength: 2048 })
        : generateKeyPairSync('ed25519');
  return pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

const skiOf = (keyPem: string): string => skiHex(computeSki(createPrivateKey(keyPem)));

function waitFor(store: KeyDirectory, predicate: () => boolean, ms = 5000): Promise<void> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      if (predicate()) resolve();
      else if (Date.now() - started > ms) reject(new Error(`condition not met in ${ms} ms (keys: ${store.size})`));
      else setTimeout(tick, 20);
    };
    tick();
  });
}

void describe('key directory', () => {
  let dir: string;
  let store: KeyDirectory | undefined;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'keyless-keys-'));
  });
  afterEach(() => {
    store?.close();
    store = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  void it('loads every private key in the directory and finds each by its SKI', async () => {
    const keys = [pem('ed25519'), pem('ec'), pem('rsa')];
    keys.forEach((k, i) => writeFileSync(join(dir, `k${i}.pem`), k));
    writeFileSync(join(dir, 'notes.txt'), 'not a key file');
    store = await KeyDirectory.open(dir, { watch: false, pollIntervalMs: 0 });
    assert.equal(store.size, 3);
    for (const k of keys) assert.equal(store.get(skiOf(k))?.skiHex, skiOf(k));
  });

  void it('reads traditional (PKCS#1 / SEC1) PEM and DER PKCS#8 files too', async () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const ec = generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey;
    writeFileSync(join(dir, 'rsa.key'), rsa.export({ type: 'pkcs1', format: 'pem' }));
    writeFileSync(join(dir, 'ec.der'), ec.export({ type: 'pkcs8', format: 'der' }));
    store = await KeyDirectory.open(dir, { watch: false, pollIntervalMs: 0 });
    assert.equal(store.size, 2);
    assert.equal(store.get(skiHex(computeSki(ec)))?.detail, 'P-384');
  });

  void it('ignores certificates in a PEM file and takes only its private keys', () => {
    const keyPem = pem('ec');
    const keys = parseKeyFile(Buffer.from('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' + keyPem), 'mixed.pem');
    assert.deepEqual(keys.map((k) => k.skiHex), [skiOf(keyPem)]);
  });

  void it('refuses to start from a directory with an invalid key file and names the file', async () => {
    writeFileSync(join(dir, 'good.pem'), pem('ec'));
    writeFileSync(join(dir, 'broken.pem'), '-----BEGIN PRIVATE KEY-----\nnot base64 der\n-----END PRIVATE KEY-----\n');
    await assert.rejects(KeyDirectory.open(dir, { watch: false, pollIntervalMs: 0 }), /broken\.pem/);
  });

  void it('refuses an invalid new file alone at a reload: the other changes apply, the working keys stay', async () => {
    const first = pem('ec');
    writeFileSync(join(dir, 'a.pem'), first);
    store = await KeyDirectory.open(dir, { watch: false, pollIntervalMs: 0 });
    const second = pem('ed25519');
    writeFileSync(join(dir, 'b.pem'), second);
    writeFileSync(join(dir, 'c.pem'), '-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n');
    const result = await store.reload();
    assert.equal(result.ok, false);
    assert.match(result.ok ? '' : result.error.message, /c\.pem/);
    assert.equal(store.size, 2);
    assert.ok(store.get(skiOf(first)));
    assert.ok(store.get(skiOf(second)), 'a valid new file is not held back by a broken one');
  });

  void it('a removed key file is dropped at once, whatever other file of the directory is broken', async () => {
    const lines: { level: string; message: string; meta: Record<string, unknown> }[] = [];
    const line = (level: string) => (message: string, meta: Record<string, unknown> = {}) => void lines.push({ level, message, meta });
    const a = pem('ec');
    const b = pem('ec');
    writeFileSync(join(dir, 'a.pem'), a);
    writeFileSync(join(dir, 'b.pem'), b);
    store = await KeyDirectory.open(dir, { watch: false, pollIntervalMs: 0, logger: { info: line('info'), warn: line('warn'), error: line('error') } });
    writeFileSync(join(dir, 'junk.pem'), '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n');
    rmSync(join(dir, 'b.pem'));
    const result = await store.reload();
    assert.equal(result.ok, false, 'junk.pem is refused');
    assert.equal(result.changed, true);
    assert.equal(store.get(skiOf(b)), undefined, 'the removed key is gone');
    assert.ok(store.get(skiOf(a)));
    assert.ok(lines.some((l) => l.message === 'keyless: key file removed, its keys are dropped' && l.meta['file'] === 'b.pem'));
    assert.ok(lines.some((l) => l.message === 'keyless: key file refused, keeping its previous keys' && l.meta['file'] === 'junk.pem'));
    assert.ok(!lines.some((l) => l.message.includes('keeping the previous key set')), 'no line says the old set was kept');
  });

  void it('a key file changed into garbage keeps its previous key until fixed; its removal then drops it', async () => {
    const a = pem('ec');
    writeFileSync(join(dir, 'a.pem'), a);
    store = await KeyDirectory.open(dir, { watch: false, pollIntervalMs: 0 });
    writeFileSync(join(dir, 'a.pem'), 'garbage');
    assert.equal((await store.reload()).ok, false);
    assert.ok(store.get(skiOf(a)), 'kept');
    const a2 = pem('ec');
    writeFileSync(join(dir, 'a.pem'), a2);
    assert.equal((await store.reload()).ok, true);
    assert.equal(store.get(skiOf(a)), undefined);
    assert.ok(store.get(skiOf(a2)), 'the fixed file is taken');
    writeFileSync(join(dir, 'a.pem'), 'garbage again');
    await store.reload();
    rmSync(join(dir, 'a.pem'));
    await store.reload();
    assert.equal(store.size, 0);
  });

  void it('picks up a new key written into the watched directory', async () => {
    writeFileSync(join(dir, 'a.pem'), pem('ec'));
    const results: ReloadResult[] = [];
    store = await KeyDirectory.open(dir, { debounceMs: 20, pollIntervalMs: 0, onReload: (r) => results.push(r) });
    const added = pem('ed25519');
    writeFileSync(join(dir, 'b.pem.tmp'), added);
    renameSync(join(dir, 'b.pem.tmp'), join(dir, 'b.pem'));
    const s = store;
    await waitFor(s, () => s.get(skiOf(added)) !== undefined);
    assert.equal(s.size, 2);
    assert.ok(results.some((r) => r.ok && r.changed));
  });

  void it('follows a Kubernetes Secret volume swap of the ..data symlink (found by polling)', async () => {
    const v1 = join(dir, '..2026_v1');
    const v2 = join(dir, '..2026_v2');
    mkdirSync(v1);
    mkdirSync(v2);
    const oldKey = pem('ec');
    const newKey = pem('ec');
    writeFileSync(join(v1, 'tls.key'), oldKey);
    writeFileSync(join(v2, 'tls.key'), newKey);
    symlinkSync('..2026_v1', join(dir, '..data'));
    symlinkSync('..data/tls.key', join(dir, 'tls.key'));
    store = await KeyDirectory.open(dir, { watch: false, pollIntervalMs: 50 });
    assert.ok(store.get(skiOf(oldKey)));
    symlinkSync('..2026_v2', join(dir, '..data_tmp'));
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
    const s = store;
    await waitFor(s, () => s.get(skiOf(newKey)) !== undefined);
    assert.equal(s.get(skiOf(oldKey)), undefined);
    assert.equal(s.size, 1);
  });
});

void describe('parseKeyFile on hostile PEM', () => {
  void it('reads a file of 100,000 BEGIN lines without END in work linear in its size, and still finds a key after them', () => {
    const key = pem('ec');
    const text = '-----BEGIN CERTIFICATE-----\n'.repeat(100_000) + key;
    const work = { steps: 0 };
    const keys = parseKeyFile(Buffer.from(text, 'latin1'), 'hostile.pem', work);
    assert.deepEqual(
      keys.map((k) => k.skiHex),
      [skiOf(key)],
    );
    assert.ok(work.steps <= 3 * text.length, `${work.steps} steps for ${text.length} characters`);
  });

  void it('finds no key in BEGIN PRIVATE KEY lines without END, in linear work', () => {
    const text = '-----BEGIN PRIVATE KEY-----\nAAAA\n'.repeat(100_000);
    const work = { steps: 0 };
    assert.deepEqual(parseKeyFile(Buffer.from(text, 'latin1'), 'hostile.pem', work), []);
    assert.ok(work.steps <= 3 * text.length, `${work.steps} steps for ${text.length} characters`);
  });
});
