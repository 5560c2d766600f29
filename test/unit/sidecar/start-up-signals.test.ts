/**
 * Signals during the sidecar's start-up, before the warm-ups (serveUntilSignal in this process;
 * the handlers are called through process.emit, no real signal is sent): a SIGTERM while the key
 * server's validation ping or the first read of --dc-dir waits ends start-up at once, and a SIGHUP
 * then is not lost but reloads the credentials once the sidecar listens.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { serveUntilSignal, type SidecarLogger } from '../../../src/sidecar/main.js';
import { makeKeylessPki, type KeylessPki } from '../keyless/pki.js';
import { credentialFiles, loopbackSidecarConfig, makePki, type TestPki } from './fixtures.js';
import { KubeletVolume } from './kubelet-volume.js';

interface Line {
  readonly message: string;
  readonly meta: Record<string, unknown> | undefined;
}

function recordingLog(): { log: SidecarLogger; lines: Line[] } {
  const lines: Line[] = [];
  const add = (message: string, meta?: Record<string, unknown>): void => void lines.push({ message, meta });
  return { log: { error: add, warn: add, info: add, debug: () => undefined }, lines };
}

async function waitFor(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

let work = '';
let pki: TestPki;
let mtls: KeylessPki;
/** A key server that accepts and never says a word: the TLS handshake and the ping wait. */
let silent: Server;
const silentSockets = new Set<Socket>();
let volume: KubeletVolume;
let volumes = 0;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'dc-sidecar-start-up-'));
  pki = await makePki('ecdsa-p256');
  mtls = makeKeylessPki(['p256']);
  for (const [name, pem] of [['keyless-ca.crt', mtls.ca], ['client.crt', mtls.client.cert], ['client.key', mtls.client.key]] as const) {
    await writeFile(join(work, name), pem);
  }
  silent = createServer((s) => {
    silentSockets.add(s);
    s.on('error', () => undefined);
    s.resume(); // reads (and drops) the ClientHello, so the client's FIN is seen
    s.once('close', () => silentSockets.delete(s));
  });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  volume = new KubeletVolume(join(work, 'credentials'));
  await volume.write(await credentialFiles(pki));
});
after(async () => {
  for (const s of silentSockets) s.destroy();
  silent.close();
  mtls.cleanup();
  await rm(work, { recursive: true, force: true });
});

/** Flags of a sidecar whose keyless key server is the silent one, waiting up to `keylessTimeout`. */
function silentKeyServerConfig(dcDir: string, keylessTimeout: string): ReturnType<typeof loopbackSidecarConfig> {
  return loopbackSidecarConfig(dcDir, 9, {
    'keyless-address': `127.0.0.1:${(silent.address() as AddressInfo).port}`,
    'keyless-ca': join(work, 'keyless-ca.crt'),
    'keyless-client-cert': join(work, 'client.crt'),
    'keyless-client-key': join(work, 'client.key'),
    'keyless-timeout': keylessTimeout,
    'warm-up-handshakes': '0',
    'warm-up-connections': '0',
  });
}

void describe('sidecar start-up and signals', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    void it(`${signal} while the key server does not answer the validation ping ends start-up at once (not after --keyless-timeout)`, async () => {
      const { log, lines } = recordingLog();
      const connectionsBefore = silentSockets.size;
      const serving = serveUntilSignal(silentKeyServerConfig(volume.dir, '8s'), log);
      await waitFor('the keyless client to connect', () => silentSockets.size > connectionsBefore, 5000);
      await new Promise((r) => setTimeout(r, 100));
      const sent = performance.now();
      process.emit(signal, signal);
      const code = await serving;
      const took = performance.now() - sent;
      assert.equal(code, 0);
      assert.ok(took < 1500, `stopped within 1.5 s of ${signal}: ${Math.round(took)} ms`);
      const messages = lines.map((l) => l.message);
      assert.ok(messages.includes('stopped during start-up; never ready'), messages.join(' | '));
      assert.ok(!messages.includes('sidecar listening'), messages.join(' | '));
      // The keyless client was closed with it: the key server sees its connection end.
      await waitFor('the keyless connection to close', () => silentSockets.size === connectionsBefore, 2000);
    });
  }

  void it('a FIFO in --dc-dir does not hold start-up: refused at once as not a regular file, and a SIGTERM then stops the sidecar', async () => {
    const dir = join(work, `fifo-${volumes++}`);
    await mkdir(dir);
    for (const [name, content] of Object.entries(await credentialFiles(pki))) if (name !== 'tls.crt') await writeFile(join(dir, name), content);
    // Reading a FIFO would wait until a writer opens it (a volume that never answers); nobody does.
    execFileSync('mkfifo', [join(dir, 'tls.crt')]);
    const { log, lines } = recordingLog();
    const serving = serveUntilSignal(loopbackSidecarConfig(dir, 9, { 'warm-up-handshakes': '0', 'warm-up-connections': '0' }), log);
    try {
      await waitFor('start-up to finish, not ready', () => lines.some((l) => l.message === 'sidecar listening'), 3000);
      const failed = lines.find((l) => l.message === 'credential reload failed; still serving the previous credentials');
      assert.match(String(failed?.meta?.reason), /not a regular file/, lines.map((l) => l.message).join(' | '));
      const sent = performance.now();
      process.emit('SIGTERM', 'SIGTERM');
      const code = await Promise.race([serving, new Promise<'late'>((r) => setTimeout(() => r('late'), 3000))]);
      assert.equal(code, 0, 'serveUntilSignal returned 0 within 3 s');
      assert.ok(performance.now() - sent < 1000, `stopped within 1 s: ${Math.round(performance.now() - sent)} ms`);
    } finally {
      process.emit('SIGTERM', 'SIGTERM');
      await serving;
    }
  });

  void it('a SIGHUP during start-up is not lost: the credentials are reloaded once the sidecar listens', async () => {
    const { log, lines } = recordingLog();
    const connectionsBefore = silentSockets.size;
    // Start-up waits for the silent key server for 1 s; two SIGHUPs come meanwhile.
    const serving = serveUntilSignal(silentKeyServerConfig(volume.dir, '1s'), log);
    try {
      await waitFor('the keyless client to connect', () => silentSockets.size > connectionsBefore, 5000);
      process.emit('SIGHUP', 'SIGHUP');
      process.emit('SIGHUP', 'SIGHUP');
      const loadedBySignal = (): Line[] => lines.filter((l) => l.message === 'credentials loaded' && l.meta?.['trigger'] === 'signal');
      assert.equal(loadedBySignal().length, 0, 'not reloaded during start-up');
      await waitFor('the sidecar to listen', () => lines.some((l) => l.message === 'sidecar listening'), 10_000);
      await waitFor('the reload for the SIGHUP', () => loadedBySignal().length > 0, 5000);
      const listening = lines.findIndex((l) => l.message === 'sidecar listening');
      assert.ok(lines.indexOf(loadedBySignal()[0]!) > listening, 'reloaded after start-up');
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(loadedBySignal().length, 1, 'two SIGHUPs during start-up make one reload');
      // After start-up a SIGHUP reloads at once, as before.
      process.emit('SIGHUP', 'SIGHUP');
      await waitFor('the reload for the later SIGHUP', () => loadedBySignal().length === 2, 5000);
    } finally {
      process.emit('SIGTERM', 'SIGTERM');
      assert.equal(await serving, 0);
    }
  });
});
