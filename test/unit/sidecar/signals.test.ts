/**
 * The `dc-operator sidecar` process and its stop signals, as a child process: the first SIGTERM or
 * SIGINT drains (open connections may finish until --drain-timeout), a second one cuts what is
 * still open at once instead of waiting the drain out; one during start-up, while the key server
 * does not answer the validation ping, exits 0 at once instead of after --keyless-timeout; a FIFO in
 * --dc-dir does not hang it.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { makeKeylessPki } from '../keyless/pki.js';
import { credentialFiles, makePki, type TestPki } from './fixtures.js';
import { KubeletVolume } from './kubelet-volume.js';

let work = '';
let pki: TestPki;
let upstream: Server;
before(async () => {
  work = await mkdtemp(join(tmpdir(), 'dc-sidecar-signals-'));
  pki = await makePki('ecdsa-p256');
  upstream = createServer((s) => s.destroy());
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
});
after(async () => {
  upstream.close();
  await rm(work, { recursive: true, force: true });
});

async function waitFor(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** `dc-operator sidecar` on loopback with no warm-ups, its upstream the test's; `extra` flags last. */
function sidecarProcess(dcDir: string, extra: readonly string[] = []): { child: ChildProcess; output: () => string; exited: Promise<{ code: number | null; signal: string | null }> } {
  const cli = fileURLToPath(new URL('../../../src/cli/dc-operator.js', import.meta.url));
  const child = spawn(
    process.execPath,
    [cli, 'sidecar', '--dc-dir', dcDir, '--address', '127.0.0.1', '--port', '0', '--metrics-address', '127.0.0.1', '--metrics-port', '0',
      '--upstream', String((upstream.address() as AddressInfo).port), '--warm-up-handshakes', '0', '--warm-up-connections', '0', ...extra],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.once('exit', (code, sig) => resolve({ code, signal: sig })));
  return { child, output: () => out, exited };
}

/** How the child exited; it is killed if it has not exited within 10 s. */
async function exitOf(child: ChildProcess, exited: Promise<{ code: number | null; signal: string | null }>): Promise<{ code: number | null; signal: string | null }> {
  const timeout = setTimeout(() => child.kill('SIGKILL'), 10_000);
  try {
    return await exited;
  } finally {
    clearTimeout(timeout);
  }
}

void describe('sidecar stop signals', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    void it(`a second ${signal} cuts the open connections instead of waiting out the drain`, async () => {
      const volume = new KubeletVolume(join(work, signal));
      await volume.write(await credentialFiles(pki));
      // A long drain and handshake deadline: an idle client would hold the drain for 60 s.
      const { child, output, exited } = sidecarProcess(volume.dir, ['--drain-timeout', '60s', '--handshake-timeout', '60s']);
      let idle: Socket | undefined;
      try {
        await waitFor('the sidecar to listen', () => /sidecar listening/.test(output()), 15_000);
        const port = Number(/"listen":"127\.0\.0\.1:(\d+)"/.exec(output())?.[1]);
        assert.ok(port > 0, output());
        // A client that connects and never speaks: the drain would wait for it.
        idle = connect(port, '127.0.0.1');
        idle.on('error', () => undefined);
        await new Promise<void>((r) => idle!.once('connect', () => r()));
        await new Promise((r) => setTimeout(r, 100));
        child.kill(signal);
        await waitFor('the drain to start', () => /draining/.test(output()), 5000);
        const sent = Date.now();
        child.kill(signal);
        assert.deepEqual(await exitOf(child, exited), { code: 0, signal: null }, output());
        assert.ok(Date.now() - sent < 5000, `exited within 5 s of the second signal: ${Date.now() - sent} ms`);
        assert.match(output(), /second stop signal: cutting open connections/);
      } finally {
        idle?.destroy();
        child.kill('SIGKILL');
      }
    });
  }

  void it('SIGTERM while the key server does not answer the validation ping: the process exits 0 at once, never ready', async () => {
    const mtls = makeKeylessPki(['p256']);
    const volume = new KubeletVolume(join(work, 'keyless'));
    await volume.write(await credentialFiles(pki));
    for (const [name, pem] of [['keyless-ca.crt', mtls.ca], ['client.crt', mtls.client.cert], ['client.key', mtls.client.key]] as const) {
      await writeFile(join(work, name), pem);
    }
    // Accepts, reads the ClientHello, never answers.
    let connected = false;
    const silent = createServer((s) => {
      connected = true;
      s.on('error', () => undefined);
      s.resume();
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const { child, output, exited } = sidecarProcess(volume.dir, [
      '--keyless-address', `127.0.0.1:${(silent.address() as AddressInfo).port}`, '--keyless-ca', join(work, 'keyless-ca.crt'),
      '--keyless-client-cert', join(work, 'client.crt'), '--keyless-client-key', join(work, 'client.key'), '--keyless-timeout', '30s',
    ]);
    try {
      await waitFor('the keyless client to connect', () => connected, 15_000);
      await new Promise((r) => setTimeout(r, 100));
      const sent = Date.now();
      child.kill('SIGTERM');
      assert.deepEqual(await exitOf(child, exited), { code: 0, signal: null }, output());
      assert.ok(Date.now() - sent < 3000, `exited within 3 s of SIGTERM (not after the 30 s --keyless-timeout): ${Date.now() - sent} ms`);
      assert.match(output(), /stopped during start-up; never ready/);
      assert.doesNotMatch(output(), /sidecar listening/);
    } finally {
      child.kill('SIGKILL');
      silent.close();
      mtls.cleanup();
    }
  });

  void it('a FIFO as tls.crt that nobody writes: the process starts (not ready) instead of hanging, and SIGTERM ends it with 0', async () => {
    const dir = join(work, 'fifo');
    await mkdir(dir);
    for (const [name, content] of Object.entries(await credentialFiles(pki))) if (name !== 'tls.crt') await writeFile(join(dir, name), content);
    // A blocked read of a FIFO would hold a thread-pool thread that even process.exit() waits for.
    execFileSync('mkfifo', [join(dir, 'tls.crt')]);
    const { child, output, exited } = sidecarProcess(dir);
    try {
      await waitFor('the sidecar to listen', () => output().includes('sidecar listening'), 15_000);
      assert.match(output(), /credential reload failed.*not a regular file/);
      const sent = Date.now();
      child.kill('SIGTERM');
      assert.deepEqual(await exitOf(child, exited), { code: 0, signal: null }, output());
      assert.ok(Date.now() - sent < 3000, `exited within 3 s of SIGTERM: ${Date.now() - sent} ms`);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
