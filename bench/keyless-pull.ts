/**
 * What one server signature costs a handshake: DC push (CertificateVerify signed locally with the
 * delegated credential's key) versus keyless pull (CertificateVerify signed by the remote key
 * server), with the key server on loopback and behind 20 ms of round-trip delay.
 *
 * The delay is an in-process TCP proxy holding every chunk for 10 ms each way (no netem: that
 * needs root and a network namespace). Signatures only, the part that differs between push and
 * pull; bench/keyless-handshake.ts measures whole handshakes through the sidecar.
 *
 *   node dist/bench/keyless-pull.js [--samples 200] [--rtt 20]
 */
import { createHash, generateKeyPairSync } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { KeylessSigner } from '../src/signer/keyless.js';
import { SignatureScheme } from '../src/tls/constants.js';
import { certificateVerifyContent } from '../src/tls/signature-schemes.js';
import { createKeySigner, type Signer } from '../src/tls/signer.js';
import { makeKeylessPki } from '../test/unit/keyless/pki.js';
import { fmt, quantile, startDelayProxy, startKeyServerProcess } from './keyless-support.js';

const { values: args } = parseArgs({ options: { samples: { type: 'string', default: '200' }, rtt: { type: 'string', default: '20' } } });
const SAMPLES = Number(args.samples);
const RTT = Number(args.rtt);

async function latencies(signer: Signer, scheme: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < SAMPLES + 10; i++) {
    const content = certificateVerifyContent('server', createHash('sha256').update(String(i)).digest());
    const t = performance.now();
    await signer.sign(scheme, content);
    if (i >= 10) times.push(performance.now() - t); // first ten: warm-up, connection set-up
  }
  return times.sort((a, b) => a - b);
}

async function main(): Promise<void> {
  const pki = makeKeylessPki(['p256', 'rsa2048']);
  const server = await startKeyServerProcess(pki);
  const proxy = await startDelayProxy(server.port, RTT / 2);
  const rows: Array<[string, number[]]> = [];
  try {
    const dcKey = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    rows.push(['push: DC key (P-256) signs locally', await latencies(createKeySigner(dcKey), SignatureScheme.ecdsa_secp256r1_sha256)]);
    const ed = generateKeyPairSync('ed25519').privateKey;
    rows.push(['push: DC key (Ed25519) signs locally', await latencies(createKeySigner(ed), SignatureScheme.ed25519)]);
    for (const [label, port] of [['loopback', server.port], [`${RTT} ms RTT`, proxy.port]] as const) {
      for (const [name, scheme] of [['p256', SignatureScheme.ecdsa_secp256r1_sha256], ['rsa2048', SignatureScheme.rsa_pss_rsae_sha256]] as const) {
        const signer = new KeylessSigner({
          address: `127.0.0.1:${port}`,
          servername: 'localhost',
          ca: pki.ca,
          clientCert: pki.client.cert,
          clientKey: pki.client.key,
          certificate: pki.keys[name].cert,
          timeoutMs: 10_000,
        });
        rows.push([`pull: keyless ${name === 'p256' ? 'P-256' : 'RSA-2048 PSS'} over ${label}`, await latencies(signer, scheme)]);
        await signer.close();
      }
    }
    console.log(`# keyless pull vs DC push — ${new Date().toISOString()}`);
    console.log(`node ${process.version}, ${cpus().length}× ${cpus()[0]?.model ?? 'cpu'}, load ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    console.log(`${SAMPLES} sequential CertificateVerify signatures each, one connection, delay proxy ${RTT / 2} ms each way\n`);
    console.log('| signature for one handshake | p50 (ms) | p99 (ms) |');
    console.log('| --- | ---: | ---: |');
    for (const [label, times] of rows) console.log(`| ${label} | ${fmt(quantile(times, 0.5), 3)} | ${fmt(quantile(times, 0.99), 3)} |`);
  } finally {
    await proxy.close();
    await server.stop();
    pki.cleanup();
  }
}

await main();
