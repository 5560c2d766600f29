/**
 * Our client against our server, in memory (no sockets): the CPU of both sides of a handshake,
 * this build against another build's dist/ in ONE process, alternating round by round. It
 * covers what bench/tls-handshake.ts cannot (that one drives our server with node:tls clients):
 * our client's handshake code.
 *
 *   npx tsc -p tsconfig.json
 *   BENCH_BASELINE_DIST=/tmp/before-dist taskset -c 1 node dist/bench/sansio-handshake.js [handshakes=300] [rounds=10]
 *
 * Modes: 'tls13' (x25519, ECDSA P-256 certificate; every fourth handshake resumes the last
 * session with PSK-DHE, as warmUpServer rotates), 'tls12' (ECDHE x25519, the same certificate).
 * Each round runs `handshakes` in-memory handshakes (32 bytes each way) with the build's own
 * `warmUpServer` (src/tls/warm-up.ts), timing process CPU (user+system) around them. Builds
 * alternate order round by round; the first round of each build is a warm-up and not counted.
 * Reported: median and all rounds of CPU microseconds per handshake, the ratio of the medians,
 * and the median of the per-round ratios (the two builds of a round ran seconds apart, so their
 * ratio is less disturbed by other work on the machine than the medians).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NamedGroup } from '../src/tls/constants.js';
import { fmt, loadAverage, makeCertificates, median } from './tls-support.js';

interface Build {
  readonly name: string;
  readonly ServerConfig: new (options: Record<string, unknown>) => unknown;
  /** A count before warm-up reports per kind, a report since: builds of both ages are compared. */
  readonly warmUpServer: (config: unknown, handshakes: number) => number | { readonly done: number };
}

async function loadBuild(name: string, distDir: string): Promise<Build> {
  const server = (await import(join(distDir, 'src/tls/server.js'))) as { ServerConfig: Build['ServerConfig'] };
  const warm = (await import(join(distDir, 'src/tls/warm-up.js'))) as { warmUpServer: Build['warmUpServer'] };
  return { name, ServerConfig: server.ServerConfig, warmUpServer: warm.warmUpServer };
}

const MODES = {
  tls13: { minVersion: 'TLSv1.3', groups: [NamedGroup.x25519, NamedGroup.secp256r1] },
  tls12: { maxVersion: 'TLSv1.2' },
} as const;

/** CPU microseconds per handshake for one batch. */
function batch(build: Build, config: unknown, handshakes: number): number {
  const before = process.cpuUsage();
  const report = build.warmUpServer(config, handshakes);
  const done = typeof report === 'number' ? report : report.done;
  const used = process.cpuUsage(before);
  if (done !== handshakes) throw new Error(`${build.name}: only ${done} of ${handshakes} handshakes completed`);
  return (used.user + used.system) / handshakes;
}

async function main(): Promise<void> {
  const [handshakes = 300, rounds = 10] = process.argv.slice(2).map(Number);
  const baselineDist = process.env.BENCH_BASELINE_DIST;
  if (!baselineDist) throw new Error('set BENCH_BASELINE_DIST to the dist/ of the build to compare with');
  const thisDist = fileURLToPath(new URL('../', import.meta.url));
  const builds = [await loadBuild('this build', thisDist), await loadBuild('baseline', baselineDist)];
  const { certs, cleanup } = await makeCertificates(['ecdsa-p256']);
  try {
    const input = { cert: await readFile(certs[0]!.cert, 'utf8'), key: await readFile(certs[0]!.key, 'utf8') };
    console.log(`# in-memory handshakes, our client and our server in one process: ${handshakes} per round x ${rounds} rounds (+1 warm-up) per build; node ${process.version}; load average ${loadAverage()}`);
    console.log('| mode | build | CPU us/handshake, both sides (median) | all rounds |');
    console.log('| --- | --- | ---: | --- |');
    const ratios: string[] = [];
    for (const [mode, options] of Object.entries(MODES)) {
      const configs = builds.map((b) => new b.ServerConfig({ certificates: [input], ...options }));
      const samples: number[][] = builds.map(() => []);
      for (let r = 0; r <= rounds; r++) {
        const order = r % 2 === 0 ? [0, 1] : [1, 0];
        for (const i of order) {
          const us = batch(builds[i]!, configs[i], handshakes);
          if (r > 0) samples[i]!.push(us);
        }
      }
      const medians = samples.map((s) => median(s));
      builds.forEach((b, i) => console.log(`| ${mode} | ${b.name} | ${fmt(medians[i]!, 1)} | ${samples[i]!.map((x) => fmt(x)).join(', ')} |`));
      const paired = median(samples[0]!.map((x, r) => x / samples[1]![r]!));
      ratios.push(`${mode}: this build / baseline: ratio of medians ${fmt(medians[0]! / medians[1]!, 3)}x, median of per-round ratios ${fmt(paired, 3)}x`);
    }
    console.log('');
    for (const r of ratios) console.log(r);
    console.log(`# load average at the end ${loadAverage()}`);
  } finally {
    await cleanup();
  }
}

await main();
