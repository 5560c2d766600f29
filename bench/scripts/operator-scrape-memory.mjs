#!/usr/bin/env node
// Issue 19: CPU and memory of two /metrics scrapes of the operator with N DelegatedCredentials in
// its caches, from the build in DIR (its dist/); `chunks` consumes OperatorMetrics.exposition()
// chunk by chunk as the HTTP server does (builds that have it), else scrape() as one string.
//   node --max-semi-space-size=8 --expose-gc bench/scripts/operator-scrape-memory.mjs DIR [N=10000] [scrape|chunks]
import { Buffer } from 'node:buffer';
import { setTimeout } from 'node:timers';

const [dir, N = '10000', MODE = 'scrape'] = process.argv.slice(2);
const { OperatorMetrics } = await import(`${dir}/dist/src/operator/metrics.js`);
const dcs = Array.from({ length: Number(N) }, (_, i) => ({ metadata: { namespace: 'bench-scale-abc', name: `dc-${String(i).padStart(5, '0')}` },
  status: { renewalTime: '2026-12-06T10:00:00Z', credentials: [{ algorithm: 'ecdsa_secp256r1_sha256', notAfter: '2026-12-06T12:00:00Z' }], conditions: [{ type: 'Ready', status: 'True' }] } }));
const m = new OperatorMetrics();
m.attach({ credentials: () => dcs, isLeader: () => true, queueDepth: () => 0 });
const mib = (b) => (b / 2 ** 20).toFixed(1);
globalThis.gc?.(); await new Promise((r) => setTimeout(r, 100));
const before = process.memoryUsage();
const cpu0 = process.cpuUsage();
let len = 0;
for (let i = 0; i < 2; i++) { const t = await (MODE === "chunks" && m.exposition ? m.exposition() : m.scrape()); const parts = typeof t === "string" ? [t] : t; len = 0; for (const p of parts) len += Buffer.from(p).length; }
const cpu = process.cpuUsage(cpu0);
const after = process.memoryUsage();
console.log(`scrape x2: ${((cpu.user + cpu.system) / 2000).toFixed(0)} ms CPU each, ${mib(len)} MiB text; rss ${mib(before.rss)} -> ${mib(after.rss)} heapTotal ${mib(before.heapTotal)} -> ${mib(after.heapTotal)} external ${mib(before.external)} -> ${mib(after.external)}`);
