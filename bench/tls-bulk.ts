/**
 * Bulk throughput through ONE TLS 1.3 connection, each way: our server (src/tls) vs a node:tls
 * server, same ECDSA P-256 certificate, same client. Our server runs twice when the native AEAD
 * (src/tls/native) is built: "ours" with it, "ours, node:crypto AEAD" with DC_TLS_AEAD=node.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/tls-bulk.js [MiB=128] [rounds=3] [warmupMiB=256] [writeBytes=65536]
 *
 * writeBytes is the size of every write, the client's upload writes and the server's download
 * writes: 65536 makes full 16 KiB records, 512 small writes (node:tls sends a record per write).
 *
 * The server runs in its own process pinned to core 1; the client is node:tls in a separate
 * process pinned to core 0 (TLS_AES_128_GCM_SHA256). Upload: the client sends MiB bytes and the
 * server answers one byte once it has read them all. Download: the server sends MiB bytes in
 * 64 KiB writes with backpressure. MB/s = 10^6 bytes per second of wall time, medians of rounds
 * (servers alternate round by round). "us/rec" = user+system CPU time of the server process
 * during the measured transfer per 16 KiB of payload (one full record): wall-clock MB/s
 * depends on which side is the bottleneck, CPU per record shows the server's own cost.
 *
 * Before measuring, each fresh server moves `warmupMiB` each way (one connection per direction)
 * so that both servers are measured in their steady state: V8 optimizes the per-record
 * functions (ours and node:crypto's JavaScript wrappers) only after thousands of calls, and a
 * long-lived terminator runs there. `warmupMiB=8` shows the start-up phase.
 */
import { fileURLToPath } from 'node:url';
import * as nodeTls from 'node:tls';
import type { ChildProcess } from 'node:child_process';
import { nativeAead } from '../src/tls/native/aead.js';
import { IMPLS, IMPL_NAMES, canPin, fmt, loadAverage, makeCertificates, median, nextMessage, serverRole, spawnNode, type Impl, type ServerStats } from './tls-support.js';

const SCRIPT = fileURLToPath(import.meta.url);

interface BulkResult {
  readonly uploadMBps: number;
  readonly downloadMBps: number;
  /** Server CPU (user + system) per 16 KiB of payload, microseconds. */
  readonly uploadUsPerRecord: number;
  readonly downloadUsPerRecord: number;
}

/** Client -> parent: a measured transfer starts or ends (the parent reads the server's CPU), or the results. */
type ClientMessage = { readonly phase: 'start' | 'end' } | { readonly result: { readonly uploadMBps: number; readonly downloadMBps: number } };

/** Tells the parent a measured phase starts/ends and waits until it has read the server's CPU counter. */
function mark(phase: 'start' | 'end'): Promise<void> {
  return new Promise((resolve) => {
    process.once('message', () => resolve());
    process.send!({ phase } satisfies ClientMessage);
  });
}

/** The servers of this bench: ours, ours on node:crypto's AEAD (when the native one is built), node:tls. */
type BulkImpl = Impl | 'ours-pure';
const BULK_IMPL_NAMES: Readonly<Record<BulkImpl, string>> = { ...IMPL_NAMES, ours: `ours (src/tls), ${nativeAead() ? 'native' : 'node:crypto'} AEAD`, 'ours-pure': 'ours (src/tls), node:crypto AEAD' };

async function clientRole(port: number, bytes: number, warmupBytes: number, writeBytes: number): Promise<void> {
  const connectOnce = (): Promise<nodeTls.TLSSocket> =>
    new Promise((resolve, reject) => {
      const s = nodeTls.connect({ port, host: '127.0.0.1', servername: 'localhost', rejectUnauthorized: false, minVersion: 'TLSv1.3', ciphers: 'TLS_AES_128_GCM_SHA256' }, () => resolve(s));
      s.once('error', reject);
    });
  const upload = async (): Promise<number> => {
    const s = await connectOnce();
    const chunk = Buffer.alloc(writeBytes, 0x41);
    const done = new Promise<void>((res) => s.once('data', () => res()));
    if (measured) await mark('start');
    const start = process.hrtime.bigint();
    s.write(`U${bytes}\n`);
    let left = bytes;
    while (left > 0) {
      const n = Math.min(left, chunk.length);
      left -= n;
      if (!s.write(n === chunk.length ? chunk : chunk.subarray(0, n))) await new Promise((r) => s.once('drain', r));
    }
    await done;
    const secs = Number(process.hrtime.bigint() - start) / 1e9;
    if (measured) await mark('end');
    s.destroy();
    return bytes / secs / 1e6;
  };
  const download = async (): Promise<number> => {
    const s = await connectOnce();
    let got = 0;
    if (measured) await mark('start');
    const start = process.hrtime.bigint();
    await new Promise<void>((res) => {
      s.on('data', (d: Buffer) => {
        got += d.length;
        if (got >= bytes) res();
      });
      s.write(`D${bytes}\n`);
    });
    const secs = Number(process.hrtime.bigint() - start) / 1e9;
    if (measured) await mark('end');
    s.destroy();
    return bytes / secs / 1e6;
  };
  // Warm-up, then measure.
  const full = bytes;
  let measured = false;
  bytes = warmupBytes;
  await upload();
  await download();
  bytes = full;
  measured = true;
  const uploadMBps = await upload();
  const downloadMBps = await download();
  process.send!({ result: { uploadMBps, downloadMBps } } satisfies ClientMessage);
  process.exit(0);
}

/** Reads (and resets) the server child's CPU counter. */
async function serverCpuMs(server: ChildProcess): Promise<number> {
  const stats = nextMessage<ServerStats>(server);
  server.send('stats');
  return (await stats).cpuMs;
}

async function oneRound(impl: BulkImpl, cert: string, key: string, bytes: number, warmupBytes: number, writeBytes: number, pin: boolean): Promise<BulkResult> {
  // The children inherit the environment: the server's write size, and for 'ours-pure' the switch to node:crypto.
  process.env.BENCH_WRITE_SIZE = String(writeBytes);
  if (impl === 'ours-pure') process.env.DC_TLS_AEAD = 'node';
  const server = spawnNode(SCRIPT, ['--server', impl === 'ours-pure' ? 'ours' : impl, cert, key], pin ? 1 : undefined);
  delete process.env.DC_TLS_AEAD;
  try {
    const { port } = await nextMessage<{ port: number }>(server);
    const client = spawnNode(SCRIPT, ['--client', String(port), String(bytes), String(warmupBytes), String(writeBytes)], pin ? 0 : undefined);
    const cpuMs: number[] = []; // server CPU of the measured upload, then download
    for (;;) {
      const m = await nextMessage<ClientMessage>(client);
      if ('result' in m) {
        const perRecord = (ms: number | undefined): number => ((ms ?? NaN) * 1000) / (bytes / 16384);
        return { ...m.result, uploadUsPerRecord: perRecord(cpuMs[0]), downloadUsPerRecord: perRecord(cpuMs[1]) };
      }
      const ms = await serverCpuMs(server);
      if (m.phase === 'end') cpuMs.push(ms);
      client.send('go');
    }
  } finally {
    server.kill('SIGTERM');
  }
}

async function main(): Promise<void> {
  const [mib = 128, rounds = 3, warmupMiB = 256, writeBytes = 65536] = process.argv.slice(2).map(Number);
  const impls: BulkImpl[] = nativeAead() ? ['ours', 'ours-pure', 'node'] : [...IMPLS];
  const pin = canPin();
  const { certs, cleanup } = await makeCertificates(['ecdsa-p256']);
  const c = certs[0]!;
  console.log(`# TLS 1.3 bulk, one connection, ${mib} MiB each way in ${writeBytes}-byte writes x ${rounds} rounds after ${warmupMiB} MiB of warm-up, server ${pin ? 'pinned to core 1, client on core 0' : 'not pinned'}; node ${process.version}; load average ${loadAverage()}`);
  const results: Record<BulkImpl, BulkResult[]> = { ours: [], 'ours-pure': [], node: [] };
  try {
    for (let i = 0; i < rounds; i++) {
      for (const impl of i % 2 === 0 ? impls : [...impls].reverse()) results[impl].push(await oneRound(impl, c.cert, c.key, mib << 20, warmupMiB << 20, writeBytes, pin));
    }
  } finally {
    await cleanup();
  }
  console.log('| server | upload MB/s (median) | all rounds | server us/rec | download MB/s (median) | all rounds | server us/rec |');
  console.log('| --- | ---: | --- | ---: | ---: | --- | ---: |');
  const med: Partial<Record<BulkImpl, { up: number; down: number; upUs: number; downUs: number }>> = {};
  for (const impl of impls) {
    const rs = results[impl];
    const m = { up: median(rs.map((r) => r.uploadMBps)), down: median(rs.map((r) => r.downloadMBps)), upUs: median(rs.map((r) => r.uploadUsPerRecord)), downUs: median(rs.map((r) => r.downloadUsPerRecord)) };
    med[impl] = m;
    console.log(
      `| ${BULK_IMPL_NAMES[impl]} | ${fmt(m.up)} | ${rs.map((r) => fmt(r.uploadMBps)).join(', ')} | ${m.upUs.toFixed(1)} | ${fmt(m.down)} | ${rs.map((r) => fmt(r.downloadMBps)).join(', ')} | ${m.downUs.toFixed(1)} |`,
    );
  }
  console.log('');
  const node = med.node!;
  for (const impl of impls.filter((i) => i !== 'node')) {
    const ours = med[impl]!;
    console.log(`${BULK_IMPL_NAMES[impl]} / node:tls: upload (server decrypts) ${fmt((ours.up / node.up) * 100)}%, download (server encrypts) ${fmt((ours.down / node.down) * 100)}%; server CPU per record node:tls/ours: upload ${fmt((node.upUs / ours.upUs) * 100)}%, download ${fmt((node.downUs / ours.downUs) * 100)}%`);
  }
}

const role = process.argv[2];
if (role === '--server') {
  await serverRole(process.argv[3] as Impl, process.argv[4]!, process.argv[5]!, 'bulk');
} else if (role === '--client') {
  await clientRole(Number(process.argv[3]), Number(process.argv[4]), Number(process.argv[5]), Number(process.argv[6]));
} else {
  await main();
}
