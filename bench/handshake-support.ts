/**
 * The handshake load child shared by the handshake benchmarks that drive servers with OUR client
 * (bench/dc-handshake.ts, bench/sidecar-fallback.ts): fresh TLS 1.3 connections back to back on
 * `concurrency` lanes, no session reuse, each writing REQUEST and waiting for 32 bytes back.
 * Importing this file does nothing; the benchmarks call handshakeLoadRole in their load child.
 */
import { delegatedCredentialPeerHooks, DELEGATED_CREDENTIAL_LABEL } from '../src/tls/delegated/index.js';
import { ClientConfig } from '../src/tls/client.js';
import { connect } from '../src/tls/socket.js';
import type { HandshakeLoadResult } from './tls-support.js';

/**
 * 32 bytes that every server of the benchmarks answers with at least 32 bytes: an echo server
 * echoes them, `dcctl serve` answers the HTTP request, the sidecar proxies them to an echo app.
 */
export const REQUEST = Buffer.from('GET / HTTP/1.0\r\nHost: bench1\r\n\r\n', 'latin1');

export interface HandshakeLoadOptions {
  readonly port: number;
  readonly seconds: number;
  readonly concurrency: number;
  /** Offer the delegated_credential extension (34), verifying what comes with RFC 9345's rules. */
  readonly offerDc: boolean;
  /** How the server must authenticate; anything else counts as failed (and as wrong). */
  readonly expectDc: boolean;
}

export interface AuthenticatedLoadResult extends HandshakeLoadResult {
  /** Handshakes the server authenticated otherwise than expected (also counted in failed). */
  readonly wrongAuthentication: number;
}

/**
 * Load child: 0.5 s of warm-up (not counted), then 'warm' to the parent; on the parent's next
 * message, `seconds` of measured load, whose AuthenticatedLoadResult goes to the parent; then exits.
 */
export async function handshakeLoadRole(o: HandshakeLoadOptions): Promise<void> {
  const config = new ClientConfig({
    servername: 'localhost',
    rejectUnauthorized: false,
    ...(o.offerDc ? { serverCredentialHooks: delegatedCredentialPeerHooks({ peer: 'server' }) } : {}),
  });
  const latencies: number[] = [];
  let failed = 0;
  let wrongAuthentication = 0;
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const started = process.hrtime.bigint();
      const s = connect({ host: '127.0.0.1', port: o.port, servername: 'localhost', config, handshakeTimeout: 10_000 }, () => {
        const usedDc = s.handshakeInfo?.serverMode.authentication === DELEGATED_CREDENTIAL_LABEL;
        if (usedDc !== o.expectDc) {
          wrongAuthentication++;
          fail();
          return;
        }
        s.write(REQUEST);
      });
      let got = 0;
      let done = false;
      const fail = (): void => {
        if (done) return;
        done = true;
        failed++;
        s.destroy();
        resolve();
      };
      // A stuck server shows up as failures instead of a benchmark that never ends.
      const timer = setTimeout(fail, 10_000);
      s.on('data', (d: Buffer) => {
        got += d.length;
        if (got >= REQUEST.length && !done) {
          done = true;
          clearTimeout(timer);
          latencies.push(Number(process.hrtime.bigint() - started) / 1e6);
          s.destroy();
          resolve();
        }
      });
      s.on('error', () => {
        clearTimeout(timer);
        fail();
      });
    });
  const lanes = async (until: number): Promise<void> => {
    await Promise.all(Array.from({ length: o.concurrency }, async () => {
      while (Date.now() < until) await one();
    }));
  };
  await lanes(Date.now() + 500); // warm-up, not counted
  latencies.length = 0;
  failed = 0;
  wrongAuthentication = 0;
  process.send!('warm');
  await new Promise<void>((res) => process.once('message', () => res()));
  const start = Date.now();
  await lanes(start + o.seconds * 1000);
  const result: AuthenticatedLoadResult = { completed: latencies.length, failed, wrongAuthentication, seconds: (Date.now() - start) / 1000, latencies };
  process.send!(result);
  process.exit(0);
}
