/**
 * A load generator in its own process (forked by tests), so that client handshakes do not share
 * the sidecar's event loop: `concurrency` lanes open new TLS 1.3 connections with our client,
 * offering delegated credentials, until the parent sends 'stop'; then it reports what happened.
 *
 *   fork(this file, [port, caFile, concurrency]) -> message: LoadReport
 */
import { readFileSync } from 'node:fs';
import { delegatedCredentialPeerHooks, type DelegatedCredentialDetails } from '../../../src/tls/delegated/index.js';
import { ClientConfig } from '../../../src/tls/client.js';
import { connect } from '../../../src/tls/socket.js';

export interface LoadReport {
  readonly handshakes: number;
  readonly withoutDc: number;
  readonly failures: number;
  /** The first failure messages. */
  readonly errors: readonly string[];
  /** Distinct DC expiries seen (ms since the epoch). */
  readonly expiries: readonly number[];
  readonly seconds: number;
}

async function main(): Promise<void> {
  const [portText, caFile, concurrencyText] = process.argv.slice(2);
  const port = Number(portText);
  const config = new ClientConfig({
    servername: 'localhost',
    ca: [readFileSync(caFile!, 'utf8')],
    serverCredentialHooks: delegatedCredentialPeerHooks({ peer: 'server' }),
  });
  let stop = false;
  process.on('message', (m) => {
    if (m === 'stop') stop = true;
  });
  let handshakes = 0;
  let withoutDc = 0;
  let failures = 0;
  const errors: string[] = [];
  const expiries = new Set<number>();
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const s = connect({ host: '127.0.0.1', port, servername: 'localhost', config }, () => {
        const mode = s.handshakeMode?.server;
        if (mode?.authentication === 'delegated-credential') expiries.add((mode.details as DelegatedCredentialDetails).expiresAt.getTime());
        else withoutDc++;
        handshakes++;
        s.destroy();
        resolve();
      });
      s.on('error', (err) => {
        failures++;
        if (errors.length < 20) errors.push(err.message);
        s.destroy();
        resolve();
      });
    });
  const started = Date.now();
  process.send!('ready');
  await Promise.all(
    Array.from({ length: Number(concurrencyText ?? 8) }, async () => {
      while (!stop) await one();
    }),
  );
  const report: LoadReport = { handshakes, withoutDc, failures, errors, expiries: [...expiries], seconds: (Date.now() - started) / 1000 };
  process.send!(report, () => process.disconnect());
}

if (process.send) void main();
