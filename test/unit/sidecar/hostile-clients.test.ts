/**
 * Hostile clients against the whole sidecar (runSidecar: credential volume, listener, /healthz)
 * over loopback sockets: what they send must not stall the event loop that serves everyone
 * else.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect as netConnect, createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runSidecar, type RunningSidecar } from '../../../src/sidecar/main.js';
import { AlertDescription } from '../../../src/tls/alerts.js';
import { ContentType, HandshakeType } from '../../../src/tls/constants.js';
import { delegatedCredentialPeerHooks } from '../../../src/tls/delegated/index.js';
import { connect } from '../../../src/tls/socket.js';
import { credentialFiles, loopbackSidecarConfig, makePki, type TestPki } from './fixtures.js';
import { KubeletVolume } from './kubelet-volume.js';

const quiet = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} };

/** The figure: what a legitimate client and a health probe must still get under attack. */
const RESPONSIVE_MS = 100;

/** A ClientHello header declaring `bodyLength` bytes, then that many zero bytes, one byte per handshake record. */
function oneByteRecords(bodyLength: number): Buffer {
  const out = Buffer.alloc((4 + bodyLength) * 6);
  const header = [HandshakeType.client_hello, bodyLength >>> 16, (bodyLength >>> 8) & 0xff, bodyLength & 0xff];
  for (let i = 0; i < 4 + bodyLength; i++) out.set([ContentType.handshake, 3, 1, 0, 1, i < 4 ? header[i]! : 0], i * 6);
  return out;
}

void describe('sidecar under hostile ClientHellos', { timeout: 120_000 }, () => {
  let pki: TestPki;
  let work: string;
  let upstream: Server;
  let sidecar: RunningSidecar;

  before(async () => {
    pki = await makePki();
    work = await mkdtemp(join(tmpdir(), 'dc-sidecar-hostile-'));
    const volume = new KubeletVolume(join(work, 'credentials'));
    await volume.write(await credentialFiles(pki, { algorithms: ['ed25519'], certificateKey: true }));
    upstream = createServer((s) => s.on('error', () => {}).resume());
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const config = loopbackSidecarConfig(volume.dir, (upstream.address() as AddressInfo).port);
    sidecar = await runSidecar({ ...config, log: quiet });
  });

  after(async () => {
    await sidecar?.close();
    upstream?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** Milliseconds until /healthz answered 200. */
  async function healthz(): Promise<number> {
    const started = performance.now();
    const res = await fetch(`http://127.0.0.1:${sidecar.metricsPort}/healthz`);
    await res.text();
    assert.equal(res.status, 200);
    return performance.now() - started;
  }

  /** Milliseconds until a delegated-credential handshake through our stack completed. */
  function handshake(): Promise<number> {
    const started = performance.now();
    return new Promise((resolve, reject) => {
      const s = connect(
        { host: '127.0.0.1', port: sidecar.port, servername: 'localhost', ca: [pki.ca.pem], serverCredentialHooks: delegatedCredentialPeerHooks({ peer: 'server' }) },
        () => {
          resolve(performance.now() - started);
          s.destroy();
        },
      );
      s.once('error', reject);
    });
  }

  void it('six clients sending a 64 KiB ClientHello as one-byte records: a legitimate handshake and /healthz still answer within 100 ms', async () => {
    // Warm up (V8 compiles the handshake and fetch paths once), so the timings below measure
    // waiting on the event loop, not first-use compilation.
    for (let i = 0; i < 3; i++) {
      await healthz();
      await handshake();
    }

    // One attack: six sockets, each writing the whole ClientHello as one-byte records; the
    // probes start at once and go on until every attacker was hung up on (at least 3 rounds).
    const attack = oneByteRecords(1 << 16);
    async function underAttack(): Promise<{ answers: Buffer[]; slowest: { healthz: number; handshake: number } }> {
      const answers = Array.from({ length: 6 }, () => {
        const s = netConnect(sidecar.port, '127.0.0.1');
        const received: Buffer[] = [];
        s.on('error', () => {}); // the sidecar hangs up while we are still writing
        s.on('data', (d: Buffer) => received.push(d));
        s.write(attack);
        return new Promise<Buffer>((resolve) => s.once('close', () => resolve(Buffer.concat(received))));
      });
      let closed = 0;
      for (const a of answers) void a.then(() => closed++);
      const slowest = { healthz: 0, handshake: 0 };
      for (let round = 0; round < 3 || (closed < answers.length && round < 50); round++) {
        const [h, t] = await Promise.all([healthz(), handshake()]);
        slowest.healthz = Math.max(slowest.healthz, h);
        slowest.handshake = Math.max(slowest.handshake, t);
      }
      return { answers: await Promise.all(answers), slowest };
    }

    // This machine is shared: a probe can miss 100 ms because the OS ran something else. Up to
    // three attacks are made and one must pass; the quadratic peeker stalled the loop for
    // seconds in every one.
    const attempts: Array<{ healthz: number; handshake: number }> = [];
    let answers: Buffer[] = [];
    while (attempts.length < 3) {
      const a = await underAttack();
      attempts.push(a.slowest);
      answers = a.answers;
      if (a.slowest.healthz < RESPONSIVE_MS && a.slowest.handshake < RESPONSIVE_MS) break;
    }
    const last = attempts[attempts.length - 1]!;
    const report = attempts.map((t) => `/healthz ${t.healthz.toFixed(1)} ms, handshake ${t.handshake.toFixed(1)} ms`).join('; ');
    assert.ok(last.healthz < RESPONSIVE_MS && last.handshake < RESPONSIVE_MS, `slowest answers under attack: ${report}`);

    // Every attacker was refused with a plaintext unexpected_message alert (too many records).
    for (const answer of answers) {
      assert.deepEqual([...answer], [ContentType.alert, 3, 3, 0, 2, 2, AlertDescription.unexpected_message]);
    }
    assert.equal(await sidecar.metrics.value('dc_sidecar_refused_connections_total', { reason: 'bad-hello' }), 6 * attempts.length);
  });
});
