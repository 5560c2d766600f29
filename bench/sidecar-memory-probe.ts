/**
 * Preloaded into the sidecar by bench/sidecar-memory.ts (node --import): on SIGUSR2 writes one line
 * `memory-probe {...}` with process.memoryUsage() and V8's heap spaces to stderr. The sidecar's
 * /metrics has no nodejs_* gauges, so the benchmark asks the process itself.
 */
import { getHeapSpaceStatistics } from 'node:v8';
import { trimMalloc } from '../src/operator/native/malloc-trim.js';

// MEMORY_PROBE_TRIM_MS: glibc's malloc_trim every that many ms (the operator's addon), to measure
// what trimming would give the sidecar before it does so itself.
const trimEvery = Number(process.env.MEMORY_PROBE_TRIM_MS ?? 0);
const trimMs: number[] = [];
if (trimEvery > 0)
  setInterval(() => {
    const t0 = process.hrtime.bigint();
    trimMalloc();
    trimMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }, trimEvery).unref();

process.on('SIGUSR2', () => {
  const spaces = Object.fromEntries(getHeapSpaceStatistics().map((s) => [s.space_name, s.space_size]));
  const trims = { count: trimMs.length, maxMs: Math.max(0, ...trimMs), totalMs: trimMs.reduce((a, b) => a + b, 0) };
  process.stderr.write(`memory-probe ${JSON.stringify({ ...process.memoryUsage(), spaces, trims })}\n`);
});
