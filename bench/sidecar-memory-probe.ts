/**
 * Preloaded into the sidecar by bench/sidecar-memory.ts (node --import): on SIGUSR2 writes one line
 * `memory-probe {...}` with process.memoryUsage() and V8's heap spaces to stderr. The sidecar's
 * /metrics has no nodejs_* gauges, so the benchmark asks the process itself.
 */
import { getHeapSpaceStatistics } from 'node:v8';

process.on('SIGUSR2', () => {
  const spaces = Object.fromEntries(getHeapSpaceStatistics().map((s) => [s.space_name, s.space_size]));
  process.stderr.write(`memory-probe ${JSON.stringify({ ...process.memoryUsage(), spaces })}\n`);
});
