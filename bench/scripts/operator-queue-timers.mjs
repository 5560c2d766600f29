#!/usr/bin/env node
// Issue 19: what 10,000 renewal times scheduled in the work queue (WorkQueue.addAfter, distinct
// delays as after a burst) cost one build: heap after a full GC per key, CPU per addAfter.
//   node --expose-gc bench/scripts/operator-queue-timers.mjs DIR   (DIR holds a dist/)
const [dir] = process.argv.slice(2);
const { WorkQueue } = await import(`${dir}/dist/src/operator/queue.js`);
const { systemClock } = await import(`${dir}/dist/src/operator/clock.js`);
const heap = () => { globalThis.gc(); globalThis.gc(); return process.memoryUsage().heapUsed; };
const keys = Array.from({ length: 10000 }, (_, i) => `bench-scale-mxauhpmu/dc-${String(i).padStart(5, '0')}`);
const q0 = new WorkQueue(systemClock); q0.addAfter('warm/x', 1e8); q0.shutdown();
const before = heap();
const q = new WorkQueue(systemClock);
const c = process.cpuUsage();
for (const k of keys) q.addAfter(k, 57_600_000 + Math.floor(Math.random() * 14_400_000));
const u = process.cpuUsage(c);
const after = heap();
console.log(JSON.stringify({ dir, bytesPerKey: Math.round((after - before) / keys.length), cpuUsPerAddAfter: +((u.user + u.system) / keys.length).toFixed(2) }));
q.shutdown();
