/**
 * A client certificate is good until its notAfter, not for as long as a connection made before it
 * lasts: the key server ends an open connection when its certificate expires (a client that keeps
 * pinging never reaches the idle timeout), and refuses a new connection that resumes a TLS session
 * of an expired certificate (OpenSSL does not verify the certificate again on resumption); and a
 * client CA taken out of the bundle takes its open connections with it. Real sockets on loopback;
 * certificates valid for about two seconds.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { connect as netConnect, createServer, type AddressInfo } from 'node:net';
import { connect, type SecureContextOptions } from 'node:tls';
import { KeylessClient } from '../../../src/keyless/client.js';
import { decodeMessage, encodeMessage } from '../../../src/keyless/codec.js';
import { SigningKey } from '../../../src/keyless/keystore.js';
import { Opcode } from '../../../src/keyless/protocol.js';
import { startKeyServer, type KeyServer } from '../../../src/keyless/server.js';
import { createCa, createClientCert, createServingCert, type KeyedCertificate } from '../../../src/pki/certs.js';
import { metricSum } from './metrics.js';

let ca: KeyedCertificate;
let serving: KeyedCertificate;
let server: KeyServer;
const key = new SigningKey(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, 'test key');
const lines: string[] = [];

before(async () => {
  const now = new Date();
  ca = await createCa('expiry test CA', now);
  serving = await createServingCert(ca, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], now });
  server = await startKeyServer({
    keys: { get: (ski) => (ski === key.skiHex ? key : undefined), size: 1 },
    ca: ca.certPem,
    cert: serving.certPem,
    key: serving.keyPem,
    host: '127.0.0.1',
    port: 0,
    logger: { info: (m) => lines.push(m), warn: (m) => lines.push(m), error: (m) => lines.push(m) },
  });
});
after(async () => {
  await server.close();
});

const shortLived = (ms: number): Promise<KeyedCertificate> =>
  createClientCert(ca, { uri: 'spiffe://cluster.local/ns/shop/dc/www', now: new Date(), notAfter: new Date(Date.now() + ms) });

const sleepUntil = (t: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, t - Date.now())));

const counter = (name: string, labels: Record<string, string> = {}): Promise<number> => metricSum(server.registry, name, labels);

interface Outcome {
  readonly answered: boolean;
  readonly reused: boolean;
  readonly session: Buffer | undefined;
}

/** One connection that pings once; whether it was answered, whether the session was resumed. */
function pingOnce(client: KeyedCertificate, maxVersion: SecureContextOptions['maxVersion'], session?: Buffer): Promise<Outcome> {
  return new Promise((resolve) => {
    let newSession: Buffer | undefined;
    let reused = false;
    let answered = false;
    const s = connect({ host: '127.0.0.1', port: server.port, ca: ca.certPem, cert: client.certPem, key: client.keyPem, servername: 'localhost', maxVersion, ...(session ? { session } : {}) });
    const done = (): void => resolve({ answered, reused, session: newSession ?? session });
    const deadline = setTimeout(() => s.destroy(), 3000);
    s.on('session', (x: Buffer) => (newSession = x));
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(deadline);
      done();
    });
    s.once('secureConnect', () => {
      reused = s.isSessionReused();
      s.write(encodeMessage(1, { opcode: Opcode.ping, payload: Buffer.from('hi') }));
    });
    s.once('data', (d: Buffer) => {
      answered = decodeMessage(d).operation.opcode === Opcode.pong;
      // Stay a moment so a TLS 1.3 ticket sent after the handshake arrives.
      setTimeout(() => s.end(), 100);
    });
  });
}

void describe('key server: a client certificate expires on open connections too', () => {
  void it('closes an open connection at its certificate notAfter, however busy it is', { timeout: 15_000 }, async () => {
    const cert = await shortLived(2000);
    const client = new KeylessClient({ address: `127.0.0.1:${server.port}`, ca: ca.certPem, cert: cert.certPem, key: cert.keyPem, maxBackoffMs: 200 });
    try {
      await client.ping({ timeoutMs: 2000 });
      const before = await counter('keyless_server_expired_connections_total');
      // Pings keep the connection busy past notAfter: the idle timeout never fires.
      while (Date.now() < cert.notAfter.getTime() + 300) {
        await client.ping({ timeoutMs: 2000 }).catch(() => undefined);
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(await counter('keyless_server_expired_connections_total'), before + 1, 'the connection was ended at notAfter');
      assert.ok(lines.includes('keyless: connection closed: its client certificate expired'));
      // And a new one is refused at the handshake (OpenSSL's own check).
      await assert.rejects(client.ping({ timeoutMs: 1500 }));
    } finally {
      await client.close();
    }
  });

  for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
    void it(`refuses a ${version} session resumed after the certificate expired`, { timeout: 15_000 }, async () => {
      const cert = await shortLived(1500);
      const first = await pingOnce(cert, version);
      assert.ok(first.answered, 'served before expiry');
      assert.ok(first.session, 'the server gave a session to resume');
      // Resumption works while the certificate is valid, so the refusal below is about expiry.
      const resumedEarly = await pingOnce(cert, version, first.session);
      assert.ok(resumedEarly.reused && resumedEarly.answered, 'a resumed session before expiry is served');
      await sleepUntil(cert.notAfter.getTime() + 1100);
      const expiredBefore = await counter('keyless_server_handshake_failures_total', { reason: 'expired' });
      const resumed = await pingOnce(cert, version, resumedEarly.session);
      assert.ok(resumed.reused, 'the session was resumed (no full handshake that would check the certificate)');
      assert.equal(resumed.answered, false, 'not served after expiry');
      assert.equal(await counter('keyless_server_handshake_failures_total', { reason: 'expired' }), expiredBefore + 1);
    });
  }

  void it('closes the open connections of a CA taken out of the client CA bundle, and only those', { timeout: 15_000 }, async () => {
    const now = new Date();
    const other = await createCa('second client CA', now);
    const uri = 'spiffe://cluster.local/ns/shop/dc/www';
    const ofFirst = await createClientCert(ca, { uri, now, notAfter: new Date(now.getTime() + 3_600_000) });
    const ofOther = await createClientCert(other, { uri, now, notAfter: new Date(now.getTime() + 3_600_000) });
    const both = `${ca.certPem}${other.certPem}`;
    const ks = await startKeyServer({ keys: { get: () => undefined, size: 0 }, ca: both, cert: serving.certPem, key: serving.keyPem, host: '127.0.0.1', port: 0 });
    const client = (who: KeyedCertificate) => new KeylessClient({ address: `127.0.0.1:${ks.port}`, ca: ca.certPem, cert: who.certPem, key: who.keyPem, maxBackoffMs: 100 });
    const [first, second] = [client(ofFirst), client(ofOther)];
    try {
      await first.ping({ timeoutMs: 2000 });
      await second.ping({ timeoutMs: 2000 });
      const connections = () => metricSum(ks.registry, 'keyless_server_connections');
      assert.equal(await connections(), 2);
      // The same bundle again (a serving certificate rotation): nothing is closed.
      ks.setCredentials({ ca: both, cert: serving.certPem, key: serving.keyPem });
      assert.equal(await metricSum(ks.registry, 'keyless_server_untrusted_connections_total'), 0);
      // The first CA taken out: its connection is closed, the other one stays; it cannot come back.
      ks.setCredentials({ ca: other.certPem, cert: serving.certPem, key: serving.keyPem });
      assert.equal(await metricSum(ks.registry, 'keyless_server_untrusted_connections_total'), 1);
      for (let i = 0; i < 100 && (await connections()) !== 1; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(await connections(), 1);
      await second.ping({ timeoutMs: 2000 });
      await assert.rejects(first.ping({ timeoutMs: 1500 }));
    } finally {
      await first.close();
      await second.close();
      await ks.close();
    }
  });
  void it('checks a handshake that was in flight when the CA left the bundle against the new bundle', { timeout: 15_000 }, async () => {
    const now = new Date();
    const other = await createCa('third client CA', now);
    const uri = 'spiffe://cluster.local/ns/shop/dc/www';
    const ofFirst = await createClientCert(ca, { uri, now, notAfter: new Date(now.getTime() + 3_600_000) });
    const ks = await startKeyServer({ keys: { get: () => undefined, size: 0 }, ca: `${ca.certPem}${other.certPem}`, cert: serving.certPem, key: serving.keyPem, host: '127.0.0.1', port: 0 });
    // A proxy that passes the ClientHello and the server's answers, and holds the client's
    // second flight (its certificate and Finished) until released.
    let held: Buffer[] = [];
    let release: (() => void) | undefined;
    const proxy = createServer((downstream) => {
      const upstream = netConnect({ host: '127.0.0.1', port: ks.port });
      let first = true;
      downstream.on('data', (chunk: Buffer) => {
        if (first) {
          first = false;
          upstream.write(chunk);
        } else if (release === undefined) {
          held.push(chunk);
        } else {
          upstream.write(chunk);
        }
      });
      upstream.on('data', (chunk: Buffer) => downstream.write(chunk));
      upstream.on('close', () => downstream.destroy());
      downstream.on('close', () => upstream.destroy());
      upstream.on('error', () => {});
      downstream.on('error', () => {});
      releaseHeld = () => {
        release = () => {};
        for (const c of held) upstream.write(c);
        held = [];
      };
    });
    let releaseHeld: (() => void) | undefined;
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    const port = (proxy.address() as AddressInfo).port;
    try {
      const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: ca.certPem, cert: ofFirst.certPem, key: ofFirst.keyPem, maxVersion: 'TLSv1.2' });
      socket.on('error', () => {});
      const closed = new Promise<void>((r) => socket.once('close', () => r()));
      for (let i = 0; i < 200 && held.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      assert.ok(held.length > 0, "the client's second flight is held");
      ks.setCredentials({ ca: other.certPem, cert: serving.certPem, key: serving.keyPem });
      assert.equal(await metricSum(ks.registry, 'keyless_server_untrusted_connections_total'), 0, 'not authenticated yet: the sweep did not see it');
      releaseHeld!();
      await closed;
      assert.equal(await metricSum(ks.registry, 'keyless_server_untrusted_connections_total'), 1);
    } finally {
      proxy.close();
      await ks.close();
    }
  });
});
