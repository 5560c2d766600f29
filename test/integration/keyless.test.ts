/**
 * Keyless client and key server over real mutual TLS on loopback, with certificates made by
 * openssl. No fakes: signatures are checked with node:crypto against the keys' public halves.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createPrivateKey, createPublicKey, verify, constants, generateKeyPairSync, randomBytes } from 'node:crypto';
import { connect as tlsConnect, createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { connect as netConnect, type AddressInfo, type Socket } from 'node:net';
import { get as httpGet } from 'node:http';
import { writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { KeylessClient } from '../../src/keyless/client.js';
import { decodeOperation, encodeMessage, FrameDecoder, type Operation } from '../../src/keyless/codec.js';
import { KeylessRemoteError, KeylessTimeoutError, KeylessUnavailableError } from '../../src/keyless/errors.js';
import { ErrorCode, Opcode, Tag } from '../../src/keyless/protocol.js';
import { startKeyServer, type KeyServer } from '../../src/keyless/server.js';
import { computeSki, skiHex } from '../../src/keyless/ski.js';
import { SigningKey } from '../../src/keyless/keystore.js';
import { KeylessSigner, type KeylessSignerOptions } from '../../src/signer/keyless.js';
import { SignatureScheme } from '../../src/tls/constants.js';
import { verifySignature } from '../../src/tls/signature-schemes.js';
import { LOG_LINES_PER_WINDOW } from '../../src/net/log-limiter.js';
import { makeKeylessPki, type KeylessPki } from '../unit/keyless/pki.js';

const S = SignatureScheme;
const message = new Uint8Array(Buffer.concat([Buffer.alloc(64, 0x20), Buffer.from('TLS 1.3, server CertificateVerify\0'), Buffer.alloc(32, 7)]));

let pki: KeylessPki;
let server: KeyServer;
let address: string;

function signerFor(name: keyof KeylessPki['keys'], extra: Partial<ConstructorParameters<typeof KeylessSigner>[0]> = {}): KeylessSigner {
  return new KeylessSigner({
    address,
    ca: pki.ca,
    clientCert: pki.client.cert,
    clientKey: pki.client.key,
    certificate: pki.keys[name].cert,
    timeoutMs: 3000,
    ...extra,
  });
}

/** A raw protocol connection: writes bytes, collects answers by id. */
async function rawConnection(
  port: number,
  p: KeylessPki = pki,
): Promise<{ socket: TLSSocket; answer: (id: number) => Promise<Operation>; answers: ReadonlyMap<number, number> }> {
  const socket = tlsConnect({ host: '127.0.0.1', port, ca: p.ca, cert: p.client.cert, key: p.client.key });
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', resolve);
    socket.once('error', reject);
  });
  const decoder = new FrameDecoder();
  const answers = new Map<number, Operation>();
  const waiters = new Map<number, (op: Operation) => void>();
  const counts = new Map<number, number>();
  socket.on('data', (chunk: Buffer) => {
    for (const f of decoder.push(chunk)) {
      if (f.kind !== 'message') continue;
      counts.set(f.header.id, (counts.get(f.header.id) ?? 0) + 1);
      const op = decodeOperation(f.body);
      const w = waiters.get(f.header.id);
      if (w) w(op);
      else answers.set(f.header.id, op);
    }
  });
  const answer = (id: number): Promise<Operation> =>
    answers.has(id) ? Promise.resolve(answers.get(id)!) : new Promise((resolve) => waiters.set(id, resolve));
  return { socket, answer, answers: counts };
}

function header(id: number, length: number, major = 1): number[] {
  return [major, 0, length >> 8, length & 0xff, id >>> 24, (id >>> 16) & 0xff, (id >>> 8) & 0xff, id & 0xff];
}

function fetchMetrics(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    httpGet({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

void describe('keyless client and key server over mutual TLS', () => {
  before(async () => {
    pki = makeKeylessPki();
    server = await startKeyServer({
      keysDir: pki.keysDir,
      ca: pki.ca,
      cert: pki.server.cert,
      key: pki.server.key,
      host: '127.0.0.1',
      port: 0,
      metricsPort: 0,
      maxBodyLength: 4096,
      pollIntervalMs: 100,
    });
    address = `127.0.0.1:${server.port}`;
  });
  after(async () => {
    await server.close();
    pki.cleanup();
  });

  const cases: Array<[keyof KeylessPki['keys'], number]> = [
    ['ed25519', S.ed25519],
    ['p256', S.ecdsa_secp256r1_sha256],
    ['p384', S.ecdsa_secp384r1_sha384],
    ['rsa2048', S.rsa_pss_rsae_sha256],
    ['rsa2048', S.rsa_pss_rsae_sha384],
    ['rsa2048', S.rsa_pss_rsae_sha512],
    ['rsa2048', S.rsa_pkcs1_sha256],
  ];
  for (const [name, scheme] of cases) {
    void it(`signs with ${name} as 0x${scheme.toString(16)} remotely and node:crypto verifies it`, async () => {
      const signer = signerFor(name, name === 'rsa2048' ? { schemes: [scheme] } : {});
      try {
        const sig = await signer.sign(scheme, message);
        const pub = createPublicKey(pki.keys[name].cert);
        assert.ok(verifySignature(scheme, pub, message, sig));
        if (scheme === S.rsa_pss_rsae_sha256) {
          assert.ok(verify('sha256', message, { key: pub, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, sig));
        }
      } finally {
        await signer.close();
      }
    });
  }

  void it('offers the TLS 1.3 schemes of the certificate key', async () => {
    const rsa = signerFor('rsa2048');
    const ec = signerFor('p256');
    assert.deepEqual(rsa.schemes, [S.rsa_pss_rsae_sha256, S.rsa_pss_rsae_sha384, S.rsa_pss_rsae_sha512]);
    assert.deepEqual(ec.schemes, [S.ecdsa_secp256r1_sha256]);
    await Promise.all([rsa.close(), ec.close()]);
  });

  void it('answers a ping with a pong and reports the round trip', async () => {
    const signer = signerFor('p256');
    const ms = await signer.ping();
    assert.ok(ms > 0 && ms < 3000, `ping took ${ms} ms`);
    await signer.close();
  });

  void it('reports an unknown SKI as key not found, naming the key', async () => {
    const stranger = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const ski = skiHex(computeSki(stranger.publicKey));
    const signer = signerFor('p256', { certificate: undefined, publicKey: stranger.publicKey });
    await assert.rejects(signer.sign(S.ecdsa_secp256r1_sha256, message), (err: unknown) => {
      assert.ok(err instanceof KeylessRemoteError);
      assert.equal(err.code, ErrorCode.keyNotFound);
      assert.ok(err.message.includes(ski), err.message);
      return true;
    });
    await signer.close();
  });

  void it('refuses a client certificate from another CA', async () => {
    const before = await fetchMetrics(server.metricsPort!);
    const failuresBefore = Number(/keyless_server_handshake_failures_total\{reason="unknown-ca"\} (\d+)/.exec(before)?.[1] ?? 0);
    const signer = signerFor('p256', { clientCert: pki.strangerClient.cert, clientKey: pki.strangerClient.key, timeoutMs: 1500 });
    await assert.rejects(signer.sign(S.ecdsa_secp256r1_sha256, message), (err: unknown) => {
      assert.ok(err instanceof KeylessUnavailableError, String(err));
      assert.match(err.message, /client certificate/);
      return true;
    });
    await signer.close();
    const afterText = await fetchMetrics(server.metricsPort!);
    const failuresAfter = Number(/keyless_server_handshake_failures_total\{reason="unknown-ca"\} (\d+)/.exec(afterText)?.[1] ?? 0);
    assert.ok(failuresAfter > failuresBefore, 'the key server counted the refused handshake');
  });

  void it('refuses a client without a certificate', async () => {
    const socket = tlsConnect({ host: '127.0.0.1', port: server.port, ca: pki.ca });
    const outcome = await new Promise<string>((resolve) => {
      socket.on('secureConnect', () => socket.write(encodeMessage(1, { opcode: Opcode.ping })));
      socket.on('data', () => resolve('answered'));
      socket.on('error', (err) => resolve(`error: ${err.message}`));
      socket.on('close', () => resolve('closed'));
    });
    socket.destroy();
    assert.notEqual(outcome, 'answered');
  });

  void it('answers malformed, oversized, unknown and misplaced requests with error responses on the same connection', async () => {
    const { socket, answer } = await rawConnection(server.port);
    const p256Ski = computeSki(createPrivateKey(pki.keys.p256.key));
    const ed25519Ski = computeSki(createPrivateKey(pki.keys.ed25519.key));
    const truncatedItem = [Tag.opcode, 0, 1, Opcode.ecdsaSignSha256, Tag.payload, 0, 40, 1, 2];
    socket.write(Uint8Array.from([...header(1, truncatedItem.length), ...truncatedItem]));
    socket.write(encodeMessage(2, { opcode: Opcode.ecdsaSignSha256, ski: p256Ski, payload: new Uint8Array(5000) }));
    socket.write(encodeMessage(3, { opcode: 0x99, ski: p256Ski, payload: new Uint8Array(32) }));
    socket.write(encodeMessage(4, { opcode: Opcode.response, payload: new Uint8Array(1) }));
    socket.write(Uint8Array.from([...header(5, 4, 2), Tag.opcode, 0, 1, Opcode.ping]));
    socket.write(encodeMessage(6, { opcode: Opcode.rsaDecrypt, ski: p256Ski, payload: new Uint8Array(256) }));
    socket.write(encodeMessage(7, { opcode: Opcode.ecdsaSignSha256, ski: p256Ski, payload: new Uint8Array(31) }));
    socket.write(encodeMessage(8, { opcode: Opcode.ecdsaSignSha256, ski: ed25519Ski, payload: new Uint8Array(32) }));
    socket.write(encodeMessage(9, { opcode: Opcode.ecdsaSignSha256, payload: new Uint8Array(32) }));
    socket.write(Uint8Array.from([...header(10, 3), Tag.payload, 0, 0]));
    const digest = createHash('sha256').update(message).digest();
    socket.write(encodeMessage(11, { opcode: Opcode.ecdsaSignSha256, ski: p256Ski, payload: digest }, { padTo: 1024 }));

    const expected: Array<[number, number]> = [
      [1, ErrorCode.formatError],
      [2, ErrorCode.formatError],
      [3, ErrorCode.badOpcode],
      [4, ErrorCode.unexpectedOpcode],
      [5, ErrorCode.versionMismatch],
      [6, ErrorCode.badOpcode],
      [7, ErrorCode.formatError],
      [8, ErrorCode.cryptoFailed],
      [9, ErrorCode.keyNotFound],
      [10, ErrorCode.formatError],
    ];
    for (const [id, code] of expected) {
      const op = await answer(id);
      assert.equal(op.opcode, Opcode.error, `request ${id}`);
      assert.deepEqual([...(op.payload ?? [])], [code], `request ${id}`);
    }
    const ok = await answer(11);
    assert.equal(ok.opcode, Opcode.response);
    assert.ok(verify('sha256', message, { key: createPublicKey(pki.keys.p256.cert), dsaEncoding: 'der' }, ok.payload!));
    socket.destroy();
  });

  void it('answers every frame with a random body exactly once and keeps the connection open', async () => {
    const { socket, answer, answers } = await rawConnection(server.port);
    const ids = Array.from({ length: 300 }, (_, i) => 1000 + i);
    for (const id of ids) {
      const body = randomBytes(Math.floor(Math.random() * 200));
      // Half of them start with a valid opcode item so decoding gets past the first item.
      const withOpcode = id % 2 === 0 ? Buffer.concat([Buffer.from([Tag.opcode, 0, 1, body[0] ?? 0]), body]) : body;
      socket.write(Uint8Array.from([...header(id, withOpcode.length), ...withOpcode]));
    }
    for (const id of ids) {
      const op = await answer(id);
      assert.ok([Opcode.error, Opcode.response, Opcode.pong].includes(op.opcode as 0xff), `answer to ${id}: 0x${op.opcode.toString(16)}`);
    }
    const ping = encodeMessage(5000, { opcode: Opcode.ping, payload: Uint8Array.of(1) });
    socket.write(ping);
    assert.equal((await answer(5000)).opcode, Opcode.pong);
    assert.deepEqual(ids.filter((id) => answers.get(id) !== 1), [], 'one answer per request');
    socket.destroy();
  });

  void it('keeps a thousand concurrent requests in flight on one connection and matches every answer', async () => {
    const client = new KeylessClient({ address, ca: pki.ca, cert: pki.client.cert, key: pki.client.key, timeoutMs: 20_000 });
    const signers = (['ed25519', 'p256', 'rsa2048'] as const).map((n) => signerFor(n, { client }));
    const jobs = Array.from({ length: 1000 }, (_, i) => {
      const signer = signers[i % signers.length]!;
      const msg = Buffer.from(`message number ${i}`);
      return signer.sign(signer.schemes[0]!, msg).then((sig) => ({ signer, msg, sig }));
    });
    const results = await Promise.all(jobs);
    for (const { signer, msg, sig } of results) {
      assert.ok(verifySignature(signer.schemes[0]!, signer.publicKey!, msg, sig));
    }
    const metrics = await fetchMetrics(server.metricsPort!);
    // P-256 and RSA-PSS go whole through our extension (0xC0), Ed25519 through its own opcode.
    const ok = (opcode: string): number => Number(new RegExp(`keyless_server_requests_total\\{opcode="${opcode}",result="ok"\\} (\\d+)`).exec(metrics)?.[1] ?? 0);
    assert.ok(ok('signMessage') >= 666, `signMessage answered ${ok('signMessage')} times`);
    assert.ok(ok('ed25519Sign') >= 333, `ed25519Sign answered ${ok('ed25519Sign')} times`);
    await client.close();
  });

  void it('signs with a key added to the key directory while running', async () => {
    const fresh = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
    writeFileSync(join(pki.keysDir, 'added.pem'), fresh.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const signer = signerFor('p384', { certificate: undefined, publicKey: fresh.publicKey });
    const deadline = Date.now() + 5000;
    for (;;) {
      try {
        const sig = await signer.sign(S.ecdsa_secp384r1_sha384, message);
        assert.ok(verify('sha384', message, { key: fresh.publicKey, dsaEncoding: 'der' }, sig));
        break;
      } catch (err) {
        if (!(err instanceof KeylessRemoteError) || Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    await signer.close();
  });
});

void describe('keyless client resilience', () => {
  let pki2: KeylessPki;
  before(() => {
    pki2 = makeKeylessPki(['p256']);
  });
  after(() => pki2.cleanup());

  const start = (port: number): Promise<KeyServer> =>
    startKeyServer({ keysDir: pki2.keysDir, ca: pki2.ca, cert: pki2.server.cert, key: pki2.server.key, host: '127.0.0.1', port });
  /** A signer for the P-256 key's certificate, against the key server on `port`. */
  const signerAt = (port: number, extra: Partial<KeylessSignerOptions> = {}): KeylessSigner =>
    new KeylessSigner({ address: `127.0.0.1:${port}`, ca: pki2.ca, clientCert: pki2.client.cert, clientKey: pki2.client.key, certificate: pki2.keys.p256.cert, ...extra });

  void it('recovers on its own when the key server is stopped and started again', async () => {
    let ks = await start(0);
    const port = ks.port;
    const signer = signerAt(port, { timeoutMs: 1000 });
    const pub = createPublicKey(pki2.keys.p256.cert);
    const check = async (): Promise<void> => {
      const sig = await signer.sign(S.ecdsa_secp256r1_sha256, message);
      assert.ok(verify('sha256', message, { key: pub, dsaEncoding: 'der' }, sig));
    };
    await check();
    await ks.close();
    await assert.rejects(check(), KeylessUnavailableError);
    assert.notEqual(signer.client.state, 'connected');
    ks = await start(port);
    try {
      // The first requests after the restart may still be waiting out a backoff, and on a loaded
      // machine a reconnect can take longer than one request's deadline: retry for up to 20 s
      // (at most 40 attempts), which is still far below the backoff cap it would otherwise show.
      let ok = false;
      const deadline = Date.now() + 20_000;
      for (let i = 0; i < 40 && !ok && Date.now() < deadline; i++) {
        ok = await check().then(
          () => true,
          () => false,
        );
        if (!ok) await sleep(250);
      }
      assert.ok(ok, 'signing works again after the restart');
      assert.equal(signer.client.state, 'connected');
    } finally {
      await signer.close();
      await ks.close();
    }
  });

  void it('fails a request that gets no answer with a timeout, without waiting longer', async () => {
    // A real TLS server that completes the handshake and then never answers.
    const silent = createTlsServer({ ca: pki2.ca, cert: pki2.server.cert, key: pki2.server.key, requestCert: true }, (s) => {
      s.on('data', () => undefined);
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as AddressInfo).port;
    const client = new KeylessClient({ address: `127.0.0.1:${port}`, ca: pki2.ca, cert: pki2.client.cert, key: pki2.client.key });
    const started = Date.now();
    await assert.rejects(client.ping({ timeoutMs: 300 }), KeylessTimeoutError);
    const took = Date.now() - started;
    assert.ok(took >= 280 && took < 2000, `timed out after ${took} ms`);
    assert.notEqual(client.state, 'connected', 'a connection that answered nothing is dropped');
    await client.close();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
  });

  void it('drops a connection that answers with a malformed message and retries the request once on a fresh one', async () => {
    let connections = 0;
    const broken = createTlsServer({ ca: pki2.ca, cert: pki2.server.cert, key: pki2.server.key, requestCert: true }, (s) => {
      connections++;
      s.once('data', () => s.write(Buffer.from([9, 0, 0, 0, 0, 0, 0, 1])));
    });
    await new Promise<void>((resolve) => broken.listen(0, '127.0.0.1', resolve));
    const port = (broken.address() as AddressInfo).port;
    const client = new KeylessClient({ address: `127.0.0.1:${port}`, ca: pki2.ca, cert: pki2.client.cert, key: pki2.client.key, minBackoffMs: 10 });
    await assert.rejects(client.ping({ timeoutMs: 2000 }), /malformed response/);
    assert.equal(connections, 2);
    await client.close();
    await new Promise<void>((resolve) => broken.close(() => resolve()));
  });

  void it('rejects a signature from the key server that does not verify with the certificate key', async () => {
    // A key server that answers for our SKI with some other P-256 key.
    const impostor = new SigningKey(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey, 'impostor');
    const ks = await startKeyServer({
      keys: { get: () => impostor, size: 1 },
      ca: pki2.ca,
      cert: pki2.server.cert,
      key: pki2.server.key,
      host: '127.0.0.1',
      port: 0,
    });
    const signer = signerAt(ks.port);
    await assert.rejects(signer.sign(S.ecdsa_secp256r1_sha256, message), /does not verify/);
    await signer.close();
    await ks.close();
  });

  void it('with verifyOneIn, checks the first signature per connection and after a failure, then every one after a bad one', async () => {
    // A key server whose key for our SKI is switched by the test: the right one, an impostor, none.
    const right = new SigningKey(createPrivateKey(pki2.keys.p256.key), 'right');
    const impostor = new SigningKey(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey, 'impostor');
    let current: SigningKey | undefined = right;
    const serve = (port: number): Promise<KeyServer> =>
      startKeyServer({ keys: { get: () => current, size: 1 }, ca: pki2.ca, cert: pki2.server.cert, key: pki2.server.key, host: '127.0.0.1', port });
    let ks = await serve(0);
    const port = ks.port;
    const bad: string[] = [];
    const signer = signerAt(port, { timeoutMs: 3000, verifyOneIn: 1000, onBadSignature: (e) => bad.push(e.message) });
    const pub = createPublicKey(pki2.keys.p256.cert);
    const sign = (): Promise<Uint8Array> => signer.sign(S.ecdsa_secp256r1_sha256, message);
    const verifies = (sig: Uint8Array): boolean => verifySignature(S.ecdsa_secp256r1_sha256, pub, message, sig);
    try {
      assert.ok(verifies(await sign()), 'first signature on the connection: checked, and right');
      current = impostor;
      assert.equal(verifies(await sign()), false, 'a later one is not checked (sampled out): the bad signature is returned');
      current = undefined;
      await assert.rejects(sign(), KeylessRemoteError, 'a refused request is a failure');
      current = impostor;
      await assert.rejects(sign(), /does not verify/, 'the first signature after a failure is checked');
      assert.equal(bad.length, 1);
      current = right;
      assert.ok(verifies(await sign()));
      current = impostor;
      await assert.rejects(sign(), /does not verify/, 'after a bad one, every signature is checked');
      assert.equal(bad.length, 2);

      // A new signer (what a bundle swap makes) on the same connection checks its first signature.
      current = impostor;
      const fresh = new KeylessSigner({ client: signer.client, address: '', ca: '', clientCert: '', clientKey: '', certificate: pki2.keys.p256.cert, verifyOneIn: 1000 });
      await assert.rejects(fresh.sign(S.ecdsa_secp256r1_sha256, message), /does not verify/);

      // A reconnect: a signer that has checked this connection samples on it; the key server
      // restarts (the client sees the close before the next request, so nothing fails on the way)
      // and the first signature on the new connection is checked.
      const sampled = new KeylessSigner({ client: signer.client, address: '', ca: '', clientCert: '', clientKey: '', certificate: pki2.keys.p256.cert, verifyOneIn: 1000 });
      current = right;
      await sampled.sign(S.ecdsa_secp256r1_sha256, message);
      current = impostor;
      assert.equal(verifies(await sampled.sign(S.ecdsa_secp256r1_sha256, message)), false, 'sampled out on the same connection');
      await ks.close();
      await sleep(200);
      assert.notEqual(signer.client.state, 'connected');
      ks = await serve(port);
      await assert.rejects(sampled.sign(S.ecdsa_secp256r1_sha256, message), /does not verify/, 'the first signature on the new connection is checked');
    } finally {
      await signer.close();
      await ks.close();
    }
  });

  void it('signs a 20 KB message with Ed25519, which travels whole (a credential over a large certificate)', async () => {
    const pair = generateKeyPairSync('ed25519');
    const ks = await startKeyServer({
      keys: { get: (ski) => (ski === skiHex(computeSki(pair.privateKey)) ? new SigningKey(pair.privateKey, 'ed') : undefined), size: 1 },
      ca: pki2.ca,
      cert: pki2.server.cert,
      key: pki2.server.key,
      host: '127.0.0.1',
      port: 0,
    });
    const signer = new KeylessSigner({
      address: `127.0.0.1:${ks.port}`,
      ca: pki2.ca,
      clientCert: pki2.client.cert,
      clientKey: pki2.client.key,
      publicKey: pair.publicKey,
    });
    const big = new Uint8Array(20_000).fill(0x5a);
    assert.ok(verify(null, big, pair.publicKey, await signer.sign(S.ed25519, big)));
    await signer.close();
    await ks.close();
  });

  void it('fails to start on a port that is taken, with the reason', async () => {
    const first = await start(0);
    try {
      await assert.rejects(start(first.port), /EADDRINUSE/);
    } finally {
      await first.close();
    }
  });

  void it('backs off while the key server is unreachable and says why', async () => {
    const probe = await start(0);
    const port = probe.port;
    await probe.close();
    const client = new KeylessClient({
      address: `127.0.0.1:${port}`,
      ca: pki2.ca,
      cert: pki2.client.cert,
      key: pki2.client.key,
      minBackoffMs: 5000,
      maxBackoffMs: 5000,
    });
    await assert.rejects(client.ping({ timeoutMs: 100 }), /ECONNREFUSED/);
    assert.equal(client.state, 'backoff');
    await client.close();
  });
});

void describe('key server signing on worker threads', () => {
  let pki4: KeylessPki;
  let ks: KeyServer;
  before(async () => {
    pki4 = makeKeylessPki();
    ks = await startKeyServer({
      keysDir: pki4.keysDir,
      ca: pki4.ca,
      cert: pki4.server.cert,
      key: pki4.server.key,
      host: '127.0.0.1',
      port: 0,
      signingWorkers: 2,
      pollIntervalMs: 100,
    });
  });
  after(async () => {
    await ks.close();
    pki4.cleanup();
  });

  const signer = (name: keyof KeylessPki['keys'], client?: KeylessClient): KeylessSigner =>
    new KeylessSigner({
      address: `127.0.0.1:${ks.port}`,
      ca: pki4.ca,
      clientCert: pki4.client.cert,
      clientKey: pki4.client.key,
      certificate: pki4.keys[name].cert,
      ...(client ? { client } : {}),
    });

  void it('produces valid signatures for every key type from the workers, many at once', async () => {
    const client = new KeylessClient({ address: `127.0.0.1:${ks.port}`, ca: pki4.ca, cert: pki4.client.cert, key: pki4.client.key, timeoutMs: 20_000 });
    const signers = (['ed25519', 'p256', 'p384', 'rsa2048'] as const).map((n) => signer(n, client));
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => {
        const s = signers[i % signers.length]!;
        const msg = Buffer.from(`worker message ${i}`);
        return s.sign(s.schemes[0]!, msg).then((sig) => ({ s, msg, sig }));
      }),
    );
    for (const { s, msg, sig } of results) assert.ok(verifySignature(s.schemes[0]!, s.publicKey!, msg, sig));
    await client.close();
  });

  void it('reports errors raised in a worker with their protocol codes', async () => {
    const { socket, answer } = await rawConnection(ks.port, pki4);
    const p256Ski = computeSki(createPrivateKey(pki4.keys.p256.key));
    const edSki = computeSki(createPrivateKey(pki4.keys.ed25519.key));
    socket.write(encodeMessage(1, { opcode: Opcode.ecdsaSignSha256, ski: p256Ski, payload: new Uint8Array(20) }));
    socket.write(encodeMessage(2, { opcode: Opcode.rsaPssSignSha256, ski: edSki, payload: new Uint8Array(32) }));
    assert.deepEqual([...((await answer(1)).payload ?? [])], [ErrorCode.formatError]);
    assert.deepEqual([...((await answer(2)).payload ?? [])], [ErrorCode.cryptoFailed]);
    socket.destroy();
  });

  void it('signs with a replaced key after the directory reloads', async () => {
    const fresh = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    writeFileSync(join(pki4.keysDir, 'p256.pem'), fresh.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const s = new KeylessSigner({
      address: `127.0.0.1:${ks.port}`,
      ca: pki4.ca,
      clientCert: pki4.client.cert,
      clientKey: pki4.client.key,
      publicKey: fresh.publicKey,
    });
    const deadline = Date.now() + 5000;
    for (;;) {
      try {
        const sig = await s.sign(S.ecdsa_secp256r1_sha256, message);
        assert.ok(verify('sha256', message, { key: fresh.publicKey, dsaEncoding: 'der' }, sig));
        break;
      } catch (err) {
        if (!(err instanceof KeylessRemoteError) || Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    await s.close();
  });
});

interface KeyServerProcess {
  readonly port: number;
  readonly metricsPort: number;
  /** What it wrote to stderr so far (JSON lines). */
  stderr(): string;
  /** SIGTERM; resolves with the exit code. */
  stop(): Promise<number | null>;
}

/** `dc-operator keyserver` as its own process on 127.0.0.1, ports picked by the system. */
async function startKeyServerCommand(p: KeylessPki, extra: readonly string[] = []): Promise<KeyServerProcess> {
  const entry = fileURLToPath(new URL('../../src/cli/dc-operator.js', import.meta.url));
  const child = spawn(
    process.execPath,
    [entry, 'keyserver', '--keys', p.keysDir, '--ca', join(p.dir, 'ca.crt'), '--cert', join(p.dir, 'server.crt'), '--key', join(p.dir, 'server.pem'),
      '--port', '0', '--address', '127.0.0.1', '--metrics-port', '0', ...extra],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const { port, metricsPort } = await new Promise<{ port: number; metricsPort: number }>((resolve, reject) => {
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      stderr += chunk;
      for (const line of stderr.split('\n')) {
        if (!line.includes('key server listening')) continue;
        const event = JSON.parse(line) as { port: number; metricsPort: number };
        resolve({ port: event.port, metricsPort: event.metricsPort });
      }
    });
    void exited.then((code) => reject(new Error(`keyserver exited with ${code}: ${stderr}`)));
  });
  return {
    port,
    metricsPort,
    stderr: () => stderr,
    stop: () => {
      child.kill('SIGTERM');
      return exited;
    },
  };
}

void describe('dc-operator keyserver command', () => {
  let pki3: KeylessPki;
  before(() => {
    pki3 = makeKeylessPki(['ed25519']);
  });
  after(() => pki3.cleanup());

  void it('serves signatures from the key directory, exposes metrics and stops cleanly on SIGTERM', async () => {
    const ks = await startKeyServerCommand(pki3);
    try {
      const signer = new KeylessSigner({
        address: `localhost:${ks.port}`,
        ca: pki3.ca,
        clientCert: pki3.client.cert,
        clientKey: pki3.client.key,
        certificate: pki3.keys.ed25519.cert,
      });
      const sig = await signer.sign(S.ed25519, message);
      assert.ok(verify(null, message, createPublicKey(pki3.keys.ed25519.cert), sig));
      await signer.close();
      const metrics = await fetchMetrics(ks.metricsPort);
      assert.match(metrics, /keyless_server_requests_total\{opcode="ed25519Sign",result="ok"\} 1/);
      assert.match(metrics, /keyless_server_keys 1/);
    } finally {
      assert.equal(await ks.stop(), 0, ks.stderr());
    }
  });

  // The measurement of the issue "2,000 silent TCP connections were all still open after 128 s":
  // 500 from each of four loopback addresses, so that the per-source limit does not refuse any
  // and every one of them meets the handshake timeout (the caps on connections in their handshake
  // raised to let them all in: the next test holds them to their defaults).
  void it('closes 2,000 silent connections at --handshake-timeout, counts each, and logs a few lines', { timeout: 60_000 }, async (t) => {
    const ks = await startKeyServerCommand(pki3, ['--handshake-timeout', '2s', '--max-handshakes', '2000', '--max-handshakes-per-source', '500']);
    const sockets: Socket[] = [];
    try {
      let open = 0;
      let closedEarly = 0;
      const started = Date.now();
      for (let i = 0; i < 2000; i++) {
        const socket = netConnect({ host: '127.0.0.1', port: ks.port, localAddress: `127.0.0.${1 + (i % 4)}` });
        sockets.push(socket);
        socket.on('error', () => {});
        socket.once('connect', () => open++);
        socket.once('close', () => {
          open--;
          if (Date.now() - started < 1500) closedEarly++;
        });
        if (i % 250 === 249) await new Promise((r) => setTimeout(r, 20));
      }
      const deadline = Date.now() + 20_000;
      while (open > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      const tookMs = Date.now() - started;
      const metrics = await fetchMetrics(ks.metricsPort);
      const timeouts = Number(/keyless_server_handshake_failures_total\{reason="timeout"\} (\d+)/.exec(metrics)?.[1] ?? 0);
      const logLines = ks.stderr().split('\n').filter((l) => l.includes('"reason":"timeout"')).length;
      t.diagnostic(`2000 silent connections, --handshake-timeout 2s: ${open} open after ${tookMs} ms, ${closedEarly} closed before 1.5 s, ${timeouts} timeouts counted, ${logLines} log lines`);
      assert.equal(open, 0, 'none left open');
      assert.equal(closedEarly, 0, 'none closed before the timeout');
      assert.equal(timeouts, 2000);
      assert.ok(logLines >= 1 && logLines <= LOG_LINES_PER_WINDOW, `${logLines} log lines`);
    } finally {
      for (const s of sockets) s.destroy();
      assert.equal(await ks.stop(), 0, ks.stderr());
    }
  });

  void it('holds silent connections of one source to --max-handshakes-per-source (default 100), so a client from another address still connects', { timeout: 60_000 }, async () => {
    const ks = await startKeyServerCommand(pki3);
    const sockets: Socket[] = [];
    try {
      let connected = 0;
      for (let i = 0; i < 300; i++) {
        const socket = netConnect({ host: '127.0.0.1', port: ks.port, localAddress: '127.0.0.2' });
        sockets.push(socket);
        socket.on('error', () => {});
        socket.once('connect', () => connected++);
        if (i % 100 === 99) await new Promise((r) => setTimeout(r, 20));
      }
      const refusedCount = async (): Promise<number> => Number(/keyless_server_refused_connections_total\{reason="handshake-limit"\} (\d+)/.exec(await fetchMetrics(ks.metricsPort))?.[1] ?? 0);
      const deadline = Date.now() + 10_000;
      const held = (): number => sockets.filter((s) => !s.destroyed).length;
      while ((connected < 300 || held() > 100 || (await refusedCount()) < 200) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.equal(await refusedCount(), 200, 'the 101st and later silent connections of 127.0.0.2 are refused at accept');
      assert.equal(held(), 100, 'a hundred are held, until the handshake timeout');
      const signer = new KeylessSigner({ address: `127.0.0.1:${ks.port}`, ca: pki3.ca, clientCert: pki3.client.cert, clientKey: pki3.client.key, certificate: pki3.keys.ed25519.cert });
      try {
        assert.ok(verify(null, message, createPublicKey(pki3.keys.ed25519.cert), await signer.sign(S.ed25519, message)), 'a client from 127.0.0.1 is served');
      } finally {
        await signer.close();
      }
    } finally {
      for (const s of sockets) s.destroy();
      assert.equal(await ks.stop(), 0, ks.stderr());
    }
  });
});
