/**
 * Handshake latency, DC push vs keyless pull, with 20 ms of round trip between our TLS server and
 * the key server: the measurement that motivates delegated credentials.
 *
 * Real pieces: the sidecar (`runSidecar`, our TLS 1.3 stack) serving a P-256 certificate whose key
 * lives only on the key server (`dc-operator keyserver`, its own process), plus a fresh P-256 DC in
 * its volume; between them an in-process TCP proxy holding every chunk 10 ms each way (no netem:
 * it needs root and a network namespace). The same client (our TLS client) connects N times
 * sequentially, once offering delegated_credential (push: CertificateVerify signed locally with
 * the DC key) and once without it (pull: CertificateVerify signed by the key server).
 *
 *   node dist/bench/keyless-handshake.js [--handshakes 100] [--rtt 20]
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs as parseCli } from 'node:util';
import { runSidecar, type SidecarLogger } from '../src/sidecar/main.js';
import { delegatedCredentialPeerHooks } from '../src/tls/delegated/index.js';
import { ClientConfig } from '../src/tls/client.js';
import { connect } from '../src/tls/socket.js';
import { makeKeylessPki } from '../test/unit/keyless/pki.js';
import { credentialFiles, loopbackSidecarConfig, makePki } from '../test/unit/sidecar/fixtures.js';
import { KubeletVolume } from '../test/unit/sidecar/kubelet-volume.js';
import { fmt, quantile, startDelayProxy, startKeyServerProcess } from './keyless-support.js';

const { values: args } = parseCli({ options: { handshakes: { type: 'string', default: '100' }, rtt: { type: 'string', default: '20' } } });
const HANDSHAKES = Number(args.handshakes);
const RTT = Number(args.rtt);
const quiet: SidecarLogger = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} };

function handshake(port: number, config: ClientConfig): Promise<{ ms: number; dc: boolean }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', config });
    socket.once('secureConnect', () => {
      const ms = performance.now() - started;
      const info = socket.handshakeInfo;
      socket.destroy();
      resolve({ ms, dc: info?.serverMode.authentication === 'delegated-credential' });
    });
    socket.once('error', reject);
  });
}

async function main(): Promise<void> {
  const pki = await makePki('ecdsa-p256');
  const mtls = makeKeylessPki(['p256']);
  const work = await mkdtemp(join(tmpdir(), 'keyless-handshake-'));
  // The key server holds the certificate's key; the sidecar's volume has only tls.crt and the DC.
  await writeFile(join(mtls.keysDir, 'leaf.pem'), pki.leaf.key.privateKeyPem);
  const keyServer = await startKeyServerProcess(mtls);
  const proxy = await startDelayProxy(keyServer.port, RTT / 2);
  for (const [name, pem] of [['keyless-ca.crt', mtls.ca], ['client.crt', mtls.client.cert], ['client.key', mtls.client.key]] as const) {
    await writeFile(join(work, name), pem);
  }
  const volume = new KubeletVolume(join(work, 'credentials'));
  await volume.write(await credentialFiles(pki, { algorithms: ['ecdsa_secp256r1_sha256'] }));
  const upstream: Server = createServer((s) => s.resume());
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const config = loopbackSidecarConfig(volume.dir, (upstream.address() as AddressInfo).port, {
    'keyless-address': `127.0.0.1:${proxy.port}`,
    'keyless-ca': join(work, 'keyless-ca.crt'),
    'keyless-client-cert': join(work, 'client.crt'),
    'keyless-client-key': join(work, 'client.key'),
  });
  const sidecar = await runSidecar({ ...config, log: quiet });
  try {
    const push = new ClientConfig({ servername: 'localhost', ca: [pki.ca.pem], serverCredentialHooks: delegatedCredentialPeerHooks({ peer: 'server' }) });
    const pull = new ClientConfig({ servername: 'localhost', ca: [pki.ca.pem] });
    const results: Array<[string, number[], number]> = [];
    for (const [label, config] of [['DC push (client offers delegated_credential)', push], ['keyless pull (client without DC support)', pull]] as const) {
      for (let i = 0; i < 5; i++) await handshake(sidecar.port, config); // warm-up, keyless connection set-up
      const times: number[] = [];
      let withDc = 0;
      for (let i = 0; i < HANDSHAKES; i++) {
        const r = await handshake(sidecar.port, config);
        times.push(r.ms);
        if (r.dc) withDc++;
      }
      results.push([label, times.sort((a, b) => a - b), withDc]);
    }
    console.log(`# handshake latency: DC push vs keyless pull — ${new Date().toISOString()}`);
    console.log(`node ${process.version}, ${cpus().length}× ${cpus()[0]?.model ?? 'cpu'}, load ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    console.log(`${HANDSHAKES} sequential full TLS 1.3 handshakes per mode (our client → sidecar, P-256 certificate, P-256 DC), ${RTT} ms RTT sidecar ↔ key server\n`);
    console.log('| mode | p50 (ms) | p90 (ms) | p99 (ms) | handshakes that used the DC |');
    console.log('| --- | ---: | ---: | ---: | ---: |');
    for (const [label, times, withDc] of results) {
      console.log(`| ${label} | ${fmt(quantile(times, 0.5), 2)} | ${fmt(quantile(times, 0.9), 2)} | ${fmt(quantile(times, 0.99), 2)} | ${withDc}/${times.length} |`);
    }
  } finally {
    await sidecar.close();
    upstream.close();
    await proxy.close();
    await keyServer.stop();
    mtls.cleanup();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
