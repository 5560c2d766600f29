/**
 * The listener end to end over loopback with in-memory material: TLS half-close and
 * backpressure through both engines, the connection limits (total, per source: 127.0.0.x are
 * distinct sources on loopback), the ClientHello deadline and non-TLS clients.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { connect as netConnect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { connect as nodeTlsConnect } from 'node:tls';
import type { Duplex } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { MaterialStore } from '../../../src/sidecar/material.js';
import { SidecarMetrics } from '../../../src/sidecar/metrics.js';
import { createOursEngine } from '../../../src/sidecar/ours-engine.js';
import { ConnectionTracker } from '../../../src/net/connection-tracker.js';
import { LOG_LINES_PER_WINDOW } from '../../../src/net/log-limiter.js';
import { SidecarStatus } from '../../../src/sidecar/status.js';
import { listen, type Listener, type TerminatorOptions } from '../../../src/sidecar/terminator.js';
import { delegatedCredentialPeerHooks } from '../../../src/tls/delegated/index.js';
import { connect as oursConnect } from '../../../src/tls/socket.js';
import { ClientConnection } from '../../../src/tls/client.js';
import type { Progress } from '../../../src/tls/connection.js';
import { NamedGroup, ProtocolVersion, SignatureScheme } from '../../../src/tls/constants.js';
import { encodeHandshake } from '../../../src/tls/messages/handshake.js';
import { writeClientHello } from '../../../src/tls/messages/client-hello.js';
import { credentialFiles, makePki, memoryStore, type TestPki } from './fixtures.js';

const quiet = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} };

interface Rig {
  listener: Listener;
  metrics: SidecarMetrics;
  tracker: ConnectionTracker;
}

const closers: Array<() => void> = [];
after(() => {
  for (const c of closers) c();
});

async function upstreamServer(handler: (s: Socket) => void): Promise<number> {
  const server: Server = createServer({ allowHalfOpen: true }, (s) => {
    closers.push(() => s.destroy());
    // A client that leaves without sending anything has its application connection reset.
    s.on('error', () => {});
    handler(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => server.close());
  return (server.address() as AddressInfo).port;
}

function readAll(s: Duplex): Promise<Buffer> {
  const chunks: Buffer[] = [];
  return new Promise((resolve, reject) => {
    s.on('data', (c: Buffer) => chunks.push(c));
    s.once('end', () => resolve(Buffer.concat(chunks)));
    s.once('error', reject);
  });
}

/**
 * After 700 ms of `reader` reading nothing, less than half of `payload` was written towards it
 * (kernel buffers of two loopback connections plus the sidecar's buffers: a few MiB); then it
 * reads all of it, intact.
 */
async function boundedThenWhole(reader: Duplex, payload: Buffer, written: () => number, writer: string): Promise<void> {
  await new Promise((res) => setTimeout(res, 700));
  assert.ok(written() < payload.length / 2, `${writer} wrote ${written()} of ${payload.length} bytes to a reader that reads nothing`);
  const got = readAll(reader);
  reader.resume();
  const body = await got;
  assert.equal(body.length, payload.length);
  assert.ok(body.equals(payload));
}

void describe('sidecar listener', () => {
  let pki: TestPki;
  let store: MaterialStore;

  before(async () => {
    pki = await makePki();
    store = memoryStore(await credentialFiles(pki, { algorithms: ['ed25519'], certificateKey: true }));
  });

  async function rig(
    upstreamPort: number,
    opts: { limit?: number; perSource?: number; handshakeTimeoutMs?: number; engine?: 'ours' | 'node'; log?: TerminatorOptions['log'] } = {},
  ): Promise<Rig> {
    const metrics = new SidecarMetrics(store, new SidecarStatus());
    const tracker = new ConnectionTracker(opts.limit ?? 100, opts.perSource ?? 0);
    const listener = await listen('127.0.0.1', 0, {
      store,
      metrics,
      tracker,
      policy: { certificateEngine: opts.engine ?? 'node', keylessFor: undefined },
      upstream: { host: '127.0.0.1', port: upstreamPort, idleTimeoutMs: 10_000 },
      handshakeTimeoutMs: opts.handshakeTimeoutMs ?? 5000,
      ours: createOursEngine({ store, keylessFor: undefined }),
      log: opts.log ?? quiet,
    });
    closers.push(() => {
      listener.stopAccepting();
      void tracker.drain(new Date());
    });
    return { listener, metrics, tracker };
  }

  /** The application replies only after the client half-closed: "<n> bytes". */
  const replyAfterEnd = (s: Socket): void => {
    void readAll(s).then((body) => s.end(`${body.length} bytes ${createHash('sha256').update(body).digest('hex').slice(0, 16)}`));
  };

  void it('carries a half-close through our stack: close_notify reaches the app as FIN, and the reply still arrives', async () => {
    const r = await rig(await upstreamServer(replyAfterEnd));
    const s = oursConnect({ host: '127.0.0.1', port: r.listener.port, servername: 'localhost', ca: [pki.ca.pem], serverCredentialHooks: delegatedCredentialPeerHooks({ peer: 'server' }) });
    await new Promise<void>((resolve, reject) => {
      s.once('secureConnect', () => resolve());
      s.once('error', reject);
    });
    assert.equal(s.handshakeMode?.server.authentication, 'delegated-credential');
    const body = randomBytes(200_000);
    const reply = readAll(s);
    s.end(body);
    assert.equal((await reply).toString(), `200000 bytes ${createHash('sha256').update(body).digest('hex').slice(0, 16)}`);
  });

  void it('carries a half-close through node:tls for a client without DC support', async () => {
    const r = await rig(await upstreamServer(replyAfterEnd));
    const s = nodeTlsConnect({ host: '127.0.0.1', port: r.listener.port, servername: 'localhost', ca: pki.ca.pem });
    await new Promise<void>((resolve, reject) => {
      s.once('secureConnect', () => resolve());
      s.once('error', reject);
    });
    const reply = readAll(s);
    s.end(Buffer.alloc(1000, 1));
    assert.match((await reply).toString(), /^1000 bytes /);
    assert.equal(await r.metrics.value('dc_sidecar_handshakes_total', { mode: 'certificate', engine: 'node', result: 'success' }), 1);
  });

  void it('applies backpressure through our stack: an app writing to a client that does not read is paused, and nothing is lost', async () => {
    const total = 24 * 1024 * 1024;
    const payload = randomBytes(total);
    let written = 0;
    const r = await rig(
      await upstreamServer((s) => {
        const pump = (): void => {
          while (written < total) {
            const ok = s.write(payload.subarray(written, written + 65536));
            written += 65536;
            if (!ok) {
              s.once('drain', pump);
              return;
            }
          }
          s.end();
        };
        pump();
      }),
    );
    const s = oursConnect({ host: '127.0.0.1', port: r.listener.port, servername: 'localhost', ca: [pki.ca.pem], serverCredentialHooks: delegatedCredentialPeerHooks({ peer: 'server' }) });
    await new Promise<void>((resolve, reject) => {
      s.once('secureConnect', () => resolve());
      s.once('error', reject);
    });
    s.pause();
    await boundedThenWhole(s, payload, () => written, 'the app');
  });

  void it('keeps concurrent downloads through our stack apart (the application is read into one shared buffer)', async () => {
    const size = 3 * 1024 * 1024 + 777;
    const payloads = [randomBytes(size), randomBytes(size), randomBytes(size)];
    let next = 0;
    const r = await rig(
      await upstreamServer((s) => {
        const payload = payloads[next++]!;
        // Odd-sized writes, so reads of the three connections end at different offsets.
        let at = 0;
        const pump = (): void => {
          while (at < payload.length) {
            const end = Math.min(at + 40_001, payload.length);
            const ok = s.write(payload.subarray(at, end));
            at = end;
            if (!ok) return void s.once('drain', pump);
          }
          s.end();
        };
        pump();
      }),
    );
    const bodies = await Promise.all(
      payloads.map(async () => {
        const s = oursConnect({ host: '127.0.0.1', port: r.listener.port, servername: 'localhost', ca: [pki.ca.pem], serverCredentialHooks: delegatedCredentialPeerHooks({ peer: 'server' }) });
        await new Promise<void>((resolve, reject) => {
          s.once('secureConnect', () => resolve());
          s.once('error', reject);
        });
        return readAll(s);
      }),
    );
    // Connections reach the application in any order: each body must be one payload, whole.
    const matched = bodies.map((body) => payloads.findIndex((p) => p.equals(body)));
    assert.deepEqual([...matched].sort(), [0, 1, 2]);
  });

  void it('survives clients that reset right after (or during) the handshake', async () => {
    const r = await rig(await upstreamServer(replyAfterEnd), { engine: 'ours' });
    for (let i = 0; i < 30; i++) {
      const s = oursConnect({ host: '127.0.0.1', port: r.listener.port, servername: 'localhost', ca: [pki.ca.pem], serverCredentialHooks: delegatedCredentialPeerHooks({ peer: 'server' }) });
      s.on('error', () => {});
      if (i % 2 === 0) s.once('secureConnect', () => s.socket.resetAndDestroy());
      else s.socket.once('data', () => s.socket.resetAndDestroy()); // mid-handshake
      await new Promise<void>((res) => s.once('close', () => res()));
    }
    const s = nodeTlsConnect({ host: '127.0.0.1', port: r.listener.port, servername: 'localhost', ca: pki.ca.pem });
    await new Promise<void>((res, rej) => {
      s.once('secureConnect', () => res());
      s.once('error', rej);
    });
    const reply = readAll(s);
    s.end('still here');
    assert.match((await reply).toString(), /^10 bytes /);
  });

  void it('reports the open connections: admitted ones until they close, refused ones never', async () => {
    const r = await rig(await upstreamServer((s) => s.resume()), { limit: 2 });
    const open = (): Promise<number> => r.metrics.value('dc_sidecar_open_connections');
    const dial = (): Socket => {
      const s = netConnect({ host: '127.0.0.1', port: r.listener.port });
      s.on('error', () => {});
      return s;
    };
    const held = [dial(), dial()];
    const until = async (want: number): Promise<void> => {
      const deadline = Date.now() + 5000;
      while ((await open()) !== want) {
        assert.ok(Date.now() < deadline, `open connections ${await open()}, waiting for ${want}`);
        await new Promise((res) => setTimeout(res, 10));
      }
    };
    await until(2);
    const refused = dial(); // over the limit: closed at once, never counted as open
    await new Promise<void>((res) => refused.once('close', () => res()));
    assert.equal(await open(), 2);
    held[0]!.destroy();
    await until(1);
    held[1]!.destroy();
    await until(0);
  });

  void it('closes connections over the limit before reading anything', async () => {
    const r = await rig(await upstreamServer((s) => s.resume()), { limit: 1 });
    const first = netConnect({ host: '127.0.0.1', port: r.listener.port });
    await new Promise<void>((res) => first.once('connect', () => res()));
    await new Promise((res) => setTimeout(res, 50));
    const second = netConnect({ host: '127.0.0.1', port: r.listener.port });
    second.on('error', () => {});
    await new Promise<void>((res) => second.once('close', () => res()));
    assert.equal(await r.metrics.value('dc_sidecar_refused_connections_total', { reason: 'limit' }), 1);
    first.destroy();
  });

  void it('closes a source over its per-source limit at once, logs why at info, and still serves another source', { timeout: 15_000 }, async () => {
    const warnings: Array<{ message: string; meta: Record<string, unknown> | undefined }> = [];
    const log = { ...quiet, info: (message: string, meta?: Record<string, unknown>) => void warnings.push({ message, meta }) };
    const r = await rig(await upstreamServer(replyAfterEnd), { perSource: 2, log });
    const from = (localAddress: string): Socket => {
      const s = netConnect({ host: '127.0.0.1', port: r.listener.port, localAddress });
      s.on('error', () => {});
      return s;
    };
    const held = [from('127.0.0.2'), from('127.0.0.2')];
    await Promise.all(held.map((s) => new Promise<void>((res) => s.once('connect', () => res()))));
    await new Promise((res) => setTimeout(res, 50));
    const third = from('127.0.0.2');
    const started = Date.now();
    await new Promise<void>((res) => third.once('close', () => res()));
    assert.ok(Date.now() - started < 1000, 'closed at once, not at the handshake deadline');
    assert.equal(await r.metrics.value('dc_sidecar_refused_connections_total', { reason: 'source-limit' }), 1);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!.message, /refused a connection: 2 open from 127\.0\.0\.2, the limit per source \(--max-connections-per-source\)/);
    assert.equal(warnings[0]!.meta?.remote, '127.0.0.2');

    const other = nodeTlsConnect({ socket: from('127.0.0.3'), servername: 'localhost', ca: pki.ca.pem });
    await new Promise<void>((res, rej) => {
      other.once('secureConnect', () => res());
      other.once('error', rej);
    });
    const reply = readAll(other);
    other.end('from another source');
    assert.match((await reply).toString(), /^19 bytes /);
    assert.ok(held.every((s) => !s.destroyed && s.readyState === 'open'), 'the two from 127.0.0.2 are still open');
    for (const s of held) s.destroy();
  });

  void it('applies backpressure through our stack on upload: a client writing to an app that does not read is paused, and nothing is lost', async () => {
    const total = 24 * 1024 * 1024;
    const payload = randomBytes(total);
    let app: Socket | undefined;
    const r = await rig(
      await upstreamServer((s) => {
        s.pause(); // reads nothing until the test says so
        app = s;
      }),
      { engine: 'ours' },
    );
    const s = oursConnect({ host: '127.0.0.1', port: r.listener.port, servername: 'localhost', ca: [pki.ca.pem] });
    await new Promise<void>((resolve, reject) => {
      s.once('secureConnect', () => resolve());
      s.once('error', reject);
    });
    // Written = accepted by the client's TLS socket (its writes complete when its TCP socket took the records).
    let written = 0;
    const pump = (): void => {
      while (written < total) {
        const ok = s.write(payload.subarray(written, written + 65536));
        written += 65536;
        if (!ok) return void s.once('drain', pump);
      }
      s.end();
    };
    pump();
    // The sidecar connects upstream after the handshake: wait for that connection (bounded), not a
    // fixed 100 ms, which a loaded machine overran.
    for (const until = Date.now() + 10_000; app === undefined && Date.now() < until; ) await new Promise((res) => setTimeout(res, 10));
    assert.ok(app, 'the application connection is open');
    await boundedThenWhole(app, payload, () => written, 'the client');
  });

  void it("carries the application's half-close through our stack: the client gets close_notify and can still send", async () => {
    let received: Promise<Buffer> | undefined;
    const r = await rig(
      await upstreamServer((s) => {
        received = readAll(s);
        s.end('greeting, then I stop writing');
      }),
      { engine: 'ours' },
    );
    // A sans-IO client over a plain socket: node:tls and our TLSSocket end their writing when the peer's close_notify arrives.
    const client = new ClientConnection({ servername: 'localhost', ca: [pki.ca.pem] });
    const socket = netConnect({ host: '127.0.0.1', port: r.listener.port, allowHalfOpen: true });
    const fromApp: Buffer[] = [];
    let handshook = false;
    let ended = false;
    const apply = (p: Progress): void => {
      for (const out of p.output) socket.write(out);
      for (const e of p.events) {
        if (e.type === 'handshake') handshook = true;
        else if (e.type === 'data') fromApp.push(Buffer.from(e.data));
        else if (e.type === 'end') ended = true;
        else if (e.type === 'error') assert.fail(e.error.message);
      }
    };
    socket.on('data', (chunk: Buffer) => apply(client.feed(chunk)));
    apply(client.poll());
    const deadline = Date.now() + 5000;
    while (!ended) {
      assert.ok(Date.now() < deadline, 'close_notify from the sidecar');
      await new Promise((res) => setTimeout(res, 10));
    }
    assert.ok(handshook);
    assert.equal(Buffer.concat(fromApp).toString(), 'greeting, then I stop writing');
    assert.ok(!socket.destroyed && socket.writable, 'the TCP connection is still open for the client to write');
    client.write(Buffer.from('late data'));
    client.close();
    apply(client.poll());
    socket.end();
    while (received === undefined) await new Promise((res) => setTimeout(res, 10));
    assert.equal((await received).toString(), 'late data');
  });

  void it('counts the handshake deadline from accept: a client that sends its ClientHello late and then stalls is dropped at the deadline', async () => {
    const r = await rig(await upstreamServer((s) => s.resume()), { handshakeTimeoutMs: 400, engine: 'ours' });
    const hello = Buffer.concat(new ClientConnection({ servername: 'localhost', ca: [pki.ca.pem] }).poll().output);
    const s = netConnect({ host: '127.0.0.1', port: r.listener.port });
    s.on('error', () => {});
    const started = Date.now();
    const serverFlight: Buffer[] = [];
    s.on('data', (d: Buffer) => serverFlight.push(d));
    setTimeout(() => s.write(hello), 250); // then nothing: no Finished
    await new Promise<void>((res) => s.once('close', () => res()));
    const after = Date.now() - started;
    assert.ok(Buffer.concat(serverFlight).length > 0, 'the ClientHello was answered: the handshake step was reached');
    assert.ok(after >= 350 && after < 2000, `closed after ${after} ms: the 400 ms deadline runs from accept through the handshake`);
    assert.equal(await r.metrics.value('dc_sidecar_handshakes_total', { mode: 'certificate', engine: 'ours', result: 'failure' }), 1);
  });

  void it('drops a client that sends no ClientHello within the handshake deadline', async () => {
    const r = await rig(await upstreamServer((s) => s.resume()), { handshakeTimeoutMs: 200 });
    const silent = netConnect({ host: '127.0.0.1', port: r.listener.port });
    silent.on('error', () => {});
    const started = Date.now();
    await new Promise<void>((res) => silent.once('close', () => res()));
    assert.ok(Date.now() - started >= 150);
    assert.equal(await r.metrics.value('dc_sidecar_refused_connections_total', { reason: 'timeout' }), 1);
  });

  void it("sends our stack's fatal alert to a DC client whose handshake fails (no cipher suite in common)", async () => {
    const r = await rig(await upstreamServer((s) => s.resume()));
    const hello = encodeHandshake(
      1,
      (w) =>
        writeClientHello(w, {
          legacyVersion: 0x0303,
          random: randomBytes(32),
          legacySessionId: new Uint8Array(0),
          cipherSuites: [0x1304], // TLS_AES_128_CCM_SHA256: not ours
          legacyCompressionMethods: Uint8Array.of(0),
          extensions: {
            supportedVersions: [ProtocolVersion.TLS1_3],
            signatureAlgorithms: [SignatureScheme.ed25519, SignatureScheme.ecdsa_secp256r1_sha256],
            // Both: the DC's own signature (P-256 certificate) must be listed too (NSS rule).
            delegatedCredential: [SignatureScheme.ed25519, SignatureScheme.ecdsa_secp256r1_sha256],
            supportedGroups: [0x1d],
            keyShares: [{ group: 0x1d, keyExchange: randomBytes(32) }],
            unknown: [],
          },
        }),
      512,
    );
    const s = netConnect({ host: '127.0.0.1', port: r.listener.port });
    s.on('error', () => {});
    s.write(Buffer.concat([Buffer.from([22, 3, 1, hello.length >> 8, hello.length & 0xff]), hello]));
    const answer = await readAll(s);
    assert.deepEqual([...answer.subarray(0, 1)], [21], 'an alert record');
    assert.equal(answer[answer.length - 1], 40, 'handshake_failure');
    const deadline = Date.now() + 5000;
    while ((await r.metrics.value('dc_sidecar_handshakes_total', { mode: 'dc', engine: 'ours', result: 'failure' })) !== 1) {
      assert.ok(Date.now() < deadline, 'the failed DC handshake is counted');
      await new Promise((res) => setTimeout(res, 10));
    }
  });

  void it('answers plain HTTP on the TLS port with an alert and closes, logging the refusal at info, bounded', async () => {
    const infos: string[] = [];
    const log = { ...quiet, info: (message: string) => void infos.push(message) };
    const r = await rig(await upstreamServer((s) => s.resume()), { log });
    const attempts = LOG_LINES_PER_WINDOW + 3;
    for (let i = 0; i < attempts; i++) {
      const s = netConnect({ host: '127.0.0.1', port: r.listener.port });
      s.on('error', () => {});
      s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
      const answer = await readAll(s);
      assert.deepEqual([...answer.subarray(0, 1)], [21], 'an alert record');
    }
    assert.equal(await r.metrics.value('dc_sidecar_refused_connections_total', { reason: 'bad-hello' }), attempts);
    assert.equal(infos.length, LOG_LINES_PER_WINDOW, 'one line per refusal up to the window limit, then only counted');
    assert.ok(infos.every((m) => m === 'refused a connection: not a TLS ClientHello'), infos.join('; '));
  });
});

void describe('sidecar post-quantum key exchange and ML-DSA credentials', () => {
  let pki: TestPki;
  let store: MaterialStore;

  before(async () => {
    pki = await makePki();
    store = memoryStore(await credentialFiles(pki, { algorithms: ['ecdsa_secp256r1_sha256', 'mldsa65'], certificateKey: true }));
  });

  async function sidecar(certificateEngine: 'ours' | 'node'): Promise<number> {
    const upstream = await upstreamServer((s) => s.end('app\n'));
    const metrics = new SidecarMetrics(store, new SidecarStatus());
    const tracker = new ConnectionTracker(100, 0);
    const listener = await listen('127.0.0.1', 0, {
      store,
      metrics,
      tracker,
      policy: { certificateEngine, keylessFor: undefined },
      upstream: { host: '127.0.0.1', port: upstream, idleTimeoutMs: 10_000 },
      handshakeTimeoutMs: 5000,
      ours: createOursEngine({ store, keylessFor: undefined }),
      log: quiet,
    });
    closers.push(() => {
      listener.stopAccepting();
      void tracker.drain(new Date());
    });
    return listener.port;
  }

  function ours(port: number, offerDc: boolean) {
    const s = oursConnect({ host: '127.0.0.1', port, servername: 'localhost', ca: [pki.ca.pem], ...(offerDc ? { serverCredentialHooks: delegatedCredentialPeerHooks({ peer: 'server' }) } : {}) });
    return new Promise<NonNullable<typeof s.handshakeInfo>>((resolve, reject) => {
      s.once('secureConnect', () => {
        resolve(s.handshakeInfo!);
        s.destroy();
      });
      s.once('error', reject);
    });
  }

  void it('gives a DC client of our stack X25519MLKEM768 and the ML-DSA-65 credential', async () => {
    const info = await ours(await sidecar('node'), true);
    assert.equal(info.group, NamedGroup.X25519MLKEM768);
    assert.equal(info.serverMode.authentication, 'delegated-credential');
    assert.equal(info.serverMode.signatureScheme, SignatureScheme.mldsa65);
  });

  void it('gives non-DC clients X25519MLKEM768 too: node:tls 24 through the node engine, our client through ours', async () => {
    const port = await sidecar('node');
    const group = await new Promise<string | undefined>((resolve, reject) => {
      const s = nodeTlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ca: pki.ca.pem }, () => {
        // On a client socket this is the server's key exchange group.
        resolve((s.getEphemeralKeyInfo() as { name?: string } | null)?.name);
        s.destroy();
      });
      s.once('error', reject);
    });
    assert.equal(group, 'X25519MLKEM768');
    const info = await ours(await sidecar('ours'), false);
    assert.equal(info.group, NamedGroup.X25519MLKEM768);
    assert.equal(info.serverMode.authentication, 'certificate');
  });
});
