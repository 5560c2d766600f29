/**
 * `dc-operator sidecar` as a process: flags and DC_SIDECAR_* variables, SIGHUP forcing a reload,
 * SIGTERM draining to exit code 0, and a flag error naming the flag with exit code 2.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { credentialFiles, makePki, type TestPki } from '../unit/sidecar/fixtures.js';
import { KubeletVolume } from '../unit/sidecar/kubelet-volume.js';

const CLI = join(process.cwd(), 'dist', 'src', 'cli', 'dc-operator.js');

interface LogLine {
  readonly msg: string;
  readonly [key: string]: unknown;
}

class SidecarProcess {
  readonly lines: LogLine[] = [];
  readonly exited: Promise<number | null>;
  private readonly child: ChildProcessWithoutNullStreams;
  stderrText = '';

  constructor(args: readonly string[], env: Record<string, string>) {
    this.child = spawn(process.execPath, [CLI, 'sidecar', ...args], { env: { ...process.env, ...env } });
    let pending = '';
    this.child.stderr.on('data', (d: Buffer) => {
      this.stderrText += d.toString();
      pending += d.toString();
      let nl;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        try {
          this.lines.push(JSON.parse(line) as LogLine);
        } catch {
          // not a log line
        }
      }
    });
    this.child.stdout.resume();
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
  }

  signal(name: NodeJS.Signals): void {
    this.child.kill(name);
  }

  async line(what: (l: LogLine) => boolean, timeoutMs = 15_000): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.lines.find(what);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no such log line; stderr:\n${this.stderrText}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

void describe('dc-operator sidecar (process)', { timeout: 90_000 }, () => {
  let pki: TestPki;
  let work: string;
  let echo: Server;
  let volume: KubeletVolume;

  before(async () => {
    pki = await makePki();
    work = await mkdtemp(join(tmpdir(), 'dc-sidecar-cli-'));
    await writeFile(join(work, 'ca.crt'), pki.ca.pem);
    volume = new KubeletVolume(join(work, 'credentials'));
    await volume.write(await credentialFiles(pki, { certificateKey: true }));
    echo = createServer({ allowHalfOpen: true }, (s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  });

  after(async () => {
    echo?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  void it('reloads on SIGHUP, serves, and drains to exit code 0 on SIGTERM', async () => {
    const p = new SidecarProcess(['--dc-dir', volume.dir, '--address', '127.0.0.1', '--port', '0', '--metrics-port', '0', '--metrics-address', '127.0.0.1'], {
      DC_SIDECAR_UPSTREAM: String((echo.address() as AddressInfo).port),
      DC_SIDECAR_DRAIN_TIMEOUT: '2s',
    });
    try {
      const listening = await p.line((l) => l.msg === 'sidecar listening');
      assert.equal(listening['upstream'], `127.0.0.1:${(echo.address() as AddressInfo).port}`, 'DC_SIDECAR_UPSTREAM applied');
      const metricsPort = listening['metricsPort'] as number;
      assert.equal((await fetch(`http://127.0.0.1:${metricsPort}/readyz`)).status, 200);
      p.signal('SIGHUP');
      await p.line((l) => l.msg === 'credentials loaded' && l['trigger'] === 'signal');
      p.signal('SIGTERM');
      await p.line((l) => l.msg === 'drained');
      assert.equal(await p.exited, 0);
    } finally {
      p.signal('SIGKILL');
    }
  });

  void it('exits with code 2 and names the flag when a flag is invalid', async () => {
    const p = new SidecarProcess(['--dc-dir', volume.dir, '--port', 'everywhere'], {});
    assert.equal(await p.exited, 2);
    assert.match(p.stderrText, /--port: "everywhere" is not a port number/);
  });
});
