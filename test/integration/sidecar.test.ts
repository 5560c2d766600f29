/**
 * The sidecar against real peers: a kubelet-style credential volume with real delegated
 * credentials, an HTTP application on loopback, and NSS tstclnt, OpenSSL s_client, curl and our
 * own client as TLS clients. No fakes.
 */
import assert from 'node:assert/strict';
import { fork, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import type { FlagValues } from '../../src/sidecar/config.js';
import { runSidecar, type RunningSidecar, type SidecarLogger } from '../../src/sidecar/main.js';
import { delegatedCredentialPeerHooks, type DelegatedCredentialDetails } from '../../src/tls/delegated/index.js';
import { connect, type TLSSocket } from '../../src/tls/socket.js';
import { credentialFiles, loopbackSidecarConfig, makePki, type TestPki, withFile } from '../unit/sidecar/fixtures.js';
import { KubeletVolume } from '../unit/sidecar/kubelet-volume.js';
import type { LoadReport } from '../unit/sidecar/dc-load-generator.js';

interface Ran {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function runTool(command: string, args: readonly string[], stdin: string, timeoutMs = 15_000): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.on('error', () => {}); // EPIPE when the tool exits without reading its input
    child.stdin.end(stdin);
  });
}

/** The application: answers every request with "<method> <path> <body>". */
async function startApplication(): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = `${req.method} ${req.url} ${Buffer.concat(chunks).toString()}`;
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) }).end(body);
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port };
}

function captureLog(): SidecarLogger & { lines: Array<{ level: string; message: string; meta?: Record<string, unknown> }> } {
  const lines: Array<{ level: string; message: string; meta?: Record<string, unknown> }> = [];
  const at = (level: string) => (message: string, meta?: Record<string, unknown>) => void lines.push({ level, message, meta });
  return { lines, error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug') };
}

async function startSidecar(dir: string, upstreamPort: number, log: SidecarLogger, extra: FlagValues = {}): Promise<RunningSidecar> {
  return runSidecar({ ...loopbackSidecarConfig(dir, upstreamPort, { 'reload-debounce': '20ms', ...extra }), log });
}

/** Our client, offering delegated credentials. */
function dcClient(port: number, pki: TestPki): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = connect(
      { host: '127.0.0.1', port, servername: 'localhost', ca: [pki.ca.pem], serverCredentialHooks: delegatedCredentialPeerHooks({ peer: 'server' }) },
      () => resolve(s),
    );
    s.once('error', reject);
  });
}

/** One HTTP/1.1 request on an open connection; resolves with the response body. */
function request(s: TLSSocket, path: string, body = ''): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      const text = buf.toString('latin1');
      const headEnd = text.indexOf('\r\n\r\n');
      if (headEnd < 0) return;
      const length = Number(/content-length: (\d+)/i.exec(text.slice(0, headEnd))?.[1] ?? NaN);
      if (buf.length < headEnd + 4 + length) return;
      s.off('data', onData);
      s.off('error', reject);
      s.off('close', onClose);
      resolve(buf.subarray(headEnd + 4, headEnd + 4 + length).toString());
    };
    const onClose = (): void => reject(new Error(`connection closed during ${path}`));
    s.on('data', onData);
    s.once('error', reject);
    s.once('close', onClose);
    s.write(`POST ${path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  });
}

function dcDetails(s: TLSSocket): DelegatedCredentialDetails | undefined {
  const mode = s.handshakeMode?.server;
  return mode?.authentication === 'delegated-credential' ? (mode.details as DelegatedCredentialDetails) : undefined;
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function metricsText(sidecar: RunningSidecar): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${sidecar.metricsPort}/metrics`);
  return res.text();
}

void describe('dc-operator sidecar against real TLS clients', { timeout: 180_000 }, () => {
  let pki: TestPki;
  let work: string;
  let nssDb: string;
  let caFile: string;
  let volume: KubeletVolume;
  let app: { server: Server; port: number };
  let sidecar: RunningSidecar;
  const log = captureLog();
  let initialFiles: Record<string, string | Uint8Array>;

  before(async () => {
    pki = await makePki('ecdsa-p256');
    work = await mkdtemp(join(tmpdir(), 'dc-sidecar-it-'));
    caFile = join(work, 'ca.crt');
    await writeFile(caFile, pki.ca.pem);
    nssDb = join(work, 'nssdb');
    const mk = await runTool('mkdir', ['-p', nssDb], '');
    assert.equal(mk.code, 0);
    assert.equal((await runTool('certutil', ['-N', '--empty-password', '-d', nssDb], '')).code, 0);
    assert.equal((await runTool('certutil', ['-A', '-n', 'ca', '-t', 'C,,', '-i', caFile, '-d', nssDb], '')).code, 0);
    volume = new KubeletVolume(join(work, 'credentials'));
    initialFiles = await credentialFiles(pki, { algorithms: ['ecdsa_secp256r1_sha256', 'ed25519'], certificateKey: true });
    await volume.write(initialFiles);
    app = await startApplication();
    sidecar = await startSidecar(volume.dir, app.port, log);
  });

  after(async () => {
    await sidecar?.close();
    app?.server.closeAllConnections();
    app?.server.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  void it('serves NSS tstclnt -B a delegated credential, and the request reaches the application', async () => {
    const r = await runTool(
      'tstclnt',
      ['-B', '-h', '127.0.0.1', '-p', String(sidecar.port), '-d', nssDb, '-V', 'tls1.3:tls1.3', '-a', 'localhost'],
      'GET /nss HTTP/1.0\r\n\r\n',
    );
    const out = r.stdout + r.stderr;
    assert.match(out, /Received a Delegated Credential/);
    assert.match(out, /GET \/nss /);
    assert.ok((await sidecar.metrics.value('dc_sidecar_handshakes_total', { mode: 'dc', engine: 'ours', result: 'success' })) >= 1);
  });

  void it('serves openssl s_client -tls1_3 (no DC support) with the certificate through node:tls', async () => {
    const before = await sidecar.metrics.value('dc_sidecar_handshakes_total', { mode: 'certificate', engine: 'node', result: 'success' });
    const r = await runTool(
      'openssl',
      ['s_client', '-connect', `127.0.0.1:${sidecar.port}`, '-servername', 'localhost', '-CAfile', caFile, '-tls1_3', '-brief', '-ign_eof'],
      'GET /openssl13 HTTP/1.0\r\n\r\n',
    );
    const out = r.stdout + r.stderr;
    assert.match(out, /Protocol version: TLSv1\.3/);
    assert.match(out, /Verification: OK/);
    assert.match(out, /GET \/openssl13 /);
    assert.equal(await sidecar.metrics.value('dc_sidecar_handshakes_total', { mode: 'certificate', engine: 'node', result: 'success' }), before + 1);
  });

  void it('serves openssl s_client -tls1_2 through node:tls with the mounted certificate key', async () => {
    const r = await runTool(
      'openssl',
      ['s_client', '-connect', `127.0.0.1:${sidecar.port}`, '-servername', 'localhost', '-CAfile', caFile, '-tls1_2', '-brief', '-ign_eof'],
      'GET /openssl12 HTTP/1.0\r\n\r\n',
    );
    const out = r.stdout + r.stderr;
    assert.match(out, /Protocol version: TLSv1\.2/);
    assert.match(out, /Verification: OK/);
    assert.match(out, /GET \/openssl12 /);
  });

  void it('passes curl requests and responses through intact', async () => {
    const body = 'x'.repeat(100_000);
    const r = await runTool(
      'curl',
      ['-sS', '--max-time', '10', '--cacert', caFile, '--resolve', `localhost:${sidecar.port}:127.0.0.1`, `https://localhost:${sidecar.port}/curl`, '--data-binary', '@-'],
      body,
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `POST /curl ${body}`);
  });

  void it('reports our client the DC it was served, with its algorithm', async () => {
    const s = await dcClient(sidecar.port, pki);
    try {
      const dc = dcDetails(s);
      assert.ok(dc, 'authenticated with a delegated credential');
      assert.equal(dc.algorithm, 'ed25519', 'the cheapest algorithm both sides accept');
      assert.equal(await request(s, '/ours', 'hi'), 'POST /ours hi');
    } finally {
      s.destroy();
    }
  });

  void it('keeps an open connection across a credential swap while new handshakes get the new DC', async () => {
    const s = await dcClient(sidecar.port, pki);
    try {
      const old = dcDetails(s)!;
      assert.equal(await request(s, '/before'), 'POST /before ');
      const current = sidecar.store.current;
      await volume.write(await credentialFiles(pki, { algorithms: ['ed25519'], certificateKey: true, validitySeconds: 7200 }));
      await until('the reload', () => sidecar.store.current !== current);
      assert.equal(await request(s, '/after', 'same connection'), 'POST /after same connection');
      const fresh = await dcClient(sidecar.port, pki);
      try {
        const next = dcDetails(fresh)!;
        assert.notEqual(next.expiresAt.getTime(), old.expiresAt.getTime(), 'a new handshake gets the new credential');
        assert.ok(next.expiresAt.getTime() < Date.now() + 7200_000 + 5000);
      } finally {
        fresh.destroy();
      }
    } finally {
      s.destroy();
    }
  });

  void it('keeps serving the old credentials when a truncated version is mounted, visible in logs, metrics and readiness', async () => {
    // P-256 for NSS (it does not do Ed25519), Ed25519 for our client (cheapest first).
    const good = await credentialFiles(pki, { algorithms: ['ecdsa_secp256r1_sha256', 'ed25519'], certificateKey: true, validitySeconds: 3600 });
    const current = sidecar.store.current;
    await volume.write(good);
    await until('the good reload', () => sidecar.store.current !== current);
    const serving = sidecar.store.current;
    const failuresBefore = await sidecar.metrics.value('dc_sidecar_credential_reloads_total', { result: 'failure' });
    await volume.write(withFile(good, 'ed25519.cred', (good['ed25519.cred'] as Uint8Array).subarray(0, 30)));
    await until('the failed reload', async () => (await sidecar.metrics.value('dc_sidecar_credential_reloads_total', { result: 'failure' })) > failuresBefore);
    assert.equal(sidecar.store.current, serving);
    const line = log.lines.find((l) => l.level === 'error' && String(l.meta?.['file']).endsWith('ed25519.cred'));
    assert.ok(line, 'an error line names the file');
    assert.match(await metricsText(sidecar), /dc_sidecar_credential_reloads_total\{result="failure"\} [1-9]/);
    assert.equal((await fetch(`http://127.0.0.1:${sidecar.metricsPort}/readyz`)).status, 200);
    const s = await dcClient(sidecar.port, pki);
    try {
      assert.equal(dcDetails(s)!.expiresAt.getTime(), serving!.credentials.entries[0]!.expiresAt.getTime());
    } finally {
      s.destroy();
    }
    const r = await runTool('tstclnt', ['-B', '-h', '127.0.0.1', '-p', String(sidecar.port), '-d', nssDb, '-V', 'tls1.3:tls1.3', '-a', 'localhost'], 'GET /still HTTP/1.0\r\n\r\n');
    assert.match(r.stdout + r.stderr, /Received a Delegated Credential/);
    await volume.write(initialFiles);
    await until('recovery', () => sidecar.store.current !== serving);
  });

  void it('rotates 50 times under continuous new connections without a failed handshake or a broken connection', { timeout: 120_000 }, async () => {
    const sets = await Promise.all([3600, 3700, 3800, 3900].map((v) => credentialFiles(pki, { algorithms: ['ed25519', 'ecdsa_secp256r1_sha256'], certificateKey: true, validitySeconds: v })));
    const failuresBefore = await sidecar.metrics.value('dc_sidecar_handshakes_total', { result: 'failure' });
    const reloadsBefore = await sidecar.metrics.value('dc_sidecar_credential_reloads_total', { result: 'success' });
    // New connections come from another process, so client handshakes do not share the sidecar's thread.
    const generator = fork(join(dirname(fileURLToPath(import.meta.url)), '..', 'unit', 'sidecar', 'dc-load-generator.js'), [String(sidecar.port), caFile, '8']);
    const messages: unknown[] = [];
    generator.on('message', (m) => messages.push(m));
    await until('the load generator', () => messages.includes('ready'));
    let stop = false;
    const errors: string[] = [];
    let requests = 0;
    const longLived = async (i: number): Promise<void> => {
      const s = await dcClient(sidecar.port, pki);
      try {
        while (!stop) {
          const body = await request(s, `/long/${i}`, String(requests));
          if (!body.startsWith(`POST /long/${i} `)) errors.push(`long-lived ${i}: bad response ${body}`);
          requests++;
          await new Promise((r) => setTimeout(r, 25));
        }
      } catch (err) {
        errors.push(`long-lived ${i}: ${err instanceof Error ? err.message : String(err)}`);
      } finally {
        s.destroy();
      }
    };
    const workers = Array.from({ length: 3 }, (_, i) => longLived(i));
    for (let swap = 0; swap < 50; swap++) {
      await volume.write(sets[swap % sets.length]!);
      await new Promise((r) => setTimeout(r, 80));
    }
    await new Promise((r) => setTimeout(r, 300));
    stop = true;
    generator.send('stop');
    await until('the load report', () => messages.length === 2, 30_000);
    await Promise.all(workers);
    const report = messages[1] as LoadReport;
    const reloads = (await sidecar.metrics.value('dc_sidecar_credential_reloads_total', { result: 'success' })) - reloadsBefore;
    console.log(
      `rotation under load: ${report.handshakes} new handshakes in ${report.seconds.toFixed(1)} s (${(report.handshakes / report.seconds).toFixed(0)}/s) from a separate process, ` +
        `${requests} requests on 3 long-lived connections, 50 swaps, ${reloads} reloads, ${report.expiries.length} distinct DCs served`,
    );
    assert.deepEqual(errors, []);
    assert.equal(report.failures, 0, `failed handshakes: ${report.errors.join('; ')}`);
    assert.equal(report.withoutDc, 0, 'every new handshake got a DC');
    assert.equal(await sidecar.metrics.value('dc_sidecar_handshakes_total', { result: 'failure' }), failuresBefore);
    assert.ok(reloads >= 25, `${reloads} reloads for 50 swaps`);
    assert.ok(report.expiries.length >= 2, 'new handshakes saw the rotated credentials');
    assert.ok(report.handshakes > 50 && requests > 20);
  });
});

void describe('dc-operator sidecar with --alpn', { timeout: 60_000 }, () => {
  let pki: TestPki;
  let work: string;
  let caFile: string;
  let app: { server: Server; port: number };
  let sidecar: RunningSidecar;

  before(async () => {
    pki = await makePki('ecdsa-p256');
    work = await mkdtemp(join(tmpdir(), 'dc-sidecar-it-'));
    caFile = join(work, 'ca.crt');
    await writeFile(caFile, pki.ca.pem);
    const volume = new KubeletVolume(join(work, 'credentials'));
    await volume.write(await credentialFiles(pki, { algorithms: ['ed25519'], certificateKey: true }));
    app = await startApplication();
    sidecar = await startSidecar(volume.dir, app.port, captureLog(), { alpn: 'http/1.1' });
  });

  after(async () => {
    await sidecar?.close();
    app?.server.closeAllConnections();
    app?.server.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  void it('negotiates ALPN on our stack (DC clients) and on node:tls (curl)', async () => {
    const s = await new Promise<TLSSocket>((resolve, reject) => {
      const c = connect(
        { host: '127.0.0.1', port: sidecar.port, servername: 'localhost', ca: [pki.ca.pem], alpnProtocols: ['h2', 'http/1.1'], serverCredentialHooks: delegatedCredentialPeerHooks({ peer: 'server' }) },
        () => resolve(c),
      );
      c.once('error', reject);
    });
    try {
      assert.equal(s.alpnProtocol, 'http/1.1');
      assert.ok(dcDetails(s));
      assert.equal(await request(s, '/alpn'), 'POST /alpn ');
    } finally {
      s.destroy();
    }
    const r = await runTool('curl', ['-sS', '-v', '--max-time', '10', '--cacert', caFile, '--resolve', `localhost:${sidecar.port}:127.0.0.1`, `https://localhost:${sidecar.port}/curl-alpn`], '');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /ALPN.*accepted.*http\/1\.1|ALPN, server accepted to use http\/1\.1/);
    assert.equal(r.stdout, 'GET /curl-alpn ');
  });
});

void describe('dc-operator sidecar without the certificate key', { timeout: 120_000 }, () => {
  let pki: TestPki;
  let work: string;
  let caFile: string;
  let app: { server: Server; port: number };
  let sidecar: RunningSidecar;

  before(async () => {
    pki = await makePki('ecdsa-p256');
    work = await mkdtemp(join(tmpdir(), 'dc-sidecar-it-'));
    caFile = join(work, 'ca.crt');
    await writeFile(caFile, pki.ca.pem);
    const volume = new KubeletVolume(join(work, 'credentials'));
    await volume.write(await credentialFiles(pki, { algorithms: ['ed25519'] }));
    app = await startApplication();
    sidecar = await startSidecar(volume.dir, app.port, captureLog(), { 'drain-timeout': '3s' });
  });

  after(async () => {
    await sidecar?.close();
    app?.server.closeAllConnections();
    app?.server.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  void it('refuses a TLS 1.2-only client with a protocol_version alert', async () => {
    const r = await runTool('openssl', ['s_client', '-connect', `127.0.0.1:${sidecar.port}`, '-CAfile', caFile, '-tls1_2', '-brief'], '');
    assert.notEqual(r.code, 0);
    assert.match(r.stdout + r.stderr, /alert protocol version/);
  });

  void it('refuses a TLS 1.3 client without DC support with a handshake_failure alert', async () => {
    const r = await runTool('openssl', ['s_client', '-connect', `127.0.0.1:${sidecar.port}`, '-CAfile', caFile, '-tls1_3', '-brief'], '');
    assert.notEqual(r.code, 0);
    assert.match(r.stdout + r.stderr, /alert handshake failure/);
  });

  void it('drains on SIGTERM: not ready, no new connections, open ones finish', async () => {
    const s = await dcClient(sidecar.port, pki);
    assert.equal(await request(s, '/before-drain'), 'POST /before-drain ');
    const drained = sidecar.drain();
    assert.equal(sidecar.status.current.phase, 'draining');
    await assert.rejects(dcClient(sidecar.port, pki), /ECONNREFUSED/);
    assert.equal(await request(s, '/during-drain', 'ok'), 'POST /during-drain ok');
    s.end();
    const result = await drained;
    assert.deepEqual(result, { finished: 1, cut: 0 });
  });
});
