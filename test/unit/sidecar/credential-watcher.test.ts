import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CredentialWatcher, type ReloadOutcome, type WatcherLogger } from '../../../src/sidecar/credential-watcher.js';
import { expiredCredentialsPolicy, loadServingMaterial, MaterialStore } from '../../../src/sidecar/material.js';
import { SidecarMetrics } from '../../../src/sidecar/metrics.js';
import { SidecarStatus } from '../../../src/sidecar/status.js';
import { SignatureScheme } from '../../../src/tls/constants.js';
import { credentialFiles, makePki, withFile, type TestPki } from './fixtures.js';
import { KubeletVolume } from './kubelet-volume.js';
import { ecKeyWithForeignScalar } from '../../support/mismatched-keys.js';

interface LogLine {
  level: string;
  message: string;
  meta: Record<string, unknown> | undefined;
}

function captureLog(): WatcherLogger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at = (level: string) => (message: string, meta?: Record<string, unknown>) => void lines.push({ level, message, meta });
  return { lines, info: at('info'), warn: at('warn'), error: at('error') };
}

interface Rig {
  dir: string;
  volume: KubeletVolume;
  store: MaterialStore;
  status: SidecarStatus;
  metrics: SidecarMetrics;
  log: ReturnType<typeof captureLog>;
  watcher: CredentialWatcher;
  outcomes: ReloadOutcome[];
}

async function rig(recheckIntervalMs = 0): Promise<Rig> {
  const dir = await mkdtemp(join(tmpdir(), 'dc-sidecar-'));
  const store = new MaterialStore();
  const status = new SidecarStatus();
  const metrics = new SidecarMetrics(store, status);
  const log = captureLog();
  const outcomes: ReloadOutcome[] = [];
  const watcher = new CredentialWatcher({
    dir,
    store,
    // As the sidecar binds it (main.ts).
    load: (d, current) => loadServingMaterial(d, { expiredCredentials: expiredCredentialsPolicy(current, new Date()) }),
    debounceMs: 20,
    recheckIntervalMs,
    log,
    onReloadStart: () => status.reloadStarted(),
    onReloadEnd: (_t, outcome) => {
      outcomes.push(outcome);
      metrics.reload(outcome.result);
      status.reloadFinished(store.current !== undefined);
    },
  });
  return { dir, volume: new KubeletVolume(dir), store, status, metrics, log, watcher, outcomes };
}

async function until(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

void describe('CredentialWatcher over a kubelet-style Secret volume', () => {
  let pki: TestPki;
  let good: Record<string, string | Uint8Array>;
  const rigs: Rig[] = [];

  before(async () => {
    pki = await makePki();
    good = await credentialFiles(pki, { algorithms: ['ecdsa_secp256r1_sha256', 'ed25519'] });
  });
  after(async () => {
    for (const r of rigs) {
      r.watcher.stop();
      await rm(r.dir, { recursive: true, force: true });
    }
  });

  async function started(files: Record<string, string | Uint8Array>): Promise<Rig> {
    const r = await rig();
    rigs.push(r);
    await r.volume.write(files);
    const outcome = await r.watcher.start();
    assert.equal(outcome.result, 'success');
    return r;
  }

  void it('loads every delegated credential of the volume and enters the serving phase', async () => {
    const r = await started(good);
    const algorithms = r.store.current!.credentials.entries.map((e) => e.dcCertVerifyAlgorithm);
    assert.deepEqual(algorithms, [SignatureScheme.ed25519, SignatureScheme.ecdsa_secp256r1_sha256]);
    assert.equal(r.store.current!.certificateKey, undefined);
    assert.match(r.store.current!.source, /\/\.\.\d{4}_/, 'reads from the version directory ..data points to');
    assert.equal(r.status.current.phase, 'serving');
  });

  void it('starts on a volume whose credentials expired while the operator was away: serves tls.key, warns, and takes the next fresh credential', async () => {
    const stale = await credentialFiles(pki, { algorithms: ['ed25519'], validitySeconds: 10, now: new Date(Date.now() - 30_000), certificateKey: true });
    const r = await started(stale);
    assert.ok(r.store.current!.certificateKey);
    assert.equal(r.status.current.phase, 'serving');
    const warning = r.log.lines.find((l) => l.level === 'warn');
    assert.match(warning?.message ?? '', /^a delegated credential has expired; serving without it/);
    assert.equal(warning?.meta?.['algorithm'], 'ed25519');
    await r.volume.write(await credentialFiles(pki, { algorithms: ['ed25519'], certificateKey: true }));
    const outcome = await r.watcher.reload('signal', true);
    assert.equal(outcome.result, 'success');
    assert.equal(r.store.current!.credentials.entries[0]!.expiresAt.getTime() > Date.now(), true);
  });

  const invalidVersions: ReadonlyArray<[string, (f: Record<string, string | Uint8Array>) => Promise<Record<string, string | Uint8Array>>, RegExp, RegExp]> = [
    ['an empty credential file', async (f) => withFile(f, 'ed25519.cred', new Uint8Array(0)), /ed25519\.cred$/, /is empty/],
    ['a truncated credential', async (f) => withFile(f, 'ed25519.cred', (f['ed25519.cred'] as Uint8Array).subarray(0, 40)), /ed25519\.cred$/, /not an encoded DelegatedCredential|does not decode|vector|truncated|bytes/i],
    ['a key that does not match its credential', async (f) => withFile(f, 'ed25519.key', (await credentialFiles(pki, { algorithms: ['ed25519'] }))['ed25519.key']), /ed25519\.cred$/, /private key does not match/],
    ['an expired credential', async (f) => ({ ...f, ...(await credentialFiles(pki, { algorithms: ['ed25519'], validitySeconds: 10, now: new Date(Date.now() - 30_000) })) }), /ed25519\.cred$/, /expired/],
    ['a credential for another certificate', async (f) => ({ ...f, ...(await credentialFiles(await makePki(), { algorithms: ['ed25519'] })), 'tls.crt': f['tls.crt']! }), /ed25519\.cred$/, /signature|verify/i],
    ['a missing certificate', async (f) => withFile(f, 'tls.crt', undefined), /tls\.crt$/, /missing/],
    ['a truncated certificate', async (f) => withFile(f, 'tls.crt', (f['tls.crt'] as string).slice(0, 200)), /tls\.crt$/, /no PEM certificate/],
    ['a tls.key for another certificate', async (f) => withFile(f, 'tls.key', (await makePki()).leaf.key.privateKeyPem), /tls\.key$/, /^tls\.key does not belong to tls\.crt: its public key is not tls\.crt's/],
    // The public key a key file carries passes every public-key comparison; only a signature shows the swap.
    [
      'a tls.key carrying the certificate\'s public key beside another private scalar',
      async (f) => withFile(f, 'tls.key', ecKeyWithForeignScalar(pki.leaf.key.privateKeyPem, 'sec1').pem),
      /tls\.key$/,
      /^tls\.key does not belong to tls\.crt: its private part does not produce signatures tls\.crt's public key verifies/,
    ],
    [
      'a new credential whose key carries its public key beside another private scalar',
      async (f) => {
        const fresh = await credentialFiles(pki, { algorithms: ['ecdsa_secp256r1_sha256'] });
        return { ...f, ...fresh, 'ecdsa_secp256r1_sha256.key': ecKeyWithForeignScalar(fresh['ecdsa_secp256r1_sha256.key'] as string, 'pkcs8').pem };
      },
      /ecdsa_secp256r1_sha256\.cred$/,
      /private key does not match the credential's public key .*its private part does not produce signatures/,
    ],
    ['a credential without its key', async (f) => withFile(f, 'ed25519.key', undefined), /ed25519\.key$/, /missing/],
  ];

  for (const [what, mutate, file, reason] of invalidVersions) {
    void it(`keeps serving the old set when the new version has ${what}, logging the file and counting a failure`, async () => {
      const r = await started(good);
      const before = r.store.current;
      await r.volume.write(await mutate(good));
      const outcome = await r.watcher.reload('signal', true);
      assert.equal(outcome.result, 'failure');
      assert.equal(r.store.current, before, 'the old material object is still the current one');
      const line = r.log.lines.find((l) => l.level === 'error');
      assert.ok(line, 'an error line was logged');
      assert.match(String(line.meta?.['file']), file);
      assert.match(String(line.meta?.['reason']), reason);
      // The watch may have seen the swap too: one or two failed reloads, never a success.
      assert.ok((await r.metrics.value('dc_sidecar_credential_reloads_total', { result: 'failure' })) >= 1);
      assert.equal(await r.metrics.value('dc_sidecar_credential_reloads_total', { result: 'success' }), 1, 'only the initial load');
      // A watch-triggered reload of the same bad version may still be running; it fails too.
      await until('the reloads to settle', () => r.status.current.phase === 'serving');
      assert.equal(r.store.current, before);
    });
  }

  void it('reloads by itself when kubelet swaps ..data, and the new credentials replace the old ones', async () => {
    const r = await started(good);
    const first = r.store.current!;
    const next = await credentialFiles(pki, { algorithms: ['ecdsa_secp256r1_sha256'] });
    await r.volume.write(next);
    await until('the watch-triggered reload', () => r.store.current !== first);
    assert.deepEqual(
      r.store.current!.credentials.entries.map((e) => e.dcCertVerifyAlgorithm),
      [SignatureScheme.ecdsa_secp256r1_sha256],
    );
    assert.notDeepEqual(r.store.current!.credentials.entries[0]!.encoded, first.credentials.entries[1]!.encoded);
  });

  void it('recovers on the next valid version after an invalid one', async () => {
    const r = await started(good);
    await r.volume.write(withFile(good, 'ed25519.cred', new Uint8Array(0)));
    await until('the failed reload', () => r.outcomes.some((o) => o.result === 'failure'));
    const fixed = await credentialFiles(pki, { algorithms: ['ed25519'] });
    await r.volume.write(fixed);
    await until('the good reload', () => r.store.current!.credentials.entries.length === 1);
    assert.equal(r.store.current!.credentials.entries[0]!.dcCertVerifyAlgorithm, SignatureScheme.ed25519);
  });

  void it('does not swap when the files did not change, unless the reload is forced (SIGHUP)', async () => {
    const r = await started(good);
    const first = r.store.current;
    assert.equal((await r.watcher.reload('periodic', false)).result, 'unchanged');
    assert.equal(r.store.current, first);
    assert.equal((await r.watcher.reload('signal', true)).result, 'success');
    assert.notEqual(r.store.current, first);
  });

  void it('stays initializing (not serving) when the first version is invalid, then serves once a valid one arrives', async () => {
    const r = await rig();
    rigs.push(r);
    await r.volume.write(withFile(good, 'tls.crt', undefined));
    assert.equal((await r.watcher.start()).result, 'failure');
    assert.equal(r.status.current.phase, 'initializing');
    assert.equal(r.store.current, undefined);
    await r.volume.write(good);
    await until('the first valid load', () => r.store.current !== undefined);
    assert.equal(r.status.current.phase, 'serving');
  });

  void it('re-checks periodically and picks up a version whose watch event was missed', async () => {
    const r = await rig(100);
    rigs.push(r);
    await r.volume.write(good);
    assert.equal((await r.watcher.start()).result, 'success');
    const first = r.store.current;
    r.watcher['fsWatcher']?.close(); // simulate a lost watch: only the periodic re-check is left
    r.watcher['fsWatcher'] = undefined;
    r.watcher['startFsWatch'] = () => {};
    await r.volume.write(await credentialFiles(pki, { algorithms: ['ed25519'] }));
    await until('the periodic reload', () => r.store.current !== first);
    assert.equal(r.store.current!.credentials.entries.length, 1);
  });

  void it('coalesces a burst of triggers into at most one extra reload', async () => {
    const r = await started(good);
    const before = r.outcomes.length;
    await Promise.all([1, 2, 3, 4, 5].map(() => r.watcher.reload('watch', true)));
    assert.ok(r.outcomes.length - before <= 2, `ran ${r.outcomes.length - before} reloads for 5 triggers`);
  });
  for (const loaded of ['a valid version', 'a failure'] as const) {
    void it(`a read that returns ${loaded} after stop() swaps nothing and logs nothing (a stop during start-up abandons that read)`, async () => {
      const store = new MaterialStore();
      const log = captureLog();
      let finishLoad: () => void = () => undefined;
      let reading = false;
      const r = await rig();
      rigs.push(r);
      await r.volume.write(good);
      const watcher = new CredentialWatcher({
        dir: r.dir,
        store,
        load: async (d) => {
          reading = true;
          await new Promise<void>((resolve) => (finishLoad = resolve));
          if (loaded === 'a failure') throw new Error('tls.crt: not PEM');
          return loadServingMaterial(d);
        },
        debounceMs: 20,
        recheckIntervalMs: 0,
        log,
      });
      const starting = watcher.start();
      await until('the read to start', () => reading);
      watcher.stop();
      finishLoad();
      await starting;
      assert.equal(store.current, undefined, 'nothing swapped in after stop()');
      assert.deepEqual(log.lines, [], 'nothing logged after stop()');
    });
  }
});
