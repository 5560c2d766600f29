/**
 * Which engine should terminate TLS 1.3 clients that do not take a delegated credential, when the
 * certificate key is mounted: our stack (src/tls) or node:tls (OpenSSL)? Measured through the
 * whole sidecar (peek, route, handshake, proxy to an echo upstream), with the same certificate.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/sidecar-routing.js [seconds=4] [concurrency=16] [rounds=3]
 *
 * The sidecar runs in this process (it is single-threaded: one core); the load comes from a
 * separate process opening fresh TLS 1.3 connections with node:tls (no session reuse), each
 * writing 32 bytes and waiting for the echo. Reports handshakes/s and connect->echo latency.
 */
import { fork } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { runSidecar, type SidecarLogger } from '../src/sidecar/main.js';
import type { KeyType } from '../src/cli/pki/dev-pki.js';
import { credentialFiles, loopbackSidecarConfig, makePki } from '../test/unit/sidecar/fixtures.js';
import { KubeletVolume } from '../test/unit/sidecar/kubelet-volume.js';

interface LoadResult {
  /** Server CPU (user+system, this process) per completed connection, in ms: robust on a busy machine. */
  cpuMsPerHandshake?: number;
  readonly completed: number;
  readonly failed: number;
  readonly seconds: number;
  readonly p50: number;
  readonly p99: number;
}

const quiet: SidecarLogger = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} };

/** Child process: open connections back to back on `concurrency` lanes for `seconds`. */
async function loadGenerator(port: number, seconds: number, concurrency: number): Promise<LoadResult> {
  const latencies: number[] = [];
  let failed = 0;
  const deadline = Date.now() + seconds * 1000;
  const payload = Buffer.alloc(32, 0x61);
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const started = process.hrtime.bigint();
      const s = connect({ port, host: '127.0.0.1', minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', rejectUnauthorized: false, servername: 'localhost' }, () => {
        s.write(payload);
      });
      let got = 0;
      s.on('data', (d: Buffer) => {
        got += d.length;
        if (got >= payload.length) {
          latencies.push(Number(process.hrtime.bigint() - started) / 1e6);
          s.destroy();
          resolve();
        }
      });
      s.on('error', () => {
        failed++;
        s.destroy();
        resolve();
      });
    });
  const lane = async (): Promise<void> => {
    while (Date.now() < deadline) await one();
  };
  const t0 = Date.now();
  await Promise.all(Array.from({ length: concurrency }, lane));
  const elapsed = (Date.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  const q = (p: number): number => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? NaN;
  return { completed: latencies.length, failed, seconds: elapsed, p50: q(0.5), p99: q(0.99) };
}

/** Child process: one connection, `megabytes` each way through the echo upstream; MB/s. */
async function bulkGenerator(port: number, megabytes: number): Promise<number> {
  const total = megabytes * 1024 * 1024;
  const chunk = Buffer.alloc(64 * 1024, 0x62);
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1', minVersion: 'TLSv1.3', rejectUnauthorized: false, servername: 'localhost' }, () => {
      const t0 = process.hrtime.bigint();
      let sent = 0;
      let got = 0;
      const pump = (): void => {
        while (sent < total) {
          sent += chunk.length;
          if (!s.write(chunk)) {
            s.once('drain', pump);
            return;
          }
        }
      };
      s.on('data', (d: Buffer) => {
        got += d.length;
        if (got >= total) {
          const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
          s.destroy();
          resolve(total / 1024 / 1024 / seconds);
        }
      });
      pump();
    });
    s.on('error', reject);
  });
}

async function measure(keyType: KeyType, engine: 'ours' | 'node', seconds: number, concurrency: number, bulkMegabytes = 0): Promise<LoadResult> {
  const dir = await mkdtemp(join(tmpdir(), 'dc-bench-'));
  const pki = await makePki(keyType);
  await new KubeletVolume(dir).write(await credentialFiles(pki, { algorithms: ['ecdsa_secp256r1_sha256'], certificateKey: true }));
  const echo = createServer({ allowHalfOpen: true }, (s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  const config = loopbackSidecarConfig(dir, (echo.address() as AddressInfo).port, { 'certificate-engine': engine });
  const sidecar = await runSidecar({ ...config, log: quiet });
  try {
    const cpu0 = process.cpuUsage();
    const loadArgs = bulkMegabytes > 0 ? ['--bulk', String(sidecar.port), String(bulkMegabytes)] : ['--load', String(sidecar.port), String(seconds), String(concurrency)];
    const child = fork(fileURLToPath(import.meta.url), loadArgs);
    const result = await new Promise<LoadResult>((resolve, reject) => {
      child.once('message', (m) => resolve(m as LoadResult));
      child.once('error', reject);
    });
    const cpu = process.cpuUsage(cpu0);
    result.cpuMsPerHandshake = (cpu.user + cpu.system) / 1000 / Math.max(1, result.completed);
    if (bulkMegabytes > 0) return result;
    const counted = await sidecar.metrics.value('dc_sidecar_handshakes_total', { mode: 'certificate', engine, result: 'success' });
    if (counted < result.completed) throw new Error(`sidecar counted ${counted} ${engine} handshakes, client ${result.completed}`);
    return result;
  } finally {
    await sidecar.close();
    echo.close();
    await rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args[0] === '--bulk') {
    const mbps = await bulkGenerator(Number(args[1]), Number(args[2]));
    process.send!({ completed: 1, failed: 0, seconds: 0, p50: mbps, p99: mbps } satisfies LoadResult);
    process.disconnect();
    return;
  }
  if (args[0] === '--load') {
    const r = await loadGenerator(Number(args[1]), Number(args[2]), Number(args[3]));
    process.send!(r);
    process.disconnect();
    return;
  }
  const seconds = Number(args[0] ?? 4);
  const concurrency = Number(args[1] ?? 16);
  const rounds = Number(args[2] ?? 3);
  // The machine is shared: runs of the two engines alternate, and the median round is reported.
  console.log(`sidecar routing bench: ${rounds} alternating rounds of ${seconds}s per engine, ${concurrency} concurrent connections, node ${process.version}`);
  console.log('| certificate | engine | handshakes/s (median) | all rounds | server CPU ms/handshake (median) | all rounds | p50 ms | p99 ms | failed |');
  console.log('| --- | --- | ---: | --- | ---: | --- | ---: | ---: | ---: |');
  for (const keyType of ['ecdsa-p256', 'rsa-2048'] as const) {
    // Warm-up (JIT, caches), not reported.
    await measure(keyType, 'ours', 1, concurrency);
    await measure(keyType, 'node', 1, concurrency);
    const runs: Record<'ours' | 'node', LoadResult[]> = { ours: [], node: [] };
    for (let i = 0; i < rounds; i++) {
      for (const engine of ['ours', 'node'] as const) runs[engine].push(await measure(keyType, engine, seconds, concurrency));
    }
    for (const engine of ['ours', 'node'] as const) {
      const rates = runs[engine].map((r) => r.completed / r.seconds);
      const order = rates.map((rate, i) => ({ rate, i })).sort((a, b) => a.rate - b.rate);
      const median = runs[engine][order[Math.floor(order.length / 2)]!.i]!;
      const failed = runs[engine].reduce((n, r) => n + r.failed, 0);
      const cpus = runs[engine].map((r) => r.cpuMsPerHandshake ?? NaN);
      const cpuMedian = [...cpus].sort((a, b) => a - b)[Math.floor(cpus.length / 2)]!;
      console.log(
        `| ${keyType} | ${engine === 'ours' ? 'ours (src/tls)' : 'node:tls'} | ${(median.completed / median.seconds).toFixed(0)} | ${rates.map((r) => r.toFixed(0)).join(', ')} | ${cpuMedian.toFixed(3)} | ${cpus.map((c) => c.toFixed(3)).join(', ')} | ${median.p50.toFixed(2)} | ${median.p99.toFixed(2)} | ${failed} |`,
      );
    }
  }
  console.log('');
  console.log('| bulk, one connection, 64 MiB each way through the echo upstream | engine | MB/s each way (median) | all rounds |');
  console.log('| --- | --- | ---: | --- |');
  const bulk: Record<'ours' | 'node', number[]> = { ours: [], node: [] };
  for (let i = 0; i < rounds; i++) {
    for (const engine of ['ours', 'node'] as const) bulk[engine].push((await measure('ecdsa-p256', engine, 0, 1, 64)).p50);
  }
  for (const engine of ['ours', 'node'] as const) {
    const sorted = [...bulk[engine]].sort((a, b) => a - b);
    console.log(`| ecdsa-p256 | ${engine === 'ours' ? 'ours (src/tls)' : 'node:tls'} | ${sorted[Math.floor(sorted.length / 2)]!.toFixed(0)} | ${bulk[engine].map((m) => m.toFixed(0)).join(', ')} |`);
  }
}

void main();
