import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, Server as NetServer, Socket, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { ConnectionTracker } from '../../../src/net/connection-tracker.js';
import { runSidecar, type RunSidecarOptions } from '../../../src/sidecar/main.js';
import { MaterialStore, validateServingMaterial, type ServingMaterial } from '../../../src/sidecar/material.js';
import { SidecarMetrics } from '../../../src/sidecar/metrics.js';
import { createOursEngine } from '../../../src/sidecar/ours-engine.js';
import { SidecarStatus } from '../../../src/sidecar/status.js';
import type { TerminatorOptions } from '../../../src/sidecar/terminator.js';
import { selfSignedCertificate, warmUpConnections, warmUpPaths, warmUpServerName, warmUpSidecar } from '../../../src/sidecar/warm-up.js';
import type { SignatureScheme } from '../../../src/tls/constants.js';
import { delegatedCredentialPeerHooks } from '../../../src/tls/delegated/index.js';
import { connect as oursConnect } from '../../../src/tls/socket.js';
import type { Signer } from '../../../src/tls/signer.js';
import { credentialFiles, loopbackSidecarConfig, makePki, type TestPki } from './fixtures.js';
import { KubeletVolume } from './kubelet-volume.js';

function material(files: Record<string, string | Uint8Array>, keylessConfigured = false): ServingMaterial {
  const bytes = Object.fromEntries(Object.entries(files).map(([k, v]) => [k, typeof v === 'string' ? new TextEncoder().encode(v) : v]));
  return validateServingMaterial('test', bytes, { keylessConfigured });
}

/** What runSidecar hands warmUpConnections, for `store`, with an application port nothing listens on. */
function terminatorFor(store: MaterialStore, log: TerminatorOptions['log'], certificateEngine: 'ours' | 'node' = 'node'): TerminatorOptions {
  return {
    store,
    metrics: new SidecarMetrics(store, new SidecarStatus()),
    tracker: new ConnectionTracker(100, 0),
    policy: { certificateEngine, keylessFor: undefined },
    upstream: { host: '127.0.0.1', port: 9, idleTimeoutMs: 300_000 },
    handshakeTimeoutMs: 5000,
    ours: createOursEngine({ store, keylessFor: undefined }),
    log,
  };
}

void describe('sidecar warm-up', () => {
  let pki: TestPki;
  let dcOnly: ServingMaterial;
  let dcAndKey: ServingMaterial;
  let certificateOnly: ServingMaterial;
  before(async () => {
    pki = await makePki('ecdsa-p256');
    dcOnly = material(await credentialFiles(pki));
    dcAndKey = material({ ...(await credentialFiles(pki, { certificateKey: true })), fallback: 'CertificateKey' });
    certificateOnly = material({ 'tls.crt': pki.leaf.pem }, true);
  });

  void it('warms the paths of our stack that this bundle and configuration serve', () => {
    const table: Array<[string, ServingMaterial, 'ours' | 'node', boolean, string[]]> = [
      ['DCs only', dcOnly, 'node', false, ['dc']],
      ['DCs and tls.key on node:tls (the default engine): node:tls needs none', dcAndKey, 'node', false, ['dc']],
      ['DCs and tls.key on our engine', dcAndKey, 'ours', false, ['dc', 'certificate']],
      ['DCs and keyless', dcOnly, 'node', true, ['dc', 'keyless']],
      ['tls.key wins over keyless, as in the router', dcAndKey, 'node', true, ['dc']],
      ['the certificate alone, through keyless', certificateOnly, 'node', true, ['keyless']],
    ];
    for (const [name, m, engine, keyless, paths] of table) assert.deepEqual(warmUpPaths(m, engine, keyless), paths, name);
  });

  void it('runs the handshakes asked for, shared between the paths, the keyless one with a throwaway key', async () => {
    const r = await warmUpSidecar({ handshakes: 21, material: dcAndKey, certificateEngine: 'ours', keylessConfigured: false, alpnProtocols: ['h2'] });
    assert.deepEqual(r.handshakes, { dc: 11, certificate: 10 });
    assert.deepEqual(r.incomplete, []);
    assert.ok(r.cpuMs > 0 && r.wallMs > 0);
    const k = await warmUpSidecar({ handshakes: 12, material: certificateOnly, certificateEngine: 'node', keylessConfigured: true, alpnProtocols: [] });
    assert.deepEqual(k.handshakes, { keyless: 12 });
    assert.deepEqual(k.incomplete, []);
    assert.deepEqual(k.leftOut, []);
  });

  void it('plays every kind of client real traffic has on the DC path (both shares, x25519, P-256 with AES-256-GCM, ChaCha20, resumption), each sending the certificate\'s name, all served with the DCs', async () => {
    assert.equal(warmUpServerName(dcOnly), 'localhost');
    const wildcard = { ...dcOnly, credentials: { names: { dnsNames: ['*.example.com'], ipAddressBytes: [] } } } as unknown as ServingMaterial;
    assert.equal(warmUpServerName(wildcard), 'warm-up.example.com', 'a wildcard name becomes a name it covers');
    // A name the certificate's own names do not cover would leave the DC path without a warm-up
    // (a DC is chosen only for a covered name): the next name, or none.
    const named = (dnsNames: string[]): ServingMaterial => ({ ...dcOnly, credentials: { names: { dnsNames, ipAddressBytes: [] } } }) as unknown as ServingMaterial;
    assert.equal(warmUpServerName(named(['*.internal', 'localhost'])), 'localhost', 'a one-label wildcard is not matched: the next name');
    assert.equal(warmUpServerName(named(['api-*.example.com'])), undefined, 'a partial wildcard: no name at all');
    // 4 handshakes per batch: the kinds take turns across batches, so 20 reach every kind; a kind
    // the DCs could not serve (or a name they do not cover) would be left out.
    const r = await warmUpSidecar({ handshakes: 20, material: dcOnly, certificateEngine: 'node', keylessConfigured: false, alpnProtocols: ['http/1.1'] });
    assert.deepEqual(r.handshakes, { dc: 20 });
    assert.deepEqual(r.leftOut, []);
    assert.deepEqual(r.incomplete, []);
  });

  void it('warms an Ed25519 certificate through keyless the whole count over TLS 1.3, TLS 1.2 (which cannot serve it) left out after one try', async () => {
    const ed = await makePki('ed25519');
    const r = await warmUpSidecar({ handshakes: 40, material: material({ 'tls.crt': ed.leaf.pem }, true), certificateEngine: 'node', keylessConfigured: true, alpnProtocols: [] });
    assert.deepEqual(r.handshakes, { keyless: 40 });
    assert.deepEqual(r.incomplete, []);
    assert.deepEqual(r.leftOut.map((l) => [l.path, l.kind]), [['keyless', 'tls1.2']], 'tried once, not once per batch');
    // A P-256 one is served over TLS 1.2 too: nothing left out.
    const p256 = await warmUpSidecar({ handshakes: 40, material: certificateOnly, certificateEngine: 'node', keylessConfigured: true, alpnProtocols: [] });
    assert.deepEqual(p256.handshakes, { keyless: 40 });
    assert.deepEqual(p256.leftOut, []);
  });

  void it('stops between batches when the sidecar stops', async () => {
    let batches = 0;
    const r = await warmUpSidecar({ handshakes: 400, material: dcOnly, certificateEngine: 'node', keylessConfigured: false, alpnProtocols: [], stopped: () => ++batches > 2 });
    assert.ok((r.handshakes.dc ?? 0) > 0 && (r.handshakes.dc ?? 0) < 400, `stopped early: ${r.handshakes.dc}`);
  });

  void it('makes a self-signed certificate node:crypto parses and verifies, for each key type a certificate may have', () => {
    for (const [type, options] of [
      ['ec', { namedCurve: 'P-256' }],
      ['ec', { namedCurve: 'P-384' }],
      ['ed25519', {}],
      ['rsa', { modulusLength: 1024 }],
    ] as const) {
      const { privateKey, publicKey } = generateKeyPairSync(type as 'ec', options as { namedCurve: string });
      const cert = new X509Certificate(selfSignedCertificate(privateKey, publicKey));
      assert.ok(cert.verify(publicKey), `${type} ${JSON.stringify(options)}`);
      assert.ok(cert.publicKey.equals(publicKey));
      assert.ok(new Date(cert.validTo).getTime() > Date.now());
    }
  });

  void it('warmUpConnections: binds 127.0.0.1 only, sends nothing to the configured upstream, and has closed every listener and socket when it resolves', async () => {
    // The configured application: the warm-up must never connect to it.
    let appConnections = 0;
    const app = createServer((s) => {
      appConnections++;
      s.destroy();
    });
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    const store = new MaterialStore();
    store.replace(dcOnly);
    const quiet = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} };
    // Every server the warm-up starts, seen through node:net's listen.
    const bound: Array<{ server: NetServer; address: string | undefined }> = [];
    const listen = NetServer.prototype.listen;
    NetServer.prototype.listen = function (this: NetServer, ...args: unknown[]) {
      const entry: { server: NetServer; address: string | undefined } = { server: this, address: undefined };
      bound.push(entry);
      this.once('listening', () => (entry.address = (this.address() as AddressInfo).address));
      return (listen as (...a: unknown[]) => NetServer).apply(this, args);
    } as typeof listen;
    const tcpHandles = (): number => process.getActiveResourcesInfo().filter((r) => r.startsWith('TCP')).length;
    const handlesBefore = tcpHandles();
    try {
      const r = await warmUpConnections(9, {
        store,
        metrics: new SidecarMetrics(store, new SidecarStatus()),
        tracker: new ConnectionTracker(100, 0),
        policy: { certificateEngine: 'node', keylessFor: undefined },
        upstream: { host: '127.0.0.1', port: (app.address() as AddressInfo).port, idleTimeoutMs: 10_000 },
        handshakeTimeoutMs: 5000,
        ours: createOursEngine({ store, keylessFor: undefined }),
        log: quiet,
      });
      assert.equal(r.connections, 9);
      assert.equal(r.failed, 0);
      assert.ok(r.cpuMs > 0 && r.wallMs > 0);
      assert.equal(bound.length, 2, 'its listener and the stand-in application');
      for (const b of bound) {
        assert.equal(b.address, '127.0.0.1');
        assert.equal(b.server.listening, false, 'closed before it resolved');
      }
      assert.equal(appConnections, 0, 'the configured upstream was never connected to');
      // Closed handles leave libuv's list a loop turn or two after their close callbacks.
      for (let i = 0; i < 100 && tcpHandles() > handlesBefore; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(tcpHandles(), handlesBefore, `no socket or listener of the warm-up is left: ${process.getActiveResourcesInfo().join(', ')}`);
    } finally {
      NetServer.prototype.listen = listen;
      await new Promise<void>((r) => app.close(() => r()));
    }
  });

  void it('warmUpConnections on a host without IPv4 loopback: falls back to ::1, still loopback only', async () => {
    const store = new MaterialStore();
    store.replace(dcOnly);
    const quiet = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} };
    // 127.0.0.1 is not there: node:net's listen fails as on an IPv6-only host.
    const addresses: string[] = [];
    const listen = NetServer.prototype.listen;
    NetServer.prototype.listen = function (this: NetServer, ...args: unknown[]) {
      const host = typeof args[0] === 'object' ? (args[0] as { host?: string }).host : args[1];
      if (host === '127.0.0.1') {
        const err = Object.assign(new Error('listen EADDRNOTAVAIL: address not available 127.0.0.1'), { code: 'EADDRNOTAVAIL' });
        process.nextTick(() => this.emit('error', err));
        return this;
      }
      this.once('listening', () => addresses.push((this.address() as AddressInfo).address));
      return (listen as (...a: unknown[]) => NetServer).apply(this, args);
    } as typeof listen;
    try {
      const r = await warmUpConnections(4, terminatorFor(store, quiet));
      assert.deepEqual([r.connections, r.failed], [4, 0]);
      assert.deepEqual(addresses, ['::1', '::1'], 'the stand-in application and the listener');
    } finally {
      NetServer.prototype.listen = listen;
    }
  });

  void it('warmUpConnections with a failed connection: says why, logs nothing above debug, and every socket is closed when it resolves', async () => {
    const store = new MaterialStore();
    store.replace(dcOnly);
    const logged: string[] = [];
    const log = { error: (m: string) => logged.push(`error ${m}`), warn: (m: string) => logged.push(`warn ${m}`), info: (m: string) => logged.push(`info ${m}`), debug: () => {} };
    // The stand-in application (the first server the warm-up starts) made to accept and never
    // echo: every client waits out its 2 s deadline.
    const held: Socket[] = [];
    const listen = NetServer.prototype.listen;
    let servers = 0;
    NetServer.prototype.listen = function (this: NetServer, ...args: unknown[]) {
      if (servers++ === 0) {
        this.on('connection', (s: Socket) => {
          s.unpipe(s);
          s.pause();
          held.push(s);
        });
      }
      return (listen as (...a: unknown[]) => NetServer).apply(this, args);
    } as typeof listen;
    try {
      const r = await warmUpConnections(4, terminatorFor(store, log));
      assert.equal(r.connections, 0);
      assert.ok(r.failed >= 1);
      assert.equal(r.firstFailure, 'no echo within 2000 ms');
      assert.deepEqual(logged, [], 'the warm-up listener logs at debug only');
      assert.ok(held.length > 0);
      const open = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().filter((h): h is Socket => h instanceof Socket && !h.destroyed && h.remotePort !== undefined);
      assert.deepEqual(open.map((s) => `${s.localPort}->${s.remotePort}`), [], 'no socket of the warm-up (client, proxied, application side) is open');
    } finally {
      NetServer.prototype.listen = listen;
      for (const s of held) s.destroy();
    }
  });

  void it('warmUpConnections does nothing for a bundle without DCs (a non-DC client would reach the key server or node:tls)', async () => {
    const store = new MaterialStore();
    store.replace(certificateOnly);
    const quiet = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} };
    const r = await warmUpConnections(5, {
      store,
      metrics: new SidecarMetrics(store, new SidecarStatus()),
      tracker: new ConnectionTracker(100, 0),
      policy: { certificateEngine: 'node', keylessFor: () => undefined },
      upstream: { host: '127.0.0.1', port: 9, idleTimeoutMs: 10_000 },
      handshakeTimeoutMs: 5000,
      ours: createOursEngine({ store, keylessFor: () => undefined }),
      log: quiet,
    });
    assert.equal(r.connections, 0);
  });

  void describe('an RSA certificate (its DCs signed with rsa_pss_rsae_sha256)', () => {
    let rsa: TestPki;
    before(async () => {
      rsa = await makePki('rsa-2048');
    });

    void it('warms DC clients with the DCs, with a wrong tls.key in the bundle: the certificate key never signs a warm-up handshake', async () => {
      const right = material({ ...(await credentialFiles(rsa, { certificateKey: true })), fallback: 'CertificateKey' });
      // The certificate key replaced with another RSA key: a handshake it signed would fail.
      const wrong: ServingMaterial = { ...right, certificateKey: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey };
      const r = await warmUpSidecar({ handshakes: 12, material: wrong, certificateEngine: 'node', keylessConfigured: false, alpnProtocols: [] });
      assert.deepEqual(r.handshakes, { dc: 12 });
      assert.deepEqual(r.incomplete, []);
      const store = new MaterialStore();
      store.replace(wrong);
      const quiet = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} };
      const c = await warmUpConnections(5, terminatorFor(store, quiet, 'ours'));
      assert.deepEqual([c.connections, c.failed], [5, 0]);
    });

    void it('with keyless: both warm-ups serve DC clients with the DCs and the key server is asked 0 times', async () => {
      const work = await mkdtemp(join(tmpdir(), 'sidecar-warm-up-rsa-'));
      const app = createServer((s) => s.destroy());
      await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
      let asked = 0;
      const keyServer: Signer = {
        schemes: [0x0804 as SignatureScheme],
        sign: () => {
          asked++;
          return Promise.reject(new Error('the key server must not be asked during warm-up'));
        },
      };
      try {
        const volume = new KubeletVolume(join(work, 'v'));
        await volume.write(await credentialFiles(rsa));
        const lines: Array<{ message: string; meta?: Record<string, unknown> }> = [];
        const line = (message: string, meta?: Record<string, unknown>): void => void lines.push({ message, ...(meta ? { meta } : {}) });
        const log = { error: line, warn: line, info: line, debug: () => {} };
        const config = loopbackSidecarConfig(volume.dir, (app.address() as AddressInfo).port, { 'report-interval': '0', 'warm-up-handshakes': '10', 'warm-up-connections': '6' });
        const sidecar = await runSidecar({ ...config, log, keylessSigner: keyServer });
        await sidecar.close();
        const said = lines.map((l) => `${l.message} ${JSON.stringify(l.meta ?? {})}`).join(' | ');
        assert.equal(asked, 0, said);
        const done = lines.find((l) => l.message === 'warm-up done');
        assert.deepEqual(done?.meta?.['handshakes'], { dc: 5, keyless: 5 }, said);
        assert.equal(done?.meta?.['incomplete'], undefined, said);
        const connections = lines.find((l) => l.message === 'connection warm-up done');
        assert.equal(connections?.meta?.['connections'], 6, said);
        assert.equal(connections?.meta?.['failed'], undefined, said);
      } finally {
        await new Promise<void>((r) => app.close(() => r()));
        await rm(work, { recursive: true, force: true });
      }
    });
  });

  void describe('wired into the sidecar', () => {
    let work: string;
    let upstream: Server;
    let upstreamConnections = 0;
    before(async () => {
      work = await mkdtemp(join(tmpdir(), 'sidecar-warm-up-'));
      upstream = createServer((s) => {
        upstreamConnections++;
        s.on('error', () => {}); // a client that leaves without sending anything has its application connection reset
        s.end();
      });
      await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    });
    after(async () => {
      upstream.close();
      await rm(work, { recursive: true, force: true });
    });

    let volumes = 0;
    async function start(
      warmUp: string,
      signer: Signer,
      extra: Record<string, string> = {},
      options: Pick<RunSidecarOptions, 'connectionWarmUp'> = {},
    ): Promise<{ lines: Array<{ level: string; message: string; meta?: Record<string, unknown> }>; port: number; metrics: () => Promise<string>; stop: () => Promise<void> }> {
      const volume = new KubeletVolume(join(work, `v${volumes++}`));
      await volume.write(await credentialFiles(pki));
      const lines: Array<{ level: string; message: string; meta?: Record<string, unknown> }> = [];
      const line = (level: string) => (message: string, meta?: Record<string, unknown>) => void lines.push({ level, message, ...(meta ? { meta } : {}) });
      const log = { error: line('error'), warn: line('warn'), debug: () => {}, info: line('info') };
      const config = loopbackSidecarConfig(volume.dir, (upstream.address() as AddressInfo).port, { 'report-interval': '0', 'warm-up-handshakes': warmUp, 'warm-up-connections': '0', ...extra });
      const sidecar = await runSidecar({ ...config, log, keylessSigner: signer, ...options });
      return { lines, port: sidecar.port, metrics: () => sidecar.metrics.registry.metrics(), stop: () => sidecar.close() };
    }

    /** A keyless signer that counts what it is asked: warm-up must never ask it. */
    function countingSigner(): Signer & { calls: number } {
      return { schemes: [0x0403 as SignatureScheme], calls: 0, sign() { this.calls++; return Promise.reject(new Error('the key server must not be asked during warm-up')); } };
    }

    void it('warms the DC and keyless paths before the sidecar listens, and never asks the keyless signer', async () => {
      const signer = countingSigner();
      const s = await start('30', signer);
      try {
        const messages = s.lines.map((l) => l.message);
        const done = s.lines.find((l) => l.message === 'warm-up done');
        assert.ok(done, `warm-up done logged: ${messages.join(' | ')}`);
        assert.ok(messages.indexOf('warm-up done') < messages.indexOf('sidecar listening'), 'the ports open after the warm-up');
        assert.deepEqual(done.meta?.['handshakes'], { dc: 15, keyless: 15 });
        assert.equal(signer.calls, 0);
      } finally {
        await s.stop();
      }
    });

    void it('--warm-up-connections: DC clients through a listener of its own before the ports open, counted nowhere the operator sees, the key server never asked', async () => {
      const signer = countingSigner();
      const s = await start('0', signer, { 'warm-up-connections': '6' });
      try {
        const messages = s.lines.map((l) => l.message);
        const done = s.lines.find((l) => l.message === 'connection warm-up done');
        assert.ok(done, `connection warm-up done logged: ${messages.join(' | ')}`);
        assert.equal(done.meta?.['connections'], 6);
        assert.equal(done.meta?.['failed'], undefined);
        assert.ok(messages.indexOf('connection warm-up done') < messages.indexOf('sidecar listening'), 'the ports open after it');
        assert.equal(signer.calls, 0);
        assert.doesNotMatch(await s.metrics(), /^dc_sidecar_handshakes_total\{/m, 'the sidecar\'s own metrics count no warm-up handshake');
        assert.equal(upstreamConnections, 0, 'the configured upstream got nothing from the warm-up');
      } finally {
        await s.stop();
      }
    });

    void it('a loopback warm-up that fails or throws is logged and the sidecar starts and serves anyway', async () => {
      for (const failing of [
        () => Promise.reject(new Error('warm-up listener refused')),
        () => Promise.resolve({ connections: 2, failed: 1, firstFailure: 'no echo within 2000 ms', cpuMs: 1, wallMs: 1 }),
      ]) {
        const s = await start('0', countingSigner(), { 'warm-up-connections': '5' }, { connectionWarmUp: failing });
        try {
          const messages = s.lines.map((l) => `${l.level} ${l.message}`);
          assert.ok(messages.includes('info sidecar listening'), messages.join(' | '));
          const said = s.lines.find((l) => l.message.startsWith('connection warm-up'));
          assert.ok(said, messages.join(' | '));
          assert.equal(said.level, 'warn');
          if (said.message.startsWith('connection warm-up failed')) assert.equal(said.meta?.['error'], 'warm-up listener refused');
          else assert.deepEqual([said.meta?.['failed'], said.meta?.['firstFailure']], [1, 'no echo within 2000 ms']);
          // It serves: a DC client completes a handshake on the real port.
          const served = await new Promise<string | undefined>((resolve, reject) => {
            const c = oursConnect({ host: '127.0.0.1', port: s.port, servername: 'localhost', ca: [pki.ca.pem], serverCredentialHooks: delegatedCredentialPeerHooks({ peer: 'server' }) });
            c.once('secureConnect', () => {
              resolve(c.handshakeMode?.server.authentication);
              c.destroy();
            });
            c.once('error', reject);
          });
          assert.equal(served, 'delegated-credential');
        } finally {
          await s.stop();
        }
      }
    });

    void it('SIGTERM during the warm-ups: the `dc-operator sidecar` process stops them and exits 0 promptly, never ready', async () => {
      const volume = new KubeletVolume(join(work, `v${volumes++}`));
      await volume.write(await credentialFiles(pki));
      const cli = fileURLToPath(new URL('../../../src/cli/dc-operator.js', import.meta.url));
      // A long loopback warm-up: 5000 connections take seconds (up to its 10 s budget).
      const child = spawn(process.execPath, [cli, 'sidecar', '--dc-dir', volume.dir, '--address', '127.0.0.1', '--port', '0', '--metrics-address', '127.0.0.1', '--metrics-port', '0', '--upstream', String((upstream.address() as AddressInfo).port), '--warm-up-handshakes', '0', '--warm-up-connections', '5000'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
      try {
        // The first line (the fallback statement) comes just before the warm-ups start.
        for (let i = 0; i < 300 && out === ''; i++) await new Promise((r) => setTimeout(r, 20));
        assert.notEqual(out, '', 'the sidecar logged its start');
        await new Promise((r) => setTimeout(r, 200));
        const sent = performance.now();
        child.kill('SIGTERM');
        const timeout = setTimeout(() => child.kill('SIGKILL'), 5000);
        const { code, signal } = await exited;
        clearTimeout(timeout);
        assert.deepEqual({ code, signal }, { code: 0, signal: null }, out);
        assert.ok(performance.now() - sent < 3000, `exited within 3 s: ${Math.round(performance.now() - sent)} ms`);
        assert.doesNotMatch(out, /sidecar listening/, 'it never became ready');
        assert.match(out, /stopped during start-up/);
      } finally {
        child.kill('SIGKILL');
      }
    });

    void it('does no warm-up with --warm-up-handshakes 0', async () => {
      const s = await start('0', countingSigner());
      try {
        const listening = s.lines.find((l) => l.message === 'sidecar listening');
        assert.ok(listening);
        // The record path it runs on is in the start-up line: the addon, or node:crypto and why.
        assert.match(String(listening.meta?.['recordAead']), /^(native|node:crypto \(.+\))$/);
        assert.equal(s.lines.filter((l) => l.message === 'warm-up done' || l.message === 'connection warm-up done').length, 0);
      } finally {
        await s.stop();
      }
    });
  });
});
